"""The records beside every image: lock, SBOM, package manifest and build provenance."""

import json
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bootstrap import __version__, sbom
from bootstrap.cache import sha256_file

if TYPE_CHECKING:
    from bootstrap.pipeline import Result
    from bootstrap.plan import Plan

IMAGE_FILES = ("image.tar", "rootfs.tar.gz")


def provenance(plan: "Plan", result: "Result", digests: Mapping[str, str]) -> dict[str, Any]:
    """build.json: what was built from what, by which tool, and how long each step took."""
    return {
        "tool": {"name": "bootstrap", "version": __version__, "python": platform.python_version()},
        "recipe": plan.recipe.as_dict(),
        "build": {
            "suite": plan.suite,
            "codename": result.codename,
            "arch": plan.arch,
            "mirror": plan.mirror,
            "security_mirror": plan.security_mirror,
            "compression": str(plan.compression),
            "from_lock": plan.lock is not None,
            "epoch": result.epoch,
            "tag": result.tag,
        },
        "image": {
            "index_digest": result.index_digest,
            "manifest_digest": result.manifest_digest,
            "config_digest": result.config_digest,
            "layer_digest": result.layer_digest,
            "diff_id": result.diff_id,
            "layer_size": result.layer_size,
            "tar_size": result.tar_size,
        },
        "files": dict(digests),
        "sources": [
            {"mirror": s.mirror, "dist": s.dist, "inrelease_sha256": s.inrelease_sha256} for s in result.lock.sources
        ],
        "timings": result.timings,
    }


def write_all(stage: Path, plan: "Plan", result: "Result", licenses: Mapping[str, Sequence[str]]) -> None:
    """Write lock.json, sbom.spdx.json, packages.txt and build.json into the staging directory."""
    (stage / "lock.json").write_bytes(result.lock.to_json())
    info = sbom.ImageInfo(result.tag, str(plan.recipe.distribution), plan.arch, result.epoch, result.manifest_digest)
    (stage / "sbom.spdx.json").write_bytes(sbom.make(info, result.packages.packages, licenses))
    (stage / "packages.txt").write_text("".join(f"{p.name}\t{p.version}\t{p.arch}\n" for p in result.packages.packages))
    digests = {name: "sha256:" + sha256_file(stage / name) for name in sorted(p.name for p in stage.iterdir())}
    (stage / "build.json").write_text(json.dumps(provenance(plan, result, digests), indent=2, sort_keys=True) + "\n")
