"""A mirror's URL, checked once for both families wherever it comes from (`--mirror`, the environment, a recipe,
the host's apt sources), before anything is fetched: it is written into the image (apt's sources, dnf's
repository files) and into every record, and paths are appended to it, so it must be one plain URL.

- http or https with a host, or file with a path (no host but localhost);
- only the characters a URL is made of: no white space or control character (which would end the line it is
  written on in the image's sources and begin another, a repository or `gpgcheck=0` of the writer's), no `$`
  (dnf in the image expands its variables), no query or fragment (the paths appended would land in them), `%`
  only as an escape, `[ ]` only around an IPv6 host;
- no user name or password: they would be in the image and in every record and registry it is pushed to.
  `~/.netrc` gives a mirror its credentials (requests reads it for each host), and nothing records them."""

import string
import urllib.parse

from bootstrap.errors import MirrorError

URL_CHARACTERS = frozenset(string.ascii_letters + string.digits + "-._~/:@%!&'()*+,;=[]")
"""What a mirror URL may hold (RFC 3986's unreserved and reserved characters, less `?`, `#` and `$`)."""
HEX = frozenset(string.hexdigits)
FORM = "write it as http://HOST[:PORT]/PATH, https://HOST[:PORT]/PATH or file:///PATH"


def checked(url: str, origin: str) -> str:
    """`url` without its trailing slash, once it is a usable mirror URL (see the module); else a one-line
    MirrorError naming `origin` (`--mirror`, an environment variable, apt sources, a recipe key)."""
    reason, hint = _fault(url)
    if reason:
        raise MirrorError(f"mirror URL {_shown(url)!r} (from {origin}) is not valid: {reason}", hint or FORM)
    return url.rstrip("/")


def _shown(url: str) -> str:
    """`url` as an error may show it: what comes before an `@` in its host part (a password) left out."""
    scheme, sep, rest = url.partition("://")
    host, slash, path = rest.partition("/")
    return f"{scheme}{sep}***@{host.rpartition('@')[2]}{slash}{path}" if sep and "@" in host else url


def _fault(url: str) -> tuple[str, str]:
    """Why `url` is no mirror URL, and how to fix it ("" for the form's hint); ("", "") when it is one."""
    odd = next((c for c in url if c not in URL_CHARACTERS), None)
    if odd is not None:
        what = {"?": "a query", "#": "a fragment", "$": "a variable"}.get(odd, f"the character {odd!r}")
        return f"it holds {what}, which has no place in a mirror URL", ""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - parsing the port is what raises on a malformed one
    except ValueError as exc:
        return str(exc), ""
    if parts.scheme not in ("http", "https", "file"):
        return "not an http://, https:// or file:// URL", ""
    if "@" in parts.netloc:
        return (
            "it carries a user name or password, which the image and every record would hold",
            f"put them in ~/.netrc (machine {parts.hostname} login USER password SECRET), which the downloads read",
        )
    if "[" in parts.path or "]" in parts.path:
        return "brackets belong only around an IPv6 host", ""
    rest = url.split("%")[1:]
    if any(len(r) < 2 or not set(r[:2]) <= HEX for r in rest):
        return "a % that is not an escape (%XX)", ""
    if parts.scheme == "file":
        return ("", "") if parts.path.startswith("/") and parts.netloc in ("", "localhost") else ("no local path", "")
    return ("", "") if parts.hostname else ("no host", "")
