"""The plan: a recipe plus command-line options plus what the host provides, checked before any work."""

import os
import platform
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from bootstrap.build import families
from bootstrap.build import recipe as recipe_mod
from bootstrap.build.families import ARCHES, DISTROS, DistroInfo, ExtraSource, Mirrors
from bootstrap.build.recipe import Recipe
from bootstrap.errors import BootstrapError, SignatureError
from bootstrap.host import prune
from bootstrap.host.arches import MACHINE_TO_DEB
from bootstrap.host.cache import Cache, default_dir
from bootstrap.image.layer import Compression
from bootstrap.records import lock as lock_mod
from bootstrap.records.lock import Lock


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


@dataclass(frozen=True)
class Plan:
    recipe: Recipe
    distro: DistroInfo
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


def keyrings_for(
    distro: DistroInfo, given: tuple[Path, ...], rec: Recipe | None = None
) -> tuple[tuple[Path, ...], frozenset[str]]:
    """The keyrings that vouch for the archive, and the keys among them that may sign it: --keyring files
    (absolute; binary or ASCII-armored, any key), else the recipe's keyring with the keys it pins, else the
    host's distribution keyring."""
    if given:
        for k in given:
            if not k.is_file():
                raise SignatureError(
                    f"keyring {k} does not exist", "give an existing OpenPGP keyring file to --keyring"
                )
        return tuple(k.absolute() for k in given), frozenset()
    signers = frozenset(rec.archive_signers) if rec is not None else frozenset()
    if rec is not None and rec.archive_keyring:
        ring = Path(rec.archive_keyring)
        held = families.fingerprints(ring)
        missing = sorted(signers - held)
        if missing:
            raise SignatureError(
                f"{rec.source}: archive keyring {ring} does not hold the pinned key(s) {', '.join(missing)}",
                "restore the keyring file that came with the recipe, or pass --keyring FILE",
            )
        return (ring,), signers
    found = tuple(k for k in distro.keyrings if k.is_file())
    if not found:
        raise SignatureError(
            f"no {distro.name} archive keyring found ({', '.join(str(k) for k in distro.keyrings)})",
            f"apt-get install {distro.keyring_package}, or pass --keyring FILE",
        )
    return found[:1], signers


def host_keyrings() -> list[Path]:
    """The keyring files of the host's apt: where a repository named by key fingerprint is looked for."""
    base = families.apt_dir()
    found = [base / "trusted.gpg"] if (base / "trusted.gpg").is_file() else []
    for d in (base / "keyrings", base / "trusted.gpg.d", Path("/usr/share/keyrings")):
        if d.is_dir():
            found += sorted(p for p in d.iterdir() if p.suffix in (".gpg", ".asc", ".pgp") and p.is_file())
    return found


def extra_sources(recipe: Recipe) -> tuple[ExtraSource, ...]:
    """The recipe's repositories with the keyring that vouches for each: its own file, or the host keyring
    that holds the key it names by fingerprint (and then only that key is accepted)."""
    out = []
    for i, repo in enumerate(recipe.repositories):
        if not repo.is_fingerprint:
            out.append(ExtraSource(repo.url, repo.suites, repo.components, Path(repo.keyring)))
            continue
        fpr = repo.keyring.replace(" ", "").upper()
        holder = next((k for k in host_keyrings() if _holds(k, fpr)), None)
        if holder is None:
            raise SignatureError(
                f"{recipe.source}: repositories[{i}]: no keyring of this host holds key {fpr}",
                f"install the repository's keyring under {families.apt_dir()}/keyrings, or give the file in the recipe",
            )
        out.append(ExtraSource(repo.url, repo.suites, repo.components, holder, frozenset({fpr})))
    return tuple(out)


def _holds(keyring: Path, fingerprint: str) -> bool:
    try:
        return fingerprint in families.fingerprints(keyring)
    except (OSError, SignatureError):
        return False


def _epoch_from_env() -> int | None:
    value = os.environ.get("SOURCE_DATE_EPOCH")
    if not value:
        return None
    if not value.isdigit():
        raise BootstrapError(f"SOURCE_DATE_EPOCH={value!r} is not a number of seconds", "unset it or give an integer")
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
    arches = tuple(a.strip() for a in (opts.arch or (locked.arch if locked else None) or host_arch()).split(","))
    for arch in arches:
        if arch not in ARCHES:
            raise BootstrapError(
                f"unsupported architecture {arch!r}", f"use one or more of {', '.join(sorted(ARCHES))}"
            )
    if len(set(arches)) != len(arches):
        raise BootstrapError(f"--arch names an architecture twice: {opts.arch}", "list each architecture once")
    if locked is not None and len(arches) > 1:
        raise BootstrapError("a lock file pins one architecture", f"build with --arch {locked.arch}")
    if opts.default_user is False and recipe.default_user:
        recipe = replace(recipe, default_user=False)
        recipe_mod.check(recipe)
    suite = families.resolve_suite(distro.release_table, opts.suite or (locked.suite if locked else recipe.suite))
    found = {arch: families.discover_mirrors(distro, opts.mirror, opts.security_mirror, suite, arch) for arch in arches}
    first = found[arches[0]]
    keyrings, signers = (
        ((), frozenset[str]()) if opts.insecure and not opts.keyrings else keyrings_for(distro, opts.keyrings, recipe)
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
        extra=extra_sources(recipe),
        native_tools=opts.native_tools,
        sbom_formats=opts.sbom_formats,
        reuse_members=opts.reuse_members,
        derived_cache=opts.derived_cache,
        signers=signers,
        arch_mirrors={arch: m for arch, m in found.items() if m != first},
        cache_max=prune.cap(opts.cache_max),
    )
