"""Package sets resolved before, kept in the cache: libsolv's answer to a request depends only on what it is given,
so a build of the same repository states, request and settings takes the set an earlier build resolved rather
than loading every listing into a pool and solving again (at AlmaLinux's scale, AppStream's six thousand packages
and million paths cost more than the rest of a warm build's reading of its metadata).

A kept set is a derived file (`bootstrap.host.cache`) of the cache's `parsed` area, proven by the user's key and
named by a key of everything the answer depends on: each repository's id, URL and verified repomd.xml (its sha256,
which names every metadata file's sha256), in order; the request, the architecture, the exclusions; the libsolv
build and bootstrap's own code. Only a set that resolved is kept; `verify` takes none."""

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from bootstrap.host.cache import code_identity, discard, read_derived, write_derived
from bootstrap.log import log
from bootstrap.rpm.listing import is_record, libsolv_build, record_row
from bootstrap.rpm.packages import Package
from bootstrap.rpm.resolve import Request

FORMAT = "bootstrap rpm resolved 1"
AREA = "parsed"

Chosen = tuple[Package, str, str]
"""A package of the set: its record, its repository's URL and id."""


def key(states: Sequence[tuple[str, str, str]], request: Request, basearch: str, exclude: Sequence[str]) -> str:
    """The key of the set resolved from `states` (each repository's id, URL and repomd.xml sha256, in order) for
    `request` on `basearch`, the packages `exclude` names left out."""
    text = json.dumps(
        [FORMAT, libsolv_build(), code_identity(), [list(s) for s in states],
         [list(request.names), list(request.groups), request.weak], basearch, list(exclude)],
        separators=(",", ":"),
    )  # fmt: skip
    return hashlib.sha256(text.encode()).hexdigest()


def _path(area: Path, name: str) -> Path:
    return area / f"{name}.resolved"


def kept(area: Path, name: str) -> list[Chosen] | None:
    """The set kept under `name`, or None (none kept, not proven by the user's key, or not a set)."""
    path = _path(area, name)
    sections = read_derived(path, name)
    if sections is None:
        return None
    try:
        rows = json.loads(sections[0]) if len(sections) == 1 else None
    except ValueError:
        rows = None
    if not isinstance(rows, list) or not rows or not all(_is_chosen(r) for r in rows):
        discard(path, "is not a resolved package set")
        return None
    return [(Package(*r[0]), r[1], r[2]) for r in rows]


def _is_chosen(row: object) -> bool:
    return (
        isinstance(row, list)
        and len(row) == 3
        and is_record(row[0])
        and isinstance(row[1], str)
        and isinstance(row[2], str)
    )


def keep(area: Path, name: str, chosen: Sequence[Chosen]) -> None:
    """Keep the set resolved under `name` (a failure to write costs the next build its speed only)."""
    rows = [[record_row(record), url, rid] for record, url, rid in chosen]
    try:
        write_derived(_path(area, name), name, [json.dumps(rows, separators=(",", ":")).encode()])
    except OSError as exc:
        log.debug("cache: cannot keep the resolved set %s: %s", name, exc)
