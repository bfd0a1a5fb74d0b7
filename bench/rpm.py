"""The RPM comparison: a warm `bootstrap build` of the distribution in miniature (tests/fixtures/rpmdistro.py: the
host's shell, coreutils and rpm packaged with rpmbuild, signed by a throwaway key, metadata by createrepo_c,
`repomd.xml` signed), served on 127.0.0.1 as AlmaLinux 9's BaseOS, against `dnf --installroot` installing the same
request from the same repository, its installroot on the scratch directory's disk and again on a tmpfs (bootstrap's
root builds unpack into a tmpfs of their own). Both run the scriptlets; dnf checks every package's signature
again, bootstrap hashes every package against the signed metadata and takes the signature verdict an earlier build
recorded for those bytes and keys (`bootstrap/rpm/verdicts.py`). Both have a warm cache (a first, untimed run
filled bootstrap's; `dnf makecache` and an untimed install filled dnf's, kept). The timed runs alternate, each in
a fresh directory.

Two scales: the miniature alone (8 packages, where both tools' fixed costs decide), and the miniature with
FILLERS packages more, each carrying a share of the host's libraries and message catalogues, about BASE_BYTES in
all (the size and count of a distribution's base image, where the per-package and per-byte costs decide)."""

import contextlib
import functools
import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import measure
from bench.stats import Summary, ratio
from bench.tools import REPO, remove, tree_bytes

RELEASE_PATH = "9/BaseOS/x86_64/os"
"""Where the repository is under the served tree: AlmaLinux 9's BaseOS (bootstrap/rpm/distros.py)."""
TOOLS = ("rpmbuild", "rpmsign", "createrepo_c", "dnf", "gpg")
CASES = ("bootstrap-rpm-warm", "dnf-installroot", "dnf-installroot-tmpfs")
"""bootstrap as it runs by default (a root build unpacks into a tmpfs of its own); dnf with its installroot where
the user puts it, on the scratch directory's disk, and again on a tmpfs (the file systems alike: tool against
tool)."""
ON_TMPFS = "dnf-installroot-tmpfs"
SCALES = {"miniature": 0, "base": 120}
"""How many filler packages each scale adds to the miniature."""
BASE_BYTES = 150 << 20
"""The filler packages' files, in all: about an AlmaLinux or Rocky Linux base image's tree."""
FILLER_FILE = 8 << 20
"""No filler takes a host file larger than this (a base image's files are small)."""


@dataclass(frozen=True)
class RpmContext:
    """What both commands need: the served tree, bootstrap's recipe and cache, dnf's configuration and cache."""

    mirror: str
    """The tree's base URL (the mirror bootstrap is given); the repository is at RELEASE_PATH under it."""
    recipe: Path
    cache: Path
    dnf_conf: Path
    dnf_cache: Path
    request: tuple[str, ...]


def bootstrap_command(ctx: RpmContext, out: Path) -> list[str]:
    return [
        sys.executable, "-m", "bootstrap", "build", str(ctx.recipe), "--arch", "amd64",
        "--mirror", ctx.mirror, "--cache-dir", str(ctx.cache), "-o", str(out), "-q",
    ]  # fmt: skip


def dnf_command(ctx: RpmContext, root: Path, *action: str) -> list[str]:
    """dnf on the fixture repository alone, into `root`, with the settings of the official images' builds."""
    return [
        "dnf", "-y", "-q", "--config", str(ctx.dnf_conf), "--installroot", str(root), "--releasever", "9",
        "--setopt=install_weak_deps=False", "--setopt=tsflags=nodocs", "--setopt=keepcache=True",
        f"--setopt=cachedir={ctx.dnf_cache}", "--disableplugin=*",
        *(action or ("install", *ctx.request)),
    ]  # fmt: skip


def write_inputs(
    directory: Path, mirror: str, key_file: Path, fingerprint: str, request: tuple[str, ...]
) -> RpmContext:
    """The recipe bootstrap builds and the dnf configuration dnf reads, both naming the same repository, key and
    request."""
    directory.mkdir(parents=True, exist_ok=True)
    include = ", ".join(f'"{n}"' for n in request)
    recipe = directory / "fixture.toml"
    recipe.write_text(
        f'distribution = "almalinux"\nsuite = "9"\n\n[archive]\nkeyring = "{key_file}"\nsigners = ["{fingerprint}"]\n'
        f'\n[packages]\ninclude = [{include}]\n\n[rpm]\nrepos = ["baseos"]\nnodocs = true\nweak-deps = false\n'
    )
    conf = directory / "dnf.conf"
    conf.write_text(
        "[main]\nreposdir=/nonexistent\nmetadata_expire=-1\n\n[fixture]\nname=fixture\n"
        f"baseurl={mirror}/{RELEASE_PATH}\ngpgcheck=1\nrepo_gpgcheck=1\ngpgkey=file://{key_file}\n"
    )
    return RpmContext(mirror, recipe, directory / "bootstrap-cache", conf, directory / "dnf-cache", request)


def fillers(count: int, budget: int = BASE_BYTES) -> list[Any]:
    """`count` packages sharing out the host's libraries and message catalogues (real files: real compression
    ratios) up to `budget` bytes, each under /usr/share/NAME, every fourth with a %post."""
    from tests.fixtures.rpmrepo import Spec

    if not count:
        return []
    groups: list[list[Path]] = [[] for _ in range(count)]
    total = 0
    for i, (path, size) in enumerate(f for top in ("/usr/lib", "/usr/share/locale") for f in _regular_files(top)):
        if size <= FILLER_FILE and total + size <= budget:
            groups[i % count].append(path)
            total += size
    specs = []
    for k, group in enumerate(groups):
        name = f"filler{k:03d}"
        home = f"/usr/share/{name}"
        lines = [f"mkdir -p $RPM_BUILD_ROOT{home}"]
        lines += [f"cp '{f}' $RPM_BUILD_ROOT{home}/{n}-{f.name}" for n, f in enumerate(group)]
        post = f": {name} configured" if k % 4 == 0 else ""
        install = "\n".join(lines)
        specs.append(Spec(name, arch="x86_64", requires=["glibc"], install=install, post=post, file_lines=[home]))
    return specs


@functools.cache
def _regular_files(top: str) -> tuple[tuple[Path, int], ...]:
    """Every regular file below `top` (symlinks neither taken nor followed) with its size, in the order of their
    paths' parts (as sorted Path objects), each file stat'ed once (and the walk made once a process)."""
    found = []
    for directory, _, names in os.walk(top):
        for name in names:
            full = os.path.join(directory, name)
            st = os.lstat(full)
            if stat.S_ISREG(st.st_mode):
                found.append((full.split("/"), full, st.st_size))
    found.sort(key=lambda f: f[0])
    return tuple((Path(full), size) for _, full, size in found)


@contextlib.contextmanager
def fixture(scratch: Path, filler_count: int = 0) -> Iterator[RpmContext]:
    """The miniature (with `filler_count` filler packages) built, signed and served on 127.0.0.1 for as long as
    the context lasts."""
    from tests.fixtures import rpmdistro
    from tests.fixtures.gpg import GpgKey
    from tests.fixtures.rpmrepo import RpmRepo
    from tests.fixtures.server import Server

    extra = fillers(filler_count)
    with GpgKey.generate("Bench Fixture <bench@example.invalid>") as key:
        repo = RpmRepo(scratch / "tree" / RELEASE_PATH, key)
        repo.build([*rpmdistro.specs(), *extra], payload="w19.zstdio")
        repo.publish()
        key_file = key.export(scratch / "fixture-key.asc", armor=True)
        request = (*rpmdistro.REQUEST, *(s.name for s in extra))
        with Server(scratch / "tree") as server:
            yield write_inputs(scratch, server.url, key_file, key.fingerprint, request)


def installed(root: Path) -> int:
    """How many packages the rpm database of `root` holds (the host's rpm reading it where dnf wrote it), keys
    aside."""
    proc = subprocess.run(["rpm", "--root", str(root), "-qa", "--qf", "%{NAME}\\n"], capture_output=True, text=True)
    return sum(1 for name in proc.stdout.split() if name != "gpg-pubkey")


def _collect(case: str, work: Path) -> dict[str, Any]:
    if case.startswith("dnf-installroot"):
        return {"uncompressed_bytes": tree_bytes(work / "root"), "packages": installed(work / "root")}
    info = json.loads((work / "out" / "build.json").read_text())
    return {
        "uncompressed_bytes": info["image"].get("tar_size"),
        "packages": info["platforms"][0]["packages"],
        "steps": info.get("timings", {}),
    }


def _command(case: str, ctx: RpmContext, work: Path) -> list[str]:
    return bootstrap_command(ctx, work / "out") if case == "bootstrap-rpm-warm" else dnf_command(ctx, work / "root")


@contextlib.contextmanager
def _tmpfs(where: Path) -> Iterator[Path]:
    """A tmpfs mounted at `where` while the context lasts (the tmpfs case's installroots)."""
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4g,mode=0755", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=False)


def _once(case: str, ctx: RpmContext, work: Path, log: Path) -> tuple[measure.Sample, dict[str, Any] | None]:
    work.mkdir(parents=True)
    sample = measure.run(_command(case, ctx, work), log, measure.loopback_env(), REPO)
    return sample, _collect(case, work) if sample.returncode == 0 else None


def compare(ctx: RpmContext, runs: int, scratch: Path, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Warm the caches, then time the cases in turn `runs` times; their summaries and bootstrap's ratio of medians
    to each dnf case."""
    logs = scratch / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with _tmpfs(scratch / "tmpfs") as memory:
        return _compare(ctx, runs, scratch, logs, memory, say)


def _compare(
    ctx: RpmContext, runs: int, scratch: Path, logs: Path, memory: Path, say: Callable[[str], None]
) -> dict[str, Any]:
    def home(case: str) -> Path:
        return memory if case == ON_TMPFS else scratch

    cases: dict[str, dict[str, Any]] = {c: {"command": _command(c, ctx, Path("WORK")), "samples": []} for c in CASES}
    makecache = dnf_command(ctx, scratch / "makecache-root", "makecache")
    measure.run(makecache, logs / "dnf-makecache.log", measure.loopback_env(), REPO)
    for case in CASES:
        say(f"rpm: warm-up {case}")
        sample, details = _once(case, ctx, home(case) / f"warm-up-{case}", logs / f"warm-up-{case}.log")
        remove(home(case) / f"warm-up-{case}")
        os.sync()
        if details is None:
            cases[case]["failure"] = (
                f"warm-up exited {sample.returncode}:\n{measure.tail(logs / f'warm-up-{case}.log')}"
            )
    details_of: dict[str, list[dict[str, Any]]] = {c: [] for c in CASES}
    for i in range(runs):
        for case in CASES:
            if cases[case].get("failure"):
                continue
            work, log = home(case) / f"{case}-{i}", logs / f"{case}-{i}.log"
            sample, details = _once(case, ctx, work, log)
            remove(work)
            os.sync()  # the run's writes reach the disk now, untimed, not during the next case's run
            say(f"rpm: run {i + 1}/{runs} {case}: {sample.wall:.2f} s, exit {sample.returncode}")
            if details is None:
                cases[case]["failure"] = f"run {i + 1} exited {sample.returncode}:\n{measure.tail(log)}"
                continue
            cases[case]["samples"].append(sample.as_dict())
            details_of[case].append(details)
    for case, c in cases.items():
        if c["samples"]:
            for key in ("wall", "cpu", "peak_rss_mb"):
                c[key] = Summary.of([s[key] for s in c["samples"]]).as_dict()
            c.update({k: v for k, v in details_of[case][-1].items() if k != "steps"})
            steps = [d["steps"] for d in details_of[case] if "steps" in d]
            if steps:
                c["steps"] = {n: Summary.of([s.get(n, 0.0) for s in steps]).as_dict() for n in steps[-1]}
    ours = cases["bootstrap-rpm-warm"]

    def against(theirs: dict[str, Any]) -> float | None:
        return ratio(ours["wall"]["median"], theirs["wall"]["median"]) if "wall" in ours and "wall" in theirs else None

    return {
        "runs": runs,
        "request": list(ctx.request),
        "cases": cases,
        "ratio_wall": against(cases["dnf-installroot"]),
        "ratio_wall_tmpfs": against(cases[ON_TMPFS]),
    }


def run_scales(runs: int, scratch: Path, say: Callable[[str], None] = print) -> dict[str, dict[str, Any]]:
    """`run` at each scale: scale name -> its comparison."""
    out = {}
    for scale, count in SCALES.items():
        say(f"rpm: building the {scale} fixture repository")
        out[scale] = {**run(runs, scratch / scale, say, count), "scale": scale}
    return out


def run(runs: int, scratch: Path, say: Callable[[str], None] = print, filler_count: int = 0) -> dict[str, Any]:
    """Build the fixture (with `filler_count` fillers) in `scratch` and compare; a missing tool is reported as the
    comparison's failure."""
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        return {"runs": runs, "cases": {}, "ratio_wall": None, "failure": f"missing {', '.join(missing)}"}
    scratch.mkdir(parents=True, exist_ok=True)
    # bootstrap's bytecode, as an installed bootstrap has it (PYTHONDONTWRITEBYTECODE would leave every run
    # compiling its modules again)
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(REPO / "bootstrap")], check=True, stdout=subprocess.DEVNULL
    )
    with fixture(scratch, filler_count) as ctx:
        return compare(ctx, runs, scratch, say)
