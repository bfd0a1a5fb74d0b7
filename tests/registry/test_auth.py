"""TLS and authentication against real registries: htpasswd Basic over TLS, and Bearer tokens."""

import base64
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from bootstrap.registry import Options, RegistryError, push
from tests.registry.conftest import PASSWORD, USER, Layout, Skopeo, TLSRegistry, sha256
from tests.registry.servers import Proxy, Registry, TokenServer

pytestmark = pytest.mark.e2e
CREDS = f"{USER}:{PASSWORD}"


def _one_line(err: RegistryError) -> None:
    assert "\n" not in err.message and "\n" not in err.hint and err.hint


# --- TLS + Basic ---------------------------------------------------------------------------------------------


def test_tls_with_ca_cert_and_basic_auth(
    tls_registry: TLSRegistry, amd64: Layout, repo: str, skopeo: Skopeo, opts: Callable[..., Options], tmp_path: Path
) -> None:
    ref = f"{tls_registry.host}/{repo}:1"
    assert push(amd64.tar, ref, opts(creds=CREDS, ca_cert=tls_registry.ca.ca_cert)) == amd64.digest
    flags = ("--cert-dir", str(tls_registry.cert_dir), "--creds", CREDS)
    assert sha256(skopeo.raw(ref, *flags)) == amd64.digest
    skopeo.copy(ref, tmp_path / "copy", "--src-cert-dir", str(tls_registry.cert_dir), "--src-creds", CREDS)


def test_tls_ca_from_certs_d(tls_registry: TLSRegistry, amd64: Layout, repo: str, tmp_path: Path) -> None:
    certs = tmp_path / "certs.d"
    (certs / tls_registry.host).mkdir(parents=True)
    (certs / tls_registry.host / "ca.crt").write_bytes(tls_registry.ca.ca_cert.read_bytes())
    options = Options(creds=CREDS, certs_dir=certs, retries=1, backoff=0.01)
    assert push(amd64.tar, f"{tls_registry.host}/{repo}:1", options) == amd64.digest


def test_untrusted_certificate_names_the_fixes(
    tls_registry: TLSRegistry, amd64: Layout, repo: str, opts: Callable[..., Options]
) -> None:
    with pytest.raises(RegistryError) as info:
        push(amd64.tar, f"{tls_registry.host}/{repo}:1", opts(creds=CREDS))
    err = info.value
    _one_line(err)
    assert "TLS certificate of" in err.message and "not trusted" in err.message
    assert "--ca-cert" in err.hint and f"{tls_registry.host}/ca.crt" in err.hint


def test_insecure_skips_verification(
    tls_registry: TLSRegistry, amd64: Layout, repo: str, opts: Callable[..., Options]
) -> None:
    assert push(amd64.tar, f"{tls_registry.host}/{repo}:1", opts(creds=CREDS, insecure=True)) == amd64.digest


def test_wrong_password_is_one_line_about_the_credentials(
    tls_registry: TLSRegistry, amd64: Layout, repo: str, opts: Callable[..., Options]
) -> None:
    ca = tls_registry.ca.ca_cert
    with pytest.raises(RegistryError) as info:
        push(amd64.tar, f"{tls_registry.host}/{repo}:1", opts(creds=f"{USER}:wrong", ca_cert=ca))
    _one_line(info.value)
    assert f"rejected the credentials of '{USER}' (from --creds)" in info.value.message
    assert "docker login" in info.value.hint and "--creds" in info.value.hint
    with pytest.raises(RegistryError, match="requires authentication") as info:
        push(amd64.tar, f"{tls_registry.host}/{repo}:1", opts(ca_cert=ca))
    _one_line(info.value)


def test_credentials_from_the_environment(
    tls_registry: TLSRegistry, amd64: Layout, repo: str, opts: Callable[..., Options], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BOOTSTRAP_REGISTRY_USER", USER)
    monkeypatch.setenv("BOOTSTRAP_REGISTRY_PASSWORD", PASSWORD)
    assert push(amd64.tar, f"{tls_registry.host}/{repo}:1", opts(ca_cert=tls_registry.ca.ca_cert)) == amd64.digest


def test_credentials_from_docker_config_auths(
    tls_registry: TLSRegistry, amd64: Layout, repo: str, opts: Callable[..., Options]
) -> None:
    config = Path(os.environ["DOCKER_CONFIG"]) / "config.json"
    auth = base64.b64encode(CREDS.encode()).decode()
    config.write_text(json.dumps({"auths": {f"https://{tls_registry.host}": {"auth": auth}}}))
    assert push(amd64.tar, f"{tls_registry.host}/{repo}:1", opts(ca_cert=tls_registry.ca.ca_cert)) == amd64.digest


@pytest.mark.parametrize("key", ["credHelpers", "credsStore"])
def test_credentials_from_a_credential_helper(
    key: str,
    tls_registry: TLSRegistry,
    amd64: Layout,
    repo: str,
    opts: Callable[..., Options],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    asked = tmp_path / "asked"
    helper = bin_dir / "docker-credential-bootstraptest"
    answer = json.dumps({"ServerURL": tls_registry.host, "Username": USER, "Secret": PASSWORD})
    helper.write_text(f"#!/bin/sh\n[ \"$1\" = get ] || exit 2\ncat > {asked}\necho '{answer}'\n")
    helper.chmod(helper.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    value: object = {tls_registry.host: "bootstraptest"} if key == "credHelpers" else "bootstraptest"
    (Path(os.environ["DOCKER_CONFIG"]) / "config.json").write_text(json.dumps({key: value}))
    assert push(amd64.tar, f"{tls_registry.host}/{repo}:1", opts(ca_cert=tls_registry.ca.ca_cert)) == amd64.digest
    assert asked.read_text() == tls_registry.host


# --- Bearer tokens -------------------------------------------------------------------------------------------


def test_token_auth_push(
    token_registry: Registry, token: TokenServer, amd64: Layout, repo: str, skopeo: Skopeo, opts: Callable[..., Options]
) -> None:
    ref = f"{token_registry.host}/{repo}:1"
    assert push(amd64.tar, ref, opts(creds=CREDS)) == amd64.digest
    assert (USER, [f"repository:{repo}:pull,push"]) in token.requests
    assert sha256(skopeo.raw(ref, "--tls-verify=false", "--creds", CREDS)) == amd64.digest


def test_token_in_access_token_field(
    token_registry: Registry, token: TokenServer, amd64: Layout, repo: str, opts: Callable[..., Options]
) -> None:
    token.field = "access_token"
    assert push(amd64.tar, f"{token_registry.host}/{repo}:1", opts(creds=CREDS)) == amd64.digest


def test_token_scope_covers_mount_sources(
    token_proxy: Proxy, token: TokenServer, amd64: Layout, repo: str, opts: Callable[..., Options]
) -> None:
    push(amd64.tar, f"{token_proxy.host}/{repo}-src:1", opts(creds=CREDS))
    token.requests.clear()
    mark = len(token_proxy.seen)
    push(amd64.tar, f"{token_proxy.host}/{repo}:1", opts(creds=CREDS, mount_from=(f"{repo}-src",)))
    assert token.requests == [(USER, [f"repository:{repo}:pull,push", f"repository:{repo}-src:pull"])]
    mounts = [s for s in token_proxy.since(mark) if "mount" in s.query]
    assert [s.status for s in mounts] == [201, 201]


def test_token_wrong_password(
    token_registry: Registry, token: TokenServer, amd64: Layout, repo: str, opts: Callable[..., Options]
) -> None:
    with pytest.raises(RegistryError) as info:
        push(amd64.tar, f"{token_registry.host}/{repo}:1", opts(creds=f"{USER}:nope"))
    _one_line(info.value)
    assert "token server" in info.value.message and f"credentials of '{USER}'" in info.value.message


def test_token_without_push_access_is_denied(
    token_registry: Registry, token: TokenServer, amd64: Layout, repo: str, opts: Callable[..., Options]
) -> None:
    with pytest.raises(RegistryError) as info:
        push(amd64.tar, f"{token_registry.host}/{repo}:1", opts(creds="reader:reader-pass"))
    _one_line(info.value)
    assert "denied" in info.value.message and "'reader'" in info.value.message
    with pytest.raises(RegistryError, match="requires authentication") as info:
        push(amd64.tar, f"{token_registry.host}/{repo}:1", opts())
    assert "docker login" in info.value.hint
