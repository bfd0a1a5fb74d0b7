"""A recipe's apt repository beside the distribution's (`[[repositories]]`), as the build carries it: a leaf
module, so that the build's plan can name it without loading the deb family."""

from dataclasses import dataclass
from pathlib import Path

from bootstrap.host import openpgp


@dataclass(frozen=True)
class ExtraSource:
    """A repository besides the distribution's, with the keyring (and key) that vouches for it."""

    url: str
    suites: tuple[str, ...]
    components: tuple[str, ...]
    keyring: Path
    signers: frozenset[str] = frozenset()
    """When set, only these keys of the keyring vouch for the repository (it was named by fingerprint)."""

    @property
    def name(self) -> str:
        """The file name stem of its sources file and keyring in the image."""
        return f"repo-{min(self.signers)[-16:].lower()}" if self.signers else self.keyring.stem

    def image_keyring(self) -> tuple[str, bytes]:
        """File name and content of the keyring the image's apt uses for it: the recipe's own file, or just the
        named key exported from the host's keyring."""
        if self.signers:
            return f"{self.name}.gpg", openpgp.extract_key(self.keyring, min(self.signers))
        return self.keyring.name, self.keyring.read_bytes()
