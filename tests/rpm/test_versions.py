"""rpm's version order, checked against rpm itself and against libsolv."""

import random
import subprocess

import pytest
import solv

from bootstrap.rpm.versions import compare_evr, split_evr, vercmp
from tests.rpm.conftest import need_tools

PAIRS = [
    ("1.0", "1.0"),
    ("1.0", "2.0"),
    ("2.0.1", "2.0"),
    ("1.0a", "1.0"),
    ("1.0", "1.0a"),
    ("1.05", "1.5"),
    ("1.0~rc1", "1.0"),
    ("1.0~rc1", "1.0~rc2"),
    ("1.0~rc1~git", "1.0~rc1"),
    ("1.0^", "1.0"),
    ("1.0^git1", "1.0.1"),
    ("1.0^git1", "1.0^git2"),
    ("1.0^git1", "1.0~rc1"),
    ("a", "1"),
    ("abc", "abd"),
    ("1.0.0", "1.0"),
    ("1_0", "1.0"),
    ("1..0", "1.0"),
    ("2.39", "2.4"),
    ("10", "9"),
    ("000", "0"),
    ("", "1"),
    ("1.el9", "1.el9_2"),
    ("5.fc40", "5.fc41"),
    ("1+2", "1.2"),
    ("1.0", "1.0+"),
    ("R", "r"),
    ("x.1", "x.a"),
]


def _random_version(rng: random.Random) -> str:
    return "".join(rng.choice("0129ab.~^_") for _ in range(rng.randint(0, 7)))


def _pairs() -> list[tuple[str, str]]:
    rng = random.Random(22)
    return PAIRS + [(_random_version(rng), _random_version(rng)) for _ in range(400)]


def test_same_order_as_libsolv() -> None:
    pairs = [(a, b) for a, b in _pairs() if a and b]  # libsolv reads a whole evr: an empty one is not a version
    pool = solv.Pool()
    pool.setdisttype(solv.Pool.DISTTYPE_RPM)
    repo = pool.add_repo("versions")
    solvables = []
    for a, b in pairs:
        x, y = repo.add_solvable(), repo.add_solvable()
        x.evr, y.evr = a, b
        solvables.append((x, y))
    repo.internalize()
    got = [max(-1, min(1, x.evrcmp(y))) for x, y in solvables]
    assert got == [vercmp(a, b) for a, b in pairs]


def test_same_order_as_rpm() -> None:
    need_tools("rpm")
    pairs = [(a, b) for a, b in _pairs() if a and b]  # rpm.vercmp refuses an empty version
    lua = "".join(f"print(rpm.vercmp('{a}', '{b}'), ' ');" for a, b in pairs)
    proc = subprocess.run(["rpm", "--eval", f"%{{lua:{lua}}}"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[:500]
    assert [int(x) for x in proc.stdout.split()] == [vercmp(a, b) for a, b in pairs]


@pytest.mark.parametrize(
    ("a", "b", "order"),
    [("1:1.0-1", "2.0-1", 1), ("0:1.0-1", "1.0-1", 0), ("1.0-2", "1.0-10", -1), ("1.0", "1.0-5", 0), ("2:1", "1:9", 1)],
)
def test_compare_evr(a: str, b: str, order: int) -> None:
    assert compare_evr(a, b) == order
    assert compare_evr(b, a) == -order


def test_split_evr() -> None:
    assert split_evr("1:9.4-5.el9") == (1, "9.4", "5.el9")
    assert split_evr("2.0") == (0, "2.0", "")
