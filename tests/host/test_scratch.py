"""Scratch directories a killed build leaves are swept by the next one, and nothing else is; outputs replace
only what was an output."""

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bootstrap.errors import BootstrapError
from bootstrap.host import outputs, scratch
from bootstrap.host.tree import remove_tree
from bootstrap.records.outputs import is_output


def _killed_in_a_claim(parent: Path, first: str = "") -> Path:
    """The scratch directory of a build killed with SIGKILL while it held it, after running `first` (Python, with
    the directory as `d`): its lock file stays, but nobody holds it."""
    killed = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, signal, sys; from pathlib import Path; from bootstrap.host import scratch\n"
            "from bootstrap.host.tree import remove_tree\n"
            "with scratch.claimed(Path(sys.argv[1]), 'bootstrap-') as d:\n"
            f"    {first or 'pass'}; print(d, flush=True); os.kill(os.getpid(), signal.SIGKILL)",
            str(parent),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert killed.returncode == -9, killed.stderr
    return Path(killed.stdout.strip())


def test_an_abandoned_directory_is_swept_and_a_live_one_is_not(tmp_path: Path) -> None:
    with scratch.claimed(tmp_path, "bootstrap-") as live:
        (live / "root").mkdir()
        left = _killed_in_a_claim(tmp_path)
        assert left.is_dir() and Path(f"{left}.lock").exists()
        assert scratch.sweep(tmp_path, "bootstrap-") == [left]
        assert live.is_dir() and not left.exists() and not Path(f"{left}.lock").exists()


def test_a_lock_left_without_its_directory_is_swept_and_a_held_one_is_not(tmp_path: Path) -> None:
    # SIGKILL between removing the scratch directory and its lock (the background thread removes a packed
    # platform's workspace while the outputs are written).
    orphan = Path(f"{_killed_in_a_claim(tmp_path, 'remove_tree(d)')}.lock")
    assert orphan.is_file() and not orphan.with_suffix("").exists()
    # A live process between taking a name and moving a directory to it (retire) holds a lock with no directory.
    held, fd = scratch._new_name(tmp_path, "bootstrap-", make=False)
    try:
        assert scratch.sweep(tmp_path, "bootstrap-") == [orphan]
        assert not orphan.exists() and Path(f"{held}.lock").is_file()
    finally:
        scratch._unlock(held, fd)
    assert list(tmp_path.iterdir()) == []


def test_a_name_whose_lock_a_sweep_took_before_it_was_locked_is_not_used(tmp_path: Path) -> None:
    # A sweep may remove a new lock in the moment between its making and its locking: the name is not used.
    made: list[Path] = []
    real_open = os.open

    def open_then_sweep(path: str | Path, flags: int, mode: int = 0o777) -> int:
        fd = real_open(path, flags, mode)
        if flags & os.O_EXCL and not made:
            made.append(Path(path))
            assert scratch.sweep(tmp_path, "bootstrap-") == [Path(path)]
        return fd

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "open", open_then_sweep)
        path, fd = scratch._new_name(tmp_path, "bootstrap-", make=True)
    try:
        assert made and Path(f"{path}.lock") != made[0] and not made[0].exists()
        assert path.is_dir() and scratch.sweep(tmp_path, "bootstrap-") == []
    finally:
        scratch._unlock(path, fd)
        path.rmdir()


@pytest.mark.skipif(os.geteuid() != 0, reason="a lock of another user needs root to make")
def test_what_is_not_a_scratch_directory_of_ours_is_left_alone(tmp_path: Path) -> None:
    notes = tmp_path / "bootstrap-notes123"
    notes.mkdir()
    (tmp_path / "bootstrap-notes123.lock").write_text("")
    os.chown(tmp_path / "bootstrap-notes123.lock", 65534, 65534)  # another user's lock
    fifo = tmp_path / "bootstrap-fifo1234"
    fifo.mkdir()
    os.mkfifo(tmp_path / "bootstrap-fifo1234.lock")  # would hang an open() without O_NONBLOCK
    odd = tmp_path / "bootstrap-notatoken"
    odd.mkdir()
    (tmp_path / "bootstrap-notatoken.lock").write_text("")
    assert scratch.sweep(tmp_path, "bootstrap-") == []
    assert notes.is_dir() and fifo.is_dir() and odd.is_dir()


def test_a_deep_tree_does_not_stop_the_sweep(tmp_path: Path) -> None:
    with scratch.claimed(tmp_path, "bootstrap-") as d:
        fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
        for _ in range(1500):  # deeper than Python's recursion limit
            os.mkdir("a", dir_fd=fd)
            below = os.open("a", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = below
        os.close(fd)
    (tmp_path / f"{d.name}.lock").write_text("")  # as a killed build leaves it
    assert scratch.sweep(tmp_path, "bootstrap-") == [d]
    assert not d.exists()


def test_remove_tree_never_follows_a_link(tmp_path: Path) -> None:
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "precious").write_text("x")
    doomed = tmp_path / "doomed"
    (doomed / "sub").mkdir(parents=True)
    (doomed / "sub/link").symlink_to(keep)
    (doomed / "link2").symlink_to(keep / "precious")
    remove_tree(doomed)
    assert not doomed.exists() and (keep / "precious").read_text() == "x"


def summary(generation: str) -> str:
    """A build.json as bootstrap writes one (what marks a directory as an earlier output)."""
    return json.dumps({"tool": {"name": "bootstrap"}, "generation": generation})


def test_a_directory_that_is_not_wholly_an_earlier_output_is_never_replaced(tmp_path: Path) -> None:
    """A directory of the user's that happens to hold a build.json (not bootstrap's), or bootstrap's output with a
    file of the user's put in it (before the build or while it runs): refused in one line, every file kept."""
    theirs = tmp_path / "proj"
    theirs.mkdir()
    (theirs / "build.json").write_text('{"name": "not bootstrap"}')
    (theirs / "src.c").write_text("precious")
    with pytest.raises(BootstrapError, match="holds no earlier output"), outputs.staged(theirs, is_output):
        pass
    out = tmp_path / "out"
    with outputs.staged(out, is_output) as stage:
        (stage / "build.json").write_text(summary("1"))
        (stage / "rootfs-arm64.tar.zst").write_text("layer")
    (out / "notes.txt").write_text("mine")
    refused = pytest.raises(BootstrapError, match="holds 'notes.txt', which bootstrap does not write")
    with refused, outputs.staged(out, is_output):
        pass
    (out / "notes.txt").unlink()
    with pytest.raises(BootstrapError, match="holds 'late.txt'"), outputs.staged(out, is_output) as stage:
        (stage / "build.json").write_text(summary("2"))
        (out / "late.txt").write_text("written while the build ran")
    assert sorted(p.name for p in out.iterdir()) == ["build.json", "late.txt", "rootfs-arm64.tar.zst"]
    assert sorted(p.name for p in theirs.iterdir()) == ["build.json", "src.c"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "proj"], "no staging directory left"


def test_outputs_replace_only_an_earlier_output(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.tex").write_text("years of work")
    with pytest.raises(BootstrapError, match="holds no earlier output"), outputs.staged(home) as stage:
        (stage / "build.json").write_text("{}")
    assert (home / "thesis.tex").read_text() == "years of work"
    out = tmp_path / "out"
    for generation in ("1", "2"):
        with outputs.staged(out) as stage:
            (stage / "build.json").write_text(summary(generation))
    assert (out / "build.json").read_text() == summary("2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "out"], "no staging or old directories left"


def test_retire_removes_a_claimed_directory_and_leaves_no_lock(tmp_path: Path) -> None:
    with scratch.claimed(tmp_path, "build-") as path:
        (path / "sub").mkdir()
        (path / "sub/file").write_text("x")
        scratch.retire(path, "build-")
        assert [p.name for p in tmp_path.iterdir()] == [path.name + ".lock"], "only the claim's own lock is left"
    assert list(tmp_path.iterdir()) == []


def test_retire_after_the_parent_went_is_quiet(tmp_path: Path) -> None:
    parent = tmp_path / "cache-tmp"
    parent.mkdir()
    with scratch.claimed(parent, "build-") as path:
        remove_tree(parent)
        scratch.retire(path, "build-")
    assert not parent.exists()


def _held_by_someone(lock: Path) -> bool:
    fd = os.open(lock, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def test_a_sweep_holds_the_lock_while_it_removes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two builds sweeping one place at once: the second skips what the first is removing (removing it alongside,
    the first to finish took the lock away while the other's part was still there, for no sweep to find)."""
    left = _killed_in_a_claim(tmp_path)
    held: list[bool] = []

    def remove(path: Path) -> None:
        held.append(_held_by_someone(Path(f"{path}.lock")))
        assert scratch.sweep(tmp_path, "bootstrap-") == [], "a second sweep meanwhile removes nothing"
        remove_tree(path)

    monkeypatch.setattr(scratch, "remove_tree", remove)
    assert scratch.sweep(tmp_path, "bootstrap-") == [left]
    assert held == [True] and list(tmp_path.iterdir()) == []


def test_remove_tree_says_when_something_below_went_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    remove_tree(tmp_path / "missing")  # missing is fine
    (tmp_path / "d/sub").mkdir(parents=True)
    (tmp_path / "d/sub/f").write_text("x")
    listdir = os.listdir

    def gone_meanwhile(fd: int) -> list[str]:
        return [*listdir(fd), "removed-by-someone-else"]

    monkeypatch.setattr(os, "listdir", gone_meanwhile)
    with pytest.raises(FileNotFoundError):
        remove_tree(tmp_path / "d")
    monkeypatch.undo()
    remove_tree(tmp_path / "d")
    assert list(tmp_path.iterdir()) == []


def test_a_directory_that_could_not_be_removed_keeps_its_lock_for_the_next_sweep(tmp_path: Path) -> None:
    with scratch.claimed(tmp_path, "bootstrap-") as kept:
        (kept / "file").write_text("its removal failed")
    assert Path(f"{kept}.lock").is_file(), "the lock stays with the directory"
    assert scratch.sweep(tmp_path, "bootstrap-") == [kept]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="a directory of another user needs root to make")
def test_a_lock_whose_name_another_user_took_is_swept(tmp_path: Path) -> None:
    orphan = Path(f"{_killed_in_a_claim(tmp_path, 'remove_tree(d)')}.lock")
    theirs = orphan.with_suffix("")
    theirs.mkdir()
    os.chown(theirs, 65534, 65534)
    assert scratch.sweep(tmp_path, "bootstrap-") == [orphan]
    assert theirs.is_dir() and not orphan.exists()


def test_without_an_exchange_a_replacement_cut_off_halfway_is_put_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the file system cannot exchange two directories, the old output is moved aside first: a build killed
    between the two moves leaves no output directory, and the next build writing there puts the old one back."""
    monkeypatch.setattr(outputs, "_exchange", lambda a, b: False)
    out = tmp_path / "out"
    for generation in ("1", "2"):
        with outputs.staged(out) as stage:
            (stage / "build.json").write_text(summary(generation))
    assert (out / "build.json").read_text() == summary("2") and [p.name for p in tmp_path.iterdir()] == ["out"]
    killed = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, signal, sys; from pathlib import Path; from bootstrap.host import outputs\n"
            "outputs._exchange = lambda a, b: False\n"
            "real = os.rename\n"
            "def rename(a, b):\n"
            "    real(a, b)\n"
            "    if str(b).endswith('/d'): os.kill(os.getpid(), signal.SIGKILL)\n"
            "os.rename = rename\n"
            "with outputs.staged(Path(sys.argv[1])) as stage:\n"
            f"    (stage / 'build.json').write_text({summary('3')!r})",
            str(out),
        ],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert killed.returncode == -9 and not out.exists(), "killed between the moves"
    with pytest.raises(BootstrapError, match="failed"), outputs.staged(out):
        raise BootstrapError("the next build failed", "")
    assert (out / "build.json").read_text() == summary("2"), "the previous output is back"
    with outputs.staged(out) as stage:
        (stage / "build.json").write_text(summary("4"))
    assert (out / "build.json").read_text() == summary("4") and [p.name for p in tmp_path.iterdir()] == ["out"]


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_an_abandoned_directory_with_a_mount_in_it_is_left_until_it_is_unmounted(tmp_path: Path) -> None:
    left = _killed_in_a_claim(tmp_path)
    mount = left / "root"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], check=True)
    try:
        (mount / "precious").write_text("not the sweep's to remove")
        assert scratch.sweep(tmp_path, "bootstrap-") == []
        assert (mount / "precious").read_text() == "not the sweep's to remove"
    finally:
        subprocess.run(["umount", str(mount)], check=True)
    assert scratch.sweep(tmp_path, "bootstrap-") == [left]
    assert list(tmp_path.iterdir()) == []
