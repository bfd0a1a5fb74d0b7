"""Before any download: the release a suite names, the mirror serving the distribution's tree (the user's:
`--mirror`, the environment, the recipe; none is built in), the architecture as dnf names it, and the keys that
vouch for the repositories (shipped with the recipe, pinned by fingerprint)."""

import os
import urllib.parse
from collections.abc import Sequence
from pathlib import Path

from bootstrap.errors import BootstrapError, MirrorError, SignatureError
from bootstrap.host import mirror_url, openpgp
from bootstrap.host.arches import ARCHES
from bootstrap.rpm.distros import RpmDistro

LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
"""Hosts a metalink may be fetched from over plain http (no network path to forge it on)."""
BASEARCHES = frozenset({"x86_64", "aarch64", "ppc64le", "s390x"})
"""The architectures the distributions of the family publish (dnf's `$basearch`)."""


def release(distro: RpmDistro, suite: str) -> str:
    """The release `suite` names: one of the table's, or an alias of one (`latest`)."""
    found = distro.aliases.get(suite, suite)
    if found not in distro.releases:
        known = ", ".join([*distro.releases, *distro.aliases])
        raise BootstrapError(f"{distro.name} has no release {suite!r}", f"use one of {known}")
    return found


def basearch(arch: str) -> str:
    """dnf's `$basearch` for a Debian architecture name (`amd64` -> `x86_64`)."""
    row = ARCHES.get(arch)
    if row is None or row.machine not in BASEARCHES:
        raise BootstrapError(
            f"the RPM distributions are not built for {arch!r}", "use --arch amd64, arm64, ppc64el or s390x"
        )
    return row.machine


def mirror(distro: RpmDistro, given: str | None, recipe: str, metalink_service: str = "") -> str:
    """The root of the distribution's tree: --mirror, else $BOOTSTRAP_<DISTRO>_MIRROR, else the recipe's; else ""
    when a metalink service is named (its metalinks list the mirrors)."""
    for value, origin in ((given, "--mirror"), (os.environ.get(distro.mirror_env), f"${distro.mirror_env}"),
                          (recipe, "the recipe's rpm.mirror")):  # fmt: skip
        if value:
            return mirror_url.checked(value, origin)
    if metalink_service:
        return ""
    also = f", or name its metalink service in {distro.metalink_env}" if distro.has_metalinks else ""
    raise MirrorError(
        f"no {distro.name} mirror given",
        f"pass --mirror <{distro.name}-mirror-url> (the root of the distribution's tree) or set {distro.mirror_env}"
        + also,
    )


def metalink(distro: RpmDistro, recipe: str) -> str:
    """The metalink service the user names ($BOOTSTRAP_<DISTRO>_METALINK, else the recipe's rpm.metalink), or ""
    for none; refused for a distribution whose repositories have no metalink."""
    for value, origin in ((os.environ.get(distro.metalink_env), f"${distro.metalink_env}"),
                          (recipe, "the recipe's rpm.metalink")):  # fmt: skip
        if value:
            if not distro.has_metalinks:
                raise BootstrapError(
                    f"{origin}: {distro.name}'s repository files name no metalink (they name a mirror list)",
                    "leave it unset: the repositories are read under --mirror",
                )
            url = mirror_url.checked(value, origin)
            parts = urllib.parse.urlsplit(url)
            if parts.scheme == "http" and parts.hostname not in LOOPBACK:
                raise MirrorError(
                    f"{origin}: {url} is plain http: a metalink vouches for metadata no one signs",
                    "name the service by https://",
                )
            return url
    return ""


def keyrings(
    distro: RpmDistro, given: tuple[Path, ...], source: str, keyring: str, signers: Sequence[str]
) -> tuple[tuple[Path, ...], frozenset[str]]:
    """--keyring files (any key of them), else the recipe's key file with the keys it pins; a host has no
    keyring of these distributions to fall back on."""
    if given:
        for k in given:
            if not k.is_file():
                raise SignatureError(f"keyring {k} does not exist", "give an existing OpenPGP key file to --keyring")
        return tuple(k.absolute() for k in given), frozenset()
    if not keyring:
        raise SignatureError(
            f"{source}: no keys for {distro.name}", "set archive.keyring and archive.signers, or pass --keyring FILE"
        )
    pinned = frozenset(signers)
    missing = sorted(pinned - openpgp.fingerprints(Path(keyring)))
    if missing:
        raise SignatureError(
            f"{source}: key file {keyring} does not hold the pinned key(s) {', '.join(missing)}",
            "restore the key file that came with the recipe, or pass --keyring FILE",
        )
    return (Path(keyring),), pinned
