"""push() recovering from a misbehaving registry (the fault proxy of tests/faults in front of a real one): a chunk
cut off is resumed in the same session, an expired token is renewed, a HEAD that lies is found out."""

from collections.abc import Callable, Iterator

import pytest

from bootstrap.registry import Options, RegistryError, push
from tests.faults.proxy import Fault, FaultProxy
from tests.registry.conftest import Layout
from tests.registry.servers import Gate, Registry

pytestmark = pytest.mark.e2e
UPLOADS = r"/blobs/uploads/"


@pytest.fixture
def faulty(plain_registry: Registry) -> Iterator[FaultProxy]:
    proxy = FaultProxy(f"http://{plain_registry.host}")
    yield proxy
    proxy.stop()


def _sessions(proxy: FaultProxy) -> int:
    return sum(1 for s in proxy.seen if s.method == "POST" and s.path.endswith(UPLOADS))


def test_a_cut_chunk_is_resumed_in_the_same_session(
    faulty: FaultProxy, amd64: Layout, repo: str, opts: Callable[..., Options]
) -> None:
    faulty.add(Fault("cut", UPLOADS, methods=("PATCH",), at=100_000, after=1))
    assert push(amd64.tar, f"{faulty.host}/{repo}:1", opts(chunk_size=1 << 20)) == amd64.digest
    assert _sessions(faulty) == 2, "config and layer: no new session for the cut layer"
    patches = [s for s in faulty.seen if s.method == "PATCH"]
    status = [s for s in faulty.seen if s.method == "GET" and UPLOADS in s.path]
    assert len(status) == 1 and len(patches) == 4 + 1, "one status query, the cut chunk sent again"


def test_cut_chunks_share_the_attempts_of_the_upload(
    faulty: FaultProxy, amd64: Layout, repo: str, opts: Callable[..., Options]
) -> None:
    faulty.add(Fault("cut", UPLOADS, methods=("PATCH",), at=100_000, times=None))
    with pytest.raises(RegistryError, match="failed after 3 attempts"):
        push(amd64.tar, f"{faulty.host}/{repo}:1", opts(chunk_size=1 << 20, retries=2))
    assert faulty.count("cut") == 3, "resumed chunks and new sessions draw on one budget"


def test_an_expired_token_is_renewed(
    faulty: FaultProxy, amd64: Layout, repo: str, opts: Callable[..., Options]
) -> None:
    faulty.gate = Gate("bearer", "pusher", "pw")
    faulty.add(Fault("expire", UPLOADS, methods=("PATCH",), after=1))
    ref = f"{faulty.host}/{repo}:1"
    assert push(amd64.tar, ref, opts(chunk_size=1 << 20, creds="pusher:pw")) == amd64.digest
    assert sum(1 for s in faulty.seen if s.path.startswith("/token")) == 2


def test_a_lying_head_is_found_out_at_the_manifest(
    faulty: FaultProxy, amd64: Layout, repo: str, opts: Callable[..., Options]
) -> None:
    image = amd64.images[0]
    for digest, size in ((image.config.digest, len(image.config.data)), (image.layer.digest, image.layer.size)):
        lie = {"Content-Length": str(size)}
        faulty.add(Fault("lie", digest, methods=("HEAD",), status=200, headers=lie, times=None))
    assert push(amd64.tar, f"{faulty.host}/{repo}:1", opts()) == amd64.digest
    manifests = [s.status for s in faulty.seen if "/manifests/" in s.path]
    assert manifests == [400, 201], "refused for missing blobs, then accepted once they were uploaded"
    assert _sessions(faulty) == 2
