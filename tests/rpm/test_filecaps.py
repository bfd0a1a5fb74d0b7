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


@pytest.mark.parametrize(
    "text", ["cap_nonsense=p", "cap_net_raw", "cap_net_raw=x", "99=p", "cap_net_raw=p;rm", "cap_chown=i cap_kill=pe"]
)
def test_what_is_not_a_capability_text_rpm_can_set_is_refused(text: str) -> None:
    """Not capabilities, or effective for some only (libcap's cap_set_file, and so rpm, refuses those)."""
    with pytest.raises(UnpackError, match=r"^pkg: /usr/bin/x: (unknown capability|malformed capability|capabilities)"):
        filecaps.attribute(text, "pkg: /usr/bin/x")


def test_no_capabilities_write_nothing() -> None:
    assert filecaps.attribute("=", "t") is None and filecaps.sets("cap_net_raw=p cap_net_raw-p") == (0, 0, 0)


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
