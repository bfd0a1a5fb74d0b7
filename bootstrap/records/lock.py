"""The lock file: the exact archive state and package set of a build, enough to rebuild it bit for bit."""

import hashlib
import json
import os
import stat
from dataclasses import asdict, dataclass
from pathlib import Path

from bootstrap.errors import BootstrapError, MirrorError
from bootstrap.family.interface import Archive, Family, Selection
from bootstrap.family.model import Pin
from bootstrap.host.arches import arch_name
from bootstrap.numbers import epoch_problem

LOCK_VERSION = 1
LABEL = "bootstrap.lock.sha256"
"""The image config label holding the digest of the image's lock (`sha256:<hex>` of lock.json's bytes): the lock
attached beside the image in a registry is checked against it. The lock itself holds no image digest."""


@dataclass(frozen=True)
class LockedSource:
    mirror: str
    dist: str
    suite: str
    date: int
    inrelease_sha256: str


@dataclass(frozen=True)
class LockedPackage:
    name: str
    version: str
    architecture: str
    filename: str
    size: int
    sha256: str
    dist: str


@dataclass(frozen=True)
class LockedInput:
    """Something besides the archive that went into the image, by digest: the recipe itself (its settings,
    with local files by content), each local file, each customize hook, each repository keyring file."""

    kind: str
    name: str
    sha256: str


@dataclass(frozen=True)
class Lock:
    recipe: str
    distribution: str
    suite: str
    codename: str
    arch: str
    epoch: int
    sources: tuple[LockedSource, ...]
    packages: tuple[LockedPackage, ...]
    insecure: bool = False
    """Built with --insecure: no signature vouched for the sources."""
    inputs: tuple[LockedInput, ...] = ()

    def to_json(self) -> bytes:
        data = {"lockVersion": LOCK_VERSION, **asdict(self)}
        return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.to_json()).hexdigest()

    def by_name(self) -> dict[str, LockedPackage]:
        return {p.name: p for p in self.packages}


def make_lock(
    recipe: str,
    distribution: str,
    suite: str,
    arch: str,
    epoch: int,
    archive: Archive,
    selection: Selection,
    inputs: tuple[LockedInput, ...],
) -> Lock:
    """The lock of one platform's build of `recipe` (its name), with the recipe's `inputs` (`build.inputs`)."""
    return Lock(
        recipe=recipe,
        distribution=distribution,
        suite=suite,
        codename=archive.codename,
        arch=arch,
        epoch=epoch,
        sources=tuple(LockedSource(s.mirror, s.dist, s.suite, s.date, s.digest) for s in archive.sources),
        packages=tuple(
            LockedPackage(p.name, p.version, p.arch, p.filename, p.size, p.sha256, p.dist) for p in selection.packages
        ),
        insecure=archive.insecure,
        inputs=inputs,
    )


def read(path: Path) -> Lock:
    """Load a lock file (or the lock.json inside an output directory)."""
    if path.is_dir():
        path = path / "lock.json"
    hint = "give a lock.json or an output directory of a build"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # a FIFO does not block
    except FileNotFoundError:
        raise BootstrapError(f"no lock file at {path}", hint) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise BootstrapError(f"{path} is not a regular file", hint)
    with open(fd, "rb") as f:
        data = f.read(MAX_LOCK + 1)
    if len(data) > MAX_LOCK:
        raise BootstrapError(f"{path} is larger than {MAX_LOCK >> 20} MiB, more than any lock", hint)
    return parse(data, str(path))


MAX_LOCK = 64 << 20
"""The largest lock file read (a distribution's whole archive would be a few MB)."""


def parse(raw: bytes, where: str) -> Lock:
    """A lock from its JSON bytes (a file, or a blob attached to an image in a registry)."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise BootstrapError(f"{where} is not valid JSON: {reason}", "regenerate it with `bootstrap lock`") from None
    if not isinstance(data, dict):
        raise BootstrapError(f"{where}: malformed lock file (not a JSON object)", "regenerate it with `bootstrap lock`")
    version = data.get("lockVersion")
    if type(version) is not int or version != LOCK_VERSION:
        raise BootstrapError(
            f"{where}: unsupported lockVersion {version!r}", f"this bootstrap reads lockVersion {LOCK_VERSION}"
        )
    problem = _shape_problem(data)
    if problem:
        raise BootstrapError(f"{where}: malformed lock file ({problem})", "regenerate it with `bootstrap lock`")
    try:
        return Lock(
            recipe=data["recipe"],
            distribution=data["distribution"],
            suite=data["suite"],
            codename=data["codename"],
            arch=arch_name(data["arch"]) or data["arch"],  # as the plan names it (a hand-written x86_64 is amd64)
            epoch=int(data["epoch"]),
            sources=tuple(LockedSource(**s) for s in data["sources"]),
            packages=tuple(LockedPackage(**p) for p in data["packages"]),
            insecure=data.get("insecure", False) is True,
            inputs=tuple(LockedInput(**i) for i in data.get("inputs", [])),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise BootstrapError(f"{where}: malformed lock file ({exc})", "regenerate it with `bootstrap lock`") from None


_TYPES = {**{f: str for f in ("recipe", "distribution", "suite", "codename", "arch")}, "epoch": int}
_ENTRY_TYPES: dict[str, type[object]] = {
    "sources": LockedSource,
    "packages": LockedPackage,
    "inputs": LockedInput,
}


def _shape_problem(data: dict[str, object]) -> str | None:
    """What is of the wrong type in a lock's JSON (every field as `make_lock` writes it), or None."""
    for name, kind in _TYPES.items():
        value = data.get(name)
        if not isinstance(value, kind) or isinstance(value, bool):
            return f"{name} is not a {kind.__name__}"
    problem = epoch_problem(data["epoch"])
    if problem:
        return f"epoch is {problem}"
    for name, entry in _ENTRY_TYPES.items():
        entries = data.get(name, [])
        if not isinstance(entries, list) or (name == "packages" and not entries):
            return f"{name} is not a list" + (" of at least one package" if name == "packages" else "")
        fields = entry.__annotations__
        for item in entries:
            if not isinstance(item, dict) or set(item) != set(fields):
                return f"an entry of {name} does not have the fields {', '.join(fields)}"
            for key, value in item.items():
                wanted = fields[key]
                if not isinstance(value, wanted) or isinstance(value, bool):
                    return f"{key} of an entry of {name} is not a {wanted.__name__}"
    return None


def selection_from(lock: Lock, family: Family, archive: Archive) -> Selection:
    """The exact packages of the lock, found in the archive's current indexes; fails when one is gone."""
    pins = [Pin(p.name, p.version, p.architecture, p.sha256) for p in lock.packages]
    selection, missing = family.pinned(archive, pins)
    found = selection.by_name()
    for pin in pins:
        match = found.get(pin.name)
        if match is not None and match.sha256 != pin.sha256:
            raise MirrorError(
                f"{pin.name} {pin.version}: sha256 {match.sha256} on the mirror, {pin.sha256} in the lock",
                "the archive was rebuilt under the same version; relock with `bootstrap lock`",
            )
    gone = [f"{p.name} {p.version}" for p in missing]
    if gone:
        hint = family.older_packages_hint(lock.distribution, min(s.date for s in lock.sources))
        raise MirrorError(
            f"the mirror no longer carries {len(gone)} locked package(s): {', '.join(gone[:4])}"
            + (" ..." if len(gone) > 4 else ""),
            hint,
        )
    return selection
