"""Numbers in text someone else wrote (package headers and indexes, HTTP headers, the tree's account files,
recipes): ASCII digits only. `str.isdigit` also takes digits that `int` refuses (a superscript "²"), so a field
checked with it alone could reach `int` and raise where a one-line error belongs."""


def is_decimal(text: str | bytes) -> bool:
    """Whether `text` is one or more ASCII digits (what `int` reads as a number, nothing else)."""
    return text.isascii() and text.isdigit()


DIGITS = frozenset("0123456789")
"""The ASCII digits, for one character at a time (`c in DIGITS`: no call, where a comparison loop runs hot)."""


MAX_ID = (1 << 32) - 2
"""The largest id a user, group or file's owner can have (the one above is -1, "no id", to the kernel and to
container runtimes)."""

MAX_EPOCH = 253402300799
"""The last second of 9999 (UTC): the latest time an image's dates (RFC 3339, tar headers) can name."""


def epoch_problem(value: object) -> str | None:
    """Why `value` is no epoch of an image (seconds since 1970, in 0..MAX_EPOCH, an integer), or None."""
    if not isinstance(value, int) or isinstance(value, bool):
        return "not a whole number of seconds"
    if not 0 <= value <= MAX_EPOCH:
        return f"not between 0 (1970) and {MAX_EPOCH} (the end of 9999)"
    return None
