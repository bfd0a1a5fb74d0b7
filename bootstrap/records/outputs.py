"""The outputs of a build and the records beside every image, as one table: each file's name, media type,
writer, whether `verify` compares it byte for byte, whether it is attached to a pushed image, and when it is
written. The pipeline, `verify`, `inspect`, the registry attachments, fleets and the CLI help all read it.

A new record is one row of `OUTPUTS` and one writer function (bytes from a `Context`)."""

import enum
import json
import platform as host_platform
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bootstrap import __version__
from bootstrap.family.model import Notice, Package
from bootstrap.host.cache import sha256_file
from bootstrap.records import attestation, cyclonedx, provenance, sbom, spdx3
from bootstrap.records.facts import Platform, Result
from bootstrap.sign import dsse

if TYPE_CHECKING:  # loaded when signing (cryptography costs every build's start otherwise)
    from bootstrap.sign.keys import SigningKey

Built = Result[Package, Notice]
"""A build as the record writers read it."""
BuiltPlatform = Platform[Package, Notice]


def name(base: str, arch: str, multi: bool) -> str:
    """A file name of the output directory; per-architecture files carry the architecture when there are several."""
    if not multi:
        return base
    stem, dot, ext = base.partition(".")
    return f"{stem}-{arch}{dot}{ext}"


@dataclass(frozen=True)
class Context:
    """What a writer is given: the build, the platform of a per-architecture file, and for a once-per-build
    file the digests (`sha256:<hex>`) of every file written before it."""

    result: Built
    part: BuiltPlatform | None = None
    digests: Mapping[str, str] | None = None
    key: "SigningKey | None" = None
    """The key that signs the records (`--sign-key`), for an envelope's writer."""
    record: bytes = b""
    """For an envelope's writer: the bytes of the record it signs."""

    @property
    def platform(self) -> BuiltPlatform:
        assert self.part is not None, "a per-architecture writer"
        return self.part

    @property
    def files(self) -> Mapping[str, str]:
        assert self.digests is not None, "a once-per-build writer"
        return self.digests


Writer = Callable[[Context], bytes]


class Compare(enum.Enum):
    """How `verify` compares a file with the rebuild's."""

    BYTES = "bytes"
    RECORDED = "recorded"
    """By what it records, without the timings (build.json)."""
    SIGNATURE = "signature"
    """Not compared (the rebuild signs nothing, and an ECDSA signature is new each time): checked against the
    public key instead (`verify --key`)."""


@dataclass(frozen=True)
class Output:
    """One file of a build's output directory."""

    file: str
    """Its name in a single-architecture build (`name` adds the architecture in a multi-architecture one)."""
    media_type: str
    """Its media type; the `artifactType` of the record attached to a pushed image."""
    write: Writer | None
    """Its writer; None for what the pipeline writes itself (the image archive and the layers)."""
    per_arch: bool
    compare: Compare = Compare.BYTES
    attached: bool = False
    """Attached to the pushed image (a per-architecture record to its platform's image, a once-per-build record
    to every image and the index)."""
    byproduct: bool = False
    """Named with its digest by the provenance statement."""
    sbom: str = ""
    """The SBOM format it holds (`--sbom-format`)."""
    asked: bool = False
    """Written only when its SBOM format is asked for; else always."""
    title: str = ""
    """What it is, for help texts."""
    suffixed: bool = False
    """Its name takes the layer compression's suffix (`.tar.gz`, `.tar.zst`, `.tar`)."""
    signs: "Output | None" = None
    """The record this file is the signed DSSE envelope of (named after it); written only when the build signs
    (`--sign-key`)."""

    def name(self, arch: str = "", multi: bool = False, suffix: str = "") -> str:
        return name(self.file + suffix if self.suffixed else self.file, arch, multi and self.per_arch)

    def names(self, arches: tuple[str, ...], suffix: str = "") -> list[str]:
        """Its file names in a build of these architectures."""
        return [self.name(a, len(arches) > 1, suffix) for a in (arches if self.per_arch else arches[:1])]

    def wanted(self, sbom_formats: tuple[str, ...], signed: bool = False) -> bool:
        """Whether a build with these SBOM formats (and signed or not) writes it."""
        if self.signs is not None:
            return signed and self.signs.wanted(sbom_formats)
        return not self.asked or self.sbom in sbom_formats


VENDOR_LABEL = "org.opencontainers.image.vendor"


def _info(c: Context) -> sbom.ImageInfo:
    r, p = c.result, c.platform
    s = r.settings
    digest = p.image.manifest.digest
    return sbom.ImageInfo(
        r.tag, s.distribution, p.arch, r.epoch, digest, s.insecure, s.vendor, p.system, s.records_url
    )  # fmt: skip


def _lock(c: Context) -> bytes:
    return c.platform.lock.to_json()


def _spdx(c: Context) -> bytes:
    return sbom.make(_info(c), c.platform.packages, c.platform.notices)


def _spdx3(c: Context) -> bytes:
    return spdx3.make(_info(c), c.platform.packages, c.platform.notices)


def _cyclonedx(c: Context) -> bytes:
    return cyclonedx.make(_info(c), c.platform.packages, c.platform.notices)


def _packages(c: Context) -> bytes:
    return "".join(f"{pkg.name}\t{pkg.version}\t{pkg.arch}\n" for pkg in c.platform.packages).encode()


def _provenance(c: Context) -> bytes:
    byproducts = {n: d for n, d in c.files.items() if n in _names(c.result, lambda o: o.byproduct)}
    return provenance.statement(c.result, byproducts)


def _signed_sbom(predicate_type: str) -> Writer:
    """The writer of an SBOM's envelope: the SBOM as an in-toto Statement about its platform's image, signed."""

    def write(c: Context) -> bytes:
        assert c.key is not None, "written only when the build signs"
        statement = attestation.sbom_statement(c.record, predicate_type, c.result.tag, c.platform.image.manifest.digest)
        return dsse.sign(statement, c.key)

    return write


def _signed_as_is(c: Context) -> bytes:
    """A record that is an in-toto Statement already (the provenance), in a signed envelope."""
    assert c.key is not None, "written only when the build signs"
    return dsse.sign(c.record, c.key)


def _summary(c: Context) -> bytes:
    return (json.dumps(summary(c.result, c.files), indent=2, sort_keys=True) + "\n").encode()


IMAGE = Output("image.tar", "application/x-tar", None, per_arch=False, title="the OCI image archive")
ROOTFS = Output(
    "rootfs", "application/vnd.oci.image.layer.v1.tar", None, per_arch=True, suffixed=True, title="the layer"
)
LOCK = Output(
    "lock.json",
    "application/vnd.bootstrap.lock.v1+json",
    _lock,
    per_arch=True,
    attached=True,
    byproduct=True,
    title="the lock",
)
SPDX = Output(
    "sbom.spdx.json",
    "application/spdx+json",
    _spdx,
    per_arch=True,
    attached=True,
    byproduct=True,
    sbom="spdx",
    title="SPDX 2.3",
)
SPDX3 = Output(
    "sbom.spdx3.json",
    "application/spdx+json",
    _spdx3,
    per_arch=True,
    attached=True,
    byproduct=True,
    sbom="spdx3",
    title="SPDX 3.0.1",
)
CYCLONEDX = Output(
    "sbom.cdx.json",
    "application/vnd.cyclonedx+json",
    _cyclonedx,
    per_arch=True,
    attached=True,
    byproduct=True,
    sbom="cyclonedx",
    asked=True,
    title="CycloneDX 1.6 JSON",
)
PACKAGES = Output("packages.txt", "text/tab-separated-values", _packages, per_arch=True, title="the package list")
PROVENANCE = Output(
    "provenance.intoto.json", provenance.MEDIA_TYPE, _provenance, per_arch=False, attached=True, title="provenance"
)
ENVELOPE = ".dsse.json"
"""The suffix of a signed record's envelope: `sbom.spdx.json.dsse.json` signs `sbom.spdx.json`."""


def _envelope(row: Output, write: Writer) -> Output:
    return Output(
        row.file + ENVELOPE,
        dsse.MEDIA_TYPE,
        write,
        per_arch=row.per_arch,
        compare=Compare.SIGNATURE,
        attached=True,
        signs=row,
        title=f"the signed envelope of {row.file}",
    )


SPDX_SIGNED = _envelope(SPDX, _signed_sbom(attestation.SPDX_PREDICATE))
SPDX3_SIGNED = _envelope(SPDX3, _signed_sbom(attestation.SPDX_PREDICATE))
CYCLONEDX_SIGNED = _envelope(CYCLONEDX, _signed_sbom(attestation.CYCLONEDX_PREDICATE))
PROVENANCE_SIGNED = _envelope(PROVENANCE, _signed_as_is)
SUMMARY = Output(
    "build.json", "application/json", _summary, per_arch=False, compare=Compare.RECORDED, title="the build's summary"
)

OUTPUTS = (
    IMAGE, ROOTFS, LOCK, SPDX, SPDX3, CYCLONEDX, PACKAGES, PROVENANCE,
    SPDX_SIGNED, SPDX3_SIGNED, CYCLONEDX_SIGNED, PROVENANCE_SIGNED, SUMMARY,
)  # fmt: skip
"""Every file of a build's output directory, in the order written (a once-per-build record is written after
every file before it: the provenance names the records' digests, build.json every file's; an envelope after
the record it signs)."""
SIGNED = tuple(o for o in OUTPUTS if o.signs is not None)
"""The envelopes of the signed records."""

SBOM_FORMATS = tuple(o.sbom for o in OUTPUTS if o.sbom)
"""The SBOM formats: those not `asked` are always written."""


def sbom_help() -> str:
    """The SBOM formats as the CLI's help lists them."""
    asked = "; ".join(f"{o.sbom} ({o.title}, {o.file})" for o in OUTPUTS if o.asked)
    always = " and ".join(f"{o.title} ({o.file})" for o in OUTPUTS if o.sbom and not o.asked)
    return f"{asked}; {always} are always written"


def listing(which: Callable[[Output], bool] = lambda o: True) -> str:
    """The files as help texts list them: `lock.json (the lock), ...`."""
    shown = [f"{o.name(suffix='.tar.*')} ({o.title}{_when(o)})" for o in OUTPUTS if which(o)]
    return ", ".join(shown)


def row_of(file_name: str) -> Output | None:
    """The row a file of an output directory belongs to (`sbom-arm64.spdx.json` to SPDX), or None."""
    stem, _, ext = file_name.partition(".")
    for o in OUTPUTS:
        own_stem, _, own_ext = o.file.partition(".")
        if ext == own_ext and (stem == own_stem or (o.per_arch and stem.startswith(own_stem + "-"))):
            return o
    return None


def is_output(file_name: str) -> bool:
    """Whether bootstrap writes files of this name into an output directory (`rootfs.tar.gz`, `lock-arm64.json`)."""
    if row_of(file_name) is not None:
        return True
    stem, _, ext = file_name.partition(".")
    return ext.startswith("tar") and (stem == ROOTFS.file or stem.startswith(ROOTFS.file + "-"))


def _when(o: Output) -> str:
    return ", when signed" if o.signs is not None else ", when asked" if o.asked else ""


def _names(result: Built, which: Callable[[Output], bool]) -> set[str]:
    arches = tuple(p.arch for p in result.platforms)
    s = result.settings
    return {n for o in OUTPUTS if which(o) and o.wanted(s.sbom_formats, bool(s.key_id)) for n in o.names(arches)}


def summary(result: Built, digests: Mapping[str, str]) -> dict[str, Any]:
    """build.json: what was built from what, by which tool, and how long each step took (the provenance proper
    is the in-toto statement beside it)."""
    s = result.settings
    return {
        "tool": {"name": "bootstrap", "version": __version__, "python": host_platform.python_version()},
        "recipe": dict(s.recipe),
        "build": {
            "suite": s.suite,
            "codename": result.codename,
            "arch": ",".join(s.arches),
            "mirror": s.mirror,
            "security_mirror": s.security_mirror,
            "compression": s.compression,
            "from_lock": s.from_lock,
            "insecure": s.insecure,
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
                "packages": len(p.packages),
                "timings": p.timings,
                "native_tools": p.native_tools,
            }
            for p in result.platforms
        ],
        "files": dict(digests),
        "sources": [
            {"mirror": src.mirror, "dist": src.dist, "inrelease_sha256": src.inrelease_sha256}
            for src in result.lock.sources
        ],
        "timings": result.first.timings,
        **({"signed": {"keyid": s.key_id}} if s.key_id else {}),
    }


def write_all(
    stage: Path, result: Built, known: Mapping[str, str] | None = None, key: "SigningKey | None" = None
) -> None:
    """Write every record of the table into the stage, after the files the pipeline wrote (`known`: digests of
    files of the stage already hashed as they were written), and with `key` the signed envelopes."""
    known = known or {}
    written: dict[str, bytes] = {}

    def put(name: str, out: Output, c: Context) -> None:
        assert out.write is not None
        record = written[name.removesuffix(ENVELOPE)] if out.signs is not None else b""
        data = written[name] = out.write(replace(c, key=key, record=record))
        (stage / name).write_bytes(data)

    for out in OUTPUTS:
        if out.write is None or not out.wanted(result.settings.sbom_formats, key is not None):
            continue
        if out.per_arch:
            for p in result.platforms:
                put(out.name(p.arch, result.multi), out, Context(result, p))
        else:
            files = sorted(f.name for f in stage.iterdir())
            digests = {n: known.get(n) or "sha256:" + sha256_file(stage / n) for n in files}
            put(out.name(), out, Context(result, digests=digests))
