"""A metalink (MirrorManager's metalink 3.0, as Fedora's and CentOS Stream's repository files name one): the size
and digests of a repository's current `repomd.xml`, and of the few states before it that mirrors may still serve
(its alternates). These distributions do not sign `repomd.xml`; dnf trusts it when it matches the metalink it got
over TLS, and so does the build, when the user names the metalink service (`rpm.metalink`,
`$BOOTSTRAP_<DISTRO>_METALINK`): no host name is built in. A metalink also lists mirrors serving the repository;
with no --mirror given, the build reads the repository from them, in the metalink's order of preference."""

import hashlib
import re
from dataclasses import dataclass, field

from bootstrap.errors import ChecksumError
from bootstrap.rpm import xmlstream

_NUMBER = re.compile(r"[0-9]{1,19}")
"""A size or preference: ASCII digits, no more than fit a 64-bit number."""
STRONG = ("sha512", "sha256")
"""The digests a state is matched by (a metalink also gives md5 and sha1, which count for nothing)."""


@dataclass
class State:
    """One state of `repomd.xml` the metalink vouches for."""

    size: int | None = None
    digests: dict[str, str] = field(default_factory=dict)

    def matches(self, data: bytes) -> bool:
        """Whether `data` is this state: its size, and every strong digest given (at least one must be)."""
        strong = {kind: value for kind, value in self.digests.items() if kind in STRONG}
        if not strong or (self.size is not None and self.size != len(data)):
            return False
        return all(hashlib.new(kind, data).hexdigest() == value for kind, value in strong.items())


@dataclass(frozen=True)
class Metalink:
    url: str
    states: list[State]
    """The states of repomd.xml it vouches for: the current one first, then its alternates."""
    mirrors: tuple[str, ...]
    """The repository's base URLs at the mirrors it lists (http and https only), most preferred first."""

    def vouch(self, data: bytes, url: str) -> None:
        """Refuse `data` (the repomd.xml fetched from `url`) unless it is a state this metalink vouches for."""
        if not any(state.matches(data) for state in self.states):
            raise ChecksumError(
                f"{url} matches neither the state nor the alternates {self.url} gives (size and sha256/sha512)",
                "the mirror is stale, broken or hostile: use another --mirror, or retry once it has synced",
            )


def parse(data: bytes, what: str) -> Metalink:
    """A metalink document: the states of `repomd.xml` it lists and the mirrors serving it."""
    states: list[State] = []
    found: list[tuple[int, int, str]] = []
    """(-preference, order, base URL) of each mirror."""
    preference = 0
    open_states: list[State] = []
    """The current state, and the alternate being read (innermost last)."""
    in_repomd = False
    kind = ""

    def start(name: str, attrs: dict[str, str]) -> None:
        nonlocal in_repomd, kind, preference
        if name == "file":
            in_repomd = attrs.get("name") == "repomd.xml"
            open_states[:] = [State()] if in_repomd else []
            states.extend(open_states)
        elif in_repomd and name == "alternate":
            open_states.append(State())
            states.append(open_states[-1])
        elif name == "hash":
            kind = attrs.get("type", "").lower()
        elif in_repomd and name == "url":
            given = attrs.get("preference", "0")
            preference = int(given) if _NUMBER.fullmatch(given) else 0

    def end(name: str, text: str) -> None:
        nonlocal in_repomd
        if not in_repomd or not open_states:
            return
        if name == "size" and _NUMBER.fullmatch(text.strip()):
            open_states[-1].size = int(text.strip())
        elif name == "hash" and kind:
            open_states[-1].digests[kind] = text.strip().lower()
        elif name == "alternate" and len(open_states) > 1:
            open_states.pop()
        elif name == "url":
            url = text.strip()
            if url.startswith(("https://", "http://")) and url.endswith("/repodata/repomd.xml"):
                found.append((-preference, len(found), url.removesuffix("/repodata/repomd.xml")))
        elif name == "file":
            in_repomd = False

    xmlstream.parse([data], start, end, what)
    if not any(s.digests.keys() & set(STRONG) for s in states):
        raise ChecksumError(
            f"{what} gives no sha256 or sha512 of repomd.xml", "check rpm.metalink: it must name the metalink service"
        )
    return Metalink(what, states, tuple(dict.fromkeys(url for _, _, url in sorted(found))))
