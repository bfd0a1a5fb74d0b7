"""One suite: every case once untimed (warming the mirror, the package cache and the page cache), then the
timed runs in turn, A B C D A B C D ..., then the in-process figures and `check`."""

import dataclasses
import os
import sys
from pathlib import Path
from typing import Any

from bench import measure, micro, tools
from bench.measure import Sample
from bench.mirror import FrozenMirror
from bench.stats import Summary, ratio
from bench.tools import Case, Context

OURS = ("bootstrap-warm", "bootstrap-empty", "bootstrap-arm64")
THEIRS = ("mmdebstrap", "debootstrap", "mmdebstrap-arm64")


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclasses.dataclass
class CaseRuns:
    case: Case
    command: list[str] = dataclasses.field(default_factory=list)
    samples: list[Sample] = dataclasses.field(default_factory=list)
    details: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    failure: str | None = None


def _once(case: Case, ctx: Context, work: Path) -> tuple[Sample, dict[str, Any] | None, Path]:
    """Run the case in `work` (its log beside it, in logs/); what it measured and left behind."""
    work.mkdir(parents=True)
    log = work.parent / "logs" / f"{work.name}.log"
    log.parent.mkdir(exist_ok=True)
    sample = measure.run(case.command(ctx, work), log, measure.loopback_env() | case.env(), tools.REPO)
    return sample, case.collect(work) if sample.returncode == 0 else None, log


def _warm_up(runs: list[CaseRuns], ctx: Context, scratch: Path) -> Context:
    """Run every case once, untimed; the first (bootstrap-warm) also names the suites mmdebstrap gets."""
    for r in runs:
        say(f"{ctx.suite}: warm-up {r.case.name}")
        work = scratch / f"warm-up-{r.case.name}"
        sample, details, log = _once(r.case, ctx, work)
        if details is None:
            r.failure = f"warm-up exited {sample.returncode}:\n{measure.tail(log)}"
            say(f"{ctx.suite}: {r.case.name} FAILED, left out: {r.failure}")
        elif r.case.name == "bootstrap-warm":
            ctx = dataclasses.replace(ctx, sources=tuple((s["mirror"], s["dist"]) for s in details["sources"]))
        if r.case.name != "bootstrap-warm":
            tools.remove(work)
        r.command = r.case.command(ctx, Path("WORK"))
    return ctx


def _timed(runs: list[CaseRuns], ctx: Context, count: int, scratch: Path) -> None:
    for i in range(count):
        for r in runs:
            if r.failure:
                continue
            work = scratch / f"{r.case.name}-{i}"
            sample, details, log = _once(r.case, ctx, work)
            tools.remove(work)
            os.sync()  # write back what this run left, so it does not slow down the next one
            say(f"{ctx.suite}: run {i + 1}/{count} {r.case.name}: {sample.wall:.2f} s, exit {sample.returncode}")
            if details is None:
                r.failure = f"run {i + 1} exited {sample.returncode}:\n{measure.tail(log)}"
                continue
            r.samples.append(sample)
            r.details.append(details)


def summarize(r: CaseRuns) -> dict[str, Any]:
    out: dict[str, Any] = {"command": r.command, "failure": r.failure, "samples": [s.as_dict() for s in r.samples]}
    if not r.samples:
        return out
    for key in ("wall", "cpu", "peak_rss_mb"):
        out[key] = Summary.of([getattr(s, key) for s in r.samples]).as_dict()
    last = r.details[-1]
    out.update({k: last.get(k) for k in ("output_bytes", "image_bytes", "uncompressed_bytes", "packages")})
    if r.case.ours:
        names = [s for s in tools.STEPS if any(s in d["steps"] for d in r.details)]
        names += sorted({k for d in r.details for k in d["steps"]} - set(names))
        steps = {n: Summary.of([d["steps"].get(n, 0.0) for d in r.details]).as_dict() for n in names}
        rest = [s.wall - sum(d["steps"].values()) for s, d in zip(r.samples, r.details, strict=True)]
        steps["rest"] = Summary.of([round(x, 3) for x in rest]).as_dict()
        out["steps"] = steps
    return out


def signing_cost(cases: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """What signing adds to a warm build: the median wall of the signed warm builds minus that of the unsigned
    ones (timed in the same rounds), in seconds; None without both."""
    signed, warm = cases.get("bootstrap-signed", {}), cases.get("bootstrap-warm", {})
    if "wall" not in signed or "wall" not in warm:
        return None
    added = round(signed["wall"]["median"] - warm["wall"]["median"], 3)
    return {"added_wall": added, "signed_wall": signed["wall"], "unsigned_wall": warm["wall"]}


def ratios(cases: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """ours/theirs of the medians (and of the output sizes), for every pair that has numbers."""
    rows = []
    for ours in OURS:
        for theirs in THEIRS:
            if tools.CASES[ours].arch != tools.CASES[theirs].arch:
                continue
            a, b = cases.get(ours, {}), cases.get(theirs, {})
            if "wall" not in a or "wall" not in b:
                continue
            row: dict[str, Any] = {"ours": ours, "theirs": theirs}
            for key in ("wall", "cpu", "peak_rss_mb"):
                row[key] = ratio(a[key]["median"], b[key]["median"])
            row["size"] = ratio(a.get("uncompressed_bytes"), b.get("uncompressed_bytes"))
            rows.append(row)
    return rows


def run_suite(suite: str, cases: list[Case], mirror: FrozenMirror, runs: int, scratch: Path) -> dict[str, Any]:
    """Warm up, time every case `runs` times in turn, and measure the hot paths; the suite's results as data."""
    scratch.mkdir(parents=True)
    ctx = Context(suite, mirror.url, scratch / "warm-cache")
    tools.make_signing_key(ctx)
    all_runs = [CaseRuns(c) for c in cases]
    ctx = _warm_up(all_runs, ctx, scratch)
    before = mirror.store.snapshot()
    _timed(all_runs, ctx, runs, scratch)
    fetched = mirror.store.snapshot().fetched - before.fetched
    if fetched:
        say(f"{suite}: WARNING: the mirror fetched {fetched} files from upstream during timed runs")
    result: dict[str, Any] = {
        "suite": suite,
        "runs": runs,
        "archive": [{"dist": dist} for _, dist in ctx.sources],
        "upstream_fetches_during_timed_runs": fetched,
        "cases": {r.case.name: summarize(r) for r in all_runs},
    }
    result["signing"] = signing_cost(result["cases"])
    result["ratios"] = ratios(result["cases"])
    built = scratch / "warm-up-bootstrap-warm/out"
    if (built / "build.json").is_file():
        say(f"{suite}: index parsing, resolve and check")
        result["archive"] = tools.archive_state(built)
        result["micro"] = micro.index_figures(ctx, runs)
        result["check"] = micro.check_figures(ctx, built, scratch / "logs/check.log", runs)
    return result
