"""An official-style slim image, made the way the official Debian images are made: debuerreotype's steps
(a debootstrap minbase, the container settings, the suite upgraded from -updates and -security, then
slimmed), from the same mirror as our build, to compare with ours entry by entry."""

import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

SCRIPTS = Path("/usr/share/debuerreotype/scripts")


@dataclass(frozen=True)
class Entry:
    """What the comparison looks at for one tar entry (not its mtime: the two tools clamp differently)."""

    kind: str
    mode: int
    owner: tuple[int, int]
    link: str
    content: bytes | None


_KINDS = (
    ("hardlink", tarfile.TarInfo.islnk),
    ("file", tarfile.TarInfo.isreg),
    ("dir", tarfile.TarInfo.isdir),
    ("symlink", tarfile.TarInfo.issym),
    ("other", lambda m: True),
)


def _step(name: str, *args: str) -> None:
    proc = subprocess.run([str(SCRIPTS / name), *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise AssertionError(f"{name} {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")


def build(suite: str, mirror: str, security_mirror: str, keyring: Path, work: Path) -> tuple[Path, int]:
    """debuerreotype-init (debootstrap minbase), minimizing config, update and full-upgrade from the suite's
    -updates and -security, slimify, tar. Returns the tar and the image's epoch."""
    rootfs = work / "rootfs"
    if rootfs.exists():
        shutil.rmtree(rootfs)
    _step("debuerreotype-init", "--non-debian", "--keyring", str(keyring), str(rootfs), suite, mirror)
    _step("debuerreotype-minimizing-config", str(rootfs))
    sources = (
        f"Types: deb\nURIs: {mirror}\nSuites: {suite} {suite}-updates\nComponents: main\n"
        f"Signed-By: {keyring}\n\n"
        f"Types: deb\nURIs: {security_mirror}\nSuites: {suite}-security\nComponents: main\n"
        f"Signed-By: {keyring}\n"
    )
    signed_by = next(
        (
            f"/usr/share/keyrings/{n}"
            for n in ("debian-archive-keyring.pgp", "debian-archive-keyring.gpg")
            if (rootfs / "usr/share/keyrings" / n).exists()
        ),
        str(keyring),
    )
    sources = sources.replace(f"Signed-By: {keyring}", f"Signed-By: {signed_by}")
    (rootfs / "etc/apt/sources.list").unlink(missing_ok=True)
    (rootfs / "etc/apt/sources.list.d").mkdir(parents=True, exist_ok=True)
    (rootfs / "etc/apt/sources.list.d/debian.sources").write_text(sources)
    _step("debuerreotype-apt-get", str(rootfs), "update", "-qq")
    _step("debuerreotype-apt-get", str(rootfs), "full-upgrade", "-yqq")
    _step("debuerreotype-slimify", str(rootfs))
    epoch = int((rootfs / "debuerreotype-epoch").read_text())
    out = work / "official.tar"
    _step("debuerreotype-tar", str(rootfs), str(out))
    shutil.rmtree(rootfs)
    return out, epoch


def entries(path: Path) -> dict[str, Entry]:
    """Every entry of a (possibly compressed) image tar, by path without a leading `./`."""
    out: dict[str, Entry] = {}
    with tarfile.open(path) as tar:
        for m in tar:
            name = m.name.removeprefix("./").rstrip("/")
            if not name or name == ".":
                continue
            content = None
            if m.isreg():
                f = tar.extractfile(m)
                content = f.read() if f else b""
            kind = next(k for k, test in _KINDS if test(m))
            link = m.linkname.removeprefix("./") if m.islnk() else m.linkname
            out[name] = Entry(kind, m.mode & 0o7777, (m.uid, m.gid), link, content)
    return out


@dataclass(frozen=True)
class Allowed:
    """A documented difference: a path pattern (fnmatch, `*` crossing `/`), its kind and the reason."""

    pattern: str
    kind: str
    reason: str


def documented(readme: Path) -> list[Allowed]:
    """The table of differences between the marker comments of the README."""
    text = readme.read_text()
    table = text.split("<!-- official-differences:start -->", 1)[1].split("<!-- official-differences:end -->", 1)[0]
    rows = []
    for line in table.strip().splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        rows.append(Allowed(cells[0].strip("`"), cells[1], cells[2]))
    return rows


def _uncommented(data: bytes | None) -> list[bytes]:
    return [line for line in (data or b"").splitlines() if line.strip() and not line.startswith(b"#")]


def differences(ours: dict[str, Entry], official: dict[str, Entry]) -> list[tuple[str, str, str]]:
    """(path, kind, detail) for every entry that differs; kind as in the README's table."""
    out = []
    for path in sorted(set(ours) | set(official)):
        a, b = ours.get(path), official.get(path)
        if a == b:
            continue
        if a is None:
            out.append((path, "only official", f"{b.kind if b else ''}"))
        elif b is None:
            out.append((path, "only ours", a.kind))
        elif (a.kind, a.owner, a.link, a.content) == (b.kind, b.owner, b.link, b.content):
            out.append((path, "mode", f"{a.mode:o} vs {b.mode:o}"))
        elif (a.kind, a.mode, a.owner, a.link) == (b.kind, b.mode, b.owner, b.link) and _uncommented(
            a.content
        ) == _uncommented(b.content):
            out.append((path, "comments", ""))
        elif (a.kind, a.mode, a.owner, a.link) == (b.kind, b.mode, b.owner, b.link):
            out.append((path, "content", ""))
        else:
            out.append((path, "entry", f"{a} vs {b}"))
    return out
