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

from bootstrap import download, outputs, records
from bootstrap import lock as lock_mod
from bootstrap.deb import copyright, dpkgdb
from bootstrap.deb.archive import Archive, open_archive
from bootstrap.deb.configure import configure, install_order
from bootstrap.deb.filters import PathFilter
from bootstrap.deb.finish import AptSourceEntry, finish
from bootstrap.deb.resolve import Request, Selection, resolve
from bootstrap.deb.unpack import drop_unshipped_links, prepare_root, unpack_all
from bootstrap.errors import BootstrapError
from bootstrap.image import oci
from bootstrap.image.layer import pack
from bootstrap.lock import Lock
from bootstrap.log import log
from bootstrap.plan import Plan
from bootstrap.sandbox import Chroot, memory_available, mounts_under, require_root, tmpfs

TMPFS_MIN_MEMORY = 4 << 30
"""Build in a tmpfs when at least this much memory is available."""


@dataclass
class Timer:
    steps: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        start = time.monotonic()
        try:
            yield
        finally:
            self.steps[name] = round(time.monotonic() - start, 3)
            log.info("%-10s %6.2fs", name, self.steps[name])


@dataclass(frozen=True)
class Result:
    output: Path
    tag: str
    codename: str
    epoch: int
    index_digest: str
    manifest_digest: str
    config_digest: str
    layer_digest: str
    diff_id: str
    layer_size: int
    tar_size: int
    packages: Selection
    lock: Lock
    timings: dict[str, float]


def load_archive(plan: Plan) -> Archive:
    plan.cache.ensure()
    return open_archive(
        plan.distro,
        plan.mirror,
        plan.security_mirror,
        plan.suite,
        plan.recipe.components,
        plan.arch,
        plan.keyrings,
        plan.cache,
        plan.insecure,
        plan.check_valid_until,
        plan.offline,
    )


def request_for(plan: Plan) -> Request:
    r = plan.recipe
    return Request(r.priorities, r.essential, r.include, r.exclude, r.prefer)


def resolve_plan(plan: Plan) -> tuple[Archive, Selection]:
    """Archive indexes and the resolved package set, without building anything."""
    archive = load_archive(plan)
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
    work = Path(tempfile.mkdtemp(prefix="bootstrap-"))
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
    """Build the image the plan describes and write its outputs."""
    require_root("building an image")
    old_umask = os.umask(0o022)
    try:
        return _build(plan)
    finally:
        os.umask(old_umask)


def select(plan: Plan, archive: Archive) -> Selection:
    """The package set: exactly the lock's when building from one, else a fresh resolve of the recipe."""
    if plan.lock is not None:
        return lock_mod.selection_from(plan.lock, archive.index)
    return resolve(archive.index, request_for(plan))


def _build(plan: Plan) -> Result:
    timer = Timer()
    with timer.step("indexes"):
        archive = load_archive(plan)
    with timer.step("resolve"):
        selection = select(plan, archive)
    log.info("%s %s: %d packages", plan.recipe.name, archive.codename, len(selection.packages))
    with timer.step("download"):
        debs = download.fetch_all(selection.packages, plan.cache, plan.offline)
    epoch = plan.epoch if plan.epoch is not None else plan.lock.epoch if plan.lock else archive.date
    pfilter = PathFilter.from_lists(plan.recipe.path_exclude, plan.recipe.path_include)
    tag = tag_for(plan, archive.codename)
    use_tmpfs = plan.tmpfs if plan.tmpfs is not None else memory_available() >= TMPFS_MIN_MEMORY
    with workspace(use_tmpfs) as work, outputs.staged(plan.output) as stage:
        root = work / "root"
        order = install_order(selection.packages)
        with timer.step("unpack"):
            prepare_root(root, plan.merged_usr_dirs)
            unpacked = unpack_all(root, [(p, debs[p.name]) for p in order], pfilter)
            drop_unshipped_links(root, plan.merged_usr_dirs, unpacked)
            dpkgdb.write(root, unpacked)
        with timer.step("configure"), Chroot(root) as sandbox:
            configure(root, unpacked, epoch, sandbox)
        if mounts_under(root):
            raise BootstrapError(f"{root} still has mounts after configure", "unmount them by hand, then retry")
        with timer.step("finish"):
            sources = apt_sources(plan, archive)
            finish(root, pfilter, sources, plan.distro.sources_file, [k.name for k in plan.distro.keyrings], epoch)
            licenses = {p.name: copyright.declared(root, p.name) for p in selection.packages}
        with timer.step("pack"):
            layer = pack(root, epoch, stage / "rootfs.tar.gz", plan.compression)
        with timer.step("outputs"):
            settings = oci.ImageSettings(
                arch=plan.arch,
                epoch=epoch,
                cmd=plan.recipe.cmd,
                entrypoint=plan.recipe.entrypoint,
                env=plan.recipe.env,
                labels=dict(plan.recipe.labels),
                created_by=f"bootstrap {plan.recipe.name} ({archive.codename}, {plan.arch})",
            )
            image = oci.make_image(layer, settings)
            index = oci.write_archive(stage / "image.tar", [image], [tag], epoch)
            lock = lock_mod.make_lock(
                plan.recipe.name, str(plan.recipe.distribution), plan.suite, plan.arch, epoch, archive, selection
            )
            result = Result(
                output=plan.output,
                tag=tag,
                codename=archive.codename,
                epoch=epoch,
                index_digest=index.digest,
                manifest_digest=image.manifest.digest,
                config_digest=image.config.digest,
                layer_digest=layer.digest,
                diff_id=layer.diff_id,
                layer_size=layer.size,
                tar_size=layer.tar_size,
                packages=selection,
                lock=lock,
                timings=timer.steps,
            )
            records.write_all(stage, plan, result, licenses)
    return result
