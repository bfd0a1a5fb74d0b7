"""A foreign architecture built two ways from the real mirror: with the maintainer scripts' tools running
natively (the default) and with everything under qemu-user. The two images must be the same bytes."""

import json
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import bootstrap, ensure_binfmt

pytestmark = pytest.mark.e2e


def test_native_tools_give_the_tree_full_emulation_gives(tmp_path: Path, as_root: None) -> None:
    ensure_binfmt("aarch64")
    times = {}
    for how in ("--native-tools", "--emulate-all"):
        started = time.monotonic()
        bootstrap("debian-slim", "--suite", "trixie", "--arch", "arm64", how, "-o", str(tmp_path / how), "-q")
        times[how] = time.monotonic() - started
    for name in ("rootfs.tar.gz", "image.tar", "packages.txt"):
        assert (tmp_path / "--native-tools" / name).read_bytes() == (tmp_path / "--emulate-all" / name).read_bytes(), (
            name
        )
    print(
        f"arm64 trixie-slim: native tools {times['--native-tools']:.1f} s, all emulated {times['--emulate-all']:.1f} s"
    )
    used = {
        how: json.loads((tmp_path / how / "build.json").read_text())["platforms"][0]["native_tools"] for how in times
    }
    assert used["--native-tools"] > 100 and used["--emulate-all"] == 0, used
