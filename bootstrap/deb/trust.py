"""What vouches for a deb archive: the keyrings (and pinned keys) of the distribution's archive, and the
keyring of each of a recipe's own repositories, found before any download."""

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from bootstrap.deb.distros import DistroInfo
from bootstrap.deb.extra import ExtraSource
from bootstrap.deb.mirrors import apt_dir
from bootstrap.errors import SignatureError
from bootstrap.host import openpgp


class Repository(Protocol):
    """A recipe's repository as the trust look-up reads it."""

    @property
    def url(self) -> str: ...
    @property
    def suites(self) -> tuple[str, ...]: ...
    @property
    def components(self) -> tuple[str, ...]: ...
    @property
    def keyring(self) -> str: ...
    @property
    def is_fingerprint(self) -> bool: ...


def keyrings_for(
    distro: DistroInfo, given: tuple[Path, ...], source: str, archive_keyring: str, archive_signers: Sequence[str]
) -> tuple[tuple[Path, ...], frozenset[str]]:
    """The keyrings that vouch for the archive, and the keys among them that may sign it: --keyring files
    (absolute; binary or ASCII-armored, any key), else the recipe's keyring with the keys it pins, else the
    host's distribution keyring (`source`: the recipe, for errors)."""
    if given:
        for k in given:
            if not k.is_file():
                raise SignatureError(
                    f"keyring {k} does not exist", "give an existing OpenPGP keyring file to --keyring"
                )
        return tuple(k.absolute() for k in given), frozenset()
    signers = frozenset(archive_signers)
    if archive_keyring:
        ring = Path(archive_keyring)
        held = openpgp.fingerprints(ring)
        missing = sorted(signers - held)
        if missing:
            raise SignatureError(
                f"{source}: archive keyring {ring} does not hold the pinned key(s) {', '.join(missing)}",
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
    base = apt_dir()
    found = [base / "trusted.gpg"] if (base / "trusted.gpg").is_file() else []
    for d in (base / "keyrings", base / "trusted.gpg.d", Path("/usr/share/keyrings")):
        if d.is_dir():
            found += sorted(p for p in d.iterdir() if p.suffix in (".gpg", ".asc", ".pgp") and p.is_file())
    return found


def extra_sources(source: str, repositories: Sequence[Repository]) -> tuple[ExtraSource, ...]:
    """A recipe's repositories with the keyring that vouches for each: its own file, or the host keyring
    that holds the key it names by fingerprint (and then only that key is accepted)."""
    out = []
    for i, repo in enumerate(repositories):
        if not repo.is_fingerprint:
            out.append(ExtraSource(repo.url, repo.suites, repo.components, Path(repo.keyring)))
            continue
        fpr = repo.keyring.replace(" ", "").upper()
        holder = next((k for k in host_keyrings() if _holds(k, fpr)), None)
        if holder is None:
            raise SignatureError(
                f"{source}: repositories[{i}]: no keyring of this host holds key {fpr}",
                f"install the repository's keyring under {apt_dir()}/keyrings, or give the file in the recipe",
            )
        out.append(ExtraSource(repo.url, repo.suites, repo.components, holder, frozenset({fpr})))
    return tuple(out)


def _holds(keyring: Path, fingerprint: str) -> bool:
    try:
        return fingerprint in openpgp.fingerprints(keyring)
    except (OSError, SignatureError):
        return False
