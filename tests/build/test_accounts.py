"""Recipe accounts and local files, written into a tree laid out as the Debian images have it."""

import os
import shutil
import stat
from pathlib import Path

import pytest

from bootstrap.build import accounts, localfiles
from bootstrap.build.recipe import FileSpec, GroupSpec, UserSpec
from bootstrap.errors import RecipeError
from bootstrap.host.tree import Tree

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="files of other owners need root")

EPOCH = 1_750_000_000


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    root = tmp_path / "root"
    (root / "etc/skel").mkdir(parents=True)
    (root / "etc/passwd").write_text(
        "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
    )
    (root / "etc/group").write_text("root:x:0:\nshadow:x:42:\nusers:x:100:\nnogroup:x:65534:\n")
    (root / "etc/shadow").write_text("root:*:20000:0:99999:7:::\n")
    (root / "etc/gshadow").write_text("root:*::\nshadow:*::\nusers:*::\n")
    (root / "etc/login.defs").write_text("PASS_MAX_DAYS\t99999\nPASS_MIN_DAYS\t0\nPASS_WARN_AGE\t7\nHOME_MODE\t0700\n")
    (root / "etc/skel/.profile").write_text("# profile\n")
    os.chmod(root / "etc/shadow", 0o640)
    os.chown(root / "etc/shadow", 0, 42)
    return Tree(root)


def lines(tree: Tree, rel: str) -> list[str]:
    return (tree.root / rel).read_text().splitlines()


def test_users_and_groups_as_useradd_makes_them(tree: Tree) -> None:
    accounts.add(
        tree,
        [GroupSpec("app", 10001)],
        [UserSpec("app", 10001, group="app", shell="/bin/bash", groups=("users",)), UserSpec("svc", 10002)],
        EPOCH,
    )
    day = str(EPOCH // 86400)
    assert lines(tree, "etc/group")[-2:] == ["app:x:10001:", "svc:x:10002:"]
    assert "users:x:100:app" in lines(tree, "etc/group")
    assert lines(tree, "etc/passwd")[-2:] == [
        "app:x:10001:10001::/home/app:/bin/bash",
        "svc:x:10002:10002::/home/svc:/bin/sh",
    ]
    assert lines(tree, "etc/shadow")[-1] == f"svc:!:{day}:0:99999:7:::"
    assert "users:*::app" in lines(tree, "etc/gshadow")
    st = (tree.root / "etc/shadow").stat()
    assert (stat.S_IMODE(st.st_mode), st.st_gid) == (0o640, 42), "shadow keeps its mode and group"
    home = (tree.root / "home/app").stat()
    assert (stat.S_IMODE(home.st_mode), home.st_uid, home.st_gid) == (0o700, 10001, 10001), "HOME_MODE applies"
    profile = (tree.root / "home/app/.profile").stat()
    assert (profile.st_uid, (tree.root / "home/app/.profile").read_text()) == (10001, "# profile\n")


def test_clashes_with_the_image_are_one_line_errors(tree: Tree) -> None:
    with pytest.raises(RecipeError, match="uid 65534 is already in the image"):
        accounts.add(tree, [], [UserSpec("other", 65534)], EPOCH)
    with pytest.raises(RecipeError, match="group users: users is already"):
        accounts.add(tree, [GroupSpec("users", 5000)], [], EPOCH)


def test_local_files_copy_in_with_mode_owner_and_links(tree: Tree, tmp_path: Path) -> None:
    accounts.add(tree, [GroupSpec("app", 10001)], [UserSpec("app", 10001, group="app")], EPOCH)
    src = tmp_path / "src"
    (src / "conf.d").mkdir(parents=True)
    (src / "conf.d/a.conf").write_text("a\n")
    (src / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(src / "run.sh", 0o700)
    (src / "link").symlink_to("/etc/passwd")
    single = tmp_path / "secret"
    single.write_text("s\n")
    localfiles.copy_in(
        tree, [FileSpec(str(single), "/etc/app/secret", 0o640, "app:app"), FileSpec(str(src), "/opt/app", None, "app")]
    )
    secret = (tree.root / "etc/app/secret").stat()
    assert (stat.S_IMODE(secret.st_mode), secret.st_uid, secret.st_gid) == (0o640, 10001, 10001)
    assert stat.S_IMODE((tree.root / "opt/app/run.sh").stat().st_mode) == 0o755, "modes normalised"
    assert (tree.root / "opt/app/conf.d/a.conf").stat().st_uid == 10001
    assert os.readlink(tree.root / "opt/app/link") == "/etc/passwd", "symlinks copied as symlinks"


def test_digests_change_with_what_would_change_the_image(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    (d / "f").write_text("1\n")
    before = localfiles.digest(str(d))
    os.utime(d / "f", (1, 1))
    assert localfiles.digest(str(d)) == before, "times do not reach the image"
    (d / "f").write_text("2\n")
    assert localfiles.digest(str(d)) != before
    os.chmod(d / "f", 0o755)
    changed = localfiles.digest(str(d))
    (d / "g").symlink_to("f")
    assert localfiles.digest(str(d)) != changed


def test_copying_a_directory_leaves_the_image_directories_alone(tree: Tree, tmp_path: Path) -> None:
    """Only directories the copy makes get the recipe's owner and mode: `/`, `/root`, `/tmp` keep theirs."""
    for name, mode in (("root", 0o700), ("tmp", 0o1777)):
        (tree.root / name).mkdir(mode=mode)
        os.chmod(tree.root / name, mode)
    accounts.add(tree, [GroupSpec("app", 10001)], [UserSpec("app", 10001, group="app")], EPOCH)
    src = tmp_path / "overlay"
    (src / "tmp").mkdir(parents=True)
    (src / "root").mkdir()
    (src / "srv/app").mkdir(parents=True)
    (src / "srv/app/run").write_text("x")
    (src / "tmp/note").write_text("n")
    localfiles.copy_in(tree, [FileSpec(str(src), "/", None, "app:app")])
    for rel, mode, uid in (("", 0o755, 0), ("root", 0o700, 0), ("tmp", 0o1777, 0), ("srv/app", 0o755, 10001)):
        st = (tree.root / rel).stat()
        assert (stat.S_IMODE(st.st_mode), st.st_uid) == (mode, uid), rel
    assert (tree.root / "tmp/note").stat().st_uid == 10001, "what the copy writes is the recipe's"
    (tree.root / "etc/app.d").mkdir()
    onto = tmp_path / "onto"
    (onto / "etc").mkdir(parents=True)
    (onto / "etc/app.d").write_text("file where the image has a directory")
    with pytest.raises(RecipeError, match="is a directory in the image"):
        localfiles.copy_in(tree, [FileSpec(str(onto), "/", None, None)])


def test_a_symlinked_account_file_keeps_its_target_mode(tree: Tree) -> None:
    shadow = tree.root / "etc/shadow"
    shadow.rename(tree.root / "etc/shadow.real")
    shadow.symlink_to("shadow.real")
    accounts.add(tree, [], [UserSpec("app", 10001)], EPOCH)
    st = (tree.root / "etc/shadow").lstat()
    assert stat.S_ISREG(st.st_mode), "replaced whole, as useradd replaces it"
    assert (stat.S_IMODE(st.st_mode), st.st_gid) == (0o640, 42), "the mode of the file it named, not the link's 0777"
    assert "app:!" in (tree.root / "etc/shadow").read_text()


def test_a_skel_that_contains_the_home_is_not_copied_into_itself(tree: Tree) -> None:
    shutil.rmtree(tree.root / "etc/skel")
    (tree.root / "home").mkdir()
    (tree.root / "etc/skel").symlink_to("/home")
    accounts.add(tree, [], [UserSpec("app", 10001)], EPOCH)
    assert (tree.root / "home/app").is_dir() and not (tree.root / "home/app/app").exists()


def test_a_private_group_takes_the_lowest_free_gid(tree: Tree) -> None:
    accounts.add(tree, [GroupSpec("taken", 10001)], [UserSpec("app", 10001)], EPOCH)
    assert "app:x:1000:" in lines(tree, "etc/group"), "not 65535 (one past nogroup)"


def test_system_accounts_as_useradd_r_and_groupadd_p_make_them(tree: Tree) -> None:
    """AlmaLinux's `groupadd -r -p '!*' -g 995 systemd-oom` and `useradd -r -g 995 -u 995 -M -d / ...`, with Red
    Hat's locked password `!!`: no ageing fields, no home made; a system user's own group takes the highest free
    system gid (SYS_GID_MAX down)."""
    accounts.add(
        tree,
        [GroupSpec("systemd-oom", 995, password="!*")],
        [
            UserSpec("systemd-oom", 995, gid=995, home="/", shell="/usr/sbin/nologin", comment="OOM", system=True),
            UserSpec("sysd", 100, home="/var/lib/sysd", system=True),
        ],
        EPOCH,
        locked="!!",
    )
    day = str(EPOCH // 86400)
    assert lines(tree, "etc/gshadow")[-2:] == ["systemd-oom:!*::", "sysd:!::"]
    assert lines(tree, "etc/group")[-2:] == ["systemd-oom:x:995:", "sysd:x:999:"]  # gid 100 is `users`'
    assert lines(tree, "etc/passwd")[-2:] == [
        "systemd-oom:x:995:995:OOM:/:/usr/sbin/nologin",
        "sysd:x:100:999::/var/lib/sysd:/bin/sh",
    ]
    assert lines(tree, "etc/shadow")[-2:] == [f"systemd-oom:!!:{day}::::::", f"sysd:!!:{day}::::::"]
    assert not (tree.root / "var/lib/sysd").exists()


def test_backups_hold_each_changed_file_as_it_was(tree: Tree) -> None:
    """The RPM family's builds keep shadow-utils' backups: each account file the accounts change leaves its old
    content in `<file>-` with its mode, owner and date; a file left as it was gets none; without `backups`,
    nothing is written beside the files."""
    before = {name: (tree.root / "etc" / name).read_bytes() for name in ("group", "gshadow", "passwd", "shadow")}
    os.utime(tree.root / "etc/shadow", (EPOCH - 5, EPOCH - 5))
    accounts.add(tree, [GroupSpec("sgx", 996, password="!*")], [], EPOCH, locked="!!", backups=True)
    assert (tree.root / "etc/group-").read_bytes() == before["group"]
    assert (tree.root / "etc/gshadow-").read_bytes() == before["gshadow"]
    assert not (tree.root / "etc/passwd-").exists() and not (tree.root / "etc/shadow-").exists()
    oom = [GroupSpec("systemd-oom", 995)]
    accounts.add(tree, oom, [UserSpec("svc", 995, gid=995, home="/", system=True)], EPOCH, locked="!!", backups=True)
    assert (tree.root / "etc/passwd-").read_bytes() == before["passwd"]
    kept = os.lstat(tree.root / "etc/shadow-")
    assert (tree.root / "etc/shadow-").read_bytes() == before["shadow"]
    assert (stat.S_IMODE(kept.st_mode), kept.st_gid, int(kept.st_mtime)) == (0o640, 42, EPOCH - 5)
    assert "sgx" in (tree.root / "etc/group-").read_text(), "the second change's backup is the first's result"


def test_no_backups_unless_the_family_keeps_them(tree: Tree) -> None:
    accounts.add(tree, [GroupSpec("sgx", 996)], [UserSpec("svc", 995, home="/", system=True)], EPOCH)
    assert not list(tree.root.glob("etc/*-"))


def test_a_backup_is_beside_the_name_not_the_links_target(tree: Tree) -> None:
    """With etc/passwd a link to ../usr/share/passwd, the backup is etc/passwd-, as shadow-utils names it."""
    (tree.root / "usr/share").mkdir(parents=True)
    os.replace(tree.root / "etc/passwd", tree.root / "usr/share/passwd")
    os.symlink("../usr/share/passwd", tree.root / "etc/passwd")
    before = (tree.root / "usr/share/passwd").read_bytes()
    accounts.add(tree, [], [UserSpec("svc", 995, home="/", system=True)], EPOCH, locked="!!", backups=True)
    assert (tree.root / "etc/passwd-").read_bytes() == before
    assert not (tree.root / "usr/share/passwd-").exists()


def test_a_malformed_login_defs_is_read_as_useradd_reads_it(tree: Tree, caplog: pytest.LogCaptureFixture) -> None:
    """The image's login.defs is a package's: a value that is no number (or a field of shadow's, `:`, inside one)
    gives its default, with a warning, as useradd says "configuration error" and goes on; never an internal
    error, never a field written into /etc/shadow; a shadow group whose gid is no number is no crash either."""
    (tree.root / "etc/login.defs").write_text(
        "PASS_MAX_DAYS 1:2:3:evil\nPASS_MIN_DAYS ²\nGID_MIN abc\nGID_MAX 99999999999999\nHOME_MODE 0999\n"
    )
    (tree.root / "etc/group").write_text("root:x:0:\nshadow:x:4x2:\nstaff:x:1000:\n")
    accounts.add(tree, [], [UserSpec("app", 1000)], EPOCH)
    day = str(EPOCH // 86400)
    assert lines(tree, "etc/shadow")[-1] == f"app:!:{day}:0:99999:7:::"
    assert "app:x:1001:" in lines(tree, "etc/group"), "GID_MIN and GID_MAX as their defaults: 1000 to 60000"
    assert stat.S_IMODE((tree.root / "home/app").stat().st_mode) == 0o755
    said = caplog.text
    assert all(k in said for k in ("PASS_MAX_DAYS", "PASS_MIN_DAYS", "GID_MIN", "HOME_MODE"))
