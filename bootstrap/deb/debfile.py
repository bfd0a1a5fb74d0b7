"""Reading .deb files: the ar container, the control members and the data tar, in any dpkg compression."""

import gzip
import io
import lzma
import pickle
import tarfile
from dataclasses import dataclass
from pathlib import Path

import zstandard

from bootstrap.cache import write_atomic
from bootstrap.errors import UnpackError


def decompress(name: str, data: bytes) -> bytes:
    """Decompress a .deb member by its name's suffix (xz, zst, gz, bz2 or none)."""
    try:
        if name.endswith(".xz"):
            return lzma.decompress(data)
        if name.endswith(".zst"):
            return zstandard.ZstdDecompressor().decompressobj().decompress(data)
        if name.endswith(".gz"):
            return gzip.decompress(data)
        if name.endswith(".bz2"):
            import bz2

            return bz2.decompress(data)
        if name.endswith(".tar"):
            return data
    except (lzma.LZMAError, zstandard.ZstdError, OSError, EOFError) as exc:
        raise UnpackError(f"member {name} is corrupt: {exc}", "remove the cached file and download it again") from exc
    raise UnpackError(f"member {name} has an unknown compression", "dpkg supports xz, zstd, gzip, bzip2 or none")


def ar_members(data: bytes, what: str) -> dict[str, bytes]:
    """The members of an ar archive (the .deb container)."""
    if not data.startswith(b"!<arch>\n"):
        raise UnpackError(f"{what} is not a Debian package (no ar header)", "check the file or the mirror")
    members: dict[str, bytes] = {}
    pos = 8
    while pos + 60 <= len(data):
        header = data[pos : pos + 60]
        if header[58:60] != b"`\n":
            raise UnpackError(f"{what}: corrupt ar member header at byte {pos}", "the download is damaged")
        name = header[0:16].decode("ascii", "replace").strip().rstrip("/")
        try:
            size = int(header[48:58].decode("ascii").strip())
        except ValueError:
            raise UnpackError(f"{what}: corrupt ar member size at byte {pos}", "the download is damaged") from None
        start = pos + 60
        members[name] = data[start : start + size]
        pos = start + size + (size & 1)
    return members


@dataclass(frozen=True)
class DebContents:
    """A .deb's control files (by member name) and its data tar, decompressed."""

    control: dict[str, bytes]
    data_tar: bytes

    def data(self) -> tarfile.TarFile:
        return tarfile.open(fileobj=io.BytesIO(self.data_tar), mode="r:")


def read(path: Path, expanded: Path | None = None) -> DebContents:
    """Read and decompress a .deb file.

    With `expanded` (a cache directory), the decompressed members are kept there under the .deb's own
    (content-addressed) name, so the next build reads them back instead of decompressing again."""
    if expanded is not None:
        data_path, control_path = expanded / f"{path.name}.tar", expanded / f"{path.name}.control"
        try:
            return DebContents(pickle.loads(control_path.read_bytes()), data_path.read_bytes())
        except (FileNotFoundError, EOFError, pickle.UnpicklingError):
            pass
        contents = read(path)
        write_atomic(data_path, contents.data_tar)
        write_atomic(control_path, pickle.dumps(contents.control, protocol=pickle.HIGHEST_PROTOCOL))
        return contents
    what = path.name
    members = ar_members(path.read_bytes(), what)
    if members.get("debian-binary", b"").split(b"\n", 1)[0].strip() != b"2.0":
        raise UnpackError(f"{what}: not a format 2.0 Debian package", "check the file or the mirror")
    control_name = next((n for n in members if n.startswith("control.tar")), None)
    data_name = next((n for n in members if n.startswith("data.tar")), None)
    if control_name is None or data_name is None:
        raise UnpackError(f"{what}: missing control.tar or data.tar member", "the package is malformed")
    control: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(decompress(control_name, members[control_name])), mode="r:") as tf:
        for info in tf:
            if info.isfile():
                name = info.name.removeprefix("./")
                if "/" not in name:
                    f = tf.extractfile(info)
                    if f is not None:
                        control[name] = f.read()
    if "control" not in control:
        raise UnpackError(f"{what}: no control file", "the package is malformed")
    return DebContents(control, decompress(data_name, members[data_name]))
