"""Resolution with libsolv, compared with what Debian's dnf installs from the same fixture repository."""

from pathlib import Path

import pytest

from bootstrap.errors import BootstrapError, ResolveError
from bootstrap.family.model import Pin
from bootstrap.host.cache import Cache
from bootstrap.rpm import listing
from bootstrap.rpm.repo import Repository, open_repository
from bootstrap.rpm.resolve import Request, resolve
from bootstrap.rpm.selection import pinned, select, source_of, to_model
from tests.conftest import Serve
from tests.fixtures.gpg import GpgKey
from tests.fixtures.rpmrepo import GROUP, MINIATURE_INSTALLED, RpmRepo, dnf_install, shared_miniature
from tests.rpm.conftest import need_tools


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, gpg_key: GpgKey, serve_session: Serve) -> tuple[RpmRepo, str]:
    need_tools("rpmbuild", "createrepo_c", "dnf")
    repo = shared_miniature(tmp_path_factory, gpg_key)
    return repo, serve_session(repo.root)


@pytest.fixture(scope="module")
def opened(served: tuple[RpmRepo, str], tmp_path_factory: pytest.TempPathFactory) -> Repository:
    repo, url = served
    keyring = repo.keyring(tmp_path_factory.mktemp("keys") / "key.asc")
    return open_repository(url, (keyring,), Cache(tmp_path_factory.mktemp("cache")).ensure())


def _nevras(request: Request, repository: Repository) -> set[str]:
    return {p.nevra for p in resolve([("baseos", repository.listing)], repository.groups, request, "x86_64")}


@pytest.mark.parametrize(
    ("request_", "dnf_args"),
    [
        (Request(groups=(GROUP,)), [f"@{GROUP}"]),
        (Request(names=("rpm-tool",)), ["rpm-tool"]),
        (Request(names=("coreutils", "selinux-policy")), ["coreutils", "selinux-policy"]),
        (Request(names=("/bin/sh",)), ["/bin/sh"]),
        (Request(names=("bash.i686",)), ["bash.i686"]),
        (Request(names=("libacl-ng", "coreutils")), ["libacl-ng", "coreutils"]),
    ],
)
def test_same_set_as_dnf(
    served: tuple[RpmRepo, str], opened: Repository, tmp_path: Path, request_: Request, dnf_args: list[str]
) -> None:
    expected = dnf_install(served[1], tmp_path / "root", dnf_args)
    assert _nevras(request_, opened) == expected


def test_group_gives_the_expected_set(opened: Repository) -> None:
    """The named checks behind the comparison: the x86_64 bash, not the decoy; the newer libacl; coreutils'
    `if` pulls coreutils-common but not coreutils-selinux; no weak dependency; obsoleted oldutils left out."""
    assert _nevras(Request(groups=(GROUP,)), opened) == MINIATURE_INSTALLED


def test_weak_dependencies_when_asked(opened: Repository) -> None:
    got = _nevras(Request(groups=(GROUP,), weak=True), opened)
    assert got == MINIATURE_INSTALLED | {"coreutils-doc-1:9.4-5.noarch"}


def test_unknown_name_and_group(opened: Repository) -> None:
    with pytest.raises(ResolveError, match="no package provides 'nonesuch'"):
        resolve([("baseos", opened.listing)], opened.groups, Request(names=("nonesuch",)), "x86_64")
    with pytest.raises(ResolveError, match="no group 'nonesuch'"):
        resolve([("baseos", opened.listing)], opened.groups, Request(groups=("nonesuch",)), "x86_64")


NEEDY = b"""<?xml version="1.0" encoding="UTF-8"?>
<metadata packages="1">
<package type="rpm"><name>needy</name><arch>noarch</arch><version epoch="0" ver="1" rel="1"/>
<checksum type="sha256" pkgid="YES">%s</checksum><location href="Packages/needy-1-1.noarch.rpm"/>
<format><rpm:requires><rpm:entry name="missing" flags="GE" epoch="0" ver="2"/></rpm:requires></format></package>
</metadata>
""" % (b"0" * 64)


def test_unsatisfiable_is_one_error(opened: Repository) -> None:
    """A second repository's package needs what none provides: one error naming it."""
    needy = listing.read(([NEEDY], "needy/primary.xml"))
    assert [p.nevra for p in needy.packages] == ["needy-0:1-1.noarch"]
    with pytest.raises(ResolveError, match="missing >= 2"):
        resolve([("baseos", opened.listing), ("extra", needy)], {}, Request(names=("needy",)), "x86_64")


def test_excluded_packages_are_never_installed(opened: Repository) -> None:
    """The recipe's exclude: a package it names is not there for the solver, asked for or needed."""
    listings = [("baseos", opened.listing)]
    with pytest.raises(ResolveError, match="'coreutils' is excluded"):
        resolve(listings, opened.groups, Request(names=("coreutils",)), "x86_64", lambda n: n == "coreutils")
    with pytest.raises(ResolveError, match="nothing provides"):
        resolve(listings, opened.groups, Request(names=("coreutils",)), "x86_64", lambda n: n.startswith("libacl"))


def test_selection_in_the_neutral_model(opened: Repository) -> None:
    chosen = resolve([("baseos", opened.listing)], opened.groups, Request(groups=(GROUP,)), "x86_64")
    pairs = [(p, to_model(p, opened.url, "baseos")) for p in chosen]
    sel = select(pairs)
    core = sel.by_name()["coreutils"]
    assert (core.version, core.arch, core.purl_type, core.dist) == ("1:9.4-5", "x86_64", "rpm", "baseos")
    assert core.url == f"{opened.url}/{core.filename}" and len(core.sha256) == 64
    assert core.source_name == "coreutils" and core.source_version == "9.4-5"
    assert sel.names() == sorted(sel.names())
    assert sel.compare_versions("1:9.4-5", "9.5-1") == 1
    # Back from a lock: every pin found, one stale pin (a version the repository no longer has) reported.
    pins = [Pin(m.name, m.version, m.arch, m.sha256) for m in sel.packages]
    stale = Pin("acl-legacy", "2.2.0-1", "x86_64", "0" * 64)
    everything = [(p, to_model(p, opened.url, "baseos")) for p in opened.packages]
    again, gone = pinned(everything, [*pins, stale])
    assert again.packages == sel.packages and gone == [stale]
    # Rebuilt under the same version: matched with the repository's sha256, for the lock's check to refuse.
    rebuilt = Pin(pins[0].name, pins[0].version, pins[0].arch, "0" * 64)
    again, gone = pinned(everything, [rebuilt, *pins[1:]])
    assert gone == [] and again.packages[0].sha256 == sel.packages[0].sha256 != rebuilt.sha256


def test_two_architectures_of_one_name_are_refused(opened: Repository) -> None:
    """A multilib pair (what a 32-bit soname requirement pulls in) is one error, not a set keyed by name that keeps
    one of the two."""
    glibcs = [p for p in opened.packages if p.name == "glibc" and p.version == "2.39"]
    assert {p.arch for p in glibcs} == {"x86_64", "i686"}
    with pytest.raises(BootstrapError, match=r"glibc twice \(i686 and x86_64\): one architecture per name"):
        select([(p, to_model(p, opened.url, "baseos")) for p in glibcs])


def test_source_of() -> None:
    assert source_of("coreutils-9.4-5.el9.src.rpm") == ("coreutils", "9.4-5.el9")
    assert source_of("") == ("", "")
