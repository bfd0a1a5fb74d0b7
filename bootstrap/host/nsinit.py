"""The sandbox's init: run one command inside a root tree, in namespaces of its own.

Started by `bootstrap.host.sandbox` as `python -I -S nsinit.py SPEC` (standard library only, no bootstrap import,
so it starts fast and the same way inside a user namespace), in a session of its own. SPEC is JSON: `root`,
`argv`, `env`, `hostname`, `lifeline` (a descriptor whose end-of-file means the build is gone).

    launcher  (the build's namespaces): forks the keeper, maps its user namespace, learns pid 1, and
              SIGKILLs pid 1 when the lifeline ends; the sandbox cannot see it or the lifeline
      keeper  a user namespace of its own, root and ids 0..65535 mapped to the same ids outside (so files
              get the owners a root build gives them, while the scripts' capabilities reach nothing
              outside: no host-wide sysctl, no remounting /sys, no devices, no file handles); then mount,
              UTS, IPC, network and PID namespaces; forks
        pid 1 private mounts; bind the tree below a small root of its own, nodev and nosuid (no device
              node in the tree opens a host device, whoever made it); /proc (of the new PID namespace),
              a read-only /sys, a small /dev; host name; loopback up; pivot_root into the tree and
              detach the host's tree; forks the command (its own session, no controlling terminal, no
              new privileges, default signals) and exits with its status
    when pid 1 exits, the kernel kills everything left in the PID namespace, and the mounts go with the
    last process of the mount namespace: nothing outlives the command, even after a SIGKILL of the build.
    Each process dies with its parent (PR_SET_PDEATHSIG).
"""

import _socket  # socket's compiled half: the module itself spends milliseconds making enums, at every start
import contextlib
import ctypes
import fcntl
import json
import os
import signal
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
MS_REMOUNT = 32
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_RELATIME = 1 << 21
MNT_DETACH = 2
O_PATH = 0o10000000
SYS_PIVOT_ROOT = {
    "x86_64": 155,
    "aarch64": 41,
    "riscv64": 41,
    "loongarch64": 41,
    "ppc64le": 203,
    "ppc64": 203,
    "s390x": 217,
    "i686": 217,
    "armv7l": 218,
    "armv8l": 218,
    "mips64": 5151,
}
SYS_RT_SIGACTION = {
    "x86_64": 13,
    "aarch64": 134,
    "riscv64": 134,
    "loongarch64": 134,
    "ppc64le": 173,
    "ppc64": 173,
    "s390x": 174,
    "i686": 174,
    "armv7l": 174,
    "armv8l": 174,
    "mips64": 5013,
}
"""rt_sigaction, called directly: the C library refuses the signals it keeps for itself (32 and 33), which a
parent may still have left ignored, and an ignored signal survives exec."""
KEEP_CAPS = frozenset({0, 1, 3, 4, 5, 6, 7, 8, 10, 13, 18, 27, 29, 31})
"""What maintainer scripts keep (a container runtime's usual set): chown, dac_override, fowner, fsetid, kill,
setgid, setuid, setpcap, net_bind_service, net_raw, sys_chroot, mknod, audit_write, setfcap. Everything else
(sys_admin: no remounting; sys_ptrace, sys_module, sys_rawio, dac_read_search, ...) leaves the bounding set."""
PROC_READ_ONLY = ("sys", "sysrq-trigger", "irq", "bus", "fs")
PROC_MASKED = ("kcore", "keys", "timer_list", "sched_debug", "latency_stats")
"""Kernel-wide settings and views in the sandbox's /proc: made read-only, or hidden behind /dev/null."""
PR_CAPBSET_DROP = 24
CLONE_NEWUSER = 0x10000000
PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38
IDS = 65536
"""Ids mapped into the sandbox's user namespace, each to itself."""
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 1
DEVICES = {"null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8), "urandom": (1, 9), "tty": (5, 0)}
TREE = "/tree"
"""Where the tree is in the sandbox's own root; the command's root directory."""
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


def _kept_flags(fd: int) -> int:
    """The flags of the mount at `fd` that a remount must keep (a user namespace may not clear what the mount
    it was given has): read-only, noexec and the atime rules."""
    have = os.fstatvfs(fd).f_flag
    pairs = (
        (os.ST_RDONLY, MS_RDONLY),
        (os.ST_NOEXEC, MS_NOEXEC),
        (os.ST_NOATIME, MS_NOATIME),
        (os.ST_NODIRATIME, MS_NODIRATIME),
        (os.ST_RELATIME, MS_RELATIME),
    )
    return sum(ms for st, ms in pairs if have & st)


def _bind_tree(tree: int, outer: int) -> None:
    """The tree at TREE, bound without devices or setuid: no device node in it reaches a device of the host
    (whoever made it), and no file in it gains privileges (the sandbox's own /dev is a mount of its own)."""
    os.mkdir(TREE[1:], 0o755, dir_fd=outer)
    inner = os.open(TREE[1:], O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=outer)
    _mount(_fd_path(tree), _fd_path(inner), None, MS_BIND)  # not recursive: the tmpfs is mounted on it
    os.close(inner)
    bound = os.open(TREE[1:], O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=outer)
    try:
        flags = MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV | _kept_flags(bound)
        _mount(None, _fd_path(bound), None, flags)
    finally:
        os.close(bound)


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


def _harden_proc(rootfd: int) -> None:
    """Root in the sandbox is uid 0, which owns the kernel's settings: /proc/sys and friends read-only, a few
    views hidden. Without sys_admin the scripts cannot undo it."""
    proc = os.open("proc", O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=rootfd)
    try:
        for name in PROC_READ_ONLY:
            try:
                fd = os.open(name, O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=proc)
            except FileNotFoundError:
                continue
            _mount(_fd_path(fd), _fd_path(fd), None, MS_BIND | MS_REC)
            os.close(fd)
            fd = os.open(name, O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=proc)
            _mount(None, _fd_path(fd), None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
            os.close(fd)
        for name in PROC_MASKED:
            try:
                fd = os.open(name, O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=proc)
            except FileNotFoundError:
                continue
            _mount("/dev/null", _fd_path(fd), None, MS_BIND)
            os.close(fd)
    finally:
        os.close(proc)


def _drop_capabilities() -> None:
    """Leave only KEEP_CAPS in the bounding set: the command (exec'd as root) gets no more."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            last = int(f.read())
    except (OSError, ValueError):
        last = 40
    for cap in range(last + 1):
        if cap not in KEEP_CAPS and _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            _fail(f"drop capability {cap}")


def _loopback_up() -> None:
    s = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    try:
        req = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))
    finally:
        s.close()


def _enter(root: str, hostname: str) -> None:
    """Mounts, host name, network, then a root directory of the sandbox's own with the tree at TREE.

    That root is a small empty tmpfs: pid 1 stays there, the command is chrooted into the tree (see `_run`).
    So scripts find themselves in a chroot, as under debootstrap or mmdebstrap (`ischroot` is true: libc6
    neither re-executes init nor sleeps), and a chroot escape reaches nothing but that empty, read-only
    directory."""
    os.umask(0)
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    tree = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=755,size=16k")
    outer = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    _bind_tree(tree, outer)
    os.close(tree)
    rootfd = os.open(TREE[1:], os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=outer)
    for name, fstype, flags, data in (
        ("proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None),
        ("sys", "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, None),
        ("dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=755,size=1m"),
    ):
        fd = _mountpoint(rootfd, name)
        _mount(fstype, _fd_path(fd), fstype, flags, data)
        os.close(fd)
    _devices(rootfd)
    _harden_proc(rootfd)
    os.close(rootfd)
    _socket.sethostname(hostname)
    _loopback_up()
    os.fchdir(outer)
    os.close(outer)
    machine = os.uname().machine
    number = SYS_PIVOT_ROOT.get(machine)
    if number is None:
        raise OSError(0, f"pivot_root's system call number on {machine} is not known")
    if _libc.syscall(number, b".", b".") != 0:
        _fail("pivot_root into the sandbox's root")
    if _libc.umount2(b".", MNT_DETACH) != 0:
        _fail("detach the host's tree")
    os.chdir("/")
    _mount(None, "/", None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    os.umask(0o022)


def _die_with_parent(parent: int) -> None:
    """SIGKILL this process when its parent dies (and now, if the parent is gone already; a pid 1 sees its
    parent, outside its PID namespace, as 0)."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() not in (parent, 0):
        os._exit(FAILED)


def _status(status: int) -> int:
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def _wait(pid: int) -> int:
    while True:
        try:
            return _status(os.waitpid(pid, 0)[1])
        except InterruptedError:
            continue


def _default_signals() -> None:
    """Every signal to its default action and none blocked, as a command started by init would have them."""
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    number = SYS_RT_SIGACTION.get(os.uname().machine)
    default = ctypes.create_string_buffer(32)  # SIG_DFL, no flags, an empty mask: all zero in every layout
    for sig in range(1, 65):
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        if number is None or _libc.syscall(number, sig, default, None, 8) != 0:
            with contextlib.suppress(OSError, ValueError):
                signal.signal(sig, signal.SIG_DFL)


def _run(argv: list[str], env: dict[str, str]) -> None:
    """In the forked command: a session of its own, no new privileges, default signals, then exec."""
    try:
        os.chroot(TREE)
        os.chdir("/")
        os.setsid()
        _drop_capabilities()
        _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        _default_signals()
        os.closerange(3, 1 << 16)
        os.execve(argv[0], argv, env)
    except OSError as exc:
        sys.stderr.write(f"bootstrap sandbox: cannot run {argv[0]}: {exc.strerror}\n")
    finally:
        sys.stderr.flush()
        os._exit(127)


def _pid1(spec: dict[str, object], parent: int) -> int:
    _die_with_parent(parent)
    try:
        _enter(str(spec["root"]), str(spec.get("hostname", "localhost")))
    except OSError as exc:
        sys.stderr.write(f"bootstrap sandbox: {exc}\n")
        return FAILED
    argv = [str(a) for a in spec["argv"]]  # type: ignore[attr-defined]
    env = {str(k): str(v) for k, v in spec["env"].items()}  # type: ignore[attr-defined]
    child = os.fork()
    if child == 0:
        _run(argv, env)
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            return FAILED
        except InterruptedError:
            continue
        if pid == child:
            return _status(status)


def _keeper(ready: int, go: int, report: int, spec: dict[str, object], parent: int) -> int:
    """A user namespace (mapped by the launcher), then the other namespaces, then pid 1."""
    _die_with_parent(parent)
    if _libc.unshare(CLONE_NEWUSER) != 0:
        sys.stderr.write(f"bootstrap sandbox: cannot make a user namespace: {os.strerror(ctypes.get_errno())}\n")
        return FAILED
    os.write(ready, b"1")
    if os.read(go, 1) != b"1":
        return FAILED
    flags = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWPID
    if _libc.unshare(flags) != 0:
        sys.stderr.write(f"bootstrap sandbox: cannot make namespaces: {os.strerror(ctypes.get_errno())}\n")
        return FAILED
    me = os.getpid()
    pid1 = os.fork()
    if pid1 == 0:
        code = FAILED
        try:
            code = _pid1(spec, me)
        finally:
            os._exit(code)
    os.write(report, str(pid1).encode())
    os.close(report)
    return _wait(pid1)


def _identity(own_map: str) -> str:
    """An identity map of ids 0..IDS-1, one line per range of this process's own namespace (the kernel maps a
    range of a child namespace only within one range of its parent's)."""
    lines = []
    for line in own_map.splitlines():
        inside, _, count = (int(x) for x in line.split())
        end = min(inside + count, IDS)
        if inside < end:
            lines.append(f"{inside} {inside} {end - inside}")
    return "\n".join(lines) + "\n"


def _map_ids(pid: int) -> None:
    for name in ("uid_map", "gid_map"):
        with open(f"/proc/self/{name}") as own:
            wanted = _identity(own.read())
        with open(f"/proc/{pid}/{name}", "w") as f:
            f.write(wanted)


def _watch(lifeline: int, pid1: int) -> None:
    """Kill pid 1 (and with it the whole sandbox) as soon as the build that started it is gone."""

    def wait() -> None:
        while True:
            try:
                if not os.read(lifeline, 64):
                    break
            except InterruptedError:
                continue
            except OSError:
                break
        with contextlib.suppress(OSError):
            os.kill(pid1, signal.SIGKILL)

    threading.Thread(target=wait, daemon=True).start()


def main() -> int:
    spec = json.loads(sys.argv[1])
    lifeline = int(str(spec["lifeline"]))
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    report_r, report_w = os.pipe()
    me = os.getpid()
    keeper = os.fork()
    if keeper == 0:
        code = FAILED
        try:
            for fd in (lifeline, ready_r, go_w, report_r):
                os.close(fd)
            code = _keeper(ready_w, go_r, report_w, spec, me)
        finally:
            os._exit(code)
    for fd in (ready_w, go_r, report_w):
        os.close(fd)
    if os.read(ready_r, 1) != b"1":
        return _wait(keeper)
    try:
        _map_ids(keeper)
    except OSError as exc:
        sys.stderr.write(f"bootstrap sandbox: cannot map ids into its user namespace: {exc.strerror}\n")
        os.kill(keeper, signal.SIGKILL)
        _wait(keeper)
        return FAILED
    os.write(go_w, b"1")
    pid1 = os.read(report_r, 32)
    if pid1:
        _watch(lifeline, int(pid1))
    return _wait(keeper)


if __name__ == "__main__":
    sys.exit(main())
