"""Reading .deb files: every dpkg compression, multi-frame zstd, malformed and hostile archives (each one clear
error, never a traceback or a hang), and the cache of decompressed packages (data only, proven when read)."""

import hashlib
import logging
import signal
import subprocess
import zlib
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest

from bootstrap.deb import debfile
from bootstrap.deb.filters import PathFilter
from bootstrap.deb.unpack import prepare_root, unpack_one
from bootstrap.errors import BootstrapError, ChecksumError, UnpackError
from bootstrap.host.cache import FileSection
from bootstrap.host.rootwriter import RootWriter
from tests.fixtures.debs import (
    MALFORMED_KINDS,
    TarEntry,
    ar_archive,
    ar_members,
    build_deb,
    build_malformed_deb,
    make_tar,
    raw_control,
    raw_members,
    reframe_zstd,
)
from tests.fixtures.pickles import planted_pickle
from tests.fixtures.records import package

FILES = {f"/usr/share/part{i}/file{j}": bytes([65 + i]) * (1000 + 37 * j) for i in range(4) for j in range(30)}


@pytest.fixture
def no_hang() -> Iterator[None]:
    """Fail a test that runs longer than 20 s (a malformed archive must never make the reader loop)."""

    def expire(signum: int, frame: FrameType | None) -> None:
        raise TimeoutError("still reading after 20 s: the reader loops")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(20)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def names(contents: debfile.DebContents) -> list[str]:
    with contents.data() as tar:
        return [info.name for info in tar]


# --- compressions ---------------------------------------------------------------------------------------------


def test_a_multi_frame_zstd_member_is_read_to_the_end(tmp_path: Path) -> None:
    one = build_deb(tmp_path / "one", "frames", "1.0", files=FILES, compression="zstd")
    three = reframe_zstd(one, tmp_path / "three" / one.name, frames=3)
    member = tmp_path / "data.tar.zst"
    member.write_bytes(dict(ar_members(three.read_bytes()))["data.tar.zst"])
    # the reference decoder sees three frames and one whole tar across them
    listing = subprocess.run(["zstd", "-lv", str(member)], capture_output=True, check=True).stdout
    assert b"# Zstandard Frames: 3" in listing
    whole = subprocess.run(["zstd", "-dc", str(member)], capture_output=True, check=True).stdout
    read = debfile.read(three)
    assert read.data_tar == whole == debfile.read(one).data_tar
    assert sorted(n for n in names(read) if "file" in n) == sorted("." + f for f in FILES)


@pytest.mark.parametrize("compression", ["xz", "gzip", "zstd", "none"])
def test_every_compression_reads_the_whole_tar(compression: str, tmp_path: Path) -> None:
    deb = build_deb(tmp_path, "c", "1.0", files=FILES, compression=compression)  # type: ignore[arg-type]
    contents = debfile.read(deb)
    assert len([n for n in names(contents) if "file" in n]) == len(FILES)
    assert contents.control["control"].startswith(b"Package: c\n")


def test_a_decompression_bomb_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entries = [TarEntry("./", "dir"), TarEntry("./zeros", data=bytes(3 << 20))]
    deb = tmp_path / "bomb.deb"
    deb.write_bytes(ar_archive(raw_members(raw_control("bomb"), entries)))
    assert len(deb.read_bytes()) < 10_000
    monkeypatch.setattr(debfile, "MAX_DATA", 2 << 20)
    with pytest.raises(UnpackError, match=r"data.tar.xz decompresses to more than 2 MiB"):
        debfile.read(deb)


def _with_dictionary(xz: bytes, code: int) -> bytes:
    """The xz stream with its first block asking for another LZMA2 dictionary size (its header CRC made good)."""
    size, flags, pos = (xz[12] + 1) * 4, xz[13], 14
    for present in (flags & 0x40, flags & 0x80):  # compressed and uncompressed sizes, as varints
        while present and xz[pos] & 0x80:
            pos += 1
        pos += 1 if present else 0
    assert xz[pos : pos + 2] == b"\x21\x01", "one LZMA2 filter with one property byte"
    header = bytearray(xz[12 : 12 + size])
    header[pos + 2 - 12] = code
    header[-4:] = zlib.crc32(bytes(header[:-4])).to_bytes(4, "little")
    return xz[:12] + bytes(header) + xz[12 + size :]


def test_an_xz_stream_asking_for_a_huge_dictionary_is_refused(tmp_path: Path) -> None:
    """An xz bomb's decoder would fill a dictionary as large as its header asks (up to 4 GiB): refused."""
    entries = [TarEntry("./", "dir"), TarEntry("./zeros", data=bytes(1 << 20))]
    members = raw_members(raw_control("greedy"), entries)
    xz = dict(members)["data.tar.xz"]
    deb = tmp_path / "greedy.deb"
    deb.write_bytes(ar_archive([*members[:2], ("data.tar.xz", _with_dictionary(xz, 36))]))  # 36: 1 GiB
    with pytest.raises(UnpackError, match=r"greedy.deb: member data.tar.xz needs more than 128 MiB of memory"):
        debfile.read(deb)
    deb.write_bytes(ar_archive([*members[:2], ("data.tar.xz", _with_dictionary(xz, 26))]))  # 26: 64 MiB, as xz -9
    assert names(debfile.read(deb)) == [".", "./zeros"]


@pytest.mark.parametrize("compression", ["xz", "gzip", "zstd", "none"])
def test_a_large_data_tar_stays_on_disk_and_unpacks_whole(
    compression: str, expanded: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past IN_MEMORY the data.tar goes to an unnamed file as it inflates, and comes back from the cache as a
    section of the cached file: never in memory whole, the same tar either way."""
    deb = build_deb(tmp_path / compression, "large", "1.0", files=FILES, compression=compression)  # type: ignore[arg-type]
    whole = debfile.read(deb).data_tar
    assert isinstance(whole, bytes) and len(whole) > 64 << 10
    monkeypatch.setattr(debfile, "IN_MEMORY", 64 << 10)
    digest = sha256(deb)
    for attempt in ("inflated", "from the cache"):
        contents = debfile.read(deb, digest, expanded)
        section = contents.data_tar
        assert isinstance(section, FileSection), attempt
        assert b"".join(section.chunks()) == whole, attempt
        assert [p.name for p in expanded.iterdir()] == [f"{digest}.v1"], "the spill has no name"
        root = tmp_path / f"root-{attempt}"
        prepare_root(root, ("bin", "lib"))
        unpack_one(RootWriter(root), package("large"), contents, PathFilter())
        contents.close()
        assert section.file.closed
        assert all((root / path.lstrip("/")).read_bytes() == data for path, data in FILES.items()), attempt


# --- malformed archives ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", MALFORMED_KINDS)
def test_a_malformed_package_is_one_clear_error(kind: str, tmp_path: Path, no_hang: None) -> None:
    deb = build_malformed_deb(tmp_path, kind)
    root = tmp_path / "root"
    prepare_root(root, ("bin", "lib"))
    with pytest.raises(UnpackError) as err:
        contents = debfile.read(deb)
        unpack_one(RootWriter(root), package(f"malformed-{kind}"), contents, PathFilter())
    message = err.value.message
    assert "\n" not in message and err.value.hint
    assert deb.name in message or f"malformed-{kind}" in message, message


def test_a_truncated_package_names_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(UnpackError, match=r"ar member data.tar.xz needs \d+ bytes, only \d+ are left"):
        debfile.read(build_malformed_deb(tmp_path, "ar-truncated"))
    with pytest.raises(UnpackError, match="member data.tar.zst is truncated"):
        debfile.read(build_malformed_deb(tmp_path, "zstd-truncated"))
    with pytest.raises(UnpackError, match="data.tar: tar archive is truncated or corrupt at byte 1024"):
        names(debfile.read(build_malformed_deb(tmp_path, "tar-corrupt-header")))
    with pytest.raises(UnpackError, match=r"data.tar: member './usr/a' needs 700 bytes, more than the archive holds"):
        names(debfile.read(build_malformed_deb(tmp_path, "tar-truncated")))


def test_a_tar_without_an_end_marker_is_read_as_dpkg_reads_it(tmp_path: Path) -> None:
    entries = [TarEntry("./", "dir"), TarEntry("./file", data=b"x" * 600)]
    deb = tmp_path / "open-ended.deb"
    deb.write_bytes(ar_archive(raw_members(raw_control("open-ended"), [], data_tar=make_tar(entries, end=False))))
    assert names(debfile.read(deb)) == [".", "./file"]


def test_control_members_other_than_plain_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UnpackError, match=r"control.tar.gz: './postinst' is not a regular file"):
        debfile.read(build_malformed_deb(tmp_path, "control-symlink"))


# --- the cache of decompressed packages -----------------------------------------------------------------------


@pytest.fixture
def deb(tmp_path: Path) -> Path:
    return build_deb(tmp_path / "pool", "cached", "1.0", files=FILES, scripts={"postinst": "#!/bin/sh\n"})


@pytest.fixture
def expanded(tmp_path: Path) -> Path:
    path = tmp_path / "expanded"
    path.mkdir(mode=0o755)
    return path


def test_the_expanded_copy_is_data_bound_to_the_deb(deb: Path, expanded: Path) -> None:
    digest = sha256(deb)
    first = debfile.read(deb, digest, expanded)
    [slot] = expanded.iterdir()
    assert slot.name == f"{digest}.v1"
    assert bytes.fromhex(digest) in slot.read_bytes()[:80]
    assert not slot.read_bytes().startswith(b"\x80"), "not a pickle"
    deb.unlink()  # the next read comes from the expanded copy alone
    again = debfile.read(deb, digest, expanded)
    assert again == first
    assert set(again.control) == {"control", "md5sums", "postinst"}


def damage(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("where", ["header", "control", "data", "truncated", "mode"])
def test_a_damaged_expanded_copy_is_removed_and_made_again(
    where: str, deb: Path, expanded: Path, caplog: pytest.LogCaptureFixture
) -> None:
    digest = sha256(deb)
    first = debfile.read(deb, digest, expanded)
    slot = expanded / f"{digest}.v1"
    good = slot.read_bytes()
    size = len(good)
    if where == "header":
        damage(slot, 50)
    elif where == "control":
        damage(slot, slot.read_bytes().index(b"Package: cached") + 9)
    elif where == "data":
        damage(slot, size - 20000)
    elif where == "truncated":
        slot.write_bytes(slot.read_bytes()[:-1000])
    else:
        slot.chmod(0o666)
    assert slot.read_bytes() != good or slot.stat().st_mode & 0o777 != 0o644
    with caplog.at_level(logging.DEBUG, logger="bootstrap"):
        again = debfile.read(deb, digest, expanded)
    assert again == first
    assert any(str(slot) in r.getMessage() and "removed" in r.getMessage() for r in caplog.records)
    assert slot.read_bytes() == good and slot.stat().st_mode & 0o777 == 0o644


def test_an_expanded_copy_of_another_package_is_not_used(deb: Path, expanded: Path, tmp_path: Path) -> None:
    other = build_deb(tmp_path / "other", "other", "1.0", files={"/etc/evil": b"evil"})
    debfile.read(other, sha256(other), expanded)
    digest = sha256(deb)
    (expanded / f"{sha256(other)}.v1").rename(expanded / f"{digest}.v1")
    contents = debfile.read(deb, digest, expanded)
    assert "./etc/evil" not in names(contents)
    assert contents.control["control"].startswith(b"Package: cached\n")


def test_a_planted_pickle_is_never_loaded(deb: Path, expanded: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    digest = sha256(deb)
    payload = planted_pickle(marker)
    for name in (f"{deb.name}.control", f"{digest}.control", f"{digest}.v1"):
        (expanded / name).write_bytes(payload)
    for name in (f"{deb.name}.tar", f"{digest}.tar"):
        (expanded / name).write_bytes(b"")
    contents = debfile.read(deb, digest, expanded)
    assert not marker.exists()
    assert contents.control["control"].startswith(b"Package: cached\n")


def test_a_deb_that_changed_since_it_was_checked_is_refused(deb: Path, expanded: Path) -> None:
    digest = sha256(deb)
    damage(deb, 200)
    with pytest.raises(ChecksumError, match="is missing from the cache or changed after it was checked"):
        debfile.read(deb, digest, expanded)
    assert not deb.exists() and list(expanded.iterdir()) == []


def test_errors_are_bootstrap_errors() -> None:
    assert issubclass(UnpackError, BootstrapError) and issubclass(ChecksumError, BootstrapError)
