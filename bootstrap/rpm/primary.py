"""primary.xml and filelists.xml, read as a stream into `Package` records."""

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from bootstrap.errors import ChecksumError
from bootstrap.rpm import xmlstream
from bootstrap.rpm.packages import RELATIONS, Dep, Package

_TEXT = {"name", "arch", "checksum", "sourcerpm", "license", "vendor", "packager"}


@dataclass
class _Building:
    """The fields of the package being read."""

    text: dict[str, str] = field(default_factory=dict)
    attrs: dict[str, dict[str, str]] = field(default_factory=dict)
    relations: dict[str, list[Dep]] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    relation: str = ""


def _int(value: str, what: str) -> int:
    try:
        return int(value or "0")
    except ValueError:
        raise ChecksumError(f"{what}: {value!r} is not a number", "the repository's metadata is corrupt") from None


def _package(b: _Building, what: str) -> Package:
    version = b.attrs.get("version", {})
    sums = b.attrs.get("checksum", {})
    if sums.get("type") != "sha256":
        raise ChecksumError(
            f"{what}: package {b.text.get('name', '?')} has a {sums.get('type', 'missing')} checksum, not sha256",
            "the repository is too old for a verified build",
        )
    return Package(
        name=b.text.get("name", ""),
        epoch=_int(version.get("epoch", "0"), what),
        version=version.get("ver", ""),
        release=version.get("rel", ""),
        arch=b.text.get("arch", ""),
        location=b.attrs.get("location", {}).get("href", ""),
        sha256=b.text.get("checksum", "").lower(),
        size=_int(b.attrs.get("size", {}).get("package", "0"), what),
        files=tuple(b.files),
        sourcerpm=b.text.get("sourcerpm", ""),
        license=b.text.get("license", ""),
        vendor=b.text.get("vendor", ""),
        packager=b.text.get("packager", ""),
        **{r: tuple(b.relations.get(r, ())) for r in RELATIONS},
    )


def _dep(attrs: dict[str, str]) -> Dep:
    return Dep(
        attrs.get("name", ""),
        attrs.get("flags", ""),
        attrs.get("epoch", ""),
        attrs.get("ver", ""),
        attrs.get("rel", ""),
        attrs.get("pre", "0") == "1",
    )


def read_primary(chunks: Iterable[bytes], what: str) -> list[Package]:
    """Every package of a primary.xml (its `<file>` entries are the few primary lists)."""
    out: list[Package] = []
    b = _Building()
    depth = {"format": False}

    def start(name: str, attrs: dict[str, str]) -> None:
        nonlocal b
        if name == "package":
            b = _Building()
        elif name in RELATIONS and depth["format"]:
            b.relation = name
            b.relations.setdefault(name, [])
        elif name == "entry" and b.relation:
            b.relations[b.relation].append(_dep(attrs))
        elif name == "format":
            depth["format"] = True
        else:
            b.attrs[name] = attrs

    def end(name: str, text: str) -> None:
        if name == "package":
            out.append(_package(b, what))
        elif name in RELATIONS:
            b.relation = ""
        elif name == "format":
            depth["format"] = False
        elif name == "file":
            b.files.append(text)
        elif name in _TEXT:
            b.text[name] = text

    xmlstream.parse(chunks, start, end, what)
    return out


def read_filelists(chunks: Iterable[bytes], what: str) -> dict[str, list[str]]:
    """The files of each package of a filelists.xml, by package id (its sha256)."""
    out: dict[str, list[str]] = {}
    current: list[str] = []

    def start(name: str, attrs: dict[str, str]) -> None:
        nonlocal current
        if name == "package":
            current = out.setdefault(attrs.get("pkgid", "").lower(), [])

    def end(name: str, text: str) -> None:
        if name == "file":
            current.append(text)

    xmlstream.parse(chunks, start, end, what)
    return out


def with_files(packages: list[Package], files: dict[str, list[str]]) -> list[Package]:
    """The packages with their whole file lists (filelists.xml lists every file; primary only some)."""
    return [replace(p, files=tuple(files[p.sha256])) if p.sha256 in files else p for p in packages]
