"""Users' own recipes: where they are found, how `extends` and local paths resolve, how keys merge, and
the one-line errors for what does not hold together (before anything is downloaded)."""

import tomllib
from pathlib import Path

import pytest

from bootstrap.build.recipe import load
from bootstrap.build.recipe_schema import template
from bootstrap.errors import RecipeError


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


APP = """\
extends = "debian-slim"
[packages]
include = ["curl"]
[[groups]]
name = "app"
gid = 10001
[[users]]
name = "app"
uid = 10001
group = "app"
[[files]]
source = "files/app.conf"
dest = "/etc/app/app.conf"
mode = "0640"
owner = "app:app"
[image]
user = "app"
workdir = "/srv/app"
env = ["APP_ENV=production", "PATH=/opt/app/bin:/usr/bin:/bin"]
exposed-ports = ["8080/tcp"]
[[customize]]
run = "echo hi > /etc/motd"
"""


@pytest.fixture
def app(tmp_path: Path) -> Path:
    write(tmp_path / "proj/files/app.conf", "setting=1\n")
    return write(tmp_path / "proj/app.toml", APP)


def test_a_user_recipe_extends_a_bundled_one(app: Path) -> None:
    r = load(str(app))
    assert r.name == "app" and r.tag == "app:{codename}"
    assert r.include == ("apt", "curl"), "includes add to the parent's"
    assert "/usr/share/doc/*" in r.path_exclude, "the parent's filters are kept"
    assert r.env == ("APP_ENV=production", "PATH=/opt/app/bin:/usr/bin:/bin"), "env merges by name"
    assert [u.name for u in r.users] == ["app"] and r.groups[0].gid == 10001
    assert r.files[0].source == str(app.parent / "files/app.conf"), "sources are relative to the recipe"
    assert r.files[0].mode == 0o640 and r.files[0].owner == "app:app"
    assert (r.user, r.workdir, r.exposed_ports) == ("app", "/srv/app", ("8080/tcp",))
    assert r.customize[0].run == "echo hi > /etc/motd"


def test_extends_and_sources_resolve_relative_to_the_file_that_names_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "base/files/ca.pem", "cert\n")
    write(tmp_path / "base/base.toml", 'extends = "debian-slim"\n[[files]]\nsource = "files/ca.pem"\ndest = "/x"\n')
    write(tmp_path / "team/child.toml", 'extends = "../base/base.toml"\n[[files]]\nsource = "c"\ndest = "/y"\n')
    write(tmp_path / "team/c", "c\n")
    monkeypatch.chdir(tmp_path)
    r = load("team/child.toml")
    assert [f.source for f in r.files] == [str(tmp_path / "base/files/ca.pem"), str(tmp_path / "team/c")]
    assert [f.dest for f in r.files] == ["/x", "/y"], "arrays of tables add up"


def test_names_are_looked_up_in_recipes_then_config_then_bundled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    write(tmp_path / "config/bootstrap/recipes/mine.toml", 'description = "from config"\n')
    assert load("mine").description == "from config"
    write(tmp_path / "recipes/mine.toml", 'description = "from ./recipes"\n')
    assert load("mine").description == "from ./recipes"
    write(tmp_path / "recipes/debian-slim.toml", 'extends = "debian"\ndescription = "shadowed"\n')
    assert load("debian-slim").description == "shadowed", "./recipes comes before the bundled ones"


@pytest.mark.parametrize(
    ("text", "message", "hint"),
    [
        ('extends = "debian-slim"\n[pakages]\ninclude = ["x"]\n', "unknown key 'pakages'", "did you mean 'packages'?"),
        ("[image]\nuser = 3\n", "image.user must be a string, not an integer", "user ="),
        ('[[users]]\nname = "a"\nuid = 10001\ngroup = "nope"\n', "group 'nope' does not exist", "[[groups]]"),
        ('[[users]]\nname = "a"\nuid = 0\n', "uid 0 is already taken", "another"),
        ('[[users]]\nname = "a"\nuid = 7000\n[[users]]\nname = "b"\nuid = 7000\n', "uid 7000 is already taken", ""),
        ('[[users]]\nname = "a"\n', "users\\[0\\] has no uid", "uid = 10001"),
        ('[[files]]\nsource = "absent"\ndest = "/x"\n', "files\\[0\\].source .*absent does not exist", "relative"),
        ('[[files]]\nsource = "bad.toml"\ndest = "x"\n', "is not absolute", ""),
        ('[[files]]\nsource = "bad.toml"\ndest = "/x"\nmode = "rw"\n', "mode must be an octal mode", ""),
        ('[[files]]\nsource = "bad.toml"\ndest = "/x"\nowner = "ghost"\n', "no user named 'ghost'", ""),
        ('[image]\nuser = "ghost"\n', "no user named 'ghost'", "[[users]]"),
        ('[[repositories]]\nurl = "x"\nsuites = ["s"]\nkeyring = "k.asc"\n', "url\\) is not valid", "http://HOST"),
        ('[[customize]]\nrun = ["x"]\n', "customize\\[0\\].run must be a string", ""),
    ],
)
def test_what_does_not_hold_together_is_one_line(tmp_path: Path, text: str, message: str, hint: str) -> None:
    path = write(tmp_path / "bad.toml", text)
    with pytest.raises(RecipeError, match=message) as err:
        load(str(path))
    assert str(path) in err.value.message and "\n" not in err.value.message
    assert hint in err.value.hint


def test_the_starting_recipe_is_valid_and_documents_every_key(tmp_path: Path) -> None:
    text = template("debian-slim")
    tomllib.loads(text)
    r = load(str(write(tmp_path / "fresh.toml", text)))
    assert r.include == load("debian-slim").include
    for key in ("[[users]]", "[[files]]", "[[customize]]", "[[repositories]]", "exposed-ports", "stop-signal"):
        assert key in text


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ('name = "Bad"\nuid = 10001', "not a valid account name"),
        ('name = "app"\nuid = 10001\ncomment = "x:0:0"', "has ':' or a control character"),
        ('name = "app"\nuid = 10001\nshell = "bin/sh"', "is not an absolute path"),
        ('name = "app"\nuid = 10001\ncomment = "a\\nmallory:x:0:0::/:/bin/sh"', "control character"),
    ],
)
def test_account_fields_cannot_break_the_account_files(tmp_path: Path, entry: str, message: str) -> None:
    path = write(tmp_path / "u.toml", f"[[users]]\n{entry}\n")
    with pytest.raises(RecipeError, match=message):
        load(str(path))


def test_a_bare_integer_mode_is_refused(tmp_path: Path) -> None:
    write(tmp_path / "f", "x")
    path = write(tmp_path / "m.toml", '[[files]]\nsource = "f"\ndest = "/f"\nmode = 644\n')
    with pytest.raises(RecipeError, match="octal mode written as a string"):
        load(str(path))


def test_a_recipes_directory_others_can_write_is_not_trusted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "recipes/hostname", "planted\n")
    write(tmp_path / "recipes/debian.toml", 'description = "planted"\n[[files]]\nsource = "hostname"\ndest = "/x"\n')
    (tmp_path / "recipes").chmod(0o777)
    assert load("debian").description != "planted"
    (tmp_path / "recipes").chmod(0o755)
    assert load("debian").description == "planted", "the caller's own ./recipes is used"


def test_keyrings_may_be_the_hosts_public_ones_and_the_bundled_recipes_keep_working(tmp_path: Path) -> None:
    from bootstrap.build.recipe import available, load_recorded
    from bootstrap.build.recipe_trust import keyring_dirs

    host = next((k for d in keyring_dirs()[:1] if d.is_dir() for k in sorted(d.glob("*.gpg"))), None)
    if host is not None:
        path = write(
            tmp_path / "r.toml", f'[[repositories]]\nurl = "http://127.0.0.1:9/x"\nsuites = ["s"]\nkeyring = "{host}"\n'
        )
        assert load(str(path)).repositories[0].keyring == str(host), "a keyring of /usr/share/keyrings is allowed"
    for name in available():
        shown = load(name).as_dict()
        assert load_recorded(shown, "build.json", ()).as_dict() == shown, f"{name}: its recorded copy verifies"
    with pytest.raises(RecipeError, match=r"files\[0\]\.source '/etc/hostname' is outside the directories"):
        load_recorded({**load("debian").as_dict(), "files": [{"source": "/etc/hostname", "dest": "/x"}]}, "b", ())


@pytest.mark.parametrize(
    ("mode_dir", "mode_file", "why"),
    [(0o777, 0o644, "other users can write to its directory"), (0o755, 0o666, "other users can write to it")],
)
def test_a_recipe_others_can_change_is_not_extended(tmp_path: Path, mode_dir: int, mode_file: int, why: str) -> None:
    shared = tmp_path / "shared"
    child = write(shared / "child.toml", 'extends = "debian-static"\n')
    base = write(shared / "debian-static.toml", 'description = "planted"\n')
    base.chmod(mode_file)
    shared.chmod(mode_dir)
    with pytest.raises(RecipeError, match=f"{child}: extends 'debian-static': recipe {base} is not trusted: {why}"):
        load(str(child), given=True)
    shared.chmod(0o1777)
    base.chmod(0o644)
    assert load(str(child), given=True).description == "planted", "sticky: only the owner can replace the file"
