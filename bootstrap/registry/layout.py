"""An OCI image layout to push from: a directory, or the uncompressed tar `bootstrap build` writes.

Blobs are streamed straight from the tar (it is uncompressed: each member is a byte range), never extracted.
"""

import json
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

from bootstrap.image.oci import MEDIA_INDEX, canonical_json
from bootstrap.records import outputs
from bootstrap.registry.errors import RegistryError
from bootstrap.registry.limits import BODY_LIMIT, read_plain, size_text
from bootstrap.registry.manifests import INDEX_TYPES, Manifest, checked, mapping, media_type_of, sha256

BLOCK = 1 << 20
LAYOUT_ONLY = ("org.opencontainers.image.ref.name", "io.containerd.image.name")
"""index.json annotations that name the image inside the layout, not in a registry."""


class Slice:
    """A byte range of a file as a request body: sized, readable, rewindable, reporting progress."""

    def __init__(self, path: Path, offset: int, length: int, progress: Callable[[int], None] | None = None) -> None:
        self.path, self.offset, self.length, self.progress = path, offset, length, progress
        self._file: BinaryIO | None = None
        self._left = length

    def rewind(self) -> "Slice":
        if self._file is None:
            self._file = open(self.path, "rb")  # noqa: SIM115 - closed by close()
        self._file.seek(self.offset)
        self._left = self.length
        return self

    def read(self, n: int = -1) -> bytes:
        if self._file is None:
            self.rewind()
        assert self._file is not None
        n = self._left if n < 0 else min(n, self._left)
        data = self._file.read(n)
        self._left -= len(data)
        if self.progress and data:
            self.progress(len(data))
        return data

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read(BLOCK):
            yield chunk

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> "Slice":
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


@dataclass(frozen=True)
class BlobSource:
    digest: str
    size: int
    media_type: str
    path: Path
    offset: int

    def open(self, start: int = 0, length: int | None = None, progress: Callable[[int], None] | None = None) -> Slice:
        length = self.size - start if length is None else length
        return Slice(self.path, self.offset + start, length, progress)


@dataclass(frozen=True)
class Top:
    """What a push puts: the image manifests, and the index over them when there is more than one."""

    images: list[Manifest]
    index: Manifest | None


class Layout:
    def __init__(self, path: Path) -> None:
        image = outputs.IMAGE.name()
        if path.is_dir() and not (path / "index.json").exists() and (path / image).is_file():
            path = path / image  # a `bootstrap build` output directory
        self.path = path
        self._members: dict[str, tuple[int, int]] = {}
        if path.is_dir():
            self._dir = True
        elif path.is_file():
            self._dir = False
            try:
                with tarfile.open(path, "r:") as tar:
                    for m in tar:
                        if m.isreg():
                            self._members[m.name.removeprefix("./")] = (m.offset_data, m.size)
            except tarfile.TarError as exc:
                raise RegistryError(f"{path} is not an uncompressed tar ({exc})", _HINT) from exc
        else:
            raise RegistryError(f"{path}: no such file or directory", _HINT)
        if not ((path / "index.json").is_file() if self._dir else "index.json" in self._members):
            raise RegistryError(f"{path} is not an OCI image layout (no index.json)", _HINT)
        self.index_data = self._read("index.json")
        try:
            self.index: dict[str, Any] = json.loads(self.index_data)
            self.entries: list[dict[str, Any]] = list(self.index["manifests"])
        except (ValueError, KeyError, TypeError) as exc:
            raise RegistryError(f"{path}: index.json is not an OCI index ({exc})", _HINT) from exc
        for entry in self.entries:
            checked(entry, f"{path}: index.json")
        if not self.entries:
            raise RegistryError(f"{path}: index.json lists no image", _HINT)

    def _locate(self, name: str) -> tuple[Path, int, int]:
        if self._dir:
            full = self.path / name
            if not full.is_file():
                raise RegistryError(f"{self.path}: {name} is missing", _HINT)
            if not full.resolve().is_relative_to(self.path.resolve()):
                raise RegistryError(f"{self.path}: {name} is a link to {full.resolve()}, outside the layout", _HINT)
            return full, 0, full.stat().st_size
        if name not in self._members:
            raise RegistryError(f"{self.path}: {name} is missing", _HINT)
        offset, size = self._members[name]
        return self.path, offset, size

    def _read(self, name: str, size: int | None = None) -> bytes:
        """A manifest, index.json or config whole: refused before it is read when it is larger than a registry
        would take (BODY_LIMIT) or is not the `size` its descriptor gives, or, in a directory, when it is not a
        regular file (a link is not followed, a FIFO does not hang the push)."""
        path, offset, found = self._locate(name)
        if size is not None and found != size:
            raise RegistryError(f"{self.path}: {name} is {found} bytes, its descriptor says {size}", _HINT)
        if found > BODY_LIMIT:
            raise RegistryError(f"{self.path}: {name} is larger than {size_text(BODY_LIMIT)}", _HINT)
        if self._dir:
            return read_plain(path, BODY_LIMIT, _HINT)
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read(found)

    def _name(self, descriptor: dict[str, Any]) -> str:
        """`blobs/sha256/<hex>`, from a digest checked to be nothing else."""
        algo, _, hexpart = checked(descriptor, str(self.path))["digest"].partition(":")
        return f"blobs/{algo}/{hexpart}"

    def blob(self, descriptor: dict[str, Any]) -> BlobSource:
        path, offset, size = self._locate(self._name(descriptor))
        digest = descriptor["digest"]
        if size != descriptor["size"]:
            raise RegistryError(f"{self.path}: blob {digest} is {size} bytes, its descriptor says {descriptor['size']}")
        return BlobSource(digest, size, str(descriptor.get("mediaType", "")), path, offset)

    def read(self, descriptor: dict[str, Any]) -> bytes:
        """A small blob (a config) whole, as `_read` checks it."""
        return self._read(self._name(descriptor), descriptor["size"])

    def manifest(self, descriptor: dict[str, Any]) -> Manifest:
        data = self.read(descriptor)
        if sha256(data) != descriptor["digest"]:
            raise RegistryError(f"{self.path}: manifest {descriptor['digest']} does not match its digest", _HINT)
        return Manifest(media_type_of(data, str(descriptor.get("mediaType", ""))), data)

    def top(self) -> Top:
        """One manifest: push it as is (docker pull gets a plain manifest). Several: they and an index over them.

        index.json itself is pushed as that index, byte for byte (so the digest is the one the build printed),
        unless it needs cleaning of layout-only annotations or a mediaType.
        """
        if len(self.entries) == 1:
            only = self.manifest(self.entries[0])
            if not only.is_index:
                return Top([only], None)
            children = [self.manifest(d) for d in only.children()]
            index = only
        else:
            children = [self.manifest(d) for d in self.entries]
            index = self._index_json()
        nested = [c.digest for c in children if c.media_type in INDEX_TYPES]
        if nested:
            raise RegistryError(f"{self.path}: nested indexes are not supported ({nested[0]})", _HINT)
        return Top(children, index)

    def _index_json(self) -> Manifest:
        clean = []
        for d in self.entries:
            entry = {k: v for k, v in d.items() if k != "annotations"}
            kept = {k: v for k, v in mapping(d.get("annotations")).items() if k not in LAYOUT_ONLY}
            if kept:
                entry["annotations"] = kept
            clean.append(entry)
        if self.index.get("mediaType") == MEDIA_INDEX and clean == self.entries:
            return Manifest(MEDIA_INDEX, self.index_data)
        return Manifest(MEDIA_INDEX, canonical_json({**self.index, "mediaType": MEDIA_INDEX, "manifests": clean}))


_HINT = f"give the {outputs.IMAGE.name()} written by `bootstrap build` or an OCI layout directory"
