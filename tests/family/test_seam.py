"""The seam between the generic layers and the package families: one registry, and nothing else outside a
family's package that knows it."""

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

from bootstrap.build import families, recipe
from bootstrap.build.recipe import Recipe
from bootstrap.deb.family import DebFamily
from bootstrap.host.cache import Cache

PACKAGE = Path(__file__).resolve().parents[2] / "bootstrap"
REGISTRY = PACKAGE / "build" / "families.py"


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return out


@pytest.mark.parametrize(("fam", "cls"), [("deb", "DebFamily"), ("rpm", "RpmFamily")])
def test_only_the_registry_imports_a_family(fam: str, cls: str) -> None:
    outside = [p for p in PACKAGE.rglob("*.py") if PACKAGE / fam not in p.parents and p != REGISTRY]
    assert len(outside) > 50
    knowing = sorted(
        str(p.relative_to(PACKAGE))
        for p in outside
        if any(m == f"bootstrap.{fam}" or m.startswith(f"bootstrap.{fam}.") for m in _imports(p))
    )
    assert knowing == []
    assert f"bootstrap.{fam}.family.{cls}" in _imports(REGISTRY)


def test_the_family_package_imports_no_family_and_no_generic_layer() -> None:
    below = ("bootstrap.family", "bootstrap.host", "bootstrap.errors", "bootstrap.log")
    for path in (PACKAGE / "family").rglob("*.py"):
        ours = {m for m in _imports(path) if m.startswith("bootstrap")}
        assert all(m.startswith(below) for m in ours), (path, ours)


def test_every_distribution_has_a_family_and_its_data() -> None:
    assert set(families.DISTRIBUTIONS) == set(families.Distro) == set(families.DISTROS)
    deb = {d for d in families.Distro if families.DISTRIBUTIONS[d] == "deb"}
    assert deb == {families.Distro.DEBIAN, families.Distro.UBUNTU}
    assert {families.DISTRIBUTIONS[d] for d in set(families.Distro) - deb} == {"rpm"}
    assert set(families.DISTRIBUTIONS.values()) == set(families.FAMILIES)


@dataclass(frozen=True)
class View:
    """A plan as a family reads it (`families.PlanView`), without a host to discover mirrors on."""

    recipe: Recipe
    distro: families.AnyDistro
    cache: Cache
    suite: str = "noble"
    keyrings: tuple[Path, ...] = ()
    signers: frozenset[str] = frozenset()
    extra: tuple[families.ExtraSource, ...] = ()
    insecure: bool = True
    check_valid_until: bool = False
    offline: bool = True
    derived_cache: bool = True
    native_tools: bool = True

    def mirrors_for(self, arch: str) -> families.Mirrors:
        return families.Mirrors("http://127.0.0.1/ubuntu", "http://127.0.0.1/ubuntu")


def test_the_registry_makes_the_distributions_family_for_a_plan(tmp_path: Path) -> None:
    rec = recipe.load("ubuntu")
    family = families.family_for(View(rec, families.DISTROS[rec.distribution], Cache(tmp_path)))
    assert isinstance(family, DebFamily) and family.name == "deb"
    assert family.origin == "ubuntu", "a scriptless image links /etc/dpkg/origins/default to its own vendor"
    assert family.settings.request == families.request_for(rec)
    assert family.settings.phase.include == (), "the required phase leaves the recipe's includes out"
