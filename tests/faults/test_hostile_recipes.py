"""Hostile recipes, written for real into temporary directories: a recipe that names a host file outside its
own directory (absolute, through `..`, through a symlink, as a keyring, from a recipe it extends, recorded
in a build directory's build.json), and a recipe planted by another user (made here with useradd) in a
shared world-writable directory where `extends` looks first.

Each is refused with one line naming the key and the path (or the file and why) before anything is fetched:
the mirror is a real HTTP server on 127.0.0.1 serving nothing, and it must see no request. --allow-path (or
$BOOTSTRAP_ALLOW_PATH) widens the confinement: the same recipe then gets as far as the mirror."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.users import User, make_user, remove_user
from tests.faults.conftest import Case, cli, env_for
from tests.fixtures.server import Server

pytestmark = [pytest.mark.faults]

SHADOW = "/etc/shadow"


@dataclass
class Attempt:
    """A CLI run against an empty mirror: what it printed and which requests the mirror saw."""

    proc: subprocess.CompletedProcess[str]
    requests: list[str]

    @property
    def errors(self) -> list[str]:
        return [line for line in self.proc.stderr.splitlines() if line.startswith("error: ")]

    def refused(self, *words: str) -> str:
        """One `error:` line holding every word, a hint, exit 1, no traceback, and no request: the error line."""
        stderr = self.proc.stderr
        assert self.proc.returncode == 1, stderr
        assert len(self.errors) == 1, stderr
        assert all(w in self.errors[0] for w in words), stderr
        assert any(line.startswith("hint: ") for line in stderr.splitlines()), stderr
        assert "Traceback" not in stderr, stderr
        assert self.requests == [], f"the mirror was asked for {self.requests}"
        return self.errors[0].removeprefix("error: ")


class Bench:
    """A project directory for recipes, an empty mirror, and a way to run the CLI against it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.proj = root / "proj"
        self.proj.mkdir()
        self.scratch = root / "scratch"
        self.scratch.mkdir()
        (root / "empty").mkdir()
        self.server = Server(root / "empty")

    def write(self, name: str, text: str) -> Path:
        path = self.proj / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def run(self, *args: str, **env: str) -> Attempt:
        """A command that reads archives, pointed at the empty mirror."""
        mirror = ["--mirror", self.server.url, "--security-mirror", self.server.url]
        return self.plain(*args, *mirror, "--cache-dir", str(self.root / "cache"), "-q", **env)

    def plain(self, *args: str, **env: str) -> Attempt:
        base = {k: v for k, v in env_for(self.scratch, **env).items() if k != "SUDO_UID"}
        self.server.requests.clear()
        proc = cli(*args, env=base, timeout=120)
        return Attempt(proc, list(self.server.requests))

    def build(self, recipe: Path, *args: str, **env: str) -> Attempt:
        attempt = self.run("build", str(recipe), "-o", str(self.root / "out"), *args, **env)
        assert not (self.root / "out").exists(), "an output was written"
        return attempt


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[Bench]:
    b = Bench(tmp_path)
    yield b
    b.server.stop()


def _up_to_root(directory: Path) -> str:
    """`../` enough times to climb from `directory` to /."""
    return "../" * (len(directory.resolve().parts) - 1)


FILES = 'extends = "debian-slim"\n[[files]]\nsource = "{}"\ndest = "/etc/copied"\n'


@pytest.mark.parametrize("how", ["absolute", "dot-dot", "symlink", "symlinked directory"])
def test_a_file_outside_the_recipes_directory(case: Case, bench: Bench, how: str) -> None:
    written = {
        "absolute": SHADOW,
        "dot-dot": _up_to_root(bench.proj) + SHADOW.lstrip("/"),
        "symlink": "secrets",
        "symlinked directory": "conf/shadow",
    }[how]
    case.describe(
        "recipe",
        f"[[files]] source names {SHADOW} ({how}: {written!r})",
        "refused before any request: one line naming files[0].source and the path; nothing written",
    )
    (bench.proj / "secrets").symlink_to(SHADOW)
    (bench.proj / "conf").symlink_to("/etc")
    recipe = bench.write("app.toml", FILES.format(written))
    error = bench.build(recipe).refused(str(recipe), "files[0].source", repr(written), SHADOW, "outside")
    case.saw(error)


@pytest.mark.parametrize("key", ["archive.keyring", "repositories[0].keyring"])
def test_a_keyring_outside_the_recipes_directory(case: Case, bench: Bench, key: str) -> None:
    written = _up_to_root(bench.proj) + SHADOW.lstrip("/")
    case.describe(
        "recipe",
        f"{key} names {SHADOW} (through '..'); its bytes would be installed in the image as a keyring",
        f"refused before any request: one line naming {key} and the path",
    )
    table = (
        f'[archive]\nkeyring = "{written}"\n'
        if key == "archive.keyring"
        else f'[[repositories]]\nurl = "http://127.0.0.1:9/x"\nsuites = ["stable"]\nkeyring = "{written}"\n'
    )
    recipe = bench.write("app.toml", 'extends = "debian-slim"\n' + table)
    case.saw(bench.build(recipe).refused(str(recipe), key, SHADOW, "outside"))


def test_an_extended_recipe_is_confined_to_its_own_directory(case: Case, bench: Bench) -> None:
    case.describe(
        "recipe",
        "a recipe in base/ (extended by one in proj/) names ../proj/app.conf: inside the child's directory, "
        "outside its own",
        "refused: each recipe's paths are confined to the directory of the file that names them",
    )
    (bench.proj / "app.conf").write_text("setting=1\n")
    base = bench.root / "base"
    base.mkdir()
    (base / "base.toml").write_text(FILES.format("../proj/app.conf"))
    child = bench.write("child.toml", 'extends = "../base/base.toml"\n')
    case.saw(bench.build(child).refused(str(base / "base.toml"), "files[0].source", "outside", str(base)))


def test_allow_path_widens_the_confinement(case: Case, bench: Bench) -> None:
    case.describe(
        "recipe",
        "a recipe naming a file in a directory beside its own, built with --allow-path DIR, then with "
        "$BOOTSTRAP_ALLOW_PATH",
        "refused without; with either, the recipe is accepted and the build goes on to the mirror",
    )
    outside = bench.root / "shared-data"
    outside.mkdir()
    (outside / "app.conf").write_text("setting=1\n")
    recipe = bench.write("app.toml", FILES.format(outside / "app.conf"))
    bench.build(recipe).refused("files[0].source", str(outside / "app.conf"))
    flag = bench.build(recipe, "--allow-path", str(outside))
    env = bench.build(recipe, BOOTSTRAP_ALLOW_PATH=f"{bench.scratch}:{outside}")
    for attempt in (flag, env):
        assert attempt.proc.returncode != 0 and "outside" not in attempt.proc.stderr, attempt.proc.stderr
        assert attempt.requests, "the build did not go on to the mirror"
    shown = bench.plain("show", str(recipe), "--allow-path", str(outside))
    assert json.loads(shown.proc.stdout)["files"][0]["source"] == str(outside / "app.conf")
    case.saw(f"accepted with --allow-path and with the variable: the mirror was asked for {flag.requests[0]}")


def test_verify_confines_the_recipe_it_is_given(case: Case, bench: Bench) -> None:
    case.describe(
        "recipe",
        f"`verify DIR --recipe R` where R copies {SHADOW} (verify never takes such a recipe from DIR itself)",
        "refused before any request and before DIR is read, as for a build: only --allow-path widens it",
    )
    out = bench.root / "given"
    out.mkdir()
    thief = bench.write("thief.toml", f'extends = "debian-slim"\n[[files]]\nsource = "{SHADOW}"\ndest = "/x"\n')
    attempt = bench.run("verify", str(out), "--recipe", str(thief))
    case.saw(attempt.refused(str(thief), "files[0].source", SHADOW, "outside the recipe's directory"))


# --- 9: a recipe another user planted ----------------------------------------------------------------------


@pytest.fixture
def planter() -> Iterator[User]:
    if os.geteuid() != 0:
        pytest.skip("making a user needs root")
    user = make_user("bsplant", subids=False)
    yield user
    remove_user(user)


@pytest.fixture
def shared() -> Iterator[Path]:
    """A world-writable sticky directory, as /tmp."""
    d = Path(tempfile.mkdtemp(prefix="bootstrap-shared-"))
    d.chmod(0o1777)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _plant(user: User, path: Path, text: str) -> None:
    """Write `path` as `user`, for real (the file is theirs)."""
    subprocess.run(
        ["setpriv", f"--reuid={user.uid}", f"--regid={user.gid}", "--init-groups", "--", "sh", "-c", f"cat > {path}"],
        input=text,
        text=True,
        check=True,
    )
    assert path.stat().st_uid == user.uid


PLANTED = 'description = "planted"\n[[customize]]\nrun = "echo planted:x:0:0::/:/bin/sh >> /etc/passwd"\n'


def test_extends_by_name_skips_no_check_in_the_recipes_own_directory(
    case: Case, bench: Bench, planter: User, shared: Path
) -> None:
    case.describe(
        "trust",
        'another user plants debian-static.toml beside an innocent recipe (extends = "debian-static") in a '
        "world-writable sticky directory; root builds the innocent recipe",
        "refused before any request: one line naming the planted file and its owner",
    )
    innocent = shared / "innocent.toml"
    innocent.write_text('extends = "debian-static"\ndescription = "innocent"\n')
    shown = bench.plain("show", str(innocent))
    assert shown.proc.returncode == 0 and "warning" not in shown.proc.stderr, shown.proc.stderr
    planted = shared / "debian-static.toml"
    _plant(planter, planted, PLANTED)
    error = bench.build(innocent).refused(
        f"{innocent}: extends 'debian-static': recipe {planted} is not trusted",
        f"owned by user {planter.name} (uid {planter.uid})",
    )
    case.saw(error)


def test_a_fleet_names_a_recipe_another_user_can_change(case: Case, bench: Bench, planter: User, shared: Path) -> None:
    case.describe(
        "trust",
        "a fleet file (root's own) names a recipe by path in a shared directory, owned by another user",
        "refused before any request: one line naming the recipe and its owner",
    )
    theirs = shared / "theirs.toml"
    _plant(planter, theirs, 'extends = "debian-static"\n' + PLANTED.split("\n", 1)[1])
    fleet = bench.write("fleet.toml", f'[[image]]\nrecipe = "{theirs}"\nsuites = ["stable"]\n')
    attempt = bench.run("fleet", str(fleet), "-o", str(bench.root / "out"))
    case.saw(attempt.refused(f"recipe {theirs} is not trusted", f"owned by user {planter.name}"))
