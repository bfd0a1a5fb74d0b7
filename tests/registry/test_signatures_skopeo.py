"""The judge of image signatures is containers/image, not us: skopeo 1.18 of Debian 13 (Debian 12's build has
sigstore verification disabled) runs in a Docker container made by bootstrap itself (debian-slim of trixie plus
the skopeo package, from the host's mirror; kept in Docker by the sha256 of its lock), with the policy
`bootstrap policy` writes, against a TLS registry with Basic auth on 127.0.0.1. It must accept what
`push --sign-key` signed and refuse an unsigned image, an image signed by another key, and a manifest changed
after it was signed; indexes too. The same for GPG simple signing (`signedBy`, signatures in a lookaside
directory)."""

import hashlib
import json
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from bootstrap.image.oci import canonical_json
from bootstrap.registry import Options, manifests, push, signatures
from bootstrap.registry.client import Client
from bootstrap.registry.manifests import Manifest
from bootstrap.sign import keys
from bootstrap.sign.gpgsign import GpgSigner
from tests.e2e.conftest import bootstrap, docker, need  # noqa: F401 - docker is a fixture
from tests.fixtures.gpg import GpgKey
from tests.registry.conftest import PASSWORD, USER, Layout, TLSRegistry

pytestmark = pytest.mark.e2e
CREDS = f"{USER}:{PASSWORD}"
RECIPE = """extends = "debian-slim"

[packages]
include = ["skopeo"]
"""


CACHED = "bootstrap-e2e/skopeo-cache"
"""Docker keeps the skopeo image between sessions under this name, tagged by the sha256 of its lock."""


@pytest.fixture(scope="session")
def skopeo_image(
    tmp_path_factory: pytest.TempPathFactory,
    docker: Callable[..., subprocess.CompletedProcess[str]],  # noqa: F811
    as_root: None,
) -> str:
    """A trixie image with skopeo, made by bootstrap from the host's mirror and loaded into Docker: resolved
    first (`bootstrap lock`, a second), built only when Docker has no image of that lock yet (older ones are
    removed then)."""
    work = tmp_path_factory.mktemp("skopeo-image")
    recipes = work / "recipes"
    recipes.mkdir(mode=0o700)
    (recipes / "skopeo.toml").write_text(RECIPE)
    lock = work / "skopeo.lock.json"
    bootstrap("lock", str(recipes / "skopeo.toml"), "--suite", "trixie", "-o", str(lock), "-q")
    tag = f"{CACHED}:{hashlib.sha256(lock.read_bytes()).hexdigest()[:32]}"
    if docker("image", "inspect", tag, check=False).returncode != 0:
        old = docker("images", "--format", "{{.Repository}}:{{.Tag}}", CACHED).stdout.split()
        bootstrap(str(recipes / "skopeo.toml"), "--lock", str(lock), "--tag", tag, "-o", str(work / "out"), "-q")
        docker("load", "-i", str(work / "out" / "image.tar"))
        for stale in old:
            docker("rmi", stale, check=False)
    version = docker("run", "--rm", tag, "skopeo", "--version").stdout
    need(version.split()[-1] >= "1.18", f"sigstore signatures need skopeo >= 1.18, the image has {version}")
    return tag


@dataclass(frozen=True)
class Judge:
    """skopeo copy, with the policy and registries.d `bootstrap policy` wrote for one key and one registry."""

    image: str
    registry: TLSRegistry
    config: Path
    docker: Callable[..., subprocess.CompletedProcess[str]]
    mounts: tuple[tuple[Path, str], ...] = ()

    def copy(self, ref: str, *flags: str) -> subprocess.CompletedProcess[str]:
        return self.docker(
            "run", "--rm", "--network", "host",
            "-v", f"{self.config}:/policy:ro",
            "-v", f"{self.registry.cert_dir}:/certs:ro",
            *(f"--volume={host}:{inside}:ro" for host, inside in self.mounts),
            self.image,
            "skopeo", "--policy", "/policy/policy.json", "--registries.d", "/policy/registries.d",
            "copy", "--src-cert-dir", "/certs", "--src-creds", CREDS, *flags,
            f"docker://{ref}", "dir:/tmp/copy",
            check=False,
        )  # fmt: skip

    def accepts(self, ref: str, *flags: str) -> None:
        proc = self.copy(ref, *flags)
        assert proc.returncode == 0, f"skopeo refused {ref}: {proc.stderr}"

    def refuses(self, ref: str, *flags: str) -> str:
        proc = self.copy(ref, *flags)
        assert proc.returncode != 0, f"skopeo accepted {ref}"
        assert "Source image rejected" in proc.stderr, proc.stderr
        return proc.stderr


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> keys.SigningKey:
    return keys.generate()


@pytest.fixture(scope="module")
def judge(
    tls_registry: TLSRegistry,
    skopeo_image: str,
    key: keys.SigningKey,
    docker: Callable[..., subprocess.CompletedProcess[str]],  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Judge:
    work = tmp_path_factory.mktemp("policy")
    (work / "key.pub").write_bytes(key.public.pem())
    bootstrap(
        "policy", "--key", str(work / "key.pub"), "--registry", f"{tls_registry.host}/signed", "-o", str(work / "c")
    )
    return Judge(skopeo_image, tls_registry, work / "c", docker)


def opts(registry: TLSRegistry) -> Options:
    return Options(creds=CREDS, ca_cert=registry.ca.ca_cert, certs_dir=registry.cert_dir.parent / "none")


def put(registry: TLSRegistry, repo: str, tag: str, manifest: Manifest) -> None:
    with Client(registry.host, opts(registry)) as client:
        client.need(repo, "pull,push")
        manifests.put(client, repo, tag, manifest)


def get(registry: TLSRegistry, repo: str, reference: str) -> Manifest:
    with Client(registry.host, opts(registry)) as client:
        client.need(repo, "pull")
        return manifests.get(client, repo, reference)


def test_skopeo_accepts_a_signed_image_and_refuses_an_unsigned_one_or_another_key(
    judge: Judge, tls_registry: TLSRegistry, amd64: Layout, arm64: Layout, key: keys.SigningKey
) -> None:
    host = tls_registry.host
    push(amd64.tar, f"{host}/signed/img:good", opts(tls_registry), sign=key)
    judge.accepts(f"{host}/signed/img:good")
    judge.accepts(f"{host}/signed/img@{amd64.digest}")
    push(arm64.tar, f"{host}/signed/img:unsigned", opts(tls_registry))
    assert "A signature was required, but no signature exists" in judge.refuses(f"{host}/signed/img:unsigned")
    push(arm64.tar, f"{host}/signed/other:1", opts(tls_registry), sign=keys.generate())
    judge.refuses(f"{host}/signed/other:1")


def test_skopeo_refuses_a_manifest_changed_after_signing(
    judge: Judge, tls_registry: TLSRegistry, amd64: Layout, key: keys.SigningKey
) -> None:
    host, repo = tls_registry.host, "signed/changed"
    push(amd64.tar, f"{host}/{repo}:1", opts(tls_registry), sign=key)
    doc = get(tls_registry, repo, "1").json
    doc["annotations"] = {"changed": "after signing"}
    changed = Manifest(doc["mediaType"], canonical_json(doc))
    put(tls_registry, repo, "1", changed)
    # The signature of the original, copied to the changed manifest's signature tag: it names the other digest.
    put(
        tls_registry,
        repo,
        signatures.tag_for(changed.digest),
        get(tls_registry, repo, signatures.tag_for(amd64.digest)),
    )
    judge.refuses(f"{host}/{repo}:1")


def test_skopeo_checks_indexes_and_their_platforms(
    judge: Judge, tls_registry: TLSRegistry, multi: Layout, arm64: Layout, key: keys.SigningKey
) -> None:
    """skopeo checks the signature of each platform's image it copies (one, or all with --all)."""
    host, repo = tls_registry.host, "signed/multi"
    amd64_digest, arm64_digest = (i.manifest.digest for i in multi.images)
    push(multi.tar, f"{host}/{repo}:1", opts(tls_registry), sign=key)
    judge.accepts(f"{host}/{repo}:1")
    judge.accepts(f"{host}/{repo}:1", "--all")
    judge.accepts(f"{host}/{repo}@{arm64_digest}")
    # The index changed after signing to list an unsigned arm64 image, with the old index's signature.
    push(arm64.tar, f"{host}/{repo}:arm64-unsigned", opts(tls_registry))
    doc = json.loads(get(tls_registry, repo, "1").data)
    doc["manifests"][1].update(digest=arm64.digest, size=len(arm64.images[0].manifest.data))
    changed = Manifest(doc["mediaType"], canonical_json(doc))
    put(tls_registry, repo, "2", changed)
    old = get(tls_registry, repo, signatures.tag_for(multi.index_digest))
    put(tls_registry, repo, signatures.tag_for(changed.digest), old)
    judge.refuses(f"{host}/{repo}:2", "--all")
    judge.refuses(f"{host}/{repo}:2", "--override-arch", "arm64")
    # The amd64 image with the arm64 image's signature: that platform is refused.
    put(tls_registry, repo, signatures.tag_for(amd64_digest), get(tls_registry, repo, signatures.tag_for(arm64_digest)))
    judge.refuses(f"{host}/{repo}:1", "--override-arch", "amd64")
    judge.refuses(f"{host}/{repo}@{amd64_digest}")
    judge.accepts(f"{host}/{repo}@{arm64_digest}")
    # An index signed by nobody.
    push(multi.tar, f"{host}/signed/multi-unsigned:1", opts(tls_registry))
    judge.refuses(f"{host}/signed/multi-unsigned:1", "--all")
    judge.refuses(f"{host}/signed/multi-unsigned:1")


# --- GPG simple signing, for signedBy policies ---------------------------------------------------------------


@pytest.fixture(scope="module")
def gpg_judge(
    tls_registry: TLSRegistry,
    skopeo_image: str,
    gpg_key: GpgKey,
    docker: Callable[..., subprocess.CompletedProcess[str]],  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Judge, Path]:
    """A judge requiring GPG signatures by `gpg_key`, read from a lookaside directory mounted at /lookaside."""
    work = tmp_path_factory.mktemp("gpg-policy")
    keyring = gpg_key.export(work / "key.gpg")
    lookaside = work / "lookaside"
    lookaside.mkdir()
    out = work / "c"
    args = ("--gpg-key", str(keyring), "--lookaside", "file:///lookaside", "--registry", f"{tls_registry.host}/gpg")
    bootstrap("policy", *args, "-o", str(out))
    return Judge(skopeo_image, tls_registry, out, docker, ((lookaside, "/lookaside"),)), lookaside


def gpg_push(layout: Layout, ref: str, registry: TLSRegistry, key: GpgKey, lookaside: Path) -> str:
    env = {"GNUPGHOME": str(key.home)}
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        return push(layout.tar, ref, opts(registry), gpg=GpgSigner(key.fingerprint, lookaside))


def test_skopeo_checks_gpg_signatures_from_the_lookaside_store(
    gpg_judge: tuple[Judge, Path],
    tls_registry: TLSRegistry,
    amd64: Layout,
    multi: Layout,
    gpg_key: GpgKey,
    other_gpg_key: GpgKey,
) -> None:
    judge, lookaside = gpg_judge
    host = tls_registry.host
    gpg_push(amd64, f"{host}/gpg/img:1", tls_registry, gpg_key, lookaside)
    judge.accepts(f"{host}/gpg/img:1")
    gpg_push(amd64, f"{host}/gpg/img:1", tls_registry, gpg_key, lookaside)
    assert [p.name for p in (lookaside / f"gpg/img@{amd64.digest.replace(':', '=')}").iterdir()] == ["signature-1"]
    gpg_push(multi, f"{host}/gpg/multi:1", tls_registry, gpg_key, lookaside)
    judge.accepts(f"{host}/gpg/multi:1", "--all")
    push(amd64.tar, f"{host}/gpg/unsigned:1", opts(tls_registry))
    judge.refuses(f"{host}/gpg/unsigned:1")
    gpg_push(amd64, f"{host}/gpg/other:1", tls_registry, other_gpg_key, lookaside)
    judge.refuses(f"{host}/gpg/other:1")
    # Another tag of the same repository: the default identity wants the exact reference signed.
    push(amd64.tar, f"{host}/gpg/img:2", opts(tls_registry))
    judge.refuses(f"{host}/gpg/img:2")
    # A manifest changed after signing, with the old signature put where the new digest's would be.
    gpg_push(amd64, f"{host}/gpg/changed:1", tls_registry, gpg_key, lookaside)
    doc = get(tls_registry, "gpg/changed", "1").json
    doc["annotations"] = {"changed": "after signing"}
    changed = Manifest(doc["mediaType"], canonical_json(doc))
    put(tls_registry, "gpg/changed", "1", changed)
    signed = lookaside / f"gpg/changed@{amd64.digest.replace(':', '=')}"
    shutil.copytree(signed, lookaside / f"gpg/changed@{changed.digest.replace(':', '=')}")
    judge.refuses(f"{host}/gpg/changed:1")
