"""Unpacking real .rpm files (rpmbuild, signed by the fixture's key) into a tree: metadata from the signed
header, %doc, %lang and %ghost as rpm treats them, hard links, mtimes clamped to the epoch; hostile payloads
made for real refused with one line."""

import gzip
import hashlib
import io
import os
import stat
import struct
from pathlib import Path
from typing import Any

import pytest

from bootstrap.errors import UnpackError
from bootstrap.host.overrides import Device, Overrides
from bootstrap.rpm import cpio, expanded, pkgsig, tags
from bootstrap.rpm import payload as payload_mod
from bootstrap.rpm import unpack as unpack_mod
from bootstrap.rpm.files import file_table
from bootstrap.rpm.header import read_layout
from bootstrap.rpm.options import JobOptions
from bootstrap.rpm.unpack import reown, unpack_all
from tests.fixtures.gpg import GpgKey
from tests.fixtures.rpmrepo import RpmRepo, Spec
from tests.rpm.conftest import EPOCH, accounts_root, need_tools


@pytest.fixture(params=["read-ahead", "streamed"])
def inflation(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways a payload is inflated: whole, in a thread ahead of its turn (a payload its header bounds under
    READ_AHEAD), or streamed while written (a larger one)."""
    if request.param == "streamed":
        monkeypatch.setattr(unpack_mod, "READ_AHEAD", 0)
    return str(request.param)


def _tree(root: Path) -> list[tuple[str, int, int, int, bytes]]:
    out = []
    for path in sorted(root.rglob("*")):
        st = os.lstat(path)
        data = (
            path.read_bytes() if stat.S_ISREG(st.st_mode) else os.readlink(path).encode() if path.is_symlink() else b""
        )
        # a directory's mtime is when it was last written in (the layer dates it): only files' and links' count
        mtime = 0 if stat.S_ISDIR(st.st_mode) else int(st.st_mtime)
        out.append((str(path.relative_to(root)), st.st_mode, st.st_nlink, mtime, data))
    return out


def test_read_ahead_writes_the_tree_streaming_writes(
    sample: Path, tmp_path: Path, gpg_key: GpgKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same packages in the same order give the same tree, inflated ahead in threads or streamed."""
    need_tools("rpmbuild", "rpmsign")
    many = RpmRepo(tmp_path / "repo", gpg_key).build(
        [Spec(f"p{i}", files={f"/usr/share/p/{i}": f"file {i}\n" * (i + 1)}) for i in range(9)], payload="w19.zstdio"
    )
    items = [("sample", sample), *((f"p{i}", rpm) for i, rpm in enumerate(many))]
    assert unpack_mod._read(sample, "sample").payload is not None  # small: inflated ahead
    ahead = unpack_all(accounts_root(tmp_path / "ahead"), items, JobOptions(), EPOCH)
    monkeypatch.setattr(unpack_mod, "READ_AHEAD", 0)
    assert unpack_mod._read(sample, "sample").payload is None
    streamed = unpack_all(accounts_root(tmp_path / "streamed"), items, JobOptions(), EPOCH)
    assert [u.written for u in ahead] == [u.written for u in streamed] and len(ahead) == 10
    assert _tree(tmp_path / "ahead/root") == _tree(tmp_path / "streamed/root")
    assert (tmp_path / "ahead/root/usr/share/p/8").read_text() == "file 8\n" * 9 + "\n"  # the heredoc ends a line


def test_unpack_as_rpm_would(sample: Path, tmp_path: Path, inflation: str) -> None:
    root = accounts_root(tmp_path)
    (done,) = unpack_all(root, [("sample", sample)], JobOptions(nodocs=True, install_langs=("de_DE",)), EPOCH)
    assert (root / "usr/bin/sample").read_text() == "#!/bin/sh\necho sample\n"
    assert os.readlink(root / "usr/bin/sample-link") == "sample"
    one, two = os.lstat(root / "usr/bin/one"), os.lstat(root / "usr/bin/two")
    assert one.st_ino == two.st_ino and one.st_nlink == 2
    assert stat.S_IMODE(one.st_mode) == 0o4755 and (one.st_uid, one.st_gid) == (0, 2)
    log = os.lstat(root / "var/log/sample")
    assert stat.S_IMODE(log.st_mode) == 0o750 and (log.st_uid, log.st_gid) == (2, 2)
    assert not (root / "var/log/sample/sample.log").exists()  # %ghost
    assert not (root / "usr/share/doc/sample").exists()  # %doc under nodocs, and its directory
    assert (root / "usr/share/locale/de/sample.mo").exists()
    assert not (root / "usr/share/locale/fr/sample.mo").exists()
    early = unpack_all(accounts_root(tmp_path / "early"), [("sample", sample)], JobOptions(), 1650000000)[0]
    stats = [os.lstat(tmp_path / "early/root" / p.lstrip("/")) for p in early.written]
    assert all(st.st_mtime == 1650000000 for st in stats if not stat.S_ISDIR(st.st_mode))  # clamped to the epoch
    assert "/usr/share/doc/sample/README" not in done.written


def test_unpack_everything(sample: Path, tmp_path: Path) -> None:
    root = accounts_root(tmp_path)
    unpack_all(root, [("sample", sample)], JobOptions(nodocs=False), EPOCH)
    assert (root / "usr/share/doc/sample/README").read_text() == "readme\n"
    assert (root / "usr/share/locale/fr/sample.mo").exists()


def test_unpack_rootless_records_owners(sample: Path, tmp_path: Path) -> None:
    root = accounts_root(tmp_path)
    table = Overrides(default_owner=(0, 0))
    unpack_all(root, [("sample", sample)], JobOptions(), EPOCH, table)
    found = table.get("usr/bin/one")
    assert found is not None and (found.uid, found.gid, found.mode) == (0, 2, 0o4755)
    assert table.get("usr/bin/two") == found


@pytest.mark.parametrize("payload", ["w19.zstdio", "w2.xzdio"])
def test_compressors(tmp_path: Path, gpg_key: GpgKey, payload: str) -> None:
    need_tools("rpmbuild", "rpmsign")
    spec = Spec("packed", files={"/usr/share/packed/data": "x" * 5000})
    (rpm,) = RpmRepo(tmp_path / "repo", gpg_key).build([spec], payload=payload)
    root = accounts_root(tmp_path)
    unpack_all(root, [("packed", rpm)], JobOptions(), EPOCH)
    assert (root / "usr/share/packed/data").read_text() == "x" * 5000 + "\n"


def _cpio(members: list[tuple[str, int, bytes]]) -> bytes:
    """A cpio newc archive of (name, mode, data) members and its trailer."""
    out = b""
    for n, (name, mode, data) in enumerate([*members, ("TRAILER!!!", 0, b"")]):
        raw = name.encode() + b"\0"
        fields = [n + 1, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(raw), 0]
        head = b"070701" + b"".join(b"%08X" % v for v in fields) + raw
        out += head + b"\0" * (-len(head) % 4) + data + b"\0" * (-len(data) % 4)
    return out


def test_a_payload_in_memory_is_read_as_views_of_it() -> None:
    """Read through `cpio.View`, the members and their data are those a file gives, each read a view of the
    payload itself (no copy on the way to the tree); a view read past the data's end still stops there."""
    payload = _cpio([("./a", 0o100644, b"x" * 10), ("./d", 0o40755, b""), ("./b", 0o100600, b"y" * 3000)])

    def listed(stream: cpio.Stream) -> list[tuple[cpio.Member, bytes, list[object]]]:
        out = []
        for member, data in cpio.members(stream, "t", 10, 1 << 20):
            parts = [data.read(7) for _ in range(3)] + [data.read()]
            out.append((member, b"".join(bytes(p) for p in parts), [getattr(p, "obj", None) for p in parts if p]))
        return out

    from_view, from_file = listed(cpio.View(payload)), listed(io.BytesIO(payload))
    assert [(m, d) for m, d, _ in from_view] == [(m, d) for m, d, _ in from_file]
    assert [d for _, d, _ in from_view] == [b"x" * 10, b"", b"y" * 3000]
    assert all(owner is payload for _, _, owners in from_view for owner in owners)
    assert all(owner is None for _, _, owners in from_file for owner in owners)
    with pytest.raises(UnpackError, match="ends inside a file"):
        list(listed(cpio.View(payload[: payload.index(b"yyy") + 100])))


@pytest.mark.parametrize("field", [b" 000000A", b"0x00000A", b"0000_00A", b"+000000A", b"000000\xc3\xa9", b"0000000G"])
def test_a_cpio_header_number_that_is_not_eight_hexadecimal_digits_is_refused(field: bytes) -> None:
    """Each of a header's 13 numbers is exactly 8 hexadecimal digits: a space, a 0x, an underscore or a sign (all
    of which Python's int() would take), a non-ASCII byte or another letter is a corrupt or hostile payload."""
    good = _cpio([("./a", 0o100644, b"x" * 10)])
    assert [m.name for m, _ in cpio.members(cpio.View(good), "t", 10, 1 << 20)] == ["./a"]
    size_at = 6 + 8 * 6  # the seventh number: the data's size
    bad = good[:size_at] + field + good[size_at + 8 :]
    with pytest.raises(UnpackError, match="not hexadecimal"):
        list(cpio.members(cpio.View(bad), "t", 10, 1 << 20))


def _respliced(rpm: Path, dest: Path, members: list[tuple[str, int, bytes]], agree: bool = True) -> Path:
    """`rpm` with its payload replaced by a gzip cpio of `members`, its headers kept as they are but (`agree`) the
    digest of the uncompressed payload, made the new one's: the cpio reader's own checks are what is tried."""
    with open(rpm, "rb") as f:
        layout = read_layout(f, rpm.name)
        f.seek(0)
        head = f.read(layout.payload)
    archive = _cpio(members)
    given = expanded.digest_of(layout)
    assert given is not None, "rpmbuild gives the digest of the uncompressed payload"
    if agree:
        head = head.replace(given.encode(), hashlib.sha256(archive).hexdigest().encode())
    dest.write_bytes(head + gzip.compress(archive, mtime=0))
    return dest


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("./../../etc/evil", "outside the root"),
        ("/usr/bin/sample", "outside the root"),
        ("./usr/bin/not-listed", "not in its signed header"),
    ],
)
def test_hostile_member_names(sample: Path, tmp_path: Path, name: str, error: str, inflation: str) -> None:
    hostile = _respliced(sample, tmp_path / "hostile.rpm", [(name, 0o100644, b"owned\n")])
    root = accounts_root(tmp_path)
    with pytest.raises(UnpackError, match=error) as caught:
        unpack_all(root, [("sample", hostile)], JobOptions(), EPOCH)
    assert "\n" not in caught.value.message
    assert not (tmp_path / "etc/evil").exists() and not list(root.rglob("evil"))


def test_payload_lacking_a_file(sample: Path, tmp_path: Path, inflation: str) -> None:
    hostile = _respliced(sample, tmp_path / "short.rpm", [("./usr/bin/sample", 0o100755, b"#!/bin/sh\necho sample\n")])
    with pytest.raises(UnpackError, match="in its header but not in its payload"):
        unpack_all(accounts_root(tmp_path), [("sample", hostile)], JobOptions(), EPOCH)


def test_wrong_size_refused(sample: Path, tmp_path: Path, inflation: str) -> None:
    hostile = _respliced(sample, tmp_path / "big.rpm", [("./usr/bin/sample", 0o100755, b"x" * 5)])
    with pytest.raises(UnpackError, match="not the size its header says"):
        unpack_all(accounts_root(tmp_path), [("sample", hostile)], JobOptions(), EPOCH)


def _declaring(rpm: Path, dest: Path, path: str, size: int) -> Path:
    """`rpm` with its main header's FILESIZES saying `size` bytes for `path` (a header a packager could sign)."""
    with open(rpm, "rb") as f:
        layout = read_layout(f, rpm.name)
    header = layout.main
    _, offset, _ = header.index[tags.FILESIZES]
    at = [f.path for f in file_table(header, rpm.name)].index(path)
    data = bytearray(rpm.read_bytes())
    where = header.start + 16 + 16 * len(header.index) + offset + 4 * at
    data[where : where + 4] = struct.pack(">I", size)
    dest.write_bytes(data)
    return dest


def test_a_header_listing_gigabytes_is_refused_before_anything_is_inflated(sample: Path, tmp_path: Path) -> None:
    """A payload of zeros compresses a thousandfold: a package of a few MB can say gigabytes of files. One whose
    header lists more than a package unpacks is refused before its payload is read."""
    hostile = _declaring(sample, tmp_path / "big.rpm", "/usr/bin/sample", 3 << 30)
    root = accounts_root(tmp_path)
    with pytest.raises(UnpackError, match=f"more than {unpack_mod.MAX_UNPACKED}") as caught:
        unpack_all(root, [("sample", hostile)], JobOptions(), EPOCH)
    assert "\n" not in caught.value.message
    assert not (root / "usr").exists()


def test_a_link_or_directory_with_a_files_worth_of_data_is_refused(sample: Path, tmp_path: Path) -> None:
    """Each member may be as large as the largest file the header lists: a link's member may not use that room."""
    big = _declaring(sample, tmp_path / "big.rpm", "/usr/bin/sample", 1 << 20)
    hostile = _respliced(big, tmp_path / "hostile.rpm", [("./usr/bin/sample-link", 0o120777, b"x" * 8000)])
    with pytest.raises(UnpackError, match="has data its type cannot hold"):
        unpack_all(accounts_root(tmp_path), [("sample", hostile)], JobOptions(), EPOCH)


def test_payload_its_signed_header_does_not_give_is_refused_before_anything_is_written(
    sample: Path, tmp_path: Path
) -> None:
    """A payload that parses as well as the package's own (the same members) but is not the one whose digest the
    signed header gives (a file's content differs) is refused whole, before any file of it is written."""
    members = [("./usr/bin/sample", 0o100755, b"#!/bin/sh\necho SAMPLE\n")]
    hostile = _respliced(sample, tmp_path / "other.rpm", members, agree=False)
    root = accounts_root(tmp_path)
    with pytest.raises(UnpackError, match="does not inflate to the digest its signed header gives"):
        unpack_all(root, [("sample", hostile)], JobOptions(), EPOCH)
    assert not (root / "usr/bin").exists()


def _kept(tmp_path: Path) -> Path:
    area = tmp_path / "expanded"
    area.mkdir(exist_ok=True)
    return area


def test_a_kept_payload_is_used_only_when_it_hashes_to_its_name(
    sample: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first unpack keeps the inflated payload under the signed header's digest; the next takes it without
    inflating; one changed in the cache (the same length, or cut short) is removed and inflated again."""
    area = _kept(tmp_path)
    with open(sample, "rb") as f:
        digest = expanded.digest_of(read_layout(f, "sample"))
    assert digest is not None
    first = unpack_all(accounts_root(tmp_path / "a"), [("sample", sample)], JobOptions(), EPOCH, kept=area)
    kept = area / (digest + expanded.SUFFIX)
    original = kept.read_bytes()
    assert hashlib.sha256(original).hexdigest() == digest

    inflated: list[Path] = []
    real = payload_mod.opened

    def counting(path: Path, *args: object) -> object:
        inflated.append(path)
        return real(path, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(payload_mod, "opened", counting)
    again = unpack_all(accounts_root(tmp_path / "b"), [("sample", sample)], JobOptions(), EPOCH, kept=area)
    assert inflated == [] and again[0].written == first[0].written
    assert _tree(tmp_path / "a/root") == _tree(tmp_path / "b/root")

    marker = b"echo sample"
    for n, damaged in enumerate([original.replace(marker, b"echo SAMPLE", 1), original[:-100]]):
        assert damaged != original
        kept.write_bytes(damaged)
        out = tmp_path / f"damaged{n}"
        unpack_all(accounts_root(out), [("sample", sample)], JobOptions(), EPOCH, kept=area)
        assert (out / "root/usr/bin/sample").read_text() == "#!/bin/sh\necho sample\n"
        assert kept.read_bytes() == original, "made again from the package"
    assert len(inflated) == 2


@pytest.mark.parametrize("how", ["changed", "cut"])
def test_a_kept_payload_changed_in_place_after_its_check_is_not_what_the_tree_gets(
    sample: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """A kept payload is read whole, checked and used as those same bytes: another process of the user changing
    the file in place after the check (the same length, or cut to nothing) changes nothing the unpack writes, and
    does not end the build (a payload the build saw only through a mapping of the file would)."""
    area = _kept(tmp_path)
    with open(sample, "rb") as f:
        digest = expanded.digest_of(read_layout(f, "sample"))
    unpack_all(accounts_root(tmp_path / "a"), [("sample", sample)], JobOptions(), EPOCH, kept=area)
    kept = area / f"{digest}{expanded.SUFFIX}"
    real = unpack_mod.unpack_one

    def after_the_check(*args: Any, **kw: Any) -> Any:  # `_read` checked the payload (check_kept) and passed it on
        with open(kept, "r+b") as f:
            data = f.read()
            if how == "changed":
                f.seek(data.index(b"echo sample"))
                f.write(b"echo SAMPLE")
            else:
                f.truncate(0)
        return real(*args, **kw)

    monkeypatch.setattr(unpack_mod, "unpack_one", after_the_check)
    out = tmp_path / "b"
    unpack_all(accounts_root(out), [("sample", sample)], JobOptions(), EPOCH, kept=area)
    assert (out / "root/usr/bin/sample").read_text() == "#!/bin/sh\necho sample\n"


def test_a_package_without_the_digest_is_inflated_and_nothing_is_kept(sample: Path, tmp_path: Path) -> None:
    """A header of an rpm older than 4.16 gives no digest of the uncompressed payload: the package is inflated and
    unpacked as before, and nothing is kept (there is no name a kept payload could be proven by)."""
    with open(sample, "rb") as f:
        layout = read_layout(f, "sample")
    raw = bytearray(sample.read_bytes())
    entries = int.from_bytes(raw[layout.main.start + 8 : layout.main.start + 12], "big")
    for n in range(entries):  # the index entry of the tag renamed to one no rpm gives
        at = layout.main.start + 16 + 16 * n
        if int.from_bytes(raw[at : at + 4], "big") == pkgsig.PAYLOAD_DIGEST_ALT:
            raw[at : at + 4] = (59999).to_bytes(4, "big")
    old = tmp_path / "old.rpm"
    old.write_bytes(bytes(raw))
    with open(old, "rb") as f:
        assert expanded.digest_of(read_layout(f, "old")) is None
    area = _kept(tmp_path)
    unpack_all(accounts_root(tmp_path), [("sample", old)], JobOptions(), EPOCH, kept=area)
    assert (tmp_path / "root/usr/bin/sample").read_text() == "#!/bin/sh\necho sample\n"
    assert list(area.iterdir()) == []


@pytest.mark.parametrize("kind", ["symlink", "fifo", "directory", "too large"])
def test_what_is_not_a_kept_payload_is_passed_over(sample: Path, tmp_path: Path, kind: str) -> None:
    """A link (to the package's own bytes even), a fifo (never waited on), a directory or a file larger than the
    header allows at the payload's name: the package is inflated, the tree is right, the payload kept again."""
    area = _kept(tmp_path)
    with open(sample, "rb") as f:
        digest = expanded.digest_of(read_layout(f, "sample"))
    assert digest is not None
    good = tmp_path / "good.cpio"
    unpack_all(accounts_root(tmp_path / "a"), [("sample", sample)], JobOptions(), EPOCH, kept=area)
    (area / (digest + expanded.SUFFIX)).rename(good)
    at = area / (digest + expanded.SUFFIX)
    if kind == "symlink":
        at.symlink_to(good)
    elif kind == "fifo":
        os.mkfifo(at)
    elif kind == "directory":
        at.mkdir()
    else:
        at.write_bytes(good.read_bytes() + b"\0" * (1 << 20))
    out = tmp_path / "b"
    unpack_all(accounts_root(out), [("sample", sample)], JobOptions(), EPOCH, kept=area)
    assert (out / "root/usr/bin/sample").read_text() == "#!/bin/sh\necho sample\n"
    assert at.is_file() and not at.is_symlink() and at.read_bytes() == good.read_bytes(), "made again"


def test_file_through_a_symlink_stays_in_the_tree(tmp_path: Path, gpg_key: GpgKey) -> None:
    """One package links /usr/lib/evil to a host directory, the next writes a file below it: the file lands in
    the tree's own directory of that name, the host's is untouched."""
    need_tools("rpmbuild", "rpmsign")
    host = tmp_path / "host-dir"
    host.mkdir()
    link = Spec("linker", install=f"mkdir -p $RPM_BUILD_ROOT/usr/lib && ln -s {host} $RPM_BUILD_ROOT/usr/lib/evil")
    link = Spec(link.name, install=link.install, file_lines=["/usr/lib/evil"])
    writer = Spec("writer", files={"/usr/lib/evil/planted": "planted"})
    rpms = RpmRepo(tmp_path / "repo", gpg_key).build([link, writer])
    root = accounts_root(tmp_path)
    unpack_all(root, [("linker", rpms[0]), ("writer", rpms[1])], JobOptions(), EPOCH)
    assert list(host.iterdir()) == []
    assert (root / str(host).lstrip("/") / "planted").read_text() == "planted\n"


def test_a_path_resolved_before_its_link_was_made_stays_in_the_tree(tmp_path: Path, gpg_key: GpgKey) -> None:
    """A name looked up through a link to a directory not made yet (/a -> m, /etc/passwd -> /a/x/passwd, read for
    a file's owner) is not taken as settled: when /m/x is then made a link to a host directory, the next
    package's /a/x/planted is looked for where /m/x leads inside the tree, never written through the link to the
    host. Its `%dir /a/x` finds a link that leads to no directory in the tree (as rpm sees it, chrooted: the
    host's directory is not looked at), so the link is replaced by a directory of the tree."""
    need_tools("rpmbuild", "rpmsign")
    host = tmp_path / "host-dir"
    host.mkdir()
    lines = "mkdir -p $RPM_BUILD_ROOT/etc $RPM_BUILD_ROOT/m && ln -s m $RPM_BUILD_ROOT/a"
    lines += f" && ln -s /a/x/passwd $RPM_BUILD_ROOT/etc/passwd && ln -s {host} $RPM_BUILD_ROOT/m/x"
    first = Spec(
        "first",
        install=f"{lines} && echo f > $RPM_BUILD_ROOT/f",
        file_lines=["/a", "%dir /etc", "/etc/passwd", "%attr(0644,daemon,daemon) /f", "%dir /m", "/m/x"],
    )
    second = Spec("second", install="mkdir -p $RPM_BUILD_ROOT/a/x", files={"/a/x/planted": "planted"})
    second = Spec(second.name, install=second.install, files=second.files, file_lines=["%dir /a/x"])
    rpms = RpmRepo(tmp_path / "repo", gpg_key).build([first, second])
    root = tmp_path / "root"
    unpack_all(root, [("first", rpms[0]), ("second", rpms[1])], JobOptions(), EPOCH)
    assert list(host.iterdir()) == []
    assert not (root / "m/x").is_symlink() and (root / "m/x/planted").read_text() == "planted\n"


@pytest.mark.parametrize("table", [False, True], ids=["no table", "a table of devices only"])
def test_owners_given_late_never_reach_through_a_link(tmp_path: Path, gpg_key: GpgKey, table: bool) -> None:
    """A file whose owner the tree names only later (given after the unpack, `reown`) that a later package
    replaced with a link to a host file: the link is left as it is, the host file's mode and owner untouched."""
    need_tools("rpmbuild", "rpmsign")
    victim = tmp_path / "host-file"
    victim.write_text("host\n")
    victim.chmod(0o600)
    before = os.stat(victim)
    owned = Spec("owned", install="mkdir -p $RPM_BUILD_ROOT/usr/bin && echo hi > $RPM_BUILD_ROOT/usr/bin/x")
    owned = Spec(owned.name, install=owned.install, file_lines=["%attr(0777,app,app) /usr/bin/x"])
    accounts = "mkdir -p $RPM_BUILD_ROOT/etc $RPM_BUILD_ROOT/usr/bin"
    accounts += " && echo 'app:x:1000:1000::/:/bin/sh' > $RPM_BUILD_ROOT/etc/passwd"
    accounts += f" && echo 'app:x:1000:' > $RPM_BUILD_ROOT/etc/group && ln -s {victim} $RPM_BUILD_ROOT/usr/bin/x"
    replacer = Spec("replacer", install=accounts, file_lines=["/etc/passwd", "/etc/group", "/usr/bin/x"])
    rpms = RpmRepo(tmp_path / "repo", gpg_key).build([owned, replacer])
    root = tmp_path / "root"
    overrides = Overrides(owners=False) if table else None
    done = unpack_all(root, [("owned", rpms[0]), ("replacer", rpms[1])], JobOptions(), EPOCH, overrides)
    assert done[0].unknown_owners, "app is not known when the first package is written"
    reown(root, done, overrides)
    after = os.stat(victim)
    assert (stat.S_IMODE(after.st_mode), after.st_uid, after.st_gid) == (0o600, before.st_uid, before.st_gid)
    assert os.readlink(root / "usr/bin/x") == str(victim)


@pytest.mark.parametrize("table", [False, True], ids=["no table", "a table of devices only"])
def test_owners_given_late_go_only_to_the_entry_the_package_wrote(tmp_path: Path, gpg_key: GpgKey, table: bool) -> None:
    """A setuid file of an account the tree names only later, which a later package replaced with a plain file
    of its own (and the accounts): the late owner and the setuid mode are not given to the other package's file."""
    need_tools("rpmbuild", "rpmsign")
    tool = "mkdir -p $RPM_BUILD_ROOT/usr/bin && echo setuid > $RPM_BUILD_ROOT/usr/bin/tool"
    owned = Spec("owned", install=tool, file_lines=["%attr(4755,svc,svc) /usr/bin/tool"])
    accounts = "mkdir -p $RPM_BUILD_ROOT/etc $RPM_BUILD_ROOT/usr/bin"
    accounts += " && echo 'svc:x:1000:1000::/:/bin/sh' > $RPM_BUILD_ROOT/etc/passwd"
    accounts += " && echo 'svc:x:1000:' > $RPM_BUILD_ROOT/etc/group && echo plain > $RPM_BUILD_ROOT/usr/bin/tool"
    lines = ["/etc/passwd", "/etc/group", "%attr(0755,root,root) /usr/bin/tool"]
    replacer = Spec("replacer", install=accounts, file_lines=lines)
    rpms = RpmRepo(tmp_path / "repo", gpg_key).build([owned, replacer])
    root = tmp_path / "root"
    overrides = Overrides(owners=False) if table else None
    done = unpack_all(root, [("owned", rpms[0]), ("replacer", rpms[1])], JobOptions(), EPOCH, overrides)
    assert done[0].unknown_owners, "svc is not known when the first package is written"
    reown(root, done, overrides, last=True)
    st = os.lstat(root / "usr/bin/tool")
    assert (root / "usr/bin/tool").read_text() == "plain\n"
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o755, 0, 0)
    if table:
        assert overrides is not None and overrides.get("usr/bin/tool") is None
    # Not replaced, the same file gets its owner and mode once the account is there.
    alone = accounts_root(tmp_path / "alone")
    done = unpack_all(alone, [("owned", rpms[0])], JobOptions(), EPOCH)
    (alone / "etc/passwd").write_text("svc:x:1000:1000::/:/bin/sh\n")
    (alone / "etc/group").write_text("svc:x:1000:\n")
    reown(alone, done)
    st = os.lstat(alone / "usr/bin/tool")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o4755, 1000, 1000)


def test_a_directory_several_packages_own_gets_its_late_owner(tmp_path: Path, gpg_key: GpgKey) -> None:
    """A directory whose owner the tree names only later, which a later package lists too (and ships the
    account): the directory is kept, and the late owner and mode given to it."""
    need_tools("rpmbuild", "rpmsign")
    owned = Spec(
        "owned", install="mkdir -p $RPM_BUILD_ROOT/var/lib/svc", file_lines=["%attr(0750,svc,svc) %dir /var/lib/svc"]
    )
    accounts = "mkdir -p $RPM_BUILD_ROOT/etc $RPM_BUILD_ROOT/var/lib/svc"
    accounts += " && echo 'svc:x:1000:1000::/:/bin/sh' > $RPM_BUILD_ROOT/etc/passwd"
    accounts += " && echo 'svc:x:1000:' > $RPM_BUILD_ROOT/etc/group"
    sharer = Spec("sharer", install=accounts, file_lines=["/etc/passwd", "/etc/group", "%dir /var/lib/svc"])
    rpms = RpmRepo(tmp_path / "repo", gpg_key).build([owned, sharer])
    root = tmp_path / "root"
    done = unpack_all(root, [("owned", rpms[0]), ("sharer", rpms[1])], JobOptions(), EPOCH)
    reown(root, done, last=True)
    st = os.lstat(root / "var/lib/svc")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o750, 1000, 1000)


def test_device_nodes_are_recorded_never_made(tmp_path: Path, gpg_key: GpgKey) -> None:
    need_tools("rpmbuild", "rpmsign")
    spec = Spec(
        "devices", install="mkdir -p $RPM_BUILD_ROOT/dev", file_lines=["%dev(b, 7, 0) %attr(0666,root,root) /dev/loop0"]
    )
    (rpm,) = RpmRepo(tmp_path / "repo", gpg_key).build([spec])
    root = accounts_root(tmp_path)
    table = Overrides(owners=False)
    unpack_all(root, [("devices", rpm)], JobOptions(), EPOCH, table)
    st = os.lstat(root / "dev/loop0")
    assert stat.S_ISREG(st.st_mode) and st.st_size == 0
    found = table.get("dev/loop0")
    assert found is not None and found.device == Device("blk", 7, 0) and found.mode == 0o666
    with pytest.raises(UnpackError, match="a device node, and this unpack has no table"):
        unpack_all(accounts_root(tmp_path / "bare"), [("devices", rpm)], JobOptions(), EPOCH)


@pytest.mark.parametrize("doc", ["/usr/share/a/README", "/usr/share/z/README"])
def test_hard_link_set_with_a_doc_member(tmp_path: Path, gpg_key: GpgKey, doc: str) -> None:
    """rpm gives a hard link set's data with its last member: when nodocs leaves that one out, another gets it."""
    need_tools("rpmbuild", "rpmsign")
    other = "/usr/share/z/README" if doc.endswith("a/README") else "/usr/share/a/README"
    spec = Spec(
        "linked",
        install="mkdir -p $RPM_BUILD_ROOT/usr/share/a $RPM_BUILD_ROOT/usr/share/z\n"
        "echo shared > $RPM_BUILD_ROOT/usr/share/a/README\n"
        "ln $RPM_BUILD_ROOT/usr/share/a/README $RPM_BUILD_ROOT/usr/share/z/README",
        file_lines=[f"%doc {doc}", other],
    )
    (rpm,) = RpmRepo(tmp_path / "repo", gpg_key).build([spec])
    root = accounts_root(tmp_path)
    (done,) = unpack_all(root, [("linked", rpm)], JobOptions(nodocs=True), EPOCH)
    assert (root / other.lstrip("/")).read_text() == "shared\n"
    assert not (root / doc.lstrip("/")).exists() and done.written == (other,)
