"""End-to-end fixtures: real builds from the host's mirror, a real Docker Engine, real tools.

With CI=true a missing tool or engine fails the test instead of skipping it.
"""

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tests.fixtures.repo import Repo

ROOT = Path(__file__).resolve().parents[2]
CI = os.environ.get("CI", "").lower() == "true"
SUITES = ("bookworm", "trixie")


def need(condition: bool, why: str) -> None:
    """Skip when something outside the project is missing; in CI that is a failure."""
    if not condition:
        if CI:
            pytest.fail(f"CI=true and {why}")
        pytest.skip(why)


def need_tool(name: str) -> str:
    beside = Path(sys.executable).parent / name
    path = str(beside) if beside.is_file() else shutil.which(name)
    need(path is not None, f"{name} is not installed (make test-deps installs it)")
    assert path is not None
    return path


def run(argv: list[str], check: bool = True, **kw: object) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, **kw)  # type: ignore[call-overload]
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc  # type: ignore[no-any-return]


def bootstrap(
    *args: str, check: bool = True, env: dict[str, str] | None = None, **kw: object
) -> subprocess.CompletedProcess[str]:
    """Run the CLI as a user would: a fresh interpreter, `python -m bootstrap`."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return run([sys.executable, "-m", "bootstrap", *args], check=check, env=full_env, **kw)


@dataclass(frozen=True)
class Build:
    suite: str
    out: Path
    tag: str

    @property
    def image(self) -> Path:
        return self.out / "image.tar"

    @property
    def rootfs(self) -> Path:
        return self.out / "rootfs.tar.gz"


@pytest.fixture(scope="session")
def slim_build(tmp_path_factory: pytest.TempPathFactory, as_root: None) -> Callable[[str], Build]:
    """`slim_build(suite)`: debian-slim built once per session from the host's real mirror."""
    built: dict[str, Build] = {}

    def get(suite: str) -> Build:
        if suite not in built:
            out = tmp_path_factory.mktemp(f"slim-{suite}") / "out"
            bootstrap("debian-slim", "--suite", suite, "-o", str(out), "-q")
            built[suite] = Build(suite, out, f"debian:{suite}-slim")
        return built[suite]

    return get


@pytest.fixture(scope="session")
def runtime(as_root: None) -> Iterator[tuple[str, Path]]:
    """An interpreter and a copy of bootstrap that ordinary users made by the tests can run (tests/e2e/users.py)."""
    from tests.e2e.users import readable_runtime

    with readable_runtime() as found:
        yield found


@pytest.fixture(scope="session")
def docker() -> Iterator[Callable[..., subprocess.CompletedProcess[str]]]:
    """`docker(*args)`: the real Docker CLI; images loaded through it are removed at the end."""
    need_tool("docker")
    if run(["docker", "info"], check=False).returncode != 0 and os.geteuid() == 0:
        run([str(ROOT / "scripts/ensure-docker")], check=False)
    need(run(["docker", "info"], check=False).returncode == 0, "no Docker Engine answers (scripts/ensure-docker)")
    created: list[str] = []

    def call(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run(["docker", *args], check=check)

    call.created = created  # type: ignore[attr-defined]
    yield call
    for ref in created:
        run(["docker", "rmi", "-f", ref], check=False)


def ensure_binfmt(cpu: str) -> None:
    """Register the qemu-user handlers when this test needs them (as `make test` does), instead of relying on
    whatever the machine had registered."""
    entry = Path(f"/proc/sys/fs/binfmt_misc/qemu-{cpu}")
    if not entry.exists() and os.geteuid() == 0:
        run([str(ROOT / "scripts/ensure-binfmt")], check=False)
    need(entry.exists(), f"no qemu-{cpu} binfmt_misc handler (apt-get install qemu-user-static binfmt-support)")


def image_index(image: Path) -> dict[str, Any]:
    """The index over the platforms of a multi-platform OCI image archive (the image index.json names)."""
    import tarfile

    with tarfile.open(image) as tar:

        def read(name: str) -> dict[str, Any]:
            f = tar.extractfile(name)
            assert f is not None
            return json.loads(f.read())  # type: ignore[no-any-return]

        (entry,) = read("index.json")["manifests"]
        assert entry["mediaType"] == "application/vnd.oci.image.index.v1+json", "one platform: no image index"
        return read("blobs/sha256/" + entry["digest"].removeprefix("sha256:"))


def unique_tag(prefix: str) -> str:
    return f"bootstrap-e2e/{prefix}:{uuid.uuid4().hex[:10]}"


@dataclass
class Mirrored:
    """A fixture archive on 127.0.0.1 holding the real trixie debian-slim packages, signed with a test key."""

    repo: "Repo"
    url: str
    cache: Path

    def args(self) -> list[str]:
        return [
            "--mirror",
            self.url,
            "--security-mirror",
            self.url,
            "--keyring",
            str(self.repo.keyring),
            "--cache-dir",
            str(self.cache),
        ]

    def build(self, out: Path, *extra: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return bootstrap("debian-slim", "-o", str(out), "-q", *self.args(), *extra, check=check)


def sections(text: str) -> dict[str, list[str]]:
    """The output of a check script split at its `== name` lines: name -> the lines below it."""
    out: dict[str, list[str]] = {}
    current = ""
    for line in text.splitlines():
        if line.startswith("== "):
            current = line[3:]
            out[current] = []
        elif current:
            out[current].append(line)
    return out
