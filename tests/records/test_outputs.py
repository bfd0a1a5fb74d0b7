"""The outputs table names every file a build writes, and what reads a build's outputs reads the table: a
scriptless build of a one-package fixture archive, through the command line."""

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from bootstrap.build import families
from bootstrap.host import outputs as host_outputs
from bootstrap.image.layer import Compression
from bootstrap.publish import verify
from bootstrap.records import inspection, outputs
from bootstrap.registry import artifacts
from bootstrap.registry.layout import Layout
from tests.cli.test_cli import cli
from tests.fixtures.gpg import GpgKey
from tests.records.signed_build import make_archive


@pytest.fixture
def build(tmp_path: Path, gpg_key: GpgKey, serve: Callable[[Path], str]) -> Callable[..., Path]:
    """Build the recipe from a fixture archive into a new directory, with these further options."""
    archive = make_archive(tmp_path, gpg_key, serve)

    def run(name: str, *more: str) -> Path:
        return archive.build(tmp_path / name, *more)

    return run


def expected(arch: str, compression: Compression, formats: tuple[str, ...] = ()) -> set[str]:
    suffix = compression.file_suffix
    return {n for o in outputs.OUTPUTS if o.wanted(formats) for n in o.names((arch,), suffix)}


def test_the_table_names_every_file_a_build_writes(build: Callable[..., Path]) -> None:
    plain = build("plain", "--compression", "zstd")
    summary = json.loads((plain / outputs.SUMMARY.file).read_text())
    arch = summary["platforms"][0]["arch"]
    written = {p.name for p in plain.iterdir()}
    assert written == expected(arch, Compression.ZSTD), "every file written is a row, every row is written"
    assert set(summary["files"]) == written - {outputs.SUMMARY.file}
    assert outputs.CYCLONEDX.file not in written, "written only when asked"
    asked = build("asked", "--sbom-format", "cyclonedx")
    assert {p.name for p in asked.iterdir()} == expected(arch, Compression.GZIP, ("cyclonedx",))
    byproducts = json.loads((asked / outputs.PROVENANCE.file).read_text())["predicate"]["runDetails"]["byproducts"]
    assert {b["name"] for b in byproducts} == {o.file for o in outputs.OUTPUTS if o.byproduct}
    found = inspection.inspect(asked, families.databases())
    assert found.versions == {"base": "1.0"}, "inspect finds the layer and lock by the table"


def test_attachments_and_verify_read_the_table(build: Callable[..., Path]) -> None:
    out = build("out", "--sbom-format", "cyclonedx")
    layout = Layout(out)
    top = layout.top()
    records, epoch = artifacts.records_of(layout, top)
    assert epoch == 1750000000
    image = top.images[0].digest
    attached = {(r.path.name, r.artifact_type, r.subject.digest) for r in records}
    written = {o for o in outputs.OUTPUTS if o.wanted(("cyclonedx",))}
    assert attached == {(o.file, o.media_type, image) for o in written if o.attached}, "what is there is attached"
    assert artifacts.LOCK_TYPE == "application/vnd.bootstrap.lock.v1+json"
    assert {o.media_type for o in outputs.OUTPUTS if o.attached} == {
        "application/vnd.bootstrap.lock.v1+json",
        "application/spdx+json",
        "application/vnd.cyclonedx+json",
        "application/vnd.in-toto+json",
        "application/vnd.dsse.envelope.v1+json",
    }
    assert all(o.attached and o.per_arch == o.signs.per_arch for o in outputs.SIGNED if o.signs)
    assert {o.name() for o in outputs.SIGNED} == verify.BY_SIGNATURE, "envelopes are checked by key, not compared"
    subject = verify.examine(out)
    assert set(subject.digests) == {p.name for p in out.iterdir()} - verify.BY_RECORDS
    assert {outputs.SUMMARY.file} == verify.BY_RECORDS
    assert outputs.SUMMARY.file == verify.RECORDS


def test_names_help_and_formats_come_from_the_rows() -> None:
    assert outputs.SUMMARY.file == host_outputs.MARKER, "an output directory is known by its build.json"
    assert outputs.ROOTFS.name("arm64", True, ".tar.gz") == "rootfs-arm64.tar.gz"
    assert outputs.LOCK.name("arm64", True) == "lock-arm64.json" and outputs.LOCK.name("arm64", False) == "lock.json"
    assert outputs.PROVENANCE.name("arm64", True) == "provenance.intoto.json", "once per build"
    assert outputs.SBOM_FORMATS == ("spdx", "spdx3", "cyclonedx")
    shown = " ".join(cli("build", "--help").stdout.split())
    assert all(o.name(suffix=".tar.*") in shown for o in outputs.OUTPUTS), "the help lists every output"
    pushed = " ".join(cli("push", "--help").stdout.split())
    records = [o for o in outputs.OUTPUTS if o.write is not None]
    assert all((o.file in pushed) == o.attached for o in records), "--no-records lists the attached ones"
    files = {o.file for o in outputs.OUTPUTS}
    assert len(files) == len(outputs.OUTPUTS), "one row a file"
