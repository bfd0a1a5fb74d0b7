"""A package's file table (bootstrap/rpm/files.py): a hostile header whose columns share their bytes is refused
from its index, before a column is read; what of the table is not installed (`skipped`), its rule as rpm has it
checked against a plain statement of it over random tables, odd paths among them, so that the sets it uses in
place of a scan of every path for each directory say exactly what the scan said."""

import io
import random
import stat
import struct
import tracemalloc

import pytest

from bootstrap.errors import UnpackError
from bootstrap.rpm import tags
from bootstrap.rpm.files import MAX_FILES, FileEntry, file_table, lang_wanted, skipped
from bootstrap.rpm.header import HEADER_MAGIC, INT16, INT32, STRING_ARRAY, read_header
from bootstrap.rpm.options import JobOptions

DIR, REG = stat.S_IFDIR | 0o755, stat.S_IFREG | 0o644


def _entry(path: str, mode: int, flags: int = 0, lang: str = "") -> FileEntry:
    return FileEntry(path, mode, "root", "root", 0, flags, lang, "", 0, 0, (0, 0))


def _as_stated(files: list[FileEntry], options: JobOptions) -> set[str]:
    """The rule in words: a ghost, a %doc under nodocs or another language's file is skipped; so is a directory of
    the package holding (by its path) a file skipped that way and nothing that is kept."""
    out = {f.path for f in files if (options.nodocs and f.flags & tags.RPMFILE_DOC)}
    out |= {f.path for f in files if not lang_wanted(f.lang, options.install_langs)}
    kept = [f.path for f in files if f.path not in out]
    for f in files:
        if stat.S_ISDIR(f.mode) and f.path not in out:
            below = f.path.rstrip("/") + "/"
            if any(s.startswith(below) for s in out) and not any(k.startswith(below) for k in kept):
                out.add(f.path)
    return out | {f.path for f in files if f.ghost}


def _table(rng: random.Random) -> list[FileEntry]:
    parts = ["usr", "share", "doc", "a", "b", "", "x/"]
    files = []
    for _ in range(rng.randrange(1, 40)):
        path = "/" + "/".join(rng.choice(parts) for _ in range(rng.randrange(1, 5)))
        kind = rng.random()
        if kind < 0.4:
            files.append(_entry(path, DIR))
        elif kind < 0.6:
            files.append(_entry(path, REG, tags.RPMFILE_DOC))
        elif kind < 0.7:
            files.append(_entry(path, REG, lang=rng.choice(["de", "en"])))
        elif kind < 0.75:
            files.append(_entry(path, REG, tags.RPMFILE_GHOST))
        else:
            files.append(_entry(path, REG))
    return files


def test_skipped_says_what_the_rule_says_over_random_tables() -> None:
    rng = random.Random(20261207)
    options = JobOptions(nodocs=True, install_langs=("en",))
    differing = 0
    seen_dirs = 0
    for _ in range(3000):
        files = _table(rng)
        got, expected = skipped(files, options), _as_stated(files, options)
        differing += got != expected
        seen_dirs += len({f.path for f in files if stat.S_ISDIR(f.mode)} & expected)
    assert differing == 0
    assert seen_dirs > 100  # directories left out for what they held were among the cases


def test_a_directory_of_docs_alone_goes_and_one_with_a_kept_file_stays() -> None:
    files = [
        _entry("/usr/share/doc/pkg", DIR),
        _entry("/usr/share/doc/pkg/README", REG, tags.RPMFILE_DOC),
        _entry("/usr/share/pkg", DIR),
        _entry("/usr/share/pkg/manual.txt", REG, tags.RPMFILE_DOC),
        _entry("/usr/share/pkg/data", REG),
        _entry("/usr/share/pkgdoc", DIR),
    ]
    assert skipped(files, JobOptions(nodocs=True)) == {
        "/usr/share/doc/pkg",
        "/usr/share/doc/pkg/README",
        "/usr/share/pkg/manual.txt",
    }
    assert skipped(files, JobOptions(nodocs=False)) == set()


def _overlapping(counts: dict[int, tuple[int, int]], size: int) -> bytes:
    """A main header whose every entry (tag: type, count) starts at byte 0 of `size` zero bytes: entries that share
    their data, which rpm refuses; each entry alone fits."""
    entries = sorted(counts.items())
    index = b"".join(struct.pack(">IIII", tag, typ, 0, count) for tag, (typ, count) in entries)
    return HEADER_MAGIC + b"\0" * 4 + struct.pack(">II", len(entries), size) + index + b"\0" * size


def _columns(strings: int, ints: int) -> dict[int, tuple[int, int]]:
    listed = (tags.BASENAMES, tags.DIRNAMES, tags.FILEUSERNAME, tags.FILEGROUPNAME, tags.FILELINKTOS)
    out = {tag: (STRING_ARRAY, strings) for tag in (*listed, tags.FILELANGS, tags.FILECAPS)}
    out |= {tag: (INT32, ints) for tag in (tags.DIRINDEXES, tags.FILESIZES, tags.FILEMTIMES, tags.FILEFLAGS)}
    out |= {tag: (INT32, ints) for tag in (tags.FILEDEVICES, tags.FILEINODES)}
    return out | {tag: (INT16, ints) for tag in (tags.FILEMODES, tags.FILERDEVS)}


@pytest.mark.parametrize(
    ("strings", "ints", "said"),
    [
        (400_000, 100_000, "lists 400000 files but 100000 dir indexes"),
        (MAX_FILES + 1, MAX_FILES + 1, f"lists {MAX_FILES + 1} files, more than {MAX_FILES}"),
    ],
    ids=["columns that disagree", "more files than any package has"],
)
def test_a_header_whose_columns_share_their_bytes_is_refused_from_its_index(strings: int, ints: int, said: str) -> None:
    """2 MiB of zeros read as millions of empty names in seven string columns and millions of numbers: were the
    columns read before their counts were compared, a package of a few MB would cost gigabytes of objects."""
    header = read_header(io.BytesIO(_overlapping(_columns(strings, ints), 2 << 20)), 0, "hostile.rpm")
    tracemalloc.start()
    try:
        with pytest.raises(UnpackError, match=said) as caught:
            file_table(header, "hostile.rpm")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "\n" not in caught.value.message
    assert peak < 1 << 20, f"{peak} bytes allocated before the header was refused"


def test_a_string_count_past_the_data_is_refused() -> None:
    header = read_header(io.BytesIO(_overlapping({tags.BASENAMES: (STRING_ARRAY, 5000)}, 4096)), 0, "hostile.rpm")
    with pytest.raises(UnpackError, match="lists more strings than its data holds"):
        header.strings(tags.BASENAMES)
