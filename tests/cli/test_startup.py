"""The command line starts without what only some commands need: the network stack (requests, urllib3) loads
with a build's first download, each package family with a plan of its own, so `--help`, `show`, `new` and a
recipe refused before any request stay quick (about a hundred of the suite's tests run the command line)."""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import Serve

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("requests", "urllib3", "bootstrap.host.sessions", "bootstrap.deb.index", "bootstrap.deb.family",
         "bootstrap.rpm.family", "bootstrap.rpm.job")  # fmt: skip
PROBE = """
import json, sys
from bootstrap.cli.main import main
code = 0
try:
    main()
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "loaded": sorted(m for m in HEAVY if m in sys.modules)}))
"""


def _loaded(*args: str) -> dict[str, Any]:
    script = f"HEAVY = {HEAVY!r}\n{PROBE}"
    proc = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, cwd=ROOT)
    return json.loads(proc.stdout.splitlines()[-1])  # type: ignore[no-any-return]


def test_help_loads_neither_the_network_nor_a_family() -> None:
    assert _loaded("--help") == {"code": 0, "loaded": []}


def test_a_recipe_refused_before_any_request_loads_no_network(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('distribution = "debian"\nsuite = "stable"\nno-such-key = 1\n')
    assert _loaded("build", str(bad), "--mirror", "http://127.0.0.1:9/debian") == {"code": 1, "loaded": []}


def test_a_build_loads_the_network_and_its_own_family_only(tmp_path: Path, serve: Serve) -> None:
    """The probe itself can fail: a build of a deb recipe that gets as far as its mirror (an empty one: the
    InRelease is not there, an answer that is not tried again) loads requests and the deb family, not the RPM
    one."""
    recipe = tmp_path / "r.toml"
    recipe.write_text('distribution = "debian"\nsuite = "bookworm"\n')
    (tmp_path / "empty").mkdir()
    mirror = serve(tmp_path / "empty")
    got = _loaded("build", str(recipe), "--mirror", mirror, "--security-mirror", mirror, "-o", str(tmp_path / "out"))
    assert got["code"] != 0
    assert {"requests", "urllib3", "bootstrap.deb.family", "bootstrap.deb.index"} <= set(got["loaded"])
    assert "bootstrap.rpm.family" not in got["loaded"]


def test_the_command_runs_exit_handlers_and_flushes_before_its_quick_exit(tmp_path: Path) -> None:
    """`run` leaves without the interpreter's teardown: what the exit handlers do (the cache releases its claims
    there) and what is still buffered in the standard streams must happen all the same."""
    script = (
        "import atexit, sys\n"
        "from bootstrap.cli.main import run\n"
        "marker = sys.argv[1]\n"
        "atexit.register(lambda: open(marker, 'w').write('handled'))\n"
        "sys.argv[1:] = ['list']\n"
        "sys.stdout.write('buffered, no newline')\n"
        "run()\n"
    )
    marker = tmp_path / "marker"
    proc = subprocess.run([sys.executable, "-c", script, str(marker)], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("buffered, no newline") and "debian-slim" in proc.stdout
    assert marker.read_text() == "handled"


def test_the_command_exits_120_when_its_output_cannot_be_flushed() -> None:
    """A reader gone before what is still buffered is flushed: the exit says so, as Python's own exit does (120),
    and no traceback. (A command's own lines are flushed as they are written, so it fails on those first: here
    the command does nothing and the text is left in the buffer.)"""
    script = "import sys\nfrom bootstrap.cli import main\nmain.main = lambda: None\nprint('left')\nmain.run()\n"
    read, write = os.pipe()
    os.close(read)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # the print is buffered
    proc = subprocess.run(
        [sys.executable, "-c", script], stdout=write, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env
    )
    os.close(write)
    assert proc.returncode == 120, proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_thread_still_at_work_is_waited_for() -> None:
    """Should a command leave a thread working, the quick exit is not taken: what the thread does is done."""
    script = (
        "import sys, threading, time\n"
        "from bootstrap.cli import main\n"
        "def late():\n"
        "    time.sleep(0.3)\n"
        "    print('finished', flush=True)\n"
        "main.main = lambda: threading.Thread(target=late).start()\n"
        "main.run()\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "finished\n"


def test_a_command_run_with_its_output_closed_ends_well() -> None:
    """Started with no standard output at all (`bootstrap list >&-`: Python's stdout is None), a command that
    ends well exits 0, as Python's own exit would, with no traceback."""
    script = "import sys\nfrom bootstrap.cli.main import run\nsys.argv[1:] = ['list']\nrun()\n"
    proc = subprocess.run(
        [sys.executable, "-c", script], stderr=subprocess.PIPE, text=True, cwd=ROOT, preexec_fn=lambda: os.close(1)
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_exit_code_a_command_returns_is_the_exit_status() -> None:
    """What `ctx.exit(n)` gives without standalone mode (returned, not raised) is the process's exit status."""
    script = "from bootstrap.cli import main\nmain.cli.main = lambda **kw: 3\nmain.run()\n"
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 3, proc.stderr
