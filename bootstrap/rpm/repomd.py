"""repomd.xml: a repository's index of its metadata files, each with its checksum and size."""

import posixpath
import urllib.parse
from dataclasses import dataclass

from bootstrap.errors import ChecksumError
from bootstrap.numbers import is_decimal
from bootstrap.rpm import xmlstream


@dataclass(frozen=True)
class DataFile:
    """One metadata file (primary, filelists, group...) as repomd.xml vouches for it."""

    type: str
    location: str
    sha256: str
    """Empty when repomd.xml gives another kind of checksum only (then the file is not used)."""
    size: int | None
    open_sha256: str | None
    """The sha256 of its uncompressed content, when repomd.xml gives one."""
    open_size: int | None
    timestamp: int


@dataclass(frozen=True)
class RepoMd:
    revision: str
    data: dict[str, DataFile]

    @property
    def stamp(self) -> int:
        """The repository state's rank for the rollback check: the revision when it is a number (createrepo_c and
        the distributions write a time), else the newest timestamp of its files."""
        if is_decimal(self.revision):
            return int(self.revision)
        return max((d.timestamp for d in self.data.values()), default=0)


def safe_location(href: str, what: str) -> str:
    """A location relative to the repository's base URL, that stays under it."""
    parts = urllib.parse.urlsplit(href)
    norm = posixpath.normpath(parts.path) if parts.path else ""
    if parts.scheme or parts.netloc or not norm or norm.startswith(("/", "..")) or parts.query or parts.fragment:
        raise ChecksumError(f"{what}: location {href!r} leaves the repository", "the repository's metadata is hostile")
    return norm


def _number(text: str, what: str) -> int:
    if not is_decimal(text.strip()):
        raise ChecksumError(f"{what}: {text!r} is not a number", "the repository's repomd.xml is malformed")
    return int(text)


def parse(data: bytes, what: str) -> RepoMd:
    files: dict[str, DataFile] = {}
    revision = ""
    row: dict[str, str] = {}
    kind = ""

    def start(name: str, attrs: dict[str, str]) -> None:
        nonlocal kind
        if name == "data":
            row.clear()
            kind = attrs.get("type", "")
        elif name in ("checksum", "open-checksum"):
            row[f"{name}-type"] = attrs.get("type", "")
        elif name == "location":
            row["location"] = attrs.get("href", "")

    def end(name: str, text: str) -> None:
        nonlocal revision, kind
        if name == "revision":
            revision = text.strip()
        elif name == "data" and kind:
            files[kind] = _data_file(kind, dict(row), f"{what} ({kind})")
            kind = ""
        elif kind and name in ("checksum", "open-checksum", "size", "open-size", "timestamp"):
            row[name] = text.strip()

    xmlstream.parse([data], start, end, what)
    return RepoMd(revision, files)


def _data_file(kind: str, row: dict[str, str], what: str) -> DataFile:
    open_sum = row.get("open-checksum") if row.get("open-checksum-type") == "sha256" else None
    return DataFile(
        type=kind,
        location=safe_location(row.get("location", ""), what),
        sha256=row.get("checksum", "").lower() if row.get("checksum-type") == "sha256" else "",
        size=_number(row["size"], what) if "size" in row else None,
        open_sha256=open_sum.lower() if open_sum else None,
        open_size=_number(row["open-size"], what) if "open-size" in row else None,
        timestamp=_number(row.get("timestamp", "0"), what),
    )
