"""The RPM family behind the family interface (`bootstrap.family.interface`): a release's repositories opened
and verified, the recipe's request resolved with libsolv, each fetched package's signature and payload checked
before the install steps (`job.RpmJob`) see it."""

import dataclasses
import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bootstrap.errors import BootstrapError
from bootstrap.family import interface, model
from bootstrap.host.parallel import map_parallel
from bootstrap.log import log
from bootstrap.rpm import keptdb, locate, pkgsig, repofiles, resolved
from bootstrap.rpm import resolve as resolve_mod
from bootstrap.rpm import selection as selection_mod
from bootstrap.rpm.archive import RpmArchive, open_archive, substitute
from bootstrap.rpm.header import Layout, read_layout
from bootstrap.rpm.job import RpmJob
from bootstrap.rpm.options import JobOptions
from bootstrap.rpm.selection import RpmSelection, to_model
from bootstrap.rpm.settings import RpmSettings
from bootstrap.rpm.verdicts import Verdicts

NAME = "rpm"
WORKERS = 4


def own_archive(archive: interface.Archive) -> RpmArchive:
    if not isinstance(archive, RpmArchive):
        raise BootstrapError(f"not an RPM archive: {archive!r}", "report this as a bug")
    return archive


def own_selection(selection: interface.Selection) -> RpmSelection:
    if not isinstance(selection, RpmSelection):
        raise BootstrapError(f"not an RPM package selection: {selection!r}", "report this as a bug")
    return selection


def _excluded(name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


@dataclass(frozen=True)
class RpmFamily:
    """The RPM family, for one plan."""

    settings: RpmSettings

    @property
    def name(self) -> str:
        return NAME

    @property
    def origin(self) -> str:
        return str(self.settings.distro.name)

    @property
    def locked_password(self) -> str:
        """Red Hat's useradd locks a new account with `!!`."""
        return "!!"

    @property
    def account_backups(self) -> bool:
        """AlmaLinux's build adds its accounts with groupadd and useradd, whose backups stay in the image; its
        `sed` on group- and gshadow- takes out the one group the first of them held, so each backup is the file
        as it was before the accounts were added."""
        return True

    def older_packages_hint(self, distribution: str, date: int) -> str:
        """Older point releases move to a vault (AlmaLinux, Rocky Linux, CentOS) or an archive (Fedora)."""
        return (
            "point --mirror at a mirror that still serves the lock's packages (a vault or archive of older "
            "releases), or relock with `bootstrap lock`"
        )

    def open(self, arch: str) -> RpmArchive:
        self.settings.cache.ensure()
        return open_archive(self.settings, locate.basearch(arch), self.settings.mirror(arch))

    def resolve(self, archive: interface.Archive) -> RpmSelection:
        """The request resolved with libsolv over every repository's listing, or the set an earlier build resolved
        from these very repository states and settings (`resolved`; not for a build that takes nothing derived)."""
        own = own_archive(archive)
        s = self.settings
        area = s.cache.area(resolved.AREA) if s.derived_cache and not s.insecure else None
        states = [(rid, r.url, r.repomd_sha256) for rid, r in own.repositories]
        name = resolved.key(states, s.request, own.basearch, s.exclude) if area is not None else ""
        chosen = resolved.kept(area, name) if area is not None else None
        if chosen is not None:  # the states' metadata files were checked by the build that kept the set
            for _, r in own.repositories:
                r.settle()
        else:
            map_parallel(lambda r: r.listing, [r for _, r in own.repositories], len(own.repositories))
            where = {id(record): (r.url, rid) for rid, r in own.repositories for record in r.packages}
            listings = [(rid, r.listing) for rid, r in own.repositories]
            records = resolve_mod.resolve(
                listings, own.groups, s.request, own.basearch, lambda name: _excluded(name, s.exclude)
            )
            chosen = [(r, *where[id(r)]) for r in records]
            if area is not None:
                resolved.keep(area, name, chosen)
        return selection_mod.select([(r, to_model(r, url, rid)) for r, url, rid in chosen])

    def pinned(self, archive: interface.Archive, pins: Sequence[model.Pin]) -> tuple[RpmSelection, list[model.Pin]]:
        return selection_mod.pinned(own_archive(archive).available, pins)

    def verified(
        self, selection: RpmSelection, files: Mapping[str, Path], layouts: dict[str, Layout] | None = None
    ) -> dict[str, Path]:
        """Each package file, once its OpenPGP signature (by a pinned key) and its payload digest are checked
        (or were, by an earlier build with the same keys: `verdicts`) and its signed header is seen to be the
        package its record names: the first that fails stops the build before anything is unpacked (`layouts`:
        filled with each package's headers as read, for the unpack)."""
        s = self.settings
        if s.insecure:
            log.warning("WARNING: --insecure: the packages' signatures are NOT checked")
            return dict(files)

        kept = Verdicts(s.cache, s.keyrings, s.signers) if s.derived_cache else None
        records = {r.name: r for r in selection.records}

        def fetched(p: model.Package) -> Path:
            path = files.get(p.name)
            if path is None:
                raise BootstrapError(f"{p.name} was not fetched", "report this as a bug")
            return path

        def seen(p: model.Package, layout: Layout) -> None:
            pkgsig.check_names(layout, records[p.name], p.filename)  # every build: the record may be new
            if layouts is not None:
                layouts[p.name] = layout

        def check(p: model.Package) -> None:
            path = fetched(p)
            layout = pkgsig.verify(path, s.keyrings, p.filename, s.signers)
            if kept is not None:
                kept.record(p.sha256, path)
            seen(p, layout)

        # Those an earlier check vouches for, one after another (a few reads and a parse each: threads would only
        # wait on each other for the interpreter); the rest in threads (each waits on gpgv).
        unvouched = []
        for p in selection.packages:
            path = fetched(p)
            if kept is not None and kept.passed(p.sha256, path):
                with open(path, "rb") as f:
                    seen(p, read_layout(f, p.filename))
            else:
                unvouched.append(p)
        map_parallel(check, unvouched, WORKERS)
        return {p.name: files[p.name] for p in selection.packages}

    def options(self, arch: str) -> JobOptions:
        """The tree's settings, with the repository files pointing at the mirror the image was built from, the
        database where the release's rpm keeps it and the key file it imports (dnf's variables filled in)."""
        s = self.settings
        repos = repofiles.repo_files(s.distro, s.release, s.mirror(arch), s.metalink)
        release = s.distro.releases[s.release]
        keys = (substitute(release.gpgkey, release, locate.basearch(arch)),) if s.options.import_key else ()
        return dataclasses.replace(s.options, write={**repos, **s.options.write}, dbpath=release.dbpath, keys=keys)

    def unpack_tools(self) -> str:
        """The host's rpm (it writes the package database the unpack leaves), its libraries and SQLite."""
        return keptdb.writer()

    def job(
        self,
        archive: interface.Archive,
        selection: interface.Selection,
        files: Mapping[str, Path],
        target: interface.Target,
    ) -> RpmJob:
        own = own_selection(selection)
        layouts: dict[str, Layout] = {}
        checked = self.verified(own, files, layouts)
        cache, derived = self.settings.cache, self.settings.derived_cache
        kept, kept_db = (cache.area("expanded"), cache.area(keptdb.AREA)) if derived else (None, None)
        read = layouts or None  # --insecure reads none
        return RpmJob(own, checked, target, self.options(target.arch), kept, kept_db, read_layouts=read)
