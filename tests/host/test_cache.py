"""The content-addressed cache: blobs hashed again before use, derived files proven when read, and directories
refused when another user could write to them."""

import hashlib
import logging
import os
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bootstrap.errors import BootstrapError, ChecksumError
from bootstrap.host import cache as cache_mod
from bootstrap.host.cache import (
    Cache,
    read_derived,
    read_state,
    sha256_file,
    write_atomic,
    write_derived,
    write_state,
)
from tests.fixtures.leftovers import temp_files

ROOT = Path(__file__).resolve().parents[2]
NOBODY = 65534


def test_adopt_stores_by_sha256(cache: Cache) -> None:
    tmp = cache.temp("blob")
    tmp.write_bytes(b"hello\n")
    digest = hashlib.sha256(b"hello\n").hexdigest()
    path = cache.adopt(tmp, digest, "hello")
    assert path == cache.blob(digest)
    assert path.read_bytes() == b"hello\n"
    assert sha256_file(path) == digest
    assert cache.has(digest)
    assert cache.has(digest, 6)
    assert not cache.has(digest, 7)
    assert not tmp.exists()


def test_adopt_refuses_a_mismatch(cache: Cache) -> None:
    tmp = cache.temp("blob")
    tmp.write_bytes(b"evil\n")
    with pytest.raises(ChecksumError, match="checksum mismatch for thing"):
        cache.adopt(tmp, "0" * 64, "thing")
    assert not tmp.exists()
    assert not cache.has("0" * 64)


def test_temporary_paths_are_unique_across_threads(cache: Cache) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        paths = list(pool.map(lambda _: cache.temp("index"), range(500)))
    assert len(set(paths)) == len(paths)
    assert all(p.parent.parent == cache.root / "tmp" for p in paths)


def test_the_process_directory_goes_at_exit_while_a_thread_still_writes_into_it(tmp_path: Path) -> None:
    """A download thread left running when the build exits keeps making files in the process's temporary
    directory: the exit still removes it whole."""
    script = f"""
import threading
from pathlib import Path
from bootstrap.host.cache import Cache

cache = Cache(Path({str(tmp_path / "cache")!r})).ensure()
first = cache.temp("x")
started = threading.Event()

def keep_writing():
    for i in range(10**7):
        try:
            first.with_name(f"{{i}}.part").write_bytes(b"x")
        except OSError:
            pass
        started.set()

threading.Thread(target=keep_writing, daemon=True).start()
started.wait()
"""
    for _ in range(5):
        subprocess.run([sys.executable, "-c", script], check=True, cwd=ROOT)
        assert temp_files(tmp_path / "cache") == []
        assert [p.name for p in (tmp_path / "cache/tmp").iterdir() if not p.name.endswith(".lock")] == []


def test_unwritable_cache_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(BootstrapError, match="cannot use cache directory"):
        Cache(blocker / "cache").ensure()


def test_write_atomic(tmp_path: Path) -> None:
    target = tmp_path / "out"
    write_atomic(target, b"one")
    write_atomic(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_locks_are_separate_per_name(cache: Cache) -> None:
    with cache.locked("a"), cache.locked("b"):
        assert (cache.root / "locks" / "a").exists()


# --- blobs are hashed again before use ------------------------------------------------------------------------


def stored(cache: Cache, data: bytes) -> str:
    tmp = cache.temp("blob")
    tmp.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    cache.adopt(tmp, digest, "blob")
    return digest


@pytest.mark.parametrize("damage", ["same-size", "truncated"])
def test_a_damaged_blob_is_removed_not_used(damage: str, cache: Cache, caplog: pytest.LogCaptureFixture) -> None:
    digest = stored(cache, b"package data " * 100)
    blob = cache.blob(digest)
    if damage == "same-size":
        blob.write_bytes(b"PACKAGE DATA " * 100)
    else:
        blob.write_bytes(blob.read_bytes()[:-7])  # as a crash half-way through a copy leaves it
    with caplog.at_level(logging.DEBUG, logger="bootstrap"):
        assert not cache.has(digest, 1300)
    assert not blob.exists()
    assert any(str(blob) in r.getMessage() and "removed" in r.getMessage() for r in caplog.records)


def test_read_hashes_what_it_returns(cache: Cache) -> None:
    digest = stored(cache, b"index text")
    assert cache.read(digest) == b"index text"
    cache.blob(digest).write_bytes(b"INDEX TEXT")
    assert cache.read(digest) is None and not cache.blob(digest).exists()
    assert cache.read(digest) is None


def test_obtain_fetches_a_damaged_blob_again(cache: Cache, tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.write_bytes(b"the real thing")
    fetched: list[Path] = []

    def download(tmp: Path) -> str:
        fetched.append(tmp)
        tmp.write_bytes(source.read_bytes())
        return str(source)

    digest = hashlib.sha256(b"the real thing").hexdigest()
    path = cache.obtain(digest, 14, download)
    assert cache.obtain(digest, 14, download) == path and len(fetched) == 1
    path.write_bytes(b"the fake thing")
    assert cache.obtain(digest, 14, download) == path and len(fetched) == 2
    assert path.read_bytes() == b"the real thing"
    assert temp_files(cache.root) == []


# --- derived files are data, bound to their source and to their own hash --------------------------------------

SOURCE = hashlib.sha256(b"source").hexdigest()


def test_derived_sections_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "derived"
    sections = [b"names\0more", b"", b"x" * 100_000]
    write_derived(path, SOURCE, sections)
    assert read_derived(path, SOURCE) == sections
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert read_derived(tmp_path / "missing", SOURCE) is None


@pytest.mark.parametrize("damage", ["flip-content", "flip-length", "truncate", "append", "magic", "mode", "symlink"])
def test_a_damaged_derived_file_is_removed(damage: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "derived"
    write_derived(path, SOURCE, [b"first", b"second" * 1000])
    data = bytearray(path.read_bytes())
    if damage == "flip-content":
        data[-1] ^= 1
    elif damage == "flip-length":  # moves bytes from one section to the next: same concatenation
        data[80 + 7] += 1
        data[80 + 15] -= 1
    elif damage == "truncate":
        data = data[:-1]
    elif damage == "append":
        data += b"x"
    elif damage == "magic":
        data[0] ^= 1
    path.write_bytes(bytes(data))
    if damage == "mode":
        path.chmod(0o666)
    elif damage == "symlink":
        real = tmp_path / "elsewhere"
        path.rename(real)
        path.symlink_to(real)
    with caplog.at_level(logging.DEBUG, logger="bootstrap"):
        assert read_derived(path, SOURCE) is None
    assert not path.exists() and not path.is_symlink()
    assert any(str(path) in r.getMessage() for r in caplog.records)


def test_a_derived_file_of_another_source_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "derived"
    write_derived(path, SOURCE, [b"data"])
    assert read_derived(path, hashlib.sha256(b"other").hexdigest()) is None
    assert not path.exists()


# --- nobody else may write to the cache -----------------------------------------------------------------------


def test_a_world_writable_cache_directory_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    root.mkdir()
    root.chmod(0o777)
    with pytest.raises(BootstrapError) as err:
        Cache(root).ensure()
    assert err.value.message == f"cache directory {root} is writable by other users"
    assert f"chmod go-w {root}" in err.value.hint


@pytest.mark.parametrize("sub", ["sha256", "tmp", "expanded", "parsed"])
def test_a_loose_area_is_refused(sub: str, tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache").ensure()
    (cache.root / sub).mkdir(exist_ok=True)
    (cache.root / sub).chmod(0o775)
    with pytest.raises(BootstrapError, match=f"cache directory {cache.root / sub} is writable by other users"):
        cache.ensure()
        cache.area(sub)


def test_a_writable_parent_is_refused_unless_sticky(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(BootstrapError, match=f"cache directory {shared} is writable by other users"):
        Cache(shared / "mine" / "cache").ensure()
    shared.chmod(0o1777)  # like /tmp: others cannot rename or remove what is ours
    assert Cache(shared / "mine" / "cache").ensure().root.is_dir()


def test_a_symlink_to_a_loose_directory_is_refused(tmp_path: Path) -> None:
    loose = tmp_path / "loose"
    loose.mkdir()
    loose.chmod(0o777)
    (tmp_path / "cache").symlink_to(loose)
    with pytest.raises(BootstrapError, match=f"cache directory {tmp_path / 'cache'} is writable by other users"):
        Cache(tmp_path / "cache").ensure()


def test_a_cache_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root can give a directory away")
    root = tmp_path / "cache"
    root.mkdir()
    os.chown(root, NOBODY, NOBODY)
    with pytest.raises(BootstrapError) as err:
        Cache(root).ensure()
    assert err.value.message == f"cache directory {root} is owned by another user (uid {NOBODY})"
    assert f"chown root {root}" in err.value.hint


def test_new_directories_are_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o002)
    try:
        cache = Cache(tmp_path / "a" / "b" / "cache").ensure()
        cache.area("expanded")
    finally:
        os.umask(old)
    for path in (tmp_path / "a", tmp_path / "a" / "b", cache.root, cache.root / "sha256", cache.root / "expanded"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o755, path


def test_the_cli_names_the_loose_directory_and_the_fix(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    root.mkdir()
    root.chmod(0o757)
    keyring = tmp_path / "archive.gpg"
    keyring.write_bytes(b"")
    proc = subprocess.run(
        [sys.executable, "-m", "bootstrap", "resolve", "debian-slim", "--mirror", "http://127.0.0.1:9"]
        + ["--keyring", str(keyring), "--cache-dir", str(root)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"error: cache directory {root} is writable by other users",
        f"hint: run: chmod go-w {root} (or pass another --cache-dir)",
    ]


def test_a_derived_file_not_made_with_the_users_key_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Whoever can write the cache but cannot read the user's key (kept outside it) cannot make a derived file a
    build takes: its proof is keyed, not a digest anyone can compute again."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    path = tmp_path / "derived"
    write_derived(path, SOURCE, [b"made by the user's build"])
    assert read_derived(path, SOURCE) == [b"made by the user's build"]
    key = tmp_path / "state/bootstrap/derived.key"
    assert key.is_file() and stat.S_IMODE(key.stat().st_mode) == 0o600 and len(key.read_bytes()) == 32
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "elsewhere"))
    write_derived(path, SOURCE, [b"forged"])
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    with caplog.at_level(logging.DEBUG, logger="bootstrap"):
        assert read_derived(path, SOURCE) is None
    assert not path.exists() and "its key does not prove it" in caplog.text


def test_an_earlier_state_put_back_is_no_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A state (a kept index's floor against rollback) is proven by the user's key; a copy of an earlier one, put
    back by whoever can write the cache (an old copy of it restored), is proven too, so the sha256 of the last
    one written is kept beside the key: the earlier one is taken as no state (as a removed one), and the state
    written last is taken again once it is back."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    slot = tmp_path / "cache" / "slot"
    slot.mkdir(parents=True)
    write_state(slot / "state", {"stamp": 500})
    earlier = (slot / "state").read_bytes()
    write_state(slot / "state", {"stamp": 600})
    later = (slot / "state").read_bytes()
    assert read_state(slot / "state") == {"stamp": 600}
    (slot / "state").write_bytes(earlier)
    assert read_state(slot / "state") == {}
    (slot / "state").write_bytes(later)
    assert read_state(slot / "state") == {"stamp": 600}
    records = list((tmp_path / "state/bootstrap/states").iterdir())
    assert len(records) == 1 and stat.S_IMODE(records[0].stat().st_mode) == 0o600


def test_a_state_kept_before_records_is_taken_and_records_of_gone_states_are_swept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setattr(cache_mod, "STATE_RECORDS", 3)
    slots = [tmp_path / "cache" / f"slot{i}" for i in range(6)]
    for i, slot in enumerate(slots):
        slot.mkdir(parents=True)
        write_state(slot / "state", {"stamp": i})
    records = tmp_path / "state/bootstrap/states"
    for record in records.iterdir():  # as a cache kept by a bootstrap before the records has them: none
        record.unlink()
    assert [read_state(slot / "state") for slot in slots] == [{"stamp": i} for i in range(6)]
    for slot in slots[:5]:
        write_state(slot / "state", {"stamp": 9})
    for slot in slots[:4]:
        (slot / "state").unlink()
    write_state(slots[5] / "state", {"stamp": 10})  # more records than the bound: those of gone states swept
    assert len(list(records.iterdir())) == 2
    assert read_state(slots[4] / "state") == {"stamp": 9} and read_state(slots[5] / "state") == {"stamp": 10}


def test_one_key_however_many_make_it_at_once(tmp_path: Path) -> None:
    """Processes starting together on a new machine agree on one key (made aside, linked into place)."""
    script = "from bootstrap.host.cache import derived_key; print(derived_key().hex())"
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state"), "PYTHONPATH": str(ROOT)}
    with ThreadPoolExecutor(6) as pool:
        runs = list(
            pool.map(
                lambda _: (
                    subprocess.run(
                        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
                    ).stdout
                ),
                range(6),
            )
        )
    assert len(set(runs)) == 1
    assert runs[0].strip() == (tmp_path / "state/bootstrap/derived.key").read_bytes().hex()
    assert sorted(p.name for p in (tmp_path / "state/bootstrap").iterdir()) == ["derived.key"], "nothing aside left"


@pytest.mark.parametrize("damage", ["readable by others", "short", "link"])
def test_a_key_that_is_not_private_is_not_used(
    damage: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A key others could read (or one not whole, or a link) proves nothing: this process keys its own files with a
    key of its own, which nothing else holds (derived files serve this build only)."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    key = tmp_path / "state/bootstrap/derived.key"
    key.parent.mkdir(parents=True)
    if damage == "link":
        (tmp_path / "elsewhere").write_bytes(b"k" * 32)
        key.symlink_to(tmp_path / "elsewhere")
    else:
        key.write_bytes(b"k" * (32 if damage != "short" else 8))
        key.chmod(0o644 if damage == "readable by others" else 0o600)
    from bootstrap.host.cache import derived_key

    with caplog.at_level(logging.WARNING, logger="bootstrap"):
        used = derived_key()
    assert len(used) == 32 and used != b"k" * 32 and used != b"k" * 8
    assert damage == "link" or "is not a private key" in caplog.text


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_a_write_that_fails_names_its_file_and_leaves_nothing_to_say_at_exit(tmp_path: Path) -> None:
    """A full file system: the error names the file being written (a bare write error names none); a
    read-only one: the error that ended the write, and nothing more at exit (no traceback of the clean-up)."""
    full, frozen = tmp_path / "full", tmp_path / "frozen"
    full.mkdir()
    frozen.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(full)], check=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=16k", "tmpfs", str(frozen)], check=True)
    try:
        with pytest.raises(OSError) as err:
            write_atomic(full / "big", b"x" * (256 << 10))
        assert err.value.filename == str(full / "big") and list(full.iterdir()) == []
        script = "from pathlib import Path; from bootstrap.host.cache import write_atomic\n"
        script += (
            f"try:\n    write_atomic(Path({str(frozen / 'f')!r}), b'x')\nexcept OSError as e:\n    print(e.errno)\n"
        )
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
        proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
        assert proc.stdout.strip() == "30" and proc.stderr == "", proc.stderr
    finally:
        subprocess.run(["umount", str(full)], check=True)
        subprocess.run(["umount", str(frozen)], check=True)
