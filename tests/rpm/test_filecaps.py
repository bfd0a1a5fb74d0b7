"""File capabilities (`%caps`): the `security.capability` value made from a header's text is what libcap's
setcap writes and what rpm sets installing the package; a build records it for the layer (any builder), and the
layer carries it as a pax record."""

import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from bootstrap.errors import UnpackError
from bootstrap.host.overrides import Overrides
from bootstrap.host.tree import Tree
from bootstrap.image.layer import write_tar
from bootstrap.rpm import filecaps
from bootstrap.rpm.options import JobOptions
from bootstrap.rpm.unpack import unpack_all
from tests.fixtures.gpg import GpgKey
from tests.fixtures.rpmrepo import RpmRepo, Spec
from tests.rpm.conftest import EPOCH, accounts_root, need_tools

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="security.capability is set by root")
TEXTS = [
    "cap_net_raw=p",
    "cap_net_admin,cap_net_raw=ep",
    "cap_setuid=ep",
    "cap_net_raw+ip",
    "cap_sys_admin,cap_checkpoint_restore=p",
    "cap_chown,cap_dac_override=i cap_fowner=p",
    "=p cap_setuid-p",
]
CAPS = "cap_net_admin,cap_net_raw=p"


@as_root
@pytest.mark.parametrize("text", TEXTS)
def test_the_value_is_what_setcap_writes(text: str, tmp_path: Path) -> None:
    need_tools("setcap")
    target = tmp_path / "file"
    target.write_text("x")
    subprocess.run(["setcap", text, str(target)], check=True)
    assert filecaps.attribute(text, "t") == os.getxattr(target, filecaps.ATTRIBUTE)


DIFFERENT = [
    *TEXTS,
    "cap_net_raw=e",
    "cap_net_raw=ep cap_sys_admin+e",
    "CAP_NET_RAW=p",
    "all=p cap_kill-p",
    "=",
    "cap_kill=",
    "cap_kill-p",
    "010=p",
    "0x15=ep",
    "0=i",
    "cap_kill=p\tcap_chown=p",
    "cap_kill=e+p-e",
    "cap_kill=+p",
    "cap_kill=-p",
    "net_raw=p",
    "cap_5=p",
    "cap_kill=e=p",
    "cap_kill+e=p",
    "=e+p",
    "=+p",
    "cap_kill+",
    "cap_kill+p-",
    "cap_kill=+",
    "64=p",
    "0x=p",
    "08=p",
    "cap_kill=P",
    "cap_kill,=p",
    ",cap_kill=p",
    "cap_kill=p\x1ccap_chown=p",
    "cap_nonsense=p",
    "cap_net_raw",
    "cap_net_raw=x",
    "cap_net_raw=p;rm",
    "cap_chown=i cap_kill=pe",
    "allx=p",
    "41=p",
    "63=p",
    "cap_kill+-p",
    "cap_kill=+-p",
    "all=++p+ii",
    "cap_kill--i",
    "cap_kill=e+-p",
]


@as_root
@pytest.mark.parametrize("text", DIFFERENT)
def test_what_setcap_refuses_is_refused_and_what_it_takes_is_read_as_it_reads_it(text: str, tmp_path: Path) -> None:
    """libcap's own parser and cap_set_file (setcap) against this one: where setcap writes a value, this makes
    the same bytes; where it refuses the text, a build fails on it in one line."""
    need_tools("setcap")
    target = tmp_path / "file"
    target.write_text("x")
    done = subprocess.run(["setcap", text, str(target)], capture_output=True)
    if done.returncode == 0:
        assert filecaps.attribute(text, "t") == os.getxattr(target, filecaps.ATTRIBUTE)
    else:
        with pytest.raises(UnpackError, match=r"^pkg: /usr/bin/x: (malformed capabilities|capabilities) '"):
            filecaps.attribute(text, "pkg: /usr/bin/x")


@pytest.mark.parametrize(
    "text", ["cap_nonsense=p", "cap_net_raw", "cap_net_raw=x", "99=p", "cap_net_raw=p;rm", "cap_chown=i cap_kill=pe",
             "net_raw=p", "cap_kill=e=p", "=e+p", "cap_kill+", "cap_\u212aill=p", "cap_kill=p\u2028cap_chown=p"]
)  # fmt: skip
def test_what_is_not_a_capability_text_rpm_can_set_is_refused(text: str) -> None:
    """Not capabilities, or effective for some only (libcap's cap_set_file, and so rpm, refuses those)."""
    with pytest.raises(UnpackError, match=r"^pkg: /usr/bin/x: (malformed capabilities|capabilities) '"):
        filecaps.attribute(text, "pkg: /usr/bin/x")


def test_a_long_hostile_text_is_quoted_short() -> None:
    with pytest.raises(UnpackError) as caught:
        filecaps.attribute("cap_kill=p " * 100_000 + "cap_bogus=p", "t")
    assert len(str(caught.value)) < 400


def test_an_effective_superset_is_dropped_to_the_one_bit_and_no_capabilities_is_still_a_value() -> None:
    """As rpm: `cap_net_raw=e` sets the effective bit alone; `=` writes the revision with nothing set; an empty
    text (a file without capabilities), nothing."""
    assert filecaps.attribute("cap_net_raw=e", "t") == bytes.fromhex("01000002") + bytes(16)
    assert filecaps.attribute("=", "t") == bytes.fromhex("00000002") + bytes(16)
    assert filecaps.attribute("", "t") is None and filecaps.sets("cap_net_raw=p cap_net_raw-p") == (0, 0, 0)


@pytest.fixture(scope="module")
def capped(tmp_path_factory: pytest.TempPathFactory, gpg_key: GpgKey) -> Path:
    need_tools("rpmbuild", "rpmsign")
    spec = Spec(
        "pinger",
        files={"/usr/bin/plain": "plain"},
        install="mkdir -p $RPM_BUILD_ROOT/usr/bin && echo ping > $RPM_BUILD_ROOT/usr/bin/pinger"
        " && ln $RPM_BUILD_ROOT/usr/bin/pinger $RPM_BUILD_ROOT/usr/bin/pinger6",
        file_lines=[f"%caps({CAPS}) /usr/bin/pinger", f"%caps({CAPS}) /usr/bin/pinger6"],
    )
    (rpm,) = RpmRepo(tmp_path_factory.mktemp("caps") / "repo", gpg_key).build([spec])
    return rpm


def test_a_build_records_the_capabilities_for_the_layer(capped: Path, tmp_path: Path) -> None:
    """Recorded in the override table (as any builder, root or not, does), hard links alike, and written by the
    layer as the pax record a container runtime sets back; the file on disk holds none."""
    root = accounts_root(tmp_path)
    table = Overrides(owners=False)
    unpack_all(root, [("pinger", capped)], JobOptions(), EPOCH, table)
    value = filecaps.attribute(CAPS, "t")
    assert value is not None
    assert table.xattrs("usr/bin/pinger") == {filecaps.ATTRIBUTE: value} and table.xattrs("usr/bin/plain") == {}
    assert filecaps.ATTRIBUTE not in os.listxattr(root / "usr/bin/pinger")
    sink = io.BytesIO()
    write_tar(root, EPOCH, sink, table)
    sink.seek(0)
    with tarfile.open(fileobj=sink) as tar:
        members = {m.name: m for m in tar.getmembers()}
    for name in ("usr/bin/pinger", "usr/bin/pinger6"):
        member = members[name]
        got = member.pax_headers.get(f"SCHILY.xattr.{filecaps.ATTRIBUTE}")
        if member.islnk():  # a hard link's entry points at the first, which carries the record
            member = members[member.linkname]
            got = member.pax_headers.get(f"SCHILY.xattr.{filecaps.ATTRIBUTE}")
        assert got is not None and got.encode("utf-8", "surrogateescape") == value, name
    assert f"SCHILY.xattr.{filecaps.ATTRIBUTE}" not in members["usr/bin/plain"].pax_headers
    table.forget("usr/bin/pinger")
    assert table.xattrs("usr/bin/pinger") == {}


@as_root
def test_without_a_table_the_file_gets_what_rpm_sets(capped: Path, tmp_path: Path) -> None:
    """The host's rpm installing the package sets the same value on its file as the unpack does on disk."""
    need_tools("rpm")
    ours = accounts_root(tmp_path / "ours")
    unpack_all(ours, [("pinger", capped)], JobOptions(), EPOCH)
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    cmd = ["rpm", "--root", str(theirs), "--dbpath", "/var/lib/rpm", "-i", "--nodeps", "--noscripts"]
    subprocess.run([*cmd, "--nosignature", str(capped)], check=True, capture_output=True)
    for name in ("usr/bin/pinger", "usr/bin/pinger6"):
        assert os.getxattr(ours / name, filecaps.ATTRIBUTE) == os.getxattr(theirs / name, filecaps.ATTRIBUTE)


def _layer_caps(root: Path, table: Overrides) -> dict[str, str | None]:
    """Each entry of the layer: the capability record it carries (through its first name for a hard link)."""
    sink = io.BytesIO()
    write_tar(root, EPOCH, sink, table)
    sink.seek(0)
    with tarfile.open(fileobj=sink) as tar:
        members = {m.name: m for m in tar.getmembers()}
    key = f"SCHILY.xattr.{filecaps.ATTRIBUTE}"
    out = {}
    for name, m in members.items():
        first = members[m.linkname] if m.islnk() else m
        out[name] = first.pax_headers.get(key)
    return out


@pytest.mark.parametrize("replace", ["write", "symlink", "fifo", "unpacked symlink"])
def test_a_capped_file_replaced_leaves_its_capabilities_behind(
    capped: Path, tmp_path: Path, gpg_key: GpgKey, replace: str
) -> None:
    """What replaces a file with capabilities (the recipe's files, rpm.write, a link, a later package's entry)
    does not inherit them: the other name of the old file keeps them, the new entry has none."""
    root = accounts_root(tmp_path)
    table = Overrides(owners=False)
    unpack_all(root, [("pinger", capped)], JobOptions(), EPOCH, table)
    tree = Tree(root, table)
    if replace == "write":
        tree.write("usr/bin/pinger", "mine\n", 0o755)
    elif replace == "symlink":
        tree.symlink("usr/bin/pinger", "plain")
    elif replace == "fifo":
        tree.remove("usr/bin/pinger")
        tree.mkfifo("usr/bin/pinger")
    else:
        install = "mkdir -p $RPM_BUILD_ROOT/usr/bin && ln -s plain $RPM_BUILD_ROOT/usr/bin/pinger"
        spec = Spec("pinglink", install=install, file_lines=["/usr/bin/pinger"])
        (rpm,) = RpmRepo(tmp_path / "repo", gpg_key).build([spec])
        unpack_all(root, [("pinglink", rpm)], JobOptions(), EPOCH, table)
    caps = _layer_caps(root, table)
    assert caps["usr/bin/pinger"] is None and caps["usr/bin/pinger6"] is not None
    # cleared by name too: a new file may get the inode number of the one it replaced
    assert table.xattrs("usr/bin/pinger") == {} and table.xattrs("usr/bin/pinger6") != {}


def test_capabilities_follow_the_file_a_script_renames_or_links(
    capped: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A scriptlet changes the disk, not the table: the record belongs to the file (its inode), so a renamed file
    keeps it, a new name linked to it (sorting first, so the layer's regular entry) has it, what took the old
    name has none, and a file removed is named in a warning rather than its record landing elsewhere."""
    root = accounts_root(tmp_path)
    table = Overrides(owners=False)
    unpack_all(root, [("pinger", capped)], JobOptions(), EPOCH, table)
    bin_ = root / "usr/bin"
    os.rename(bin_ / "pinger", bin_ / "pinger.real")
    (bin_ / "pinger").mkdir()
    os.link(bin_ / "pinger6", bin_ / "apinger")
    caps = _layer_caps(root, table)
    assert caps["usr/bin/pinger.real"] is not None and caps["usr/bin/apinger"] is not None
    assert caps["usr/bin/pinger"] is None and caps["usr/bin/plain"] is None
    for name in ("pinger.real", "pinger6", "apinger"):
        os.unlink(bin_ / name)
    with caplog.at_level("WARNING"):
        caps = _layer_caps(root, table)
    assert not any(caps.values())
    assert "/usr/bin/pinger: removed or rewritten by a script, so its security.capability is not" in caplog.text


def test_a_file_a_script_rewrites_or_makes_anew_does_not_take_the_capabilities(
    capped: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The kernel drops a rewritten file's capabilities, and a new file may get the inode number of one removed
    (ext4 gives the next file the number just freed): neither is taken for the file recorded."""
    root = accounts_root(tmp_path)
    table = Overrides(owners=False)
    unpack_all(root, [("pinger", capped)], JobOptions(), EPOCH, table)
    bin_ = root / "usr/bin"
    with open(bin_ / "pinger", "r+b") as f:  # as a script's sed -i would not, in place: same inode, new content
        f.write(b"pong")
    with caplog.at_level("WARNING"):
        caps = _layer_caps(root, table)
    assert caps["usr/bin/pinger"] is None and caps["usr/bin/pinger6"] is None
    assert "removed or rewritten by a script" in caplog.text
    root2 = accounts_root(tmp_path / "again")
    table2 = Overrides(owners=False)
    unpack_all(root2, [("pinger", capped)], JobOptions(), EPOCH, table2)
    old = os.lstat(root2 / "usr/bin/pinger").st_ino
    for name in ("pinger", "pinger6"):
        os.unlink(root2 / "usr/bin" / name)
    made = []
    for n in range(50):  # new files until one takes the freed number (if the file system reuses it at all)
        new = root2 / f"usr/bin/new{n}"
        new.write_bytes(b"ping\n")
        made.append(new.name)
        if os.lstat(new).st_ino == old:
            break
    caps = _layer_caps(root2, table2)
    assert not any(caps[f"usr/bin/{name}"] for name in made)
