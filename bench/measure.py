"""Running one command and measuring it: wall time, CPU time and peak RSS of its whole process tree."""

import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


@dataclass(frozen=True)
class Sample:
    """One timed run. CPU and RSS cover the child and every descendant it waited for."""

    wall: float
    """seconds"""
    user: float
    sys: float
    peak_rss_mb: float
    """ru_maxrss: the largest single process of the tree, in MB (10^6 bytes)"""
    returncode: int

    @property
    def cpu(self) -> float:
        return self.user + self.sys

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "cpu": round(self.cpu, 3)}


def loopback_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a tool talking to the loopback mirror: no proxy, plain C.UTF-8 locale."""
    env = {k: v for k, v in (base if base is not None else os.environ).items() if k not in _PROXY_VARS}
    env["no_proxy"] = env["NO_PROXY"] = "127.0.0.1,localhost"
    env["LC_ALL"] = "C.UTF-8"
    return env


_TIMER = """\
import os, sys, time
fd = int(sys.argv[1])
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.close(fd)
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    except OSError as exc:
        os.write(2, f"{sys.argv[2]}: {exc}\\n".encode())
    os._exit(127)
_, status, ru = os.wait4(pid, 0)
wall = time.perf_counter() - start
os.write(fd, f"{wall} {ru.ru_utime} {ru.ru_stime} {ru.ru_maxrss} {os.waitstatus_to_exitcode(status)}".encode())
"""
"""Runs the command and reports its wait4() figures. A child's ru_maxrss starts at the high-water mark of the
process that forked it (exec records the old address space's), so the command is forked from this small,
fresh interpreter rather than from the benchmark, whose own peak would otherwise show up as every tool's."""


def run(argv: Sequence[str], log: Path, env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Sample:
    """Run `argv` to completion, output appended to `log`, and measure it (and all it waits for) with wait4()."""
    with open(log, "ab") as out:
        out.write(("\n$ " + " ".join(argv) + "\n").encode())
        out.flush()
        r, w = os.pipe()
        try:
            proc = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _TIMER, str(w), *argv],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
                pass_fds=(w,),
                start_new_session=True,
            )
        finally:
            os.close(w)
        try:
            proc.wait()
        except BaseException:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
        finally:
            with os.fdopen(r, "rb") as f:
                report = f.read().split()
    if len(report) != 5:
        raise RuntimeError(f"the timer of {argv[0]} exited {proc.returncode} without figures (see {log})")
    wall, user, sys_, maxrss, code = report
    return Sample(
        wall=round(float(wall), 3),
        user=round(float(user), 3),
        sys=round(float(sys_), 3),
        peak_rss_mb=round(int(maxrss) * 1024 / 1e6, 1),
        returncode=int(code),
    )


def tail(log: Path, lines: int = 15) -> str:
    """The last lines of a log, to show with a failure."""
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
