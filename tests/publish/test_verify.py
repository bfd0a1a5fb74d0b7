"""`verify` reads an output directory as untrusted input: only regular files, records within limits, and a
recorded recipe only when it reads nothing of this host (the builds are in tests/faults/test_hostile_verify.py)."""

import json
import os
from pathlib import Path

import pytest

from bootstrap.build import recipe
from bootstrap.errors import BootstrapError
from bootstrap.publish import verify


def _recorded(**extra: object) -> recipe.Recipe:
    data = recipe.load("debian-slim").as_dict() | extra
    return recipe.from_data(data, "debian-slim", "test")


def test_records_that_are_not_regular_files_or_too_deep_are_refused(tmp_path: Path) -> None:
    (tmp_path / "lock.json").write_text("{}")
    secret = tmp_path / "secret"
    secret.write_text("root:hidden:1::::::\n")
    (tmp_path / "build.json").symlink_to(secret)
    with pytest.raises(BootstrapError, match="build.json is missing or not a regular file") as link:
        verify.examine(tmp_path)
    assert "hidden" not in str(link.value) + link.value.hint
    (tmp_path / "build.json").unlink()
    os.mkfifo(tmp_path / "build.json")  # would block a plain open
    with pytest.raises(BootstrapError, match="not a regular file"):
        verify.examine(tmp_path)
    (tmp_path / "build.json").unlink()
    (tmp_path / "build.json").write_text("[" * 100_000)
    with pytest.raises(BootstrapError, match="nested too deeply"):
        verify.examine(tmp_path)


def test_a_recorded_recipe_is_taken_only_when_it_reads_nothing_of_the_host(tmp_path: Path) -> None:
    assert verify.host_reads(_recorded()) == []
    ubuntu = recipe.load("ubuntu")
    assert ubuntu.archive_keyring and verify.host_reads(ubuntu) == [], "bootstrap's own keyrings are fine"
    key = tmp_path / "key.asc"
    key.write_text("")
    reads = verify.host_reads(_recorded(archive={"keyring": str(key)}))
    assert reads == ["trusts a keyring file of its own"]
    hooked = _recorded(customize=[{"run": "true"}], files=[{"source": "/etc/shadow", "dest": "/x"}])
    assert verify.host_reads(hooked) == ["copies 1 local file(s) into the image", "runs 1 customize hook(s)"]
    records = {"recipe": hooked.as_dict()}
    with pytest.raises(BootstrapError, match="verify does not take such a recipe") as refused:
        verify.recorded_recipe(tmp_path, records)
    assert "--recipe" in refused.value.hint


def test_outputs_must_be_there_with_the_digests_recorded(tmp_path: Path) -> None:
    (tmp_path / "lock.json").write_text("{}")
    (tmp_path / "image.tar").write_text("image")
    files = {"image.tar": "sha256:" + "0" * 64, "rootfs.tar.gz": "sha256:" + "1" * 64}
    with pytest.raises(BootstrapError) as wrong:
        verify._check_recorded(tmp_path, {"files": files}, verify._plain_files(tmp_path))
    assert "missing (or not regular files): rootfs.tar.gz" in wrong.value.message
    assert "not the digest build.json records: image.tar" in wrong.value.message
    (tmp_path / "build.json").write_text(json.dumps({"files": {}}))
    with pytest.raises(BootstrapError, match="records no output files"):
        verify._check_recorded(tmp_path, {"files": {}}, {})
