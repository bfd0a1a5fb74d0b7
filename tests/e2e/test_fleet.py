"""`bootstrap fleet` against a real docker-registry with TLS and htpasswd auth, from the host's real mirror:
two suites built and pushed with their records attached, a second run that pushes nothing, `check` against
the registry from an empty cache, webhooks in Docker Hub's shape; and the CI split (`--matrix`, `--job` in
separate processes with separate caches, `--assemble`) giving the same index as one run."""

import json
from pathlib import Path

import pytest

from bootstrap.publish import webhook
from bootstrap.records import provenance
from bootstrap.registry import Options
from bootstrap.registry.artifacts import ATTACHED_TYPES, CYCLONEDX_TYPE, LOCK_TYPE, SPDX_TYPE
from bootstrap.registry.client import Client
from bootstrap.registry.manifests import blob, find
from bootstrap.registry.referrers import listing
from tests.e2e.conftest import bootstrap, ensure_binfmt
from tests.e2e.test_records_and_rebuilds import Receiver, receiver  # noqa: F401 - the fixture
from tests.registry.conftest import (  # noqa: F401 - fixtures
    PASSWORD,
    USER,
    TLSRegistry,
    htpasswd,
    openssl,
    registry_exe,
    tls_registry,
)

pytestmark = pytest.mark.e2e
SECRET = "fleet-webhook-secret"


def _access(tls: TLSRegistry) -> list[str]:
    return ["--creds", f"{USER}:{PASSWORD}", "--ca-cert", str(tls.ca.ca_cert)]


def _options(tls: TLSRegistry) -> Options:
    return Options(creds=f"{USER}:{PASSWORD}", ca_cert=tls.ca.ca_cert, certs_dir=Path("/nonexistent"))


def test_fleet_builds_pushes_with_records_then_pushes_nothing(
    tls_registry: TLSRegistry,  # noqa: F811 - the fixture
    tmp_path: Path,
    receiver: tuple[str, type[Receiver]],  # noqa: F811 - the fixture
) -> None:
    url, handler = receiver
    repo = "base/debian"
    fleet = tmp_path / "fleet.toml"
    fleet.write_text(
        f'webhooks = ["{url}"]\n\n[[image]]\nrecipe = "debian-slim"\nsuites = ["bookworm", "trixie"]\n'
        f'arches = ["amd64"]\npush = ["{tls_registry.host}/{repo}:{{codename}}-slim"]\nsbom-formats = ["cyclonedx"]\n'
    )
    args = ["fleet", str(fleet), "-o", str(tmp_path / "out"), *_access(tls_registry)]
    first = bootstrap(*args, "--json", env={"BOOTSTRAP_WEBHOOK_SECRET": SECRET})
    rows = json.loads(first.stdout)
    assert [(r["codename"], r["arch"], r["state"]) for r in rows] == [
        ("bookworm", "amd64", "new"),
        ("trixie", "amd64", "new"),
    ]
    with Client(tls_registry.host, _options(tls_registry)) as client:
        client.need(repo, "pull")
        for row in rows:
            (ref,) = row["pushed"]
            tag = ref.rsplit(":", 1)[1]
            image = find(client, repo, tag)
            assert image is not None and image.digest == row["digest"]
            records = {d["artifactType"]: d for d in listing(client, repo, image.digest, ATTACHED_TYPES)}
            assert set(records) == {LOCK_TYPE, SPDX_TYPE, CYCLONEDX_TYPE, provenance.MEDIA_TYPE}
            statement_manifest = find(client, repo, records[provenance.MEDIA_TYPE]["digest"])
            assert statement_manifest is not None
            statement = json.loads(blob(client, repo, statement_manifest.json["layers"][0]))
            assert statement["_type"] == "https://in-toto.io/Statement/v1"
            assert statement["predicateType"] == "https://slsa.dev/provenance/v1"
            assert statement["subject"][0]["digest"] == {"sha256": image.digest.removeprefix("sha256:")}
            deps = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
            assert any(d.get("uri", "").endswith("/InRelease") for d in deps)
            lock_manifest = find(client, repo, records[LOCK_TYPE]["digest"])
            assert lock_manifest is not None
            assert json.loads(blob(client, repo, lock_manifest.json["layers"][0]))["codename"] == row["codename"]

    events = [json.loads(body) for body, _ in handler.received]
    assert sorted(e["push_data"]["tag"] for e in events) == ["bookworm-slim", "trixie-slim"]
    for (body, headers), event in zip(handler.received, events, strict=True):
        webhook.verify_delivery(SECRET, headers, body)
        assert event["repository"] == {**event["repository"], "repo_name": repo, "namespace": "base", "name": "debian"}
        assert isinstance(event["push_data"]["pushed_at"], int) and event["recipe"] == "debian-slim"

    handler.received.clear()
    second = bootstrap(*args)
    assert "nothing changed: nothing pushed" in second.stdout
    assert second.stdout.count("unchanged") == 2
    assert handler.received == []

    for row in rows:
        ref = row["pushed"][0]
        empty = tmp_path / f"empty-cache-{row['codename']}"
        checked = bootstrap("check", "debian-slim", "--against", ref, *_access(tls_registry), "--cache-dir", str(empty))
        assert checked.stdout.startswith("up to date")


def test_matrix_jobs_then_assemble_make_the_index_one_run_makes(
    tls_registry: TLSRegistry,  # noqa: F811 - the fixture
    tmp_path: Path,
) -> None:
    ensure_binfmt("aarch64")
    host = tls_registry.host
    text = '[[image]]\nrecipe = "debian-slim"\nsuites = ["bookworm"]\narches = ["amd64", "arm64"]\n'
    split, whole = tmp_path / "split.toml", tmp_path / "whole.toml"
    split.write_text(text + f'push = ["{host}/split/debian:{{codename}}-slim"]\n')
    whole.write_text(text + f'push = ["{host}/whole/debian:{{codename}}-slim"]\n')

    (part,) = json.loads(bootstrap("fleet", str(split), "--matrix").stdout)["include"]
    jobs = part["jobs"]["include"]
    assert [(j["job"], j["arch"], j["runner"]) for j in jobs] == [
        ("debian-slim-bookworm-amd64", "amd64", "ubuntu-latest"),
        ("debian-slim-bookworm-arm64", "arm64", "ubuntu-24.04-arm"),
    ]
    gitlab = bootstrap("fleet", str(split), "--matrix", "gitlab").stdout
    name, job = gitlab.split(": ", 1)
    assert name == "fleet-part-1" and json.loads(job)["extends"] == ".fleet-job"
    assert json.loads(job)["parallel"]["matrix"] == [{"JOB": [j["job"]], "ARCH": [j["arch"]]} for j in jobs]

    access = _access(tls_registry)
    for j in jobs:
        cache = tmp_path / f"cache-{j['arch']}"
        out = tmp_path / f"out-{j['arch']}"
        bootstrap("fleet", str(split), "--job", j["job"], "-o", str(out), "--cache-dir", str(cache), *access, "-q")
    early = bootstrap("fleet", str(split), "--job", "debian-slim-bookworm-amd6", *access, check=False)
    assert early.returncode == 1 and "did you mean 'debian-slim-bookworm-amd64'" in early.stderr
    assembled = json.loads(bootstrap("fleet", str(split), "--assemble", "--json", *access).stdout)
    (index_row,) = assembled
    assert index_row["arch"] == "amd64+arm64" and index_row["state"] == "new"

    one = json.loads(
        bootstrap("fleet", str(whole), "--json", "-o", str(tmp_path / "whole"), "--cache-dir", str(tmp_path / "c"),
                  *access).stdout
    )  # fmt: skip
    assert one[-1]["digest"] == index_row["digest"]
    assert [r["digest"] for r in one[:2]] == [
        json.loads((tmp_path / f"out-{a}" / f"debian-slim-bookworm-{a}" / "build.json").read_text())["image"][
            "manifest_digest"
        ]
        for a in ("amd64", "arm64")
    ]
    again = bootstrap("fleet", str(split), "--assemble", *access)
    assert "nothing changed: nothing pushed" in again.stdout
