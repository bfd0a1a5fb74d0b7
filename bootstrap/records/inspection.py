"""`bootstrap inspect DIR`: digests, sizes, and the space each package takes in the image."""

import gzip
import json
import os
import stat
import tarfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

import zstandard

from bootstrap.errors import BootstrapError
from bootstrap.family.interface import PackageDatabase
from bootstrap.records import lock as lock_mod
from bootstrap.records import outputs

UNOWNED = "(no package)"


@dataclass(frozen=True)
class Inspection:
    directory: Path
    files: dict[str, int]
    digests: dict[str, str]
    package_sizes: dict[str, int]
    versions: dict[str, str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "directory": str(self.directory),
            "files": self.files,
            "digests": self.digests,
            "packages": [
                {"name": n, "version": self.versions.get(n), "size": s}
                for n, s in sorted(self.package_sizes.items(), key=lambda kv: (-kv[1], kv[0]))
            ],
        }


_NOT_OURS = "give the output directory of a bootstrap build (this one is damaged or was not written by it)"
MAX_DATABASE = 512 << 20
"""The most bytes of one package database file of a layer read (an image's is a few MB)."""
MAX_SUMMARY = 16 << 20


def _plain(path: Path) -> IO[bytes]:
    """`path` opened when it is a regular file: not through a link (a rootfs.tar.gz that names /etc/shadow),
    never waiting on a FIFO."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise BootstrapError(f"{path} cannot be read ({exc.strerror})", _NOT_OURS) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise BootstrapError(f"{path} is not a regular file", _NOT_OURS)
    return open(fd, "rb")


def _open_layer(path: Path) -> IO[bytes]:
    f = _plain(path)
    magic = f.read(4)
    f.seek(0)
    if magic[:2] == b"\x1f\x8b":
        return cast(IO[bytes], gzip.GzipFile(fileobj=f, mode="rb"))
    if magic == b"\x28\xb5\x2f\xfd":
        return zstandard.ZstdDecompressor().stream_reader(f, closefd=True)
    return f


def _canonical(path: str, links: dict[str, str]) -> str:
    """`path` with the symlinked directories on its way resolved inside the image (`/bin/bash` is
    `/usr/bin/bash` in a merged-/usr tree), the last component left alone."""
    parts = [p for p in path.split("/") if p]
    done: list[str] = []
    hops = 0
    while len(parts) > 1:
        head = parts.pop(0)
        current = "/".join([*done, head])
        target = links.get(current)
        if target is None or hops > 40:
            done.append(head)
            continue
        hops += 1
        base = [] if target.startswith("/") else done
        parts = [*[p for p in target.split("/") if p], *parts]
        done = list(base)
        while ".." in parts[:1] or "." in parts[:1]:
            if parts.pop(0) == ".." and done:
                done.pop()
    return "/" + "/".join([*done, *parts])


def package_sizes(layer: Path, databases: Sequence[PackageDatabase]) -> dict[str, int]:
    """Bytes of regular files per owning package (the file lists of the package databases inside the layer,
    followed through the image's directory symlinks), hard links once."""
    sizes: dict[str, int] = {}
    lists: dict[str, list[str]] = {}
    links: dict[str, str] = {}
    try:
        with _open_layer(layer) as raw, tarfile.open(fileobj=raw, mode="r|") as tar:
            for member in tar:
                if member.issym():
                    links[member.name] = member.linkname
                if member.isfile():
                    sizes["/" + member.name] = member.size
                    db = next((d for d in databases if d.owns(member.name)), None)
                    if db is not None and member.size > MAX_DATABASE:
                        raise BootstrapError(f"{layer}: {member.name} is larger than a package database", _NOT_OURS)
                    f = tar.extractfile(member) if db is not None else None
                    if db is not None and f is not None:
                        lists.update(db.files(member.name, f.read()))
    except (OSError, EOFError, tarfile.TarError, zlib.error, zstandard.ZstdError) as exc:
        raise BootstrapError(f"{layer} is not a valid layer ({type(exc).__name__}: {exc})"[:300], _NOT_OURS) from None
    owner: dict[str, str] = {}
    for pkg in sorted(lists):
        for path in lists[pkg]:
            owner.setdefault(_canonical(path, links), pkg)
    out: dict[str, int] = {}
    for path, size in sizes.items():
        pkg = owner.get(path, UNOWNED)
        out[pkg] = out.get(pkg, 0) + size
    return out


def inspect(directory: Path, databases: Sequence[PackageDatabase]) -> Inspection:
    """What an output directory holds (`databases`: the package families' databases to read ownership from)."""
    layers = sorted(directory.glob(outputs.ROOTFS.file + "*.tar*"))
    if not layers:
        raise BootstrapError(f"{directory} has no rootfs tarball", "give the output directory of a bootstrap build")
    layer = layers[0]
    files = {p.name: st.st_size for p in sorted(directory.iterdir()) if stat.S_ISREG((st := p.lstat()).st_mode)}
    digests: dict[str, str] = {}
    build = directory / outputs.SUMMARY.name()
    if build.is_file():
        with _plain(build) as f:
            data = f.read(MAX_SUMMARY + 1)
        try:
            summary = json.loads(data) if len(data) <= MAX_SUMMARY else None
        except (ValueError, RecursionError):
            summary = None
        image = summary.get("image") if isinstance(summary, dict) else None
        if not isinstance(image, dict):
            raise BootstrapError(f"{build} is not the summary of a build", _NOT_OURS)
        digests = {k: str(v) for k, v in image.items() if k.endswith("digest") or k == "diff_id"}
    versions: dict[str, str] = {}
    if (directory / outputs.LOCK.name()).is_file():
        versions = {p.name: p.version for p in lock_mod.read(directory).packages}
    return Inspection(directory, files, digests, package_sizes(layer, databases), versions)


def _mb(n: int) -> str:
    return f"{n / 1e6:8.2f} MB"


def render(ins: Inspection, top: int = 0) -> str:
    lines = [f"{ins.directory}"]
    lines += [f"  {name:<16} {_mb(size)}" for name, size in ins.files.items()]
    lines += [f"  {k:<16} {v}" for k, v in sorted(ins.digests.items())]
    total = sum(ins.package_sizes.values())
    lines.append(f"packages by size ({len(ins.package_sizes)} owners, {_mb(total).strip()} of files):")
    ranked = sorted(ins.package_sizes.items(), key=lambda kv: (-kv[1], kv[0]))
    for name, size in ranked[: top or None]:
        lines.append(f"  {_mb(size)}  {100 * size / max(total, 1):5.1f}%  {name} {ins.versions.get(name, '')}".rstrip())
    return "\n".join(lines) + "\n"


def render_diff(a: Inspection, b: Inspection) -> str:
    lines = [f"{a.directory} -> {b.directory}"]
    for name in sorted(set(a.versions) | set(b.versions)):
        va, vb = a.versions.get(name), b.versions.get(name)
        if va != vb:
            lines.append(f"  {name}: {va or '(absent)'} -> {vb or '(absent)'}")
    deltas = []
    for name in sorted(set(a.package_sizes) | set(b.package_sizes)):
        d = b.package_sizes.get(name, 0) - a.package_sizes.get(name, 0)
        if d:
            deltas.append((abs(d), name, d))
    for _, name, d in sorted(deltas, reverse=True):
        lines.append(f"  {d / 1e6:+9.3f} MB  {name}")
    for fname in sorted(set(a.files) | set(b.files)):
        d = b.files.get(fname, 0) - a.files.get(fname, 0)
        if d:
            lines.append(f"  {d / 1e6:+9.3f} MB  file {fname}")
    if len(lines) == 1:
        lines.append("  no differences in packages or sizes")
    return "\n".join(lines) + "\n"
