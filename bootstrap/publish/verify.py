"""`bootstrap verify DIR`: rebuild DIR's image from inputs proven against the signed chain, and compare every
output's digest.

DIR is untrusted input: it may come from anyone. So:
- The recipe is the user's (`--recipe`), or the one DIR's build.json records when that reads nothing of this
  host and runs nothing of its own (no local files, no customize hooks, no keyring but bootstrap's own);
  either must match the digests DIR's lock records for the recipe and its inputs.
- DIR's files are read only as regular files (no symbolic link, FIFO or device); every file build.json names
  must be there with the digest it records, and every output the rebuild makes must be there.
- The lock is taken: its packages and InRelease digests are checked against the signed chain by the rebuild.
- The rebuild takes nothing from the cache's derived areas (parsed indexes, decompressed packages, kept gzip
  members): indexes are parsed again from the index files checked against the signed InRelease, and packages
  decompressed again from the .debs checked against the signed indexes (`Options.derived_cache`).
"""

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bootstrap.build import pipeline, recipe, recipe_trust
from bootstrap.build.inputs import inputs_of
from bootstrap.build.plan import Options, make_plan
from bootstrap.build.recipe import Recipe
from bootstrap.errors import BootstrapError
from bootstrap.host.plainfile import open_plain
from bootstrap.host.tree import remove_tree
from bootstrap.image.layer import Compression
from bootstrap.publish import signed
from bootstrap.records import lock as lock_mod
from bootstrap.records import outputs
from bootstrap.records.lock import Lock
from bootstrap.sign.keys import PublicKey

RECORDS = outputs.SUMMARY.name()
"""Not compared byte for byte: it records the time each step took. Its digests are compared instead."""
LOCK = outputs.LOCK.name()
BY_RECORDS = {o.name() for o in outputs.OUTPUTS if o.compare is outputs.Compare.RECORDED}
"""Outputs compared by what they record (the outputs table's `compare`), not byte for byte."""
BY_SIGNATURE = {o.name() for o in outputs.OUTPUTS if o.compare is outputs.Compare.SIGNATURE}
"""Signed envelopes: not compared with the rebuild (which signs nothing), checked against `--key` instead."""
MAX_RECORD = 64 << 20
"""build.json and lock.json larger than this are refused (a real one is a few hundred KiB at most)."""
UNTIMED = ("image", "files", "platforms", "sources")
"""The parts of build.json compared with the rebuild's (without timings): every digest it records."""


@dataclass(frozen=True)
class Verdict:
    differing: tuple[str, ...]
    compared: tuple[str, ...]
    diffoscope: str

    @property
    def ok(self) -> bool:
        return not self.differing


@dataclass(frozen=True)
class Subject:
    """An output directory read once, before anything is built: what it records, and the recipe to rebuild."""

    directory: Path
    records: dict[str, Any]
    lock: Lock
    lock_bytes: bytes
    digests: dict[str, str]
    """`sha256:<hex>` of every regular file of the directory but build.json."""
    recipe: Recipe
    from_user: bool

    @property
    def insecure(self) -> bool:
        """Whether DIR's records (build.json, or its lock) say it was built with --insecure."""
        return self.lock.insecure or self.settings.get("insecure") is True

    @property
    def settings(self) -> dict[str, Any]:
        found = self.records.get("build")
        return found if isinstance(found, dict) else {}


def _refuse(directory: Path, what: str, hint: str = "rebuild that directory, or get it again") -> BootstrapError:
    return BootstrapError(f"{directory}: {what}", hint)


def _read_record(directory: Path, name: str) -> bytes:
    fd = open_plain(directory / name)
    if fd is None:
        raise _refuse(directory, f"{name} is missing or not a regular file", "give the output directory of a build")
    with open(fd, "rb") as f:
        data = f.read(MAX_RECORD + 1)
    if len(data) > MAX_RECORD:
        raise _refuse(directory, f"{name} is larger than {MAX_RECORD >> 20} MiB")
    return data


def _digest(path: Path) -> str | None:
    fd = open_plain(path)
    if fd is None:
        return None
    with open(fd, "rb") as f:
        return "sha256:" + hashlib.file_digest(f, "sha256").hexdigest()


def _plain_files(directory: Path) -> dict[str, str]:
    """The digest of every regular file of the directory but build.json (other entries are left alone)."""
    out = {}
    for entry in sorted(os.scandir(directory), key=lambda e: e.name):
        if entry.name != RECORDS and entry.is_file(follow_symlinks=False):
            digest = _digest(Path(entry.path))
            if digest is not None:
                out[entry.name] = digest
    return out


def _check_recorded(directory: Path, records: dict[str, Any], digests: dict[str, str]) -> None:
    """Every file build.json names is in the directory, a regular file with the digest it records."""
    files = records.get("files")
    if not isinstance(files, dict) or not files:
        raise _refuse(directory, f"{RECORDS} records no output files")
    missing = sorted(n for n in files if n not in digests)
    wrong = sorted(n for n in files if n in digests and files[n] != digests[n])
    problems = []
    if missing:
        problems.append(f"missing (or not regular files): {', '.join(map(_shown, missing))}")
    if wrong:
        problems.append(f"not the digest {RECORDS} records: {', '.join(map(_shown, wrong))}")
    if problems:
        raise BootstrapError(
            f"{directory}: outputs " + "; ".join(problems),
            "the directory is damaged or was changed after the build: get it again",
        )


def _shown(name: str) -> str:
    """A file name of the directory as printed: quoted when it holds anything but printable characters."""
    return name if name.isprintable() and name.strip() == name else repr(name)


def _under(path: str, dirs: list[Path]) -> bool:
    real = Path(path).resolve()
    return any(real.is_relative_to(d.resolve()) for d in dirs)


def host_reads(rec: Recipe) -> list[str]:
    """What a recipe would read of this host or run besides the archive and bootstrap's own recipes."""
    shipped = recipe_trust.bundled_dirs()
    out = []
    if rec.files:
        out.append(f"copies {len(rec.files)} local file(s) into the image")
    if rec.customize:
        out.append(f"runs {len(rec.customize)} customize hook(s)")
    keyrings = [r.keyring for r in rec.repositories if not r.is_fingerprint]
    keyrings += [rec.archive_keyring] if rec.archive_keyring else []
    if any(not _under(k, shipped) for k in keyrings):
        out.append("trusts a keyring file of its own")
    return out


def recorded_recipe(directory: Path, records: dict[str, Any]) -> Recipe:
    """The resolved recipe build.json records, refused when it would read this host's files or run hooks."""
    data = records.get("recipe")
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        raise _refuse(directory, f"{RECORDS} records no recipe")
    rec = recipe.from_data(dict(data), data["name"], f"{directory}/{RECORDS}")
    reads = host_reads(rec)
    if reads:
        raise BootstrapError(
            f"{directory}/{RECORDS} records a recipe that {' and '.join(reads)}: verify does not take such a "
            "recipe from the directory it checks",
            f"give the recipe it was built from: bootstrap verify {directory} --recipe RECIPE",
        )
    return rec


def examine(directory: Path, recipe_name: str | None = None, allow: Sequence[Path] = ()) -> Subject:
    """Read DIR's records and check its files against them, and choose the recipe to rebuild (the user's
    `recipe_name`, whose local paths may also be under `allow`, else the recorded one), before anything is
    built."""
    given = recipe.load(recipe_name, allow, given=True) if recipe_name else None
    if not (directory / LOCK).exists() and any(directory.glob(outputs.LOCK.name("*", True))):
        raise BootstrapError(
            f"{directory} holds no {LOCK} (a multi-architecture build)",
            "verify rebuilds single-architecture outputs: build and verify each --arch on its own",
        )
    raw = _read_record(directory, RECORDS)
    try:
        records = json.loads(raw)
    except ValueError as exc:
        raise _refuse(directory, f"{RECORDS} is not valid JSON: {exc}") from None
    except RecursionError:
        raise _refuse(directory, f"{RECORDS} is nested too deeply") from None
    if not isinstance(records, dict):
        raise _refuse(directory, f"{RECORDS} is not a JSON object")
    lock_bytes = _read_record(directory, LOCK)
    try:
        lock = lock_mod.parse(lock_bytes, f"{directory}/{LOCK}")
    except RecursionError:
        raise _refuse(directory, f"{LOCK} is nested too deeply") from None
    digests = _plain_files(directory)
    _check_recorded(directory, records, digests)
    rec = given or recorded_recipe(directory, records)
    return Subject(directory, records, lock, lock_bytes, digests, rec, recipe_name is not None)


def check_signatures(subject: Subject, key: PublicKey) -> None:
    """The directory's signed records, checked against `key` before anything is rebuilt."""
    signed.check(signed.read_directory(subject.directory), key, str(subject.directory))


def check_inputs(subject: Subject, rec: Recipe) -> None:
    """The recipe must be the one the lock records: the same settings, local files, hooks and keyrings."""
    if not subject.lock.inputs:
        if subject.from_user:
            return
        raise _refuse(
            subject.directory,
            "its lock records no digest of the recipe (an older bootstrap made it)",
            f"give the recipe it was built from: bootstrap verify {subject.directory} --recipe RECIPE",
        )
    if inputs_of(rec) != subject.lock.inputs:
        where = "the recipe given" if subject.from_user else f"the recipe {RECORDS} records"
        raise _refuse(
            subject.directory,
            f"{where} is not the one its lock records (the recipe or one of its inputs differs)",
            "give the recipe, local files and keyrings it was built from (--recipe), or rebuild the directory",
        )


def _setting(subject: Subject, key: str) -> str:
    value = subject.settings.get(key)
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise _refuse(subject.directory, f"{RECORDS} records no build setting {key!r}")
    return str(value)


def _untimed(records: dict[str, Any]) -> dict[str, Any]:
    """The parts of build.json that are a function of the build's inputs."""
    out = {k: records.get(k) for k in UNTIMED}
    if isinstance(out["files"], dict):
        out["files"] = {n: d for n, d in out["files"].items() if n not in BY_SIGNATURE}
    platforms = out["platforms"]
    if isinstance(platforms, list):
        out["platforms"] = [
            {k: v for k, v in p.items() if k != "timings"} if isinstance(p, dict) else p for p in platforms
        ]
    return out


def _compare(subject: Subject, again: Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(compared, differing): every output of the rebuild and every file of the directory, by digest; and
    build.json (differing when the digests it records do)."""
    rebuilt = {p.name for p in again.iterdir() if p.is_file() and p.name not in BY_RECORDS}
    compared = sorted((rebuilt | set(subject.digests)) - BY_SIGNATURE)
    differing = [n for n in compared if n not in rebuilt or subject.digests.get(n) != "sha256:" + _sha256(again / n)]
    theirs = json.loads((again / RECORDS).read_text())
    if _untimed(subject.records) != _untimed(theirs):
        differing.append(RECORDS)
    return tuple(compared), tuple(differing)


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _diffoscope(subject: Subject, again: Path, differing: tuple[str, ...], scratch: Path) -> str:
    """diffoscope's report on the first differing layer (a copy of the directory's, read as a regular file)."""
    layers = [
        n for n in differing if n.startswith(outputs.ROOTFS.file) and (again / n).is_file() and n in subject.digests
    ]
    tool = shutil.which("diffoscope")
    if not layers or tool is None:
        return ""
    fd = open_plain(subject.directory / layers[0])
    if fd is None:
        return ""
    theirs = scratch / "theirs" / layers[0]
    theirs.parent.mkdir()
    with open(fd, "rb") as src, open(theirs, "wb") as dst:
        shutil.copyfileobj(src, dst)
    proc = subprocess.run(
        [tool, "--text", "-", str(theirs), str(again / layers[0])], capture_output=True, text=True, errors="replace"
    )
    return proc.stdout


def verify(subject: Subject, opts: Options) -> Verdict:
    """Rebuild the subject from its lock into a scratch directory, from nothing but the signed chain and the
    recipe, and compare digests file by file."""
    scratch = Path(tempfile.mkdtemp(prefix="bootstrap-verify-"))
    try:
        locked = scratch / LOCK
        locked.write_bytes(subject.lock_bytes)
        again = scratch / "out"
        try:
            compression = Compression(_setting(subject, "compression"))
        except ValueError:
            raise _refuse(subject.directory, f"{RECORDS} records an unknown compression") from None
        opts = replace(
            opts,
            lock=locked,
            output=again,
            tag=_setting(subject, "tag"),
            arch=subject.lock.arch,
            compression=compression,
            mirror=opts.mirror or _setting(subject, "mirror"),
            security_mirror=opts.security_mirror or _setting(subject, "security_mirror"),
            epoch=subject.lock.epoch,
            reuse_members=False,
            derived_cache=False,
            sbom_formats=tuple(o.sbom for o in outputs.OUTPUTS if o.asked and o.name() in subject.digests),
        )
        plan = make_plan(subject.recipe, opts)
        check_inputs(subject, plan.recipe)
        pipeline.build(plan)
        compared, differing = _compare(subject, again)
        return Verdict(differing, compared, _diffoscope(subject, again, differing, scratch))
    finally:
        remove_tree(scratch)
