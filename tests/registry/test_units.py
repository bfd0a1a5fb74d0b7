"""The registry client's pure parts, without a server: names, challenges, credentials, TLS files, layouts."""

import base64
import hashlib
import json
import os
import stat
import tarfile
from pathlib import Path

import pytest

from bootstrap.image.oci import MEDIA_CONFIG, MEDIA_INDEX, MEDIA_MANIFEST, canonical_json
from bootstrap.registry import Options, RegistryError, parse_reference, parse_size, push
from bootstrap.registry.auth import parse_challenge
from bootstrap.registry.client import Client, with_query
from bootstrap.registry.credentials import IDENTITY_USER, lookup
from bootstrap.registry.layout import Layout as OCILayout
from bootstrap.registry.reference import Reference, is_loopback
from bootstrap.registry.tls import for_host
from tests.fixtures.tars import extract
from tests.registry.conftest import Layout, build_layout


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Layout:
    return build_layout(tmp_path_factory.mktemp("small"), ["amd64", "arm64"], big=1000)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:5000/debian:trixie", Reference("127.0.0.1:5000", "debian", "trixie")),
        ("localhost/a/b/c", Reference("localhost", "a/b/c")),
        ("[::1]:5000/x/y:1.0-rc_1", Reference("[::1]:5000", "x/y", "1.0-rc_1")),
        ("bad_host!.invalid:443/x@sha256:" + "a" * 64, None),
        ("h.invalid/x@sha256:abc", None),
        ("reg.invalid/x:1@sha256:" + "b" * 64, Reference("reg.invalid", "x", "1", "sha256:" + "b" * 64)),
    ],
)
def test_parse_reference(text: str, expected: Reference | None) -> None:
    if expected is None:
        with pytest.raises(RegistryError):
            parse_reference(text)
    else:
        assert parse_reference(text) == expected


def test_reference_on_a_default_host() -> None:
    assert parse_reference("debian:trixie-amd64", default_host="h:1") == Reference("h:1", "debian", "trixie-amd64")
    assert parse_reference("h:1/x:2", default_host="other:9").host == "h:1"
    assert parse_reference("x", default_host="h:1").reference == "latest"
    with pytest.raises(RegistryError, match="names no registry host"):
        parse_reference("library/debian:trixie")


def test_loopback_hosts() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1:5000", "127.1.2.3", "localhost:80", "[::1]:5000", "::1"))
    assert not any(is_loopback(h) for h in ("10.0.0.1:5000", "registry.invalid", "[fe80::1]:5000"))


def test_parse_challenge() -> None:
    ch = parse_challenge('Bearer realm="https://auth.invalid/token",service="reg",scope="repository:a/b:pull,push"')
    assert ch is not None and ch.scheme == "bearer"
    assert ch.params == {"realm": "https://auth.invalid/token", "service": "reg", "scope": "repository:a/b:pull,push"}
    assert ch.scopes == ["repository:a/b:pull,push"]
    basic = parse_challenge('Basic realm="Registry Realm"')
    assert basic is not None and basic.scheme == "basic" and basic.params == {"realm": "Registry Realm"}
    assert parse_challenge("") is None and parse_challenge(None) is None


def test_parse_size() -> None:
    assert parse_size("8M") == 8 << 20
    assert parse_size("512k") == 512 << 10
    assert parse_size("1GiB") == 1 << 30
    assert parse_size("1000") == 1000
    for bad in ("", "0", "-1", "1T", "lots"):
        with pytest.raises(RegistryError):
            parse_size(bad)


def test_with_query_keeps_the_upload_state() -> None:
    url = with_query("http://h:1/v2/x/blobs/uploads/u?_state=ab%3D%3D&x=1", digest="sha256:00")
    assert url == "http://h:1/v2/x/blobs/uploads/u?_state=ab%3D%3D&x=1&digest=sha256%3A00"


# --- credentials ---------------------------------------------------------------------------------------------


def _config(directory: Path, data: object) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(data))
    return directory


def test_credentials_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    auth = base64.b64encode(b"fromfile:pw:with:colons").decode()
    config = _config(tmp_path / "d", {"auths": {"https://h:5000/v1/": {"auth": auth}}})
    found = lookup("h:5000", None, config)
    assert found is not None and (found.username, found.password) == ("fromfile", "pw:with:colons")
    assert lookup("other:5000", None, config) is None
    monkeypatch.setenv("BOOTSTRAP_REGISTRY_USER", "envuser")
    monkeypatch.setenv("BOOTSTRAP_REGISTRY_PASSWORD", "envpw")
    env = lookup("h:5000", None, config)
    assert env is not None and (env.username, env.source) == ("envuser", "environment")
    given = lookup("h:5000", "me:pw", config)
    assert given is not None and (given.username, given.password, given.source) == ("me", "pw", "--creds")
    assert "pw" not in repr(given)
    with pytest.raises(RegistryError, match="USER:PASSWORD"):
        lookup("h:5000", "nocolon", config)


def test_docker_config_from_the_environment_and_identity_tokens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(tmp_path / "env-config", {"auths": {"h:1": {"identitytoken": "refresh-me"}}})
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    found = lookup("h:1")
    assert found is not None and found.username == IDENTITY_USER and found.identity_token == "refresh-me"


def test_credential_helpers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-fake"
    helper.write_text(
        '#!/bin/sh\nread host\nif [ "$host" = known:1 ]; then echo \'{"Username":"u","Secret":"s"}\'; '
        "else echo 'credentials not found in native keychain'; exit 1; fi\n"
    )
    helper.chmod(helper.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    store = _config(tmp_path / "store", {"credsStore": "fake", "auths": {"fallback:1": {"auth": "dTpw"}}})
    found = lookup("known:1", None, store)
    assert found is not None and (found.username, found.password, found.source) == ("u", "s", "docker-credential-fake")
    assert lookup("unknown:1", None, store) is None
    fallback = lookup("fallback:1", None, store)
    assert fallback is not None and fallback.username == "u"
    missing = _config(tmp_path / "missing", {"credHelpers": {"h:1": "absent"}})
    with pytest.raises(RegistryError, match="docker-credential-absent is not on PATH"):
        lookup("h:1", None, missing)


# --- TLS -----------------------------------------------------------------------------------------------------


def test_tls_bundle_adds_certs_d_and_ca_cert_to_the_system_cas(tmp_path: Path) -> None:
    plain = for_host("h:1", None, tmp_path / "none", insecure=False)
    assert isinstance(plain.verify, str) and Path(plain.verify).is_file() and plain.cert is None
    host_dir = tmp_path / "certs.d" / "h:1"
    host_dir.mkdir(parents=True)
    (host_dir / "ca.crt").write_text("-----CERTS.D CA-----\n")
    (host_dir / "client.cert").write_text("cert")
    (host_dir / "client.key").write_text("key")
    extra = tmp_path / "mine.pem"
    extra.write_text("-----MY CA-----\n")
    tls = for_host("h:1", extra, tmp_path / "certs.d", insecure=False)
    assert isinstance(tls.verify, str)
    bundle = Path(tls.verify).read_text()
    assert "CERTS.D CA" in bundle and "MY CA" in bundle and len(bundle) > len("CERTS.D CAMY CA") + 100
    assert tls.cert == (str(host_dir / "client.cert"), str(host_dir / "client.key"))
    tls.close()
    assert not Path(tls.verify).exists()
    assert for_host("h:1", None, tmp_path / "none", insecure=True).verify is False
    with pytest.raises(RegistryError, match="no such file"):
        for_host("h:1", tmp_path / "absent.pem", tmp_path / "none", insecure=False)


# --- layouts -------------------------------------------------------------------------------------------------


def test_layout_top_single_and_multi(small: Layout, tmp_path: Path) -> None:
    top = OCILayout(small.tar).top()
    assert top.index is not None and top.index.digest == small.index_digest
    assert [m.digest for m in top.images] == [i.manifest.digest for i in small.images]
    one = build_layout(tmp_path / "one", ["amd64"], big=10)
    single = OCILayout(one.tar).top()
    assert single.index is None and single.images[0].digest == one.images[0].manifest.digest


def test_layout_index_drops_layout_only_annotations(small: Layout, tmp_path: Path) -> None:
    with tarfile.open(small.tar) as tar:
        extract(tar, tmp_path / "dir")
    (named,) = json.loads((tmp_path / "dir" / "index.json").read_text())["manifests"]  # the image index
    index = json.loads((tmp_path / "dir" / "blobs/sha256" / named["digest"][7:]).read_text())
    for m in index["manifests"]:  # as another tool's layout lists the platforms: each named in index.json
        m["annotations"] = {"org.opencontainers.image.ref.name": "1", "keep": "me"}
    del index["mediaType"]
    (tmp_path / "dir" / "index.json").write_bytes(canonical_json(index))
    pushed = OCILayout(tmp_path / "dir").top().index
    assert pushed is not None and pushed.media_type == MEDIA_INDEX
    doc = json.loads(pushed.data)
    assert doc["mediaType"] == MEDIA_INDEX and [m["annotations"] for m in doc["manifests"]] == [{"keep": "me"}] * 2


def test_blob_slices_stream_from_the_tar(small: Layout) -> None:
    layout = OCILayout(small.tar)
    layer = small.images[0].layer
    blob = layout.blob({"digest": layer.digest, "size": layer.size})
    whole = layer.path.read_bytes()
    seen: list[int] = []
    with blob.open(progress=seen.append) as body:
        assert len(body) == layer.size and b"".join(body) == whole and sum(seen) == layer.size
        assert body.rewind().read(5) == whole[:5]
    with blob.open(10, 20) as part:
        assert part.read() == whole[10:30]
    with pytest.raises(RegistryError, match="its descriptor says"):
        layout.blob({"digest": layer.digest, "size": layer.size + 1})


# --- crafted layouts: digests are names, never paths ----------------------------------------------------------

SECRET = b"host secret: not for any registry\n"


def _craft(layout: Path, layer: dict[str, object], entry_digest: str | None = None) -> Path:
    """An OCI layout directory whose one manifest lists `layer`; index.json names that manifest (or
    `entry_digest`). A secret file sits next to the layout, where `../` digests would reach it."""
    (layout.parent / "secret").write_bytes(SECRET)
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> dict[str, object]:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return {"digest": f"sha256:{digest}", "size": len(data)}

    config = put(canonical_json({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers"}}))
    manifest = put(
        canonical_json(
            {
                "schemaVersion": 2,
                "mediaType": MEDIA_MANIFEST,
                "config": {"mediaType": MEDIA_CONFIG, **config},
                "layers": [layer],
            }
        )
    )
    entry = {"mediaType": MEDIA_MANIFEST, **manifest}
    if entry_digest is not None:
        entry["digest"] = entry_digest
    (layout / "index.json").write_bytes(canonical_json({"schemaVersion": 2, "manifests": [entry]}))
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    return layout


def _tar(directory: Path) -> Path:
    dest = directory.with_suffix(".tar")
    with tarfile.open(dest, "w") as tar:
        for path in sorted(directory.rglob("*")):
            tar.add(path, str(path.relative_to(directory)), recursive=False)
    return dest


LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
ESCAPING = "sha256:../../../secret"


def test_a_layer_digest_that_is_a_path_is_refused_before_any_request(tmp_path: Path) -> None:
    layout = _craft(tmp_path / "layout", {"mediaType": LAYER, "digest": ESCAPING, "size": len(SECRET)})
    manifest = OCILayout(layout).top().images[0]
    with pytest.raises(RegistryError, match=r"'sha256:\.\./\.\./\.\./secret' is not a sha256 digest") as info:
        manifest.blobs()
    assert "\n" not in info.value.message and info.value.hint
    with pytest.raises(RegistryError, match="is not a sha256 digest"):
        OCILayout(layout).blob({"mediaType": LAYER, "digest": ESCAPING, "size": len(SECRET)})
    # nothing listens on port 9: the push must stop before it tries the network
    for source in (layout, _tar(layout)):
        with pytest.raises(RegistryError, match="is not a sha256 digest"):
            push(source, "127.0.0.1:9/test/x:1", Options(retries=0))


@pytest.mark.parametrize(
    "digest", ["sha256:../../../../etc/hostname", "sha256:" + "A" * 64, "sha512:" + "a" * 128, "sha256:/etc/passwd"]
)
def test_an_index_json_digest_that_is_not_a_sha256_is_refused(tmp_path: Path, digest: str) -> None:
    layout = _craft(tmp_path / "layout", {"mediaType": LAYER, "digest": "sha256:" + "0" * 64, "size": 1}, digest)
    for source in (layout, _tar(layout)):
        with pytest.raises(RegistryError, match="index.json: .* is not a sha256 digest"):
            OCILayout(source)


def test_a_blob_linked_out_of_the_layout_directory_is_refused(tmp_path: Path) -> None:
    digest = hashlib.sha256(SECRET).hexdigest()
    layout = _craft(tmp_path / "layout", {"mediaType": LAYER, "digest": f"sha256:{digest}", "size": len(SECRET)})
    (layout / "blobs" / "sha256" / digest).symlink_to(Path("..") / ".." / ".." / "secret")
    lay = OCILayout(layout)
    with pytest.raises(RegistryError, match="outside the layout"):
        lay.blob(lay.top().images[0].blobs()[1])


# --- No registry is known by name: a reference's host is where its requests go and its credentials' key ----------

LOGIN_URL = "https://hub.invalid/v1/"
"""A credentials key in the URL form `docker login` gives some registries."""


def test_a_reference_goes_to_its_own_host_and_no_other() -> None:
    ref = parse_reference("Hub.invalid/debian:trixie")
    assert ref == Reference("Hub.invalid", "debian", "trixie")
    with pytest.raises(RegistryError, match="names no registry host"):
        parse_reference("debian:trixie")
    client = Client(ref.host, Options())
    assert client.host == "Hub.invalid"
    client.close()


def test_credentials_kept_under_a_url_are_found_for_its_host(tmp_path: Path) -> None:
    auth = base64.b64encode(b"hubuser:hubpw").decode()
    config = _config(tmp_path / "auths", {"auths": {LOGIN_URL: {"auth": auth}, "h:5000": {"auth": "eDp5"}}})
    for host in ("hub.invalid", "HUB.invalid"):
        found = lookup(host, None, config)
        assert found is not None and (found.username, found.password) == ("hubuser", "hubpw")
    other = lookup("h:5000", None, config)
    assert other is not None and other.username == "x"
    assert lookup("h:5001", None, config) is None
    assert lookup("hub.invalid:443", None, config) is None


def _helper(bin_dir: Path, kept: str, lists: bool = True) -> None:
    """docker-credential-hub, keeping one credential under the server name `kept`."""
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-hub"
    listing = f'echo \'{{"{kept}": "hub"}}\'' if lists else "echo 'unknown command' >&2; exit 1"
    helper.write_text(
        f'#!/bin/sh\nread server\nif [ "$1" = list ]; then {listing}; exit 0; fi\n'
        f'if [ "$server" = "{kept}" ]; then '
        'echo \'{"Username":"hub","Secret":"s"}\'; else echo \'credentials not found\'; exit 1; fi\n'
    )
    helper.chmod(helper.stat().st_mode | stat.S_IXUSR)


@pytest.mark.parametrize("where", ["credHelpers", "credsStore"])
@pytest.mark.parametrize("kept", ["hub.invalid", LOGIN_URL])
def test_credential_helpers_are_asked_under_the_host_or_the_url_they_keep(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str, kept: str
) -> None:
    _helper(tmp_path / "bin", kept)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    settings = {"credHelpers": {kept: "hub"}} if where == "credHelpers" else {"credsStore": "hub"}
    config = _config(tmp_path / where, settings)
    found = lookup("hub.invalid", None, config)
    assert found is not None and (found.username, found.source) == ("hub", "docker-credential-hub")
    assert lookup("h:5000", None, config) is None


def test_a_helper_that_cannot_list_finds_only_what_it_keeps_under_the_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _helper(tmp_path / "bin", LOGIN_URL, lists=False)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    config = _config(tmp_path / "store", {"credsStore": "hub"})
    assert lookup("hub.invalid", None, config) is None


def test_a_helper_that_cannot_list_is_asked_under_the_keys_docker_left_in_auths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docker leaves an empty `auths` entry for each server whose credentials it gave the store: that key is asked
    for, without `list`."""
    _helper(tmp_path / "bin", LOGIN_URL, lists=False)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    config = _config(tmp_path / "store", {"credsStore": "hub", "auths": {LOGIN_URL: {}}})
    found = lookup("hub.invalid", None, config)
    assert found is not None and (found.username, found.source) == ("hub", "docker-credential-hub")
    assert lookup("h:5000", None, config) is None
