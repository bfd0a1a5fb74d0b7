"""Each shipped RPM recipe's own request, for each release it builds, resolved from a fixture distribution laid out
as that distribution's tree (tests/fixtures/stubdistro.py: every name the recipes ask for or keep out, with the
dependencies that make their exclusions and weak-dependency settings matter) equals what Debian's `dnf
--installroot` installs from the same repositories with the same names, `--exclude` patterns and
install_weak_deps. Twenty resolutions and a dozen dnf runs take about 25 s: the module is end to end (`make
test`, CI), out of `make unit`."""

import fnmatch
import shutil
from pathlib import Path

import pytest

from bootstrap.build import families, recipe
from bootstrap.build.plan import Options, make_plan
from bootstrap.rpm.distros import Release, RpmDistro
from bootstrap.rpm.family import RpmFamily
from tests.conftest import Serve
from tests.fixtures import stubdistro
from tests.fixtures.gpg import GpgKey
from tests.fixtures.rpmrepo import RpmRepo, dnf_install, left_running
from tests.fixtures.shared import made_once
from tests.rpm.conftest import need_tools

RECIPES = (
    "almalinux",
    "almalinux-minimal",
    "almalinux-micro",
    "rockylinux",
    "rockylinux-minimal",
    "centos-stream",
    "centos-stream-minimal",
    "fedora",
    "fedora-minimal",
)
ARCH = "x86_64"
pytestmark = pytest.mark.e2e


def _paths(release: Release) -> list[str]:
    """The enabled repositories' paths under the distribution's tree, in the release's order."""
    fill = {"$releasever": release.version, "$basearch": ARCH}
    out = []
    for repo in release.repos:
        if repo.enabled:
            path = repo.path
            for var, value in fill.items():
                path = path.replace(var, value)
            out.append(path)
    return out


def _tree(directory: Path, key: GpgKey) -> None:
    """Every release of every RPM distribution: the universe in its first repository, the newer builds in its
    second, the rest empty; each repository signed."""
    built = {}
    for second in stubdistro.NEWER:
        built[second] = stubdistro.publish(directory / f".build-{second}", key, second)
    empty = RpmRepo(directory / ".build-empty" / "repo", key)
    empty.publish()
    for name, distro in families.DISTROS.items():
        if not isinstance(distro, RpmDistro):
            continue
        for release in distro.releases.values():
            first, second, *rest = _paths(release)
            universe, newer = built["updates" if name == "fedora" else "appstream"]
            shutil.copytree(universe, directory / name / first)
            shutil.copytree(newer, directory / name / second)
            for path in rest:
                shutil.copytree(empty.root, directory / name / path, dirs_exist_ok=True)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, gpg_key: GpgKey, serve_session: Serve) -> str:
    need_tools("rpmbuild", "rpmsign", "createrepo_c", "dnf")
    tree = made_once(tmp_path_factory, f"stub-distributions-{gpg_key.fingerprint}", lambda d: _tree(d, gpg_key))
    return str(serve_session(tree))


def _family(name: str, suite: str, url: str, key: GpgKey, tmp_path: Path) -> RpmFamily:
    """The shipped recipe as it is, but for the key vouching for the fixture (a child recipe's [archive])."""
    key.export(tmp_path / "fixture-key.asc", armor=True)
    path = tmp_path / f"{name}-{suite}.toml"
    path.write_text(
        f'extends = "{name}"\nsuite = "{suite}"\n\n[archive]\nkeyring = "fixture-key.asc"\n'
        f'signers = ["{key.fingerprint}"]\n'
    )
    distro = recipe.load(name).distribution
    options = Options(suite=suite, arch="amd64", mirror=f"{url}/{distro}", cache_dir=tmp_path / "cache")
    family = families.family_for(make_plan(recipe.load(str(path), given=True), options))
    assert isinstance(family, RpmFamily)
    return family


@pytest.mark.parametrize("name", RECIPES)
def test_each_recipe_resolves_as_dnf_installs(name: str, served: str, gpg_key: GpgKey, tmp_path: Path) -> None:
    distro = families.DISTROS[recipe.load(name).distribution]
    assert isinstance(distro, RpmDistro)
    key = gpg_key.export(tmp_path / "key.asc", armor=True)
    compared: dict[tuple[object, ...], set[str]] = {}
    for suite, release in sorted(distro.releases.items()):
        family = _family(name, suite, served, gpg_key, tmp_path / suite)
        request, exclude = family.settings.request, family.settings.exclude
        selection = family.resolve(family.open("amd64"))
        ours = {f"{p.name}-{p.version if ':' in p.version else '0:' + p.version}.{p.arch}" for p in selection.packages}
        same = (request, exclude)
        if same not in compared:  # the same request over the same packages: dnf's answer once
            urls = [f"{served}/{distro.name}/{path}" for path in _paths(release)]
            root = tmp_path / f"dnf-{suite}"
            compared[same] = dnf_install(urls, root, request.names, key, exclude, request.weak)
        assert ours == compared[same], (suite, sorted(ours ^ compared[same]))
        names = {n.rsplit("-", 2)[0] for n in ours}
        assert set(request.names) - {"yum"} <= names, suite
        assert not [n for n in names for pattern in exclude if fnmatch.fnmatchcase(n, pattern)], suite
        assert not any(n.endswith(".i686") for n in ours), "the multilib decoys stay out"
        if "tzdata" in names and "chrony" not in exclude:
            assert ("chrony" in names) is request.weak, "tzdata's weak dependency, only when asked"
        assert "tzdata-0:2.0-1.noarch" in ours or "tzdata" not in names, "the second repository's newer build"
    left = [pid for suite in distro.releases for pid in left_running(str(tmp_path / f"dnf-{suite}"))]
    assert left == [], "dnf left a gpg-agent running"
