"""A hostile registry: answers without end (bodies, headers) for manifests, tokens, referrers and records; a
token realm on another host; a lock attached for another architecture, recipe or suite. And passwords given
on standard input instead of the command line.

The CLI runs in a subprocess against real servers on loopback addresses (a Python server that floods, a real
docker-registry with htpasswd or token auth, a token server on 127.0.0.2); its peak memory is measured."""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bootstrap.records import lock as lock_mod
from bootstrap.registry.artifacts import LOCK_TYPE
from tests.e2e.conftest import need_tool
from tests.faults.conftest import Case, env_for
from tests.faults.hostile_registry import OCI_MANIFEST, Flood, HostileRegistry
from tests.fixtures.gpg import GpgKey
from tests.fixtures.peak import measured, peak
from tests.fixtures.repo import Repo
from tests.registry.conftest import build_layout
from tests.registry.outputs import build_output, sample_lock
from tests.registry.servers import Registry, TokenServer

pytestmark = [pytest.mark.e2e, pytest.mark.faults]

MiB = 1 << 20
MAX_RSS = 150 * MiB
"""The CLI's peak memory while a registry floods it (it runs in about 40 MiB; a flood read whole is GBs)."""
ADDRESS_SPACE = 3 << 30
"""A cap on the CLI's address space, so that an unbounded read fails fast instead of swapping the machine."""
USER, PASSWORD = "alice", "s3cret-pass"


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str
    max_rss: int
    """Bytes."""

    @property
    def errors(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("error: ")]


def run(*args: str, env: dict[str, str], stdin: str = "", timeout: float = 120) -> Ran:
    """`python -m bootstrap ARGS` with its peak memory (measured through a fresh launcher: tests/fixtures/peak)."""
    scratch = Path(env["TMPDIR"])
    out, err = scratch.parent / f"out-{uuid.uuid4().hex}", scratch.parent / f"err-{uuid.uuid4().hex}"
    peak_file = scratch.parent / f"peak-{uuid.uuid4().hex}"

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))

    with open(out, "w") as o, open(err, "w") as e:
        proc = subprocess.Popen(
            measured([sys.executable, "-m", "bootstrap", *args], peak_file), stdin=subprocess.PIPE, stdout=o,
            stderr=e, env=env, text=True, preexec_fn=cap, start_new_session=True,
        )  # fmt: skip
        watchdog = threading.Timer(timeout, lambda: os.killpg(proc.pid, signal.SIGKILL))
        watchdog.start()
        try:
            assert proc.stdin is not None
            try:
                proc.stdin.write(stdin)
                proc.stdin.close()
            except BrokenPipeError:
                pass
            proc.wait()
        finally:
            watchdog.cancel()
    return Ran(proc.returncode, out.read_text(), err.read_text(), peak(peak_file))


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A scratch TMPDIR, an empty Docker config, no registry credentials from the environment."""
    (tmp_path / "scratch").mkdir()
    (tmp_path / "docker-config").mkdir()
    base = env_for(tmp_path / "scratch", DOCKER_CONFIG=str(tmp_path / "docker-config"))
    return {k: v for k, v in base.items() if not k.startswith("BOOTSTRAP_REGISTRY_")}


# --- 1. answers without end --------------------------------------------------------------------------------

REPO = "test/hostile"


def _lock_artifact(reg: HostileRegistry, subject: dict[str, object]) -> dict[str, object]:
    """A lock attached to `subject` (artifact manifest, listed by the referrers API); the lock's descriptor."""
    lock = reg.blob(REPO, sample_lock().to_json())
    empty = reg.blob(REPO, b"{}")
    artifact = reg.manifest(
        REPO,
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": LOCK_TYPE,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", **empty},
            "layers": [{"mediaType": LOCK_TYPE, **lock}],
            "subject": subject,
        },
    )
    reg.referrers(REPO, str(subject["digest"]), [{**artifact, "artifactType": LOCK_TYPE}])
    return lock


def _index(reg: HostileRegistry) -> list[str]:
    return ["index", f"{reg.host}/{REPO}:multi", f"{reg.host}/{REPO}:src"]


def _check(reg: HostileRegistry) -> list[str]:
    return ["check", "debian-slim", "--against", f"{reg.host}/{REPO}:1", "--arch", "amd64"]


@dataclass(frozen=True)
class Flooded:
    what: str
    setup: Callable[[HostileRegistry], tuple[list[str], str]]
    """Sets the registry up; gives the command and the path flooded."""
    words: tuple[str, ...]


def _manifest(kind: str) -> Callable[[HostileRegistry], tuple[list[str], str]]:
    def setup(reg: HostileRegistry) -> tuple[list[str], str]:
        reg.floods[f"/v2/{REPO}/manifests/src"] = Flood(kind, headers={"Content-Type": OCI_MANIFEST})
        return _index(reg), f"/v2/{REPO}/manifests/src"

    return setup


def _token(reg: HostileRegistry) -> tuple[list[str], str]:
    challenge = f'Bearer realm="http://{reg.host}/token",service="hostile"'
    reg.routes["/v2/"] = (401, {"WWW-Authenticate": challenge}, b"{}")
    reg.floods["/token"] = Flood("body", headers={"Content-Type": "application/json"})
    return _index(reg), "/token"


def _referrers(reg: HostileRegistry) -> tuple[list[str], str]:
    image = reg.image(REPO, "1")
    path = f"/v2/{REPO}/referrers/{image['digest']}"
    reg.floods[path] = Flood("body", headers={"Content-Type": "application/vnd.oci.image.index.v1+json"})
    return _check(reg), path


def _record(reg: HostileRegistry) -> tuple[list[str], str]:
    lock = _lock_artifact(reg, reg.image(REPO, "1"))
    path = f"/v2/{REPO}/blobs/{lock['digest']}"
    reg.floods[path] = Flood("body")
    return _check(reg), path


def _header_line(reg: HostileRegistry) -> tuple[list[str], str]:
    reg.floods["/v2/"] = Flood("header-line")
    return _index(reg), "/v2/"


def _headers(reg: HostileRegistry) -> tuple[list[str], str]:
    reg.floods[f"/v2/{REPO}/manifests/src"] = Flood("headers")
    return _index(reg), f"/v2/{REPO}/manifests/src"


FLOODS = {
    "manifest-endless": Flooded(
        "a manifest (GET by `index`) answered with a body without end", _manifest("body"), ("larger than 4 MiB",)
    ),
    "manifest-3gib": Flooded(
        "a manifest answered with Content-Length: 3 GiB (sent lazily)", _manifest("declared"), ("larger than 4 MiB",)
    ),
    "token-endless": Flooded(
        "the Bearer token realm answers with a body without end", _token, ("/token", "larger than 4 MiB")
    ),
    "referrers-endless": Flooded(
        "the referrers list (`check --against REF`) answered with a body without end",
        _referrers,
        ("referrers", "larger than 4 MiB"),
    ),
    "record-endless": Flooded(
        "the lock attached to the image (a record blob of 500-odd bytes) answered with a body without end",
        _record,
        ("/blobs/sha256:", "larger than"),
    ),
    "header-line-endless": Flooded(
        "`GET /v2/` answered with one header line without end", _header_line, ("header line", "64 KiB")
    ),
    "headers-endless": Flooded(
        "a manifest answered with header lines without end", _headers, ("more than 100 header lines",)
    ),
}


@pytest.fixture
def hostile() -> Iterator[HostileRegistry]:
    reg = HostileRegistry()
    yield reg
    reg.stop()


@pytest.mark.parametrize("name", FLOODS)
def test_answer_without_end(name: str, case: Case, hostile: HostileRegistry, env: dict[str, str]) -> None:
    flooded = FLOODS[name]
    case.describe(
        "registry",
        flooded.what,
        "fails: one line naming the registry, the request and what was too large; memory stays bounded "
        f"(< {MAX_RSS >> 20} MiB); not retried; nothing put, nothing left",
    )
    args, path = flooded.setup(hostile)
    ran = run(*args, env=env)
    assert ran.returncode == 1, ran.stderr
    assert len(ran.errors) == 1 and "Traceback" not in ran.stderr, ran.stderr
    error = ran.errors[0]
    assert hostile.host in error and path.split("/")[-1] in error, error
    assert all(w in error for w in flooded.words), error
    assert "hint: " in ran.stderr, ran.stderr
    assert ran.max_rss < MAX_RSS, f"peak memory {ran.max_rss >> 20} MiB"
    assert [p for m, p, _ in hostile.seen if p == path] == [path], "the flooded request was retried"
    assert not [m for m, _, _ in hostile.seen if m in ("PUT", "POST", "PATCH")], "something was written"
    assert list(Path(env["TMPDIR"]).iterdir()) == [], "the scratch directory is not empty"
    case.saw(f"{error.removeprefix('error: ')} (peak {ran.max_rss >> 20} MiB, {max(hostile.sent) >> 20} MiB sent)")


# --- 2. a token realm on another host ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def far_token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenServer]:
    """A token server on 127.0.0.2 (another loopback host)."""
    pytest.importorskip("cryptography")
    server = TokenServer(
        need_tool("openssl"), tmp_path_factory.mktemp("far-token"), {USER: (PASSWORD, {"pull", "push"})}, "127.0.0.2"
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def far_registry(far_token: TokenServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """docker-registry on 127.0.0.1 whose token realm is on 127.0.0.2."""
    reg = Registry(need_tool("docker-registry"), tmp_path_factory.mktemp("far-registry"), token=far_token.auth())
    yield reg
    reg.stop()


def test_token_realm_on_another_host(
    case: Case, far_token: TokenServer, far_registry: Registry, env: dict[str, str], tmp_path: Path
) -> None:
    realm = far_token.realm.split("/")[2]
    case.describe(
        "registry",
        f"the registry (127.0.0.1) names a token realm on another host ({realm}); push with --creds",
        "the realm is asked anonymously (never sees the Authorization header); fails: one line saying the "
        "credentials were withheld and naming --token-realm; with --token-realm it succeeds",
    )
    out = build_output(tmp_path / "build")
    ref = f"{far_registry.host}/test/far:1"
    far_token.authorizations.clear()
    refused = run("push", str(out.directory), ref, "--creds", f"{USER}:{PASSWORD}", env=env)
    assert refused.returncode == 1, refused.stderr
    assert far_token.authorizations and set(far_token.authorizations) == {None}, far_token.authorizations
    assert len(refused.errors) == 1, refused.stderr
    error = refused.errors[0]
    assert "withheld" in error and realm in error, refused.stderr
    assert f"--token-realm {realm}" in refused.stderr and "BOOTSTRAP_REGISTRY_TOKEN_REALMS" in refused.stderr
    far_token.authorizations.clear()
    allowed = run("push", str(out.directory), ref, "--creds", f"{USER}:{PASSWORD}", "--token-realm", realm, env=env)
    assert allowed.returncode == 0, allowed.stderr
    assert any(a and a.startswith("Basic ") for a in far_token.authorizations)
    case.saw(error.removeprefix("error: "))


# --- 3. a lock for another request; passwords on standard input ------------------------------------------------


@pytest.fixture(scope="module")
def basic_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """docker-registry on 127.0.0.1 with htpasswd (Basic) auth."""
    work = tmp_path_factory.mktemp("basic-registry")
    line = subprocess.run(
        [need_tool("htpasswd"), "-Bbn", USER, PASSWORD], check=True, capture_output=True, text=True
    ).stdout
    (work / "htpasswd").write_text(line.strip() + "\n")
    reg = Registry(need_tool("docker-registry"), work / "registry", htpasswd=work / "htpasswd")
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def archive(
    tmp_path_factory: pytest.TempPathFactory, gpg_key: GpgKey, serve_session: Callable[[Path], str]
) -> list[str]:
    """A signed fixture archive for debian-slim (codename `fixture`), served on 127.0.0.1: its source options."""
    repo = Repo(tmp_path_factory.mktemp("hostile-archive") / "repo", gpg_key)
    repo.debian_dists()
    packages = [("base", "1.0", {"priority": "required", "depends": "libbase (>= 2)"}), ("libbase", "2.0", {})]
    for name, version, fields in [*packages, ("apt", "3.0", {"depends": "libbase"})]:
        repo.add_package("fixture", name, version, **fields)
    repo.publish()
    url = serve_session(repo.root)
    return ["--mirror", url, "--security-mirror", url, "--keyring", str(repo.keyring)]


@pytest.fixture(scope="module")
def fixture_lock(archive: list[str], tmp_path_factory: pytest.TempPathFactory) -> lock_mod.Lock:
    """The lock `bootstrap lock debian-slim --arch amd64` makes against the fixture archive today."""
    work = tmp_path_factory.mktemp("hostile-lock")
    made = subprocess.run(
        [sys.executable, "-m", "bootstrap", "lock", "debian-slim", "--arch", "amd64", "-o", str(work / "lock.json"),
         *archive, "--cache-dir", str(work / "cache")],
        capture_output=True, text=True, env=env_for(work),
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    return lock_mod.read(work / "lock.json")


MISMATCHES: dict[str, tuple[str, dict[str, Any], str]] = {
    "arch": ("a lock for arm64 (the same packages)", {"arch": "arm64"}, "architecture arm64, not amd64"),
    "recipe": ("a lock of another recipe (the same packages)", {"recipe": "debian-other"}, "recipe debian-other"),
    "suite": ("a lock for trixie", {"suite": "trixie", "codename": "trixie"}, "suite trixie"),
}


@pytest.mark.parametrize("name", MISMATCHES)
def test_lock_for_another_request(
    name: str,
    case: Case,
    basic_registry: Registry,
    archive: list[str],
    fixture_lock: lock_mod.Lock,
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    what, fields, words = MISMATCHES[name]
    case.describe(
        "registry",
        f"`check --against REF --suite fixture --arch amd64` where REF's attached lock is {what}",
        "rebuild due (exit 10) naming the mismatch, not 'up to date'; the password read with --password-stdin",
    )
    out = build_output(tmp_path / "build", dataclasses.replace(fixture_lock, **fields))
    ref = f"{basic_registry.host}/test/mismatch-{name}:fixture-slim"
    access = ["--creds", USER, "--password-stdin"]
    pushed = run("push", str(out.directory), ref, *access, env=env, stdin=PASSWORD + "\n")
    assert pushed.returncode == 0, pushed.stderr
    args = ["--suite", "fixture", "--arch", "amd64", *archive, "--cache-dir", str(tmp_path / "cache")]
    ran = run("check", "debian-slim", "--against", ref, *args, *access, env=env, stdin=PASSWORD + "\n")
    assert ran.returncode == 10, ran.stdout + ran.stderr
    assert not ran.stdout.startswith("up to date"), ran.stdout
    assert ran.stdout.startswith("rebuild due:") and words in ran.stdout, ran.stdout
    as_json = run("check", "debian-slim", "--against", ref, *args, *access, "--json", env=env, stdin=PASSWORD + "\n")
    assert as_json.returncode == 10 and json.loads(as_json.stdout)["mismatch"], as_json.stdout + as_json.stderr
    case.saw(ran.stdout.strip())


def test_lock_for_the_same_request_is_up_to_date(
    basic_registry: Registry, archive: list[str], fixture_lock: lock_mod.Lock, env: dict[str, str], tmp_path: Path
) -> None:
    """The control: the lock made for this very request is believed (and --password-stdin serves push, check
    and index alike; a wrong password on stdin is refused)."""
    out = build_output(tmp_path / "build", fixture_lock)
    ref = f"{basic_registry.host}/test/same:fixture-slim"
    access = ["--creds", USER, "--password-stdin"]
    assert run("push", str(out.directory), ref, *access, env=env, stdin=PASSWORD + "\n").returncode == 0
    args = ["--suite", "fixture", "--arch", "amd64", *archive, "--cache-dir", str(tmp_path / "cache")]
    ran = run("check", "debian-slim", "--against", ref, *args, *access, env=env, stdin=PASSWORD + "\n")
    assert ran.returncode == 0 and ran.stdout.startswith("up to date"), ran.stdout + ran.stderr
    # the kernel's name for the same architecture finds the same platform and the same lock
    kernels = [a if a != "amd64" else "x86_64" for a in args]
    ran = run("check", "debian-slim", "--against", ref, *kernels, *access, env=env, stdin=PASSWORD + "\n")
    assert ran.returncode == 0 and ran.stdout.startswith("up to date"), ran.stdout + ran.stderr
    index = run("index", f"{basic_registry.host}/test/same:multi", ref, *access, env=env, stdin=PASSWORD + "\n")
    assert index.returncode == 0, index.stderr
    wrong = run("index", f"{basic_registry.host}/test/same:multi", ref, *access, env=env, stdin="nope\n")
    assert wrong.returncode == 1 and "rejected the credentials of 'alice'" in wrong.stderr, wrong.stderr
    assert PASSWORD not in " ".join(access)


def test_large_blobs_are_not_read_into_memory(basic_registry: Registry, env: dict[str, str], tmp_path: Path) -> None:
    """The control of the body limit: a layer above it (6 MiB) is pushed, then found there by HEAD (whose
    Content-Length is the blob's size, not a body to read) on the second push."""
    layout = build_layout(tmp_path, ["amd64"], big=6 * MiB)
    ref = f"{basic_registry.host}/test/large:1"
    for _ in range(2):
        pushed = run("push", str(layout.tar), ref, "--creds", f"{USER}:{PASSWORD}", env=env)
        assert pushed.returncode == 0, pushed.stderr
        assert pushed.max_rss < MAX_RSS, f"peak memory {pushed.max_rss >> 20} MiB"


def test_which_realms_are_trusted() -> None:
    from bootstrap.registry.auth import realm_trusted

    assert realm_trusted("127.0.0.1:5000", "https://127.0.0.1:5001/token", [])  # the registry's own host
    assert not realm_trusted("127.0.0.1:5000", "https://127.0.0.2/token", [])
    assert realm_trusted("127.0.0.1:5000", "https://127.0.0.2/token", ["127.0.0.2"])
    assert realm_trusted("127.0.0.1:5000", "https://127.0.0.2/token", ["127.0.0.2:443"])
    assert not realm_trusted("127.0.0.1:5000", "https://127.0.0.2:8443/token", ["127.0.0.2:443"])
    assert not realm_trusted("127.0.0.1:5000", "https://127.0.0.1.example.invalid/token", [])
    # the registry's host to urllib.parse, another to urllib3, which connects: never trusted
    assert not realm_trusted("127.0.0.1:5000", "https://127.0.0.2\\@127.0.0.1:5000/token", [])
    assert not realm_trusted("127.0.0.1:5000", "https://127.0.0.2\t@127.0.0.1:5000/token", [])
