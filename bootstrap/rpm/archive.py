"""One architecture's verified state of a release's repositories (the family's `Archive`): each repository
opened and checked (`repo.open_repository`), and every package of them in the neutral model."""

import dataclasses
from dataclasses import dataclass
from functools import cached_property

from bootstrap.errors import BootstrapError, MirrorError
from bootstrap.family.model import Package as ModelPackage
from bootstrap.family.model import Source
from bootstrap.host.parallel import map_parallel
from bootstrap.rpm import repo as repo_mod
from bootstrap.rpm.comps import Group
from bootstrap.rpm.distros import Release, RepoDef
from bootstrap.rpm.packages import Package
from bootstrap.rpm.repo import Repository
from bootstrap.rpm.selection import to_model
from bootstrap.rpm.settings import RpmSettings


@dataclass(frozen=True)
class RpmArchive:
    release: str
    basearch: str
    repositories: tuple[tuple[str, Repository], ...]
    """(repository id, its verified state), in the release's order."""
    insecure: bool = False

    @property
    def codename(self) -> str:
        return self.release

    @property
    def suite(self) -> str:
        return self.release

    @property
    def date(self) -> int:
        return max(r.repomd.stamp for _, r in self.repositories)

    @property
    def sources(self) -> tuple[Source, ...]:
        return tuple(dataclasses.replace(r.source, dist=rid) for rid, r in self.repositories)

    @cached_property
    def available(self) -> tuple[tuple[Package, ModelPackage], ...]:
        """Every package of every repository, with its neutral record (URL, repository id)."""
        return tuple((p, to_model(p, r.url, rid)) for rid, r in self.repositories for p in r.packages)

    @cached_property
    def groups(self) -> dict[str, Group]:
        """The comps groups of all repositories (the first repository's wins a shared id, as in dnf's order)."""
        out: dict[str, Group] = {}
        for _, r in self.repositories:
            for gid, group in r.groups.items():
                out.setdefault(gid, group)
        return out


def substitute(path: str, release: Release, basearch: str) -> str:
    """dnf's variables filled in: `$releasever`, `$basearch`, and CentOS Stream's `$stream` (its release package's
    /etc/dnf/vars/stream: `10-stream`)."""
    filled = path.replace("$releasever", release.version).replace("$basearch", basearch)
    return filled.replace("$stream", f"{release.version}-stream")


def chosen(settings: RpmSettings) -> tuple[RepoDef, ...]:
    """The repositories the build reads: the recipe's ids, else those the release enables."""
    release = settings.distro.releases[settings.release]
    if not settings.repos:
        return tuple(r for r in release.repos if r.enabled)
    known = {r.id: r for r in release.repos}
    unknown = [rid for rid in settings.repos if rid not in known]
    if unknown:
        raise BootstrapError(
            f"{settings.distro.name} {settings.release} has no repository {', '.join(unknown)}",
            f"its repositories: {', '.join(known)}",
        )
    return tuple(known[rid] for rid in settings.repos)


def open_archive(settings: RpmSettings, basearch: str, mirror: str) -> RpmArchive:
    """Open and verify each repository the build reads (in parallel), under `mirror` (the tree's root), or where
    each one's metalink says (`mirror` empty: none given, a metalink service named)."""
    s = settings
    release = s.distro.releases[s.release]
    repos = chosen(s)

    def one(r: RepoDef) -> Repository:
        url = f"{mirror}/{substitute(r.path, release, basearch)}"
        link = f"{s.metalink}{substitute(r.metalink, release, basearch)}" if s.metalink and r.metalink else ""
        checks = repo_mod.Checks(
            s.keyrings, s.cache, s.signers, s.insecure, s.offline, s.distro.metadata_signed, s.derived_cache, lazy=True
        )
        if not mirror:  # no --mirror: the mirrors the metalink lists (locate.mirror allows none only with one)
            if not link:
                raise MirrorError(f"{s.distro.name} {r.id} has no metalink to find a mirror by", "pass --mirror")
            return repo_mod.open_from_metalink(link, checks)
        return checks.open(url, link)

    opened = map_parallel(one, repos, len(repos))
    return RpmArchive(s.release, basearch, tuple((r.id, o) for r, o in zip(repos, opened, strict=True)), s.insecure)
