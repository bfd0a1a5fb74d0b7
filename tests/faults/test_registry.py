"""Registry faults: `bootstrap push` of the reference image through the fault proxy in front of a real
docker-registry (anonymous, or behind the proxy's own Bearer token gate).

A push that survives must leave the registry holding exactly the image (manifest and every blob, read back
directly and hashed); one that fails must say so in one line naming the registry, the blob and the cause, and
leave the tag unpublished."""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from tests.e2e.conftest import need_tool
from tests.faults.conftest import Case, Reference, cli, env_for
from tests.faults.proxy import Fault, FaultProxy
from tests.registry.servers import Gate, Registry

pytestmark = [pytest.mark.e2e, pytest.mark.faults]

USER, PASSWORD = "pusher", "s3cret-push"
UPLOADS = r"/blobs/uploads/"
BLOB = r"/blobs/sha256:[0-9a-f]{64}$"
CHUNK = "8M"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@dataclass(frozen=True)
class Scenario:
    what: str
    expected: str
    faults: Callable[[int], list[Fault]]
    """Given the layer's size, the faults to set."""
    gate: bool = False
    words: tuple[str, ...] = ()
    """Empty: the push must succeed; else it must fail with these words in its error line."""


SCENARIOS = {
    "put-5xx": Scenario(
        "500 on the PUT that completes a blob upload, once",
        "retried in a new upload session; the push succeeds; the registry holds exactly the image",
        lambda size: [Fault("status", UPLOADS, methods=("PUT",), status=500)],
    ),
    "put-5xx-always": Scenario(
        "500 on every PUT that completes a blob upload",
        "fails: one line naming the blob, the registry and '500'; the tag is not published",
        lambda size: [Fault("status", UPLOADS, methods=("PUT",), status=500, times=None)],
        words=("upload of blob sha256:", "500"),
    ),
    "patch-cut": Scenario(
        "connection reset after 1 MiB of the second chunk (PATCH) of the layer upload, once",
        "resumed where the registry says the upload stands, in the same session; the registry holds the image",
        lambda size: [Fault("cut", UPLOADS, methods=("PATCH",), at=1 << 20, after=1)],
    ),
    "patch-cut-always": Scenario(
        "connection reset after 1 MiB of every chunk (PATCH)",
        "fails: one line naming the blob, the registry and the reset; the tag is not published",
        lambda size: [Fault("cut", UPLOADS, methods=("PATCH",), at=1 << 20, times=None)],
        words=("upload of blob sha256:", "connection"),
    ),
    "token-expiry": Scenario(
        "the Bearer token stops working in the middle of the layer upload (401 on the second PATCH)",
        "a new token is asked for and the request sent again; the push succeeds",
        lambda size: [Fault("expire", UPLOADS, methods=("PATCH",), after=1)],
        gate=True,
    ),
    "token-expiry-always": Scenario(
        "every Bearer token stops working as soon as it is used for a chunk (401 on every PATCH)",
        "fails: one line naming the registry and the refusal; the tag is not published",
        lambda size: [Fault("expire", UPLOADS, methods=("PATCH",), times=None)],
        gate=True,
        words=("refused", "Bearer tokens"),
    ),
    "head-lies": Scenario(
        "HEAD says every blob is there (200; the layer's with its right size) though the repository is empty",
        "the manifest is refused for missing blobs; they are uploaded anyway; the push succeeds",
        lambda size: [
            Fault("lie", BLOB, methods=("HEAD",), status=200, headers={"Content-Length": str(size)}, times=None)
        ],
    ),
    "head-wrong-size": Scenario(
        "HEAD says every blob is there, with a size of 0",
        "not believed: every blob is uploaded; the push succeeds",
        lambda size: [Fault("lie", BLOB, methods=("HEAD",), status=200, headers={"Content-Length": "0"}, times=None)],
    ),
}


@dataclass
class Pushed:
    proxy: FaultProxy
    repository: str
    proc: object
    took: float
    stderr: str = ""
    stdout: str = ""
    code: int = 0
    uploads: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    reg = Registry(need_tool("docker-registry"), tmp_path_factory.mktemp("faults-registry"))
    yield reg
    reg.stop()


def _layer_size(image: Path) -> int:
    import tarfile

    with tarfile.open(image) as tar:
        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
        digest = index["manifests"][0]["digest"].split(":")[1]
        manifest = json.load(tar.extractfile(f"blobs/sha256/{digest}"))  # type: ignore[arg-type]
    return int(manifest["layers"][0]["size"])


@pytest.fixture(scope="module")
def pushes(
    registry: Registry, reference: Reference, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Pushed]]:
    """Every scenario, each through its own proxy into its own repository, all at once."""
    size = _layer_size(reference.out / "image.tar")
    proxies = []

    def one(name: str) -> Pushed:
        scenario = SCENARIOS[name]
        proxy = FaultProxy(f"http://{registry.host}")
        proxies.append(proxy)
        if scenario.gate:
            proxy.gate = Gate("bearer", USER, PASSWORD)
        for fault in scenario.faults(size):
            proxy.add(fault)
        repository = f"faults/{name}-{uuid.uuid4().hex[:8]}"
        work = tmp_path_factory.mktemp(f"push-{name}")
        (work / "docker").mkdir()
        env = env_for(work, DOCKER_CONFIG=str(work / "docker"))
        started = time.monotonic()
        creds = ["--creds", f"{USER}:{PASSWORD}"] if scenario.gate else []
        ref = f"{proxy.host}/{repository}:latest"
        proc = cli("push", str(reference.out), ref, "--chunk-size", CHUNK, *creds, env=env)
        return Pushed(proxy, repository, proc, time.monotonic() - started, proc.stderr, proc.stdout, proc.returncode)

    with ThreadPoolExecutor(len(SCENARIOS)) as pool:
        done = dict(zip(SCENARIOS, pool.map(one, SCENARIOS), strict=True))
    yield done
    for proxy in proxies:
        proxy.stop()


def _held(registry: Registry, repository: str, digest: str) -> int:
    """Read the image back from the registry itself and check every byte; returns how many blobs it holds."""
    base = f"http://{registry.host}/v2/{repository}"
    resp = requests.get(f"{base}/manifests/latest", headers={"Accept": OCI_MANIFEST}, timeout=30)
    assert resp.status_code == 200, f"the tag is not there ({resp.status_code})"
    assert "sha256:" + hashlib.sha256(resp.content).hexdigest() == digest, "the manifest differs"
    manifest = resp.json()
    blobs = [manifest["config"], *manifest["layers"]]
    for blob in blobs:
        data = requests.get(f"{base}/blobs/{blob['digest']}", timeout=60).content
        assert "sha256:" + hashlib.sha256(data).hexdigest() == blob["digest"], f"blob {blob['digest']} differs"
    return len(blobs)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_push(name: str, case: Case, pushes: dict[str, Pushed], registry: Registry, reference: Reference) -> None:
    scenario = SCENARIOS[name]
    case.describe("registry", scenario.what, scenario.expected)
    pushed = pushes[name]
    fired = pushed.proxy.count()
    assert fired > 0, "the fault never fired"
    if not scenario.words:
        assert pushed.code == 0, pushed.stderr
        assert pushed.stdout.strip().endswith(f"@{reference.digest}"), pushed.stdout
        blobs = _held(registry, pushed.repository, reference.digest)
        sessions = sum(1 for s in pushed.proxy.seen if s.method == "POST" and s.path.endswith(UPLOADS))
        detail = f"{fired} faulty answers; {sessions} upload sessions for {blobs} image blobs and the records"
        if name == "patch-cut":
            assert "in a new session" not in pushed.stderr, "the cut upload was started again instead of resumed"
            resumed = re.search(r"resuming at byte (\d+)", pushed.stderr)
            assert resumed and int(resumed.group(1)) > 0, pushed.stderr
            detail += f"; resumed at byte {resumed.group(1)} in the same session"
        if name == "token-expiry":
            tokens = sum(1 for s in pushed.proxy.seen if s.path.startswith("/token"))
            assert tokens >= 2, "no new token was asked for"
            detail += f"; {tokens} tokens asked for"
        if name == "head-lies":
            assert "uploading its blobs again" in pushed.stderr
        case.saw(f"pushed in {pushed.took:.0f} s; {detail}; the registry holds every byte")
        return
    errors = [line for line in pushed.stderr.splitlines() if line.startswith("error: ")]
    assert pushed.code == 1, pushed.stderr
    assert len(errors) == 1 and all(w in errors[0] for w in scenario.words), pushed.stderr
    assert "Traceback" not in pushed.stderr
    assert any(line.startswith("hint: ") for line in pushed.stderr.splitlines())
    tag = requests.get(f"http://{registry.host}/v2/{pushed.repository}/manifests/latest", timeout=30)
    assert tag.status_code == 404, "the tag was published"
    case.saw(f"after {pushed.took:.0f} s: {errors[0].removeprefix('error: ')}")
