"""The code stays ruff and mypy clean: checked by the test suite, not by memory."""

import shutil
import subprocess
import sys
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


def test_mypy_clean() -> None:
    proc = subprocess.run([*_tool("mypy"), "bootstrap", "bench"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# The import rules: the contracts are in pyproject.toml ([tool.importlinter]); each is one test, so a broken one
# names itself. Those the restructure (issue 21) has not reached yet are expected to fail, strictly: when one
# starts to hold, its xfail mark is to be removed.
_NOT_YET = "issue 21: kept once the family seam and the outputs table land"
CONTRACTS = [
    # records -> build (lock, records, provenance take the plan/pipeline/recipe); deb.archive -> build.distros
    pytest.param("layers", marks=pytest.mark.xfail(strict=True, reason=_NOT_YET)),
    # bootstrap.build.families does not exist yet; build, records and publish import bootstrap.deb directly
    pytest.param("deb-behind-families", marks=pytest.mark.xfail(strict=True, reason=_NOT_YET)),
    # build.pipeline -> records.records -> build.pipeline (and records.provenance); deb -> build
    pytest.param("acyclic", marks=pytest.mark.xfail(strict=True, reason=_NOT_YET)),
]


@pytest.mark.parametrize("contract", CONTRACTS)
def test_import_contract(contract: str) -> None:
    exe = Path(sys.executable).parent / "lint-imports"
    argv = [str(exe)] if exe.is_file() else _tool("lint-imports")
    proc = subprocess.run([*argv, "--no-cache", "--contract", contract], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
