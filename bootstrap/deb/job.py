"""The deb family's steps for one platform's tree: unpack (and the dpkg database), the host's tools for a
foreign tree's maintainer scripts, configure, finish (container settings, apt sources), the distroless
status.d, and the copyright notices. Rows of the step table (`bootstrap.build.steps`) call them."""

from dataclasses import dataclass, field
from pathlib import Path

from bootstrap.deb import copyright, dpkgdb, native
from bootstrap.deb import index as index_mod
from bootstrap.deb.archive import Archive
from bootstrap.deb.configure import base_env, configure, install_order
from bootstrap.deb.distros import merged_usr_dirs
from bootstrap.deb.filters import PathFilter
from bootstrap.deb.finish import AptSourceEntry, finish, keep_directories, sources_deb822
from bootstrap.deb.index import Index
from bootstrap.deb.resolve import Selection, resolve
from bootstrap.deb.settings import DebSettings
from bootstrap.deb.unpack import Unpacked, drop_unshipped_links, prepare_root, unpack_all
from bootstrap.errors import BootstrapError
from bootstrap.family.interface import Runnable, Target
from bootstrap.family.model import Notice
from bootstrap.host.arches import TRIPLETS
from bootstrap.host.tree import Tree
from bootstrap.log import log


@dataclass
class DebJob:
    """One platform's tree as the deb steps build it."""

    settings: DebSettings
    archive: Archive
    selection: Selection
    debs: dict[str, Path]
    target: Target
    unpacked: list[Unpacked] = field(default_factory=list)
    staged: native.Staged | None = None
    """Native tools put into a foreign tree for its maintainer scripts, taken out after configure."""

    @property
    def tree(self) -> Tree:
        return Tree(self.target.root, self.target.overrides)

    @property
    def pfilter(self) -> PathFilter:
        return PathFilter.from_lists(self.settings.path_exclude, self.settings.path_include)

    @property
    def expanded(self) -> Path | None:
        """The cache of decompressed packages, unless the plan takes nothing from derived cache areas."""
        return self.settings.cache.area("expanded") if self.settings.derived_cache else None

    def archive_classified(self) -> set[str]:
        """The packages whose dpkg status takes Priority and Section from the archive index, as in a
        debootstrapped image: those of the required phase (the recipe's priorities and Essential, without its
        includes) at the suite's own version. Later installs and upgrades keep what their .deb says."""
        phase = set(resolve(self.archive.index, self.settings.phase).names())
        return {p.name for p in self.selection.packages if p.name in phase and p.dist == self.archive.codename}

    def unpack(self, final: bool) -> None:
        """The packages' files, path filters applied; unless `final`, the dpkg database as `dpkg --unpack`
        leaves it (`final`: nothing will configure them, no conffile waits as .dpkg-new)."""
        root, dirs = self.target.root, merged_usr_dirs(self.target.arch)
        prepare_root(root, dirs)
        items = [(p, self.debs[p.name]) for p in install_order(self.selection.packages)]
        self.unpacked = unpack_all(root, items, self.pfilter, self.expanded, self.target.overrides, final)
        drop_unshipped_links(root, dirs, self.unpacked)
        keep_directories(self.tree, (p for u in self.unpacked for p in u.paths), self.settings.keep_directories)
        if not final:
            from_index = self.settings.distro.settings.status_from_index
            dpkgdb.write(self.tree, self.unpacked, self.archive_classified() if from_index else set())

    def native_tools(self, host: str) -> int:
        """For a foreign architecture: the host's builds of the same package versions, for the maintainer
        scripts' tools to run natively (native.py). Without all of them, everything runs emulated."""
        s = self.settings
        triplet = TRIPLETS.get(host)
        if not s.native_tools or triplet is None:
            return 0
        parts = [
            (r, index_mod.load(s.cache, r, c, host, s.derived_cache))
            for r in self.archive.releases
            for c in s.components
        ]
        found = native.counterparts(list(self.selection.packages), Index(parts, host))
        if found is None:
            return 0
        try:
            debs = s.fetch([p.neutral() for p in found])
        except BootstrapError as exc:
            log.info("maintainer scripts run under emulation: %s", exc.message)
            return 0
        pairs = [(p, debs[p.name]) for p in found]
        self.staged = native.Staged()
        try:
            native.stage(self.tree, pairs, self.expanded, triplet, self.staged)
        except BaseException:
            native.unstage(self.tree, self.staged)
            self.staged = None
            raise
        return len(self.staged.swapped)

    def configure(self, runnable: Runnable) -> None:
        """Every preinst, then `dpkg --configure -a`, in the sandbox; native tools taken out after."""
        try:
            with runnable() as sandbox:
                configure(self.target.root, self.unpacked, self.target.epoch, sandbox)
        finally:
            if self.staged is not None:
                native.unstage(self.tree, self.staged)
                self.staged = None

    def apt_sources(self) -> list[AptSourceEntry]:
        """The image's own apt sources: the mirrors of the build, with the suites the distribution's images
        list (its sources layout), named after the verified codename."""
        found = self.settings.mirrors(self.target.arch)
        mirrors = {"main": found.main, "security": found.security}
        distro, archive = self.settings.distro, self.archive
        updates = distro.has_updates(archive.suite)
        out = []
        for role, suffixes in distro.settings.sources_layout:
            suites = tuple(archive.codename + s for s in suffixes if not s or updates)
            if suites:
                out.append(AptSourceEntry(mirrors[role], suites, self.settings.components))
        return out

    def finish(self) -> None:
        """Container settings, slim rules, apt sources and scrubbing."""
        distro = self.settings.distro
        finish(
            self.target.root,
            self.pfilter,
            self.apt_sources(),
            distro.sources_file,
            [k.name for k in distro.keyrings],
            self.target.epoch,
            distro.settings,
        )
        for extra in self.settings.extra:
            name, key = extra.image_keyring()
            self.tree.write(f"etc/apt/keyrings/{name}", key)
            entry = AptSourceEntry(extra.url, extra.suites, extra.components)
            self.tree.write(
                f"etc/apt/sources.list.d/{extra.name}.sources", sources_deb822([entry], f"/etc/apt/keyrings/{name}")
            )

    def package_database(self) -> None:
        """The distroless dpkg database: a control stanza and md5sums per package, for scanners."""
        dpkgdb.write_status_d(self.tree, self.unpacked)

    def notices(self) -> dict[str, Notice]:
        """What each package's copyright file says (licences, copyright text), for the SBOM."""
        return copyright.notices(self.tree, (p.name for p in self.selection.packages))

    def unpacked_state(self) -> bytes | None:
        """None: Debian builds keep no tree (their unpack is dpkg's own, and already the fast path's)."""
        return None

    def restore(self, state: bytes) -> bool:
        return False

    def script_env(self) -> dict[str, str]:
        return base_env(self.target.epoch)
