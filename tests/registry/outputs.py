"""A `bootstrap build` output directory made from real layers and a real lock, without building: image.tar whose
config carries the lock's digest label, lock.json, an SBOM, a provenance statement and build.json."""

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from bootstrap.image.layer import pack
from bootstrap.image.oci import Image, ImageSettings, make_image, write_archive
from bootstrap.records import lock as lock_mod
from bootstrap.records import outputs, provenance, sbom
from bootstrap.records.lock import Lock
from tests.fixtures.records import neutral_package

EPOCH = 1_700_000_000


@dataclass(frozen=True)
class Output:
    directory: Path
    image: Image
    lock: Lock

    @property
    def digest(self) -> str:
        return self.image.manifest.digest


def sample_lock(codename: str = "fixture", version: str = "1.0") -> Lock:
    pkg = lock_mod.LockedPackage("base", version, "amd64", "pool/base.deb", 1, "0" * 64, codename)
    source = lock_mod.LockedSource("http://127.0.0.1:1/debian", codename, "stable", EPOCH, "1" * 64)
    return Lock("debian-slim", "debian", "stable", codename, "amd64", EPOCH, (source,), (pkg,))


def _digest(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def build_output(directory: Path, lock: Lock | None = None, noise: bytes = b"") -> Output:
    lock = lock or sample_lock()
    root = directory / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "os-release").write_bytes(b"ID=bootstrap-test\n" + noise)
    out = directory / "out"
    out.mkdir()
    layer = pack(root, EPOCH, out / "rootfs.tar.gz")
    settings = ImageSettings(arch=lock.arch, epoch=EPOCH, labels={lock_mod.LABEL: lock.digest})
    image = make_image(layer, settings)
    write_archive(out / "image.tar", [image], ["debian:fixture-slim"], EPOCH)
    (out / "lock.json").write_bytes(lock.to_json())
    info = sbom.ImageInfo("debian:fixture-slim", "debian", lock.arch, EPOCH, image.manifest.digest)
    (out / "sbom.spdx.json").write_bytes(sbom.make(info, [neutral_package("base")], {}))
    statement = {
        "_type": provenance.STATEMENT_TYPE,
        "subject": [{"name": "debian:fixture-slim", "digest": {"sha256": image.manifest.digest[7:]}}],
        "predicateType": provenance.PREDICATE_TYPE,
        "predicate": {},
    }
    (out / outputs.PROVENANCE.file).write_text(json.dumps(statement))
    files = {p.name: _digest(p) for p in out.iterdir()}
    summary = {
        "build": {"epoch": EPOCH},
        "platforms": [{"arch": lock.arch, "manifest_digest": image.manifest.digest}],
        "files": files,
    }
    (out / "build.json").write_text(json.dumps(summary))
    return Output(out, image, lock)
