"""A build by an ordinary user in a user namespace of its one id (owners and modes recorded in the override
table, scriptlets in the same sandbox) says of every entry what the root build says."""

import json
import os
import pickle
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from bootstrap.host.tree import remove_tree
from bootstrap.rpm.options import JobOptions
from bootstrap.rpm.selection import RpmSelection
from tests.e2e.users import readable_runtime
from tests.fixtures.rpmrepo import RpmRepo
from tests.rpm.conftest import EPOCH
from tests.rpm.test_job import OPTIONS, _build, _selection
from tests.rpm.treeview import view

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="switches to an ordinary user")
ROOT = Path(__file__).resolve().parent.parent.parent
NOBODY = 65534


def test_rootless_tree_says_what_the_root_tree_says(rpm_distro: tuple[RpmRepo, str], tmp_path: Path) -> None:
    if shutil.which("setpriv") is None:
        pytest.skip("no setpriv")
    root_tree, root_job = _build(rpm_distro, tmp_path / "root-build")
    selection, files = _selection(rpm_distro, tmp_path / "sel")
    work = Path(tempfile.mkdtemp(prefix="bootstrap-rootless-"))  # the ordinary user reaches nothing of pytest's
    with readable_runtime() as (python, stage):
        for name in (
            "tests/__init__.py",
            "tests/rpm/__init__.py",
            "tests/rpm/rootless_child.py",
            "tests/rpm/treeview.py",
        ):
            (stage / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / name, stage / name)
            (stage / name).chmod(0o644)
            (stage / name).parent.chmod(0o755)
        proc = _run_rootless(python, stage, work, selection, files)
    if "unshare:" in proc.stderr:
        pytest.skip(proc.stderr.strip())
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout) == view(root_tree, None, root_job)


def _run_rootless(
    python: str, stage: Path, work: Path, selection: RpmSelection, files: dict[str, Path]
) -> subprocess.CompletedProcess[str]:
    """The child, as nobody, with the readable copy of bootstrap and these tests."""
    try:
        (work / "rpms").mkdir()
        copies = {name: Path(shutil.copy(path, work / "rpms" / path.name)) for name, path in files.items()}
        options: JobOptions = OPTIONS
        (work / "input.pickle").write_bytes(pickle.dumps((selection, copies, options, EPOCH)))
        for path in [work, *work.rglob("*")]:
            os.chown(path, NOBODY, NOBODY)
        argv = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
        argv += [python, "-m", "tests.rpm.rootless_child", str(work)]
        env = {"PATH": os.environ["PATH"], "HOME": str(work), "LC_ALL": "C.UTF-8"}
        env["PYTHONPATH"] = f"{stage}:{stage / 'site'}"
        return subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True)
    finally:
        remove_tree(work)
