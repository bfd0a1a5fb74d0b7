"""The build, one call per step: plan -> archive -> resolve -> download -> unpack -> configure -> finish
-> pack -> outputs."""

import contextlib
import hashlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bootstrap.build import families, foreign, steps
from bootstrap.build import inputs as inputs_mod
from bootstrap.build.foreign import Emulator
from bootstrap.build.plan import Plan, host_arch
from bootstrap.errors import BootstrapError, PrivilegeError
from bootstrap.family.interface import Archive, Family, Job, Selection, Target
from bootstrap.host import kepttree, outputs, overlay, prune, scratch, userns
from bootstrap.host.overrides import Overrides
from bootstrap.host.sandbox import memory_available, mounts_under, require_root, tmpfs
from bootstrap.host.tree import Tree, remove_tree
from bootstrap.image import oci
from bootstrap.image.compress import LEVEL as GZIP_LEVEL
from bootstrap.image.compress import Members
from bootstrap.image.layer import Compression, Layer, pack
from bootstrap.log import log
from bootstrap.records import lock as lock_mod
from bootstrap.records import outputs as records
from bootstrap.records import system as os_release
from bootstrap.records.facts import Settings
from bootstrap.records.outputs import Built, BuiltPlatform
from bootstrap.records.system import OperatingSystem

WAITS = "configure"
"""The step that waits on the sandbox (the packages' scripts) most of its time."""
TMPFS_MIN_MEMORY = 4 << 30
"""Build in a tmpfs when at least this much memory is available."""
PAUSE_ENV = "BOOTSTRAP_TEST_PAUSE"
"""For the fault-injection tests only: `STEP:FILE` makes the build write its pid to FILE and wait when STEP
starts until FILE is removed, so that a test can signal it at that exact point (tests/faults/test_signals.py)
or act meanwhile and let it go on (tests/faults/test_hostile_cache_webhook.py)."""


def checkpoint(name: str) -> None:
    """Where a step starts; pauses there when $BOOTSTRAP_TEST_PAUSE names it."""
    step, _, marker = os.environ.get(PAUSE_ENV, "").partition(":")
    if step == name and marker:
        Path(marker).write_text(str(os.getpid()))
        while Path(marker).exists():
            time.sleep(0.05)


@dataclass
class Timer:
    label: str = ""
    steps: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        checkpoint(name)
        start = time.monotonic()
        try:
            yield
        finally:
            self.steps[name] = round(self.steps.get(name, 0.0) + time.monotonic() - start, 3)  # a step built again adds
            log.info("%-8s %-10s %6.2fs", self.label, name, self.steps[name])


def load_archive(plan: Plan, arch: str | None = None) -> Archive:
    """The verified archive state of one architecture (the first by default), indexes loaded."""
    return families.family_for(plan).open(arch or plan.arch)


def resolve_plan(plan: Plan, arch: str | None = None) -> tuple[Archive, Selection]:
    """Archive indexes and the resolved package set of one architecture, without building anything."""
    family = families.family_for(plan)
    archive = family.open(arch or plan.arch)
    return archive, family.resolve(archive)


def tag_for(plan: Plan, codename: str) -> str:
    return plan.tag or plan.recipe.tag.format(codename=codename, suite=plan.suite, arch=plan.arch)


@contextmanager
def workspace(use_tmpfs: bool, over: kepttree.KeptTree | None = None) -> Iterator[Path]:
    """A scratch directory holding `root/` (a private tmpfs when asked; with `over`, that tree seen through an
    overlay whose changes the tmpfs keeps), removed at the end, never while anything is still mounted below it."""
    with scratch.claimed(Path(tempfile.gettempdir()), "bootstrap-") as work:
        try:
            if over is not None:
                with (
                    tmpfs(work / "layers"),
                    over.opened() as lower,
                    overlay.seen_through(lower, work / "layers", work / "root"),
                ):
                    yield work
            elif use_tmpfs:
                with tmpfs(work / "root"):
                    yield work
            else:
                yield work
        finally:
            left = mounts_under(work, include_self=True)
            if left:
                log.error("not removing %s: still mounted: %s", work, ", ".join(left))
            else:
                remove_tree(work)


Later = Callable[[Callable[[], object]], None]
"""Hands work to `background`'s thread."""


@contextmanager
def background() -> Iterator[Later]:
    """A thread for what need not hold up the build (a packed platform's workspace unmounted and removed while
    the next is built or the outputs written): waited for when the context ends, its failure raised then (or
    logged, when the build itself failed)."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="background")
    done: list[Future[object]] = []
    failed = True
    try:
        yield lambda job: done.append(pool.submit(job))
        failed = False
    finally:
        pool.shutdown(wait=True)
        for future in done:
            exc = future.exception()
            if exc is not None and failed:
                log.error("while the build failed: %s", exc)
            elif exc is not None:
                raise exc


def build(plan: Plan, archives: Mapping[str, Archive] | None = None) -> Built:
    """Build the image the plan describes (one platform per architecture) and write its outputs.

    `archives` holds indexes already loaded for some architectures (by a check just before): used, not fetched
    again."""
    privileged = steps.needs_root(plan.recipe)
    if privileged:
        require_root("building an image")
    host = host_arch()
    emulators = {arch: foreign.emulator(arch, host) if privileged else None for arch in plan.arches}
    old_umask = os.umask(0o022)
    try:
        with (
            plan.cache.ensure().session(),
            outputs.staged(plan.output, records.is_output) as stage,
            background() as later,
        ):
            multi = len(plan.arches) > 1
            prehashes: dict[str, oci.Prehash] = {}
            platforms = tuple(
                build_platform(
                    plan,
                    arch,
                    emulators[arch],
                    stage / records.ROOTFS.name(arch, multi, plan.compression.file_suffix),
                    (archives or {}).get(arch),
                    later,
                    None if multi else prehashes,
                )
                for arch in plan.arches
            )
            first = platforms[0]
            epoch = max(p.lock.epoch for p in platforms)
            tag = tag_for(plan, first.lock.codename)
            checkpoint("outputs")
            started = time.monotonic()
            image = stage / records.IMAGE.name()
            prehash = prehashes.get(first.arch)
            index, archive_digest = oci.write_archive(image, [p.image for p in platforms], [tag], epoch, prehash)
            first.timings["outputs"] = round(time.monotonic() - started, 3)
            result = Built(plan.output, tag, first.lock.codename, epoch, index.digest, platforms, settings(plan))
            known = {image.name: archive_digest} | {p.layer.path.name: p.layer.digest for p in platforms}
            records.write_all(stage, result, known, plan.sign_key)
        prune.after_build(plan.cache, plan.cache_max)
        return result
    finally:
        os.umask(old_umask)


def settings(plan: Plan) -> Settings:
    """The build's settings as its records state them."""
    r = plan.recipe
    vendor = dict(r.labels).get(records.VENDOR_LABEL, "")
    return Settings(
        r.as_dict(), r.name, str(r.distribution), plan.suite, tuple(plan.arches), plan.mirror, plan.security_mirror,
        str(plan.compression), plan.lock is not None, plan.insecure, tuple(plan.sbom_formats), vendor,
        plan.records_url,
        plan.sign_key.public.key_id() if plan.sign_key else "",
    )  # fmt: skip


def select(plan: Plan, family: Family, archive: Archive) -> Selection:
    """The package set: exactly the lock's when building from one, else a fresh resolve of the recipe."""
    if plan.lock is not None:
        return lock_mod.selection_from(plan.lock, family, archive)
    return family.resolve(archive)


def layer_key(lock: lock_mod.Lock, rootless: bool) -> str:
    """What a layer's kept blocks are found by (`bootstrap.image.compress.KeptLayer`): its package set's lock (the
    packages, their digests, the recipe's inputs, the epoch) and the build's kind. A key that names another
    layer costs a second pass only: the layer is taken only once its digests prove it."""
    kind = "rootless" if rootless else "root"
    return hashlib.sha256(f"bootstrap layer 1\n{lock.digest}\n{kind}".encode()).hexdigest()


def kept_trees(plan: Plan, use_tmpfs: bool, emu: Emulator | None) -> Path | None:
    """The cache's area of unpacked trees, when this build can keep one and start from one: a real root's build
    with scripts, in a tmpfs, for the host's own architecture, where the kernel has overlays (else None)."""
    if not (use_tmpfs and emu is None and steps.needs_root(plan.recipe) and os.geteuid() == 0 and not userns.inside()):
        return None
    area = plan.cache.area(kepttree.AREA)
    kepttree.sweep(area)
    return area if overlay.usable(Path(tempfile.gettempdir())) else None


def _take_up(base: kepttree.KeptTree, job: Job, overrides: Overrides, root: Path) -> bool:
    """The job's and the override table's state as the kept tree's unpack left them (False: they do not fit)."""
    if len(base.state) != 2:
        return False
    tree = Tree(root)
    return job.restore(base.state[0]) and overrides.take_up(base.state[1], tree.lstat)


def _prehash(
    plan: Plan, lock: lock_mod.Lock, path: Path, settings: oci.ImageSettings, members: Members | None
) -> oci.Prehash | None:
    """The image tar's hash begun from the image a settled build expects (its layer the kept one), for the pack to
    go on with (None without a kept layer that says its sizes)."""
    kept = members.kept if members is not None else None
    if kept is None or not kept.size:
        return None
    layer = Layer(path, kept.digest, kept.diff_id, kept.size, kept.tar_size, Compression.GZIP)
    image = oci.make_image(layer, settings)
    return oci.Prehash(
        oci.archive_prefix([image], [tag_for(plan, lock.codename)], lock.epoch, kept.digest), kept.digest
    )


def build_platform(
    plan: Plan,
    arch: str,
    emu: Emulator | None,
    layer_path: Path,
    archive: Archive | None = None,
    later: Later | None = None,
    prehashes: dict[str, oci.Prehash] | None = None,
) -> BuiltPlatform:
    """Everything from indexes to the packed layer for one architecture (`later`: where the workspace's removal
    goes once the layer is packed; else it is removed before this returns; `prehashes`: where a settled build
    leaves the image tar's hash it began before the pack, its image the one only platform's)."""
    timer = Timer(arch)
    family = families.family_for(plan)
    with timer.step("indexes"):
        archive = archive or family.open(arch)
    with timer.step("resolve"):
        selection = select(plan, family, archive)
    log.info("%s %s %s: %d packages", plan.recipe.name, archive.codename, arch, len(selection.packages))
    with timer.step("download"):
        from bootstrap.build import download  # the network's modules load when a build first needs them

        files = download.fetch_all(selection.packages, plan.cache, plan.offline)
    epoch = plan.epoch if plan.epoch is not None else plan.lock.epoch if plan.lock else archive.date
    r = plan.recipe
    lock = lock_mod.make_lock(
        r.name, str(r.distribution), plan.suite, arch, epoch, archive, selection, inputs_mod.inputs_of(r)
    )
    overrides = steps.overrides_for(plan.recipe)
    if plan.tmpfs is not None:
        use_tmpfs = plan.tmpfs
    else:
        use_tmpfs = steps.needs_root(plan.recipe) and memory_available() >= TMPFS_MIN_MEMORY
    reuse = plan.reuse_members and plan.derived_cache and plan.compression is Compression.GZIP
    members = None
    if reuse:
        kept = plan.cache.area("layers") / layer_key(lock, overrides is not None)
        members = Members(plan.cache.area("gzip"), GZIP_LEVEL, kept)
    settled = members is not None and members.settled
    if settled:
        log.info("%s: this package set gave one layer twice: what the cache kept is taken, the layer checks it", arch)
    trees = kept_trees(plan, use_tmpfs, emu) if reuse else None
    tree_key = kepttree.key(layer_key(lock, overrides is not None), family.unpack_tools()) if trees else ""
    settings = oci.ImageSettings(
        arch=arch,
        epoch=epoch,
        cmd=r.cmd,
        entrypoint=r.entrypoint,
        env=r.env,
        labels={**dict(r.labels), lock_mod.LABEL: lock.digest},
        user=r.user,
        workdir=r.workdir,
        exposed_ports=r.exposed_ports,
        stop_signal=r.stop_signal,
        annotations=dict(r.annotations),
        created_by=f"bootstrap {r.name} ({archive.codename}, {arch})",
    )
    suspect = False
    """Whether a kept tree (taken, or kept by the build that failed) may be what failed: removed once the build
    done again without it succeeds (a build failing for itself, as again, leaves the tree to the next build)."""
    while True:
        base = kepttree.find(trees, tree_key) if trees is not None and settled else None
        keeping = False
        with contextlib.ExitStack() as stack:
            try:
                scratch_dir = stack.enter_context(workspace(use_tmpfs, base))
            except (PrivilegeError, kepttree.Unusable) as exc:
                if base is None:
                    raise
                log.info("%s: %s: the packages are unpacked instead", arch, exc.message)
                trees = None
                continue
            root = scratch_dir / "root"
            job = family.job(archive, selection, files, Target(root, arch, epoch, overrides, check_kept=not settled))
            work = steps.Work(plan, arch, family, archive, selection, job, epoch, root, emu, overrides)
            try:
                if base is not None and not _take_up(base, job, overrides, root):
                    raise BootstrapError("the kept tree is not of these packages")
                helper = stack.enter_context(ThreadPoolExecutor(max_workers=1))
                if base is not None:  # while the scriptlets run, the overlay learns the tree the pack walks
                    helper.submit(overlay.learn, root)
                for name, step in steps.chosen(plan.recipe, foreign=emu is not None):
                    if name == WAITS:  # the build waits on the sandbox: modules loaded meanwhile cost nothing
                        helper.submit(oci.preload)
                    with timer.step(name):
                        if name == "unpack" and base is not None:
                            log.info("%s: the tree this package set's unpack left is taken from the cache", arch)
                            continue
                        step(work)
                    if name == "unpack" and trees is not None and settled and base is None:
                        state = job.unpacked_state()
                        if state is not None:
                            kepttree.keep(trees, tree_key, root, (state, overrides.snapshot()))
                            keeping = True
                system = os_release.read(work.root, OperatingSystem(str(r.distribution), "", archive.codename))
                prehash = None
                if settled and prehashes is not None:  # the image tar's hash goes on as the layer is written
                    prehash = _prehash(plan, lock, layer_path, settings, members)
                with timer.step("pack"):
                    layer = pack(
                        work.root, epoch, layer_path, plan.compression, overrides=overrides, members=members,
                        again=not settled,  # settled: not the kept layer is an error, the build done again
                        also=prehash.hash if prehash is not None else None,
                    )  # fmt: skip
                if prehash is not None and prehashes is not None:  # pack gave the layer expected: its hash holds
                    prehashes[arch] = prehash
            except (BootstrapError, OSError) as exc:  # what the cache kept may be what failed: checked, it fails
                if not settled or (base is None and not isinstance(exc, BootstrapError)):  # for itself
                    raise
                reason = exc.message if isinstance(exc, BootstrapError) else str(exc)
                log.info("%s: %s: built again, checking all the cache kept", arch, reason)
                settled = False
                suspect = suspect or base is not None or keeping
                continue
            if later is not None:
                later(stack.pop_all().close)
        break
    if suspect and trees is not None:
        kepttree.discard(trees, tree_key)
    if members is not None:
        members.remember(layer.diff_id, layer.digest, layer.size, layer.tar_size)
    image = oci.make_image(layer, settings)
    return BuiltPlatform(arch, lock, image, selection.packages, work.notices, timer.steps, work.native_tools, system)
