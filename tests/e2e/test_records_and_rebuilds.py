"""Reproducibility, lock, SBOM, provenance, check/verify/inspect and webhooks, on a fixture archive of real
packages served on 127.0.0.1 (so the index can change between runs)."""

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import deflate
import pytest

from bootstrap.host.cache import read_derived, write_derived
from bootstrap.publish import webhook
from tests.e2e.conftest import ROOT, Mirrored, bootstrap, need_tool, run
from tests.fixtures import trivy
from tests.fixtures.debs import build_deb
from tests.fixtures.leftovers import running
from tests.fixtures.repo import Repo
from tests.fixtures.server import Server

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def first(mirrored: Mirrored, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("first") / "out"
    mirrored.build(out)
    return out


def test_outputs_present(first: Path) -> None:
    names = sorted(p.name for p in first.iterdir())
    assert names == [
        "build.json",
        "image.tar",
        "lock.json",
        "packages.txt",
        "provenance.intoto.json",
        "rootfs.tar.gz",
        "sbom.spdx.json",
        "sbom.spdx3.json",
    ]
    assert not [p for p in first.parent.iterdir() if p.name.startswith(".")], "no staging leftovers"


def test_rebuild_elsewhere_is_bit_identical(mirrored: Mirrored, first: Path, tmp_path: Path) -> None:
    out = tmp_path / "elsewhere" / "again"
    script = f'umask 027; hostname fixture-host-2; cd {tmp_path} && TZ=America/St_Johns exec "$0" -m bootstrap "$@"'
    argv = [
        "unshare",
        "--uts",
        "sh",
        "-c",
        script,
        sys.executable,
        "debian-slim",
        "-o",
        str(out),
        "-q",
        *mirrored.args(),
    ]
    run(argv, env={**os.environ, "PYTHONPATH": str(ROOT)})
    for name in ("image.tar", "rootfs.tar.gz", "lock.json", "sbom.spdx.json", "packages.txt"):
        assert (out / name).read_bytes() == (first / name).read_bytes(), f"{name} differs"


def test_lock_lists_sources_and_packages(first: Path, mirrored: Mirrored) -> None:
    lock = json.loads((first / "lock.json").read_text())
    assert lock["codename"] == "fixture" and lock["suite"] == "stable"
    dists = [s["dist"] for s in lock["sources"]]
    assert dists == ["fixture", "fixture-updates", "fixture-security"]
    release = (mirrored.repo.root / "dists/fixture/InRelease").read_bytes()
    assert lock["sources"][0]["inrelease_sha256"] == hashlib.sha256(release).hexdigest()
    names = [p["name"] for p in lock["packages"]]
    assert len(names) == 78 and names == sorted(names)
    pkg = lock["packages"][0]
    assert set(pkg) == {"name", "version", "architecture", "filename", "size", "sha256", "dist"}
    deb = mirrored.repo.root / pkg["filename"]
    assert hashlib.sha256(deb.read_bytes()).hexdigest() == pkg["sha256"] and deb.stat().st_size == pkg["size"]


def test_sbom_is_valid_spdx_and_complete(first: Path) -> None:
    pyspdxtools = need_tool("pyspdxtools")
    run([pyspdxtools, "-i", str(first / "sbom.spdx.json")])
    sbom = json.loads((first / "sbom.spdx.json").read_text())
    installed = [line.split("\t")[0] for line in (first / "packages.txt").read_text().splitlines()]
    debs = [p for p in sbom["packages"] if p["primaryPackagePurpose"] in ("LIBRARY", "APPLICATION")]
    assert sorted(p["name"] for p in debs) == sorted(installed)
    bash = next(p for p in debs if p["name"] == "bash")
    purl = bash["externalRefs"][0]["referenceLocator"]
    assert purl.startswith("pkg:deb/debian/bash@") and purl.endswith("?arch=amd64&distro=debian-13")
    assert "GPL-3.0-or-later" in bash["licenseDeclared"]
    contains = [r for r in sbom["relationships"] if r["relationshipType"] == "CONTAINS"]
    assert len(contains) == len(installed) + 1, "the image contains the operating system, which contains each"


def test_sbom_meets_ntia_minimum_and_cisa_framing(first: Path, tmp_path: Path) -> None:
    """sbomcheck passes NTIA and CISA's framing minimum on the SPDX 3 document; on the SPDX 2.3 one it passes
    NTIA and finds every CISA element but the SBOM type, which it reads from SPDX 3 only (ours is stated in the
    creation comment)."""
    sbomcheck = need_tool("sbomcheck")
    for comply in ("ntia", "fsct3-min"):
        three = run([sbomcheck, "-s", "spdx3", "-c", comply, str(first / "sbom.spdx3.json")], check=False)
        assert three.returncode == 0 and "Conformant: True" in three.stdout, three.stdout + three.stderr
    doc = first / "sbom.spdx.json"
    ntia = run([sbomcheck, "-c", "ntia", str(doc)], check=False)
    assert ntia.returncode == 0 and "Conformant: True" in ntia.stdout, ntia.stdout
    from ntia_conformance_checker.fsct_checker import FSCT3Checker

    fsct = FSCT3Checker(str(doc))
    failing = [name for name, ok in fsct.table_elements if not ok]
    assert failing == ["SBOM generation context (SBOM type) provided?"]
    sbom = json.loads(doc.read_text())
    assert "SBOM type: Build" in sbom["creationInfo"]["comment"]
    debs = {p["name"]: p for p in sbom["packages"] if p["primaryPackagePurpose"] in ("LIBRARY", "APPLICATION")}
    assert debs["bash"]["supplier"].startswith("Person: ") or debs["bash"]["supplier"].startswith("Organization: ")
    assert "(" in debs["bash"]["supplier"] and "@" in debs["bash"]["supplier"]
    assert debs["bash"]["licenseConcluded"] == debs["bash"]["licenseDeclared"]
    assert "Copyright" in debs["bash"]["copyrightText"] or "Free Software Foundation" in debs["bash"]["copyrightText"]
    free_form = [p for p in debs.values() if p["licenseConcluded"].startswith("LicenseRef-copyright-")]
    extracted = {e["licenseId"]: e for e in sbom.get("hasExtractedLicensingInfos", [])}
    for p in free_form:
        assert extracted[p["licenseConcluded"]]["extractedText"].strip()


def test_cyclonedx_sbom_is_valid_1_6(mirrored: Mirrored, tmp_path: Path) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    out = tmp_path / "cdx"
    mirrored.build(out, "--sbom-format", "cyclonedx")
    text = (out / "sbom.cdx.json").read_text()
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    doc = json.loads(text)
    spdx = json.loads((out / "sbom.spdx.json").read_text())
    assert doc["specVersion"] == "1.6" and doc["metadata"]["lifecycles"] == [{"phase": "build"}]
    assert len(doc["components"]) == len(spdx["packages"]) - 1
    packages = [c for c in doc["components"] if c["type"] != "operating-system"]
    assert all(c["supplier"]["name"] and c["version"] and c["purl"] for c in packages)
    assert trivy.check_build(out, tmp_path / "trivy-cache", "debian", "13") == len(packages)
    build = json.loads((out / "build.json").read_text())
    assert build["files"]["sbom.cdx.json"].startswith("sha256:")
    statement = json.loads((out / "provenance.intoto.json").read_text())
    names = [b["name"] for b in statement["predicate"]["runDetails"]["byproducts"]]
    assert names == ["lock.json", "sbom.cdx.json", "sbom.spdx.json", "sbom.spdx3.json"]


def test_provenance_is_an_in_toto_statement(first: Path) -> None:
    statement = json.loads((first / "provenance.intoto.json").read_text())
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == "https://slsa.dev/provenance/v1"
    build = json.loads((first / "build.json").read_text())
    (subject,) = statement["subject"]
    assert "sha256:" + subject["digest"]["sha256"] == build["image"]["manifest_digest"]
    definition = statement["predicate"]["buildDefinition"]
    lock = json.loads((first / "lock.json").read_text())
    by_uri = {d.get("uri"): d for d in definition["resolvedDependencies"]}
    for pkg in lock["packages"]:
        assert any(d["digest"] == {"sha256": pkg["sha256"]} for d in by_uri.values())
    assert definition["externalParameters"]["recipe"] == "debian-slim"
    lock_sha = hashlib.sha256((first / "lock.json").read_bytes()).hexdigest()
    byproducts = {b["name"]: b["digest"] for b in statement["predicate"]["runDetails"]["byproducts"]}
    assert byproducts["lock.json"] == {"sha256": lock_sha}
    config = _config_of(first / "image.tar")
    assert config["config"]["Labels"]["bootstrap.lock.sha256"] == f"sha256:{lock_sha}"


def _config_of(image_tar: Path) -> dict[str, Any]:
    import tarfile

    with tarfile.open(image_tar) as tar:

        def read(name: str) -> Any:
            member = tar.extractfile(name)
            assert member is not None
            return json.loads(member.read())

        index = read("index.json")
        manifest = read("blobs/sha256/" + index["manifests"][0]["digest"][7:])
        return read("blobs/sha256/" + manifest["config"]["digest"][7:])  # type: ignore[no-any-return]


def test_build_json_records_provenance(first: Path) -> None:
    build = json.loads((first / "build.json").read_text())
    assert build["recipe"]["name"] == "debian-slim"
    assert build["tool"]["name"] == "bootstrap"
    image_sha = hashlib.sha256((first / "image.tar").read_bytes()).hexdigest()
    assert build["files"]["image.tar"] == f"sha256:{image_sha}"
    assert set(build["timings"]) >= {"indexes", "resolve", "download", "unpack", "configure", "pack"}


def test_verify_passes_then_names_the_changed_file(first: Path, mirrored: Mirrored, tmp_path: Path) -> None:
    ok = bootstrap("verify", str(first), "--keyring", str(mirrored.repo.keyring), "--cache-dir", str(mirrored.cache))
    assert "verified" in ok.stdout
    broken = tmp_path / "broken"
    shutil.copytree(first, broken)
    data = bytearray((broken / "image.tar").read_bytes())
    data[len(data) // 2] ^= 0x01
    (broken / "image.tar").write_bytes(bytes(data))
    bad = bootstrap(
        "verify", str(broken), "--keyring", str(mirrored.repo.keyring), "--cache-dir", str(mirrored.cache), check=False
    )
    assert bad.returncode == 1
    assert "image.tar" in bad.stderr and "rootfs.tar.gz" not in bad.stderr


def test_builds_take_kept_gzip_members_and_verify_does_not(first: Path, mirrored: Mirrored, tmp_path: Path) -> None:
    """A rebuild takes the layer's gzip members from the cache (each shown to inflate to its block); `verify`
    compresses everything itself. Proved with a cache whose members were all re-encoded by libdeflate at another
    level with the same header (a member with another header is not taken): they still inflate to the same
    blocks, so a build takes them (other bytes), and verify is not fooled by them."""
    cache = tmp_path / "cache"
    shutil.copytree(mirrored.cache, cache, symlinks=True)
    kept = sorted((cache / "gzip").iterdir())
    assert len(kept) >= 2, "the first build kept its members"
    for path in kept:
        digest = path.name.split(".", 1)[0]
        (member,) = read_derived(path, digest) or [b""]
        other = bytes(deflate.gzip_compress(gzip.decompress(member), 4))
        assert other[:10] == member[:10] and other != member
        write_derived(path, digest, [other])
    args = mirrored.args()
    args[args.index("--cache-dir") + 1] = str(cache)
    again = tmp_path / "again"
    bootstrap("debian-slim", "-o", str(again), *args)
    assert (again / "rootfs.tar.gz").read_bytes() != (first / "rootfs.tar.gz").read_bytes(), "members were taken"
    assert gzip.decompress((again / "rootfs.tar.gz").read_bytes()) == gzip.decompress(
        (first / "rootfs.tar.gz").read_bytes()
    )
    ok = bootstrap("verify", str(first), "--keyring", str(mirrored.repo.keyring), "--cache-dir", str(cache))
    assert "verified" in ok.stdout


def test_an_insecure_build_says_so_everywhere(first: Path, mirrored: Mirrored, tmp_path: Path) -> None:
    out = tmp_path / "insecure"
    mirrored.build(out, "--insecure")
    assert json.loads((first / "build.json").read_text())["build"]["insecure"] is False
    assert json.loads((first / "lock.json").read_text())["insecure"] is False
    assert "annotations" not in json.loads((first / "sbom.spdx.json").read_text())
    assert json.loads((out / "build.json").read_text())["build"]["insecure"] is True
    assert json.loads((out / "lock.json").read_text())["insecure"] is True
    sbom = json.loads((out / "sbom.spdx.json").read_text())
    assert "--insecure" in sbom["comment"] and sbom["annotations"][0]["comment"] == sbom["comment"]
    run([need_tool("pyspdxtools"), "-i", str(out / "sbom.spdx.json")])
    warning = f"warning: {out} was built with --insecure: no archive signature vouched for its packages"
    checked = bootstrap("check", "debian-slim", "--against", str(out), *mirrored.args(), check=False)
    assert checked.returncode == 0 and warning in checked.stderr.splitlines()
    cache = ["--cache-dir", str(mirrored.cache)]
    again = bootstrap("verify", str(out), "--insecure", "--keyring", str(mirrored.repo.keyring), *cache)
    assert warning in again.stderr.splitlines() and again.stdout.startswith("verified:")
    quiet = bootstrap("check", "debian-slim", "--against", str(first), *mirrored.args(), check=False)
    assert "insecure" not in quiet.stderr


def test_inspect_ranks_packages_and_diffs(first: Path, tmp_path: Path) -> None:
    out = bootstrap("inspect", str(first), "--json").stdout
    data = json.loads(out)
    sizes = [p["size"] for p in data["packages"]]
    assert sizes == sorted(sizes, reverse=True) and sizes[0] > 1_000_000
    assert data["packages"][0]["name"] in {"libc6", "perl-base", "libssl3t64", "coreutils"}
    same = bootstrap("inspect", str(first), "--diff", str(first)).stdout
    assert "no differences" in same


def test_offline_build_uses_only_the_cache(first: Path, mirrored: Mirrored, tmp_path: Path) -> None:
    args = mirrored.args()
    args[args.index("--cache-dir") + 1] = str(tmp_path / "cache")
    server = Server(mirrored.repo.root)
    try:
        args[args.index("--mirror") + 1] = args[args.index("--security-mirror") + 1] = server.url
        bootstrap("debian-slim", "-o", str(tmp_path / "online"), "-q", *args)
    finally:
        server.stop()
    out = tmp_path / "offline"
    bootstrap("debian-slim", "-o", str(out), "-q", "--offline", *args)
    assert (out / "image.tar").read_bytes() == (tmp_path / "online" / "image.tar").read_bytes()
    args[args.index("--cache-dir") + 1] = str(tmp_path / "empty-cache")
    fail = bootstrap("debian-slim", "-o", str(tmp_path / "no"), "--offline", *args, check=False)
    assert fail.returncode != 0 and "--offline" in fail.stderr and not (tmp_path / "no").exists()


def test_lock_command_and_build_from_lock(first: Path, mirrored: Mirrored, tmp_path: Path) -> None:
    lock = tmp_path / "slim.lock.json"
    bootstrap("lock", "debian-slim", "-o", str(lock), *mirrored.args())
    assert lock.read_bytes() == (first / "lock.json").read_bytes()
    out = tmp_path / "from-lock"
    mirrored.build(out, "--lock", str(lock))
    assert (out / "image.tar").read_bytes() == (first / "image.tar").read_bytes()

    gone = json.loads(lock.read_text())
    gone["packages"][0]["version"] = "0.0-gone"
    lock.write_text(json.dumps(gone))
    fail = mirrored.build(tmp_path / "never", "--lock", str(lock), check=False)
    assert fail.returncode != 0
    assert "no longer carries" in fail.stderr and "snapshot" in fail.stderr
    assert not (tmp_path / "never").exists()


class Receiver(BaseHTTPRequestHandler):
    failures_left = 0
    received: list[tuple[bytes, dict[str, str]]] = []
    secret = b""

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        cls = type(self)
        if cls.failures_left > 0:
            cls.failures_left -= 1
            self.send_response(503)
            self.end_headers()
            return
        cls.received.append((body, dict(self.headers)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, type[Receiver]]]:
    handler = type("R", (Receiver,), {"failures_left": 0, "received": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", handler
    server.shutdown()
    server.server_close()


def _republish_with_security_update(mirrored: Mirrored, tmp_path: Path) -> None:
    deb = build_deb(
        tmp_path,
        "tzdata",
        "9999a-0+deb13u1",
        "all",
        priority="required",
        files={"usr/share/zoneinfo/Fixture/Zone": b"fixture\n"},
    )
    mirrored.repo.add_deb("fixture-security", deb)
    mirrored.repo.publish()


def test_check_build_if_changed_and_webhook(
    first: Path, mirrored: Mirrored, tmp_path: Path, receiver: tuple[str, type[Receiver]]
) -> None:
    same = bootstrap("check", "debian-slim", "--against", str(first), *mirrored.args(), check=False)
    assert same.returncode == 0, same.stderr
    assert "up to date" in same.stdout

    skipped = tmp_path / "skipped"
    shutil.copytree(first, skipped)
    before = (skipped / "image.tar").stat().st_mtime_ns
    up = bootstrap("build", "debian-slim", "--if-changed", str(skipped), "-q", *mirrored.args())
    assert "up to date" in up.stdout and (skipped / "image.tar").stat().st_mtime_ns == before

    _republish_with_security_update(mirrored, tmp_path)
    try:
        due = bootstrap("check", "debian-slim", "--against", str(first / "lock.json"), *mirrored.args(), check=False)
        assert due.returncode == 10, due.stderr
        assert "~ tzdata" in due.stdout and "9999a-0+deb13u1 [security]" in due.stdout
        report = json.loads(
            bootstrap("check", "debian-slim", "--against", str(first), "--json", *mirrored.args(), check=False).stdout
        )
        assert report["changes"] == [
            {
                "package": "tzdata",
                "kind": "upgraded",
                "old": report["changes"][0]["old"],
                "new": "9999a-0+deb13u1",
                "security": True,
            }
        ]

        url, handler = receiver
        handler.failures_left = 2
        secret = "s3cret-for-tests"
        rebuilt = bootstrap(
            "build",
            "debian-slim",
            "--if-changed",
            str(skipped),
            "-q",
            "--webhook",
            url,
            *mirrored.args(),
            env={"BOOTSTRAP_WEBHOOK_SECRET": secret},
        )
        assert "tzdata" in rebuilt.stderr
        assert "tzdata\t9999a-0+deb13u1\tall" in (skipped / "packages.txt").read_text()
        assert len(handler.received) == 1, "delivered once, after two refusals"
        body, headers = handler.received[0]
        webhook.verify_delivery(secret, headers, body)
        event = json.loads(body)
        assert event["event"] == "build" and event["recipe"] == "debian-slim"
        assert event["digests"]["manifest"] in rebuilt.stdout
        assert event["changes"]["changes"][0]["package"] == "tzdata"
    finally:
        mirrored.repo.dists["fixture-security"].stanzas.clear()
        mirrored.repo.publish()


def test_failed_webhook_does_not_undo_the_build(mirrored: Mirrored, tmp_path: Path) -> None:
    out = tmp_path / "hooked"
    proc = mirrored.build(out, "--webhook", "http://127.0.0.1:9/nothing-listens")
    assert proc.returncode == 0
    assert "webhook" in proc.stderr and (out / "image.tar").is_file()


def no_mounts_or_leftovers(tmp: Path, scratch: Path) -> None:
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(scratch) not in mounts, "a mount was left behind"
    assert not list(scratch.iterdir()), "scratch space was left behind"
    assert not list(tmp.glob(".*partial*"))


@pytest.mark.parametrize(
    "case",
    [
        "bad-signature",
        "unknown-key",
        "unsigned",
        "checksum",
        "unknown-suite",
        "unreachable",
        "missing-keyring",
        "unknown-recipe",
        "non-root",
    ],
)
def test_bad_input_fails_cleanly(
    case: str, mirrored: Mirrored, tmp_path: Path, gpg_key: object, other_gpg_key: object
) -> None:
    args = mirrored.args()
    server = None
    if case in ("bad-signature", "unknown-key", "unsigned", "checksum"):
        repo = Repo(tmp_path / "repo", mirrored.repo.key)
        shutil.copytree(mirrored.repo.root, repo.root, dirs_exist_ok=True, symlinks=True)
        repo.dists = dict(mirrored.repo.dists)
        server = Server(repo.root)
        args[args.index("--mirror") + 1] = args[args.index("--security-mirror") + 1] = server.url
        args[args.index("--cache-dir") + 1] = str(tmp_path / "cache")
        if case == "bad-signature":
            repo.tamper_inrelease("fixture")
        elif case == "unknown-key":
            repo.sign("fixture", other_gpg_key)  # type: ignore[arg-type]
        elif case == "unsigned":
            repo.write_unsigned("fixture")
        else:
            repo.corrupt("fixture")
    expected = {
        "bad-signature": "bad signature",
        "unknown-key": "key not in the keyring",
        "unsigned": "not signed",
        "checksum": "checksum mismatch",
        "unknown-suite": "not found",
        "unreachable": "cannot download",
        "missing-keyring": "does not exist",
        "unknown-recipe": "unknown recipe",
        "non-root": "without root needs a user namespace",
    }[case]
    recipe_name = "debian-slim"
    argv_prefix: list[str] = []
    if case == "unknown-suite":
        args += ["--suite", "no-such-suite"]
    elif case == "unreachable":
        args[args.index("--mirror") + 1] = args[args.index("--security-mirror") + 1] = "http://127.0.0.1:9"
        args[args.index("--cache-dir") + 1] = str(tmp_path / "cache")
    elif case == "missing-keyring":
        args[args.index("--keyring") + 1] = str(tmp_path / "no-such-keyring.gpg")
    elif case == "unknown-recipe":
        recipe_name = "no-such-recipe"
    elif case == "non-root":
        # An ordinary user that may still read the interpreter's files wherever they are installed.
        argv_prefix = [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=+dac_read_search",
            "--ambient-caps=+dac_read_search",
        ]
    out = tmp_path / "out"
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    os.chmod(tmp_path, 0o1777)  # open to the unprivileged user, sticky like /tmp (the cache inside stays trusted)
    try:
        proc = subprocess.run(
            [*argv_prefix, sys.executable, "-m", "bootstrap", recipe_name, "-o", str(out), *args],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(scratch)},
            cwd=tmp_path,
        )
    finally:
        if server is not None:
            server.stop()
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and expected in errors[0], proc.stderr
    assert any(line.startswith("hint: ") for line in lines), proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists(), "nothing may be written at the output path"
    no_mounts_or_leftovers(tmp_path, scratch)


def _repo_with_extra(mirrored: Mirrored, tmp_path: Path, name: str, postinst: str) -> tuple[Server, list[str]]:
    repo = Repo(tmp_path / "repo", mirrored.repo.key)
    shutil.copytree(mirrored.repo.root, repo.root, dirs_exist_ok=True, symlinks=True)
    repo.dists = {k: v for k, v in mirrored.repo.dists.items()}
    repo.dists["fixture"] = type(repo.dists["fixture"])(
        **{**vars(repo.dists["fixture"]), "stanzas": {"main": list(repo.dists["fixture"].stanzas["main"])}}
    )
    deb = build_deb(tmp_path / "debs", name, "1.0", priority="required", scripts={"postinst": postinst})
    repo.add_deb("fixture", deb)
    repo.publish()
    server = Server(repo.root)
    args = mirrored.args()
    args[args.index("--mirror") + 1] = args[args.index("--security-mirror") + 1] = server.url
    args[args.index("--cache-dir") + 1] = str(tmp_path / "cache")
    return server, args


def test_failing_maintainer_script_leaves_nothing_behind(mirrored: Mirrored, tmp_path: Path) -> None:
    server, args = _repo_with_extra(mirrored, tmp_path, "zz-broken", "#!/bin/sh\necho 'cannot configure' >&2\nexit 3\n")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    out = tmp_path / "out"
    try:
        proc = bootstrap("debian-slim", "-o", str(out), *args, check=False, env={"TMPDIR": str(scratch)})
    finally:
        server.stop()
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "zz-broken" in errors[0] and "cannot configure" in errors[0], proc.stderr
    assert not out.exists()
    no_mounts_or_leftovers(tmp_path, scratch)


@pytest.mark.parametrize("how", ["SIGINT", "SIGKILL"])
def test_interrupt_during_configure_undoes_everything(how: str, mirrored: Mirrored, tmp_path: Path) -> None:
    """Interrupted while a maintainer script runs: no output, no mount, no process left. After a SIGKILL the
    build cannot clean up: its mounts and processes go with its namespaces, and the next build sweeps the
    scratch and staging directories it left."""
    import signal
    import time

    marker = str(3600 + os.getpid() % 1000 + (1 if how == "SIGKILL" else 0))
    server, args = _repo_with_extra(mirrored, tmp_path, "zz-slow", f"#!/bin/sh\nexec sleep {marker}\n")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(scratch)}
    command = [sys.executable, "-m", "bootstrap", "debian-slim", "-o", str(out), "-q", *args]
    proc = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A test run in the background of a shell inherits SIGINT ignored; the build must see it.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 120
        while not running(["sleep", marker]):
            assert proc.poll() is None and time.monotonic() < deadline, "the build never reached configure"
            time.sleep(0.1)
        proc.send_signal(getattr(signal, how))
        _, stderr = proc.communicate(timeout=60)
        deadline = time.monotonic() + 10
        while running(["sleep", marker]) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not running(["sleep", marker]), "a maintainer script outlived the build"
    assert str(tmp_path) not in Path("/proc/self/mountinfo").read_text(), "a mount was left behind"
    assert not out.exists()
    if how == "SIGINT":
        assert proc.returncode == 130, stderr
        assert "interrupted" in stderr
    else:
        assert proc.returncode == -signal.SIGKILL
        assert list(scratch.iterdir()), "a SIGKILL leaves the scratch directory (the next build removes it)"
        args[args.index("--mirror") + 1] = args[args.index("--security-mirror") + 1] = mirrored.url
        bootstrap("debian-slim", "-o", str(out), "-q", *args, env={"TMPDIR": str(scratch)})
        assert (out / "image.tar").is_file()
    server.stop()
    no_mounts_or_leftovers(tmp_path, scratch)


def test_slow_paths_give_the_same_bytes(mirrored: Mirrored, tmp_path: Path) -> None:
    """On disk instead of tmpfs, with a cold cache (no parsed indexes, no decompressed packages): the same bytes
    as the fast path (warm cache, tree on tmpfs) from the same archive state. Both are built here: earlier tests
    re-sign the fixture archive, which moves the InRelease digests the lock, and so the image config, record."""
    fast = tmp_path / "fast"
    mirrored.build(fast)
    args = mirrored.args()
    args[args.index("--cache-dir") + 1] = str(tmp_path / "cold-cache")
    out = tmp_path / "slow"
    bootstrap("debian-slim", "-o", str(out), "-q", "--no-tmpfs", *args)
    for name in ("image.tar", "rootfs.tar.gz", "sbom.spdx.json", "packages.txt", "lock.json"):
        assert (out / name).read_bytes() == (fast / name).read_bytes(), name
