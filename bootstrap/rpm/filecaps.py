"""File capabilities (`%caps(cap_net_raw=p)`): the text a package's header holds for a file (libcap's
`cap_to_text` form, RPMTAG_FILECAPS) made into the `security.capability` extended attribute rpm sets with
`cap_set_file`: a `vfs_cap_data` of revision 2 (the kernel's `capability.h`), which the layer carries as a pax
record and a container runtime writes back when it unpacks the image.

The text is clauses separated by white space, each an optional comma-separated list of capabilities
(`cap_` names, `all`, or numbers as C's strtoul reads them; no list means all) followed by operations: `=`
(clear the capabilities' three sets, then set the flags given; only first, and `=+`/`=-` need a list), `+`
(set) or `-` (clear), each of those two with at least one of the flags `e`, `i` and `p`. This reads exactly
the texts libcap's `cap_from_text` reads (ASCII, C locale), the same way; what it refuses is refused."""

import re
import struct

from bootstrap.errors import UnpackError
from bootstrap.numbers import DIGITS

NAMES = (
    "chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill", "setgid", "setuid", "setpcap",
    "linux_immutable", "net_bind_service", "net_broadcast", "net_admin", "net_raw", "ipc_lock", "ipc_owner",
    "sys_module", "sys_rawio", "sys_chroot", "sys_ptrace", "sys_pacct", "sys_admin", "sys_boot", "sys_nice",
    "sys_resource", "sys_time", "sys_tty_config", "mknod", "lease", "audit_write", "audit_control", "setfcap",
    "mac_override", "mac_admin", "syslog", "wake_alarm", "block_suspend", "audit_read", "perfmon", "bpf",
    "checkpoint_restore",
)  # fmt: skip
"""The capabilities by number (linux/capability.h), 0 to 40."""
ATTRIBUTE = "security.capability"
_REVISION_2 = 0x02000000
_EFFECTIVE = 0x000001
_ALL = (1 << len(NAMES)) - 1
"""`all` (and no list): the capabilities this table knows, as libcap masks them by a kernel of that many."""
_MAX_BITS = 64
_SPACE = " \t\n\v\f\r"
_ALPHA = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_NUMBER = re.compile(r"0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*")
_QUOTED = 80


class _Text:
    """A cursor over the text (ASCII only, so each character is one C char)."""

    def __init__(self, text: str) -> None:
        self.text, self.at = text, 0

    def peek(self) -> str:
        return self.text[self.at] if self.at < len(self.text) else ""

    def take(self) -> str:
        c = self.peek()
        self.at += 1
        return c

    def at_end_of_clause(self) -> bool:
        return not self.peek() or self.peek() in _SPACE


def _word_start(c: str) -> bool:
    return c in _ALPHA or c in DIGITS or c == "_"


def _capability(t: _Text) -> int:
    """The mask of one list item (`all`, a name or a number) at the cursor, the cursor moved past it."""
    m = _NUMBER.match(t.text, t.at)
    if t.peek() in DIGITS and m is not None:
        t.at = m.end()
        number = int(m[0], 16 if m[0][:2].lower() == "0x" else 8 if m[0].startswith("0") else 10)
        if number >= _MAX_BITS:
            raise ValueError(f"capability number {m[0]} is out of range")
        return 1 << number
    end = t.at
    while end < len(t.text) and (t.text[end] in _ALPHA or t.text[end] == "_"):
        end += 1
    word = t.text[t.at : end].lower()
    t.at = end
    if word == "all":
        return _ALL
    bare = word.removeprefix("cap_")
    if word.startswith("cap_") and bare in NAMES:
        return 1 << NAMES.index(bare)
    raise ValueError(f"unknown capability {word[:_QUOTED]!r}")


def _clause(t: _Text, flags: dict[str, int]) -> None:
    caps, listed = _ALL, False
    if _word_start(t.peek()):
        caps, listed = 0, True
        while True:
            caps |= _capability(t)
            if t.peek() != ",":
                break
            t.take()
            if not _word_start(t.peek()):
                raise ValueError("a list item is missing after ','")
    op = t.take()
    if op == "=" and t.peek() in ("+", "-") and t.peek():
        if not listed:
            raise ValueError("'=+' and '=-' need a list of capabilities")
        for f in flags:
            flags[f] &= ~caps
        op = t.take()
        if t.at_end_of_clause():
            raise ValueError(f"no flags after {op!r}")
    elif op not in ("=", "+", "-") or op != "=" and not listed:
        raise ValueError("a clause is a list of capabilities, then '=', '+' or '-'")
    elif op != "=" and t.at_end_of_clause():
        raise ValueError(f"no flags after {op!r}")
    if op == "=":
        for f in flags:
            flags[f] &= ~caps
    if t.peek() and t.peek() in "+-":
        raise ValueError(f"no flags after {op!r}")
    while not t.at_end_of_clause():
        c = t.take()
        if c in "+-" and c:
            if not listed:
                raise ValueError("'+' and '-' need a list of capabilities")
            op = c
            if t.peek() not in _ALPHA:
                raise ValueError(f"no flags after {op!r}")
            continue
        if c not in ("e", "i", "p"):
            raise ValueError(f"{c!r} is not a flag (e, i or p)")
        flags[c] = flags[c] & ~caps if op == "-" else flags[c] | caps


def sets(text: str) -> tuple[int, int, int]:
    """(effective, inheritable, permitted) of a capability text; ValueError when it is not one."""
    if not text.isascii():
        raise ValueError(f"malformed capabilities {text[:_QUOTED]!r}: not ASCII")
    flags = {"e": 0, "i": 0, "p": 0}
    t = _Text(text)
    while True:
        while t.peek() and t.peek() in _SPACE:
            t.take()
        if not t.peek():
            return flags["e"], flags["i"], flags["p"]
        try:
            _clause(t, flags)
        except ValueError as exc:
            raise ValueError(f"malformed capabilities {text[:_QUOTED]!r}: {exc}") from None


def attribute(text: str, what: str) -> bytes | None:
    """The `security.capability` value rpm writes for a file whose header gives it `text` (a text giving none,
    as `=` does, still makes a value, as in rpm; an empty text, none); a text that is not capabilities is
    refused with the package and file in `what`."""
    if not text:
        return None
    try:
        effective, inheritable, permitted = sets(text)
    except ValueError as exc:
        raise UnpackError(f"{what}: {exc}", "the package's header is not what rpmbuild writes") from None
    if effective and (permitted | inheritable) & ~effective:
        # the attribute has one effective bit, for all of them: libcap's cap_set_file refuses the rest
        raise UnpackError(
            f"{what}: capabilities {text[:_QUOTED]!r} are effective for some of those permitted or inheritable only",
            "the package's header is not what rpm can install",
        )
    magic = _REVISION_2 | (_EFFECTIVE if effective else 0)
    low, high = 0xFFFFFFFF, 32
    return struct.pack("<5I", magic, permitted & low, inheritable & low, permitted >> high, inheritable >> high)
