"""Running programs inside the root: one Sandbox value that owns the mounts and always undoes them."""

import os
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

from bootstrap.errors import PrivilegeError
from bootstrap.log import log

_DEVICES = {
    "null": (1, 3),
    "zero": (1, 5),
    "full": (1, 7),
    "random": (1, 8),
    "urandom": (1, 9),
    "tty": (5, 0),
}


def require_root(what: str) -> None:
    """Building needs root: the tree holds files of many owners, device nodes and a chroot."""
    if os.geteuid() != 0:
        raise PrivilegeError(
            f"{what} needs root (files owned by other users, mounts and chroot for maintainer scripts)",
            "run it as root, for example with sudo",
        )


def mounts_under(root: Path, include_self: bool = False) -> list[str]:
    """Mount points below `root` (and `root` itself when asked), deepest first."""
    prefix = str(root.resolve())
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].encode().decode("unicode_escape")
            if (include_self and point == prefix) or point.startswith(prefix + "/"):
                found.append(point)
    return sorted(found, key=len, reverse=True)


def _umount(point: str) -> None:
    if subprocess.run(["umount", point], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", point], capture_output=True)


def memory_available() -> int:
    """Bytes of memory the kernel says are available (0 when unknown)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


@contextmanager
def tmpfs(path: Path, size: str = "50%") -> Iterator[None]:
    """A private tmpfs at `path` while the context is open: a fast scratch root that vanishes on unmount."""
    path.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"mode=755,size={size}", "tmpfs", str(path)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise PrivilegeError(f"cannot mount a tmpfs at {path}: {proc.stderr.strip()}", "pass --no-tmpfs")
    try:
        yield
    finally:
        kill_processes_in(path.resolve())
        for point in mounts_under(path, include_self=True):
            _umount(point)


class Chroot:
    """A chroot into `root` with /proc, /sys and a minimal /dev mounted while the context is open."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._mounted: list[str] = []

    def _mount(self, args: Sequence[str], target: Path) -> None:
        target.mkdir(mode=0o755, exist_ok=True)
        proc = subprocess.run(["mount", *args, str(target)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise PrivilegeError(
                f"cannot mount {target}: {proc.stderr.strip()}", "build as root on a host that allows mounts"
            )
        self._mounted.append(str(target))

    def __enter__(self) -> "Chroot":
        require_root("running maintainer scripts")
        try:
            self._mount(["-t", "proc", "proc"], self.root / "proc")
            self._mount(["-t", "sysfs", "-o", "ro,nosuid,nodev,noexec", "sysfs"], self.root / "sys")
            dev = self.root / "dev"
            self._mount(["-t", "tmpfs", "-o", "mode=755,nosuid,size=1m", "tmpfs"], dev)
            for name, (major, minor) in _DEVICES.items():
                os.mknod(dev / name, 0o20666, os.makedev(major, minor))
            for name, target in (
                ("fd", "/proc/self/fd"),
                ("stdin", "/proc/self/fd/0"),
                ("stdout", "/proc/self/fd/1"),
                ("stderr", "/proc/self/fd/2"),
            ):
                os.symlink(target, dev / name)
            (dev / "pts").mkdir()
            (dev / "shm").mkdir(mode=0o1777)
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Stop what still runs inside the root, then unmount everything below it."""
        kill_processes_in(self.root)
        for point in reversed(self._mounted):
            _umount(point)
        self._mounted.clear()
        for point in mounts_under(self.root):
            _umount(point)

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def run(self, argv: Sequence[str], env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
        """Run `argv` inside the root with exactly `env`; output is captured."""
        log.debug("chroot: %s", " ".join(argv))
        return subprocess.run(
            ["chroot", str(self.root), *argv],
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )


def kill_processes_in(root: Path) -> None:
    """Kill processes whose root directory is `root` (daemons a maintainer script may have left)."""
    target = str(root)
    for attempt in range(2):
        found = False
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                if os.readlink(f"/proc/{pid}/root") == target:
                    found = True
                    os.kill(int(pid), signal.SIGTERM if attempt == 0 else signal.SIGKILL)
            except OSError:
                continue
        if not found:
            return
        time.sleep(0.2)
