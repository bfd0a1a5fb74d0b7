"""Running programs inside the root: one Sandbox value, namespaces that vanish with the build.

`Sandbox(root).run(argv, env)` runs a command with the tree as its root directory, in mount, PID, IPC, UTS
and network namespaces of its own (loopback only), with a /proc of its own, a read-only /sys and a minimal
/dev (see `bootstrap/host/nsinit.py`). Nothing is mounted in the build's own mount namespace for it, and a
lifeline pipe ends the sandbox when the build dies, so even a SIGKILL leaves no mount and no process behind.
The same code runs as real root or as root of a user namespace (rootless builds).

The build itself isolates its mounts (the tmpfs it builds in) with `isolate()`: a private mount namespace
whose mounts vanish with the process.
"""

import contextlib
import ctypes
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from bootstrap.errors import ConfigureError, PrivilegeError
from bootstrap.log import log

NSINIT = Path(__file__).with_name("nsinit.py")
CLONE_NEWNS = 0x00020000
MS_REC = 16384
MS_PRIVATE = 1 << 18
SETUP_FAILED = 125
"""nsinit's exit status when the sandbox could not be set up."""


def require_root(what: str) -> None:
    """Building needs root (real, or of a user namespace): files of many owners, mounts, namespaces."""
    if os.geteuid() != 0:
        raise PrivilegeError(
            f"{what} needs root (files owned by other users, mounts and namespaces for maintainer scripts)",
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


def isolate() -> bool:
    """Give this process a private mount namespace, so every mount it makes (the build's tmpfs) disappears
    with it, however it ends. Call before any thread starts; returns False where that is not possible."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNS) != 0:
        log.debug("no private mount namespace: %s", os.strerror(ctypes.get_errno()))
        return False
    if libc.mount(None, b"/", None, ctypes.c_ulong(MS_REC | MS_PRIVATE), None) != 0:
        log.debug("cannot make mounts private: %s", os.strerror(ctypes.get_errno()))
    return True


SHMEM_HUGE = Path("/sys/kernel/mm/transparent_hugepage/shmem_enabled")
"""There when the kernel can give a tmpfs huge pages (the `huge=` mount option)."""


def tmpfs_options(size: str) -> str:
    """The scratch tmpfs's mount options: `huge=within_size` where the kernel has it, so that each whole 2 MiB of a
    file is one huge page (a smaller file, or its tail, takes small pages as on any tmpfs): a tree's large files
    are written and read back in about two thirds of the time. Where the administrator set tmpfs huge pages to
    `deny`, the kernel takes the option and gives none; the tree is the same either way."""
    return f"mode=755,size={size}" + (",huge=within_size" if SHMEM_HUGE.exists() else "")


@contextmanager
def tmpfs(path: Path, size: str = "50%") -> Iterator[None]:
    """A private tmpfs at `path` while the context is open: a fast scratch root that vanishes on unmount."""
    path.mkdir(parents=True, exist_ok=True)
    with mounted("tmpfs", tmpfs_options(size), "tmpfs", path):
        yield


@contextmanager
def mounted(kind: str, options: str, source: str, path: Path, pass_fds: tuple[int, ...] = ()) -> Iterator[None]:
    """A file system of `kind` mounted at `path` while the context is open (everything below it unmounted at the
    end); `pass_fds`: descriptors the options name (`/proc/self/fd/N`)."""
    argv = ["mount", "-t", kind, "-o", options, source, str(path)]
    proc = subprocess.run(argv, capture_output=True, text=True, pass_fds=pass_fds)
    if proc.returncode != 0:
        raise PrivilegeError(f"cannot mount {kind} at {path}: {proc.stderr.strip()}", "pass --no-tmpfs")
    try:
        yield
    finally:
        for point in mounts_under(path, include_self=True):
            _umount(point)


TIMEOUT_ENV = "BOOTSTRAP_SCRIPT_TIMEOUT"
TIMEOUT = 3600.0
"""How long one run in the sandbox (every scriptlet of a build, or one hook) may take, in seconds, unless
$BOOTSTRAP_SCRIPT_TIMEOUT says otherwise: a distribution's take seconds; one that never ends is stopped."""
KEEP_OUTPUT = 1 << 20
"""How much of a run's output is kept, its end; a line the build's own drivers print (MARK) is kept wherever it
comes, with the line before it, so that what failed is named however much a script printed after."""
KEEP_LINE = 64 << 10
"""The most of one line that is kept (a script printing without newlines is held no more than another)."""
KEEP_MARKS = 10_000
MARK = b"bootstrap: "


def timeout() -> float:
    """$BOOTSTRAP_SCRIPT_TIMEOUT in seconds, else TIMEOUT."""
    given = os.environ.get(TIMEOUT_ENV, "")
    try:
        value = float(given) if given else TIMEOUT
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise ConfigureError(f"${TIMEOUT_ENV} is {given!r}, not a number of seconds", "unset it or give e.g. 600")
    return value


class _Output:
    """A run's output as it comes, held within KEEP_OUTPUT, KEEP_LINE and KEEP_MARKS."""

    def __init__(self) -> None:
        self.tail: deque[bytes] = deque()
        self.held = 0
        self.marks: list[bytes] = []
        """Lines MARK begins, each with the line before it, from the part of the output no longer held."""
        self.left_out = 0
        self.partial = b""
        self.previous = b""

    def add(self, chunk: bytes) -> None:
        lines = (self.partial + chunk).split(b"\n")
        self.partial = lines.pop()[:KEEP_LINE]
        for line in lines:
            self._line(line[:KEEP_LINE] + b"\n")

    def _line(self, line: bytes) -> None:
        self.tail.append(line)
        self.held += len(line)
        while self.held > KEEP_OUTPUT:
            gone = self.tail.popleft()
            self.held -= len(gone)
            self.left_out += len(gone)
            if gone.startswith(MARK) and len(self.marks) < KEEP_MARKS:
                self.marks += [self.previous, gone]
            self.previous = gone

    def text(self) -> str:
        if self.partial:
            self._line(self.partial)
            self.partial = b""
        skipped = f"[{self.left_out} bytes of output not kept]\n".encode() if self.left_out else b""
        return b"".join([*self.marks, skipped, *self.tail]).decode("utf-8", "replace")


class Sandbox:
    """Runs commands with `root` as their root directory, each in namespaces of its own."""

    def __init__(self, root: Path, hostname: str = "localhost", limit: float | None = None) -> None:
        self.root = root.resolve()
        self.hostname = hostname
        self.limit = limit
        """Seconds one run may take (None: `timeout()`)."""

    def command(self, argv: Sequence[str], env: Mapping[str, str], lifeline: int) -> list[str]:
        """The host command line that runs `argv` in the sandbox (data, so it can be checked)."""
        spec = {
            "root": str(self.root),
            "argv": list(argv),
            "env": dict(env),
            "hostname": self.hostname,
            "lifeline": lifeline,
        }
        return [sys.executable, "-I", "-S", str(NSINIT), json.dumps(spec)]

    def run(self, argv: Sequence[str], env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
        """Run `argv` inside the root with exactly `env`; stdout and stderr are captured together (their end, and
        the build's own lines: `_Output`); a run past the time limit is stopped and is an error."""
        log.debug("sandbox %s: %s", self.root, " ".join(argv))
        limit = self.limit if self.limit is not None else timeout()
        watched, held = os.pipe()
        try:
            os.set_inheritable(watched, True)
            with subprocess.Popen(
                self.command(argv, env, watched),
                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                pass_fds=(watched,),
                start_new_session=True,
            ) as launched:
                os.close(watched)
                watched = -1
                try:
                    output, late = _collect(launched, time.monotonic() + limit)
                except BaseException:  # interrupted: nothing of the run is left waiting for
                    _kill(launched)
                    raise
                returncode = launched.wait()
        finally:
            if watched >= 0:
                os.close(watched)
            os.close(held)
        if late:
            said = output.strip().splitlines()[-1:] or ["no output"]
            raise ConfigureError(
                f"the scripts in the sandbox ran for more than {limit:g} s and were stopped (last said: "
                f"{said[0][:200]})",
                f"a script never ends: fix or leave out its package, or set ${TIMEOUT_ENV} to allow longer",
            )
        proc = subprocess.CompletedProcess(argv, returncode, output)
        if proc.returncode == SETUP_FAILED and proc.stdout.startswith("bootstrap sandbox:"):
            raise PrivilegeError(
                f"cannot set up the sandbox for maintainer scripts: {proc.stdout.strip().splitlines()[-1]}",
                "build as root on a host that allows mount, PID and network namespaces",
            )
        return proc


def _collect(launched: "subprocess.Popen[bytes]", deadline: float) -> tuple[str, bool]:
    """The run's output until its end (every writer gone: the sandbox's PID namespace ends with its first process),
    and whether the deadline came first: then the run is killed (the lifeline ends what it started) and its output
    read to the end."""
    assert launched.stdout is not None
    out, late = _Output(), False
    fd = launched.stdout.fileno()
    with selectors.DefaultSelector() as waiting:
        waiting.register(fd, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0 and not late:
                late = True
                _kill(launched)
            if not waiting.select(max(left, 0) if not late else None):
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return out.text(), late
            out.add(chunk)


def _kill(launched: "subprocess.Popen[bytes]") -> None:
    """End a run: its first process and its group (the lifeline ends the sandbox's namespace with it)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(launched.pid, signal.SIGKILL)
