"""The sandbox's init: run one command inside a root tree, in namespaces of its own.

Started by `bootstrap.sandbox` as `python -I -S nsinit.py SPEC` (standard library only, no bootstrap import,
so it starts fast and the same way inside a user namespace). SPEC is JSON: `root`, `argv`, `env`,
`hostname`, `lifeline` (a descriptor whose end-of-file means the build is gone).

    launcher: unshare mount, UTS, IPC, network and PID namespaces; fork
      pid 1:  private mounts; bind the root on itself; /proc (of the new PID namespace), a read-only /sys,
              a small /dev; host name; loopback up; pivot_root into the tree and detach the host's tree;
              fork and exec the command; exit with its status
    when pid 1 exits, the kernel kills everything left in the PID namespace, and the mounts go with the
    last process of the mount namespace: nothing outlives the command, even after a SIGKILL of the build.
"""

import contextlib
import ctypes
import fcntl
import json
import os
import platform
import signal
import socket
import struct
import sys
import threading

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWNET = 0x40000000
CLONE_NEWPID = 0x20000000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MNT_DETACH = 2
O_PATH = 0o10000000
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217, "i686": 217}
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 1
DEVICES = {"null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8), "urandom": (1, 9), "tty": (5, 0)}
FAILED = 125
"""Exit status when the sandbox itself cannot be set up (the command never ran)."""

_libc = ctypes.CDLL(None, use_errno=True)


def _fail(what: str) -> None:
    err = ctypes.get_errno()
    raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = [s.encode() if s is not None else None for s in (source, target, fstype, data)]
    if _libc.mount(enc[0], enc[1], enc[2], ctypes.c_ulong(flags), enc[3]) != 0:
        _fail(f"mount {fstype or source} on {target}")


def _fd_path(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


def _mountpoint(rootfd: int, name: str) -> int:
    """Open `name` in the root as a directory without following a symlink (the tree is untrusted)."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(name, 0o755, dir_fd=rootfd)
    return os.open(name, O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=rootfd)


def _devices(rootfd: int) -> None:
    dev = os.open("dev", O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=rootfd)
    devdir = os.open(_fd_path(dev), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for name, (major, minor) in DEVICES.items():
            try:
                os.mknod(name, 0o20666, os.makedev(major, minor), dir_fd=devdir)
            except PermissionError:
                # In a user namespace devices cannot be made: bind the host's.
                os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o666, dir_fd=devdir))
                node = os.open(name, O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=devdir)
                _mount(f"/dev/{name}", _fd_path(node), None, MS_BIND)
                os.close(node)
        for link, target in (
            ("fd", "/proc/self/fd"),
            ("stdin", "/proc/self/fd/0"),
            ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
        ):
            os.symlink(target, link, dir_fd=devdir)
        os.mkdir("pts", 0o755, dir_fd=devdir)
        os.mkdir("shm", 0o1777, dir_fd=devdir)
    finally:
        os.close(devdir)
        os.close(dev)


def _loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))


def _enter(root: str, hostname: str) -> None:
    """Mounts, host name, network, then make `root` the root directory of this mount namespace."""
    os.umask(0)
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _mount(root, root, None, MS_BIND | MS_REC)
    rootfd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    for name, fstype, flags, data in (
        ("proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None),
        ("sys", "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, None),
        ("dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=755,size=1m"),
    ):
        fd = _mountpoint(rootfd, name)
        _mount(fstype, _fd_path(fd), fstype, flags, data)
        os.close(fd)
    _devices(rootfd)
    socket.sethostname(hostname)
    _loopback_up()
    os.fchdir(rootfd)
    os.close(rootfd)
    number = SYS_PIVOT_ROOT.get(platform.machine())
    if number is not None and _libc.syscall(number, b".", b".") == 0:
        if _libc.umount2(b".", MNT_DETACH) != 0:
            _fail("detach the host's tree")
    else:
        os.chroot(".")
    os.chdir("/")
    os.umask(0o022)


def _watch(lifeline: int) -> None:
    """End the sandbox (this process is its pid 1) as soon as the build that started it is gone."""

    def wait() -> None:
        while True:
            try:
                if not os.read(lifeline, 64):
                    break
            except InterruptedError:
                continue
            except OSError:
                break
        os._exit(FAILED)

    threading.Thread(target=wait, daemon=True).start()


def _pid1(spec: dict[str, object]) -> int:
    try:
        _enter(str(spec["root"]), str(spec.get("hostname", "localhost")))
    except OSError as exc:
        sys.stderr.write(f"bootstrap sandbox: {exc}\n")
        return FAILED
    lifeline = int(str(spec["lifeline"]))
    argv = [str(a) for a in spec["argv"]]  # type: ignore[attr-defined]
    env = {str(k): str(v) for k, v in spec["env"].items()}  # type: ignore[attr-defined]
    child = os.fork()
    if child == 0:
        try:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.closerange(3, 1 << 16)
            os.execve(argv[0], argv, env)
        except OSError as exc:
            sys.stderr.write(f"bootstrap sandbox: cannot run {argv[0]}: {exc.strerror}\n")
        os._exit(127)
    _watch(lifeline)
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            return FAILED
        except InterruptedError:
            continue
        if pid == child:
            return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def main() -> int:
    spec = json.loads(sys.argv[1])
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    flags = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWPID
    if _libc.unshare(flags) != 0:
        err = ctypes.get_errno()
        sys.stderr.write(f"bootstrap sandbox: cannot make namespaces: {os.strerror(err)}\n")
        return FAILED
    pid1 = os.fork()
    if pid1 == 0:
        code = FAILED
        try:
            code = _pid1(spec)
        finally:
            os._exit(code)
    while True:
        try:
            _, status = os.waitpid(pid1, 0)
            break
        except InterruptedError:
            continue
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


if __name__ == "__main__":
    sys.exit(main())
