"""Opening an RPM repository: the signed repomd.xml, the metadata files it vouches for, rollback; each hostile
input made for real from the fixture repository (tests/fixtures/rpmrepo.py)."""

import hashlib
import lzma
import re
import shutil
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest
import solv

from bootstrap.errors import BootstrapError, ChecksumError, NetworkError, SignatureError
from bootstrap.host import compressed
from bootstrap.host.cache import Cache, read_derived
from bootstrap.rpm import comps, listing, xmlstream
from bootstrap.rpm.repo import Repository, open_repository
from bootstrap.rpm.repomd import RepoMd
from tests.conftest import Serve
from tests.fixtures.gpg import GpgKey
from tests.fixtures.rpmrepo import GROUP, MINIATURE_GROUP, RpmRepo, shared_miniature
from tests.rpm.conftest import need_tools


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, gpg_key: GpgKey) -> Path:
    """The miniature repository, built and signed once; each test works on a copy."""
    need_tools("rpmbuild", "createrepo_c")
    return shared_miniature(tmp_path_factory, gpg_key).root


@pytest.fixture
def repo(built: Path, tmp_path: Path, gpg_key: GpgKey) -> RpmRepo:
    shutil.copytree(built, tmp_path / "repo")
    return RpmRepo(tmp_path / "repo", gpg_key)


@pytest.fixture
def keyring(repo: RpmRepo, tmp_path: Path) -> tuple[Path, ...]:
    return (repo.keyring(tmp_path / "RPM-GPG-KEY-fixture"),)


def test_reads_packages_files_and_groups(repo: RpmRepo, keyring: tuple[Path, ...], serve: Serve, cache: Cache) -> None:
    got = open_repository(serve(repo.root), keyring, cache, frozenset({repo.key.fingerprint}))
    by = {p.nevra: p for p in got.packages}
    assert "bash-0:5.2.26-3.i686" in by and "bash-0:5.2.26-3.x86_64" in by
    assert {"libacl-0:2.3.1-1.x86_64", "libacl-0:2.3.2-1.x86_64"} <= set(by)
    coreutils = by["coreutils-1:9.4-5.x86_64"]
    assert coreutils.evr == "1:9.4-5" and coreutils.sourcerpm.startswith("coreutils-9.4-5")
    # Relations and files stay in libsolv's form of the listing, which the resolver loads.
    pool = listing.new_pool("x86_64")
    solvables = {pkg.nevra: pool.solvables[sid] for sid, pkg in listing.load(pool, "baseos", got.listing).items()}
    assert set(solvables) == set(by)

    def relation(key: int) -> set[str]:
        return {str(d) for d in solvables["coreutils-1:9.4-5.x86_64"].lookup_deparray(key, 0)}

    assert relation(solv.SOLVABLE_REQUIRES) >= {"/bin/sh", "(libacl or libacl-ng)"}
    assert relation(solv.SOLVABLE_OBSOLETES) == {"oldutils < 2"}
    assert relation(solv.SOLVABLE_RECOMMENDS) == {"coreutils-doc"}
    assert "coreutils-core = 1:9.4-5" in relation(solv.SOLVABLE_PROVIDES)
    # Files come from filelists.xml: primary lists only /etc and bin directories' files.
    owners = pool.select("/usr/lib64/libacl.so.1", solv.Selection.SELECTION_FILELIST).solvables()
    assert "libacl-0:2.3.2-1.x86_64" in {next(k for k, v in solvables.items() if v.id == s.id) for s in owners}
    assert by["bash-0:5.2.26-3.x86_64"].location.startswith("Packages/")
    assert len(by["bash-0:5.2.26-3.x86_64"].sha256) == 64
    assert got.groups[GROUP].installed() == list(MINIATURE_GROUP)
    assert got.repomd.revision == "1700000000"
    assert got.source.uri.endswith("/repodata/repomd.xml")


@pytest.mark.parametrize(("compress", "suffix"), [("gz", "gz"), ("zstd", "zst"), ("bz2", "bz2")])
def test_metadata_in_each_compression_createrepo_c_writes(
    built: Path, tmp_path: Path, gpg_key: GpgKey, serve: Serve, cache: Cache, compress: str, suffix: str
) -> None:
    """EL 9's repositories compress their metadata with gzip, Fedora's and EL 10's with zstd; createrepo_c
    writes bzip2 too."""
    shutil.copytree(built, tmp_path / "repo")
    repo = RpmRepo(tmp_path / "repo", gpg_key)
    repo.publish(compress=compress)
    assert (repo.root / "repodata" / f"primary.xml.{suffix}").is_file()
    got = open_repository(serve(repo.root), (repo.keyring(tmp_path / "key.asc"),), cache)
    assert len(got.packages) == 15 and got.groups[GROUP].installed() == list(MINIATURE_GROUP)


def test_tampered_repomd_is_refused(repo: RpmRepo, keyring: tuple[Path, ...], serve: Serve, cache: Cache) -> None:
    md = repo.root / "repodata" / "repomd.xml"
    md.write_bytes(md.read_bytes().replace(b"<revision>1700000000<", b"<revision>1800000000<"))
    with pytest.raises(SignatureError, match="bad signature"):
        open_repository(serve(repo.root), keyring, cache)


def _other_state(primary: Path) -> bytes:
    """The primary.xml.xz of another state: one package fewer."""
    text = lzma.decompress(primary.read_bytes())
    start = text.index(b'<package type="rpm">')
    return lzma.compress(text[:start] + text[text.index(b"</package>", start) + 10 :])


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ("other state", NetworkError, "the body ended after"),
        ("one byte flipped", ChecksumError, "checksum mismatch"),
        ("longer", ChecksumError, "more than the"),
    ],
)
def test_metadata_file_not_matching_repomd(
    repo: RpmRepo,
    keyring: tuple[Path, ...],
    serve: Serve,
    cache: Cache,
    change: str,
    error: type[BootstrapError],
    message: str,
) -> None:
    """primary.xml.xz is not the file the signed repomd.xml names: refused before anything is read from it."""
    primary = repo.root / "repodata" / "primary.xml.xz"
    data = primary.read_bytes()
    if change == "other state":
        data = _other_state(primary)
    elif change == "one byte flipped":
        data = data[:100] + bytes([data[100] ^ 1]) + data[101:]
    else:
        data += b"\0" * 4
    primary.write_bytes(data)
    with pytest.raises(error, match=message) as caught:
        open_repository(serve(repo.root), keyring, cache)
    assert "primary.xml.xz" in caught.value.message


def test_older_revision_is_a_rollback(repo: RpmRepo, keyring: tuple[Path, ...], serve: Serve, cache: Cache) -> None:
    url = serve(repo.root)
    repo.publish(revision=1700000500)
    open_repository(url, keyring, cache)
    repo.publish(revision=1700000400)  # signed by the right key, but older than the state seen
    with pytest.raises(SignatureError, match="rollback"):
        open_repository(url, keyring, cache)
    repo.publish(revision=1700000500)  # the same state again is fine
    assert open_repository(url, keyring, cache).repomd.stamp == 1700000500


def test_unknown_key_is_refused(
    repo: RpmRepo, keyring: tuple[Path, ...], serve: Serve, cache: Cache, other_gpg_key: GpgKey
) -> None:
    md = repo.root / "repodata" / "repomd.xml"
    (repo.root / "repodata" / "repomd.xml.asc").write_bytes(other_gpg_key.detach_sign(md.read_bytes()))
    with pytest.raises(SignatureError, match="not in the keyring"):
        open_repository(serve(repo.root), keyring, cache)


def test_pinned_fingerprint_must_sign(
    repo: RpmRepo, tmp_path: Path, serve: Serve, cache: Cache, other_gpg_key: GpgKey
) -> None:
    """Both keys in the keyring, but the pin names the other one."""
    ring = tmp_path / "both.gpg"
    ring.write_bytes(
        repo.key.export(tmp_path / "a.gpg").read_bytes() + other_gpg_key.export(tmp_path / "b.gpg").read_bytes()
    )
    with pytest.raises(SignatureError, match="not signed by the key the recipe names"):
        open_repository(serve(repo.root), (ring,), cache, frozenset({other_gpg_key.fingerprint}))


def test_no_signature_is_refused(repo: RpmRepo, keyring: tuple[Path, ...], serve: Serve, cache: Cache) -> None:
    repo.publish(sign=False)
    with pytest.raises(SignatureError, match="not signed"):
        open_repository(serve(repo.root), keyring, cache)


def test_garbage_signature_is_refused(repo: RpmRepo, keyring: tuple[Path, ...], serve: Serve, cache: Cache) -> None:
    (repo.root / "repodata" / "repomd.xml.asc").write_bytes(b"not a signature\n")
    with pytest.raises(SignatureError):
        open_repository(serve(repo.root), keyring, cache)


def _resign(repo: RpmRepo, old: bytes, new: bytes) -> None:
    md = repo.root / "repodata" / "repomd.xml"
    md.write_bytes(md.read_bytes().replace(old, new, 1))
    (repo.root / "repodata" / "repomd.xml.asc").write_bytes(repo.key.detach_sign(md.read_bytes()))


def test_expansion_past_open_size_is_refused(
    repo: RpmRepo, keyring: tuple[Path, ...], serve: Serve, cache: Cache
) -> None:
    """A signed repomd.xml whose primary open-size is smaller than what the file expands to."""
    md = (repo.root / "repodata" / "repomd.xml").read_bytes()
    start = md.index(b'<data type="primary">')
    size = md[md.index(b"<open-size>", start) : md.index(b"</open-size>", start)]
    _resign(repo, size + b"</open-size>", b"<open-size>1000</open-size>")
    with pytest.raises(ChecksumError, match="expands past 1000 bytes"):
        open_repository(serve(repo.root), keyring, cache)


def test_an_open_size_past_the_cap_does_not_lift_it(
    repo: RpmRepo, keyring: tuple[Path, ...], serve: Serve, cache: Cache, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An open-size larger than the cap on any metadata file (which a repomd.xml that nobody signs could give):
    the file is still refused once it expands past the cap."""
    monkeypatch.setattr(compressed, "MAX_OPEN", 1000)
    md = (repo.root / "repodata" / "repomd.xml").read_bytes()
    start = md.index(b'<data type="primary">')
    size = md[md.index(b"<open-size>", start) : md.index(b"</open-size>", start)]
    _resign(repo, size + b"</open-size>", b"<open-size>" + str(1 << 40).encode() + b"</open-size>")
    with pytest.raises(ChecksumError, match="expands past 1000 bytes"):
        open_repository(serve(repo.root), keyring, cache)


def test_entity_declarations_are_refused(repo: RpmRepo, keyring: tuple[Path, ...], serve: Serve, cache: Cache) -> None:
    _resign(repo, b"<repomd", b'<!DOCTYPE repomd [<!ENTITY a "aaaaaaaa">]>\n<repomd')
    with pytest.raises(ChecksumError, match="declares XML entities"):
        open_repository(serve(repo.root), keyring, cache)


def _republish_primary(repo: RpmRepo, change: Callable[[bytes], bytes]) -> None:
    """primary.xml changed by `change`, then published for real: recompressed, its checksums and sizes written into
    repomd.xml, repomd.xml signed again (so only the reading of the XML itself can refuse it)."""
    path = repo.root / "repodata" / "primary.xml.xz"
    text = change(lzma.decompress(path.read_bytes()))
    packed = lzma.compress(text)
    path.write_bytes(packed)
    md_path = repo.root / "repodata" / "repomd.xml"
    md = md_path.read_text()
    start = md.index('<data type="primary">')
    end = md.index("</data>", start)
    block = md[start:end]
    values = {
        "checksum": hashlib.sha256(packed).hexdigest(),
        "open-checksum": hashlib.sha256(text).hexdigest(),
        "size": str(len(packed)),
        "open-size": str(len(text)),
    }
    for tag, value in values.items():
        block = re.sub(rf"(<{tag}[^>]*>)[^<]*(</{tag}>)", rf"\g<1>{value}\g<2>", block)
    md_path.write_text(md[:start] + block + md[end:])
    (repo.root / "repodata" / "repomd.xml.asc").write_bytes(repo.key.detach_sign(md_path.read_bytes()))


def _sha1(text: bytes) -> bytes:
    found = re.search(rb'<checksum type="sha256" pkgid="YES">[0-9a-f]{64}</checksum>', text)
    assert found is not None
    return text.replace(found[0], b'<checksum type="sha1" pkgid="YES">' + b"a" * 40 + b"</checksum>", 1)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.replace(b"<metadata", b'<!DOCTYPE metadata [<!ENTITY a "aa">]>\n<metadata', 1), "declares XML"),
        (
            lambda t: t.replace(b"<metadata", b'<!-- <metadata --><!DOCTYPE m [<!ENTITY a "a">]><metadata', 1),
            "declares XML",
        ),
        (lambda t: t.replace(b'<version epoch="0"', b'<version epoch="x"', 1), "epoch 'x' of 'x:"),
        (lambda t: t.replace(b'<version epoch="0"', '<version epoch="\u00b2"'.encode(), 1), "epoch '\u00b2' of"),
        (lambda t: t.replace(b"</package>", b"</packages>", 1), "not well-formed repository metadata"),
        (lambda t: b'<?xml version="1.0"?>\n<other/>\n', r"has no <metadata> element"),
        (_sha1, "has no sha256 checksum"),
    ],
    ids=["doctype", "doctype after a comment", "epoch", "a digit int() refuses", "malformed", "no root", "sha1"],
)
def test_a_signed_primary_that_does_not_read_as_metadata_is_refused(
    repo: RpmRepo, keyring: tuple[Path, ...], serve: Serve, cache: Cache, change: Callable[[bytes], bytes], message: str
) -> None:
    """Published as a repository would publish it (repomd.xml vouches for it, signed): refused as it is read, with
    the file named."""
    _republish_primary(repo, change)
    with pytest.raises(ChecksumError, match=message) as caught:
        open_repository(serve(repo.root), keyring, cache)
    assert "primary.xml.xz" in caught.value.message


def test_a_kept_listing_serves_the_same_state(
    repo: RpmRepo, keyring: tuple[Path, ...], serve: Serve, cache: Cache
) -> None:
    """The second opening of a state takes the listing the first kept (the metadata files are then neither fetched
    nor read: here they are gone from the mirror and the cache); a damaged one is read again from the files."""
    url = serve(repo.root)
    first = open_repository(url, keyring, cache)
    (kept,) = (cache.root / "parsed").glob("*.listing")
    entries = (first.repomd.data["primary"], first.repomd.data["filelists"])
    saved = {e.location: (repo.root / e.location).read_bytes() for e in entries}
    for entry in entries:
        cache.blob(entry.sha256).unlink()
        (repo.root / entry.location).unlink()
    again = open_repository(url, keyring, cache)
    assert again.packages == first.packages and again.listing.solv == first.listing.solv
    data = bytearray(kept.read_bytes())
    data[-10] ^= 1
    kept.write_bytes(bytes(data))
    with pytest.raises(BootstrapError, match=r"\.xml\.xz: 404"):  # damaged: read again, and the files are gone
        open_repository(url, keyring, cache)
    for location, content in saved.items():
        (repo.root / location).write_bytes(content)
    assert open_repository(url, keyring, cache).listing == first.listing


def test_without_derived_files_the_metadata_is_read_again(
    repo: RpmRepo, keyring: tuple[Path, ...], serve: Serve, cache: Cache
) -> None:
    """As `verify` opens a repository: a listing kept in the cache (here one forged by its owner, which a build
    would take) is neither read nor written."""
    url = serve(repo.root)
    first = open_repository(url, keyring, cache, derived=False)
    assert not list((cache.root / "parsed").glob("*.listing"))
    moved = replace(first.packages[0], location="forged.rpm")
    forged = listing.Listing((moved, *first.packages[1:]), first.listing.solv)
    md = first.repomd.data
    listing.cached(cache.area("parsed"), [md["primary"].sha256, md["filelists"].sha256], lambda: forged)
    assert open_repository(url, keyring, cache, derived=False).packages == first.packages
    assert open_repository(url, keyring, cache).packages[0].location == "forged.rpm"


def test_a_listing_whose_records_do_not_fit_its_solv_form_is_never_kept(
    repo: RpmRepo, keyring: tuple[Path, ...], serve: Serve, cache: Cache
) -> None:
    """A listing is read back by libsolv before it is kept: one with a record fewer than libsolv's form holds, or
    its records in another order (code that made it wrong), is used by the build that made it and not kept, so
    the next build reads the metadata again and keeps what it reads."""
    url = serve(repo.root)
    first = open_repository(url, keyring, cache, derived=False)
    md = first.repomd.data
    sources = [md["primary"].sha256, md["filelists"].sha256]
    short = listing.Listing(first.packages[1:], first.listing.solv)
    turned = listing.Listing(first.packages[::-1], first.listing.solv)  # as many records, not in libsolv's order
    for wrong in (short, turned):
        assert listing.cached(cache.area("parsed"), sources, lambda wrong=wrong: wrong) is wrong  # type: ignore[misc]
        assert not list((cache.root / "parsed").glob("*.listing"))
    assert open_repository(url, keyring, cache).packages == first.packages
    (kept,) = (cache.root / "parsed").glob("*.listing")
    assert listing._kept(read_derived(kept, kept.stem) or []) == first.listing  # noqa: SLF001 - kept as read
    assert listing.cached(cache.area("parsed"), sources, lambda: short) == first.listing  # taken back, not made


def test_a_listing_kept_by_another_libsolv_build_is_not_taken(
    repo: RpmRepo, keyring: tuple[Path, ...], serve: Serve, cache: Cache, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kept listing's solv form was checked by the libsolv build that wrote it: another build (an upgraded
    wheel) reads the metadata again rather than take it unchecked."""
    url = serve(repo.root)
    first = open_repository(url, keyring, cache)
    md = first.repomd.data
    sources = [md["primary"].sha256, md["filelists"].sha256]
    made: list[int] = []

    def make() -> listing.Listing:
        made.append(1)
        return first.listing

    assert listing.cached(cache.area("parsed"), sources, make) == first.listing and not made
    monkeypatch.setattr(listing, "libsolv_build", lambda: "libsolv another build")
    assert listing.cached(cache.area("parsed"), sources, make) == first.listing and made == [1]
    assert len(list((cache.root / "parsed").glob("*.listing"))) == 2


def _comps_with_description(size: int, fed: list[int]) -> Iterator[bytes]:
    """comps.xml whose one group has a description of `size` characters, made a MiB at a time as it is read (as a
    small compressed file inflates); `fed` counts the MiBs given."""
    yield b'<?xml version="1.0"?>\n<comps><group><id>core</id><description>'
    for left in range(size, 0, -(1 << 20)):
        fed.append(1)
        yield b"x" * min(left, 1 << 20)
    yield b'</description><packagelist><packagereq type="mandatory">bash</packagereq></packagelist></group></comps>'


def test_an_element_of_gigabytes_is_refused_as_it_is_read() -> None:
    """A hostile comps.xml (a few KB compressed) whose description inflates to 300 MiB is refused once one element
    holds more than any metadata does, a MiB or two into it, never held whole; a long but sane one is read."""
    fed: list[int] = []
    with pytest.raises(ChecksumError, match="more than .* characters of text") as caught:
        comps.read(_comps_with_description(300 << 20, fed), "comps.xml")
    assert "\n" not in caught.value.message
    assert len(fed) <= xmlstream.MAX_TEXT // (1 << 20) + 2
    sane: list[int] = []
    groups = comps.read(_comps_with_description(xmlstream.MAX_TEXT // 2, sane), "comps.xml")
    assert groups["core"].installed() == ["bash"]


def test_an_earlier_floor_put_back_in_the_cache_is_no_floor(
    repo: RpmRepo, keyring: tuple[Path, ...], serve: Serve, cache: Cache, tmp_path: Path
) -> None:
    """Whoever can write the cache puts back its slot as an earlier copy of the cache held it (revision 500, the
    floor then): an offline build does not take that older state as the cache's, as it would have."""
    url = serve(repo.root)
    repo.publish(revision=1700000500)
    open_repository(url, keyring, cache)
    (slot,) = (cache.root / "repomd").iterdir()
    shutil.copytree(slot, tmp_path / "saved-slot")
    repo.publish(revision=1700000600)
    assert open_repository(url, keyring, cache).repomd.revision == "1700000600"
    shutil.rmtree(slot)
    shutil.copytree(tmp_path / "saved-slot", slot)
    with pytest.raises(BootstrapError, match="--offline: .* is not in the cache"):
        open_repository(url, keyring, cache, offline=True)


@pytest.mark.parametrize("lazy", [False, True])
def test_a_state_whose_metadata_fails_does_not_raise_the_rollback_floor(
    repo: RpmRepo, keyring: tuple[Path, ...], serve: Serve, cache: Cache, lazy: bool
) -> None:
    """A newly signed state whose primary.xml the mirror serves broken fails where its listing is read (at the
    opening, or when first asked for) and is not kept as the floor: the last good state, still served elsewhere,
    opens. A lazily opened state is kept once its listing is read, or, by a build that reads none, settled."""
    url = serve(repo.root)
    repo.publish(revision=1700000400, compress="gz")
    assert open_repository(url, keyring, cache, lazy=lazy).packages
    repo.publish(revision=1700000500)
    primary = next((repo.root / "repodata").glob("*primary.xml.xz"))
    data = primary.read_bytes()
    primary.write_bytes(data[:100] + bytes([data[100] ^ 1]) + data[101:])
    with pytest.raises(ChecksumError):
        open_repository(url, keyring, cache, lazy=lazy).listing  # noqa: B018
    repo.publish(revision=1700000400, compress="gz")
    assert open_repository(url, keyring, cache, lazy=lazy).packages, "the last good state is not a rollback"
    repo.publish(revision=1700000600)
    opened = open_repository(url, keyring, cache, lazy=True)
    assert not opened.listing_read
    opened.settle()
    repo.publish(revision=1700000400, compress="gz")
    with pytest.raises(SignatureError, match="rollback"):
        open_repository(url, keyring, cache, lazy=lazy)


def test_the_listings_of_several_repositories_are_read_at_once() -> None:
    """Each repository reads its listing under its own lock: several are read at once (a resolve reads BaseOS and
    AppStream in threads), each once however many threads ask."""
    barrier = threading.Barrier(3, timeout=10)
    reads: list[int] = []

    def reader(n: int) -> Callable[[], listing.Listing]:
        def read() -> listing.Listing:
            reads.append(n)
            barrier.wait()  # broken unless all three are being read at the same time
            return listing.Listing((), b"")

        return read

    repos = [
        Repository(f"http://127.0.0.1/{n}", RepoMd("1", {}), "0" * 64, reader(n), lambda: None, {}) for n in range(3)
    ]
    with ThreadPoolExecutor(6) as pool:
        got = list(pool.map(lambda r: r.listing, repos + repos))
    assert [g.packages for g in got] == [()] * 6 and sorted(reads) == [0, 1, 2]
    assert all(r.listing_read for r in repos)
