"""The test suite's own machinery: the fault-injection table survives pytest-xdist (`make test` runs on every core)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CASES = [
    "tests/faults/test_hostile_recipes.py::test_an_extended_recipe_is_confined_to_its_own_directory",
    # two of its parameters are enough for a parametrized case in the table (each is a command run)
    "tests/faults/test_hostile_recipes.py::test_a_file_outside_the_recipes_directory[absolute]",
    "tests/faults/test_hostile_recipes.py::test_a_file_outside_the_recipes_directory[symlink]",
]


def test_the_fault_table_lists_every_case_and_ends_the_run_under_xdist() -> None:
    """The cases run in two worker processes; the table is printed by the controller, from the reports."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", *CASES, "-n", "2", "--dist", "loadgroup", "-q", "-p", "no:cacheprovider"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert "fault injection: every case, what was expected, what happened" in lines, proc.stdout
    table = lines[lines.index("fault injection: every case, what was expected, what happened") :]
    cases = [line for line in table if line.split(" | ")[-1].strip() == "ok"]
    assert len(cases) >= 3, proc.stdout  # one case, then a parametrized one
    assert lines[-1].endswith(" passed, 0 failed") and lines[-1] == f"{len(cases)} passed, 0 failed", proc.stdout
