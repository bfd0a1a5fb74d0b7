"""Fixtures for the registry tests: real docker-registry servers (plain, TLS + Basic, token), a token server,
a recording proxy, image layouts built from real layers, and skopeo as the independent client.

With CI=true a missing tool fails the test instead of skipping it (tests/e2e/conftest.py `need`).
"""

import hashlib
import importlib.util
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bootstrap.image.layer import pack
from bootstrap.image.oci import Image, ImageSettings, make_image, write_archive
from bootstrap.registry import Options
from tests.e2e.conftest import need, need_tool
from tests.registry.servers import CA, Proxy, Registry, TokenServer, make_ca

EPOCH = 1_700_000_000
BIG = 3 << 20
USER, PASSWORD = "alice", "s3cret-pass"


@pytest.fixture(autouse=True)
def _isolated_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads the host's ~/.docker/config.json or registry credentials from the environment."""
    empty = tmp_path / "docker-config"
    empty.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(empty))
    monkeypatch.delenv("BOOTSTRAP_REGISTRY_USER", raising=False)
    monkeypatch.delenv("BOOTSTRAP_REGISTRY_PASSWORD", raising=False)


@pytest.fixture
def opts(tmp_path: Path) -> Callable[..., Options]:
    """Options for tests: quick retries, and no certificates from the host's /etc/docker/certs.d."""
    certs = tmp_path / "certs.d"
    certs.mkdir(exist_ok=True)

    def make(**kw: Any) -> Options:
        return Options(**{"retries": 2, "backoff": 0.02, "certs_dir": certs, **kw})

    return make


@pytest.fixture
def repo() -> str:
    """A fresh repository name: nothing is in it yet."""
    return f"test/r{uuid.uuid4().hex[:12]}"


# --- tools ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def registry_exe() -> str:
    return need_tool("docker-registry")


@pytest.fixture(scope="session")
def openssl() -> str:
    return need_tool("openssl")


@pytest.fixture(scope="session")
def htpasswd() -> str:
    return need_tool("htpasswd")


@pytest.fixture(scope="session")
def cryptography() -> None:
    need(
        importlib.util.find_spec("cryptography") is not None, "cryptography is not installed (pip install -e '.[test]')"
    )


@dataclass(frozen=True)
class Skopeo:
    exe: str

    def run(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        proc = subprocess.run([self.exe, "--insecure-policy", *args], capture_output=True, timeout=120)
        if proc.returncode != 0:
            raise AssertionError(f"skopeo {' '.join(args)} exited {proc.returncode}: {proc.stderr.decode()}")
        return proc

    def raw(self, ref: str, *flags: str) -> bytes:
        """`skopeo inspect --raw`: the manifest bytes exactly as the registry serves them."""
        return self.run("inspect", "--raw", *flags, f"docker://{ref}").stdout

    def copy(self, ref: str, dest: Path, *flags: str) -> None:
        """`skopeo copy` to a dir: fetches every blob and checks its digest."""
        self.run("copy", *flags, f"docker://{ref}", f"dir:{dest}")


@pytest.fixture(scope="session")
def skopeo() -> Skopeo:
    return Skopeo(need_tool("skopeo"))


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# --- images --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """An image.tar written by bootstrap.image.oci from real layers."""

    tar: Path
    images: list[Image]
    index_digest: str

    @property
    def digest(self) -> str:
        """What a push returns: the manifest digest for one platform, the index digest for several."""
        return self.images[0].manifest.digest if len(self.images) == 1 else self.index_digest


def build_layout(directory: Path, archs: list[str], big: int = BIG) -> Layout:
    images = []
    for arch in archs:
        root = directory / f"root-{arch}"
        (root / "etc").mkdir(parents=True)
        (root / "etc" / "os-release").write_text(f'ID=bootstrap-test\nARCH="{arch}"\n')
        (root / "usr" / "share").mkdir(parents=True)
        (root / "usr" / "share" / "noise").write_bytes(os.urandom(big))
        layer = pack(root, EPOCH, directory / f"layer-{arch}.tar.gz")
        images.append(make_image(layer, ImageSettings(arch=arch, epoch=EPOCH, cmd=("sh",))))
    index, _ = write_archive(directory / "image.tar", images, ["test/image:1"], EPOCH)
    return Layout(directory / "image.tar", images, index.digest)


@pytest.fixture(scope="session")
def amd64(tmp_path_factory: pytest.TempPathFactory) -> Layout:
    return build_layout(tmp_path_factory.mktemp("amd64"), ["amd64"])


@pytest.fixture(scope="session")
def arm64(tmp_path_factory: pytest.TempPathFactory) -> Layout:
    return build_layout(tmp_path_factory.mktemp("arm64"), ["arm64"])


@pytest.fixture(scope="session")
def multi(tmp_path_factory: pytest.TempPathFactory) -> Layout:
    return build_layout(tmp_path_factory.mktemp("multi"), ["amd64", "arm64"])


# --- servers -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def plain_registry(registry_exe: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """Plain HTTP, anonymous."""
    reg = Registry(registry_exe, tmp_path_factory.mktemp("plain-registry"))
    yield reg
    reg.stop()


@dataclass(frozen=True)
class TLSRegistry:
    registry: Registry
    ca: CA
    cert_dir: Path
    """A directory holding only ca.crt: for skopeo --cert-dir and as a certs.d entry."""

    @property
    def host(self) -> str:
        return self.registry.host


@pytest.fixture(scope="session")
def tls_registry(
    registry_exe: str, openssl: str, htpasswd: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TLSRegistry]:
    """TLS with a CA made here (subjectAltName IP:127.0.0.1) and htpasswd (bcrypt) Basic auth."""
    work = tmp_path_factory.mktemp("tls-registry")
    ca = make_ca(openssl, work / "pki")
    line = subprocess.run([htpasswd, "-Bbn", USER, PASSWORD], check=True, capture_output=True, text=True).stdout
    (work / "htpasswd").write_text(line.strip() + "\n")
    cert_dir = work / "cert-dir"
    cert_dir.mkdir()
    (cert_dir / "ca.crt").write_bytes(ca.ca_cert.read_bytes())
    reg = Registry(registry_exe, work / "registry", tls=ca, htpasswd=work / "htpasswd")
    yield TLSRegistry(reg, ca, cert_dir)
    reg.stop()


@pytest.fixture(scope="session")
def token_server(openssl: str, cryptography: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenServer]:
    users = {USER: (PASSWORD, {"pull", "push"}), "reader": ("reader-pass", {"pull"})}
    server = TokenServer(openssl, tmp_path_factory.mktemp("token-server"), users)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def token_registry(
    registry_exe: str, token_server: TokenServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Registry]:
    """Plain HTTP, Bearer tokens from `token_server`."""
    reg = Registry(registry_exe, tmp_path_factory.mktemp("token-registry"), token=token_server.auth())
    yield reg
    reg.stop()


@pytest.fixture
def token(token_server: TokenServer) -> Iterator[TokenServer]:
    """The token server with its request log cleared and its default answer field."""
    token_server.requests.clear()
    token_server.field = "token"
    yield token_server
    token_server.field = "token"


@pytest.fixture
def proxy(plain_registry: Registry) -> Iterator[Proxy]:
    """A recording proxy in front of the plain registry."""
    p = Proxy(plain_registry.host)
    yield p
    p.stop()


@pytest.fixture
def token_proxy(token_registry: Registry) -> Iterator[Proxy]:
    p = Proxy(token_registry.host)
    yield p
    p.stop()
