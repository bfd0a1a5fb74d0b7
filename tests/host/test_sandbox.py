"""The sandbox for maintainer scripts, run for real: a tiny root made of the host's own dash, coreutils and
their libraries, entered through namespaces of its own."""

import ctypes
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from bootstrap.errors import ConfigureError, PrivilegeError
from bootstrap.host.nsinit import SYS_RT_SIGACTION
from bootstrap.host.sandbox import (
    KEEP_LINE,
    KEEP_OUTPUT,
    SHMEM_HUGE,
    TIMEOUT_ENV,
    Sandbox,
    mounts_under,
    timeout,
    tmpfs,
)
from tests.fixtures.leftovers import running

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox needs root (or a user namespace)")

TOOLS = ("/bin/sh", "/bin/cat", "/bin/ls", "/bin/sleep", "/bin/readlink", "/bin/mkdir", "/usr/bin/ischroot")


def _copy_with_libraries(binary: str, root: Path) -> None:
    real = os.path.realpath(binary)
    for path in [
        real,
        *re.findall(r"(/\S+\.so[.\d]*)", subprocess.run(["ldd", real], capture_output=True, text=True).stdout),
    ]:
        dest = root / path.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not dest.exists():
            shutil.copy2(path, dest)
    link = root / binary.lstrip("/")
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.exists():
        shutil.copy2(real, link)


@pytest.fixture
def tiny_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    for tool in TOOLS:
        _copy_with_libraries(tool, root)
    for d in ("tmp", "etc"):
        (root / d).mkdir(exist_ok=True)
    return root


def sh(root: Path, script: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return Sandbox(root).run(["/bin/sh", "-c", script], env or {"PATH": "/bin"})


def test_commands_run_in_namespaces_of_their_own(tiny_root: Path, tmp_path: Path) -> None:
    (tmp_path / "host-secret").write_text("host\n")
    proc = sh(
        tiny_root,
        textwrap.dedent(
            """\
            echo "pid=$$"
            echo "init-root=$(readlink /proc/1/root)"
            echo "init-root-holds=$(ls -A /proc/1/root/ 2>&1)"
            /usr/bin/ischroot; echo "ischroot=$?"
            echo "hostname=$(cat /proc/sys/kernel/hostname)"
            echo "ifaces=$(ls /sys/class/net)"
            echo "lo-flags=$(cat /sys/class/net/lo/flags)"
            cat /proc/1/root/../host-secret 2>/dev/null || echo "host tree unreachable"
            echo hello > /dev/null && echo "devnull ok"
            mkdir /sys/x 2>/dev/null || echo "sys read-only"
            """
        ),
    )
    assert proc.returncode == 0, proc.stdout
    out = proc.stdout.splitlines()
    assert "pid=2" in out, "the command is the child of the sandbox's own init"
    assert "init-root=/" in out or "init-root=" in out, "pid 1's root is the sandbox's (or out of reach)"
    assert "init-root-holds=tree" in out or "Permission denied" in "".join(out), "pid 1's root holds the tree alone"
    assert "ischroot=0" in out, "the command is in a chroot, as under debootstrap"
    assert "hostname=localhost" in out
    assert "ifaces=lo" in out, "no network but loopback"
    flags = next(line for line in out if line.startswith("lo-flags="))
    assert int(flags.split("=")[1], 16) & 1, "loopback is up"
    assert "host tree unreachable" in out
    assert "devnull ok" in out and "sys read-only" in out
    assert not mounts_under(tiny_root, include_self=True), "nothing stays mounted on the host"


def test_the_environment_is_exactly_the_one_given(tiny_root: Path) -> None:
    proc = sh(tiny_root, "export -p", {"PATH": "/bin", "ONLY": "this"})
    exported = sorted(line.split(" ", 1)[1].split("=", 1)[0] for line in proc.stdout.splitlines())
    assert exported == ["ONLY", "PATH", "PWD"] or exported == ["ONLY", "PATH"], proc.stdout


def test_exit_status_and_output_come_back(tiny_root: Path) -> None:
    proc = sh(tiny_root, "echo out; echo err >&2; exit 7")
    assert proc.returncode == 7
    assert proc.stdout.splitlines() == ["out", "err"]


def test_daemons_left_by_a_script_are_killed_with_it(tiny_root: Path) -> None:
    proc = sh(tiny_root, "sleep 3713 & echo started")
    assert proc.stdout.strip() == "started"
    assert not running(["sleep", "3713"]), "a background process outlived the sandbox"


def test_a_run_that_never_ends_is_stopped_at_its_limit(tiny_root: Path) -> None:
    """A script that never ends (a scriptlet waiting on what never comes): stopped once the run's time is up, an
    error naming the limit and the run's last words, and nothing of it left running or mounted."""
    started = time.monotonic()
    with pytest.raises(ConfigureError, match=r"more than 1 s and were stopped \(last said: waiting\)") as caught:
        Sandbox(tiny_root, limit=1.0).run(["/bin/sh", "-c", "echo waiting; sleep 987654; echo never"], {})
    assert time.monotonic() - started < 30
    assert "\n" not in caught.value.message
    assert not running(["sleep", "987654"]) and not running(["/bin/sleep", "987654"])
    assert not mounts_under(tiny_root, include_self=True)


@pytest.mark.parametrize(("given", "accepted"), [("2.5", True), ("soon", False), ("0", False), ("inf", False)])
def test_the_limit_comes_from_the_environment(given: str, accepted: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TIMEOUT_ENV, given)
    if accepted:
        assert timeout() == float(given)
        return
    with pytest.raises(ConfigureError, match=f"{TIMEOUT_ENV} is '{given}'") as caught:
        timeout()
    assert "\n" not in caught.value.message


def test_output_is_held_within_bounds_and_the_builds_own_lines_are_kept(tiny_root: Path) -> None:
    """A script printing 64 MiB after the build's driver said what failed, and a line of 8 MiB without an end:
    the run keeps the last MiB and that line with the one before it, never the whole."""
    for tool in ("/usr/bin/yes", "/usr/bin/head", "/usr/bin/tr"):
        _copy_with_libraries(tool, tiny_root)
    script = (
        "echo 'the last thing it said'; echo 'bootstrap: scriptlet failed: 3 1'; "
        "yes 'a line of noise' | head -c 67108864; yes | tr -d '\\n' | head -c 8388608; echo; echo done"
    )
    proc = Sandbox(tiny_root).run(["/bin/sh", "-c", script], {"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0
    assert len(proc.stdout) <= KEEP_OUTPUT + KEEP_LINE + 4096
    lines = proc.stdout.splitlines()
    assert lines[:2] == ["the last thing it said", "bootstrap: scriptlet failed: 3 1"]
    assert "bytes of output not kept]" in lines[2]
    assert lines[-1] == "done" and lines[-2] == "y" * KEEP_LINE


def test_a_symlinked_proc_in_the_tree_is_refused_not_followed(tiny_root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (tiny_root / "proc").symlink_to(outside)
    with pytest.raises(PrivilegeError, match="sandbox"):
        sh(tiny_root, "true")
    assert not list(outside.iterdir())
    assert not mounts_under(outside, include_self=True)


def test_a_killed_build_takes_its_sandbox_with_it(tiny_root: Path) -> None:
    """SIGKILL the process that runs the sandbox: the lifeline closes, the sandbox's init exits, the kernel
    kills everything in its PID namespace, and its mounts go with its mount namespace."""
    runner = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from bootstrap.host.sandbox import Sandbox; "
            "Sandbox(Path(sys.argv[1])).run(['/bin/sh', '-c', 'sleep 3714 & sleep 3714'], {'PATH': '/bin'})",
            str(tiny_root),
        ],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    deadline = time.monotonic() + 20
    while len(running(["sleep", "3714"])) < 2:
        assert time.monotonic() < deadline and runner.poll() is None, "the sandbox never started"
        time.sleep(0.05)
    runner.send_signal(signal.SIGKILL)
    runner.wait()
    deadline = time.monotonic() + 10
    while running(["sleep", "3714"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not running(["sleep", "3714"]), "processes of the sandbox outlived the build"
    assert not mounts_under(tiny_root, include_self=True)


_INSIDE_REPORT = textwrap.dedent(
    """\
    cat /proc/self/uid_map
    echo '|/bin/sh' > /proc/sys/kernel/core_pattern 2>/dev/null && echo "core_pattern WRITTEN"
    echo 1 > /proc/sys/kernel/sysrq 2>/dev/null && echo "sysrq WRITTEN"
    read -r pid comm state ppid pgrp session rest < /proc/self/stat; echo "session=$session pid=$pid"
    while read -r key value; do case $key in SigIgn:|SigBlk:|NoNewPrivs:|CapBnd:) echo "$key$value";; esac; done \\
        < /proc/self/status
    cat /dev/tty 2>/dev/null || echo "no terminal"
    """
)


@contextmanager
def _ignoring_signal_32() -> Iterator[None]:
    """Signal 32 ignored in this process, as a parent may leave it; only rt_sigaction itself can set it."""
    libc = ctypes.CDLL(None, use_errno=True)
    number = SYS_RT_SIGACTION[platform.machine()]
    ignore = ctypes.create_string_buffer(32)
    ctypes.memmove(ignore, ctypes.byref(ctypes.c_size_t(1)), ctypes.sizeof(ctypes.c_size_t))  # SIG_IGN
    old = ctypes.create_string_buffer(32)
    assert libc.syscall(number, 32, ignore, old, 8) == 0
    ignored = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("SigIgn:"))
    assert int(ignored.split()[1], 16) & (1 << 31), "signal 32 is ignored here"
    try:
        yield
    finally:
        libc.syscall(number, 32, old, None, 8)


@contextmanager
def _blocking(sig: signal.Signals) -> Iterator[None]:
    before = signal.pthread_sigmask(signal.SIG_BLOCK, {sig})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def test_the_scripts_root_reaches_nothing_outside_the_sandbox(tiny_root: Path) -> None:
    """Root in the sandbox is root of a user namespace of its own, identity-mapped: files get real owners, but
    no host-wide setting, device or terminal is within reach; signals start at their defaults, even those the
    C library keeps for itself and a parent left ignored, and none is blocked."""
    with _ignoring_signal_32(), _blocking(signal.SIGUSR1):
        proc = sh(tiny_root, _INSIDE_REPORT)
    out = proc.stdout.splitlines()
    assert out[0].split() == ["0", "0", "65536"], out
    assert "core_pattern WRITTEN" not in out and "sysrq WRITTEN" not in out
    session = next(line for line in out if line.startswith("session="))
    assert session.split()[0].split("=")[1] != "0", session
    assert "SigIgn:0000000000000000" in out, "default signal dispositions (SIGPIPE and 32 too)"
    assert "SigBlk:0000000000000000" in out, "no signal blocked"
    assert "NoNewPrivs:1" in out
    bounding = int(next(line for line in out if line.startswith("CapBnd:"))[7:], 16)
    assert not bounding & (1 << 21), "no sys_admin: nothing can be remounted writable"
    assert not bounding & (1 << 19) and not bounding & (1 << 2), "no sys_ptrace, no dac_read_search"
    assert bounding & 1 and bounding & (1 << 31), "chown and setfcap stay: maintainer scripts need them"
    assert "no terminal" in out


def test_the_lifeline_cannot_be_held_from_inside(tiny_root: Path) -> None:
    """A script that reopens every descriptor pid 1 holds cannot keep the sandbox alive after the build."""
    runner = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from bootstrap.host.sandbox import Sandbox; "
            "Sandbox(Path(sys.argv[1])).run(['/bin/sh', '-c', "
            '\'for fd in /proc/1/fd/*; do command exec 9>"$fd" 8<"$fd" 2>/dev/null; done; sleep 3716\'], '
            "{'PATH': '/bin'})",
            str(tiny_root),
        ],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    deadline = time.monotonic() + 20
    while not running(["sleep", "3716"]):
        assert time.monotonic() < deadline and runner.poll() is None, "the sandbox never started"
        time.sleep(0.05)
    runner.send_signal(signal.SIGKILL)
    runner.wait()
    deadline = time.monotonic() + 10
    while running(["sleep", "3716"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not running(["sleep", "3716"]), "the sandbox outlived the build"


def test_the_sandbox_maps_its_ids_range_by_range() -> None:
    """Inside a rootless build's namespace (0 is the caller, 1.. are subordinate ids), each range maps alone."""
    from bootstrap.host import nsinit

    assert nsinit._identity("0 0 4294967295\n") == "0 0 65536\n"
    assert nsinit._identity("0 1001 1\n1 100000 65535\n") == "0 0 1\n1 1 65535\n"
    assert nsinit._identity("0 1001 1\n1 100000 70000\n") == "0 0 1\n1 1 65535\n"


def _super_options(point: Path) -> list[str]:
    """The options the kernel holds for the file system mounted at `point` (mountinfo's last field)."""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[4] == str(point):
            return fields[-1].split(",")
    raise AssertionError(f"nothing is mounted at {point}")


def test_the_scratch_tmpfs_takes_huge_pages_where_the_kernel_has_them(tmp_path: Path) -> None:
    """The tree's tmpfs is mounted with huge=within_size when the kernel can give a tmpfs huge pages (its large
    files then written and read back in fewer, larger pages), and what is written there reads back the same."""
    point = tmp_path / "scratch"
    data = os.urandom(5 << 20)  # two whole huge pages and a tail
    with tmpfs(point, "64m"):
        options = _super_options(point)
        assert ("huge=within_size" in options) == SHMEM_HUGE.exists(), options
        assert "size=65536k" in options and "mode=755" in options
        (point / "big").write_bytes(data)
        assert (point / "big").read_bytes() == data
    assert not mounts_under(point, include_self=True)
