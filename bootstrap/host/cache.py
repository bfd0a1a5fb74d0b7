"""The content-addressed cache: files named by their sha256, written by atomic rename, shared safely.

Downloads and other files on their way in are written in `tmp/` in a directory of the process's own, locked
while the process lives (`bootstrap.host.scratch`): what a killed build left there is removed by the next build.

Nothing read back from the cache is trusted on its name alone. A blob is hashed again before it is used.
A derived file (a parsed index, a decompressed package) carries the sha256 of the verified blob it was made
from and an HMAC of its own content keyed by the user's secret, which is kept outside every cache
(`derived_key`): both are checked when it is read, so whoever can write the cache but not read that key (a
cache restored from elsewhere) cannot make one a build takes. Anything that fails is logged at debug level,
removed and made again; anything that is not what belongs in its place (a link, a fifo, a directory) too. The
directories are refused when another user could write to them, as ssh refuses a key file others can change.
"""

import atexit
import errno
import fcntl
import functools
import hashlib
import hmac
import itertools
import json
import os
import pwd
import shutil
import stat
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import bootstrap
from bootstrap.errors import BootstrapError, ChecksumError, os_error
from bootstrap.host import scratch
from bootstrap.log import log

_temp_serial = itertools.count()
"""Unique within the process (next() on a count is atomic), so threads never share a temporary path."""

DERIVED_AREAS = ("parsed", "expanded", "gzip", "layers", "verdicts", "rpmdb")
"""Areas whose files `write_atomic` writes (beside the VERIFIED_AREAS' slots): swept of what killed builds left."""
VERIFIED_AREAS = ("releases", "repomd")
"""Areas of one directory per archive or repository, holding the signed index verified last (Debian's InRelease,
an RPM repository's repomd.xml) against a rollback: never pruned, swept like the derived areas."""
TEMP_PREFIX = "build-"
"""The temporary directories of the processes using the cache, in its `tmp/`."""
SESSION_PREFIX = "use-"
"""The markers of the builds using the cache, in its `tmp/` (see `Cache.session`)."""
TAKE_LOCK = "prune"
"""The lock (in `locks/`) that a build holds shared while it takes a blob and `bootstrap.host.prune` holds exclusive
while it removes entries: an entry is either taken (and so kept) or gone (and so fetched again), never both."""
DIR_MODE = 0o755
FILE_MODE = 0o644
"""Modes of what the cache creates: never writable by others, whatever the umask."""


def default_dir() -> Path:
    """`$XDG_CACHE_HOME/bootstrap`, or `~/.cache/bootstrap`."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "bootstrap"


def sha256_file(path: Path) -> str:
    """The sha256 of a file, read in large blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


# --- who may write here ---------------------------------------------------------------------------------------


def _trusted(uid: int, above: bool = False) -> bool:
    """The caller or root; above the cache inside a user namespace also the overflow uid, which is how the
    namespace shows owners it does not map (the host's root owns /tmp and /home)."""
    return uid in (os.geteuid(), 0) or (above and uid == _unmapped_uid())


def _unmapped_uid() -> int | None:
    """The overflow uid when this process is in a user namespace other than the host's, else None."""
    try:
        if Path("/proc/self/uid_map").read_text().split()[:3] == ["0", "0", "4294967295"]:
            return None
        return int(Path("/proc/sys/kernel/overflowuid").read_text())
    except (OSError, ValueError):
        return None


def _user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def _refuse_loose(path: str, st: os.stat_result, above: bool) -> None:
    """Raise when `path` is owned by another user or writable by group or others (a sticky directory above the
    cache, such as /tmp, is fine: nobody else can rename or remove what is in it)."""
    if not _trusted(st.st_uid, above):
        raise BootstrapError(
            f"cache directory {path} is owned by another user (uid {st.st_uid})",
            f"run: chown {_user()} {path} (or use a --cache-dir of your own)",
        )
    if st.st_mode & 0o022 and not (above and st.st_mode & stat.S_ISVTX):
        raise BootstrapError(
            f"cache directory {path} is writable by other users",
            f"run: chmod go-w {path} (or pass another --cache-dir)",
        )


def check_private(path: Path) -> None:
    """Refuse `path` when a user other than the caller (or root) owns it or can write to it, or to a directory
    above it up to the home directory (or /), both as written and with symbolic links resolved."""
    home = {os.path.abspath(Path.home()), os.path.realpath(Path.home())}
    for chain in dict.fromkeys((os.path.abspath(path), os.path.realpath(path))):
        current = chain
        while True:
            _refuse_loose(current, os.stat(current), above=current != chain)
            parent = os.path.dirname(current)
            if current in home or parent == current:
                break
            current = parent


def _make_dirs(path: Path) -> None:
    """`mkdir -p` with DIR_MODE at every level (os.makedirs gives the umask's mode to the levels above)."""
    missing = []
    while not path.is_dir():
        missing.append(path)
        path = path.parent
    for p in reversed(missing):
        with suppress(FileExistsError):
            os.mkdir(p, DIR_MODE)


def discard(path: Path, reason: str, seen: os.stat_result | None = None) -> None:
    """Remove a damaged cache entry (logged at debug level); when `seen` says which one was judged, only that
    one: another build may have put a good copy in its place meanwhile. A directory where a file belongs is
    removed with what is in it (never following a link inside: `shutil.rmtree`), a link itself, never its
    target."""
    try:
        now = os.lstat(path)
        if seen is not None and (now.st_dev, now.st_ino) != (seen.st_dev, seen.st_ino):
            return
        if stat.S_ISDIR(now.st_mode):
            shutil.rmtree(path)
        else:
            path.unlink()
    except FileNotFoundError:
        return
    log.debug("cache: %s %s: removed, it will be made again", path, reason)


def open_entry(path: Path) -> tuple[int, os.stat_result] | None:
    """A read-only descriptor on the regular file at `path`, and its status; None when nothing is there. Never
    through a link, never waiting on a fifo: anything but a regular file there is damage, removed (`discard`)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError:  # a symbolic link (O_NOFOLLOW), or unreadable
        discard(path, "is not a regular file")
        return None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        discard(path, "is not a regular file", st)
        return None
    return fd, st


def read_entry(path: Path, limit: int) -> bytes | None:
    """The content of the regular file at `path` (`open_entry`), or None: missing, not a regular file, or larger
    than `limit` bytes (a state file the cache keeps is small)."""
    opened = open_entry(path)
    if opened is None:
        return None
    with open(opened[0], "rb") as f:
        data = f.read(limit + 1)
    return data if len(data) <= limit else None


def real_dir(path: Path, make: bool = True) -> Path:
    """`path` as a directory of the cache's own: made when missing (unless not `make`); a link (to anywhere:
    what the cache removes would go there), a file or a fifo in its place is removed first."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISDIR(st.st_mode):
        log.warning("cache: %s is not a directory of the cache's own: replaced by one", path)
        discard(path, "is not a directory", st)
        st = None
    if st is None and make:
        _make_dirs(path)
    return path


def read_verified(path: Path, sha256: str) -> bytes | None:
    """The content of `path`, hashed as read: None when it is missing or does not hash to `sha256` (then it
    is removed)."""
    opened = open_entry(path)
    if opened is None:
        return None
    fd, seen = opened
    with open(fd, "rb") as f:
        data = f.read()
        touch(f.fileno())
    if hashlib.sha256(data).hexdigest() == sha256:
        return data
    discard(path, "does not match its sha256", seen)
    return None


def touch(fd: int) -> None:
    """Mark the file as used now (its mtime): `bootstrap.host.prune` removes the least recently used entries first
    and keeps what a running build took."""
    with suppress(OSError):  # another user's (root's) file, or a read-only cache: only the order suffers
        os.utime(fd)


# --- the cache ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cache:
    """A directory of blobs by sha256 plus named areas for derived data (parsed indexes, HTTP metadata)."""

    root: Path

    def ensure(self) -> "Cache":
        """Create the cache (private to the caller) and refuse one that other users can write to."""
        try:
            for sub in ("sha256", "tmp"):
                real_dir(self.root / sub)
        except OSError as exc:
            raise BootstrapError(
                f"cannot use cache directory {self.root}: {exc.strerror}",
                "pass a writable --cache-dir or set XDG_CACHE_HOME",
            ) from exc
        for sub in ("sha256", "tmp"):
            check_private(self.root / sub)
        scratch.sweep(self.root / "tmp", TEMP_PREFIX)
        scratch.sweep(self.root / "tmp", SESSION_PREFIX)
        areas = [self.root / a for a in (*DERIVED_AREAS, *VERIFIED_AREAS, "locks") if os.path.lexists(self.root / a)]
        for area in areas:
            real_dir(area)  # what a link in an area's place leads to is never swept, pruned or written
        slots = [d for kept in VERIFIED_AREAS for d in (self.root / kept).glob("*/") if not d.is_symlink()]
        for area in [self.root / a for a in DERIVED_AREAS] + slots:
            sweep_writes(area)
        return self

    def blob(self, sha256: str) -> Path:
        return self.root / "sha256" / sha256

    def has(self, sha256: str, size: int | None = None) -> bool:
        """True when the blob is present, of the expected size (when given) and hashes to `sha256`. A blob that
        does not is removed (logged at debug level). A blob found is marked as taken (see `TAKE_LOCK`)."""
        path = self.blob(sha256)
        with self.taking():
            opened = open_entry(path)
            if opened is None:
                return False
            fd, seen = opened
            touch(fd)
        with open(fd, "rb") as f:
            if size is not None and seen.st_size != size:
                reason = f"is not {size} bytes long"
            elif hashlib.file_digest(f, "sha256").hexdigest() == sha256:
                return True
            else:
                reason = "does not match its sha256"
        discard(path, reason, seen)
        return False

    def read(self, sha256: str) -> bytes | None:
        """The blob's content, hashed as read: None when it is missing or does not match (then it is removed)."""
        return read_verified(self.blob(sha256), sha256)

    def temp(self, name: str) -> Path:
        """A private temporary path inside the cache (same file system, so the final rename is atomic), in this
        process's own directory of `tmp/`, which the next build removes if this one is killed."""
        return _process_tmp(self.root / "tmp") / f"{name}.{next(_temp_serial)}"

    def adopt(self, tmp: Path, sha256: str, what: str) -> Path:
        """Check `tmp` against `sha256` and move it into the store; a mismatch deletes it and raises."""
        actual = sha256_file(tmp)
        if actual != sha256:
            tmp.unlink(missing_ok=True)
            raise ChecksumError(
                f"checksum mismatch for {what}: expected sha256 {sha256}, got {actual}",
                "the mirror may be syncing or corrupt: retry later or use another --mirror",
            )
        dest = self.blob(sha256)
        replace_entry(tmp, dest)
        return dest

    def obtain(self, sha256: str, size: int | None, download: Callable[[Path], str]) -> Path:
        """The verified blob, fetched when missing or damaged: `download(tmp)` fills `tmp` and returns what it
        fetched (a URL, for messages). Under a lock, so two builds sharing the cache fetch it once."""
        if self.has(sha256, size):
            return self.blob(sha256)
        with self.locked(sha256):
            if self.has(sha256, size):
                return self.blob(sha256)
            tmp = self.temp(sha256[:16])
            try:
                return self.adopt(tmp, sha256, download(tmp))
            except OSError as exc:  # the cache's disk is full, or read-only
                raise os_error(exc, self.root) from exc
            finally:
                tmp.unlink(missing_ok=True)

    def area(self, name: str) -> Path:
        """A subdirectory for derived data, created on demand (and refused when others can write to it)."""
        path = real_dir(self.root / name)
        check_private(path)
        return path

    def slot(self, area: str, name: str) -> Path:
        """A directory of an area (a kept signed index's), of the cache's own as the area is (`real_dir`; made by
        whoever first writes in it)."""
        return real_dir(self.area(area) / name, make=False)

    @contextmanager
    def locked(self, name: str, shared: bool = False, optional: bool = False) -> Iterator[None]:
        """An exclusive advisory lock, so two builds sharing the cache do not fetch the same thing twice (or a
        shared one). `optional`: none when the lock file cannot be made (a cache this user cannot write)."""
        try:
            lockdir = _lock_dirs.get(self.root) or _lock_dirs.setdefault(self.root, self.area("locks"))
            f = open(_lock_file(lockdir / name), "a")  # noqa: SIM115 (closed below)
        except OSError:
            if not optional:
                raise
            yield
            return
        with f:
            fcntl.flock(f, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def taking(self) -> AbstractContextManager[None]:
        """Held (shared) while a blob is taken, so that `bootstrap.host.prune` does not remove it meanwhile."""
        return self.locked(TAKE_LOCK, shared=True, optional=True)

    @contextmanager
    def session(self) -> Iterator[None]:
        """While a build uses the cache: what it takes from now on (marked used, see `touch`) stays until it
        ends, whatever `bootstrap.host.prune` is asked. The marker is a scratch directory (`tmp/use-*`, locked while
        the build lives), so a killed build's marker protects nothing."""
        with scratch.claimed(self.root / "tmp", SESSION_PREFIX) as marker:
            try:
                yield
            finally:
                marker.rmdir()


def _lock_file(path: Path) -> int:
    """A descriptor to lock on: the regular file at `path`, made when missing; a link, a fifo or a directory in
    its place is removed first (a lock is never taken through a link, nor opened waiting on a fifo)."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    for _ in range(2):
        try:
            fd = os.open(path, flags, FILE_MODE)
        except OSError as exc:  # ELOOP: a link; ENXIO: a fifo nobody reads; EISDIR: a directory
            if exc.errno not in (errno.ELOOP, errno.ENXIO, errno.EISDIR):
                raise
            discard(path, "is not a lock file")
            continue
        if stat.S_ISREG(os.fstat(fd).st_mode):
            return fd
        os.close(fd)
        discard(path, "is not a lock file")
    raise OSError(errno.EEXIST, "cannot make a lock file", str(path))


_lock_dirs: dict[Path, Path] = {}
"""The `locks/` area of each cache, made and checked once per process."""


_claims: dict[tuple[Path, int], Path] = {}
_claims_lock = threading.Lock()


def _process_tmp(tmp: Path) -> Path:
    """This process's directory in the cache's `tmp/`: claimed (and stale ones swept) on first use, removed at
    exit."""
    key = (tmp, os.getpid())
    with _claims_lock:
        if key not in _claims:
            stack = ExitStack()
            _claims[key] = stack.enter_context(scratch.claimed(tmp, TEMP_PREFIX))
            atexit.register(_release, stack, _claims[key], os.getpid())
        return _claims[key]


def _release(stack: ExitStack, path: Path, pid: int) -> None:
    if os.getpid() == pid:  # not in a forked child
        scratch.retire(path, TEMP_PREFIX)  # a worker thread left running may still be writing in it
        stack.close()


_writing: set[Path] = set()
"""Temporary files of `write_atomic` being written: removed at exit when a thread was left writing one."""


@atexit.register
def _abandoned_writes() -> None:
    for tmp in list(_writing):
        with suppress(OSError):
            tmp.unlink(missing_ok=True)


def _no_directory_at(path: Path) -> None:
    """Remove a directory found where a file of the cache goes (the cache's own: `discard`), which a rename
    onto it would fail on in every build."""
    with suppress(FileNotFoundError):
        if stat.S_ISDIR(os.lstat(path).st_mode):
            discard(path, "is a directory where a file belongs")


def replace_entry(tmp: Path, path: Path) -> None:
    """`os.replace` onto a file of the cache: a directory in its place is removed first."""
    _no_directory_at(path)
    os.replace(tmp, path)


def write_entry(path: Path, data: bytes | Iterable[bytes], mode: int = FILE_MODE) -> None:
    """`write_atomic` for a file of the cache: a directory in its place is removed first."""
    _no_directory_at(path)
    write_atomic(path, data, mode)


def write_atomic(path: Path, data: bytes | Iterable[bytes], mode: int = 0o666) -> None:
    """Write a file whole or not at all (`data` may come in parts; `mode` is filtered by the umask).

    The temporary file beside `path` is locked while it is written, so that `sweep_writes` can tell one a
    killed process left."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{next(_temp_serial)}.tmp")
    _writing.add(tmp)
    try:
        tmp.unlink(missing_ok=True)
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode), "wb") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                for part in [data] if isinstance(data, bytes) else data:
                    f.write(part)
                f.flush()
            except OSError as exc:
                if exc.filename is None:  # a write names no file: the error should (a full disk, whose?)
                    raise OSError(exc.errno, exc.strerror, str(path)) from exc
                raise
            os.replace(tmp, path)
    finally:
        _writing.discard(tmp)
        with suppress(OSError):  # a read-only directory, say: the error that ended the write is the one to tell
            tmp.unlink(missing_ok=True)


def sweep_writes(directory: Path, grace: float = 5.0) -> None:
    """Remove the temporary files of `write_atomic` in `directory` that nobody is writing any more (a killed
    process's): unlocked, and not empty or older than `grace` seconds (a writer locks its file as soon as it
    has made it)."""
    for tmp in directory.glob(".*.tmp"):
        try:
            fd = os.open(tmp, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            st = os.fstat(fd)
            if st.st_size or time.time() - st.st_mtime > grace:
                discard(tmp, "was left half-written by a process that did not finish", st)
        except OSError:
            pass
        finally:
            os.close(fd)


# --- derived files --------------------------------------------------------------------------------------------

_MAGIC = b"bsderiv2"
_HEADER = struct.Struct(">8s32s32sI")
"""magic, sha256 of the source blob, HMAC-SHA256 (the user's key) of (source, section lengths, sections), number
of sections"""
_MAX_SECTIONS = 1 << 16
KEY_SIZE = 32
_keys: dict[Path, bytes] = {}
_keys_lock = threading.Lock()


def state_dir() -> Path:
    """`$XDG_STATE_HOME/bootstrap`, or `~/.local/state/bootstrap`: the user's, outside any cache."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "bootstrap"


def derived_key() -> bytes:
    """The secret that proves a derived file was made by this user's builds (`state_dir()/derived.key`, made on
    first use, readable by the user alone). It is kept outside every cache, so whoever can write a cache (one
    restored from elsewhere) cannot make a derived file a build takes: only the blobs, which are hashed against
    signed indexes anyway. Without a usable one (no writable home), a key of this process's own: derived files
    then serve this build only."""
    path = state_dir() / "derived.key"
    with _keys_lock:
        if path not in _keys:
            _keys[path] = _read_key(path) or _make_key(path) or os.urandom(KEY_SIZE)
        return _keys[path]


def _read_key(path: Path) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    with open(fd, "rb") as f:
        st = os.fstat(fd)
        key = f.read(KEY_SIZE + 1)
    private = stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o077
    if not private or len(key) != KEY_SIZE:
        log.warning("cache: %s is not a private key of %d bytes: derived files serve this build only", path, KEY_SIZE)
        return None
    return key


def _make_key(path: Path) -> bytes | None:
    """A new key at `path`, unless another process made one first (then that one): written aside, then linked
    into place, so that a key is never read half-written."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        aside = path.with_name(f".{path.name}.{os.getpid()}.{next(_temp_serial)}")
        fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            with open(fd, "wb") as f:
                f.write(os.urandom(KEY_SIZE))
            with suppress(FileExistsError):
                os.link(aside, path)
        finally:
            aside.unlink(missing_ok=True)
    except OSError as exc:
        log.debug("cache: cannot make %s (%s): derived files serve this build only", path, exc.strerror)
        return None
    return _read_key(path)


def _derived_hash(source: bytes, lengths: bytes) -> "hmac.HMAC":
    h = hmac.new(derived_key(), source, "sha256")
    h.update(lengths)
    return h


def _derived_digest(source: bytes, lengths: bytes, sections: Iterable[bytes]) -> bytes:
    h = _derived_hash(source, lengths)
    for section in sections:
        h.update(section)
    return h.digest()


_BLOCK = 1 << 20


@dataclass(frozen=True)
class FileSection:
    """`size` bytes from offset `start` of an open file: a section too large to be held in memory."""

    file: BinaryIO
    start: int
    size: int

    def chunks(self) -> Iterator[bytes]:
        """The bytes, a block at a time (read at their offsets: the file's position is left alone)."""
        fd, pos, end = self.file.fileno(), self.start, self.start + self.size
        while pos < end:
            block = os.pread(fd, min(_BLOCK, end - pos), pos)
            if not block:
                raise EOFError(f"a section ends {end - pos} bytes early")
            pos += len(block)
            yield block


Section = bytes | FileSection


def _length(section: Section) -> int:
    return section.size if isinstance(section, FileSection) else len(section)


def _blocks(sections: Iterable[Section]) -> Iterator[bytes]:
    for section in sections:
        yield from section.chunks() if isinstance(section, FileSection) else (section,)


@functools.cache
def code_identity() -> str:
    """Bootstrap's own modules as they are (each one's path, size and modification time): another version, or a
    module edited, is another identity."""
    top = Path(bootstrap.__file__).parent
    lines = []
    for directory, dirs, names in os.walk(top):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(n for n in names if n.endswith(".py")):
            st = os.stat(os.path.join(directory, name))
            lines.append(f"{os.path.relpath(os.path.join(directory, name), top)} {st.st_size} {st.st_mtime_ns}")
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def made_by(path: str) -> str:
    """What a derived file's key names the program or library that made it by: its file as it is now (size, times,
    inode), so that an upgraded one, a new file, makes its own entries (`bootstrap.rpm.listing`, `.keptdb`)."""
    st = os.stat(path)
    return f"{path} {st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}"


def write_derived(path: Path, source: str, sections: Sequence[Section]) -> None:
    """Store `sections` (data made from the verified blob `source`) so that `read_derived` can prove them;
    a section in a file is streamed, never held in memory whole."""
    raw = bytes.fromhex(source)
    lengths = struct.pack(f">{len(sections)}Q", *map(_length, sections))
    header = _HEADER.pack(_MAGIC, raw, _derived_digest(raw, lengths, _blocks(sections)), len(sections)) + lengths
    write_entry(path, itertools.chain([header], _blocks(sections)))


def write_state(path: Path, state: Mapping[str, object]) -> None:
    """A small JSON state of the cache (a kept index's floor against rollback, the HTTP validators of its copy),
    kept as a derived file bound to where it is (its directory and name): proven by the user's key, so whoever
    can write the cache cannot lower a floor or move one from elsewhere, only remove it (as a fresh cache has
    none). The sha256 of the last state written there is kept outside the cache too, beside the key
    (`_state_record`): an earlier state put back (a copy of the cache restored) is no state at all. Call it
    under the slot's lock."""
    data = json.dumps(state, sort_keys=True).encode()
    _record_state(path, hashlib.sha256(data).hexdigest())
    write_derived(path, _state_source(path), [data])


def read_state(path: Path) -> dict[str, Any]:
    """What `write_state` kept at `path`, or {} (missing, not proven: removed; or not the last state written
    there: left for the next write to replace)."""
    for _ in range(2):  # read again once: a build writing it meanwhile records it first
        sections = read_derived(path, _state_source(path))
        if sections is None or len(sections) != 1:
            return {}
        if _last_state(path, hashlib.sha256(sections[0]).hexdigest()):
            break
    else:
        log.debug("cache: %s is not the last state written there: taken as none", path)
        return {}
    try:
        data = json.loads(sections[0])
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


STATE_RECORDS = 4096
"""How many records of last states the state directory holds before those of states no longer there are swept."""


def _state_record(path: Path) -> tuple[Path, str]:
    """Where the sha256 of the last state written at `path` is recorded (the user's state directory), and the
    state's real path, which names it."""
    where = os.path.join(os.path.realpath(path.parent), path.name)
    return state_dir() / "states" / hashlib.sha256(where.encode()).hexdigest()[:40], where


def _record_state(path: Path, digest: str) -> None:
    """Record `digest` as the last state written at `path` (written aside, then renamed into place); a record that
    cannot be written costs nothing but this check (the state is then taken as any was before)."""
    record, where = _state_record(path)
    try:
        record.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        aside = record.with_name(f".{record.name}.{os.getpid()}.{next(_temp_serial)}")
        fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with open(fd, "w") as f:
            f.write(f"{digest}\n{where}\n")
        os.replace(aside, record)
    except OSError as exc:
        log.debug("cache: cannot record the state %s: %s", path, exc.strerror)
        return
    with suppress(OSError):
        if len(os.listdir(record.parent)) > STATE_RECORDS:
            _sweep_records(record.parent)


def _last_state(path: Path, digest: str) -> bool:
    """Whether `digest` is the last state recorded for `path` (or none is: a cache kept before records were)."""
    try:
        fd = os.open(_state_record(path)[0], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    with open(fd) as f:
        st = os.fstat(fd)
        recorded = f.read(4096).split("\n", 1)[0]
    return stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid() and recorded == digest


def _sweep_records(directory: Path) -> None:
    """Remove the records of states no longer there (a cache removed, a slot pruned)."""
    for name in os.listdir(directory):
        record = directory / name
        with suppress(OSError, IndexError):
            lines = record.read_text().split("\n")
            if not os.path.lexists(lines[1]):
                record.unlink()


def _state_source(path: Path) -> str:
    return hashlib.sha256(f"bootstrap cache state\n{path.parent.name}/{path.name}".encode()).hexdigest()


def open_derived(path: Path, mark: bool = True) -> int | None:
    """A descriptor on a derived file, or None when it is missing, not a regular file (`open_entry`) or could have
    been written by another user (then it is removed); marked used (`touch`) unless not `mark`. Only ownership and
    mode are checked: `read_derived` proves the content."""
    opened = open_entry(path)
    if opened is None:
        return None
    fd, st = opened
    if _trusted(st.st_uid) and not st.st_mode & 0o022:
        if mark:
            touch(fd)
        return fd
    os.close(fd)
    discard(path, "could have been written by another user", st)
    return None


def read_derived(path: Path, source: str, prove: bool = True, mark: bool = True) -> list[bytes] | None:
    """The sections written by `write_derived` for `source`, or None when the file is missing, was made from
    another blob, or does not match its own hash (then it is removed). Without `prove`, the hash is not checked:
    only for bytes the caller proves itself, and costs nothing if they are not what it expects (a kept gzip
    member, which the layer's digest proves: `bootstrap.image.compress.Members.get`)."""
    sections = read_derived_large(path, source, None, prove, mark)
    return None if sections is None else [s for s in sections if isinstance(s, bytes)]


def read_derived_large(
    path: Path, source: str, keep: int | None, prove: bool = True, mark: bool = True
) -> list[Section] | None:
    """Like `read_derived`, but a last section larger than `keep` bytes comes as a FileSection of the open
    file, hashed on the way and never held in memory (the file stays as proven: cache files are replaced by
    rename, never changed in place, and only the builder can write them)."""
    fd = open_derived(path, mark)
    if fd is None:
        return None
    seen = os.fstat(fd)
    f = open(fd, "rb")  # noqa: SIM115 (closed here, or by whoever takes a FileSection of it)
    try:
        sections = _read_sections(f, bytes.fromhex(source), keep, prove)
    except BaseException:
        f.close()
        raise
    if isinstance(sections, str):
        f.close()
        discard(path, sections, seen)
        return None
    if not sections or not isinstance(sections[-1], FileSection):
        f.close()
    return sections


def _read_sections(f: BinaryIO, source: bytes, keep: int | None, prove: bool = True) -> list[Section] | str:
    """The proven sections of a derived file (without `prove`, its hash unchecked), or why it is not good."""
    size = os.fstat(f.fileno()).st_size
    head = f.read(_HEADER.size)
    if len(head) < _HEADER.size or not head.startswith(_MAGIC):
        return "is not a derived file of this version"
    _, recorded_source, digest, count = _HEADER.unpack(head)
    if recorded_source != source:
        return f"was not made from {source.hex()}"
    lengths = f.read(8 * count) if count <= _MAX_SECTIONS else b""
    if len(lengths) != 8 * count:
        return "is truncated"
    sizes = struct.unpack(f">{count}Q", lengths)
    if _HEADER.size + len(lengths) + sum(sizes) != size:
        return "is truncated or too long"
    h = _derived_hash(source, lengths) if prove else None
    sections: list[Section] = []
    for i, n in enumerate(sizes):
        if keep is not None and i == count - 1 and n > keep:
            large = FileSection(f, f.tell(), n)
            if h is not None:
                for block in large.chunks():
                    h.update(block)
            sections.append(large)
        else:
            section = f.read(n)
            if h is not None:
                h.update(section)
            sections.append(section)
    if h is not None and not hmac.compare_digest(h.digest(), digest):
        return "was not made by this user's builds, or was changed since (its key does not prove it)"
    return sections
