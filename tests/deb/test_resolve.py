"""The resolver, on a signed fixture archive served over HTTP and opened the way a build opens it."""

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from bootstrap.deb.archive import Archive, open_archive
from bootstrap.deb.distros import DISTROS, Distro
from bootstrap.deb.resolve import Request, Selection, resolve
from bootstrap.errors import ResolveError
from bootstrap.host.cache import Cache
from tests.fixtures.gpg import GpgKey
from tests.fixtures.repo import Repo, made_repo

DEBIAN = DISTROS[Distro.DEBIAN]

# name, version, build_deb keyword arguments; all in dist "fixture" unless a "dist" key says otherwise.
UNIVERSE: list[tuple[str, str, dict[str, Any]]] = [
    # minbase: the only Priority: required and Essential: yes packages
    ("base-files", "13", {"priority": "required", "essential": True}),
    ("libc6", "2.36-9", {"priority": "required", "multi_arch": "same", "depends": "libgcc-s1"}),
    ("libgcc-s1", "12.2.0-14", {"multi_arch": "same"}),
    ("dash", "0.5.12-2", {"priority": "required", "essential": True, "pre_depends": "libc6 (>= 2.34)"}),
    ("coreutils", "9.1-1", {"priority": "required", "essential": True, "depends": "usrmerge | usr-is-merged"}),
    ("usrmerge", "37", {}),
    ("usr-is-merged", "37", {"arch": "all", "multi_arch": "foreign"}),
    ("essential-optional", "1", {"essential": True}),
    ("important-tool", "1", {"priority": "important", "depends": "libc6"}),
    # alternatives
    ("alt-a", "1.0", {}),
    ("alt-b", "1.0", {}),
    ("alt-c", "1.0", {"depends": "alt-b"}),
    ("alt-first", "1", {"depends": "alt-a | alt-b"}),
    ("alt-skip", "1", {"depends": "alt-missing | alt-b"}),
    ("alt-ver", "1", {"depends": "alt-a (>= 5) | alt-b"}),
    ("alt-present", "1", {"depends": "alt-a | alt-b, alt-c"}),
    ("alt-none", "1", {"depends": "alt-missing | alt-missing2 (>= 1)"}),
    # virtual packages
    ("mta-user", "1", {"depends": "mail-transport-agent"}),
    ("mta-aaa", "1", {"provides": "mail-transport-agent", "conflicts": "mail-transport-agent"}),
    (
        "mta-zzz",
        "1",
        {"priority": "important", "provides": "mail-transport-agent", "conflicts": "mail-transport-agent"},
    ),
    ("vfoo-impl", "1", {"provides": "vfoo (= 2.5)"}),
    ("vfoo-user", "1", {"depends": "vfoo (>= 2)"}),
    ("vfoo-plain", "1", {"depends": "vfoo"}),
    ("vfoo-toonew", "1", {"depends": "vfoo (>= 3)"}),
    ("vbar-impl", "1", {"provides": "vbar"}),
    ("vbar-plain", "1", {"depends": "vbar"}),
    ("vbar-user", "1", {"depends": "vbar (>= 1)"}),
    # versioned relations; verlib has four versions in one index
    ("verlib", "1.0", {}),
    ("verlib", "2.0~rc1", {}),
    ("verlib", "2.0", {}),
    ("verlib", "3.0", {}),
    ("ver-lt", "1", {"depends": "verlib (<< 2.0)"}),
    ("ver-le", "1", {"depends": "verlib (<= 2.0)"}),
    ("ver-eq", "1", {"depends": "verlib (= 1.0)"}),
    ("ver-ge", "1", {"depends": "verlib (>= 2.0)"}),
    ("ver-gt", "1", {"depends": "verlib (>> 2.0)"}),
    ("ver-none", "1", {"depends": "verlib (>> 3.0)"}),
    ("verepoch", "2.0", {}),
    ("verepoch", "1:0.1", {}),
    ("ver-epoch", "1", {"depends": "verepoch (>= 1:0)"}),
    # Pre-Depends
    ("pre-user", "1", {"pre_depends": "pre-lib"}),
    ("pre-lib", "1", {"depends": "pre-lib-dep"}),
    ("pre-lib-dep", "1", {}),
    # Multi-Arch qualifiers
    ("ma-allowed", "1", {"multi_arch": "allowed"}),
    ("ma-foreign", "1", {"multi_arch": "foreign"}),
    ("ma-same", "1", {"multi_arch": "same"}),
    ("ma-data", "1", {"arch": "all"}),
    ("ma-any-user", "1", {"depends": "ma-allowed:any"}),
    ("ma-any-foreign", "1", {"depends": "ma-foreign:any"}),
    ("ma-native-user", "1", {"depends": "ma-foreign:native, ma-data:native"}),
    ("ma-arch-user", "1", {"depends": "ma-same:amd64"}),
    ("ma-otherarch", "1", {"depends": "ma-same:arm64"}),
    # the newest version across the suite, -updates and -security
    ("upd", "1.0", {}),
    ("upd", "1.1", {"dist": "fixture-updates"}),
    ("sec", "1.0", {}),
    ("sec", "1.0+deb12u1", {"dist": "fixture-security"}),
    ("both", "1.0", {}),
    ("both", "1.1", {"dist": "fixture-updates"}),
    ("both", "1.2", {"dist": "fixture-security"}),
    ("pinned-user", "1", {"depends": "upd (= 1.0)"}),
    # unsatisfiable chains
    ("chain-top", "1", {"depends": "chain-mid"}),
    ("chain-mid", "1", {"depends": "chain-bottom"}),
    ("chain-bottom", "1", {"depends": "no-such-package"}),
    # Conflicts and Breaks
    ("conf-a", "1", {"conflicts": "conf-b"}),
    ("conf-b", "1", {}),
    ("conf-dep", "1", {"depends": "conf-b"}),
    ("conf-virt", "1", {"conflicts": "vbar"}),
    ("brk-a", "1", {"breaks": "brk-b (<< 2.0)"}),
    ("brk-ok", "1", {"breaks": "brk-b (<< 1.0)"}),
    ("brk-b", "1.0", {}),
]


@dataclass
class Universe:
    repo: Repo
    url: str
    cache_dir: Path

    def open(self, suite: str = "stable") -> Archive:
        return open_archive(
            DEBIAN, self.url, self.url, suite, ("main",), "amd64", (self.repo.keyring,), Cache(self.cache_dir)
        )


def _fill_universe(repo: Repo) -> None:
    repo.debian_dists()
    repo.add_dist("sid", "unstable", "sid", aliases=("unstable",))
    repo.add_package("sid", "only-in-sid", "1", compression="none")
    for name, version, options in UNIVERSE:
        opts = dict(options)
        dist = opts.pop("dist", "fixture")
        arch = opts.pop("arch", "amd64")
        repo.add_package(dist, name, version, arch, compression="gzip", **opts)


@pytest.fixture(scope="module")
def universe(
    tmp_path_factory: pytest.TempPathFactory, gpg_key: GpgKey, serve_session: Callable[[Path], str]
) -> Universe:
    repo = made_repo(tmp_path_factory, "resolve-universe", gpg_key, _fill_universe)
    cache_dir = tmp_path_factory.mktemp("resolve") / "cache"
    Cache(cache_dir).ensure()
    return Universe(repo, serve_session(repo.root), cache_dir)


@pytest.fixture(scope="module")
def archive(universe: Universe) -> Archive:
    return universe.open()


def only(*include: str, exclude: tuple[str, ...] = (), prefer: tuple[str, ...] = ()) -> Request:
    """A request for exactly these packages and their dependencies (no priority set, no Essential)."""
    return Request(priorities=(), essential=False, include=include, exclude=exclude, prefer=prefer)


def names(sel: Selection) -> set[str]:
    return set(sel.names())


def versions(sel: Selection) -> dict[str, str]:
    return {p.name: p.version for p in sel.packages}


# --- the archive as opened for a build -------------------------------------------------------------------


def test_open_archive_reads_suite_updates_and_security(archive: Archive) -> None:
    assert archive.codename == "fixture"
    assert archive.suite == "stable"
    assert [r.dist for r in archive.releases] == ["fixture", "fixture-updates", "fixture-security"]
    assert [r.suite for r in archive.releases] == ["stable", "stable-updates", "stable-security"]
    assert archive.date == 1704067200


def test_open_archive_by_codename_gives_the_same_releases(universe: Universe, archive: Archive) -> None:
    by_codename = universe.open("fixture")
    assert [r.dist for r in by_codename.releases] == [r.dist for r in archive.releases]
    assert [r.inrelease_sha256 for r in by_codename.releases] == [r.inrelease_sha256 for r in archive.releases]


def test_unsupported_suite_has_no_updates_or_security(universe: Universe) -> None:
    sid = universe.open("unstable")
    assert [r.dist for r in sid.releases] == ["sid"]
    assert sid.codename == "sid"
    assert resolve(sid.index, only("only-in-sid")).names() == ["only-in-sid"]
    with pytest.raises(ResolveError):
        resolve(sid.index, only("upd"))


def test_selected_packages_point_at_their_real_files(universe: Universe, archive: Archive) -> None:
    sel = resolve(archive.index, only("dash", "both"))
    assert {p.name for p in sel.packages} == {"dash", "libc6", "libgcc-s1", "both"}
    for pkg in sel.packages:
        data = requests.get(pkg.url, timeout=10).content
        assert len(data) == pkg.size
        assert hashlib.sha256(data).hexdigest() == pkg.sha256
        assert pkg.url == f"{universe.url}/{pkg.filename}"


# --- package sets ----------------------------------------------------------------------------------------


def test_default_request_is_required_and_essential_with_dependencies(archive: Archive) -> None:
    sel = resolve(archive.index, Request())
    assert names(sel) == {"base-files", "libc6", "libgcc-s1", "dash", "coreutils", "usrmerge", "essential-optional"}


def test_priorities_without_essential(archive: Archive) -> None:
    sel = resolve(archive.index, Request(priorities=("required", "important"), essential=False))
    assert "important-tool" in names(sel)
    assert "essential-optional" not in names(sel)
    assert {"base-files", "dash", "coreutils"} <= names(sel)


def test_requested_package_missing_from_archive(archive: Archive) -> None:
    with pytest.raises(ResolveError, match="'no-such-package' is not in the archive"):
        resolve(archive.index, only("no-such-package"))


# --- alternatives ----------------------------------------------------------------------------------------


def test_first_installable_alternative_is_taken(archive: Archive) -> None:
    assert names(resolve(archive.index, only("alt-first"))) == {"alt-first", "alt-a"}


def test_alternative_that_does_not_exist_is_skipped(archive: Archive) -> None:
    assert names(resolve(archive.index, only("alt-skip"))) == {"alt-skip", "alt-b"}


def test_alternative_with_unsatisfiable_version_is_skipped(archive: Archive) -> None:
    assert names(resolve(archive.index, only("alt-ver"))) == {"alt-ver", "alt-b"}


def test_alternative_already_in_the_set_is_preferred(archive: Archive) -> None:
    # alt-c's single-choice dependency brings alt-b in before `alt-a | alt-b` is decided.
    assert names(resolve(archive.index, only("alt-present"))) == {"alt-present", "alt-b", "alt-c"}


def test_prefer_picks_a_later_alternative(archive: Archive) -> None:
    assert names(resolve(archive.index, only("alt-first", prefer=("alt-b",)))) == {"alt-first", "alt-b"}
    sel = resolve(archive.index, Request(prefer=("usr-is-merged",)))
    assert "usr-is-merged" in names(sel)
    assert "usrmerge" not in names(sel)


def test_no_installable_alternative(archive: Archive) -> None:
    with pytest.raises(ResolveError, match=r"cannot satisfy 'alt-missing \| alt-missing2 \(>= 1\)' needed by alt-none"):
        resolve(archive.index, only("alt-none"))


# --- virtual packages ------------------------------------------------------------------------------------


def test_virtual_package_provider_by_priority_then_name(archive: Archive) -> None:
    # mta-zzz is Priority: important, mta-aaa optional; both provide and conflict with the virtual name,
    # which must not count as a conflict with themselves.
    assert names(resolve(archive.index, only("mta-user"))) == {"mta-user", "mta-zzz"}


def test_versioned_dependency_on_versioned_provides(archive: Archive) -> None:
    assert names(resolve(archive.index, only("vfoo-user"))) == {"vfoo-user", "vfoo-impl"}
    assert names(resolve(archive.index, only("vfoo-plain"))) == {"vfoo-plain", "vfoo-impl"}


def test_versioned_provides_too_old(archive: Archive) -> None:
    with pytest.raises(ResolveError, match=r"cannot satisfy 'vfoo \(>= 3\)' needed by vfoo-toonew"):
        resolve(archive.index, only("vfoo-toonew"))


def test_unversioned_provides_satisfies_only_unversioned_dependencies(archive: Archive) -> None:
    assert names(resolve(archive.index, only("vbar-plain"))) == {"vbar-plain", "vbar-impl"}
    with pytest.raises(ResolveError, match=r"cannot satisfy 'vbar \(>= 1\)' needed by vbar-user"):
        resolve(archive.index, only("vbar-user"))
    # ... even when the provider is already in the set
    with pytest.raises(ResolveError, match=r"vbar \(>= 1\)"):
        resolve(archive.index, only("vbar-impl", "vbar-user"))


# --- versioned relations ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ("ver-lt", "2.0~rc1"),
        ("ver-le", "2.0"),
        ("ver-eq", "1.0"),
        ("ver-ge", "3.0"),
        ("ver-gt", "3.0"),
        ("ver-epoch", "1:0.1"),
    ],
)
def test_versioned_dependency_takes_newest_matching_version(archive: Archive, user: str, expected: str) -> None:
    sel = versions(resolve(archive.index, only(user)))
    lib = "verepoch" if user == "ver-epoch" else "verlib"
    assert sel[lib] == expected


def test_versioned_dependency_nobody_satisfies(archive: Archive) -> None:
    with pytest.raises(ResolveError, match=r"verlib \(>> 3\.0\).*verlib has only 3\.0, 2\.0, 2\.0~rc1, 1\.0"):
        resolve(archive.index, only("ver-none"))


def test_candidate_is_newest_version(archive: Archive) -> None:
    assert versions(resolve(archive.index, only("verlib"))) == {"verlib": "3.0"}
    assert versions(resolve(archive.index, only("verepoch"))) == {"verepoch": "1:0.1"}


# --- Pre-Depends and Multi-Arch ----------------------------------------------------------------------------


def test_pre_depends_are_followed(archive: Archive) -> None:
    assert names(resolve(archive.index, only("pre-user"))) == {"pre-user", "pre-lib", "pre-lib-dep"}


def test_any_qualifier_needs_multi_arch_allowed(archive: Archive) -> None:
    assert names(resolve(archive.index, only("ma-any-user"))) == {"ma-any-user", "ma-allowed"}
    with pytest.raises(ResolveError, match="ma-foreign:any"):
        resolve(archive.index, only("ma-any-foreign"))


def test_native_and_arch_qualifiers(archive: Archive) -> None:
    assert names(resolve(archive.index, only("ma-native-user"))) == {"ma-native-user", "ma-foreign", "ma-data"}
    assert names(resolve(archive.index, only("ma-arch-user"))) == {"ma-arch-user", "ma-same"}
    with pytest.raises(ResolveError, match="ma-same:arm64"):
        resolve(archive.index, only("ma-otherarch"))


# --- suites ------------------------------------------------------------------------------------------------


def test_newest_version_across_suite_updates_and_security(archive: Archive) -> None:
    sel = resolve(archive.index, only("upd", "sec", "both")).by_name()
    assert (sel["upd"].version, sel["upd"].dist) == ("1.1", "fixture-updates")
    assert (sel["sec"].version, sel["sec"].dist) == ("1.0+deb12u1", "fixture-security")
    assert (sel["both"].version, sel["both"].dist) == ("1.2", "fixture-security")


def test_versioned_dependency_can_pick_an_older_suite(archive: Archive) -> None:
    sel = resolve(archive.index, only("pinned-user")).by_name()
    assert (sel["upd"].version, sel["upd"].dist) == ("1.0", "fixture")


# --- excludes and errors -----------------------------------------------------------------------------------


def test_exclude_skips_an_alternative(archive: Archive) -> None:
    assert names(resolve(archive.index, only("alt-first", exclude=("alt-a",)))) == {"alt-first", "alt-b"}


def test_exclude_removes_a_required_package(archive: Archive) -> None:
    sel = resolve(archive.index, Request(exclude=("usrmerge", "essential-optional")))
    assert "usrmerge" not in names(sel)
    assert "essential-optional" not in names(sel)
    assert "usr-is-merged" in names(sel)


def test_excluding_a_hard_dependency_fails(archive: Archive) -> None:
    with pytest.raises(ResolveError, match=r"cannot satisfy 'pre-lib' needed by pre-user \(pre-lib is excluded\)"):
        resolve(archive.index, only("pre-user", exclude=("pre-lib",)))


def test_ignore_depends_satisfies_without_installing(archive: Archive) -> None:
    request = Request(
        priorities=(), essential=False, include=("chain-top", "alt-first"), ignore_depends=("chain-mid", "alt-b")
    )
    assert names(resolve(archive.index, request)) == {"chain-top", "alt-first"}, "any ignored alternative will do"
    with pytest.raises(ResolveError, match="chain-bottom"):
        resolve(archive.index, only("chain-top"))


def test_an_included_virtual_package_takes_its_provider(archive: Archive) -> None:
    assert names(resolve(archive.index, only("vfoo"))) == {"vfoo-impl"}
    assert names(resolve(archive.index, only("vfoo", "vfoo-impl"))) == {"vfoo-impl"}, "once, by either name"
    with pytest.raises(ResolveError, match="not in the archive"):
        resolve(archive.index, only("no-such-thing"))


def test_unsatisfiable_error_names_the_chain(archive: Archive) -> None:
    with pytest.raises(ResolveError) as err:
        resolve(archive.index, only("chain-top"))
    assert "'no-such-package' needed by chain-bottom <- chain-mid <- chain-top" in err.value.message
    assert "no package no-such-package" in err.value.message
    assert err.value.hint


def test_conflicts_detected(archive: Archive) -> None:
    assert names(resolve(archive.index, only("conf-a"))) == {"conf-a"}
    with pytest.raises(ResolveError, match="conf-a 1 conflicts with conf-b 1"):
        resolve(archive.index, only("conf-a", "conf-b"))
    with pytest.raises(ResolveError, match=r"conflicts with conf-b 1 \(conf-b <- conf-dep\)"):
        resolve(archive.index, only("conf-a", "conf-dep"))


def test_conflicts_with_a_virtual_package(archive: Archive) -> None:
    with pytest.raises(ResolveError, match="conf-virt 1 conflicts with vbar-impl 1"):
        resolve(archive.index, only("conf-virt", "vbar-plain"))


def test_breaks_with_version(archive: Archive) -> None:
    with pytest.raises(ResolveError, match="brk-a 1 breaks with brk-b 1.0"):
        resolve(archive.index, only("brk-a", "brk-b"))
    assert names(resolve(archive.index, only("brk-ok", "brk-b"))) == {"brk-ok", "brk-b"}


# --- determinism -------------------------------------------------------------------------------------------


def test_resolution_is_deterministic_and_sorted(universe: Universe, archive: Archive) -> None:
    request = Request(priorities=("required", "important"), include=("mta-user", "alt-first", "both", "vfoo-user"))
    first = resolve(archive.index, request)
    again = resolve(archive.index, request)
    fresh = resolve(universe.open().index, request)
    assert first == again == fresh
    assert first.names() == sorted(first.names())
    assert len(first.names()) == len(set(first.names()))


def test_a_virtual_that_thousands_provide_and_require_is_resolved_in_linear_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """1,000 required packages each provide `v (= 1)` and depend on `v (>= 2)`, which the last alone provides:
    each dependency is looked at against the providers selected since it was last asked, not all of them again
    (version comparisons counted: about the square of the providers before, a few times their number now)."""
    from bootstrap.deb import relations
    from bootstrap.deb.index import Index, PackagesFile
    from bootstrap.deb.release import Release

    count = 1000
    stanzas = [
        f"Package: p{i:05}\nVersion: 1\nArchitecture: amd64\nPriority: required\n"
        f"Provides: v (= {2 if i == count - 1 else 1})\nDepends: v (>= 2)\nFilename: f\nSize: 1\nSHA256: {'0' * 64}\n"
        for i in range(count)
    ]
    release = Release(
        "http://mirror.invalid", "fixture", "Debian", "stable", "fixture", 0, None, False, ("main",), {}, ""
    )
    index = Index([(release, PackagesFile.parse("\n".join(stanzas)))], "amd64")
    compared = 0
    real = relations.version_satisfies

    def counted(*args: str) -> bool:
        nonlocal compared
        compared += 1
        return real(*args)

    monkeypatch.setattr(relations, "version_satisfies", counted)
    assert len(resolve(index, Request(priorities=("required",), essential=False)).packages) == count
    assert compared < 10 * count, f"{compared} version comparisons for {count} packages"
