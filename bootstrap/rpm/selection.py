"""A resolved RPM package set in the neutral model (`bootstrap.family.model`): what the lock, the SBOMs and
`check` read, and the way back from a lock's pins to the repository's packages."""

from collections.abc import Sequence
from dataclasses import dataclass

from bootstrap.errors import BootstrapError
from bootstrap.family.model import Package as ModelPackage
from bootstrap.family.model import Pin
from bootstrap.rpm.packages import Package
from bootstrap.rpm.repomd import safe_location
from bootstrap.rpm.versions import compare_evr

SOURCE_SUFFIXES = (".src.rpm", ".nosrc.rpm")


def source_of(sourcerpm: str) -> tuple[str, str]:
    """(name, version-release) of a source rpm file name (`coreutils-9.4-5.el9.src.rpm`); ("", "") if none."""
    stem = next((sourcerpm.removesuffix(s) for s in SOURCE_SUFFIXES if sourcerpm.endswith(s)), "")
    parts = stem.rsplit("-", 2)
    if len(parts) != 3:
        return "", ""
    return parts[0], f"{parts[1]}-{parts[2]}"


def to_model(pkg: Package, base_url: str, repo_id: str) -> ModelPackage:
    """The package as the generic layers see it (purl type `rpm`; its version epoch:version-release); one whose
    location leaves its repository (`..`, another host) is refused, as the metadata's own locations are."""
    source_name, source_version = source_of(pkg.sourcerpm)
    location = safe_location(pkg.location, f"{repo_id}: {pkg.nevra}")
    return ModelPackage(
        name=pkg.name,
        version=pkg.evr,
        arch=pkg.arch,
        filename=location,
        url=f"{base_url.rstrip('/')}/{location}",
        size=pkg.size,
        sha256=pkg.sha256,
        dist=repo_id,
        source_name=source_name or pkg.name,
        source_version=source_version or pkg.evr,
        maintainer=pkg.packager,
        purl_type="rpm",
    )


@dataclass(frozen=True)
class RpmSelection:
    """The `Selection` of the family interface, with the repository records behind it."""

    records: tuple[Package, ...]
    packages: tuple[ModelPackage, ...]

    def names(self) -> list[str]:
        return [p.name for p in self.packages]

    def by_name(self) -> dict[str, ModelPackage]:
        return {p.name: p for p in self.packages}

    def compare_versions(self, a: str, b: str) -> int:
        return compare_evr(a, b)


def select(chosen: Sequence[tuple[Package, ModelPackage]]) -> RpmSelection:
    """The set, sorted by name. One architecture per name: the lock, the unpack and the records key packages by
    name, so a set with a multilib pair (glibc.x86_64 and glibc.i686) is refused rather than half kept."""
    ordered = sorted(chosen, key=lambda pair: (pair[0].name, pair[0].arch))
    for (a, _), (b, _) in zip(ordered, ordered[1:], strict=False):
        if a.name == b.name:
            raise BootstrapError(
                f"the resolved set has {a.name} twice ({a.arch} and {b.arch}): one architecture per name is supported",
                f"keep the other architecture out (packages.exclude), or drop what needs {a.name}.{b.arch}",
            )
    return RpmSelection(tuple(r for r, _ in ordered), tuple(m for _, m in ordered))


def pinned(available: Sequence[tuple[Package, ModelPackage]], pins: Sequence[Pin]) -> tuple[RpmSelection, list[Pin]]:
    """The packages a lock names, matched by name, version and architecture (of several repositories' copies, the
    one with the pinned sha256); and the pins none matches. A match with another sha256 is the caller's to refuse
    (`records.lock.selection_from`: rebuilt under the same version)."""
    index: dict[tuple[str, str, str], list[tuple[Package, ModelPackage]]] = {}
    for r, m in available:
        index.setdefault((m.name, m.version, m.arch), []).append((r, m))
    found, gone = [], []
    for pin in pins:
        copies = index.get((pin.name, pin.version, pin.arch), [])
        if not copies:
            gone.append(pin)
        else:
            found.append(next((c for c in copies if c[1].sha256 == pin.sha256), copies[0]))
    return select(found), gone
