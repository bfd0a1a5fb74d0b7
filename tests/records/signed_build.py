"""A fixture archive of one package and fast scriptless builds from it through the command line, signed or not
(the signed-records tests of `tests/records` and `tests/registry` share it)."""

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bootstrap.sign import keys
from tests.cli.test_cli import cli
from tests.fixtures.gpg import GpgKey
from tests.fixtures.repo import Repo

RECIPE = """\
scripts = false
[packages]
priorities = []
essential = false
include = ["base"]
[image]
tag = "fixture-signed:{codename}"
cmd = []
"""
PASSWORD = "correct horse"
EPOCH = "1750000000"


@dataclass(frozen=True)
class Archive:
    recipe: Path
    source: tuple[str, ...]
    """The options that read it: mirror, keyring, cache."""
    key: Path
    """The signing key (encrypted with PASSWORD), `key.with_suffix('.pub')` its public key."""
    other: Path
    """The public key of another key pair."""

    def build(self, out: Path, *more: str, command: tuple[str, ...] = ("build",)) -> Path:
        """Build into `out` (`command=()`: the shortcut `bootstrap RECIPE ...`)."""
        args = [*command, str(self.recipe), "-o", str(out), *self.source, "--epoch", EPOCH, "-q", *more]
        proc = cli(*args, env=signing_env())
        assert proc.returncode == 0, proc.stderr
        return out

    @property
    def public(self) -> Path:
        return self.key.with_suffix(".pub")


def signing_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in keys.PASSWORD_ENV} | {"BOOTSTRAP_SIGN_PASSWORD": PASSWORD}


def make_archive(
    root: Path, gpg_key: GpgKey, serve: Callable[[Path], str], arches: tuple[str, ...] = ("amd64",)
) -> Archive:
    repo = Repo(root / "repo", gpg_key)
    repo.debian_dists(architectures=arches)
    for arch in arches:
        repo.add_package("fixture", "base", "1.0", arch=arch, priority="required", files={"/etc/base": "x\n"})
    repo.publish()
    url = serve(repo.root)
    recipe = root / "signed.toml"
    recipe.write_text(RECIPE)
    key = keys.generate()
    keys.write_pair(root / "release", key, PASSWORD.encode())
    keys.write_pair(root / "other", keys.generate(), None)
    source: tuple[str, ...] = ("--mirror", url, "--security-mirror", url, "--keyring", str(repo.keyring))
    source += ("--cache-dir", str(root / "cache"))
    return Archive(recipe, source, root / "release.key", root / "other.pub")


def tampered(directory: Path, to: Path, change: Callable[[Path], None]) -> Path:
    """A copy of an output directory changed by `change`, with build.json's digests made to agree again (what an
    attacker who rewrites the unsigned records would do)."""
    shutil.copytree(directory, to)
    change(to)
    summary = json.loads((to / "build.json").read_text())
    files = [p for p in sorted(to.iterdir()) if p.name != "build.json"]
    summary["files"] = {p.name: "sha256:" + hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
    (to / "build.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return to


def replace_in(path: Path, old: bytes, new: bytes) -> None:
    data = path.read_bytes()
    assert old in data
    path.write_bytes(data.replace(old, new, 1))
