"""Files someone else may have made (an output directory, an OCI layout, records): opened only when regular, never
through a symbolic link, never waiting on a FIFO."""

import os
import stat
from pathlib import Path


def open_plain(path: Path) -> int | None:
    """A descriptor on `path` when it is a regular file (a symbolic link is not followed, a FIFO does not
    block), else None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:  # missing, a symbolic link (ELOOP), or unreadable
        return None
    if stat.S_ISREG(os.fstat(fd).st_mode):
        return fd
    os.close(fd)
    return None
