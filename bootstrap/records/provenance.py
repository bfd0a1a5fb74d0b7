"""Build provenance as an in-toto Statement (v1) with a SLSA Provenance (v1) predicate.

Subjects are the image manifests (and the index when there are several platforms); the resolved
dependencies are every signed InRelease, every .deb and every input of the recipe, by digest; the
byproducts are the lock and SBOM files. No clock time or host detail goes in: the statement is a function of
the build's inputs, so `verify` compares it like any other output.
"""

import json
from collections.abc import Mapping
from typing import Any

from bootstrap import __version__
from bootstrap.records import links
from bootstrap.records.facts import PackageFacts, Result

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
MEDIA_TYPE = "application/vnd.in-toto+json"


def _hex(digest: str) -> dict[str, str]:
    algo, _, value = digest.partition(":")
    return {algo: value}


def subjects(result: Result[PackageFacts, object]) -> list[dict[str, Any]]:
    out = [
        {"name": f"{result.tag} (linux/{p.arch})", "digest": _hex(p.image.manifest.digest)} for p in result.platforms
    ]
    if len(result.platforms) > 1:
        out.insert(0, {"name": result.tag, "digest": _hex(result.index_digest)})
    else:
        out[0]["name"] = result.tag
    return out


def dependencies(result: Result[PackageFacts, object]) -> list[dict[str, Any]]:
    deps: dict[str, dict[str, Any]] = {}
    for p in result.platforms:
        for s in p.lock.sources:
            uri = f"{s.mirror}/dists/{s.dist}/InRelease"
            deps[uri] = {"uri": uri, "digest": {"sha256": s.inrelease_sha256}}
        for pkg in p.packages:
            deps[pkg.url] = {
                "uri": pkg.url,
                "name": pkg.name,
                "digest": {"sha256": pkg.sha256},
                "annotations": {"version": pkg.version, "architecture": pkg.arch, "suite": pkg.dist},
            }
        for i in p.lock.inputs:
            deps[f"{i.kind}:{i.name}"] = {"name": f"{i.kind}:{i.name}", "digest": {"sha256": i.sha256}}
    return [deps[k] for k in sorted(deps)]


def statement(result: Result[PackageFacts, object], byproducts: Mapping[str, str]) -> bytes:
    """The provenance of a build; `byproducts` maps record file names to their `sha256:` digests."""
    s = result.settings
    doc = {
        "_type": STATEMENT_TYPE,
        "subject": subjects(result),
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": links.build_type(s.records_url),
                "externalParameters": {
                    "recipe": s.recipe_name,
                    "suite": s.suite,
                    "arches": list(s.arches),
                    "tag": result.tag,
                    "compression": s.compression,
                    "mirror": s.mirror,
                    "securityMirror": s.security_mirror,
                    "insecure": s.insecure,
                },
                "internalParameters": {"codename": result.codename, "epoch": result.epoch},
                "resolvedDependencies": dependencies(result),
            },
            "runDetails": {
                "builder": {"id": links.builder_id(s.records_url), "version": {"bootstrap": __version__}},
                "metadata": {"invocationId": f"{result.tag}@{result.manifest_digest}"},
                "byproducts": [{"name": name, "digest": _hex(d)} for name, d in sorted(byproducts.items())],
            },
        },
    }
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()
