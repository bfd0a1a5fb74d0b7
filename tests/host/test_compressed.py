"""Metadata files in every compression the distributions use, read within bounds."""

import hashlib
import subprocess
from pathlib import Path

import pytest

from bootstrap.errors import ChecksumError
from bootstrap.host.compressed import chunks

TEXT = b"<metadata>" + b"x" * 300_000 + b"</metadata>"


@pytest.mark.parametrize("tool", ["gzip", "xz", "zstd", "bzip2"])
def test_reads_what_the_tools_write(tmp_path: Path, tool: str) -> None:
    plain = tmp_path / "primary.xml"
    plain.write_bytes(TEXT)
    subprocess.run([tool, "-q", "-k", str(plain)], check=True)
    (made,) = (p for p in tmp_path.iterdir() if p != plain)
    sha = hashlib.sha256(TEXT).hexdigest()
    assert b"".join(chunks(made, made.name, len(TEXT), sha, "primary")) == TEXT
    with pytest.raises(ChecksumError, match="expands past 1000 bytes"):
        b"".join(chunks(made, made.name, 1000, None, "primary"))
    with pytest.raises(ChecksumError, match="does not match the checksum its signed index gives"):
        b"".join(chunks(made, made.name, None, "0" * 64, "primary"))


def test_corrupt_file_is_one_error(tmp_path: Path) -> None:
    bad = tmp_path / "primary.xml.xz"
    bad.write_bytes(b"\xfd7zXZ\x00 not really")
    with pytest.raises(ChecksumError, match="cannot decompress"):
        b"".join(chunks(bad, bad.name, None, None, "primary"))
