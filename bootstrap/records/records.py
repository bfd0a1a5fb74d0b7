"""The records beside every image: lock, SBOM (SPDX, and CycloneDX when asked), package manifest, build
provenance (an in-toto statement) and build.json, a readable summary."""

import json
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bootstrap import __version__
from bootstrap.host.cache import sha256_file
from bootstrap.records import cyclonedx, provenance, sbom, spdx3

if TYPE_CHECKING:
    from bootstrap.build.pipeline import Result
    from bootstrap.build.plan import Plan


def name(base: str, arch: str, multi: bool) -> str:
    """A file name of the output directory; per-architecture files carry the architecture when there are several."""
    if not multi:
        return base
    stem, dot, ext = base.partition(".")
    return f"{stem}-{arch}{dot}{ext}"


def summary(plan: "Plan", result: "Result", digests: Mapping[str, str]) -> dict[str, Any]:
    """build.json: what was built from what, by which tool, and how long each step took (the provenance proper
    is the in-toto statement beside it)."""
    return {
        "tool": {"name": "bootstrap", "version": __version__, "python": platform.python_version()},
        "recipe": plan.recipe.as_dict(),
        "build": {
            "suite": plan.suite,
            "codename": result.codename,
            "arch": ",".join(plan.arches),
            "mirror": plan.mirror,
            "security_mirror": plan.security_mirror,
            "compression": str(plan.compression),
            "from_lock": plan.lock is not None,
            "insecure": plan.insecure,
            "epoch": result.epoch,
            "tag": result.tag,
        },
        "image": {
            "index_digest": result.index_digest,
            "manifest_digest": result.manifest_digest,
            **(
                {
                    "config_digest": result.first.image.config.digest,
                    "layer_digest": result.first.layer.digest,
                    "diff_id": result.first.layer.diff_id,
                    "layer_size": result.first.layer.size,
                    "tar_size": result.first.layer.tar_size,
                }
                if len(result.platforms) == 1
                else {}
            ),
        },
        "platforms": [
            {
                "arch": p.arch,
                "manifest_digest": p.image.manifest.digest,
                "config_digest": p.image.config.digest,
                "layer_digest": p.layer.digest,
                "diff_id": p.layer.diff_id,
                "layer_size": p.layer.size,
                "tar_size": p.layer.tar_size,
                "packages": len(p.selection.packages),
                "timings": p.timings,
                "native_tools": p.native_tools,
            }
            for p in result.platforms
        ],
        "files": dict(digests),
        "sources": [
            {"mirror": s.mirror, "dist": s.dist, "inrelease_sha256": s.inrelease_sha256} for s in result.lock.sources
        ],
        "timings": result.first.timings,
    }


SBOM_FORMATS = ("spdx", "spdx3", "cyclonedx")
"""SPDX 2.3 and SPDX 3.0.1 are always written; CycloneDX when asked."""
VENDOR_LABEL = "org.opencontainers.image.vendor"


def write_all(stage: Path, plan: "Plan", result: "Result", known: Mapping[str, str] | None = None) -> None:
    """Write lock, SBOMs and package list per architecture, the provenance statement over them, then build.json
    over everything (`known`: digests of files of the stage already hashed as they were written)."""
    multi = len(result.platforms) > 1
    records: list[str] = []

    def put(base: str, arch: str, data: bytes) -> None:
        records.append(name(base, arch, multi))
        (stage / records[-1]).write_bytes(data)

    for p in result.platforms:
        put("lock.json", p.arch, p.lock.to_json())
        info = sbom.ImageInfo(
            result.tag,
            str(plan.recipe.distribution),
            p.arch,
            result.epoch,
            p.image.manifest.digest,
            plan.insecure,
            dict(plan.recipe.labels).get(VENDOR_LABEL, ""),
        )
        put("sbom.spdx.json", p.arch, sbom.make(info, p.selection.packages, p.notices))
        put("sbom.spdx3.json", p.arch, spdx3.make(info, p.selection.packages, p.notices))
        if "cyclonedx" in plan.sbom_formats:
            put("sbom.cdx.json", p.arch, cyclonedx.make(info, p.selection.packages, p.notices))
        (stage / name("packages.txt", p.arch, multi)).write_text(
            "".join(f"{pkg.name}\t{pkg.version}\t{pkg.arch}\n" for pkg in p.selection.packages)
        )
    byproducts = {n: "sha256:" + sha256_file(stage / n) for n in records}
    (stage / provenance.FILE).write_bytes(provenance.statement(plan, result, byproducts))
    known = known or {}
    digests = {n: known.get(n) or "sha256:" + sha256_file(stage / n) for n in sorted(p.name for p in stage.iterdir())}
    (stage / "build.json").write_text(json.dumps(summary(plan, result, digests), indent=2, sort_keys=True) + "\n")
