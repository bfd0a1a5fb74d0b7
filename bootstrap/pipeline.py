"""The build, one call per step: plan -> archive -> resolve -> download -> unpack -> configure -> finish
-> pack -> outputs."""

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bootstrap import download, foreign, outputs, records, scratch
from bootstrap import lock as lock_mod
from bootstrap.deb import copyright, dpkgdb
from bootstrap.deb.archive import Archive, open_archive
from bootstrap.deb.configure import configure, install_order
from bootstrap.deb.filters import PathFilter
from bootstrap.deb.finish import AptSourceEntry, finish, keep_directories
from bootstrap.deb.resolve import Request, Selection, resolve
from bootstrap.deb.unpack import drop_unshipped_links, prepare_root, unpack_all
from bootstrap.errors import BootstrapError
from bootstrap.foreign import Emulator
from bootstrap.image import oci
from bootstrap.image.layer import Layer, pack
from bootstrap.lock import Lock
from bootstrap.log import log
from bootstrap.plan import Plan, host_arch, merged_usr_dirs
from bootstrap.sandbox import Sandbox, memory_available, mounts_under, require_root, tmpfs
from bootstrap.tree import Tree

TMPFS_MIN_MEMORY = 4 << 30
"""Build in a tmpfs when at least this much memory is available."""


@dataclass
class Timer:
    label: str = ""
    steps: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        start = time.monotonic()
        try:
            yield
        finally:
            self.steps[name] = round(time.monotonic() - start, 3)
            log.info("%-8s %-10s %6.2fs", self.label, name, self.steps[name])


@dataclass(frozen=True)
class Platform:
    """One architecture's part of a build."""

    arch: str
    archive: Archive
    selection: Selection
    lock: Lock
    image: oci.Image
    licenses: dict[str, list[str]]
    timings: dict[str, float]

    @property
    def layer(self) -> Layer:
        return self.image.layer


@dataclass(frozen=True)
class Result:
    output: Path
    tag: str
    codename: str
    epoch: int
    index_digest: str
    platforms: tuple[Platform, ...]

    @property
    def first(self) -> Platform:
        return self.platforms[0]

    @property
    def manifest_digest(self) -> str:
        """What a registry serves under the tag: the manifest of a single-architecture image, else the index."""
        return self.first.image.manifest.digest if len(self.platforms) == 1 else self.index_digest

    @property
    def packages(self) -> Selection:
        return self.first.selection

    @property
    def lock(self) -> Lock:
        return self.first.lock


def load_archive(plan: Plan, arch: str | None = None) -> Archive:
    plan.cache.ensure()
    return open_archive(
        plan.distro,
        plan.mirror,
        plan.security_mirror,
        plan.suite,
        plan.recipe.components,
        arch or plan.arch,
        plan.keyrings,
        plan.cache,
        plan.insecure,
        plan.check_valid_until,
        plan.offline,
    )


def request_for(plan: Plan) -> Request:
    r = plan.recipe
    return Request(r.priorities, r.essential, r.include, r.exclude, r.prefer)


def resolve_plan(plan: Plan, arch: str | None = None) -> tuple[Archive, Selection]:
    """Archive indexes and the resolved package set of one architecture, without building anything."""
    archive = load_archive(plan, arch)
    return archive, resolve(archive.index, request_for(plan))


def tag_for(plan: Plan, codename: str) -> str:
    return plan.tag or plan.recipe.tag.format(codename=codename, suite=plan.suite, arch=plan.arch)


def apt_sources(plan: Plan, archive: Archive) -> list[AptSourceEntry]:
    """The image's own apt sources: the same suites from the same mirrors as the build."""
    by_mirror: dict[str, list[str]] = {}
    for rel in archive.releases:
        by_mirror.setdefault(rel.mirror, []).append(rel.dist)
    return [AptSourceEntry(m, tuple(suites), plan.recipe.components) for m, suites in by_mirror.items()]


@contextmanager
def workspace(use_tmpfs: bool) -> Iterator[Path]:
    """A scratch directory holding `root/` (a private tmpfs when asked), removed at the end, never while
    anything is still mounted below it."""
    with scratch.claimed(Path(tempfile.gettempdir()), "bootstrap-") as work:
        try:
            if use_tmpfs:
                with tmpfs(work / "root"):
                    yield work
            else:
                yield work
        finally:
            left = mounts_under(work, include_self=True)
            if left:
                log.error("not removing %s: still mounted: %s", work, ", ".join(left))
            else:
                shutil.rmtree(work, ignore_errors=True)


def build(plan: Plan) -> Result:
    """Build the image the plan describes (one platform per architecture) and write its outputs."""
    require_root("building an image")
    host = host_arch()
    emulators = {arch: foreign.emulator(arch, host) for arch in plan.arches}
    old_umask = os.umask(0o022)
    try:
        with outputs.staged(plan.output) as stage:
            multi = len(plan.arches) > 1
            platforms = tuple(
                build_platform(
                    plan,
                    arch,
                    emulators[arch],
                    stage / records.name("rootfs" + plan.compression.file_suffix, arch, multi),
                )
                for arch in plan.arches
            )
            first = platforms[0]
            epoch = max(p.lock.epoch for p in platforms)
            tag = tag_for(plan, first.archive.codename)
            started = time.monotonic()
            index = oci.write_archive(stage / "image.tar", [p.image for p in platforms], [tag], epoch)
            first.timings["outputs"] = round(time.monotonic() - started, 3)
            result = Result(plan.output, tag, first.archive.codename, epoch, index.digest, platforms)
            records.write_all(stage, plan, result)
        return result
    finally:
        os.umask(old_umask)


def select(plan: Plan, archive: Archive) -> Selection:
    """The package set: exactly the lock's when building from one, else a fresh resolve of the recipe."""
    if plan.lock is not None:
        return lock_mod.selection_from(plan.lock, archive.index)
    return resolve(archive.index, request_for(plan))


def archive_classified(plan: Plan, archive: Archive, selection: Selection) -> set[str]:
    """The packages whose dpkg status takes Priority and Section from the archive index, as in a debootstrapped
    image: those of the required phase (the recipe's priorities and Essential, without its includes) at the
    suite's own version. Later installs and upgrades keep what their .deb says."""
    r = plan.recipe
    phase = set(resolve(archive.index, Request(r.priorities, r.essential, (), r.exclude, r.prefer)).names())
    return {p.name for p in selection.packages if p.name in phase and p.dist == archive.codename}


def build_platform(plan: Plan, arch: str, emu: Emulator | None, layer_path: Path) -> Platform:
    """Everything from indexes to the packed layer for one architecture."""
    timer = Timer(arch)
    with timer.step("indexes"):
        archive = load_archive(plan, arch)
    with timer.step("resolve"):
        selection = select(plan, archive)
    log.info("%s %s %s: %d packages", plan.recipe.name, archive.codename, arch, len(selection.packages))
    with timer.step("download"):
        debs = download.fetch_all(selection.packages, plan.cache, plan.offline)
    epoch = plan.epoch if plan.epoch is not None else plan.lock.epoch if plan.lock else archive.date
    pfilter = PathFilter.from_lists(plan.recipe.path_exclude, plan.recipe.path_include)
    use_tmpfs = plan.tmpfs if plan.tmpfs is not None else memory_available() >= TMPFS_MIN_MEMORY
    with workspace(use_tmpfs) as work:
        root = work / "root"
        order = install_order(selection.packages)
        dirs = merged_usr_dirs(arch)
        with timer.step("unpack"):
            prepare_root(root, dirs)
            unpacked = unpack_all(root, [(p, debs[p.name]) for p in order], pfilter, plan.cache.area("expanded"))
            drop_unshipped_links(root, dirs, unpacked)
            dpkgdb.write(Tree(root), unpacked, archive_classified(plan, archive, selection))
            keep_directories(Tree(root), (p for u in unpacked for p in u.paths), plan.recipe.keep_directories)
        with timer.step("configure"):
            added = foreign.install_interpreter(emu, Tree(root)) if emu else None
            configure(root, unpacked, epoch, Sandbox(root))
            if added is not None:
                Tree(root).remove(added)
        if mounts_under(root):
            raise BootstrapError(f"{root} still has mounts after configure", "unmount them by hand, then retry")
        with timer.step("finish"):
            sources = apt_sources(plan, archive)
            finish(root, pfilter, sources, plan.distro.sources_file, [k.name for k in plan.distro.keyrings], epoch)
            licenses = {p.name: copyright.declared(Tree(root), p.name) for p in selection.packages}
        with timer.step("pack"):
            layer = pack(root, epoch, layer_path, plan.compression)
    settings = oci.ImageSettings(
        arch=arch,
        epoch=epoch,
        cmd=plan.recipe.cmd,
        entrypoint=plan.recipe.entrypoint,
        env=plan.recipe.env,
        labels=dict(plan.recipe.labels),
        created_by=f"bootstrap {plan.recipe.name} ({archive.codename}, {arch})",
    )
    lock = lock_mod.make_lock(
        plan.recipe.name, str(plan.recipe.distribution), plan.suite, arch, epoch, archive, selection
    )
    return Platform(arch, archive, selection, lock, oci.make_image(layer, settings), licenses, timer.steps)
