"""Fleet files (checked before any work), the CI matrix, webhook events in Docker Hub's shape, and the SBOM
pieces that need no build: suppliers from Maintainer fields, copyright notices, SPDX 3 and CycloneDX."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bootstrap.deb.copyright import make_notice, notices_in
from bootstrap.errors import RecipeError
from bootstrap.publish import webhook
from bootstrap.publish.fleet import Fleet, FleetError, Image, Job, dumps_matrix, load, per_arch
from bootstrap.records import cyclonedx, spdx3
from bootstrap.records.sbom import ImageInfo, supplier_of
from bootstrap.records.system import OperatingSystem
from tests.fixtures.records import neutral_package

HOST = "127.0.0.1:5000"


def _fleet(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "fleet.toml"
    path.write_text(text)
    return path


def test_jobs_refs_and_matrix(tmp_path: Path) -> None:
    path = _fleet(
        tmp_path,
        '[runners]\narm64 = "my-arm"\n\n[[image]]\nrecipe = "debian-slim"\nsuites = ["bookworm", "trixie"]\n'
        f'arches = ["amd64", "arm64"]\npush = ["{HOST}/base/debian:{{codename}}-slim"]\n\n'
        '[[image]]\nrecipe = "debian"\n',
    )
    fleet = load(path, "amd64", lambda name: "stable")
    assert [j.id for j in fleet.jobs] == [
        "debian-slim-bookworm-amd64",
        "debian-slim-bookworm-arm64",
        "debian-slim-trixie-amd64",
        "debian-slim-trixie-arm64",
        "debian-stable-amd64",
    ]
    job = fleet.job("debian-slim-trixie-arm64")
    assert job.final_refs("trixie") == [f"{HOST}/base/debian:trixie-slim"]
    assert job.staging_refs() == [f"{HOST}/base/debian:trixie-slim-arm64"]
    assert [(image.recipe, suite, len(jobs)) for image, suite, jobs in fleet.groups()] == [
        ("debian-slim", "bookworm", 2),
        ("debian-slim", "trixie", 2),
        ("debian", "stable", 1),
    ]
    (part,) = fleet.matrix("github")["include"]
    assert part["part"] == "1/1"
    github = part["jobs"]["include"]
    assert github[1] == {
        "job": "debian-slim-bookworm-arm64",
        "recipe": "debian-slim",
        "suite": "bookworm",
        "arch": "arm64",
        "runner": "my-arm",
    }
    (gitlab,) = fleet.matrix("gitlab").values()
    assert gitlab["parallel"]["matrix"][0] == {"JOB": ["debian-slim-bookworm-amd64"], "ARCH": ["amd64"]}
    with pytest.raises(FleetError) as caught:
        fleet.job("debian-slim-trixie-arm6")
    assert caught.value.hint == "did you mean 'debian-slim-trixie-arm64'?"
    assert per_arch(f"{HOST}/r", "arm64") == f"{HOST}/r:latest-arm64"


@pytest.mark.parametrize(
    ("jobs", "github", "gitlab"),
    [
        (1, [1], [1]),
        (200, [200], [200]),
        (201, [201], [101, 100]),
        (257, [129, 128], [129, 128]),
        (601, [201, 200, 200], [151, 150, 150, 150]),
    ],
)
def test_matrix_parts_keep_within_the_ci_limits(jobs: int, github: list[int], gitlab: list[int]) -> None:
    fleet = _many(jobs)
    parts = fleet.matrix("github")["include"]
    assert [len(p["jobs"]["include"]) for p in parts] == github
    assert [p["part"] for p in parts] == [f"{k}/{len(github)}" for k in range(1, len(github) + 1)]
    assert [j["job"] for p in parts for j in p["jobs"]["include"]] == [j.id for j in fleet.jobs]
    lab = fleet.matrix("gitlab")
    assert list(lab) == [f"fleet-part-{k}" for k in range(1, len(gitlab) + 1)]
    assert [len(job["parallel"]["matrix"]) for job in lab.values()] == gitlab
    lines = dumps_matrix(fleet, "gitlab").splitlines()
    assert [json.loads(line.split(": ", 1)[1]) for line in lines] == list(lab.values())


def test_a_fleet_over_githubs_matrix_of_matrices_is_refused() -> None:
    with pytest.raises(FleetError) as caught:
        _many(256 * 256 + 1).matrix("github")
    assert "65537 jobs need 257 matrices of 256; GitHub runs at most 256" in caught.value.message
    assert "split the fleet file" in caught.value.hint
    assert len(_many(256 * 256).matrix("github")["include"]) == 256


def _many(count: int) -> Fleet:
    image = Image(0, "r", ("trixie",), ("amd64",), ())
    return Fleet(
        Path("fleet.toml"), (image,), tuple(Job(f"r-{i}", image, "trixie", "amd64") for i in range(count)), (), {}
    )


@pytest.mark.parametrize(
    ("text", "error", "hint"),
    [
        ('[[image]]\nrecipe = "debian-slim"\nsuite = ["trixie"]\n', "unknown key 'suite'", "did you mean 'suites'?"),
        ("[[image]]\nsuites = []\n", "no recipe", "recipe ="),
        (f'[[image]]\nrecipe = "r"\npush = ["{HOST}/{{codename}}/debian:slim"]\n', "in the repository", "tag"),
        (f'[[image]]\nrecipe = "r"\npush = ["{HOST}/d:{{arch}}"]\n', "uses {arch}", "placeholders"),
        (f'[[image]]\nrecipe = "r"\nsuites = ["a", "b"]\npush = ["{HOST}/d:latest"]\n', "both push to", "own tag"),
        ('[[image]]\nrecipe = "r"\narches = ["vax"]\n', "unsupported architecture 'vax'", "amd64"),
        ('[[image]]\nrecipe = "r"\npush = ["debian:slim"]\n', "names no registry host", ""),
        ("webhook = []\n", "unknown key 'webhook'", "did you mean 'webhooks'?"),
        ("[[image\n", "invalid TOML", "syntax"),
        ("", "lists no image", "[[image]]"),
    ],
)
def test_fleet_file_errors_name_the_fix(tmp_path: Path, text: str, error: str, hint: str) -> None:
    with pytest.raises(FleetError) as caught:
        load(_fleet(tmp_path, text), "amd64")
    assert error in caught.value.message and hint in caught.value.hint


def test_the_sign_key_is_confined_to_the_fleet_files_directory(tmp_path: Path) -> None:
    """`sign-key` is relative to the fleet file and must resolve inside its directory (or an --allow-path one),
    as a recipe's local files must: a symbolic link out of it is refused too."""
    fleets = tmp_path / "fleets"
    (fleets / "keys").mkdir(parents=True)
    image = '[[image]]\nrecipe = "r"\n'
    assert load(_fleet(fleets, image), "amd64").sign_key is None
    fleet = load(_fleet(fleets, 'sign-key = "keys/release.key"\n' + image), "amd64")
    assert fleet.sign_key == fleets / "keys" / "release.key"
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (fleets / "keys" / "link.key").symlink_to(outside / "release.key")
    for written in ("../elsewhere/release.key", str(outside / "release.key"), "keys/link.key"):
        with pytest.raises(RecipeError) as caught:
            load(_fleet(fleets, f'sign-key = "{written}"\n' + image), "amd64")
        assert "sign-key" in caught.value.message and "outside the fleet file's directory" in caught.value.message
        assert f"--allow-path {outside}" in caught.value.hint
        allowed = load(_fleet(fleets, f'sign-key = "{written}"\n' + image), "amd64", allow=(outside,))
        assert allowed.sign_key is not None and allowed.sign_key.name.endswith(".key")
    with pytest.raises(FleetError, match="sign-key must be a path"):
        load(_fleet(fleets, "sign-key = 1\n" + image), "amd64")
    with pytest.raises(FleetError, match="unknown key 'signkey'") as typo:
        load(_fleet(fleets, 'signkey = "k"\n' + image), "amd64")
    assert "did you mean 'sign-key'?" in typo.value.hint


def test_cli_matrix_and_a_missing_file(tmp_path: Path) -> None:
    from tests.cli.test_cli import cli

    text = f'[[image]]\nrecipe = "debian-slim"\nsuites = ["trixie"]\npush = ["{HOST}/d:{{codename}}"]\n'
    path = _fleet(tmp_path, text)
    proc = cli("fleet", str(path), "--matrix", "--arch", "arm64")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["include"][0]["jobs"]["include"][0]["runner"] == "ubuntu-24.04-arm"
    missing = cli("fleet", str(tmp_path / "nope.toml"), "--matrix")
    assert missing.returncode == 1 and missing.stderr.startswith("error: no fleet file at")
    both = cli("fleet", str(path), "--matrix", "--assemble")
    assert both.returncode == 2 and "separate steps" in both.stderr


def test_push_event_has_docker_hubs_shape() -> None:
    event = webhook.push_event(f"{HOST}/base/debian:trixie-slim", "sha256:" + "a" * 64, {"recipe": "r"}, 1700000000.5)
    assert event["push_data"] == {
        "pushed_at": 1700000000,
        "pusher": "bootstrap",
        "tag": "trixie-slim",
        "images": ["sha256:" + "a" * 64],
    }
    assert event["repository"]["repo_name"] == "base/debian"
    assert (event["repository"]["namespace"], event["repository"]["name"]) == ("base", "debian")
    assert event["event"] == "push" and event["recipe"] == "r" and event["tags"] == [f"{HOST}/base/debian:trixie-slim"]


def test_suppliers_from_maintainer_fields() -> None:
    team = supplier_of("GNU Libc Maintainers <glibc-team@example.invalid>")
    assert team is not None and team.spdx == "Organization: GNU Libc Maintainers (glibc-team@example.invalid)"
    person = supplier_of("Matthias Klose <doko@example.invalid>")
    assert person is not None and person.spdx == "Person: Matthias Klose (doko@example.invalid)"
    assert supplier_of("") is None


def test_copyright_notices_of_dep5_and_free_form_files() -> None:
    dep5 = (
        "Format: https://example.invalid/copyright-format/1.0/\n\n"
        "Files: *\nCopyright: 2001-2020 Jane Doe\n           2019 John Roe\nLicense: GPL-2+\n\n"
        "Files: debian/*\nCopyright: 2001-2020 Jane Doe\nLicense: GPL-2+\n"
    )
    assert notices_in(dep5) == "2001-2020 Jane Doe\n2019 John Roe"
    free = "This is free.\n\nDebian files Copyright (C) 2006 Someone <s@example.invalid>\nNo copyright here.\n"
    assert notices_in(free) == "Debian files Copyright (C) 2006 Someone <s@example.invalid>"


def _info() -> ImageInfo:
    system = OperatingSystem("debian", "12", "bookworm", "Debian GNU/Linux 12 (bookworm)")
    return ImageInfo("debian:fixture-slim", "debian", "amd64", 1704067200, "sha256:" + "b" * 64, system=system)


def _packages() -> list:  # type: ignore[type-arg]
    maintained = "Fixture Team <fixture-team@lists.example.invalid>"
    return [neutral_package(n, maintainer=maintained) for n in ("base", "libfree")]


NOTICES = {
    "base": make_notice("base", ("GPL-2+", "Expat"), "2020 Jane Doe", "Format: ..."),
    "libfree": make_notice("libfree", (), "Copyright 2001 Free Form", "Free-form terms.\n"),
}


def test_spdx3_document_passes_ntia_and_cisa_framing(tmp_path: Path) -> None:
    tool = shutil.which("sbomcheck", path=str(Path(sys.executable).parent)) or shutil.which("sbomcheck")
    if tool is None:
        pytest.fail("sbomcheck is not installed (pip install -e '.[test]')")
    doc = tmp_path / "sbom.spdx3.json"
    doc.write_bytes(spdx3.make(_info(), _packages(), NOTICES))
    for comply in ("ntia", "fsct3-min"):
        proc = subprocess.run([tool, "-s", "spdx3", "-c", comply, str(doc)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    graph = json.loads(doc.read_text())["@graph"]
    (sbom_node,) = [n for n in graph if n["type"] == "software_Sbom"]
    assert sbom_node["software_sbomType"] == ["build"]
    texts = [n for n in graph if n["type"] == "simplelicensing_SimpleLicensingText"]
    assert [t["simplelicensing_licenseText"] for t in texts] == ["Free-form terms.\n"]
    # a package without a copyright file has no concluded licence: the checker says so
    bare = tmp_path / "bare.json"
    bare.write_bytes(spdx3.make(_info(), _packages(), {}))
    proc = subprocess.run([tool, "-s", "spdx3", "-c", "fsct3-min", str(bare)], capture_output=True, text=True)
    assert proc.returncode == 1


def test_cyclonedx_document_is_valid_1_6() -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    text = cyclonedx.make(_info(), _packages(), NOTICES).decode()
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    doc = json.loads(text)
    base = next(c for c in doc["components"] if c["name"] == "base")
    assert base["licenses"] == [{"expression": "GPL-2.0-or-later AND MIT"}]
    assert base["supplier"]["contact"] == [{"email": "fixture-team@lists.example.invalid"}]
    assert doc["serialNumber"] == json.loads(cyclonedx.make(_info(), _packages(), NOTICES))["serialNumber"]


def test_a_fleet_takes_the_kernels_architecture_names_and_keeps_ours(tmp_path: Path) -> None:
    fleet = load(_fleet(tmp_path, '[[image]]\nrecipe = "debian-slim"\narches = ["x86_64", "aarch64"]\n'), "amd64")
    assert fleet.images[0].arches == ("amd64", "arm64")
    with pytest.raises(FleetError, match="arches names something twice"):
        load(_fleet(tmp_path, '[[image]]\nrecipe = "debian-slim"\narches = ["x86_64", "amd64"]\n'), "amd64")


def test_runner_labels_by_the_kernels_names_find_their_jobs(tmp_path: Path) -> None:
    text = '[[image]]\nrecipe = "debian-slim"\narches = ["aarch64"]\n\n[runners]\naarch64 = "my-arm"\n'
    fleet = load(_fleet(tmp_path, text), "amd64")
    assert fleet.runners["arm64"] == "my-arm"
    (part,) = fleet.matrix("github")["include"]
    assert [job["runner"] for job in part["jobs"]["include"]] == ["my-arm"]
    with pytest.raises(FleetError, match="runners names unsupported architecture 'vax'"):
        load(_fleet(tmp_path, '[[image]]\nrecipe = "debian-slim"\n\n[runners]\nvax = "v"\n'), "amd64")
