"""What the numbers were measured on: the machine, and the versions of every tool compared."""

import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.tools import REPO


def _first_line(argv: list[str], cwd: Path | None = None) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    lines = (proc.stdout or proc.stderr).strip().splitlines()
    return lines[0] if proc.returncode == 0 and lines else ""


def _field(path: str, key: str) -> str:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key):
                    return line.split("=" if "=" in key else ":", 1)[1].strip().strip('"')
    except OSError:
        pass
    return ""


def machine() -> dict[str, Any]:
    mem = _field("/proc/meminfo", "MemTotal:")
    return {
        "nproc": os.cpu_count(),
        "mem_total_mb": round(int(mem.split()[0]) * 1024 / 1e6) if mem else None,
        "kernel": platform.release(),
        "cpu": _field("/proc/cpuinfo", "model name"),
        "os": _field("/etc/os-release", "PRETTY_NAME="),
    }


def _deb_version(package: str) -> str:
    return _first_line(["dpkg-query", "-W", "-f", "${Version}", package])


def versions() -> dict[str, str]:
    commit = _first_line(["git", "rev-parse", "--short", "HEAD"], REPO)
    dirty = _first_line(["git", "status", "--porcelain", "--untracked-files=no"], REPO)
    return {
        "bootstrap": _first_line([sys.executable, "-m", "bootstrap", "--version"], REPO),
        "bootstrap_commit": commit + ("-dirty" if dirty else ""),
        "python": platform.python_version(),
        "mmdebstrap": _deb_version("mmdebstrap"),
        "debootstrap": _deb_version("debootstrap"),
        "apt": _deb_version("apt"),
        "dpkg": _deb_version("dpkg"),
        "wget": _deb_version("wget"),
    }
