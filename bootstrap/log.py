"""Logging and progress bars: everything goes to stderr; bars only on a terminal and not with -q."""

import logging
import sys

log = logging.getLogger("bootstrap")

_quiet = False


def setup(verbosity: int, quiet: bool) -> None:
    """Configure the `bootstrap` logger: -q shows warnings only, -v info, -vv or --debug debug."""
    global _quiet
    _quiet = quiet
    level = logging.WARNING if quiet else logging.INFO if verbosity <= 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False


def bars_enabled() -> bool:
    """Progress bars are drawn only when stderr is a terminal and -q was not given."""
    return not _quiet and sys.stderr.isatty()
