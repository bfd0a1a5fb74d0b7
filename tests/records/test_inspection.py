"""`bootstrap inspect`: the space each package takes, followed through the image's merged-/usr links."""

import io
import tarfile
from pathlib import Path

from bootstrap.build.families import databases
from bootstrap.records.inspection import UNOWNED, package_sizes


def _layer(path: Path, entries: list[tuple[str, str, bytes | str]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, kind, data in entries:
            info = tarfile.TarInfo(name)
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif kind == "link":
                info.type = tarfile.SYMTYPE
                info.linkname = str(data)
                tar.addfile(info)
            else:
                raw = data.encode() if isinstance(data, str) else data
                info.size = len(raw)
                tar.addfile(info, io.BytesIO(raw))
    return path


def test_files_listed_under_merged_usr_aliases_belong_to_their_package(tmp_path: Path) -> None:
    layer = _layer(
        tmp_path / "rootfs.tar.gz",
        [
            ("bin", "link", "usr/bin"),
            ("lib", "link", "/usr/lib"),
            ("usr/bin/bash", "file", b"x" * 1000),
            ("usr/lib/libc.so", "file", b"y" * 500),
            ("usr/share/doc/base", "link", "../../lib/doc"),
            ("usr/lib/doc/README", "file", b"z" * 30),
            ("etc/orphan", "file", b"o" * 7),
            ("var/lib/dpkg/info/bash.list", "file", "/.\n/bin\n/bin/bash\n"),
            ("var/lib/dpkg/info/libc6:amd64.list", "file", "/lib/libc.so\n/usr/share/doc/base/README\n"),
        ],
    )
    sizes = package_sizes(layer, databases())
    assert sizes["bash"] == 1000
    assert sizes["libc6"] == 530, "aliases resolve relative (../..) and absolute (/usr/lib) links"
    assert sizes[UNOWNED] == 7 + len("/.\n/bin\n/bin/bash\n") + len("/lib/libc.so\n/usr/share/doc/base/README\n")


def test_a_distroless_database_names_files_by_md5sums(tmp_path: Path) -> None:
    md5sums = "d41d8cd98f00b204e9800998ecf8427e  usr/bin/tool\nd41d8cd98f00b204e9800998ecf8427e  lib/libz.so.1\n"
    layer = _layer(
        tmp_path / "rootfs.tar.gz",
        [
            ("lib", "link", "usr/lib"),
            ("usr/bin/tool", "file", b"t" * 300),
            ("usr/lib/libz.so.1", "file", b"z" * 40),
            ("etc/passwd", "file", b"p" * 9),
            ("var/lib/dpkg/status.d/tool", "file", "Package: tool\n"),
            ("var/lib/dpkg/status.d/tool.md5sums", "file", md5sums),
        ],
    )
    sizes = package_sizes(layer, databases())
    assert sizes["tool"] == 340
    assert sizes[UNOWNED] == 9 + len("Package: tool\n") + len(md5sums)
