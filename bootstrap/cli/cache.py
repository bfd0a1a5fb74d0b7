"""`bootstrap cache`: what the cache holds, and pruning it (see `bootstrap.host.prune`)."""

import json
from pathlib import Path

import click

from bootstrap.cli.common import verbosity
from bootstrap.host import prune
from bootstrap.host.cache import Cache, default_dir

_DIR = click.option(
    "--cache-dir", type=click.Path(path_type=Path, readable=False), help="Cache directory (default: XDG cache)."
)


def _cache(cache_dir: Path | None) -> Cache:
    return Cache(cache_dir or default_dir())


@click.group()
def cache() -> None:
    """Show what the cache holds, and prune it."""


@cache.command()
@_DIR
@click.option("--json", "as_json", is_flag=True, help="Print the areas as JSON (bytes).")
@verbosity
def info(cache_dir: Path | None, as_json: bool) -> None:
    """Files and size of each area of the cache; the cap applied after each build."""
    c = _cache(cache_dir)
    areas = prune.usage(c)
    limit = prune.cap()
    if as_json:
        data = {"cache": str(c.root), "max_bytes": limit, "areas": [a.as_dict() for a in areas]}
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(f"cache {c.root} (pruned after each build to {prune.show(limit) if limit else 'no cap'})")
    for a in areas:
        click.echo(f"{a.name:<9} {a.files:>7} files {prune.show(a.size):>11}  {prune.DESCRIPTIONS[a.name]}")
    pruned = sum(a.size for a in areas if a.pruned)
    click.echo(
        f"{'total':<9} {sum(a.files for a in areas):>7} files {prune.show(sum(a.size for a in areas)):>11}"
        f"  ({prune.show(pruned)} prunable)"
    )


@cache.command(name="prune")
@_DIR
@click.option(
    "--max-size",
    metavar="SIZE",
    help="Remove the least recently used entries until the cache holds at most SIZE (e.g. 2G, 0 for all; "
    "default: the cap, $BOOTSTRAP_CACHE_MAX or 5G).",
)
@verbosity
def prune_cmd(cache_dir: Path | None, max_size: str | None) -> None:
    """Remove the least recently used packages, expanded packages, parsed indexes and gzip members down to a
    size. Safe while builds run: what a running build uses stays."""
    limit = prune.parse_size(max_size, "--max-size") if max_size else prune.cap()
    if limit is None:
        raise click.UsageError("the cap is off: give --max-size SIZE")
    done = prune.prune(_cache(cache_dir), limit)
    busy = f"; {prune.show(done.busy)} kept, in use by running builds" if done.busy else ""
    click.echo(f"removed {done.removed} entries ({prune.show(done.freed)}); {prune.show(done.left)} left{busy}")
