"""Bootstrap's hot paths alone: parsing the main Packages index cold and cached, resolving, and `check`.

The index figures are taken in this process through bootstrap's own functions, with the warm cache of the
suite's builds; `check` runs as a command against the output of a build, with nothing changed.
"""

import gc
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from bench import measure, tools
from bench.stats import Summary
from bootstrap.build import families, pipeline, recipe
from bootstrap.build.plan import Options, Plan, make_plan
from bootstrap.deb import index as index_mod
from bootstrap.deb.family import own_archive
from bootstrap.deb.index import PackagesFile
from bootstrap.deb.resolve import resolve

T = TypeVar("T")


def timed(fn: Callable[[], T], reps: int) -> tuple[Summary, T]:
    """Run `fn` `reps` times (collecting garbage before each) and summarize the wall times in seconds."""
    values: list[float] = []
    result: T | None = None
    for _ in range(max(1, reps)):
        gc.collect()
        start = time.perf_counter()
        result = fn()
        values.append(round(time.perf_counter() - start, 4))
    assert result is not None
    return Summary.of(values), result


def plan_for(ctx: tools.Context) -> Plan:
    opts = Options(
        suite=ctx.suite,
        mirror=ctx.main,
        security_mirror=ctx.security,
        cache_dir=ctx.warm_cache,
        check_valid_until=False,
    )
    return make_plan(recipe.load(tools.RECIPE), opts)


def index_figures(ctx: tools.Context, reps: int) -> dict[str, Any]:
    """Parse times of the suite's main Packages index, and of the resolve that follows."""
    plan = plan_for(ctx)
    archive = own_archive(pipeline.load_archive(plan))
    release = archive.releases[0]
    entry, plain = index_mod._choose(release, "main", plan.arch)
    raw = plan.cache.blob(entry.sha256).read_bytes()

    def decompress(data: bytes) -> bytes:  # what bootstrap's index.load hands to the parser
        return index_mod.inflated(data, entry, plain, entry.path)

    text = decompress(raw)
    parse, parsed = timed(lambda: PackagesFile.parse(text), reps)
    with_decompression, _ = timed(lambda: PackagesFile.parse(decompress(raw)), reps)
    cached, _ = timed(lambda: index_mod.load(plan.cache, release, "main", plan.arch), reps)
    step, _ = timed(lambda: pipeline.load_archive(plan), reps)
    resolves: list[float] = []
    selected = 0
    for _ in range(max(1, reps)):
        loaded = own_archive(pipeline.load_archive(plan))
        fresh = loaded.index
        gc.collect()
        start = time.perf_counter()
        selected = len(resolve(fresh, families.request_for(plan.recipe)).packages)
        resolves.append(round(time.perf_counter() - start, 4))
    return {
        "index": entry.path,
        "dist": release.dist,
        "compressed_bytes": entry.size,
        "text_bytes": len(text),
        "packages": len(parsed.starts),
        "parse_cold": parse.as_dict(),
        "parse_cold_with_decompression": with_decompression.as_dict(),
        "load_cached": cached.as_dict(),
        "indexes_step_cached": step.as_dict(),
        "resolve": Summary.of(resolves).as_dict(),
        "selected": selected,
    }


def check_figures(ctx: tools.Context, against: Path, log: Path, reps: int) -> dict[str, Any]:
    """`bootstrap check` against an unchanged build: wall time, and whether it said "nothing changed" (exit 0)."""
    argv = tools.bootstrap_cli(
        ctx, "check", tools.RECIPE, "--against", str(against), "--cache-dir", str(ctx.warm_cache)
    )
    samples = [measure.run([*argv, "-q"], log, measure.loopback_env(), tools.REPO) for _ in range(max(1, reps))]
    return {
        "wall": Summary.of([s.wall for s in samples]).as_dict(),
        "peak_rss_mb": max(s.peak_rss_mb for s in samples),
        "returncodes": [s.returncode for s in samples],
    }
