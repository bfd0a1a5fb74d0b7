"""The layer's tar headers are made directly (`bootstrap.image.tarheader`), and must be byte for byte what
Python's tarfile writes in its PAX format: each header is compared with tarfile's for every kind of entry and
every field that overflows into a pax record, and a whole tree written by `write_tar` with what tarfile's own
writer makes of it (the way layers were written before)."""

import contextlib
import io
import os
import stat
import tarfile
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from bootstrap.image import tarheader
from bootstrap.image.layer import _walk, _xattrs, write_tar

KINDS = {
    tarheader.REGTYPE: tarfile.REGTYPE,
    tarheader.LNKTYPE: tarfile.LNKTYPE,
    tarheader.SYMTYPE: tarfile.SYMTYPE,
    tarheader.CHRTYPE: tarfile.CHRTYPE,
    tarheader.BLKTYPE: tarfile.BLKTYPE,
    tarheader.DIRTYPE: tarfile.DIRTYPE,
    tarheader.FIFOTYPE: tarfile.FIFOTYPE,
}


def _tarfiles(
    name: str,
    kind: bytes,
    mode: int,
    uid: int,
    gid: int,
    size: int,
    mtime: int,
    linkname: str = "",
    device: tuple[int, int] = (0, 0),
    records: dict[str, str] | None = None,
) -> bytes:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.uid, info.gid, info.size, info.mtime = KINDS[kind], mode, uid, gid, size, mtime
    info.uname = info.gname = ""
    info.linkname = linkname
    info.devmajor, info.devminor = device
    info.pax_headers = dict(records or {})
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


LONG = "usr/share/" + "d" * 95 + "/file"
CASES = [
    ("usr/bin/sh", tarheader.REGTYPE, 0o755, 0, 0, 1234, 1700000000),
    ("usr/bin", tarheader.DIRTYPE, 0o755, 0, 0, 0, 1700000000),
    ("usr/bin/", tarheader.DIRTYPE, 0o2775, 0, 50, 0, 1700000000),
    ("bin", tarheader.SYMTYPE, 0o777, 0, 0, 0, 1700000000, "usr/bin"),
    ("usr/bin/sh2", tarheader.LNKTYPE, 0o755, 0, 0, 0, 1700000000, "usr/bin/sh"),
    ("dev/null", tarheader.CHRTYPE, 0o666, 0, 0, 0, 1700000000, "", (1, 3)),
    ("dev/loop0", tarheader.BLKTYPE, 0o660, 0, 6, 0, 1700000000, "", (7, 2**20)),
    ("run/initctl", tarheader.FIFOTYPE, 0o600, 0, 0, 0, 1700000000),
    ("x" * 100, tarheader.REGTYPE, 0o644, 0, 0, 0, 0),
    ("x" * 101, tarheader.REGTYPE, 0o644, 0, 0, 0, 0),
    ("d" * 100, tarheader.DIRTYPE, 0o755, 0, 0, 0, 0),  # 101 with its slash
    (LONG * 3, tarheader.REGTYPE, 0o644, 0, 0, 7, 5),
    ("usr/share/locale/fr/überall.mo", tarheader.REGTYPE, 0o644, 0, 0, 10, 5),
    ("usr/lib/\udcff\udcfe-not-utf8", tarheader.REGTYPE, 0o644, 0, 0, 10, 5),
    ("lib", tarheader.SYMTYPE, 0o777, 0, 0, 0, 5, "l" * 101),
    ("lib", tarheader.SYMTYPE, 0o777, 0, 0, 0, 5, "usr/lib/ü"),
    ("home/u", tarheader.DIRTYPE, 0o700, 8**7 - 1, 8**7 - 1, 0, 5),
    ("home/u", tarheader.DIRTYPE, 0o700, 8**7, 4_000_000_000, 0, 5),
    ("big", tarheader.REGTYPE, 0o644, 0, 0, 8**11 - 1, 5),
    ("huge", tarheader.REGTYPE, 0o644, 0, 0, 8**11, 5),
    ("old", tarheader.REGTYPE, 0o644, 0, 0, 0, -5),
    ("future", tarheader.REGTYPE, 0o644, 0, 0, 0, 8**11),
    ("setuid", tarheader.REGTYPE, 0o104755, 0, 0, 0, 5),
]
RECORDS = [
    {},
    {"SCHILY.xattr.security.capability": "\x01\x00\x00\x02\x00 \x00\x00"},
    {"SCHILY.xattr.user.bin": "\udc80\udcff raw"},
    {"SCHILY.xattr.user.a": "v" * 84},  # records whose length field needs 3 digits, at the edge
    {"SCHILY.xattr.user.a": "v" * 85},
    {"SCHILY.xattr.user.a": "v" * 986},
    {"SCHILY.xattr.user.a": "1", "SCHILY.xattr.user.b": "ü"},
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: repr(c[0][:24]) + str(c[1:]))
@pytest.mark.parametrize("records", RECORDS, ids=range(len(RECORDS)))
def test_each_header_is_tarfiles(case: tuple[Any, ...], records: dict[str, str]) -> None:
    name, kind, mode, uid, gid, size, mtime, *rest = case
    link = rest[0] if rest else ""
    device = rest[1] if len(rest) > 1 else (0, 0)
    made = tarheader.header(name, kind, mode, uid, gid, size, mtime, link, device, records=records)
    assert made == _tarfiles(name, kind, mode, uid, gid, size, mtime, link, device, records=records)


def _tarfile_writer(root: Path, epoch: int, sink: BinaryIO) -> None:
    """The layer as tarfile writes it (how write_tar wrote it before its headers were made directly)."""
    links: dict[tuple[int, int], tuple[str, dict[str, str]]] = {}
    with tarfile.open(
        fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT, encoding="utf-8", errors="surrogateescape"
    ) as tar:
        for rel in _walk(str(root)):
            full = os.path.join(root, rel)
            st = os.lstat(full)
            info = tarfile.TarInfo(rel)
            info.mode, info.uid, info.gid = stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid
            info.uname = info.gname = ""
            info.mtime = min(int(st.st_mtime), epoch)
            xattrs = _xattrs(full)
            if stat.S_ISREG(st.st_mode):
                key = (st.st_dev, st.st_ino)
                if st.st_nlink > 1 and key in links:
                    info.type = tarfile.LNKTYPE
                    info.linkname, xattrs = links[key]
                else:
                    if st.st_nlink > 1:
                        links[key] = (rel, xattrs)
                    info.size = st.st_size
            elif stat.S_ISDIR(st.st_mode):
                info.type = tarfile.DIRTYPE
            elif stat.S_ISLNK(st.st_mode):
                info.type, info.linkname = tarfile.SYMTYPE, os.readlink(full)
            elif stat.S_ISFIFO(st.st_mode):
                info.type = tarfile.FIFOTYPE
            info.pax_headers = xattrs
            if info.type == tarfile.REGTYPE:
                with open(full, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)


class _Sink:
    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        return len(data)


def test_a_tree_is_written_as_tarfile_writes_it(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "usr/bin").mkdir(parents=True)
    (root / ("d" * 120) / "e").mkdir(parents=True)
    for size in (0, 1, 511, 512, 513, (1 << 20) + 3, 3 << 20):
        (root / f"usr/bin/f{size}").write_bytes(os.urandom(size))
    os.link(root / "usr/bin/f513", root / "usr/bin/hardlink")
    (root / "bin").symlink_to("usr/bin")
    (root / "usr/lib").symlink_to("l" * 150)
    (root / "ü-name").write_text("ü")
    os.mkfifo(root / "fifo")
    (root / ("d" * 120) / "e" / ("f" * 110)).write_text("long\n")
    os.chmod(root / "usr/bin/f1", 0o4755)
    raw = os.fsencode(root) + b"/usr/\xff\xfe-raw"
    with open(raw, "wb") as f:
        f.write(b"raw name\n")
    with contextlib.suppress(OSError):  # a file system without user xattrs: the header tests cover them
        os.setxattr(root / "usr/bin/f1", "user.note", b"\x00\x01\xff")
    os.utime(root / "usr/bin/f0", (-100, -100))
    ours, theirs = _Sink(), _Sink()
    write_tar(root, 1700000000, ours)  # type: ignore[arg-type]
    _tarfile_writer(root, 1700000000, theirs)  # type: ignore[arg-type]
    written = b"".join(ours.parts)
    assert written == b"".join(theirs.parts)
    assert len(written) % tarheader.RECORD == 0
    with tarfile.open(fileobj=io.BytesIO(written)) as tar:
        names = tar.getnames()
    assert "usr/bin/hardlink" in names and os.fsdecode(b"usr/\xff\xfe-raw") in names


def test_a_file_that_shrinks_while_it_is_packed_is_an_error(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "file").write_bytes(b"x" * 5000)

    class Shrinking(_Sink):
        def write(self, data: bytes) -> int:
            if not self.parts:  # the first header is out: the file loses its end
                os.truncate(root / "file", 10)
            return super().write(data)

    with pytest.raises(OSError, match="file became shorter while it was packed"):
        write_tar(root, 1700000000, Shrinking())  # type: ignore[arg-type]
