"""Scriptlets run in the sandbox over a real tree (the miniature's shell and libraries): what fails how."""

import os
import subprocess
from pathlib import Path

import pytest

from bootstrap.errors import ConfigureError
from bootstrap.host.sandbox import Sandbox
from bootstrap.host.tree import Tree
from bootstrap.rpm import scriptlets
from bootstrap.rpm.options import JobOptions
from bootstrap.rpm.unpack import Unpacked, unpack_all
from tests.fixtures.rpmrepo import RpmRepo, Spec
from tests.rpm.conftest import EPOCH, need_tools

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox needs root (or a user namespace)")
BASE = ("filesystem-3.18-2.noarch", "glibc-1.0-1.x86_64", "shell-1.0-1.x86_64")


def _tree(distro: tuple[RpmRepo, str], tmp_path: Path, extra: Spec) -> tuple[Path, list[Unpacked]]:
    repo, _ = distro
    (rpm,) = RpmRepo(tmp_path / "repo", repo.key).build([extra])
    items = [(n.split("-")[0], repo.root / "Packages" / f"{n}.rpm") for n in BASE] + [(extra.name, rpm)]
    root = tmp_path / "root"
    return root, unpack_all(root, items, JobOptions(), EPOCH)


def test_a_failing_pre_stops_the_build(rpm_distro: tuple[RpmRepo, str], tmp_path: Path) -> None:
    root, unpacked = _tree(rpm_distro, tmp_path, Spec("broken", pre_sh="echo cannot go on; exit 3"))
    with pytest.raises(ConfigureError, match=r"broken %pre failed \(exit status 3\): cannot go on") as caught:
        scriptlets.run(Tree(root), unpacked, EPOCH, Sandbox(root))
    assert "\n" not in caught.value.message
    assert not (root / scriptlets.STAGE).exists()


def test_a_failing_post_is_a_warning(rpm_distro: tuple[RpmRepo, str], tmp_path: Path) -> None:
    root, unpacked = _tree(rpm_distro, tmp_path, Spec("shaky", post="exit 4"))
    scriptlets.run(Tree(root), unpacked, EPOCH, Sandbox(root))


def test_lua_without_rpm_in_the_tree_is_refused(rpm_distro: tuple[RpmRepo, str], tmp_path: Path) -> None:
    root, unpacked = _tree(rpm_distro, tmp_path, Spec("luaish", pre='print("hi")'))
    with pytest.raises(ConfigureError, match=r"luaish %pre is written in rpm's built-in Lua: the tree has no"):
        scriptlets.run(Tree(root), unpacked, EPOCH, Sandbox(root))


def test_the_plan_is_rpm_order(rpm_distro: tuple[RpmRepo, str], tmp_path: Path) -> None:
    spec = Spec("ordered", pre_sh="echo pre", post="echo post", posttrans="echo posttrans")
    _, unpacked = _tree(rpm_distro, tmp_path, spec)
    whats = [s.what for s in scriptlets.plan(unpacked)]
    assert whats == [
        "shell %post",
        "ordered %pre",
        "ordered %post",
        "ordered %posttrans",
        "glibc %transfiletriggerin",
    ]
    text = scriptlets.driver(scriptlets.plan(unpacked))
    assert f"/bin/sh /{scriptlets.STAGE}/1 1 < /dev/null || " in text
    assert f"< /{scriptlets.STAGE}/4.in" in text


def test_pretrans_and_triggerprein_are_said_and_not_run(
    rpm_distro: tuple[RpmRepo, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A %pretrans prepares an empty root for the unpack, which here has come first: it is not run, and the build
    says so (a shell one would write its mark; the tree's shell runs every other scriptlet)."""
    sections = (
        "%pretrans\necho pretrans > /etc/pretrans-ran\n\n"
        "%triggerprein -- shell\necho triggerprein > /etc/triggerprein-ran"
    )
    root, unpacked = _tree(rpm_distro, tmp_path, Spec("preparer", post="echo post > /etc/post-ran", sections=sections))
    assert scriptlets.passed_over(unpacked) == ["preparer %pretrans", "preparer %triggerprein"]
    assert "%pretrans" not in " ".join(s.what for s in scriptlets.plan(unpacked))
    with caplog.at_level("INFO", logger="bootstrap"):
        scriptlets.run(Tree(root), unpacked, EPOCH, Sandbox(root))
    assert (root / "etc/post-ran").read_text() == "post\n"
    assert not (root / "etc/pretrans-ran").exists() and not (root / "etc/triggerprein-ran").exists()
    assert "not run, as the unpack they prepare for has come first: preparer %pretrans, preparer %triggerprein" in (
        caplog.text
    )


MARKS = "/opt/marks"
COPY = "while read -r line; do echo $line; done"
"""stdin to stdout with the shell's builtins (the tree has no cat)."""
WATCHERS = [
    Spec("early", files={"/opt/watched/early": "e"}),
    Spec(
        "watcher",
        filetrigger=("/opt/watched", f"(echo 'watcher, priority 1000000'; {COPY}) >> {MARKS}"),
        post=f"echo 'watcher %post' >> {MARKS}",
        sections=f"%filetriggerin -P 100 -- /opt/watched /srv\n(echo 'watcher, priority 100'; {COPY}) >> {MARKS}\n\n"
        f"%triggerin -- late\necho 'watcher triggered by late' >> {MARKS}\n\n"
        f"%triggerin -- early >= 1.0\necho 'watcher triggered by early 1.0' >> {MARKS}\n\n"
        f"%triggerin -- early > 1.0\necho 'never: early is 1.0' >> {MARKS}",
    ),
    Spec("late", files={"/opt/watched/late": "l", "/srv/late": "s"}, post=f"echo 'late %post' >> {MARKS}"),
    Spec("closing", transfiletrigger=("/opt", f"(echo 'closing, once'; {COPY}) >> {MARKS}")),
]


def test_file_triggers_fire_per_package_as_rpm_fires_them(rpm_distro: tuple[RpmRepo, str], tmp_path: Path) -> None:
    """The same packages installed by the host's real rpm into another root, in the same order: the marks the
    triggers leave (which ran, in which order, with which paths on stdin) are the same. A %filetriggerin fires for
    each package that brings matching paths, and for its own package with the paths already there; priority 10000
    and above before the package's %post, below it after; a %transfiletriggerin once, at the end."""
    need_tools("rpm")
    repo, _ = rpm_distro
    built = RpmRepo(tmp_path / "repo", repo.key).build(WATCHERS)
    base = [repo.root / "Packages" / f"{n}.rpm" for n in BASE]
    ours = tmp_path / "ours"
    items = [(n.split("-")[0], p) for n, p in zip(BASE, base, strict=True)]
    items += [(s.name, p) for s, p in zip(WATCHERS, built, strict=True)]
    unpacked = unpack_all(ours, items, JobOptions(), EPOCH)
    scriptlets.run(Tree(ours), unpacked, EPOCH, Sandbox(ours))

    theirs = tmp_path / "theirs"
    argv = ["rpm", "--root", str(theirs), "--dbpath", "/var/lib/rpm", "--define", "_db_backend sqlite"]
    subprocess.run([*argv, "--initdb"], check=True)
    install = ["-i", "--nodeps", "--noorder", "--nosignature", "--nodigest", "--ignorearch", "--ignoreos"]
    done = subprocess.run([*argv, *install, *map(str, base + built)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    expected = (theirs / MARKS.lstrip("/")).read_text()
    assert expected.splitlines()[:3] == ["watcher, priority 1000000", "/opt/watched/early", "watcher %post"]
    assert "watcher triggered by early 1.0" in expected and "never" not in expected
    assert (ours / MARKS.lstrip("/")).read_text() == expected
