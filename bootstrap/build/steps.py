"""The steps that make a root tree, chosen by the recipe (`STEPS`, a table): unpack, configure, accounts,
files, customize, finish; or, for a scriptless recipe, unpack and the declarative steps that stand in for
the maintainer scripts. Each takes the `Work` of one platform's build and adds to it. The package family's
rows (unpack, native, configure, finish, status.d, notices) call through its `Job`
(`bootstrap.family.interface`); the others are the same for every family."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bootstrap.build import accounts, foreign, ldcache, localfiles, scriptless
from bootstrap.build.foreign import Emulator
from bootstrap.build.plan import Plan, host_arch
from bootstrap.build.recipe import Recipe
from bootstrap.errors import BootstrapError, ConfigureError
from bootstrap.family.interface import Archive, Family, Job, Selection
from bootstrap.family.model import Notice
from bootstrap.host.overrides import Overrides
from bootstrap.host.sandbox import Sandbox, mounts_under
from bootstrap.host.tree import Tree
from bootstrap.log import log


@dataclass
class Work:
    """One platform's tree as the steps build it."""

    plan: Plan
    arch: str
    family: Family
    archive: Archive
    selection: Selection
    job: Job
    """The family's steps over this tree."""
    epoch: int
    root: Path
    emulator: Emulator | None
    overrides: Overrides | None = None
    """Devices (and, for a scriptless build, owners and modes) recorded for the layer, instead of made on disk."""
    notices: dict[str, Notice] = field(default_factory=dict)
    """What each package says of its licences and copyright, read before packing."""
    native_tools: int = 0
    """How many foreign executables ran natively."""

    @property
    def tree(self) -> Tree:
        return Tree(self.root, self.overrides)

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


def unpack(w: Work) -> None:
    """The packages' files and the package database, as the package manager's unpack leaves them."""
    w.job.unpack(final=False)


def unpack_scriptless(w: Work) -> None:
    """The packages' files, final as they are: nothing will configure them."""
    w.job.unpack(final=True)


def native_tools(w: Work) -> None:
    """For a foreign architecture: the host's builds of the packages' tools, for their scripts to run
    natively. Without all of them, everything runs emulated."""
    w.native_tools = w.job.native_tools(host_arch())


def configure_packages(w: Work) -> None:
    """The packages' configuration (maintainer scripts), in the sandbox."""
    w.job.configure(w.runnable)


def add_accounts(w: Work) -> None:
    r = w.plan.recipe
    accounts.add(w.tree, r.groups, r.accounts, w.epoch, r.source, w.family.locked_password, w.family.account_backups)


def declared_accounts(w: Work) -> None:
    """passwd, group and shadow from nothing (root, nobody, nonroot), then the recipe's accounts."""
    scriptless.write_accounts(w.tree, w.plan.recipe, w.epoch)


def declared_files(w: Work) -> None:
    """What the packages' scripts would have made (temporary directories, nsswitch.conf, base-files' links,
    tzdata's /etc/localtime), before the recipe's files, which may replace any of it."""
    scriptless.declare(w.tree, w.selection.names(), w.family.origin)


def ca_bundle(w: Work) -> None:
    """The CA bundle from the packages' certificates and the recipe's in /usr/local/share/ca-certificates."""
    log.debug("ca-certificates.crt: %d certificates", scriptless.ca_bundle(w.tree))


def linker_cache(w: Work) -> None:
    """/etc/ld.so.cache for the libraries present (none: no cache)."""
    log.debug("ld.so.cache: %d entries", ldcache.write(w.tree, w.arch))


def status_d(w: Work) -> None:
    """The distroless package database (a control stanza and md5sums per package), for scanners."""
    w.job.package_database()


def copy_files(w: Work) -> None:
    localfiles.copy_in(w.tree, w.plan.recipe.files, w.plan.recipe.source)


def customize(w: Work) -> None:
    """The recipe's hooks, in order, in the sandbox (services blocked by policy-rc.d, no network)."""
    with w.runnable() as sandbox:
        for i, hook in enumerate(w.plan.recipe.customize):
            proc = sandbox.run(["/bin/sh", "-ec", hook.run], w.job.script_env())
            log.debug("customize[%d]: %s", i, proc.stdout.rstrip())
            if proc.returncode != 0:
                said = " | ".join(line.strip() for line in proc.stdout.strip().splitlines()[-3:]) or "no output"
                raise ConfigureError(
                    f"{w.plan.recipe.source}: customize[{i}] failed (exit {proc.returncode}): {said}",
                    "fix the hook; run with -vv to see everything it printed",
                )


def finish_tree(w: Work) -> None:
    """Container settings, slim rules, the image's own package sources and scrubbing."""
    w.job.finish()


def notices(w: Work) -> None:
    """What each package says of its licences and copyright, for the SBOM."""
    w.notices = w.job.notices()


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
