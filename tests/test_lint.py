"""The code stays ruff and mypy clean: checked by the test suite, not by memory."""

import fcntl
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _tool(module: str) -> list[str]:
    proc = subprocess.run([sys.executable, "-m", module, "--version"], capture_output=True)
    if proc.returncode == 0:
        return [sys.executable, "-m", module]
    exe = shutil.which(module)
    if exe is None:
        pytest.fail(f"{module} is not installed (pip install -e '.[test]')")
    return [exe]


def test_ruff_clean() -> None:
    dirs = [d for d in ("bootstrap", "tests", "bench") if (ROOT / d).is_dir()]
    proc = subprocess.run([*_tool("ruff"), "check", *dirs], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _mypy_cache() -> Path | None:
    """mypy's incremental cache, one for every checkout of the user (`$XDG_CACHE_HOME/bootstrap-tests`): mypy
    takes a cached module only when its source has the same hash, so a fresh clone or worktree starts from what
    another checkout left instead of checking everything again. None when there is no writable cache home."""
    from mypy.version import __version__

    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bootstrap-tests" / f"mypy-{__version__}"
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return cache if os.access(cache, os.W_OK) else None


def test_mypy_clean() -> None:
    cache = _mypy_cache()
    if cache is None:
        proc = subprocess.run([*_tool("mypy"), "bootstrap", "bench", "tests"], cwd=ROOT, capture_output=True, text=True)
    else:
        with (cache / "lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one mypy at a time on the shared cache
            argv = [*_tool("mypy"), "--cache-dir", str(cache), "bootstrap", "bench", "tests"]
            proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# The import rules: the contracts are in pyproject.toml ([tool.importlinter]); each is one test, so a broken one
# names itself: the layers, only the family registry importing the deb family, and no import cycle.
CONTRACTS = ["layers", "deb-behind-families", "acyclic"]


@pytest.mark.parametrize("contract", CONTRACTS)
def test_import_contract(contract: str) -> None:
    exe = Path(sys.executable).parent / "lint-imports"
    argv = [str(exe)] if exe.is_file() else _tool("lint-imports")
    proc = subprocess.run([*argv, "--no-cache", "--contract", contract], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_package_is_installed() -> None:
    """`pip install .` ships the packages pyproject lists: every directory of `bootstrap/` that is a package is
    listed (a package left out installs a `bootstrap` that fails on its first import)."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "bootstrap").rglob("__init__.py")}
    assert found - listed == set(), f"packages missing from [tool.setuptools] packages: {sorted(found - listed)}"
