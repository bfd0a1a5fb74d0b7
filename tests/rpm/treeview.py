"""What a built tree says of each entry, as the layer will say it (override table applied)."""

import hashlib
import stat
from pathlib import Path

from bootstrap.host.overrides import Overrides
from bootstrap.host.tree import Tree
from bootstrap.rpm.job import RpmJob


def view(root: Path, overrides: Overrides | None, job: RpmJob) -> dict[str, str]:
    """path -> mode, owner, content digest or link target, and (for the packages' files: what scriptlets write
    has the wall clock's, which the layer clamps to the epoch) mtime."""
    tree = Tree(root, overrides)
    packaged = {p.lstrip("/") for u in job.unpacked for p in u.written}
    out = {}
    for rel, st in tree.walk():
        what = ""
        if stat.S_ISREG(st.st_mode):
            what = hashlib.sha256((root / rel).read_bytes()).hexdigest()
        elif stat.S_ISLNK(st.st_mode):
            what = str((root / rel).readlink())
        mtime = int(st.st_mtime) if rel in packaged and not stat.S_ISDIR(st.st_mode) else ""
        out[rel] = f"{st.st_mode:o} {st.st_uid} {st.st_gid} {mtime} {what}"
    return out
