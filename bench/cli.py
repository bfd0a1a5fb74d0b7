"""`python -m bench`: time bootstrap against mmdebstrap and debootstrap on a frozen loopback mirror (as root)."""

import argparse
import datetime
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import machine, report, rpm, runner
from bench.mirror import DEFAULT_DIR, FrozenMirror
from bench.runner import say
from bench.tools import CASES, REPO, remove
from bootstrap.build.families import DISTROS, Distro, discover_mirrors
from bootstrap.errors import BootstrapError

DEFAULT_CASES = (
    "bootstrap-warm",
    "bootstrap-signed",
    "bootstrap-empty",
    "mmdebstrap",
    "debootstrap",
    "bootstrap-arm64",
    "mmdebstrap-arm64",
)
_TOOLS = {
    "mmdebstrap": ("mmdebstrap",),
    "debootstrap": ("debootstrap",),
    "mmdebstrap-arm64": ("mmdebstrap", "arch-test"),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--runs", type=int, help="timed runs of each build (default 3; 1 with --quick)")
    p.add_argument("--suites", help="comma-separated suites (default bookworm,trixie; trixie with --quick)")
    p.add_argument("--cases", help=f"comma-separated builds (default {','.join(DEFAULT_CASES)})")
    p.add_argument("--quick", action="store_true", help="smoke run: 1 run, trixie only, no debootstrap")
    p.add_argument("--json", type=Path, help="results file (default bench/results/<UTC timestamp>.json)")
    p.add_argument(
        "--mirror-dir", type=Path, default=DEFAULT_DIR, help=f"frozen mirror's files (default {DEFAULT_DIR})"
    )
    p.add_argument("--refresh-mirror", action="store_true", help="forget the frozen archive state (pool/ is kept)")
    p.add_argument("--port", type=int, default=0, help="loopback mirror port (default: any free one)")
    p.add_argument("--work-dir", type=Path, help="where the scratch directory goes (default: $TMPDIR)")
    p.add_argument("--keep", action="store_true", help="keep the scratch directory (logs, warm cache)")
    p.add_argument("--upstream", help="Debian mirror to freeze (default: the host's apt sources)")
    p.add_argument("--no-rpm", action="store_true", help="leave out the RPM comparison (bootstrap against dnf)")
    p.add_argument("--rpm-only", action="store_true", help="only the RPM comparison (no Debian mirror needed)")
    p.add_argument("--upstream-security", help="Debian security mirror to freeze (default: the host's apt sources)")
    args = p.parse_args(argv)
    args.runs = args.runs if args.runs is not None else 1 if args.quick else 3
    args.suites = [s for s in (args.suites or ("trixie" if args.quick else "bookworm,trixie")).split(",") if s]
    default_cases = [c for c in DEFAULT_CASES if not (args.quick and c in ("debootstrap", "mmdebstrap-arm64"))]
    args.cases = [c for c in args.cases.split(",") if c] if args.cases else default_cases
    unknown = [c for c in args.cases if c not in CASES]
    if unknown or args.runs < 1 or not args.suites:
        p.error(f"unknown case(s) {', '.join(unknown)}" if unknown else "need at least one run and one suite")
    if args.no_rpm and args.rpm_only:
        p.error("--no-rpm and --rpm-only exclude each other")
    if "bootstrap-warm" not in args.cases:
        args.cases.insert(0, "bootstrap-warm")  # its warm-up fills the cache and names the suites for the others
    args.cases.sort(key=list(CASES).index)
    return args


def ensure_tools(cases: list[str]) -> None:
    """Install mmdebstrap and debootstrap with apt-get when a case needs one that is missing."""
    wanted = {pkg for case, pkgs in _TOOLS.items() if case in cases for pkg in pkgs}
    missing = sorted(pkg for pkg in wanted if shutil.which(pkg) is None)
    if missing:
        say(f"installing {' '.join(missing)}")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", *missing], check=True, env=env)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("error: the benchmark builds images and needs root (make bench uses sudo)")
    found = None
    if not args.rpm_only:
        ensure_tools(args.cases)
        try:
            found = discover_mirrors(DISTROS[Distro.DEBIAN], args.upstream, args.upstream_security)
        except BootstrapError as exc:
            sys.exit(f"error: {exc.message}\nhint: {exc.hint}")
    started = datetime.datetime.now(datetime.UTC)
    out = args.json or REPO / "bench/results" / f"{started:%Y%m%dT%H%M%SZ}.json"
    results: dict[str, Any] = {
        "schema": 1,
        "started": started.isoformat(timespec="seconds"),
        "options": {"runs": args.runs, "suites": args.suites, "cases": args.cases, "quick": args.quick},
        "machine": machine.machine(),
        "versions": machine.versions(),
        "suites": [],
    }
    scratch = Path(tempfile.mkdtemp(prefix="bootstrap-bench-", dir=args.work_dir))
    try:
        if found is not None:
            _debian(args, found.main, found.security, scratch, results, out)
        if not args.no_rpm:
            results["rpm"] = rpm.run_scales(args.runs, scratch / "rpm", say)
            for comparison in results["rpm"].values():
                print(report.rpm_table(comparison) + "\n", flush=True)
            report.write_json(out, results)
    finally:
        if args.keep:
            say(f"kept {scratch}")
        else:
            remove(scratch)
    found_targets = [t for s in results["suites"] for t in report.targets(s)]
    found_targets += [t for c in results.get("rpm", {}).values() for t in report.rpm_targets(c)]
    results["targets"] = [t.as_dict() for t in found_targets]
    results["finished"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    report.write_json(out, results)
    print(report.targets_table(found_targets))
    print(f"\nresults: {out}")


def _debian(
    args: argparse.Namespace, main: str, security: str, scratch: Path, results: dict[str, Any], out: Path
) -> None:
    """The Debian suites against mmdebstrap and debootstrap, on the frozen mirror."""
    with FrozenMirror(args.mirror_dir, {"debian": main, "debian-security": security}, args.port) as mirror:
        if args.refresh_mirror:
            mirror.store.refresh()
        say(f"frozen mirror {mirror.url} from {args.mirror_dir}; scratch {scratch}")
        cases = [CASES[c] for c in args.cases]
        for suite in args.suites:
            done = runner.run_suite(suite, cases, mirror, args.runs, scratch / suite)
            results["suites"].append(done)
            print(report.suite_table(done) + "\n", flush=True)
            report.write_json(out, results)
        results["mirror"] = vars(mirror.store.snapshot())
