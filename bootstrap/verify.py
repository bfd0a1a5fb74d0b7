"""`bootstrap verify DIR`: rebuild from DIR's lock and recorded recipe, and compare every output's digest."""

import json
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from bootstrap import lock as lock_mod
from bootstrap import pipeline, recipe
from bootstrap.cache import sha256_file
from bootstrap.errors import BootstrapError
from bootstrap.image.layer import Compression
from bootstrap.plan import Options, make_plan
from bootstrap.tree import remove_tree

NOT_COMPARED = ("build.json",)
"""Provenance records the time each step took: it differs between any two builds."""


@dataclass(frozen=True)
class Verdict:
    differing: tuple[str, ...]
    compared: tuple[str, ...]
    diffoscope: str

    @property
    def ok(self) -> bool:
        return not self.differing


def read_build(directory: Path) -> dict[str, object]:
    try:
        data: dict[str, object] = json.loads((directory / "build.json").read_text())
    except FileNotFoundError:
        raise BootstrapError(
            f"{directory} has no build.json", "give the output directory of a bootstrap build"
        ) from None
    except ValueError as exc:
        raise BootstrapError(f"{directory}/build.json is not valid JSON: {exc}", "rebuild that directory") from None
    return data


def recorded_insecure(directory: Path) -> bool:
    """Whether DIR's records (build.json, or its lock) say it was built with --insecure."""
    settings = read_build(directory).get("build")
    if isinstance(settings, dict) and settings.get("insecure") is True:
        return True
    lock = directory / "lock.json"
    return lock.is_file() and lock_mod.read(lock).insecure


def recorded_recipe(directory: Path, allow: Sequence[Path] = ()) -> recipe.Recipe:
    """The resolved recipe DIR's build.json records; the local files it names must be inside `allow` (a build
    directory may come from anywhere: its recipe has no directory of its own on this machine)."""
    data = read_build(directory).get("recipe")
    if not isinstance(data, dict) or "name" not in data:
        raise BootstrapError(f"{directory}/build.json records no recipe", "rebuild that directory")
    return recipe.load_recorded(dict(data), f"{directory}/build.json", allow)


def verify(directory: Path, opts: Options) -> Verdict:
    """Rebuild DIR from its lock into a scratch directory and compare digests file by file."""
    build = read_build(directory)
    if not (directory / "lock.json").is_file():
        raise BootstrapError(
            f"{directory} holds no lock.json (a multi-architecture build?)",
            "verify rebuilds single-architecture outputs: build and verify each --arch on its own",
        )
    settings = build["build"]
    assert isinstance(settings, dict)
    rec = recorded_recipe(directory, opts.allow_paths)
    scratch = Path(tempfile.mkdtemp(prefix="bootstrap-verify-"))
    try:
        again = scratch / "out"
        opts = replace(
            opts,
            lock=directory / "lock.json",
            output=again,
            tag=str(settings["tag"]),
            arch=str(settings["arch"]),
            compression=Compression(str(settings["compression"])),
            mirror=opts.mirror or str(settings["mirror"]),
            security_mirror=opts.security_mirror or str(settings["security_mirror"]),
            epoch=int(str(settings["epoch"])),
            reuse_members=False,
        )
        pipeline.build(make_plan(rec, opts))
        compared = tuple(sorted(p.name for p in directory.iterdir() if p.is_file() and p.name not in NOT_COMPARED))
        differing = tuple(
            n for n in compared if not (again / n).is_file() or sha256_file(directory / n) != sha256_file(again / n)
        )
        report = ""
        layers = [n for n in differing if n.startswith("rootfs") and (again / n).is_file()]
        if layers and shutil.which("diffoscope"):
            proc = subprocess.run(
                ["diffoscope", "--text", "-", str(directory / layers[0]), str(again / layers[0])],
                capture_output=True,
                text=True,
                errors="replace",
            )
            report = proc.stdout
        return Verdict(differing, compared, report)
    finally:
        remove_tree(scratch)
