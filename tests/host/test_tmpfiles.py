"""`systemd-tmpfiles --create [--boot]` on an image tree from the host (bootstrap/host/tmpfiles.py): each type
that creation acts on, the configuration's precedence and order, owners from the tree's own account files, what is
passed over (devices, ACLs, host specifiers, boot lines without --boot), and nothing reaching outside the tree."""

import logging
import os
import stat
from pathlib import Path

import pytest

from bootstrap.errors import BootstrapError
from bootstrap.host import tmpfiles
from bootstrap.host.overrides import Device, Override, Overrides
from bootstrap.host.tree import Tree

PASSWD = "root:x:0:0::/root:/bin/sh\nsvc:x:995:995::/:/sbin/nologin\n"
GROUP = "root:x:0:\nutmp:x:22:\nsvc:x:995:\n"


def _tree(tmp_path: Path, configs: dict[str, str]) -> Tree:
    root = tmp_path / "root"
    for rel, text in {"etc/passwd": PASSWD, "etc/group": GROUP, **configs}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return Tree(root, Overrides(default_owner=(0, 0)))  # owners recorded: no root needed


def _seen(tree: Tree, rel: str) -> tuple[str, int, int, int]:
    st = tree.lstat(rel)
    assert st is not None, rel
    kind = "dir" if stat.S_ISDIR(st.st_mode) else "link" if stat.S_ISLNK(st.st_mode) else "file"
    if stat.S_ISFIFO(st.st_mode):
        kind = "fifo"
    return kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid


CONF = r"""# a comment, then one line of each kind creation acts on
d /run/lock/subsys 0700 root root -
D /var/tmp/empty 1777 - - -
f /run/utmp 0664 root utmp -
f /var/log/made.log 0640 svc svc - first\nsecond
F /etc/truncated 0600 - - - new
w /etc/written - - - - written\ttab
L /etc/mtab - - - - ../proc/self/mounts
L+ /etc/replaced - - - - target
C /root/.bashrc - - - - /usr/share/rootfiles/.bashrc
C /srv/tree - - - - /usr/share/factory/srv/tree
p /run/pipe 0600 svc - -
e /var/cache/private 0700 - - -
z /etc/group 0640 - utmp -
d! /run/boot-only 0755 - - -
c /dev/null-copy 0666 - - - 1:3
a+ /var/log - - - - group:svc:r-x
x /tmp/keep-*
d /var/lib/host-%m 0755 - - -
d %S/state 0700 - - -
"""


def test_each_kind_creation_acts_on(tmp_path: Path) -> None:
    tree = _tree(
        tmp_path,
        {
            "usr/lib/tmpfiles.d/base.conf": CONF,
            "etc/truncated": "old content",
            "etc/written": "old",
            "etc/replaced": "a file",
            "usr/share/rootfiles/.bashrc": "# root's bashrc\n",
            "usr/share/factory/srv/tree/sub/file": "copied",
        },
    )
    (tree.root / "var/cache/private").mkdir(parents=True)
    os.symlink("file", tree.root / "usr/share/factory/srv/tree/sub/link")
    applied = tmpfiles.apply(tree, ["/usr/lib/tmpfiles.d/base.conf"])

    assert _seen(tree, "run/lock/subsys") == ("dir", 0o700, 0, 0)
    assert _seen(tree, "var/tmp/empty") == ("dir", 0o1777, 0, 0)
    assert _seen(tree, "run/utmp") == ("file", 0o664, 0, 22)
    assert (tree.root / "run/utmp").read_bytes() == b""
    assert _seen(tree, "var/log/made.log") == ("file", 0o640, 995, 995)
    assert (tree.root / "var/log/made.log").read_text() == "first\nsecond"  # C escapes, no newline added
    assert (tree.root / "etc/truncated").read_text() == "new"
    assert _seen(tree, "etc/truncated")[1] == 0o600
    assert (tree.root / "etc/written").read_text() == "written\ttab"
    assert os.readlink(tree.root / "etc/mtab") == "../proc/self/mounts"
    assert os.readlink(tree.root / "etc/replaced") == "target"
    assert (tree.root / "root/.bashrc").read_text() == "# root's bashrc\n"
    assert (tree.root / "srv/tree/sub/file").read_text() == "copied"
    assert os.readlink(tree.root / "srv/tree/sub/link") == "file"
    assert _seen(tree, "run/pipe") == ("fifo", 0o600, 995, 0)
    assert _seen(tree, "var/cache/private")[1] == 0o700
    assert _seen(tree, "etc/group") == ("file", 0o640, 0, 22)
    # passed over: boot-only without --boot, a device node, an ACL, a host specifier; cleaning is not creation
    for absent in ("run/boot-only", "dev/null-copy"):
        assert not (tree.root / absent).exists(), absent
    assert os.listdir(tree.root / "var/lib") == ["state"]  # %S is /var/lib; %m (the host's machine id) is not read
    assert _seen(tree, "var/lib/state")[1] == 0o700
    assert applied == 14


def test_boot_lines_with_boot(tmp_path: Path) -> None:
    tree = _tree(tmp_path, {"usr/lib/tmpfiles.d/boot.conf": "d! /run/boot-only 0711 - - -\nd /run/always\n"})
    tmpfiles.apply(tree, [tmpfiles.ALL], boot=True)
    assert _seen(tree, "run/boot-only") == ("dir", 0o711, 0, 0)
    assert _seen(tree, "run/always") == ("dir", 0o755, 0, 0)


def test_what_exists_is_kept(tmp_path: Path) -> None:
    """f and C leave an existing file's content alone; L leaves what is there; d on a file is passed over."""
    tree = _tree(
        tmp_path,
        {
            "usr/lib/tmpfiles.d/a.conf": "f /etc/kept 0600 - - - new\nC /etc/copied - - - - /etc/src\n"
            "L /etc/link - - - - elsewhere\nd /etc/file-not-dir\n",
            "etc/kept": "mine",
            "etc/copied": "mine too",
            "etc/src": "source",
            "etc/link": "a file",
            "etc/file-not-dir": "x",
        },
    )
    tmpfiles.apply(tree, [tmpfiles.ALL])
    assert (tree.root / "etc/kept").read_text() == "mine"
    assert _seen(tree, "etc/kept")[1] == 0o600  # but its mode is set
    assert (tree.root / "etc/copied").read_text() == "mine too"
    assert (tree.root / "etc/link").read_text() == "a file"
    assert (tree.root / "etc/file-not-dir").is_file()


def test_precedence_and_order(tmp_path: Path) -> None:
    """/etc's file hides /usr/lib's of the same name; files are read by name; a path's first line wins; a
    link to /dev/null masks; a parent's item runs before its child's, whichever file says it first."""
    tree = _tree(
        tmp_path,
        {
            "usr/lib/tmpfiles.d/a.conf": "d /srv/a/child 0700 - - -\n",
            "usr/lib/tmpfiles.d/b.conf": "d /srv/a 0711 - - -\nd /srv/hidden\n",
            "etc/tmpfiles.d/b.conf": "d /srv/a 0750 - - -\nd /srv/from-etc\n",
            "usr/lib/tmpfiles.d/c.conf": "d /srv/from-c\n",
            "run/tmpfiles.d/z.conf": "d /srv/a 0777 - - -\n",
        },
    )
    os.symlink("/dev/null", tree.root / "etc/tmpfiles.d/c.conf")
    tmpfiles.apply(tree, [tmpfiles.ALL])
    assert _seen(tree, "srv/a")[1] == 0o750  # etc/b.conf's line: a.conf only makes the child; z.conf comes later
    assert _seen(tree, "srv/a/child")[1] == 0o700
    assert (tree.root / "srv/from-etc").is_dir()
    assert not (tree.root / "srv/hidden").exists()
    assert not (tree.root / "srv/from-c").exists()
    plan = tmpfiles.plan(tree, [tmpfiles.ALL], boot=False)
    assert [i.path for i in plan][:2] == ["/srv/a", "/srv/a/child"]


def test_owners_come_from_the_tree_not_the_host(tmp_path: Path) -> None:
    """A name the image lacks is passed over, even when the build host has it."""
    tree = _tree(tmp_path, {"usr/lib/tmpfiles.d/o.conf": "d /srv/x 0755 daemon - -\nd /srv/y 0755 995 svc -\n"})
    tmpfiles.apply(tree, [tmpfiles.ALL])
    assert not (tree.root / "srv/x").exists()
    assert _seen(tree, "srv/y") == ("dir", 0o755, 995, 995)


def test_nothing_reaches_outside_the_tree(tmp_path: Path) -> None:
    """Links in the tree pointing at the host's directories lead inside the tree; a copy source or a glob through
    them reads the tree, not the host."""
    outside = tmp_path / "outside"
    (outside / "etc").mkdir(parents=True)
    (outside / "secret").write_text("host secret")
    (outside / "etc/victim").write_text("host file")
    tree = _tree(
        tmp_path,
        {
            "usr/lib/tmpfiles.d/evil.conf": (
                f"d /escape/made 0755 - - -\nf /escape/etc/victim 0777 - - -\nw /escape/etc/* - - - - owned\n"
                f"C /stolen - - - - {outside}/secret\nz /escape/etc/* 0777 - - -\n"
            ),
        },
    )
    os.symlink(str(outside), tree.root / "escape")  # absolute: inside the image it names a path under the root
    tmpfiles.apply(tree, [tmpfiles.ALL])
    assert sorted(p.name for p in outside.iterdir()) == ["etc", "secret"]
    assert (outside / "etc/victim").read_text() == "host file"
    assert stat.S_IMODE((outside / "etc/victim").stat().st_mode) != 0o777
    assert not (tree.root / "stolen").exists()
    inside = tree.root / str(outside).lstrip("/")
    assert (inside / "made").is_dir()
    assert (inside / "etc/victim").read_text() == "owned"  # made, written and chmod'ed inside the tree
    assert _seen(tree, f"{str(outside).lstrip('/')}/etc/victim")[1] == 0o777


def test_what_is_left_out_by_design_is_counted_not_warned(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Device nodes, ACLs, credentials, the build host's ids and a copy whose source the image lacks (systemd's
    etc.conf names /usr/share/factory files few images have) are left out quietly: one count, each line at -v."""
    lines = (
        "c /dev/x 0666 - - - 1:3\na+ /srv - - - - u:svc:r\nd^ /srv/c\nd /var/lib/%m\nd /var/lib/%b\n"
        "C! /etc/issue\nd /srv/kept\n"
    )
    tree = _tree(tmp_path, {"usr/lib/tmpfiles.d/quiet.conf": lines})
    caplog.set_level(logging.DEBUG, logger="bootstrap")
    assert tmpfiles.apply(tree, [tmpfiles.ALL], boot=True) == 1
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "tmpfiles: 6 line(s) left out by design" in caplog.text
    assert all(f"quiet.conf:{n}: " in caplog.text for n in range(1, 7))
    assert "specifier %m names the build host" in caplog.text and (tree.root / "srv/kept").is_dir()


def test_a_named_file_must_be_in_the_image(tmp_path: Path) -> None:
    tree = _tree(tmp_path, {})
    with pytest.raises(BootstrapError, match=r"rpm.tmpfiles: /usr/lib/tmpfiles.d/rootfiles.conf is not in the image"):
        tmpfiles.apply(tree, ["/usr/lib/tmpfiles.d/rootfiles.conf"])


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("d /var/lib/%Z", "unknown specifier %Z"),
        ("d relative/path", "not absolute"),
        ("d /srv/../etc", "climbs"),
        ("d /srv 99x", "not octal"),
        ("Y /srv", "unknown type"),
    ],
)
def test_a_bad_line_is_said_and_passed_over(
    tmp_path: Path, line: str, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    tree = _tree(tmp_path, {"usr/lib/tmpfiles.d/bad.conf": f"{line}\nd /srv/after\n"})
    tmpfiles.apply(tree, [tmpfiles.ALL])
    assert why in caplog.text and "bad.conf:1" in caplog.text
    assert (tree.root / "srv/after").is_dir()


def test_w_writes_through_a_link_and_a_repeated_line_is_quiet(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    tree = _tree(
        tmp_path,
        {
            "usr/lib/tmpfiles.d/a.conf": "w+ /etc/link - - - - more\nd /srv/same 0700\n",
            "usr/lib/tmpfiles.d/b.conf": "d /srv/same 0700\nd /srv/same 0755\n",
            "etc/real": "some",
        },
    )
    os.symlink("real", tree.root / "etc/link")
    tmpfiles.apply(tree, [tmpfiles.ALL])
    assert os.readlink(tree.root / "etc/link") == "real"
    assert (tree.root / "etc/real").read_text() == "somemore"
    assert _seen(tree, "srv/same")[1] == 0o700
    assert caplog.text.count("a second line for /srv/same") == 1 and "b.conf:2" in caplog.text


def test_a_file_a_script_made_gigabytes_long_is_never_read_whole(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A sparse file of 1 GiB (nothing on disk) that a `w+` line appends to, or a `C` line copies: each line is
    passed over with a warning naming the file, read no further than the limit; the next line still applies."""
    conf = "w+ /etc/sparse - - - - more\nC /etc/copy - - - - /usr/share/sparse\nd /srv/after 0700\n"
    tree = _tree(tmp_path, {"usr/lib/tmpfiles.d/a.conf": conf, "etc/sparse": "", "usr/share/sparse": ""})
    for rel in ("etc/sparse", "usr/share/sparse"):
        os.truncate(tree.root / rel, 1 << 30)
    assert tmpfiles.apply(tree, [tmpfiles.ALL]) == 1
    assert "/etc/sparse is larger than 64 MiB" in caplog.text
    assert "/usr/share/sparse is larger than 64 MiB" in caplog.text
    assert (tree.root / "etc/sparse").stat().st_blocks == 0 and not (tree.root / "etc/copy").exists()
    assert _seen(tree, "srv/after")[0] == "dir"


def test_hostile_lines_and_account_files_are_passed_over_not_fatal(tmp_path: Path) -> None:
    """Lines and ids a package could ship to stop the build: each is a warning, the next line still applies."""
    lines = (
        '"" /srv/empty-type\nf~ /srv/b64 - - - - not*base64\nd /srv/u 0755 99999999999 - -\n'
        "d /srv/sup 0755 \u00b2 - -\nd /srv/after\n"
    )
    tree = _tree(tmp_path, {"usr/lib/tmpfiles.d/evil.conf": lines})
    (tree.root / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\nodd:x:\u00b2:0::/:/bin/sh\n")
    assert tmpfiles.apply(tree, [tmpfiles.ALL]) == 1
    assert [p.name for p in (tree.root / "srv").iterdir()] == ["after"]


def test_creation_only_settings_bytes_hidden_files_and_pipes(tmp_path: Path) -> None:
    """`:` before a mode or owner sets it only on what the line makes; `\\xff` is one byte; a hidden file in a
    tmpfiles.d directory is no configuration; `p` leaves a directory in its place alone."""
    conf = "d /srv/kept :0700 :svc - -\nd /srv/made :0700 :svc - -\nf /srv/bytes - - - - \\xff\\101\np /srv/dir 0600\n"
    tree = _tree(tmp_path, {"usr/lib/tmpfiles.d/a.conf": conf, "etc/tmpfiles.d/.hidden.conf": "d /srv/hidden\n"})
    (tree.root / "srv/kept").mkdir(parents=True)
    (tree.root / "srv/dir").mkdir()
    tmpfiles.apply(tree, [tmpfiles.ALL])
    assert _seen(tree, "srv/kept") == ("dir", 0o755, 0, 0)
    assert _seen(tree, "srv/made") == ("dir", 0o700, 995, 0)
    assert (tree.root / "srv/bytes").read_bytes() == b"\xffA"
    assert not (tree.root / "srv/hidden").exists()
    assert _seen(tree, "srv/dir") == ("dir", 0o755, 0, 0)


def test_a_recorded_device_node_stays_one(tmp_path: Path) -> None:
    """In a build that records devices, `z` on a device node changes its mode and owner, not its kind; the host
    never opens it."""
    tree = _tree(tmp_path, {"usr/lib/tmpfiles.d/z.conf": "z /dev/null 0600 svc -\n", "dev/null": ""})
    assert tree.overrides is not None
    tree.overrides.set("dev/null", 0, 0, 0o666, Device("chr", 1, 3))
    tmpfiles.apply(tree, [tmpfiles.ALL])
    assert tree.overrides.get("dev/null") == Override(995, 0, 0o600, Device("chr", 1, 3))


def test_links_are_reowned_escaped_paths_unescaped_and_copies_keep_pipes_and_hard_links(tmp_path: Path) -> None:
    """As systemd-tmpfiles: `z`/`Z` give a symbolic link its owner (lchown, no mode); C escapes in a path field
    are undone (`\\x20` is a space; a NUL passes the line over); `C` copies a named pipe as one and a file's second
    name as a hard link to the copy."""
    conf = (
        "z /srv/link - svc svc\nZ /srv/z 0700 svc -\nd /srv/with\\x20space 0750\nd /srv/nul\\x00x 0755\n"
        "d '/srv/quoted\\x21' 0755\nC /srv/copy - - - - /usr/share/factory/srv/copy\n"
    )
    tree = _tree(tmp_path, {"usr/lib/tmpfiles.d/a.conf": conf, "srv/target": "x", "srv/z/f": "y"})
    os.symlink("target", tree.root / "srv/link")
    os.symlink("f", tree.root / "srv/z/inner")
    factory = tree.root / "usr/share/factory/srv/copy"
    factory.mkdir(parents=True)
    (factory / "one").write_text("same file")
    os.link(factory / "one", factory / "two")
    os.mkfifo(factory / "pipe")
    os.chmod(factory / "pipe", 0o620)
    assert tmpfiles.apply(tree, [tmpfiles.ALL]) == 5  # every line applied but the NUL one
    assert _seen(tree, "srv/link") == ("link", 0o777, 995, 995)
    assert _seen(tree, "srv/z/inner")[2] == 995 and _seen(tree, "srv/z/f") == ("file", 0o700, 995, 0)
    assert _seen(tree, "srv/with space") == ("dir", 0o750, 0, 0)
    assert (tree.root / "srv/quoted!").is_dir() and not any("nul" in p.name for p in (tree.root / "srv").iterdir())
    one, two = os.lstat(tree.root / "srv/copy/one"), os.lstat(tree.root / "srv/copy/two")
    assert (one.st_ino, one.st_nlink) == (two.st_ino, 2) and (tree.root / "srv/copy/two").read_text() == "same file"
    assert _seen(tree, "srv/copy/pipe") == ("fifo", 0o620, 0, 0)


def test_escapes_are_systemds_and_a_bad_one_passes_the_line_over(tmp_path: Path) -> None:
    """`\\u00e9` is a character, `\\101` a byte; `\\q`, `\\7` and `\\777` are not escapes systemd takes, and a NUL
    in an argument is refused: each such line is said and passed over, the others apply."""
    conf = (
        "d /srv/caf\\u00e9\\101 0755\nd /srv/bad\\q 0755\nd /srv/bad\\7 0755\nd /srv/bad\\777 0755\n"
        "f /srv/nul - - - - a\\x00b\nd /srv/last 0755\n"
    )
    tree = _tree(tmp_path, {"usr/lib/tmpfiles.d/e.conf": conf})
    assert tmpfiles.apply(tree, [tmpfiles.ALL]) == 2
    assert sorted(p.name for p in (tree.root / "srv").iterdir()) == ["caf\u00e9A", "last"]
