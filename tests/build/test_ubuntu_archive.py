"""The `ubuntu` recipe against a fixture archive in Ubuntu's layout on 127.0.0.1, signed by a test key: the
mirror found through a fake debootstrap script (arm64 from the "ports" branch), the suite alias resolved from a
fake distro-info table, the archive keys pinned by fingerprint, and an arm64 tree resolved and unpacked by the
same code as an amd64 one."""

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from bootstrap.build import download, families, steps
from bootstrap.build import recipe as recipes
from bootstrap.build.pipeline import resolve_plan
from bootstrap.build.plan import Options, Plan, make_plan
from bootstrap.deb.job import DebJob
from bootstrap.errors import SignatureError
from bootstrap.family.interface import Selection, Target
from tests.fixtures.gpg import GpgKey
from tests.fixtures.repo import Repo, made_repo

UBUNTU_KEYS = {"F6ECB3762474EDA9D21B7022871920D1991BC93C", "790BC7277767219C42C86F933B4FE6ACC0B21F32"}
COMPONENTS = ("main", "universe", "restricted", "multiverse")
TRIPLET = {"amd64": "x86_64-linux-gnu", "arm64": "aarch64-linux-gnu"}
UNREACHABLE = "http://127.0.0.1:9/ubuntu"
"""Where the fake debootstrap script sends amd64: nothing listens there."""


@dataclass
class Fixture:
    repo: Repo
    url: str
    dir: Path

    def recipe(self, keyring: Path | None = None, signers: tuple[str, ...] | None = None) -> recipes.Recipe:
        """The bundled `ubuntu` recipe, its archive trust replaced by the fixture's key (or by what is given); a
        recipe takes keyrings from its own directory only."""
        key = keyring or Path(shutil.copyfile(self.repo.keyring, self.dir / "keyring.gpg"))
        pinned = signers if signers is not None else (self.repo.key.fingerprint,)  # type: ignore[union-attr]
        path = self.dir / "fixture-ubuntu.toml"
        path.write_text(
            f'extends = "ubuntu"\n[archive]\nkeyring = "{key}"\nsigners = [{", ".join(repr(s) for s in pinned)}]\n'
        )
        return recipes.load(str(path))

    def plan(self, rec: recipes.Recipe, **options: object) -> Plan:
        return make_plan(rec, Options(cache_dir=self.dir / "cache", **options))  # type: ignore[arg-type]


def _packages(repo: Repo, arch: str) -> None:
    lib = f"/usr/lib/{TRIPLET[arch]}"
    repo.add_package(
        "noble",
        "base-files",
        "13ubuntu10",
        arch,
        priority="required",
        essential=True,
        files={"/etc/os-release": f'NAME="Ubuntu"\nVERSION_CODENAME=noble\nBUILT_FOR={arch}\n'},
    )
    repo.add_package(
        "noble-updates",
        "base-files",
        "13ubuntu10.1",
        arch,
        priority="required",
        essential=True,
        files={"/etc/os-release": f'NAME="Ubuntu"\nVERSION_CODENAME=noble\nBUILT_FOR={arch}\nUPDATED=1\n'},
    )
    repo.add_package(
        "noble",
        "libc6",
        "2.39-0ubuntu8",
        arch,
        priority="required",
        multi_arch="same",
        files={f"{lib}/libc.so.6": f"libc for {arch}\n"},
    )
    repo.add_package(
        "noble",
        "apt",
        "2.8.3",
        arch,
        priority="important",
        depends="libc6 (>= 2.39)",
        files={"/usr/bin/apt": f"apt for {arch}\n"},
    )
    repo.add_package("noble", "hello", "1.0", arch, component="universe", depends="libc6")


def _ports(repo: Repo) -> None:
    """Ubuntu's ports layout: noble, its updates and security, amd64 and arm64."""
    for name in ("noble", "noble-updates", "noble-security"):
        repo.add_dist(
            name,
            name,
            "noble",
            origin="Ubuntu",
            label="Ubuntu",
            version="24.04",
            components=COMPONENTS,
            architectures=("amd64", "arm64"),
        )
    for arch in ("amd64", "arm64"):
        _packages(repo, arch)
    repo.add_package("noble-updates", "unminimize", "0.2.1", "all", files={"/usr/bin/unminimize": "#!/bin/sh\n"})


@pytest.fixture
def fixture(
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    gpg_key: GpgKey,
    serve: Callable[[Path], str],
    monkeypatch: pytest.MonkeyPatch,
) -> Fixture:
    repo = made_repo(tmp_path_factory, "ubuntu-ports", gpg_key, _ports)
    url = serve(repo.root)

    scripts = tmp_path / "debootstrap"
    scripts.mkdir()
    (scripts / "gutsy").write_text(
        f"case $ARCH in\n  amd64|i386)\n\tdefault_mirror {UNREACHABLE}\n\t;;\n"
        f"  *)\n\tdefault_mirror {url}\n\t;;\nesac\n"
    )
    info = tmp_path / "distro-info"
    info.mkdir()
    (info / "ubuntu.csv").write_text(
        "version,codename,series,created,release,eol\n24.04 LTS,Noble Numbat,noble,2023-10-12,2024-04-25,2029-05-31\n"
    )
    apt = tmp_path / "apt"
    (apt / "sources.list.d").mkdir(parents=True)
    monkeypatch.setenv("BOOTSTRAP_DEBOOTSTRAP_DIR", str(scripts))
    monkeypatch.setenv("BOOTSTRAP_DISTRO_INFO_DIR", str(info))
    monkeypatch.setenv("BOOTSTRAP_APT_DIR", str(apt))
    monkeypatch.delenv("BOOTSTRAP_UBUNTU_MIRROR", raising=False)
    monkeypatch.delenv("BOOTSTRAP_UBUNTU_SECURITY_MIRROR", raising=False)
    return Fixture(repo, url, tmp_path)


def _unpacked(plan: Plan, arch: str, tmp_path: Path) -> tuple[steps.Work, DebJob, Selection]:
    """One platform's tree unpacked through the family, as the pipeline does it."""
    family = families.family_for(plan)
    archive = family.open(arch)
    selection = family.resolve(archive)
    files = download.fetch_all(selection.packages, plan.cache)
    root = tmp_path / f"root-{arch}"
    job = family.job(archive, selection, files, Target(root, arch, archive.date))
    assert isinstance(job, DebJob), "Ubuntu is built by the deb family"
    work = steps.Work(plan, arch, family, archive, selection, job, archive.date, root, None)
    work.root.mkdir()
    steps.unpack(work)
    return work, job, selection


def test_arm64_is_found_resolved_and_unpacked_like_amd64(fixture: Fixture, tmp_path: Path) -> None:
    plan = fixture.plan(fixture.recipe(), arch="arm64")
    assert plan.suite == "noble", "lts resolves through distro-info-data"
    assert (plan.mirror, plan.security_mirror) == (fixture.url, fixture.url), "the ports branch of the script"
    assert plan.signers == {fixture.repo.key.fingerprint}  # type: ignore[union-attr]

    work, job, selection = _unpacked(plan, "arm64", tmp_path)
    by_name = selection.by_name()
    assert set(by_name) == {"apt", "base-files", "libc6", "unminimize"}, "required + apt + the noble include"
    assert {p.arch for p in selection.packages} == {"arm64", "all"}
    assert by_name["base-files"].version == "13ubuntu10.1", "-updates wins"
    assert "hello" not in by_name, "universe is read, but only what the request needs is taken"

    root = work.root
    assert "BUILT_FOR=arm64" in (root / "etc/os-release").read_text()
    assert (root / "usr/lib/aarch64-linux-gnu/libc.so.6").read_text() == "libc for arm64\n"
    assert (root / "lib").is_symlink() and not (root / "lib64").exists(), "arm64's merged-/usr links"
    status = (root / "var/lib/dpkg/status").read_text()
    assert "Package: libc6\n" in status and "Architecture: arm64\n" in status
    assert "Architecture: amd64" not in status

    sources = job.apt_sources()
    assert [(s.uri, s.suites) for s in sources] == [
        (fixture.url, ("noble", "noble-updates", "noble-backports")),
        (fixture.url, ("noble-security",)),
    ]
    assert all(s.components == COMPONENTS for s in sources)


def test_each_architecture_takes_its_own_default_mirror(fixture: Fixture) -> None:
    plan = fixture.plan(fixture.recipe(), arch="amd64,arm64")
    assert plan.mirrors_for("amd64").main == UNREACHABLE
    assert plan.mirrors_for("arm64").main == fixture.url
    assert plan.mirror == UNREACHABLE, "the first architecture's mirror is the plan's"


def test_the_finished_tree_has_ubuntus_settings(fixture: Fixture, tmp_path: Path) -> None:
    plan = fixture.plan(fixture.recipe(), arch="arm64")
    work, _, _ = _unpacked(plan, "arm64", tmp_path)
    steps.finish_tree(work)
    root = work.root
    sources = (root / "etc/apt/sources.list.d/ubuntu.sources").read_text()
    assert sources.count("Types: deb\n") == 2
    assert "Suites: noble noble-updates noble-backports\n" in sources and "Suites: noble-security\n" in sources
    assert "Components: main universe restricted multiverse\n" in sources
    assert sources.count("Signed-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg\n") == 2
    listed = (root / "etc/apt/sources.list").read_text()
    assert all(line.startswith("#") for line in listed.splitlines()), "sources.list is only a comment"
    excludes = (root / "etc/dpkg/dpkg.cfg.d/excludes").read_text()
    assert "path-exclude /usr/share/locale/*/LC_MESSAGES/*.mo\n" in excludes
    assert "path-include /usr/share/doc/*/changelog.*\n" in excludes
    assert not (root / "etc/dpkg/dpkg.cfg.d/docker").exists()
    assert (root / "run/systemd/container").read_text() == "docker\n", "written after /run is scrubbed"
    assert 'APT::Periodic::Enable "0";' in (root / "etc/apt/apt.conf.d/docker-disable-periodic-update").read_text()
    diversions = (root / "var/lib/dpkg/diversions").read_text().splitlines()
    assert diversions == ["/sbin/initctl", "/sbin/initctl.distrib", ":", "/usr/bin/man", "/usr/bin/man.REAL", ":"]
    assert (root / "usr/sbin/initctl").read_text().endswith("exit 0\n")
    assert "unminimize" in (root / "usr/bin/man").read_text()


def test_only_the_pinned_key_vouches(fixture: Fixture, other_gpg_key: GpgKey, tmp_path: Path) -> None:
    both = tmp_path / "both.gpg"
    both.write_bytes(fixture.repo.keyring.read_bytes() + other_gpg_key.export(tmp_path / "other.gpg").read_bytes())
    plan = fixture.plan(fixture.recipe(both, (other_gpg_key.fingerprint,)), arch="arm64")
    with pytest.raises(SignatureError, match="not signed by the key the recipe names"):
        resolve_plan(plan)


def test_a_keyring_without_the_pinned_key_is_refused_before_anything_is_fetched(
    fixture: Fixture, other_gpg_key: GpgKey
) -> None:
    with pytest.raises(SignatureError, match="does not hold the pinned key"):
        fixture.plan(fixture.recipe(signers=(other_gpg_key.fingerprint,)), arch="arm64")


def test_keyring_option_replaces_the_recipes_keys(fixture: Fixture, other_gpg_key: GpgKey, tmp_path: Path) -> None:
    pinned_elsewhere = fixture.recipe(other_gpg_key.export(tmp_path / "other.gpg"), (other_gpg_key.fingerprint,))
    plan = fixture.plan(pinned_elsewhere, arch="arm64", keyrings=(fixture.repo.keyring,))
    assert plan.keyrings == (fixture.repo.keyring,) and plan.signers == frozenset()
    assert resolve_plan(plan)[0].codename == "noble"


def test_the_bundled_keys_are_pinned_and_are_what_vouches(fixture: Fixture) -> None:
    bundled = recipes.load("ubuntu")
    plan = fixture.plan(bundled, arch="arm64")
    assert plan.signers == UBUNTU_KEYS
    assert plan.keyrings == (Path(bundled.archive_keyring),)
    assert plan.keyrings[0].name == "ubuntu-archive-keyring.asc"
    with pytest.raises(SignatureError, match="not in the keyring"):
        resolve_plan(plan)
