"""The output directory: written in a staging directory next to it, then moved into place whole."""

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bootstrap.errors import BootstrapError


@contextmanager
def staged(dest: Path) -> Iterator[Path]:
    """Yield an empty staging directory; on success it replaces `dest`, on failure it is removed."""
    parent = dest.absolute().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=parent))
    except OSError as exc:
        raise BootstrapError(f"cannot write to {parent}: {exc.strerror}", "choose another -o directory") from exc
    try:
        yield stage
        os.chmod(stage, 0o755)
        old = None
        if dest.exists():
            if not dest.is_dir():
                raise BootstrapError(f"{dest} exists and is not a directory", "choose another -o directory")
            old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=parent))
            os.rename(dest, old / "d")
        os.rename(stage, dest)
        if old is not None:
            shutil.rmtree(old)
    finally:
        if stage.exists():
            shutil.rmtree(stage)


def link_or_copy(src: Path, dest: Path) -> None:
    try:
        os.link(src, dest)
    except OSError:
        shutil.copyfile(src, dest)
