"""Builds without root: the command runs again as root of a user namespace of its own.

Inside, root is the caller, ids 1..65535 are the caller's subordinate ids (/etc/subuid, /etc/subgid, set
up by the setuid helpers newuidmap and newgidmap), so files of any package owner are made for real, the
build's mounts and the sandbox work as with real root, and everything written outside the namespace (the
cache, the outputs) belongs to the caller. `check()` finds what is missing first and says how to fix it.
"""

import ctypes
import os
import pwd
import shutil
import signal
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from bootstrap.errors import PrivilegeError
from bootstrap.numbers import is_decimal

CLONE_NEWUSER = 0x10000000
CLONE_NEWNS = 0x00020000
PR_SET_PDEATHSIG = 1
IDS = 65536
"""Ids mapped: 0 (the caller) and 1..65535 (subordinate ids), enough for every id Debian packages use
(nobody is 65534)."""
MARKER = "BOOTSTRAP_USERNS"
PROC_SYS = Path("/proc/sys")
SUBUID, SUBGID = Path("/etc/subuid"), Path("/etc/subgid")


@dataclass(frozen=True)
class Finding:
    """One prerequisite of a build without root: what was found, and how to fix it when it is missing."""

    what: str
    ok: bool
    fix: str = ""


def _user() -> tuple[str, int, int]:
    uid, gid = os.getuid(), os.getgid()
    try:
        return pwd.getpwuid(uid).pw_name, uid, gid
    except KeyError:
        return str(uid), uid, gid


def subordinate(path: Path, name: str, uid: int) -> tuple[int, int] | None:
    """The caller's first subordinate range in /etc/subuid or /etc/subgid with room for the mapping."""
    try:
        text = path.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        fields = line.strip().split(":")
        if len(fields) != 3 or fields[0] not in (name, str(uid)) or not is_decimal(fields[1] + fields[2]):
            continue
        if int(fields[2]) >= IDS - 1:
            return int(fields[1]), int(fields[2])
    return None


def _sysctl(name: str, proc: Path) -> str | None:
    try:
        return (proc / name.replace(".", "/")).read_text().strip()
    except OSError:
        return None


def _helper_ok(name: str) -> bool:
    """Installed, and able to map ids: setuid root, or holding file capabilities."""
    path = shutil.which(name)
    if path is None:
        return False
    st = os.stat(path)
    return bool(st.st_mode & stat.S_ISUID) and st.st_uid == 0 or _has_caps(path)


def _has_caps(path: str) -> bool:
    try:
        os.getxattr(path, "security.capability")
        return True
    except OSError:
        return False


def _probe() -> str | None:
    """Try to make a user namespace in a child process; the reason it failed, or None."""
    pid = os.fork()
    if pid == 0:
        libc = ctypes.CDLL(None, use_errno=True)
        os._exit(0 if libc.unshare(CLONE_NEWUSER) == 0 else min(ctypes.get_errno(), 255))
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return None if code == 0 else os.strerror(code)


def check(proc: Path = PROC_SYS, subuid: Path = SUBUID, subgid: Path = SUBGID, probe: bool = True) -> list[Finding]:
    """Everything a build without root needs, each with the fix when it is missing."""
    name, uid, _ = _user()
    ranges = f"{100000}-{100000 + IDS - 1}"
    out = []
    helpers = all(_helper_ok(h) for h in ("newuidmap", "newgidmap"))
    out.append(Finding("newuidmap and newgidmap (setuid)", helpers, "as root: apt-get install uidmap"))
    for path, flag, kind in ((subuid, "--add-subuids", "uid"), (subgid, "--add-subgids", "gid")):
        found = subordinate(path, name, uid)
        out.append(
            Finding(
                f"subordinate {kind} range of {name} in {path}"
                + (f": {found[0]}-{found[0] + found[1] - 1}" if found else f" (at least {IDS - 1} ids)"),
                found is not None,
                f"as root: usermod {flag} {ranges} {name} (any free range of {IDS} ids)",
            )
        )
    keep = " (and in /etc/sysctl.d/ to keep it)"
    sysctls = (
        ("kernel.unprivileged_userns_clone", "1", f"as root: sysctl -w kernel.unprivileged_userns_clone=1{keep}"),
        ("user.max_user_namespaces", "15000", f"as root: sysctl -w user.max_user_namespaces=15000{keep}"),
        (
            "kernel.apparmor_restrict_unprivileged_userns",
            "0",
            "as root, either sysctl -w kernel.apparmor_restrict_unprivileged_userns=0, or an AppArmor profile "
            f"that allows userns for {sys.executable} (see the README), or build as root",
        ),
    )
    for key, wanted, fix in sysctls:
        value = _sysctl(key, proc)
        if value is not None:
            ok = value != "0" if wanted != "0" else value == "0"
            out.append(Finding(f"{key} = {value}", ok, fix))
    if probe and all(f.ok for f in out):
        failed = _probe()
        out.append(
            Finding(
                "a user namespace can be made" + (f" ({failed})" if failed else ""),
                failed is None,
                "see `bootstrap doctor`; or build as root",
            )
        )
    return out


def enter(what: str) -> NoReturn:
    """Run this very command again as root of a new user namespace and exit with its status."""
    problems = [f for f in check() if not f.ok]
    if problems:
        first = problems[0]
        raise PrivilegeError(
            f"{what} without root needs a user namespace, but: {first.what} is missing or off",
            f"{first.fix}; `bootstrap doctor` lists every check; or run as root",
        )
    name, uid, gid = _user()
    uids, gids = subordinate(SUBUID, name, uid), subordinate(SUBGID, name, uid)
    assert uids is not None and gids is not None
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        try:
            _child(ready_w, go_r, (ready_r, go_w), parent)
        except BaseException:  # never back into the caller's code: this is a fork
            os._exit(1)
    os.close(ready_w)
    os.close(go_r)
    if os.read(ready_r, 1) != b"1":
        os.waitpid(pid, 0)
        raise PrivilegeError(f"{what}: could not make a user namespace", "`bootstrap doctor` says why")
    for helper, own, (start, _count) in (("newuidmap", uid, uids), ("newgidmap", gid, gids)):
        code = os.spawnvp(os.P_WAIT, helper, [helper, str(pid), "0", str(own), "1", "1", str(start), str(IDS - 1)])
        if code != 0:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise PrivilegeError(f"{helper} refused to map ids for {name}", "`bootstrap doctor` says why")
    os.write(go_w, b"1")
    os.close(go_w)
    # The re-run is in a process group of its own: a Ctrl-C reaches this process only, which passes it on
    # once, as it passes on any signal sent to it.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, frame: os.kill(pid, signum))
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    code = os.waitstatus_to_exitcode(status)
    sys.exit(code if code >= 0 else 128 - code)


def _die_with(libc: ctypes.CDLL, parent: int) -> None:
    """SIGKILL this process when the caller dies (and now, if it is gone already)."""
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


def _child(ready_w: int, go_r: int, others: tuple[int, int], parent: int) -> NoReturn:
    """In the fork: a new user and mount namespace, wait for the id maps, become its root, run again."""
    for fd in others:
        os.close(fd)
    libc = ctypes.CDLL(None, use_errno=True)
    _die_with(libc, parent)
    os.setpgid(0, 0)
    if libc.unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0:
        os.write(ready_w, b"0")
        os._exit(1)
    os.write(ready_w, b"1")
    os.close(ready_w)
    if os.read(go_r, 1) != b"1":
        os._exit(1)
    os.setresgid(0, 0, 0)
    os.setgroups([])
    os.setresuid(0, 0, 0)
    _die_with(libc, parent)  # a change of credentials clears it
    os.environ[MARKER] = "1"
    argv = [sys.executable, *sys.orig_argv[1:]]
    try:
        os.execv(sys.executable, argv)
    finally:
        os._exit(127)


def inside() -> bool:
    """Whether this process is the re-run inside the namespace."""
    return os.environ.get(MARKER) == "1" and os.geteuid() == 0
