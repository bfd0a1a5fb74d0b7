"""`bootstrap inspect`: the space each package takes, followed through the image's merged-/usr links."""

import gzip
import io
import json
import os
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from bootstrap.build.families import databases
from bootstrap.errors import BootstrapError
from bootstrap.records.inspection import UNOWNED, inspect, package_sizes


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


def _directory(tmp_path: Path) -> Path:
    """An output directory with a layer and a build.json, as inspect reads one."""
    out = tmp_path / "out"
    out.mkdir()
    _layer(out / "rootfs.tar.gz", [("etc/f", "file", b"x")])
    (out / "build.json").write_text(json.dumps({"tool": {"name": "bootstrap"}, "image": {"diff_id": "sha256:0"}}))
    return out


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        (lambda d: (d / "build.json").write_text("not json"), "is not the summary of a build"),
        (lambda d: (d / "build.json").write_text("[" * 100_000), "is not the summary of a build"),
        (lambda d: (d / "build.json").write_text('{"image": "x"}'), "is not the summary of a build"),
        (lambda d: (d / "rootfs.tar.gz").write_bytes(b"garbage" * 100), "is not a valid layer"),
        (lambda d: (d / "rootfs.tar.gz").write_bytes(gzip.compress(b"garbage" * 100)), "is not a valid layer"),
        (lambda d: (d / "rootfs.tar.gz").write_bytes((d / "rootfs.tar.gz").read_bytes()[:40]), "is not a valid layer"),
        (lambda d: (d / "rootfs.tar.gz").write_bytes(b""), "is not a valid layer"),
        (lambda d: _swap(d / "rootfs.tar.gz", lambda p: p.symlink_to("/etc/shadow")), "cannot be read"),
        (lambda d: _swap(d / "rootfs.tar.gz", lambda p: os.mkfifo(p)), "is not a regular file"),
    ],
)
def test_a_damaged_or_hostile_output_directory_is_one_line(
    tmp_path: Path, damage: Callable[[Path], object], said: str
) -> None:
    """inspect reads a directory someone else may have made: what is not a build's summary, a layer that is
    not one (garbage, cut short: never "interrupted", as click took an EOFError for), a link to a host file or a
    FIFO (never waited on): one line each, exit 1."""
    out = _directory(tmp_path)
    assert inspect(out, databases()).digests == {"diff_id": "sha256:0"}
    damage(out)
    with pytest.raises(BootstrapError, match=said) as err:
        inspect(out, databases())
    assert "\n" not in err.value.message


def _swap(path: Path, make: Callable[[Path], object]) -> None:
    path.unlink(missing_ok=True)
    make(path)


def test_a_lock_that_is_a_fifo_is_not_waited_on(tmp_path: Path) -> None:
    """--lock, verify and check read a lock someone else may have made: a FIFO is refused, never waited on."""
    from bootstrap.records import lock as lock_mod

    os.mkfifo(tmp_path / "lock.json")
    with pytest.raises(BootstrapError, match="is not a regular file"):
        lock_mod.read(tmp_path)
