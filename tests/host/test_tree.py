"""Host-side work on a built tree never leaves it: a tree whose directories are hostile symlinks (absolute,
relative with `..`, loops) makes every step write, read and delete inside the tree only."""

import os
from pathlib import Path

import pytest

from bootstrap.build import foreign
from bootstrap.deb import copyright, dpkgdb, tweaks
from bootstrap.deb.filters import PathFilter
from bootstrap.deb.finish import AptSourceEntry, finish
from bootstrap.host.tree import Tree, TreeError


def snapshot(directory: Path) -> dict[str, bytes | str]:
    out: dict[str, bytes | str] = {}
    for dirpath, dirnames, filenames in os.walk(directory):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            out[str(path.relative_to(directory))] = "dir" if path.is_dir() else path.read_bytes()
    return out


@pytest.fixture
def host(tmp_path: Path) -> Path:
    """A directory standing for the build host: it must come out of every test untouched."""
    h = tmp_path / "host"
    for rel in ("etc/apt/sources.list.d", "var/log/apt", "var/lib/dpkg/info", "usr/bin", "run"):
        (h / rel).mkdir(parents=True)
    (h / "etc/apt/sources.list").write_text("deb host-only\n")
    (h / "var/log/apt/history.log").write_text("host log\n")
    (h / "etc/shadow").write_text("root:host-secret:1:::\n")
    (h / "run/host.pid").write_text("1\n")
    return h


@pytest.fixture
def hostile(tmp_path: Path, host: Path) -> Path:
    root = tmp_path / "root"
    for rel in ("usr/share/doc/pkg", "usr/share/keyrings", "var/lib", "var/cache"):
        (root / rel).mkdir(parents=True)
    (root / "etc").symlink_to(host / "etc")  # absolute, to the host
    (root / "var/log").symlink_to("../../../host/var/log")  # relative, climbing out
    (root / "var/lib/dpkg").symlink_to(host / "var/lib/dpkg")
    (root / "run").symlink_to(str(host / "run"))
    (root / "usr/bin").symlink_to("/../../../../" + str(host / "usr/bin"))
    (root / "usr/share/doc/pkg/copyright").symlink_to("/etc/shadow")
    (root / "srv").symlink_to("srv")  # a loop
    return root


def test_finish_stays_inside_the_tree(hostile: Path, host: Path) -> None:
    before = snapshot(host)
    pfilter = PathFilter.from_lists(["/usr/share/doc/*"], ["/usr/share/doc/*/copyright"])
    finish(
        hostile,
        pfilter,
        [AptSourceEntry("http://127.0.0.1/debian", ("x",), ("main",))],
        "debian.sources",
        ["debian-archive-keyring.pgp"],
        1_700_000_000,
        tweaks.UBUNTU,  # the larger set: diversions, scripts, files under /run and /usr/bin
    )
    assert snapshot(host) == before, "finish wrote or deleted on the host"


def test_absolute_links_resolve_from_the_tree_root(tmp_path: Path) -> None:
    root = tmp_path / "r"
    root.mkdir()
    (root / "etc").symlink_to("/opt/conf")
    Tree(root).write("etc/apt/sources.list", "deb inside\n")
    assert (root / "opt/conf/apt/sources.list").read_text() == "deb inside\n"
    assert Tree(root).read("etc/apt/sources.list") == b"deb inside\n"


def test_dpkg_database_and_interpreter_stay_inside(hostile: Path, host: Path) -> None:
    before = snapshot(host)
    dpkgdb.write(Tree(hostile), [])
    emu = foreign.Emulator("arm64", Path("/bin/true"), fix_binary=False)
    added = foreign.install_interpreter(emu, Tree(hostile))
    assert added is not None
    assert snapshot(host) == before
    assert (hostile / str(host / "var/lib/dpkg/status").lstrip("/")).is_file()


def test_reading_follows_links_only_inside(hostile: Path, host: Path) -> None:
    (hostile / "etc-real").mkdir()
    assert copyright.declared(Tree(hostile), "pkg") == [], "the host's /etc/shadow is never read"
    inside = hostile / str(host).lstrip("/") / "etc"
    inside.mkdir(parents=True)
    (inside / "shadow").write_text("Format: x\nLicense: GPL-2+\n")
    assert copyright.declared(Tree(hostile), "pkg") == ["GPL-2+"], "/etc/shadow is the tree's own"


def test_a_symlink_loop_is_an_error_not_a_hang(hostile: Path) -> None:
    with pytest.raises(TreeError, match="symbolic links"):
        Tree(hostile).write("srv/x", "y")


def test_links_naming_links_twice_are_an_error_not_an_exponential_walk(tmp_path: Path) -> None:
    """Each link's target names the one before twice (through a name that is not there and `..`): every level
    doubles the walk, so 38 levels would be 2^38 lookups. At most MAX_LINKS links are followed in one lookup,
    however they nest, as the kernel counts them."""
    root = tmp_path / "root"
    root.mkdir()
    (root / "a0").symlink_to(".")
    for i in range(1, 39):
        (root / f"a{i}").symlink_to(f"nx/../a{i - 1}/nx/../a{i - 1}")
    with pytest.raises(TreeError, match="symbolic links"):
        Tree(root).write("a38/x", "y")  # before: years of lstat
    assert Tree(root).resolve("a1/x") == "x", "a few links in one lookup are followed as before"


def test_dotdot_stops_at_the_root(tmp_path: Path) -> None:
    root = tmp_path / "r"
    root.mkdir()
    tree = Tree(root)
    tree.write("../../../escaped", "x")
    assert (root / "escaped").read_text() == "x"
    assert not (tmp_path / "escaped").exists()


def test_glob_and_remove_never_follow_a_link(tmp_path: Path, host: Path) -> None:
    root = tmp_path / "r"
    (root / "var").mkdir(parents=True)
    (root / "var/log").symlink_to(host / "var/log")
    tree = Tree(root)
    for match in tree.glob("var/log/apt/*"):
        tree.remove(match)
    tree.remove("var/log")
    assert (host / "var/log/apt/history.log").is_file()
    assert not (root / "var/log").exists()


def test_dotdot_in_a_link_target_goes_up_from_where_a_link_before_it_leads(tmp_path: Path) -> None:
    """`etc/app -> /cur/../conf.d` with `cur -> usr/lib/x/y`: the kernel reaches usr/lib/x/conf.d, not /conf.d."""
    root = tmp_path / "r"
    (root / "usr/lib/x/y").mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "cur").symlink_to("usr/lib/x/y")
    (root / "etc/app").symlink_to("/cur/../conf.d")
    Tree(root).write("etc/app/setting", "1")
    assert (root / "usr/lib/x/conf.d/setting").read_text() == "1"
    assert not (root / "conf.d").exists()


def test_a_replaced_directory_is_not_reached_through_a_stale_alias(tmp_path: Path) -> None:
    root = tmp_path / "r"
    (root / "real/sub").mkdir(parents=True)
    (root / "alias").symlink_to("real")
    tree = Tree(root)
    tree.write("alias/sub/a", "1")  # caches alias/sub -> real/sub
    tree.remove("real/sub")
    (root / "elsewhere").mkdir()
    tree.symlink("real/sub", "/elsewhere")
    tree.write("alias/sub/b", "2")
    assert (root / "elsewhere/b").read_text() == "2"
