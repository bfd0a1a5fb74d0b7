"""What a hostile registry or a crafted layout gives: never an internal error, a hang or an unbounded read.

Real servers on 127.0.0.1 (tests/faults/hostile_registry.py) answer what no registry should: a token that lives
for ever, JSON members of the wrong type, JSON nested past the parser's depth, a body that drips. Real layouts and
output directories on disk hold a FIFO, links, and files larger than anything a registry would take.
"""

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bootstrap.image.oci import MEDIA_CONFIG, MEDIA_INDEX, MEDIA_MANIFEST, canonical_json
from bootstrap.registry import (
    Options,
    RegistryError,
    artifacts,
    attestations,
    auth,
    limits,
    manifests,
    push,
    signatures,
)
from bootstrap.registry.blobs import Uploader
from bootstrap.registry.client import Client
from bootstrap.registry.errors import TransientError
from bootstrap.registry.layout import Layout
from bootstrap.registry.limits import BODY_LIMIT, RECORD_LIMIT
from bootstrap.registry.reference import parse_reference
from bootstrap.sign import dsse, keys, simplesigning
from tests.faults.hostile_registry import OCI_INDEX, HostileRegistry, digest_of
from tests.registry.outputs import build_output
from tests.registry.servers import Handler, _answer

REPO = "hostile/image"


class Guarded(HostileRegistry):
    """A HostileRegistry behind Bearer tokens: every /v2/ request without one is answered 401."""

    def handle(self, h: Handler) -> None:
        if h.path.startswith("/v2/") and not h.headers.get("Authorization"):
            challenge = f'Bearer realm="http://{self.host}/token",service="hostile"'
            _answer(h, 401, {"WWW-Authenticate": challenge, "Content-Type": "application/json"}, b"{}")
            return
        super().handle(h)


class Dripping(HostileRegistry):
    """A HostileRegistry whose `drip` path sends its headers, no Content-Length, then a byte every `interval`."""

    drip = ""
    interval = 0.05
    size = 200

    def handle(self, h: Handler) -> None:
        if h.path.split("?", 1)[0] != self.drip:
            super().handle(h)
            return
        self.seen.append((h.command, self.drip, h.headers.get("Authorization")))
        h.close_connection = True
        h.wfile.write(f"HTTP/1.1 200 OK\r\nContent-Type: {OCI_INDEX}\r\nConnection: close\r\n\r\n".encode())
        try:
            for _ in range(self.size):
                h.wfile.write(b" ")
                h.wfile.flush()
                time.sleep(self.interval)
        except OSError:
            pass


@pytest.fixture
def hostile() -> Iterator[HostileRegistry]:
    reg = HostileRegistry()
    yield reg
    reg.stop()


def _one_line(exc: pytest.ExceptionInfo[RegistryError]) -> str:
    assert "\n" not in exc.value.message
    return exc.value.message


# --- 1. a token's life -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("expires_in", ["1e400", "-1e400", "1e300", "Infinity", "NaN", '"300x"', "[1]", "true"])
def test_a_token_life_past_any_number_is_not_a_crash(expires_in: str, opts: Callable[..., Options]) -> None:
    reg = Guarded()
    try:
        body = f'{{"token": "t", "expires_in": {expires_in}}}'.encode()
        reg.routes["/token"] = (200, {"Content-Type": "application/json"}, body)
        with Client(reg.host, opts()) as client:
            client.need(REPO, "pull")
            assert manifests.find(client, REPO, "1") is None
            left = client.auth._token_expires - time.monotonic()
        assert 0 < left <= auth.MAX_TOKEN_LIFE
        assert [a for _, p, a in reg.seen if p == f"/v2/{REPO}/manifests/1"] == ["Bearer t"]
    finally:
        reg.stop()


def test_token_life() -> None:
    assert auth.token_life(300) == auth.token_life("300") == 300
    assert auth.token_life(1e300) == auth.MAX_TOKEN_LIFE
    assert (
        auth.token_life(float("inf"))
        == auth.token_life(float("nan"))
        == auth.token_life(None)
        == auth.DEFAULT_TOKEN_LIFE
    )
    assert auth.token_life(0) == auth.token_life(-5) == auth.token_life(True) == auth.DEFAULT_TOKEN_LIFE


# --- 2. build.json and the record files: regular files only, bounded ----------------------------------------


def test_a_build_json_that_is_a_fifo_is_refused_without_waiting(
    hostile: HostileRegistry, opts: Callable[..., Options], tmp_path: Path
) -> None:
    out = build_output(tmp_path)
    summary = out.directory / "build.json"
    summary.unlink()
    os.mkfifo(summary)
    raised: list[BaseException] = []

    def run() -> None:
        try:
            push(out.directory, f"{hostile.host}/{REPO}:1", opts())
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            raised.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(10)
    if worker.is_alive():
        os.close(os.open(summary, os.O_WRONLY | os.O_NONBLOCK))  # let the blocked reader go
        worker.join(10)
        pytest.fail("push waited on a FIFO for build.json")
    assert len(raised) == 1 and isinstance(raised[0], RegistryError), raised
    assert "build.json is missing or not a regular file" in raised[0].message
    assert hostile.seen == [], "a request was made before build.json was read"


@pytest.mark.parametrize("name", ["build.json", "lock.json", "sbom.spdx.json"])
def test_a_record_file_that_is_a_link_is_refused(
    name: str, hostile: HostileRegistry, opts: Callable[..., Options], tmp_path: Path
) -> None:
    out = build_output(tmp_path)
    kept = tmp_path / f"kept-{name}"
    (out.directory / name).rename(kept)
    (out.directory / name).symlink_to(kept)
    with pytest.raises(RegistryError) as raised:
        push(out.directory, f"{hostile.host}/{REPO}:1", opts())
    assert f"{name} is" in _one_line(raised) and "not a regular file" in raised.value.message
    assert hostile.seen == []


def test_a_build_json_too_large_is_refused_before_it_is_read(
    hostile: HostileRegistry, opts: Callable[..., Options], tmp_path: Path
) -> None:
    out = build_output(tmp_path)
    with open(out.directory / "build.json", "r+b") as f:
        f.truncate(RECORD_LIMIT + 1)
    with pytest.raises(RegistryError) as raised:
        push(out.directory, f"{hostile.host}/{REPO}:1", opts())
    assert "build.json is larger than 16 MiB" in _one_line(raised)
    assert hostile.seen == []


# --- 3. manifests, index.json and configs of a layout: bounded, their descriptor's size, not links -----------


def _put(layout: Path, data: bytes) -> dict[str, Any]:
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    digest = digest_of(data)
    (blobs / digest[7:]).write_bytes(data)
    return {"digest": digest, "size": len(data)}


def _image(layout: Path, arch: str = "amd64") -> dict[str, Any]:
    """An image manifest (config, no layer) in the layout; its index.json entry."""
    config = _put(layout, canonical_json({"architecture": arch, "os": "linux", "rootfs": {"type": "layers"}}))
    doc = {"schemaVersion": 2, "mediaType": MEDIA_MANIFEST, "config": {"mediaType": MEDIA_CONFIG, **config}}
    return {"mediaType": MEDIA_MANIFEST, **_put(layout, canonical_json({**doc, "layers": []}))}


def _layout(layout: Path, entries: list[dict[str, Any]]) -> Path:
    (layout / "index.json").write_bytes(canonical_json({"schemaVersion": 2, "manifests": entries}))
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    return layout


def test_a_manifest_larger_than_a_registry_takes_is_refused(tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    entry = _image(layout)
    path = layout / "blobs" / "sha256" / entry["digest"][7:]
    with open(path, "r+b") as f:
        f.truncate(BODY_LIMIT + 1)
    entry["size"] = BODY_LIMIT + 1
    with pytest.raises(RegistryError) as raised:
        Layout(_layout(layout, [entry])).top()
    assert f"{entry['digest'][7:]} is larger than 4 MiB" in _one_line(raised)


def test_a_manifest_of_another_size_than_its_descriptor_is_refused(tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    entry = _image(layout)
    with pytest.raises(RegistryError) as raised:
        Layout(_layout(layout, [{**entry, "size": entry["size"] + 100}])).top()
    assert f"is {entry['size']} bytes, its descriptor says {entry['size'] + 100}" in _one_line(raised)


def test_index_json_or_a_manifest_that_is_a_link_is_refused(tmp_path: Path) -> None:
    """Even to a file inside the layout (one outside was refused already)."""
    layout = _layout(tmp_path / "layout", [_image(tmp_path / "layout")])
    (layout / "index.json").rename(layout / "index.copy")
    (layout / "index.json").symlink_to("index.copy")
    with pytest.raises(RegistryError) as raised:
        Layout(layout)
    assert "index.json is missing or not a regular file" in _one_line(raised)

    other = _layout(tmp_path / "other", [entry := _image(tmp_path / "other")])
    path = other / "blobs" / "sha256" / entry["digest"][7:]
    path.rename(other / "manifest")
    path.symlink_to(other / "manifest")
    with pytest.raises(RegistryError, match="is missing or not a regular file"):
        Layout(other).top()


def test_an_index_json_entry_with_annotations_of_the_wrong_type(tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    entries = [{**_image(layout, "amd64"), "annotations": ["x"]}, _image(layout, "arm64")]
    top = Layout(_layout(layout, entries)).top()
    assert top.index is not None and [e.get("annotations") for e in top.index.json["manifests"]] == [None, None]


# --- 4. JSON members of the wrong type from a registry: absent, or a one-line error --------------------------


def _artifact(reg: HostileRegistry, image: dict[str, Any], **override: object) -> dict[str, Any]:
    """A lock artifact attached to `image`, listed by the referrers API; `override` replaces its members."""
    layer = reg.blob(REPO, b'{"lock": 1}')
    doc = {
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "artifactType": artifacts.LOCK_TYPE,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", **reg.blob(REPO, b"{}")},
        "layers": [{"mediaType": artifacts.LOCK_TYPE, **layer, "annotations": {artifacts.TITLE: "lock.json"}}],
        "subject": image,
        "annotations": {artifacts.TITLE: "lock.json"},
        **override,
    }
    descriptor = {**reg.manifest(REPO, doc), "artifactType": artifacts.LOCK_TYPE}
    reg.referrers(REPO, image["digest"], [descriptor])
    return descriptor


@pytest.mark.parametrize(
    "override",
    [{"subject": "sha256:x"}, {"annotations": ["x"]}, {"layers": {"digest": "x"}}, {"layers": 5}],
    ids=["subject", "annotations", "layers-dict", "layers-int"],
)
def test_an_artifact_with_members_of_the_wrong_type_is_skipped(
    override: dict[str, object], hostile: HostileRegistry, opts: Callable[..., Options]
) -> None:
    image = hostile.image(REPO, "1")
    _artifact(hostile, image, **override)
    found = artifacts.records_at(f"{hostile.host}/{REPO}:1", "amd64", opts())
    assert found is not None and found.files == {} and found.image == image["digest"]


@pytest.mark.parametrize("config", [{"config": "x"}, {"config": {"Labels": ["x"]}}])
def test_a_config_with_members_of_the_wrong_type(
    config: dict[str, object], hostile: HostileRegistry, opts: Callable[..., Options]
) -> None:
    blob = hostile.blob(REPO, json.dumps({"architecture": "amd64", "os": "linux", **config}).encode())
    doc = {
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": {"mediaType": MEDIA_CONFIG, **blob},
        "layers": [],
    }
    hostile.manifest(REPO, doc, "1")
    found = artifacts.records_at(f"{hostile.host}/{REPO}:1", "amd64", opts())
    assert found is not None and found.loose == []
    with pytest.raises(RegistryError) as raised:
        artifacts.lock_at(f"{hostile.host}/{REPO}:1", "amd64", opts())
    assert "no lock is attached" in _one_line(raised)


def test_an_index_entry_whose_platform_is_a_string(hostile: HostileRegistry, opts: Callable[..., Options]) -> None:
    image = hostile.image(REPO, "amd64")
    hostile.manifest(REPO, {"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": [
        {**image, "platform": "linux/amd64"}]}, "1")  # fmt: skip
    with pytest.raises(RegistryError) as raised:
        artifacts.records_at(f"{hostile.host}/{REPO}:1", "amd64", opts())
    assert "has no image for amd64" in _one_line(raised)


@pytest.mark.parametrize("body", [b'{"manifests": 5}', b"[" * 100_000, b'{"manifests": ' * 50_000])
def test_a_referrers_list_of_the_wrong_shape(
    body: bytes, hostile: HostileRegistry, opts: Callable[..., Options]
) -> None:
    image = hostile.image(REPO, "1")
    hostile.routes[f"/v2/{REPO}/referrers/{image['digest']}"] = (200, {"Content-Type": OCI_INDEX}, body)
    try:
        found = artifacts.records_at(f"{hostile.host}/{REPO}:1", "amd64", opts())
    except RegistryError as exc:
        assert "referrers of" in exc.message and "\n" not in exc.message
    else:
        assert found is not None and found.files == {}


def test_a_manifest_nested_past_the_parser(hostile: HostileRegistry, opts: Callable[..., Options]) -> None:
    body = b"[" * 100_000
    hostile.routes[f"/v2/{REPO}/manifests/1"] = (200, {"Content-Type": MEDIA_MANIFEST}, body)
    with pytest.raises(RegistryError) as raised:
        artifacts.records_at(f"{hostile.host}/{REPO}:1", "amd64", opts())
    assert "not JSON" in _one_line(raised)


def test_an_attestation_layer_with_annotations_of_the_wrong_type(
    hostile: HostileRegistry, opts: Callable[..., Options]
) -> None:
    image = hostile.image(REPO, "1")
    layer = {"mediaType": dsse.MEDIA_TYPE, **hostile.blob(REPO, b"{}"), "annotations": ["x"]}
    doc = {"schemaVersion": 2, "mediaType": MEDIA_MANIFEST, "config": {"mediaType": MEDIA_CONFIG,
           **hostile.blob(REPO, b"{}")}, "layers": [layer]}  # fmt: skip
    hostile.manifest(REPO, doc, attestations.tag_for(image["digest"]))
    found = artifacts.records_at(f"{hostile.host}/{REPO}:1", "amd64", opts())
    assert found is not None and found.files == {}


def test_a_signature_layer_with_annotations_of_the_wrong_type(
    hostile: HostileRegistry, opts: Callable[..., Options]
) -> None:
    image = hostile.image(REPO, "1")
    target = parse_reference(f"{hostile.host}/{REPO}:1")
    payload = simplesigning.payload(signatures.identity(target), image["digest"])
    layer = {"mediaType": simplesigning.MEDIA_TYPE, **hostile.blob(REPO, payload), "annotations": ["x"]}
    doc = {"schemaVersion": 2, "mediaType": MEDIA_MANIFEST, "config": {"mediaType": MEDIA_CONFIG,
           **hostile.blob(REPO, b"{}")}, "layers": [layer]}  # fmt: skip
    hostile.manifest(REPO, doc, signatures.tag_for(image["digest"]))
    with Client(hostile.host, opts()) as client:
        uploader = Uploader(client, REPO, [], lambda n: None)
        with pytest.raises(RegistryError) as raised:  # not signed yet: it signs, and the upload is refused
            signatures.sign_one(uploader, target, image["digest"], keys.generate())
    _one_line(raised)
    assert any(m == "POST" for m, _, _ in hostile.seen)


# --- 5. a body that drips --------------------------------------------------------------------------------------


def test_a_body_that_drips_is_given_up_as_stalled(opts: Callable[..., Options]) -> None:
    reg = Dripping()
    try:
        image = reg.image(REPO, "1")
        reg.drip = f"/v2/{REPO}/referrers/{image['digest']}"
        started = time.monotonic()
        with pytest.raises(TransientError) as raised:
            artifacts.records_at(f"{reg.host}/{REPO}:1", "amd64", opts(timeout=0.3))
        assert time.monotonic() - started < 5, "the drip was read to its end"
        assert "stalled" in _one_line(raised) and reg.drip in raised.value.message
        assert [p for _, p, _ in reg.seen].count(reg.drip) > 1, "a stall is transient: retried, then given up"
    finally:
        reg.stop()


def _lock_artifacts(reg: HostileRegistry, image: dict[str, Any], locks: list[bytes]) -> list[dict[str, Any]]:
    """Lock artifacts attached to `image`, one a lock (not listed: the caller lists them)."""
    out = []
    for data in locks:
        doc = {
            "schemaVersion": 2,
            "mediaType": MEDIA_MANIFEST,
            "artifactType": artifacts.LOCK_TYPE,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", **reg.blob(REPO, b"{}")},
            "layers": [{"mediaType": artifacts.LOCK_TYPE, **reg.blob(REPO, data)}],
            "subject": image,
            "annotations": {artifacts.TITLE: "lock.json"},
        }
        out.append({**reg.manifest(REPO, doc), "artifactType": artifacts.LOCK_TYPE})
    return out


def test_a_referrer_listed_many_times_is_read_once(hostile: HostileRegistry, opts: Callable[..., Options]) -> None:
    image = hostile.image(REPO, "1")
    (descriptor,) = _lock_artifacts(hostile, image, [b"x" * (1 << 20)])
    hostile.referrers(REPO, image["digest"], [descriptor] * 2000)
    found = artifacts.records_at(f"{hostile.host}/{REPO}:1", "amd64", opts())
    assert found is not None and len(found.files["lock.json"]) == 1
    blob_reads = [
        p for m, p, _ in hostile.seen if m == "GET" and "/blobs/" in p and p.endswith(digest_of(b"x" * (1 << 20)))
    ]
    assert len(blob_reads) == 1


@pytest.mark.parametrize("reader", ["records_at", "lock_at"])
def test_records_past_what_one_image_may_have_in_all_are_refused(
    reader: str, hostile: HostileRegistry, opts: Callable[..., Options], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Distinct records, each within the limit of one, past the limit of all of them: refused, not held."""
    monkeypatch.setattr(limits, "ATTACHED_LIMIT", 1 << 20)
    image = hostile.image(REPO, "1")
    hostile.referrers(
        REPO, image["digest"], _lock_artifacts(hostile, image, [bytes([i]) * (300 << 10) for i in range(5)])
    )
    with pytest.raises(RegistryError) as raised:
        getattr(artifacts, reader)(f"{hostile.host}/{REPO}:1", "amd64", opts())
    assert "larger than 1 MiB in all" in _one_line(raised)


def test_referrers_past_what_builds_attach_are_refused_unread(
    hostile: HostileRegistry, opts: Callable[..., Options]
) -> None:
    """More referrers of the records' types than builds attach (each a manifest to read): refused in one line
    before any of them is read."""
    image = hostile.image(REPO, "1")
    many = _lock_artifacts(hostile, image, [b"lock %d" % i for i in range(300)])
    hostile.referrers(REPO, image["digest"], many)
    hostile.seen.clear()
    with pytest.raises(RegistryError) as raised:
        artifacts.records_at(f"{hostile.host}/{REPO}:1", "amd64", opts())
    assert "lists 300 referrers" in _one_line(raised) and "more than 256" in raised.value.message
    read = {d["digest"] for d in many}
    assert not [p for _, p, _ in hostile.seen if p.rsplit("/", 1)[-1] in read]


def test_referrers_of_other_types_are_not_read(hostile: HostileRegistry, opts: Callable[..., Options]) -> None:
    """A scanner's or another tool's artifacts beside the records: not read, however many."""
    image = hostile.image(REPO, "1")
    (lock,) = _lock_artifacts(hostile, image, [b"the lock"])
    others = [{**d, "artifactType": "application/vnd.example.other"} for d in _lock_artifacts(hostile, image, [b"o"])]
    hostile.referrers(REPO, image["digest"], [lock, *others * 1000])
    hostile.seen.clear()
    found = artifacts.records_at(f"{hostile.host}/{REPO}:1", "amd64", opts())
    assert found is not None and found.files["lock.json"] == [b"the lock"]
    assert not [p for _, p, _ in hostile.seen if p.endswith(others[0]["digest"])]


def test_the_artifact_manifests_count_in_what_one_image_may_have(
    hostile: HostileRegistry, opts: Callable[..., Options], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Artifacts whose manifests are large (annotations of 300 KiB) and records small: the manifests are read
    within the same bound as the records."""
    monkeypatch.setattr(limits, "ATTACHED_LIMIT", 1 << 20)
    image = hostile.image(REPO, "1")
    listed = []
    for i in range(5):
        doc = {
            "schemaVersion": 2,
            "mediaType": MEDIA_MANIFEST,
            "artifactType": artifacts.LOCK_TYPE,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", **hostile.blob(REPO, b"{}")},
            "layers": [{"mediaType": artifacts.LOCK_TYPE, **hostile.blob(REPO, b"lock %d" % i)}],
            "subject": image,
            "annotations": {artifacts.TITLE: "lock.json", "padding": "x" * (300 << 10)},
        }
        listed.append({**hostile.manifest(REPO, doc), "artifactType": artifacts.LOCK_TYPE})
    hostile.referrers(REPO, image["digest"], listed)
    with pytest.raises(RegistryError) as raised:
        artifacts.records_at(f"{hostile.host}/{REPO}:1", "amd64", opts())
    assert "larger than 1 MiB in all" in _one_line(raised)
