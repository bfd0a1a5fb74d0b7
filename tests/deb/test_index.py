"""Packages indexes: the fast parser, the Index built from several files, and fetching with a cache."""

import hashlib
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bootstrap.deb import index, release
from bootstrap.deb.index import Index, PackagesFile, parse_stanza
from bootstrap.deb.relations import Relation, parse
from bootstrap.deb.release import Release
from bootstrap.errors import ChecksumError, MirrorError
from bootstrap.host.cache import Cache
from tests.fixtures.gpg import GpgKey
from tests.fixtures.pickles import planted_pickle
from tests.fixtures.repo import Repo
from tests.fixtures.server import Server

SHA = "0" * 64

PACKAGES = f"""\
Package: libc6
Source: glibc (2.36-9)
Version: 2.36-9
Installed-Size: 12000
Maintainer: GNU Libc Maintainers <debian-glibc@lists.example.invalid>
Architecture: amd64
Multi-Arch: same
Depends: libgcc-s1
Breaks: hurd (<< 1:0.9.git20220301-2),
 nscd (<< 2.36)
Description: GNU C Library: Shared libraries
 Contains the standard libraries that are used by nearly all programs on
 the system.
 .
 Essential: yes
 Priority: important
 Provides: not-a-field
Priority: required
Section: libs
Filename: pool/main/g/glibc/libc6_2.36-9_amd64.deb
Size: 2757936
SHA256: {SHA}

Package: dash
Version: 0.5.12-2
Architecture: amd64
Essential: yes
Pre-Depends: libc6 (>= 2.34)
Priority: required
Filename: pool/main/d/dash/dash_0.5.12-2_amd64.deb
Size: 100
SHA256: {SHA}



Package: mawk
Version: 1.3.4.20200120-3.1
Architecture: amd64
Multi-Arch: foreign
Provides: awk
Priority: required
Filename: pool/main/m/mawk/mawk_1.3.4.20200120-3.1_amd64.deb
Size: 100
SHA256: {SHA}

Package: mawk
Version: 1.3.4.20230322-1
Architecture: amd64
Multi-Arch: foreign
Provides: awk
Priority: required
Filename: pool/main/m/mawk/mawk_1.3.4.20230322-1_amd64.deb
Size: 101
SHA256: {SHA}

Package: vim
Version: 2:9.0.1378-2
Architecture: amd64
Provides: editor, vim-nox (= 2:9.0.1378-2),vim-tiny
Essential: no
Filename: pool/main/v/vim/vim_9.0.1378-2_amd64.deb
Size: 100
SHA256: {SHA}

Package: tzdata
Version: 2024a-0+deb12u1
Architecture: all
Priority: important
Filename: pool/main/t/tzdata/tzdata_2024a-0+deb12u1_all.deb
Size: 100
SHA256: {SHA}

Package: arm-only
Version: 1
Architecture: arm64
Priority: required
Essential: yes
Filename: pool/main/a/arm-only/arm-only_1_arm64.deb
Size: 100
SHA256: {SHA}"""


def a_release(dist: str = "fixture", mirror: str = "http://mirror.invalid/debian") -> Release:
    return Release(mirror, dist, "Debian", "stable", "fixture", 0, None, False, ("main",), {}, "")


@pytest.fixture(scope="module")
def parsed() -> PackagesFile:
    return PackagesFile.parse(PACKAGES)


# --- the parser -----------------------------------------------------------------------------------------------


def test_parse_stanza_keeps_continuation_lines() -> None:
    fields = parse_stanza("Package: x\nDescription: short\n line one\n .\n line two\nSize: 3\n")
    assert fields == {"Package": "x", "Description": "short\n line one\n .\n line two", "Size": "3"}


def test_every_stanza_is_found_with_repeated_names(parsed: PackagesFile) -> None:
    assert sorted(parsed.starts) == ["arm-only", "dash", "libc6", "mawk", "tzdata", "vim"]
    assert len(parsed.starts["mawk"]) == 2
    for name, starts in parsed.starts.items():
        for start in starts:
            assert parse_stanza(parsed.stanza(start))["Package"] == name


def test_stanza_ends_at_the_blank_line(parsed: PackagesFile) -> None:
    fields = parse_stanza(parsed.stanza(parsed.starts["libc6"][0]))
    assert fields["SHA256"] == SHA
    assert fields["Breaks"] == "hurd (<< 1:0.9.git20220301-2),\n nscd (<< 2.36)"
    assert "Package" not in fields["Description"]


def test_provides_with_and_without_versions(parsed: PackagesFile) -> None:
    assert parsed.provides == {
        "awk": ["mawk", "mawk"],
        "editor": ["vim"],
        "vim-nox": ["vim"],
        "vim-tiny": ["vim"],
    }


def test_priority_and_essential_sets_ignore_description_text(parsed: PackagesFile) -> None:
    assert sorted(parsed.essential) == ["arm-only", "dash"]
    assert sorted(set(parsed.priorities["required"])) == ["arm-only", "dash", "libc6", "mawk"]
    assert parsed.priorities["important"] == ["tzdata"]


def test_empty_and_odd_files() -> None:
    assert PackagesFile.parse("").starts == {}
    assert PackagesFile.parse("\n\n\n").starts == {}
    one = PackagesFile.parse("\nPackage: a\nVersion: 1\n\n\n")
    assert list(one.starts) == ["a"]
    assert parse_stanza(one.stanza(one.starts["a"][0])) == {"Package": "a", "Version": "1"}


# --- the Index over several files -------------------------------------------------------------------------------


def test_index_versions_newest_first_across_files(parsed: PackagesFile) -> None:
    updates = PackagesFile.parse(PACKAGES.replace("1.3.4.20230322-1", "1.3.4.20240101-1"))
    idx = Index([(a_release("fixture"), parsed), (a_release("fixture-updates"), updates)], "amd64")
    got = [(p.version, p.dist) for p in idx.versions("mawk")]
    assert got == [
        ("1.3.4.20240101-1", "fixture-updates"),
        ("1.3.4.20230322-1", "fixture"),
        ("1.3.4.20200120-3.1", "fixture"),
        ("1.3.4.20200120-3.1", "fixture-updates"),
    ]
    candidate = idx.candidate("mawk")
    assert candidate is not None
    assert candidate.version == "1.3.4.20240101-1"
    assert idx.candidate("nonexistent") is None
    assert idx.versions("nonexistent") == []


def test_index_filters_architectures(parsed: PackagesFile) -> None:
    idx = Index([(a_release(), parsed)], "amd64")
    assert idx.versions("arm-only") == []
    assert [p.arch for p in idx.versions("tzdata")] == ["all"]
    arm = Index([(a_release(), parsed)], "arm64")
    assert [p.name for p in arm.versions("arm-only")] == ["arm-only"]
    assert arm.versions("dash") == []


def test_index_sets(parsed: PackagesFile) -> None:
    idx = Index([(a_release(), parsed)], "amd64")
    assert idx.providers("awk") == ["mawk"]
    assert idx.providers("vim-nox") == ["vim"]
    assert idx.providers("nothing") == []
    assert idx.with_priority("required") == {"arm-only", "dash", "libc6", "mawk"}
    assert idx.essential() == {"arm-only", "dash"}
    assert len(idx) == 6


def test_package_fields(parsed: PackagesFile) -> None:
    idx = Index([(a_release(), parsed)], "amd64")
    libc = idx.candidate("libc6")
    assert libc is not None
    assert (libc.multi_arch, libc.priority, libc.essential) == ("same", "required", False)
    assert libc.key == "libc6:amd64"
    assert libc.source_name == "glibc"
    assert libc.url == "http://mirror.invalid/debian/pool/main/g/glibc/libc6_2.36-9_amd64.deb"
    assert (libc.size, libc.sha256) == (2757936, SHA)
    assert parse(libc.breaks)[1] == (Relation("nscd", "", "<<", "2.36"),)
    dash = idx.candidate("dash")
    assert dash is not None
    assert (dash.essential, dash.pre_depends, dash.key, dash.source_name) == (True, "libc6 (>= 2.34)", "dash", "dash")
    vim = idx.candidate("vim")
    assert vim is not None
    assert (vim.priority, vim.essential, vim.multi_arch, vim.version) == ("optional", False, "no", "2:9.0.1378-2")


def test_missing_required_field_is_a_mirror_error() -> None:
    broken = PackagesFile.parse(f"Package: xy\nVersion: 1\nArchitecture: amd64\nSize: 1\nSHA256: {SHA}\n")
    with pytest.raises(MirrorError, match="package 'xy' in fixture: index has no Filename field"):
        Index([(a_release(), broken)], "amd64").versions("xy")


# --- fetching and caching -------------------------------------------------------------------------------------


@pytest.fixture
def make_repo(tmp_path: Path, gpg_key: GpgKey) -> Callable[..., Repo]:
    def make(**settings: Any) -> Repo:
        repo = Repo(tmp_path / "repo", gpg_key)
        repo.add_dist("fixture", "stable", **settings)
        repo.add_package("fixture", "hello", "1.0", depends="libc6 (>= 2.36)", provides="greeter (= 1)")
        repo.add_package("fixture", "hello", "0.9")
        repo.add_package("fixture", "data", "1", "all", priority="required", essential=True)
        repo.publish()
        return repo

    return make


def fetch(server: Server, repo: Repo) -> Release:
    return release.fetch(server.url, "fixture", (repo.keyring,))


def test_load_prefers_by_hash_and_the_gz_index(make_repo: Callable[..., Repo], cache: Cache) -> None:
    repo = make_repo()
    with Server(repo.root) as server:
        rel = fetch(server, repo)
        pf = index.load(cache, rel, "main", "amd64")
        gz = rel.files["main/binary-amd64/Packages.gz"]
        assert server.requests[-1] == f"/dists/fixture/main/binary-amd64/by-hash/SHA256/{gz.sha256}"
    assert sorted(pf.starts) == ["data", "hello"]
    assert len(pf.starts["hello"]) == 2
    assert pf.provides == {"greeter": ["hello"]}
    assert pf.essential == ["data"]
    assert cache.has(gz.sha256, gz.size)


def test_load_falls_back_when_by_hash_is_missing(make_repo: Callable[..., Repo], cache: Cache) -> None:
    repo = make_repo()
    repo.remove_by_hash("fixture")
    with Server(repo.root) as server:
        pf = index.load(cache, fetch(server, repo), "main", "amd64")
        assert server.requests[-2].startswith("/dists/fixture/main/binary-amd64/by-hash/SHA256/")
        assert server.requests[-1] == "/dists/fixture/main/binary-amd64/Packages.gz"
    assert sorted(pf.starts) == ["data", "hello"]


def test_load_without_by_hash_uses_the_plain_path(make_repo: Callable[..., Repo], cache: Cache) -> None:
    repo = make_repo(by_hash=False)
    with Server(repo.root) as server:
        index.load(cache, fetch(server, repo), "main", "amd64")
        assert not any("by-hash" in r for r in server.requests)


@pytest.mark.parametrize(("formats", "fetched"), [((".xz",), "Packages.xz"), (("",), "Packages")])
def test_load_other_index_formats(
    make_repo: Callable[..., Repo], cache: Cache, formats: tuple[str, ...], fetched: str
) -> None:
    repo = make_repo(index_formats=formats, by_hash=False)
    with Server(repo.root) as server:
        pf = index.load(cache, fetch(server, repo), "main", "amd64")
        assert server.requests[-1] == f"/dists/fixture/main/binary-amd64/{fetched}"
    assert sorted(pf.starts) == ["data", "hello"]


def test_no_index_for_the_architecture(make_repo: Callable[..., Repo], cache: Cache) -> None:
    repo = make_repo()
    with Server(repo.root) as server, pytest.raises(MirrorError, match="no main/binary-arm64/Packages index"):
        index.load(cache, fetch(server, repo), "main", "arm64")


def test_second_load_comes_from_the_cache(make_repo: Callable[..., Repo], cache: Cache) -> None:
    repo = make_repo()
    with Server(repo.root) as server:
        rel = fetch(server, repo)
        first = index.load(cache, rel, "main", "amd64")
    # the server is gone: only the cache can answer now
    second = index.load(cache, rel, "main", "amd64")
    assert second == first
    assert second is not first
    sha = rel.files["main/binary-amd64/Packages.gz"].sha256
    names = sorted(p.name for p in (cache.root / "parsed").iterdir())
    assert names == [f"{sha}.v{index.PARSER_VERSION}.offsets", f"{sha}.v{index.PARSER_VERSION}.text"]
    # a damaged parsed copy is rebuilt from the cached index file
    offsets = cache.root / "parsed" / names[0]
    offsets.write_bytes(offsets.read_bytes()[:20])
    assert index.load(cache, rel, "main", "amd64") == first


def test_loaded_index_matches_the_published_file(make_repo: Callable[..., Repo], cache: Cache) -> None:
    repo = make_repo()
    with Server(repo.root) as server:
        pf = index.load(cache, fetch(server, repo), "main", "amd64")
    published = (repo.dist_dir("fixture") / "main/binary-amd64/Packages").read_bytes()
    assert pf.text[:] == published
    idx = Index([(a_release(), pf)], "amd64")
    hello = idx.candidate("hello")
    assert hello is not None
    deb = repo.root / hello.filename
    assert hello.version == "1.0"
    assert hashlib.sha256(deb.read_bytes()).hexdigest() == hello.sha256
    assert deb.stat().st_size == hello.size


# --- the parsed-index cache proves itself -------------------------------------------------------------------


@pytest.fixture
def loaded(make_repo: Callable[..., Repo], cache: Cache) -> tuple[Release, PackagesFile, Path]:
    """A release whose main index was loaded once (so it is cached) and is no longer served."""
    repo = make_repo()
    for i in range(150):  # an index of several text blocks
        filler = {"Package": f"filler{i:03}", "Version": "1", "Architecture": "amd64", "Description": "x\n y" * 9}
        repo.add_stanza("fixture", {**filler, "Filename": f"pool/f{i}.deb", "Size": "1", "SHA256": "0" * 64})
    repo.publish()
    with Server(repo.root) as server:
        rel = fetch(server, repo)
        first = index.load(cache, rel, "main", "amd64")
    base = cache.root / "parsed" / f"{rel.files['main/binary-amd64/Packages.gz'].sha256}.v{index.PARSER_VERSION}"
    return rel, first, base


def records(pf: PackagesFile) -> dict[str, list[str]]:
    return {name: [pf.stanza(s) for s in pf.starts[name]] for name in pf.starts}


def test_a_changed_text_block_is_caught_when_read(
    loaded: tuple[Release, PackagesFile, Path], cache: Cache, caplog: pytest.LogCaptureFixture
) -> None:
    rel, first, base = loaded
    text = base.with_name(base.name + ".text")
    good = text.read_bytes()
    start = next(s for s in first.starts["hello"] if "Depends: libc6" in first.stanza(s))
    text.write_bytes(good.replace(b"Depends: libc6 (>= 2.36)", b"Depends: evil9 (>= 2.36)"))
    assert text.read_bytes() != good and len(text.read_bytes()) == len(good)
    with caplog.at_level(logging.DEBUG, logger="bootstrap"):
        second = index.load(cache, rel, "main", "amd64")
        stanza = second.stanza(start)
    assert "Depends: libc6 (>= 2.36)" in stanza and "evil" not in stanza
    assert any("block hashes" in r.getMessage() for r in caplog.records)
    assert text.read_bytes() == good
    assert records(second) == records(first)


@pytest.mark.parametrize("where", ["offsets", "truncated-text", "offsets-mode", "offsets-of-another-index"])
def test_a_damaged_parsed_index_is_made_again(
    where: str, loaded: tuple[Release, PackagesFile, Path], cache: Cache, caplog: pytest.LogCaptureFixture
) -> None:
    rel, first, base = loaded
    offsets, text = base.with_name(base.name + ".offsets"), base.with_name(base.name + ".text")
    good = offsets.read_bytes()
    if where == "offsets":
        damaged = bytearray(good)
        damaged[200] ^= 0x01  # inside the package names
        offsets.write_bytes(bytes(damaged))
    elif where == "truncated-text":
        text.write_bytes(text.read_bytes()[:-100])
    elif where == "offsets-mode":
        offsets.chmod(0o666)
    else:
        other = PackagesFile.parse(PACKAGES)
        from bootstrap.host.cache import write_derived

        write_derived(offsets, "ab" * 32, other.sections())
    with caplog.at_level(logging.DEBUG, logger="bootstrap"):
        second = index.load(cache, rel, "main", "amd64")
    assert records(second) == records(first) and second == first
    assert offsets.read_bytes() == good and offsets.stat().st_mode & 0o777 == 0o644
    if where != "truncated-text":
        assert any(str(offsets) in r.getMessage() for r in caplog.records)


def test_a_planted_pickle_is_never_loaded(
    loaded: tuple[Release, PackagesFile, Path], cache: Cache, tmp_path: Path
) -> None:
    rel, first, base = loaded
    marker = tmp_path / "pwned"
    payload = planted_pickle(marker)
    for suffix in (".offsets", ".pickle"):
        base.with_name(base.name + suffix).write_bytes(payload)
    base.with_name(base.name.replace(f".v{index.PARSER_VERSION}", ".v2") + ".pickle").write_bytes(payload)
    second = index.load(cache, rel, "main", "amd64")
    assert not marker.exists()
    assert records(second) == records(first)


def test_a_damaged_index_file_is_fetched_again(make_repo: Callable[..., Repo], cache: Cache) -> None:
    repo = make_repo()
    with Server(repo.root) as server:
        rel = fetch(server, repo)
        first = index.load(cache, rel, "main", "amd64")
        entry = rel.files["main/binary-amd64/Packages.gz"]
        blob = cache.blob(entry.sha256)
        damaged = bytearray(blob.read_bytes())
        damaged[-10] ^= 0xFF
        blob.write_bytes(bytes(damaged))
        for derived in (cache.root / "parsed").iterdir():
            derived.unlink()
        served = len(server.requests)
        second = index.load(cache, rel, "main", "amd64")
        assert len(server.requests) == served + 1
    assert second == first
    assert hashlib.sha256(blob.read_bytes()).hexdigest() == entry.sha256


def test_no_pickle_in_the_package() -> None:
    sources = (Path(index.__file__).parent.parent).rglob("*.py")
    assert not [p for p in sources if re.search(r"^\s*(import|from)\s+pickle\b", p.read_text(), re.M)]


@pytest.mark.parametrize(
    ("field", "value", "said"),
    [
        ("Package", "/../../../etc/evil", "Package '/../../../etc/evil' is not one dpkg takes"),
        ("Package", "x", "Package 'x' is not one dpkg takes"),
        ("Version", "1.0 beta!", "Version '1.0 beta!' is not one dpkg takes"),
        ("Version", "1:", "Version '1:' is not one dpkg takes"),
        ("Architecture", "../amd64", "Architecture '../amd64' is not one dpkg takes"),
        ("Size", "12x", "its Size or SHA256 is malformed"),
        ("SHA256", "zz", "its Size or SHA256 is malformed"),
    ],
)
def test_fields_that_name_files_or_order_are_checked_as_dpkg_would(field: str, value: str, said: str) -> None:
    """A package's name becomes files of the image's dpkg database (`info/<name>.list`): a signed index naming
    `/../../x` must not reach the host through them; a version or size no number reads is one line, not an
    internal error."""
    fields = {"Package": "evil", "Version": "1.0", "Architecture": "amd64", "Filename": "pool/e.deb", "Size": "1"}
    fields |= {"SHA256": SHA, field: value}
    text = "".join(f"{k}: {v}\n" for k, v in fields.items())
    name = fields["Package"]
    with pytest.raises(MirrorError, match=re.escape(said)) as err:
        Index([(a_release(), PackagesFile.parse(text))], "amd64").versions(name)
    assert "\n" not in err.value.message


def test_a_stanza_under_another_name_and_bytes_that_are_not_utf8() -> None:
    """The name a stanza is found by is the name it gives (a second Package line would make it another); a name
    that is not UTF-8 is read, never an internal error, and names no package dpkg takes."""
    two = f"Package: good\nPackage: /etc/x\nVersion: 1\nArchitecture: amd64\nFilename: f\nSize: 1\nSHA256: {SHA}\n"
    with pytest.raises(MirrorError):
        Index([(a_release(), PackagesFile.parse(two))], "amd64").versions("good")
    raw = "Package: ba\xffd\nVersion: 1\nArchitecture: amd64\nProvides: v\xfe\nPriority: requ\xfdired\n".encode(
        "latin-1"
    )
    pf = PackagesFile.parse(raw + f"Filename: f\nSize: 1\nSHA256: {SHA}\n".encode())
    (name,) = pf.starts
    with pytest.raises(MirrorError, match="is not one dpkg takes"):
        Index([(a_release(), pf)], "amd64").versions(name)


def test_an_index_that_expands_past_the_bound_is_refused(
    make_repo: Callable[..., Repo], cache: Cache, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Packages.xz of a few kB can inflate to gigabytes: it is read a chunk at a time and refused past the
    size the Release gives its uncompressed text, or MAX_INDEX when it gives none (lowered here), and the cached
    copy is dropped."""
    monkeypatch.setattr(index, "MAX_INDEX", 100)
    repo = make_repo(index_formats=(".xz",), by_hash=False)
    with Server(repo.root) as server:
        rel = fetch(server, repo)
        with pytest.raises(ChecksumError, match="expands past 100 bytes") as err:
            index.load(cache, rel, "main", "amd64")
    assert "\n" not in err.value.message
    assert not cache.has(
        rel.files["main/binary-amd64/Packages.xz"].sha256, rel.files["main/binary-amd64/Packages.xz"].size
    )
