"""The plan: a recipe plus command-line options plus what the host provides, checked before any work."""

import os
import platform
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from bootstrap.build import families
from bootstrap.build import recipe as recipe_mod
from bootstrap.build.families import ARCHES, DISTROS, AnyDistro, ExtraSource, Mirrors
from bootstrap.build.recipe import Recipe
from bootstrap.errors import BootstrapError
from bootstrap.host import prune
from bootstrap.host.arches import MACHINE_TO_DEB, arch_name
from bootstrap.host.cache import Cache, default_dir
from bootstrap.image import oci
from bootstrap.image.layer import Compression
from bootstrap.numbers import epoch_problem, is_decimal
from bootstrap.records import links
from bootstrap.records import lock as lock_mod
from bootstrap.records.lock import Lock

if TYPE_CHECKING:  # loaded when signing (cryptography costs every build's start otherwise)
    from bootstrap.sign.keys import SigningKey


@dataclass(frozen=True)
class Options:
    """Everything the command line can say about a build; None means 'not given'."""

    suite: str | None = None
    arch: str | None = None
    mirror: str | None = None
    security_mirror: str | None = None
    keyrings: tuple[Path, ...] = ()
    insecure: bool = False
    check_valid_until: bool = True
    cache_dir: Path | None = None
    output: Path | None = None
    tag: str | None = None
    epoch: int | None = None
    offline: bool = False
    compression: Compression = Compression.GZIP
    tmpfs: bool | None = None
    lock: Path | None = None
    native_tools: bool = True
    sbom_formats: tuple[str, ...] = ()
    """SBOM formats besides SPDX 2.3 (`cyclonedx`)."""
    reuse_members: bool = True
    """Take gzip members of earlier builds from the cache (`verify` compresses everything itself)."""
    derived_cache: bool = True
    """Read and fill the cache's derived areas (parsed indexes, decompressed packages); off (`verify`): parse
    and decompress again from the verified index files and packages."""
    default_user: bool | None = None
    """False: leave out the recipe's default users (--no-default-user)."""
    allow_paths: tuple[Path, ...] = ()
    """Directories recipes may read local files from besides their own (--allow-path)."""
    cache_max: str | None = None
    """The cache's size cap as given (--cache-max: `5G`, `off`); None: $BOOTSTRAP_CACHE_MAX, else the default."""
    sign_key: "SigningKey | None" = None
    """Sign the SBOMs and the provenance with this key (--sign-key), as DSSE envelopes beside them."""


@dataclass(frozen=True)
class Plan:
    recipe: Recipe
    distro: AnyDistro
    suite: str
    arches: tuple[str, ...]
    mirror: str
    security_mirror: str
    keyrings: tuple[Path, ...]
    cache: Cache
    output: Path
    tag: str | None
    epoch: int | None
    insecure: bool
    check_valid_until: bool
    offline: bool
    compression: Compression
    tmpfs: bool | None
    lock: Lock | None
    extra: tuple[ExtraSource, ...] = ()
    native_tools: bool = True
    """Run foreign maintainer scripts' tools natively when the family can; off: everything emulated."""
    sbom_formats: tuple[str, ...] = ()
    reuse_members: bool = True
    derived_cache: bool = True
    signers: frozenset[str] = frozenset()
    """When set, only these keys of the keyrings vouch for the archive (the recipe pins them)."""
    arch_mirrors: Mapping[str, Mirrors] = field(default_factory=dict)
    """Mirrors of an architecture served from another archive than the first's (Ubuntu's ports)."""
    cache_max: int | None = None
    """Bytes the cache is pruned down to after the build (None: no cap)."""
    records_url: str = links.DEFAULT
    """The base of the records' build type, builder id and SPDX namespaces (`$BOOTSTRAP_RECORDS_URL`)."""
    sign_key: "SigningKey | None" = None
    """The key that signs the records; None: unsigned."""

    def mirrors_for(self, arch: str) -> Mirrors:
        return self.arch_mirrors.get(arch) or Mirrors(self.mirror, self.security_mirror)

    @property
    def arch(self) -> str:
        """The first (or only) architecture: the one the tag points at in a docker load."""
        return self.arches[0]


def host_arch() -> str:
    """The host's Debian architecture name."""
    try:
        return subprocess.run(
            ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return MACHINE_TO_DEB.get(platform.machine(), platform.machine())


def _supported(given: str) -> str:
    """Our name for an architecture given by ours or the kernel's, which the families build for."""
    arch = arch_name(given)
    if arch is not None and arch in ARCHES:
        return arch
    raise BootstrapError(
        f"unsupported architecture {given!r}",
        f"use one or more of {', '.join(sorted(ARCHES))} (or the kernel's names: x86_64, aarch64, ...)",
    )


def _epoch_from_env() -> int | None:
    value = os.environ.get("SOURCE_DATE_EPOCH")
    if not value:
        return None
    problem = None if is_decimal(value) else "not a number of seconds"
    problem = problem or epoch_problem(int(value))
    if problem:
        raise BootstrapError(f"SOURCE_DATE_EPOCH={value[:40]!r} is {problem}", "unset it or give one that is")
    return int(value)


def make_plan(recipe: Recipe, opts: Options) -> Plan:
    """Combine recipe, options and host facts; fail here, before any download, on anything missing."""
    distro = DISTROS[recipe.distribution]
    locked = lock_mod.read(opts.lock) if opts.lock else None
    if locked is not None and locked.recipe != recipe.name:
        raise BootstrapError(
            f"the lock is for recipe {locked.recipe!r}, not {recipe.name!r}",
            f"run `bootstrap build {locked.recipe} --lock ...`",
        )
    given = tuple(a.strip() for a in (opts.arch or (locked.arch if locked else None) or host_arch()).split(","))
    arches = tuple(_supported(a) for a in given)
    if len(set(arches)) != len(arches):
        raise BootstrapError(f"--arch names an architecture twice: {opts.arch}", "list each architecture once")
    if locked is not None and len(arches) > 1:
        raise BootstrapError("a lock file pins one architecture", f"build with --arch {locked.arch}")
    if opts.tag:
        oci.image_name(opts.tag)  # a tag Docker would not take is refused before any work
    if opts.default_user is False and recipe.default_user:
        recipe = replace(recipe, default_user=False)
        recipe_mod.check(recipe)
    suite = families.resolve_suite(distro, opts.suite or (locked.suite if locked else recipe.suite))
    recipe = recipe.for_release(families.release_of(distro, suite, [c for c, _ in recipe.releases]))
    found = {
        arch: families.discover_mirrors(
            distro, opts.mirror, opts.security_mirror, suite, arch, recipe.rpm_mirror, recipe.rpm_metalink
        )
        for arch in arches
    }
    first = found[arches[0]]
    keyrings, signers = (
        ((), frozenset[str]())
        if opts.insecure and not opts.keyrings
        else families.keyrings_for(distro, opts.keyrings, recipe.source, recipe.archive_keyring, recipe.archive_signers)
    )
    output = opts.output or Path("dist") / recipe.name
    return Plan(
        recipe=recipe,
        distro=distro,
        suite=suite,
        arches=arches,
        mirror=first.main,
        security_mirror=first.security,
        keyrings=keyrings,
        cache=Cache(opts.cache_dir or default_dir()),
        output=output,
        tag=opts.tag,
        epoch=opts.epoch if opts.epoch is not None else _epoch_from_env(),
        insecure=opts.insecure,
        check_valid_until=opts.check_valid_until,
        offline=opts.offline,
        compression=opts.compression,
        tmpfs=opts.tmpfs,
        lock=locked,
        extra=families.extra_sources(recipe.source, recipe.repositories),
        native_tools=opts.native_tools,
        sbom_formats=opts.sbom_formats,
        reuse_members=opts.reuse_members,
        derived_cache=opts.derived_cache,
        signers=signers,
        arch_mirrors={arch: m for arch, m in found.items() if m != first},
        cache_max=prune.cap(opts.cache_max),
        records_url=links.base_url(),
        sign_key=opts.sign_key,
    )
