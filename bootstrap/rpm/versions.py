"""rpm's version order: `rpmvercmp` on each part, epoch first (as rpm, dnf and libsolv compare them)."""

import functools

from bootstrap.numbers import DIGITS, is_decimal


def _alnum(c: str) -> bool:
    return c.isascii() and c.isalnum()


def _digit(c: str) -> bool:
    return c in DIGITS


def _letter(c: str) -> bool:
    return c.isascii() and c.isalpha()


def vercmp(a: str, b: str) -> int:
    """-1, 0 or 1 as rpm orders two version (or release) strings: segments of digits or letters, digits above
    letters, `~` below everything (a pre-release), `^` above the end but below more segments (a snapshot)."""
    if a == b:
        return 0
    i = j = 0
    while i < len(a) or j < len(b):
        while i < len(a) and not _alnum(a[i]) and a[i] not in "~^":
            i += 1
        while j < len(b) and not _alnum(b[j]) and b[j] not in "~^":
            j += 1
        if (i < len(a) and a[i] == "~") or (j < len(b) and b[j] == "~"):
            if i >= len(a) or a[i] != "~":
                return 1
            if j >= len(b) or b[j] != "~":
                return -1
            i, j = i + 1, j + 1
            continue
        if (i < len(a) and a[i] == "^") or (j < len(b) and b[j] == "^"):
            if i >= len(a):
                return -1
            if j >= len(b):
                return 1
            if a[i] != "^":
                return 1
            if b[j] != "^":
                return -1
            i, j = i + 1, j + 1
            continue
        if i >= len(a) or j >= len(b):
            break
        digits = _digit(a[i])
        kind = _digit if digits else _letter
        si, sj = i, j
        while i < len(a) and kind(a[i]):
            i += 1
        while j < len(b) and kind(b[j]):
            j += 1
        x, y = a[si:i], b[sj:j]
        if not y:
            return 1 if digits else -1
        if digits:
            x, y = x.lstrip("0"), y.lstrip("0")
            if len(x) != len(y):
                return 1 if len(x) > len(y) else -1
        if x != y:
            return 1 if x > y else -1
    if i >= len(a) and j >= len(b):
        return 0
    return -1 if i >= len(a) else 1


def split_evr(evr: str) -> tuple[int, str, str]:
    """`[epoch:]version[-release]` -> (epoch, version, release); a missing epoch is 0."""
    epoch, sep, rest = evr.partition(":")
    if not sep or not is_decimal(epoch):
        epoch, rest = "0", evr
    version, _, release = rest.rpartition("-") if "-" in rest else (rest, "", "")
    return int(epoch), version, release


def compare_evr(a: str, b: str) -> int:
    """-1, 0 or 1 for two `[epoch:]version[-release]` strings (a release missing on one side is not compared)."""
    ea, va, ra = split_evr(a)
    eb, vb, rb = split_evr(b)
    if ea != eb:
        return 1 if ea > eb else -1
    return vercmp(va, vb) or (vercmp(ra, rb) if ra and rb else 0)


evr_key = functools.cmp_to_key(compare_evr)
"""A sort key for evr strings."""
