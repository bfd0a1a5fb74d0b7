"""Credentials go to the registry and nowhere else: not to the storage that blobs are redirected to, not over
plain HTTP after HTTPS. A recording proxy asks for Basic or Bearer credentials in front of a real registry and
sends blobs and uploads elsewhere, the way registries backed by object storage do."""

from collections.abc import Callable, Iterator

import pytest

from bootstrap.registry import Options, RegistryError, make_index, push
from tests.registry.conftest import PASSWORD, USER, Layout
from tests.registry.servers import CA, Gate, Proxy, Registry, make_ca

pytestmark = pytest.mark.e2e
CREDS = f"{USER}:{PASSWORD}"
SCHEMES = ["basic", "bearer"]


@pytest.fixture(scope="module")
def front_ca(openssl: str, tmp_path_factory: pytest.TempPathFactory) -> CA:
    return make_ca(openssl, tmp_path_factory.mktemp("front-ca"))


@pytest.fixture
def proxies(plain_registry: Registry) -> Iterator[Callable[..., Proxy]]:
    """`proxies(tls=None)`: a new recording proxy in front of the plain registry, stopped after the test."""
    started: list[Proxy] = []

    def start(tls: CA | None = None) -> Proxy:
        started.append(Proxy(plain_registry.host, tls))
        return started[-1]

    yield start
    for p in started:
        p.stop()


@pytest.mark.parametrize("scheme", SCHEMES)
def test_blob_storage_elsewhere_gets_no_credentials(
    proxies: Callable[..., Proxy], amd64: Layout, repo: str, opts: Callable[..., Options], scheme: str
) -> None:
    front, storage = proxies(), proxies()
    front.gate = Gate(scheme, USER, PASSWORD)
    front.redirect_blobs = front.upload_location = f"http://{storage.host}"
    assert push(amd64.tar, f"{front.host}/{repo}:1", opts(creds=CREDS)) == amd64.digest
    make_index(f"{front.host}/{repo}:all", [f"{front.host}/{repo}:1"], opts(creds=CREDS))
    kinds = {(r.method, "uploads" if "/uploads/" in r.path else r.path.rsplit("/", 2)[-2]) for r in storage.seen}
    assert {("HEAD", "blobs"), ("GET", "blobs"), ("PUT", "uploads")} <= kinds
    assert [r for r in storage.seen if r.authorization] == []
    assert any(r.authorization for r in front.seen)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_no_credentials_over_plain_http_after_https(
    proxies: Callable[..., Proxy], front_ca: CA, amd64: Layout, repo: str, opts: Callable[..., Options], scheme: str
) -> None:
    front = proxies(front_ca)
    front.gate = Gate(scheme, USER, PASSWORD)
    options = opts(creds=CREDS, ca_cert=front_ca.ca_cert)
    front.upload_location = f"http://{front.host}"  # uploads continue on the same host and port, in clear text
    with pytest.raises(RegistryError, match=f"only sent to https://{front.host}") as info:
        push(amd64.tar, f"{front.host}/{repo}:1", options)
    assert "\n" not in info.value.message and info.value.hint
    front.upload_location = None
    assert push(amd64.tar, f"{front.host}/{repo}:1", options) == amd64.digest
    front.redirect_blobs = f"http://{front.host}"  # blobs are read on the same host and port, in clear text
    with pytest.raises(RegistryError, match=f"only sent to https://{front.host}"):
        make_index(f"{front.host}/{repo}:all", [f"{front.host}/{repo}:1"], options)
    plain = [r for r in front.seen if not r.tls]
    assert {r.method for r in plain} == {"PUT", "GET"}
    assert [r for r in plain if r.authorization] == []
    assert any(r.authorization for r in front.seen if r.tls)


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("where", ["redirect", "upload"])
def test_an_address_two_parsers_read_as_two_hosts_gets_no_credentials(
    proxies: Callable[..., Proxy], amd64: Layout, repo: str, opts: Callable[..., Options], scheme: str, where: str
) -> None:
    """`http://STORAGE\\@FRONT/...` is the registry's own host to urllib.parse and the storage host to urllib3,
    which connects: a blob redirect or an upload Location written so is refused in one line, and the other
    host sees no request with the credentials."""
    front, storage = proxies(), proxies()
    front.gate = Gate(scheme, USER, PASSWORD)
    forged = f"http://{storage.host}\\@{front.host}"
    if where == "upload":
        front.upload_location = forged
        with pytest.raises(RegistryError, match="is not a valid URL") as info:
            push(amd64.tar, f"{front.host}/{repo}:1", opts(creds=CREDS))
    else:
        assert push(amd64.tar, f"{front.host}/{repo}:1", opts(creds=CREDS)) == amd64.digest
        front.redirect_blobs = forged
        with pytest.raises(RegistryError, match="is not a valid URL") as info:
            make_index(f"{front.host}/{repo}:all", [f"{front.host}/{repo}:1"], opts(creds=CREDS))
    assert "\n" not in info.value.message and "malformed address" in info.value.hint
    assert storage.seen == []
