"""Ordinary users for end-to-end tests: made (and removed) for real with useradd, with or without
subordinate id ranges, and a copy of bootstrap they can run (`readable_runtime`), for `as_user`."""

import fcntl
import os
import pwd
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.conftest import ROOT, need, run

CLONE_NEWUSER = 0x10000000


@dataclass(frozen=True)
class User:
    name: str
    uid: int
    gid: int
    home: Path


@contextmanager
def _accounts_locked() -> Iterator[None]:
    """One process at a time edits the accounts and /etc/subuid, /etc/subgid (pytest-xdist runs tests in several)."""
    with open("/run/bootstrap-tests-accounts.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def make_user(prefix: str, subids: bool) -> User:
    with _accounts_locked():
        return _make_user(prefix, subids)


def _make_user(prefix: str, subids: bool) -> User:
    name = f"{prefix}{uuid.uuid4().hex[:6]}"
    run(["useradd", "--create-home", "--shell", "/bin/sh", name])
    for path in ("/etc/subuid", "/etc/subgid"):
        lines = (
            [line for line in Path(path).read_text().splitlines() if not line.startswith(f"{name}:")]
            if Path(path).exists()
            else []
        )
        if subids:
            starts = [int(f.split(":")[1]) + int(f.split(":")[2]) for f in lines if f.count(":") == 2]
            lines.append(f"{name}:{max([200000, *starts])}:65536")
        Path(path).write_text("".join(line + "\n" for line in lines))
    entry = pwd.getpwnam(name)
    return User(name, entry.pw_uid, entry.pw_gid, Path(entry.pw_dir))


def remove_user(user: User) -> None:
    with _accounts_locked():
        run(["userdel", "--remove", user.name], check=False)
        for path in ("/etc/subuid", "/etc/subgid"):
            p = Path(path)
            if p.exists():
                p.write_text(
                    "".join(line + "\n" for line in p.read_text().splitlines() if not line.startswith(f"{user.name}:"))
                )


def dependency_files() -> list[Path]:
    """Every installed file of bootstrap's runtime dependencies, and theirs."""
    from importlib import metadata

    from packaging.requirements import Requirement

    def needed(texts: list[str] | None) -> list[str]:
        reqs = [Requirement(t) for t in texts or []]
        return [r.name for r in reqs if r.marker is None or r.marker.evaluate({"extra": ""})]

    seen: set[str] = set()
    todo = needed(metadata.requires("bootstrap"))
    files: list[Path] = []
    while todo:
        name = todo.pop()
        if name.lower() in seen:
            continue
        seen.add(name.lower())
        dist = metadata.distribution(name)
        files += [Path(str(dist.locate_file(f))) for f in dist.files or [] if "__pycache__" not in str(f)]
        todo += needed(dist.requires)
    return files


@contextmanager
def readable_runtime() -> Iterator[tuple[str, Path]]:
    """An interpreter and a copy of bootstrap with its dependencies that any user can read: the checkout and
    its virtualenv may live in root's home."""
    stage = Path(tempfile.mkdtemp(prefix="bootstrap-rootless-"))
    try:
        shutil.copytree(ROOT / "bootstrap", stage / "bootstrap", ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copytree(ROOT / "recipes", stage / "bootstrap/recipes", dirs_exist_ok=True)
        site = Path(sysconfig.get_paths()["purelib"])
        for f in dependency_files():
            if f.is_file() and site in f.parents:
                dest = stage / "site" / f.relative_to(site)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(f, dest)
        for d in [stage, *stage.rglob("*")]:
            d.chmod(0o755 if d.is_dir() else d.stat().st_mode | 0o444)
        real = os.path.realpath(sys.executable)
        candidates = [real, f"/usr/bin/python3.{sys.version_info.minor}"]
        python = next((c for c in candidates if everyone_can_run(c)), None)
        need(python is not None, f"no python3.{sys.version_info.minor} that an ordinary user can run")
        assert python is not None
        yield python, stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def everyone_can_run(path: str) -> bool:
    p = Path(path)
    if not p.exists():
        return False
    return all(q.stat().st_mode & 0o001 for q in [p, *p.parents] if q != Path("/"))


def _user_env(user: User, stage: Path) -> dict[str, str]:
    return {
        "HOME": str(user.home),
        "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
        "PYTHONPATH": f"{stage}:{stage / 'site'}",
        "LANG": "C.UTF-8",
    }


def start_as_user(user: User, runtime: tuple[str, Path], *args: str) -> "subprocess.Popen[str]":
    """`python -m bootstrap ARGS` as the user, started (its SIGINT not ignored, whatever this process has)."""
    python, stage = runtime
    return subprocess.Popen(
        [
            "setpriv",
            f"--reuid={user.uid}",
            f"--regid={user.gid}",
            "--init-groups",
            "--",
            python,
            "-m",
            "bootstrap",
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_user_env(user, stage),
        cwd=user.home,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def as_user(
    user: User, runtime: tuple[str, Path], *args: str, limit_userns: bool = False
) -> subprocess.CompletedProcess[str]:
    """`python -m bootstrap ARGS` as the user, with a clean environment (HOME, PATH), from the user's home."""
    python, stage = runtime
    env = _user_env(user, stage)
    argv = [python, "-m", "bootstrap", *args]
    if not limit_userns:
        return subprocess.run(
            ["setpriv", f"--reuid={user.uid}", f"--regid={user.gid}", "--init-groups", "--", *argv],
            capture_output=True,
            text=True,
            env=env,
            cwd=user.home,
        )
    return _in_limited_namespace(user, argv, env)


def _in_limited_namespace(user: User, argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run as the user inside a user namespace (identity-mapped, so the machine looks the same) whose
    user.max_user_namespaces is 0: user namespaces disabled by the sysctl, without touching the host's."""
    helper = (
        "import ctypes, os, sys\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "r, w = os.pipe(); r2, w2 = os.pipe()\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        f"    assert libc.unshare({CLONE_NEWUSER}) == 0\n"
        "    os.write(w, b'1'); os.read(r2, 1)\n"
        "    open('/proc/sys/user/max_user_namespaces', 'w').write('0')\n"
        f"    os.setresgid(*[{user.gid}] * 3); os.setgroups([]); os.setresuid(*[{user.uid}] * 3)\n"
        f"    os.chdir({str(user.home)!r})\n"
        "    os.execve(sys.argv[1], sys.argv[1:], {k: v for k, v in os.environ.items()})\n"
        "os.read(r, 1)\n"
        "for m in ('uid_map', 'gid_map'):\n"
        "    open(f'/proc/{pid}/{m}', 'w').write('0 0 4294967295\\n')\n"
        "os.write(w2, b'1')\n"
        "_, status = os.waitpid(pid, 0)\n"
        "sys.exit(os.waitstatus_to_exitcode(status))\n"
    )
    return subprocess.run([sys.executable, "-c", helper, *argv], capture_output=True, text=True, env=env)
