"""The override table: what the layer says about entries the disk cannot hold as the image has them.

The decisive test unpacks the same hand-made package twice: as root, with real owners, a setuid file and
real device nodes; and as `nobody`, who can chown nothing and mknod nothing, recording into the table. The
two layers must be the same bytes."""

import dataclasses
import io
import os
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from bootstrap.deb import debfile
from bootstrap.deb.filters import PathFilter
from bootstrap.deb.unpack import prepare_root, unpack_all
from bootstrap.host.cache import sha256_file
from bootstrap.host.overrides import Device, Override, Overrides, disk_mode, identity
from bootstrap.host.tree import Tree
from bootstrap.image.layer import Compression, pack, write_tar
from tests.fixtures.debs import EPOCH, TarEntry, build_raw_deb, raw_control
from tests.fixtures.records import package

NOBODY = 65534


def tar_bytes(root: Path, overrides: Overrides | None = None) -> bytes:
    out = io.BytesIO()
    write_tar(root, EPOCH, out, overrides)
    return out.getvalue()


def members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: m for m in tar}


def differences(a: bytes, b: bytes) -> list[str]:
    """What differs between two layers, entry by entry."""
    first, second = members(a), members(b)
    out = [f"{n}: only in one" for n in sorted(set(first) ^ set(second))]
    fields = ("type", "mode", "uid", "gid", "size", "mtime", "linkname", "devmajor", "devminor", "pax_headers")
    for name in sorted(set(first) & set(second)):
        out += [f"{name}: {f}" for f in fields if getattr(first[name], f) != getattr(second[name], f)]
    return out


def test_recorded_owner_mode_and_device_replace_the_disk_s(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "dev").mkdir(parents=True)
    (root / "srv").mkdir()
    (root / "srv/tool").write_bytes(b"tool")
    (root / "srv/plain").write_bytes(b"plain")
    (root / "srv/console").write_bytes(b"")
    table = Overrides()
    table.set("srv/tool", 0, 0, 0o104755)
    table.set("srv/console", 0, 5, 0o620, Device("chr", 5, 1))
    table.set("srv", 7, 8, 0o1750)
    by = members(tar_bytes(root, table))
    assert by["srv/tool"].mode == 0o4755 and by["srv/tool"].uid == 0 and by["srv/tool"].size == 4
    assert by["srv/console"].ischr() and (by["srv/console"].devmajor, by["srv/console"].devminor) == (5, 1)
    assert by["srv/console"].gid == 5 and by["srv/console"].mode == 0o620 and by["srv/console"].size == 0
    assert by["srv"].isdir() and (by["srv"].uid, by["srv"].gid, by["srv"].mode) == (7, 8, 0o1750)
    me = os.getuid()
    assert by["srv/plain"].uid == me, "without a default owner, an unrecorded entry keeps its owner on disk"
    assert members(tar_bytes(root, Overrides(default_owner=(0, 0))))["srv/plain"].uid == 0


def test_forget_and_copy(tmp_path: Path) -> None:
    table = Overrides()
    table.set("a", 1, 1, 0o644)
    table.set("a/b", 2, 2, 0o644)
    table.set("ab", 3, 3, 0o644)
    table.copy("ab", "c")
    table.forget("a")
    assert "a" not in table and "a/b" not in table and table.get("ab") == table.get("c") and len(table) == 2
    table.copy("missing", "c")
    assert "c" not in table
    table.set("ab/x", 5, 5, 0o600)
    table.set("d/e", 4, 4, 0o600)
    table.move("ab", "d")
    assert "ab" not in table and "ab/x" not in table and "d/e" not in table, "the old names and what was at d go"
    found, below = table.get("d"), table.get("d/x")
    assert found is not None and found.uid == 3 and below is not None and below.uid == 5


def test_renamed_and_removed_entries_keep_the_table_true(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    table = Overrides(default_owner=(0, 0))
    tree = Tree(root, table)
    tree.mkdir("a/b")
    tree.own_dir("a/b", 5, 5, 0o750)
    tree.write("a/b/f", "x", 0o600, 5, 5)
    tree.rename("a/b", "a/c")
    assert "a/b/f" not in table and "a/b" not in table
    moved = tree.lstat("a/c/f")
    assert moved is not None and (moved.st_uid, stat.S_IMODE(moved.st_mode)) == (5, 0o600)
    tree.remove("a/c/f")
    assert tree.rmdir("a/c") and "a/c" not in table and "a/c/f" not in table


def test_the_tree_reads_and_writes_through_the_table(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    table = Overrides(default_owner=(0, 0))
    tree = Tree(root, table)
    tree.write("etc/shadow", "root:*:1::::::\n", 0o640, 0, 42)
    tree.mkdir("home/app")
    tree.own_dir("home/app", 1000, 1000, 0o500)
    tree.symlink("etc/localtime", "/usr/share/zoneinfo/Etc/UTC", 3, 4)
    shadow = tree.lstat("etc/shadow")
    assert shadow is not None and (shadow.st_uid, shadow.st_gid, stat.S_IMODE(shadow.st_mode)) == (0, 42, 0o640)
    disk = os.lstat(root / "etc/shadow")
    assert disk.st_uid == os.getuid() and stat.S_IMODE(disk.st_mode) == disk_mode(0o640, is_dir=False)
    home = tree.lstat("home/app")
    assert home is not None and home.st_uid == 1000 and stat.S_IMODE(home.st_mode) == 0o500
    assert stat.S_IMODE(os.lstat(root / "home/app").st_mode) == 0o700, "the builder can still fill it"
    link = tree.lstat("etc/localtime")
    assert link is not None and stat.S_ISLNK(link.st_mode) and (link.st_uid, link.st_gid) == (3, 4)
    walked = dict(tree.walk("etc"))
    assert walked["etc/shadow"].st_gid == 42
    tree.remove("home")
    assert "home/app" not in table, "a removed entry's record goes with it"


def _package(tmp_path: Path) -> Path:
    """A package that only root can unpack for real: foreign owners, setuid, devices, a locked directory."""
    entries = [
        TarEntry("./", "dir"),
        TarEntry("./srv/", "dir"),
        TarEntry("./srv/dev/", "dir"),
        TarEntry("./srv/dev/null", "chr", mode=0o666, device=(1, 3)),
        TarEntry("./srv/dev/sda", "blk", mode=0o660, gid=6, device=(8, 0)),
        TarEntry("./srv/locked/", "dir", mode=0o500, uid=42, gid=42),
        TarEntry("./srv/locked/secret", data=b"s3cret\n", mode=0o400, uid=42, gid=42),
        TarEntry("./usr/", "dir"),
        TarEntry("./usr/bin/", "dir"),
        TarEntry("./usr/bin/su", data=b"\x7fELF su", mode=0o4755),
        TarEntry("./usr/bin/su-again", "hardlink", target="./usr/bin/su"),
        TarEntry("./usr/bin/mail", data=b"mail", mode=0o2755, gid=8),
        TarEntry("./run/", "dir"),
        TarEntry("./run/pipe", "fifo", mode=0o620, uid=42, gid=5),
        TarEntry("./srv/link", "symlink", target="locked/secret", uid=7, gid=7),
    ]
    return build_raw_deb(tmp_path / "owned_1.0_amd64.deb", raw_control("owned"), entries)


DEVICES = ("srv/dev/null", "srv/dev/sda")


def _unpack_and_pack(root: Path, deb: Path, layer: Path, overrides: Overrides | None) -> None:
    """Unpack and pack; with no table, the reference: what a root unpack made before it recorded devices too
    (real owners, and a real node for each device, made here by the test)."""
    prepare_root(root, ("bin", "sbin", "lib"))
    record = dataclasses.replace(package("owned"), size=deb.stat().st_size, sha256=sha256_file(deb))
    devices = Overrides(owners=False)
    unpack_all(root, [(record, deb)], PathFilter(), None, devices if overrides is None else overrides)
    if overrides is None:
        for rel in DEVICES:
            found = devices.get(rel)
            assert found is not None and found.device is not None
            (root / rel).unlink()
            kind = found.device.file_type
            os.mknod(root / rel, kind | found.mode, os.makedev(found.device.major, found.device.minor))
            os.chown(root / rel, found.uid, found.gid)
            os.chmod(root / rel, found.mode)
    pack(root, EPOCH, layer, Compression.NONE, overrides=overrides)


def _as_nobody(work: Path, action: Callable[[], None]) -> int:
    """Run `action` in a child process that has become nobody; its exit status."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.setgroups([])
            os.setresgid(NOBODY, NOBODY, NOBODY)
            os.setresuid(NOBODY, NOBODY, NOBODY)
            action()
            code = 0
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


@pytest.mark.skipif(os.geteuid() != 0, reason="the reference layer needs root (chown, mknod)")
def test_an_unprivileged_unpack_gives_the_layer_of_a_root_unpack(tmp_path: Path) -> None:
    deb = _package(tmp_path)
    _unpack_and_pack(tmp_path / "as-root", deb, tmp_path / "root.tar", None)
    work = Path(tempfile.mkdtemp(prefix="bootstrap-overrides-"))
    try:
        os.chown(work, NOBODY, NOBODY)
        shutil.copy(deb, work / deb.name)
        os.chmod(work / deb.name, 0o644)
        status = _as_nobody(
            work, lambda: _unpack_and_pack(work / "root", work / deb.name, work / "nobody.tar", Overrides((0, 0)))
        )
        assert status == 0, "nobody could not unpack it"
        assert not stat.S_ISCHR(os.lstat(work / "root/srv/dev/null").st_mode), "no device node was made"
        assert os.lstat(work / "root/srv/locked/secret").st_uid == NOBODY, "nothing was given away"
        ours, reference = (work / "nobody.tar").read_bytes(), (tmp_path / "root.tar").read_bytes()
        by = members(ours)
        assert by["srv/dev/null"].ischr() and by["srv/dev/sda"].isblk() and by["usr/bin/su"].mode == 0o4755
        assert by["usr/bin/su-again"].islnk()
        assert by["srv/locked"].mode == 0o500 and by["srv/locked/secret"].uid == 42 and by["run/pipe"].isfifo()
        assert differences(ours, reference) == []
        assert ours == reference
    finally:
        shutil.rmtree(work)


@pytest.mark.skipif(os.geteuid() != 0, reason="the reference layer needs root (chown, mknod)")
def test_a_builder_that_can_chown_records_only_devices(tmp_path: Path) -> None:
    """Root of a user namespace gives files their owners but cannot mknod: a table of devices only."""
    deb = _package(tmp_path)
    _unpack_and_pack(tmp_path / "as-root", deb, tmp_path / "root.tar", None)
    devices = Overrides(owners=False)
    _unpack_and_pack(tmp_path / "in-namespace", deb, tmp_path / "devices.tar", devices)
    assert sorted(p for p in ("srv/dev/null", "srv/dev/sda", "srv/locked/secret", "usr/bin/su") if p in devices) == [
        "srv/dev/null",
        "srv/dev/sda",
    ]
    assert os.lstat(tmp_path / "in-namespace/srv/locked/secret").st_uid == 42, "owners are made for real"
    assert not stat.S_ISCHR(os.lstat(tmp_path / "in-namespace/srv/dev/null").st_mode)
    ours, reference = (tmp_path / "devices.tar").read_bytes(), (tmp_path / "root.tar").read_bytes()
    assert differences(ours, reference) == [] and ours == reference


def test_reading_a_package_through_debfile_is_unchanged(tmp_path: Path) -> None:
    """The fixture's device entries reach the writer as dpkg-deb would give them."""
    contents = debfile.read(_package(tmp_path))
    with contents.data() as tar:
        kinds = {m.name: m for m in tar}
    assert kinds["./srv/dev/null"].ischr() and (kinds["./srv/dev/sda"].devmajor, kinds["./srv/dev/sda"].gid) == (8, 6)


def test_a_snapshot_is_taken_up_over_a_copy_of_the_tree(tmp_path: Path) -> None:
    """What a table holds comes back over another tree with the same paths (a kept tree's copy): owners, modes and
    devices by path, attributes bound to the file now at each path, not to the inode they were recorded on."""
    first, copy = tmp_path / "first", tmp_path / "copy"
    for tree in (first, copy):
        (tree / "usr/bin").mkdir(parents=True)
        (tree / "usr/bin/ping").write_bytes(b"ping")
    table = Overrides(owners=False)
    table.set("dev/null", 0, 0, 0o666, Device("chr", 1, 3))
    table.set_xattrs("usr/bin/ping", identity(os.lstat(first / "usr/bin/ping")), {"security.capability": b"\x01\x02"})
    again = Overrides(owners=False)
    assert again.take_up(table.snapshot(), lambda rel: os.lstat(copy / rel))
    assert again.get("dev/null") == Override(0, 0, 0o666, Device("chr", 1, 3))
    assert again.xattrs_by_inode() == {
        identity(os.lstat(copy / "usr/bin/ping")): ("usr/bin/ping", {"security.capability": b"\x01\x02"})
    }


def test_a_snapshot_that_does_not_fit_is_not_taken_up(tmp_path: Path) -> None:
    """Not a snapshot, an entry of the wrong shape, or attributes for a path that is no regular file: False, and
    nothing is added."""
    (tmp_path / "dir").mkdir()
    table = Overrides(owners=False)
    table.set_xattrs("dir", identity(os.lstat(tmp_path / "dir")), {"security.capability": b"\x01"})
    snapshot = table.snapshot()
    for data in (b"not json", b'{"table": {"a": [0, 0]}, "xattrs": {}}', b'{"table": {"a": [0, 0, 0, "x", 1, 2]}}',
                 snapshot):  # fmt: skip
        again = Overrides(owners=False)
        assert not again.take_up(data, lambda rel: os.lstat(tmp_path / rel)), data
        assert len(again) == 0 and again.xattrs_by_inode() == {}
