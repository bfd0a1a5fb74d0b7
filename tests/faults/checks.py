"""What every fault case checks after the build: the cache holds nothing that fails its own verification,
the previous outputs are intact, and no mount, process, scratch directory or partial file is left."""

from __future__ import annotations

import hashlib
import os
import re
import zlib
from collections.abc import Sequence
from pathlib import Path

from bootstrap.deb.index import BLOCK
from bootstrap.deb.release import _parse_date
from bootstrap.errors import BootstrapError
from bootstrap.host.cache import read_derived, read_state, sha256_file
from bootstrap.host.openpgp import verify_clearsigned
from bootstrap.image.compress import block_key
from tests.fixtures.leftovers import partial_files, temp_files

_HEX64 = re.compile(r"[0-9a-f]{64}")


def bad_cache_entries(root: Path, keyrings: Sequence[Path]) -> list[str]:
    """Every entry of the cache that a later build would read and that fails its own check, and every
    leftover of an unfinished write. Empty for a sound cache."""
    if not root.exists():
        return []
    bad: list[str] = []
    for blob in sorted((root / "sha256").glob("*")):
        if not _HEX64.fullmatch(blob.name) or sha256_file(blob) != blob.name:
            bad.append(f"blob {blob.name} does not hash to its name")
    for offsets in sorted((root / "parsed").glob("*.offsets")):
        source = offsets.name.split(".", 1)[0]
        sections = read_derived(offsets, source)
        text_path = offsets.with_name(offsets.name.removesuffix(".offsets") + ".text")
        if sections is None:
            bad.append(f"parsed index {offsets.name} does not prove itself")
        elif not text_path.is_file() or not _blocks_match(text_path.read_bytes(), sections[8]):
            bad.append(f"parsed index text {text_path.name} does not match its block hashes")
    for expanded in sorted((root / "expanded").glob("*.v1")):
        if read_derived(expanded, expanded.name.split(".", 1)[0]) is None:
            bad.append(f"expanded package {expanded.name} does not prove itself")
    for member in sorted((root / "gzip").glob("*.gz*")):
        source = member.name.split(".", 1)[0]
        sections = read_derived(member, source)
        if sections is None or len(sections) != 1:
            bad.append(f"gzip member {member.name} does not prove itself")
        elif block_key(zlib.decompress(sections[0], 31)) != source:
            bad.append(f"gzip member {member.name} does not inflate to the block it is bound to")
    for slot in sorted((root / "releases").glob("*/InRelease")):
        bad += _release_problems(slot, keyrings)
    bad += [f"temporary file left: {p.relative_to(root)}" for p in temp_files(root)]
    bad += [f"partial file left: {p.relative_to(root)}" for p in partial_files(root)]
    return bad


def _blocks_match(text: bytes, digests: bytes) -> bool:
    blocks = [text[i : i + BLOCK] for i in range(0, len(text), BLOCK)]
    return len(digests) == 32 * len(blocks) and all(
        hashlib.sha256(b).digest() == digests[32 * i : 32 * i + 32] for i, b in enumerate(blocks)
    )


def _release_problems(slot: Path, keyrings: Sequence[Path]) -> list[str]:
    try:
        meta = read_state(slot.parent / "state")
        text = verify_clearsigned(slot.read_bytes(), tuple(keyrings), str(slot)).decode()
        date = next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Date:"))
    except (OSError, ValueError, StopIteration, BootstrapError) as exc:
        return [f"cached release {slot.parent.name}: {exc}"]
    if _parse_date(date, str(slot)) != meta.get("date"):
        return [f"cached release {slot.parent.name}: its Date is not the one recorded"]
    return []


def snapshot(directory: Path) -> dict[str, str]:
    """{relative path: sha256} of every file below `directory` (empty when it does not exist)."""
    if not directory.exists():
        return {}
    return {str(p.relative_to(directory)): sha256_file(p) for p in sorted(directory.rglob("*")) if p.is_file()}


def staging_left(out: Path) -> list[str]:
    """Staging directories (and their locks) of the output left beside it."""
    if not out.parent.exists():
        return []
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below `path` in this (the test's) mount namespace."""
    text = Path("/proc/self/mountinfo").read_text()
    return [line.split()[4] for line in text.splitlines() if line.split()[4].startswith(str(path))]


def processes_mentioning(marker: str) -> list[int]:
    """Processes (other than this one) whose command line, environment or working directory names `marker`."""
    found = []
    want = marker.encode()
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            base = Path("/proc") / pid
            texts = [(base / "cmdline").read_bytes(), (base / "environ").read_bytes()]
            texts.append(os.readlink(base / "cwd").encode())
        except OSError:
            continue
        if any(want in t for t in texts):
            found.append(int(pid))
    return found
