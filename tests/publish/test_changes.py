"""What a rebuild would change, in the order of versions of the packages' own family."""

import dataclasses

from bootstrap.deb.family import DebSelection
from bootstrap.deb.resolve import Selection as DebResolved
from bootstrap.family import model
from bootstrap.publish import changes
from bootstrap.records.lock import Lock, LockedPackage
from tests.fixtures.records import package


def _lock(*versions: tuple[str, str]) -> Lock:
    packages = tuple(LockedPackage(n, v, "amd64", f"pool/{n}.deb", 1, "0" * 64, "fixture") for n, v in versions)
    return Lock("debian-slim", "debian", "stable", "fixture", "amd64", 0, (), packages)


def test_debian_version_order_decides_up_or_down() -> None:
    lock = _lock(("a", "1.0~rc1"), ("b", "2:1.0"), ("gone", "1"))
    debs = (
        package("a", "1.0"),
        dataclasses.replace(package("b", "9.9"), dist="fixture-security"),
        package("new", "1"),
    )
    found = changes.compare(lock, DebSelection(DebResolved(debs)), "fixture")
    assert [(c.name, c.kind, c.security) for c in found.changes] == [
        ("a", "upgraded", False),
        ("b", "downgraded", True),  # an epoch outranks any upstream version
        ("gone", "removed", False),
        ("new", "added", False),
    ]
    assert "~ b 2:1.0 -> 9.9 [security]" in found.report()


@dataclasses.dataclass(frozen=True)
class Numbered:
    """A selection of another family, whose versions are decimal numbers (1.10 is older than 1.9)."""

    packages: tuple[model.Package, ...]

    def names(self) -> list[str]:
        return [p.name for p in self.packages]

    def by_name(self) -> dict[str, model.Package]:
        return {p.name: p for p in self.packages}

    def compare_versions(self, a: str, b: str) -> int:
        return (float(a) > float(b)) - (float(a) < float(b))


def test_another_familys_order_of_versions_is_its_own() -> None:
    pkg = dataclasses.replace(package("a").neutral(), version="1.10", purl_type="rpm")
    (change,) = changes.compare(_lock(("a", "1.9")), Numbered((pkg,)), "fixture").changes
    assert change.kind == "downgraded", "Debian's order would call 1.9 -> 1.10 an upgrade"
