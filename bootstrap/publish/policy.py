"""`bootstrap policy`: the containers configuration (podman, skopeo, CRI-O: containers/image) that refuses
images of the named registries and repositories unless they carry a signature by our key.

Two files. `policy.json` (containers-policy.json(5)) requires, for each scope under the `docker` transport, a
`sigstoreSigned` signature verified by the public key (embedded as `keyData`, or read from `keyPath` on the
machine that pulls), whose `docker-reference` is the pulled image's repository (`matchRepository`: the
signatures `bootstrap push --sign-key` writes name the repository, not a tag). `registries.d/bootstrap.yaml`
(containers-registries.d(5)) tells containers/image to look for those signatures in the registry itself,
under the `sha256-<hex>.sig` tags (`use-sigstore-attachments: true`).

With a GPG public keyring (`--gpg-key`), each scope also requires a `signedBy` GPG simple signature (what
`push --gpg-sign` writes), read from the lookaside store the registries.d file names (`lookaside:`); its
identity is the default, the exact reference pulled (or its digest).
"""

import base64
import json
from dataclasses import dataclass
from typing import Any

from bootstrap.errors import BootstrapError
from bootstrap.registry.errors import RegistryError
from bootstrap.registry.reference import HOST, parse_reference
from bootstrap.sign.keys import PublicKey

POLICY = "policy.json"
REGISTRIES_D = "registries.d/bootstrap.yaml"


def scope(text: str) -> str:
    """A policy scope: `HOST[:PORT]` (every repository there) or `HOST[:PORT]/REPO` (one repository, or every
    one under a namespace), as containers-policy.json names them; no tag or digest."""
    if "/" not in text:
        if not HOST.match(text):
            raise BootstrapError(f"{text!r} is not a registry host", "write HOST[:PORT] or HOST[:PORT]/REPOSITORY")
        return text
    try:
        ref = parse_reference(text)
    except RegistryError as exc:
        raise BootstrapError(exc.message, exc.hint) from None
    if ref.tag or ref.digest:
        raise BootstrapError(f"{text!r} names a tag or digest", "a policy covers a repository: leave the tag out")
    return f"{ref.host}/{ref.repository}"


@dataclass(frozen=True)
class Gpg:
    keyring: bytes
    """The public keyring (binary or ASCII-armored export) whose keys may sign."""
    lookaside: str
    """The URL (https:// or file://) the signatures are read from."""


@dataclass(frozen=True)
class Policy:
    key: PublicKey | None
    scopes: tuple[str, ...]
    key_path: str | None = None
    """Where the public key will be on the pulling machine (`keyPath`); None embeds it (`keyData`)."""
    reject_others: bool = False
    """Refuse every image outside the scopes too (`default: reject`); otherwise leave them to no check."""
    gpg: Gpg | None = None

    def requirements(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if self.key is not None:
            data = base64.b64encode(self.key.pem()).decode()
            where = {"keyPath": self.key_path} if self.key_path else {"keyData": data}
            out.append({"type": "sigstoreSigned", **where, "signedIdentity": {"type": "matchRepository"}})
        if self.gpg is not None:
            out.append(
                {"type": "signedBy", "keyType": "GPGKeys", "keyData": base64.b64encode(self.gpg.keyring).decode()}
            )
        return out

    def policy_json(self) -> bytes:
        default = "reject" if self.reject_others else "insecureAcceptAnything"
        doc = {
            "default": [{"type": default}],
            "transports": {"docker": {s: self.requirements() for s in self.scopes}},
        }
        return (json.dumps(doc, indent=2) + "\n").encode()

    def registries_d(self) -> bytes:
        # JSON strings are YAML double-quoted scalars: a host with a port is read as one key.
        lines = ["# containers-registries.d(5): where the image signatures of these scopes are read", "docker:"]
        for s in self.scopes:
            lines.append(f"  {json.dumps(s)}:")
            if self.key is not None:
                lines.append("    use-sigstore-attachments: true")
            if self.gpg is not None:
                lines.append(f"    lookaside: {json.dumps(self.gpg.lookaside)}")
        return ("\n".join(lines) + "\n").encode()

    def files(self) -> dict[str, bytes]:
        return {POLICY: self.policy_json(), REGISTRIES_D: self.registries_d()}
