"""The steps that make a root tree, chosen by the recipe (`STEPS`, a table): unpack, configure, accounts,
files, customize, finish; or, for a scriptless recipe, unpack and the declarative steps that stand in for
the maintainer scripts. Each takes the `Work` of one platform's build and adds to it."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bootstrap.build import accounts, download, foreign, ldcache, localfiles, scriptless
from bootstrap.build.foreign import Emulator
from bootstrap.build.plan import Plan, host_arch, merged_usr_dirs
from bootstrap.build.recipe import Recipe
from bootstrap.deb import copyright, dpkgdb, native
from bootstrap.deb import index as index_mod
from bootstrap.deb.archive import Archive
from bootstrap.deb.configure import base_env, configure, install_order
from bootstrap.deb.filters import PathFilter
from bootstrap.deb.finish import AptSourceEntry, finish, keep_directories, sources_deb822
from bootstrap.deb.index import Index
from bootstrap.deb.resolve import Request, Selection, resolve
from bootstrap.deb.unpack import Unpacked, drop_unshipped_links, prepare_root, unpack_all
from bootstrap.errors import BootstrapError, ConfigureError
from bootstrap.host.arches import TRIPLETS
from bootstrap.host.overrides import Overrides
from bootstrap.host.sandbox import Sandbox, mounts_under
from bootstrap.host.tree import Tree
from bootstrap.log import log


@dataclass
class Work:
    """One platform's tree as the steps build it."""

    plan: Plan
    arch: str
    archive: Archive
    selection: Selection
    debs: dict[str, Path]
    epoch: int
    root: Path
    emulator: Emulator | None
    overrides: Overrides | None = None
    """Devices (and, for a scriptless build, owners and modes) recorded for the layer, instead of made on disk."""
    unpacked: list[Unpacked] = field(default_factory=list)
    notices: dict[str, copyright.Notice] = field(default_factory=dict)
    """What each package's copyright file says (licences, copyright text), read before packing."""
    staged: native.Staged | None = None
    """Native tools put into a foreign tree for its maintainer scripts, taken out after configure."""
    native_tools: int = 0
    """How many foreign executables ran natively."""

    @property
    def tree(self) -> Tree:
        return Tree(self.root, self.overrides)

    @property
    def pfilter(self) -> PathFilter:
        return PathFilter.from_lists(self.plan.recipe.path_exclude, self.plan.recipe.path_include)

    @contextmanager
    def runnable(self) -> Iterator[Sandbox]:
        """A sandbox for programs of the tree (through the emulator when the architecture is foreign)."""
        added = foreign.install_interpreter(self.emulator, self.tree) if self.emulator else None
        try:
            yield Sandbox(self.root)
        finally:
            if added is not None:
                self.tree.remove(added)
        if mounts_under(self.root):
            raise BootstrapError(f"{self.root} still has mounts", "unmount them by hand, then retry")


def archive_classified(plan: Plan, archive: Archive, selection: Selection) -> set[str]:
    """The packages whose dpkg status takes Priority and Section from the archive index, as in a debootstrapped
    image: those of the required phase (the recipe's priorities and Essential, without its includes) at the
    suite's own version. Later installs and upgrades keep what their .deb says."""
    r = plan.recipe
    phase = set(resolve(archive.index, Request(r.priorities, r.essential, (), r.exclude, r.prefer)).names())
    return {p.name for p in selection.packages if p.name in phase and p.dist == archive.codename}


def expanded(plan: Plan) -> Path | None:
    """The cache of decompressed packages, unless the plan takes nothing from derived cache areas."""
    return plan.cache.area("expanded") if plan.derived_cache else None


def _unpack_files(w: Work, configured: bool) -> None:
    """The packages' files, path filters applied (`configured`: no conffile waits as .dpkg-new)."""
    dirs = merged_usr_dirs(w.arch)
    order = install_order(w.selection.packages)
    prepare_root(w.root, dirs)
    items = [(p, w.debs[p.name]) for p in order]
    w.unpacked = unpack_all(w.root, items, w.pfilter, expanded(w.plan), w.overrides, configured)
    drop_unshipped_links(w.root, dirs, w.unpacked)
    keep_directories(w.tree, (p for u in w.unpacked for p in u.paths), w.plan.recipe.keep_directories)


def unpack(w: Work) -> None:
    """The packages' files and the dpkg database, as `dpkg --unpack` leaves them."""
    _unpack_files(w, configured=False)
    from_index = w.plan.distro.settings.status_from_index
    dpkgdb.write(w.tree, w.unpacked, archive_classified(w.plan, w.archive, w.selection) if from_index else set())


def unpack_scriptless(w: Work) -> None:
    """The packages' files, final as they are: nothing will configure them."""
    _unpack_files(w, configured=True)


def native_tools(w: Work) -> None:
    """For a foreign architecture: the host's builds of the same package versions, for the maintainer scripts'
    tools to run natively (bootstrap/deb/native.py). Without all of them, everything runs emulated."""
    host = host_arch()
    triplet = TRIPLETS.get(host)
    if not w.plan.native_tools or triplet is None:
        return
    cache, components = w.plan.cache, w.plan.recipe.components
    releases = [r for r in w.archive.releases]
    parts = [(r, index_mod.load(cache, r, c, host, w.plan.derived_cache)) for r in releases for c in components]
    found = native.counterparts(list(w.selection.packages), Index(parts, host))
    if found is None:
        return
    try:
        debs = download.fetch_all(found, cache, w.plan.offline)
    except BootstrapError as exc:
        log.info("maintainer scripts run under emulation: %s", exc.message)
        return
    pairs = [(p, debs[p.name]) for p in found]
    w.staged = native.Staged()
    try:
        native.stage(w.tree, pairs, expanded(w.plan), triplet, w.staged)
    except BaseException:
        native.unstage(w.tree, w.staged)
        w.staged = None
        raise
    w.native_tools = len(w.staged.swapped)


def configure_packages(w: Work) -> None:
    """Every preinst, then `dpkg --configure -a`, in the sandbox; native tools taken out after."""
    try:
        with w.runnable() as sandbox:
            configure(w.root, w.unpacked, w.epoch, sandbox)
    finally:
        if w.staged is not None:
            native.unstage(w.tree, w.staged)
            w.staged = None


def add_accounts(w: Work) -> None:
    r = w.plan.recipe
    accounts.add(w.tree, r.groups, r.accounts, w.epoch, r.source)


def declared_accounts(w: Work) -> None:
    """passwd, group and shadow from nothing (root, nobody, nonroot), then the recipe's accounts."""
    scriptless.write_accounts(w.tree, w.plan.recipe, w.epoch)


def declared_files(w: Work) -> None:
    """What the packages' scripts would have made (temporary directories, nsswitch.conf, base-files' links,
    tzdata's /etc/localtime), before the recipe's files, which may replace any of it."""
    scriptless.declare(w.tree, w.selection.names())


def ca_bundle(w: Work) -> None:
    """The CA bundle from the packages' certificates and the recipe's in /usr/local/share/ca-certificates."""
    log.debug("ca-certificates.crt: %d certificates", scriptless.ca_bundle(w.tree))


def linker_cache(w: Work) -> None:
    """/etc/ld.so.cache for the libraries present (none: no cache)."""
    log.debug("ld.so.cache: %d entries", ldcache.write(w.tree, w.arch))


def status_d(w: Work) -> None:
    """The distroless dpkg database: a control stanza and md5sums per package, for scanners."""
    dpkgdb.write_status_d(w.tree, w.unpacked)


def copy_files(w: Work) -> None:
    localfiles.copy_in(w.tree, w.plan.recipe.files, w.plan.recipe.source)


def customize(w: Work) -> None:
    """The recipe's hooks, in order, in the sandbox (services blocked by policy-rc.d, no network)."""
    with w.runnable() as sandbox:
        for i, hook in enumerate(w.plan.recipe.customize):
            proc = sandbox.run(["/bin/sh", "-ec", hook.run], base_env(w.epoch))
            log.debug("customize[%d]: %s", i, proc.stdout.rstrip())
            if proc.returncode != 0:
                said = " | ".join(line.strip() for line in proc.stdout.strip().splitlines()[-3:]) or "no output"
                raise ConfigureError(
                    f"{w.plan.recipe.source}: customize[{i}] failed (exit {proc.returncode}): {said}",
                    "fix the hook; run with -vv to see everything it printed",
                )


def apt_sources(plan: Plan, archive: Archive, arch: str) -> list[AptSourceEntry]:
    """The image's own apt sources: the mirrors of the build, with the suites the distribution's images list
    (its sources layout), named after the verified codename."""
    found = plan.mirrors_for(arch)
    mirrors = {"main": found.main, "security": found.security}
    updates = plan.distro.has_updates(archive.suite)
    out = []
    for role, suffixes in plan.distro.settings.sources_layout:
        suites = tuple(archive.codename + s for s in suffixes if not s or updates)
        if suites:
            out.append(AptSourceEntry(mirrors[role], suites, plan.recipe.components))
    return out


def finish_tree(w: Work) -> None:
    """Container settings, slim rules, apt sources and scrubbing."""
    distro = w.plan.distro
    finish(
        w.root,
        w.pfilter,
        apt_sources(w.plan, w.archive, w.arch),
        distro.sources_file,
        [k.name for k in distro.keyrings],
        w.epoch,
        distro.settings,
    )
    for extra in w.plan.extra:
        name, key = extra.image_keyring()
        w.tree.write(f"etc/apt/keyrings/{name}", key)
        entry = AptSourceEntry(extra.url, extra.suites, extra.components)
        w.tree.write(
            f"etc/apt/sources.list.d/{extra.name}.sources", sources_deb822([entry], f"/etc/apt/keyrings/{name}")
        )


def notices(w: Work) -> None:
    """What each package's copyright file says (licences, copyright text), for the SBOM."""
    w.notices = copyright.notices(w.tree, (p.name for p in w.selection.packages))


Step = Callable[[Work], None]


@dataclass(frozen=True)
class StepSpec:
    name: str
    run: Step
    when: Callable[[Recipe], bool]
    foreign_only: bool = False
    """Only for an architecture the host does not run natively."""


def _scripts(r: Recipe) -> bool:
    return r.scripts


def _scriptless(r: Recipe) -> bool:
    return not r.scripts


STEPS: tuple[StepSpec, ...] = (
    StepSpec("unpack", unpack, _scripts),
    StepSpec("unpack", unpack_scriptless, _scriptless),
    StepSpec("native", native_tools, _scripts, foreign_only=True),
    StepSpec("configure", configure_packages, _scripts),
    StepSpec("accounts", add_accounts, lambda r: r.scripts and bool(r.groups or r.accounts)),
    StepSpec("accounts", declared_accounts, _scriptless),
    StepSpec("declare", declared_files, _scriptless),
    StepSpec("files", copy_files, lambda r: bool(r.files)),
    StepSpec("customize", customize, lambda r: bool(r.customize)),
    StepSpec("finish", finish_tree, _scripts),
    StepSpec("ca-certificates", ca_bundle, _scriptless),
    StepSpec("ld.so.cache", linker_cache, _scriptless),
    StepSpec("status.d", status_d, _scriptless),
    StepSpec("notices", notices, lambda r: True),
)
"""Every step, in build order, with the recipes that take it."""


def chosen(recipe: Recipe, foreign: bool = False) -> list[tuple[str, Step]]:
    """The steps a recipe needs, in order (`foreign`: for an architecture the host runs only emulated)."""
    return [(s.name, s.run) for s in STEPS if s.when(recipe) and (foreign or not s.foreign_only)]


def needs_root(recipe: Recipe) -> bool:
    """Whether building the recipe needs root, real or of a user namespace: maintainer scripts and hooks run
    in a sandbox, and files get their owners for real. A scriptless build runs nothing and records owners,
    modes and devices for the layer instead, so any user can make it, without a namespace."""
    return recipe.scripts


def overrides_for(recipe: Recipe) -> Overrides:
    """The override table a build of the recipe records into. Scriptless: everything (entries nobody
    recorded are root's). With scripts, as real root or as root of a user namespace: device nodes only
    (owners it gives for real). No build makes a package's device node on the host: one that could open the
    host's device behind it has no place in a tree that maintainer scripts run in."""
    if not needs_root(recipe):
        return Overrides(default_owner=(0, 0))
    return Overrides(owners=False)
