"""Run by test_rootless.py as an ordinary user: enter a user namespace of that one id (no subordinate ids, so
owners go to an override table), build the miniature's tree with RpmJob, print what the tree says of each entry."""

import ctypes
import json
import os
import pickle
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bootstrap.family.interface import Target
from bootstrap.host.overrides import Overrides
from bootstrap.host.sandbox import Sandbox
from bootstrap.rpm.job import RpmJob
from tests.rpm.treeview import view

CLONE_NEWUSER = 0x10000000


def _enter() -> None:
    uid, gid = os.getuid(), os.getgid()
    if ctypes.CDLL(None, use_errno=True).unshare(CLONE_NEWUSER) != 0:
        sys.exit(f"unshare: {os.strerror(ctypes.get_errno())}")
    Path("/proc/self/setgroups").write_text("deny")
    Path("/proc/self/uid_map").write_text(f"0 {uid} 1")
    Path("/proc/self/gid_map").write_text(f"0 {gid} 1")


def main() -> None:
    work = Path(sys.argv[1])
    selection, files, options, epoch = pickle.loads((work / "input.pickle").read_bytes())
    _enter()
    root = work / "root"
    table = Overrides(default_owner=(0, 0))
    job = RpmJob(selection, files, Target(root, "x86_64", epoch, table), options)
    job.unpack(final=False)

    @contextmanager
    def runnable() -> Iterator[Sandbox]:
        yield Sandbox(root)

    job.configure(runnable)
    job.finish()
    print(json.dumps(view(root, table, job)))


if __name__ == "__main__":
    main()
