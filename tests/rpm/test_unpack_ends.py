"""A failed unpack ends its read-ahead before the failure reaches the build: no thread is left inflating the
next payloads, and nothing is left for the garbage collector to wait for (`bootstrap.host.parallel.read_ahead`)."""

from pathlib import Path

import pytest

from bootstrap.errors import UnpackError
from bootstrap.rpm.options import JobOptions
from bootstrap.rpm.unpack import unpack_all
from tests.host.test_read_ahead import alive
from tests.rpm.conftest import EPOCH, accounts_root
from tests.rpm.test_unpack import _respliced


def test_a_hostile_package_leaves_no_read_ahead_running(sample: Path, tmp_path: Path) -> None:
    hostile = _respliced(sample, tmp_path / "short.rpm", [("./usr/bin/sample", 0o100755, b"#!/bin/sh\necho sample\n")])
    items = [("sample", hostile)] + [(f"again{i}", sample) for i in range(6)]
    with pytest.raises(UnpackError, match="in its header but not in its payload"):
        unpack_all(accounts_root(tmp_path), items, JobOptions(), EPOCH)
    assert not alive()
