"""Recipes: the shipped ones, `extends`, validation errors, and loading by path."""

from pathlib import Path

import pytest

from bootstrap.build.recipe import Recipe, available, load
from bootstrap.deb.distros import Distro
from bootstrap.errors import RecipeError


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_debian_recipe() -> None:
    r = load("debian")
    assert isinstance(r, Recipe)
    assert (r.name, r.distribution, r.suite, r.components) == ("debian", Distro.DEBIAN, "stable", ("main",))
    assert (r.priorities, r.essential, r.include, r.exclude) == (("required",), True, ("apt",), ())
    assert r.prefer == ("usr-is-merged",)
    assert (r.path_exclude, r.path_include) == ((), ())
    assert r.tag == "debian:{codename}"
    assert r.cmd == ("bash",)
    assert r.env == ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",)
    assert Path(r.source).name == "debian.toml"


def test_debian_slim_extends_debian() -> None:
    base, slim = load("debian"), load("debian-slim")
    assert slim.name == "debian-slim"
    assert slim.description != base.description
    assert slim.tag == "debian:{codename}-slim"
    # inherited unchanged
    assert (slim.include, slim.prefer, slim.cmd, slim.env) == (base.include, base.prefer, base.cmd, base.env)
    assert "/usr/share/doc/*" in slim.path_exclude
    assert "/usr/share/doc/*/copyright" in slim.path_include
    assert len(slim.path_exclude) == 9
    assert len(slim.path_include) == 9


def test_available_lists_the_shipped_recipes() -> None:
    assert {"debian", "debian-slim"} <= set(available())
    assert available() == sorted(available())


def test_as_dict_round_trips_the_settings() -> None:
    d = load("debian-slim").as_dict()
    assert d["name"] == "debian-slim"
    assert d["distribution"] == "debian"
    assert d["packages"]["include"] == ["apt"]
    assert d["filters"]["path-include"][0] == "/usr/share/doc/*/copyright"
    assert d["image"]["tag"] == "debian:{codename}-slim"


def test_load_by_path_with_extends_merging_tables(tmp_path: Path) -> None:
    path = write(
        tmp_path / "mine.toml",
        'extends = "debian"\nsuite = "trixie"\n'
        '[packages]\ninclude = ["ca-certificates"]\n'
        '[image]\nlabels = { "org.example.team" = "infra", "a" = "b" }\ncmd = ["sh"]\n',
    )
    r = load(str(path))
    assert (r.name, r.suite, r.source) == ("mine", "trixie", str(path))
    # a table merges key by key; package includes add to the parent's, other lists replace
    assert r.include == ("apt", "ca-certificates")
    assert r.priorities == ("required",)
    assert r.prefer == ("usr-is-merged",)
    assert r.cmd == ("sh",)
    assert r.tag == "mine:{codename}", "a recipe's tag is its own: never inherited"
    assert r.labels == (("a", "b"), ("org.example.team", "infra"))


def test_defaults_of_a_minimal_recipe(tmp_path: Path) -> None:
    r = load(str(write(tmp_path / "tiny.toml", "")))
    assert (r.distribution, r.suite, r.components, r.priorities, r.essential) == (
        Distro.DEBIAN,
        "stable",
        ("main",),
        ("required",),
        True,
    )
    assert r.tag == "tiny:{codename}"
    assert r.include == r.exclude == r.prefer == ()


def test_two_level_extends(tmp_path: Path) -> None:
    write(tmp_path / "middle.toml", 'extends = "debian-slim"\n[packages]\nexclude = ["e2fsprogs"]\n')
    top = write(tmp_path / "top.toml", f'extends = "{tmp_path / "middle.toml"}"\nsuite = "testing"\n')
    r = load(str(top))
    assert (r.suite, r.exclude, r.tag) == ("testing", ("e2fsprogs",), "top:{codename}")
    assert "/usr/share/man/*" in r.path_exclude


def test_ubuntu_distribution(tmp_path: Path) -> None:
    r = load(str(write(tmp_path / "u.toml", 'distribution = "ubuntu"\nsuite = "noble"\n')))
    assert r.distribution == Distro.UBUNTU


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('sweet = "yes"\n', "unknown key 'sweet'"),
        ('[packages]\nincludes = ["x"]\n', "unknown key .*includes"),
        ("suite = 3\n", "suite must be a string, not an integer"),
        ('components = "main"\n', "components must be a list of strings, not a string"),
        ('[packages]\nessential = "yes"\n', "packages.essential must be true or false, not a string"),
        ('packages = "all"\n', "packages must be a table"),
        ('distribution = "gentoo"\n', "unknown distribution 'gentoo'"),
        ("suite = \n", "invalid TOML"),
    ],
)
def test_malformed_recipes(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path / "bad.toml", text)
    with pytest.raises(RecipeError, match=message) as err:
        load(str(path))
    assert str(path) in err.value.message
    assert err.value.hint


def test_unknown_key_suggests_the_nearest_or_lists_the_allowed(tmp_path: Path) -> None:
    with pytest.raises(RecipeError) as err:
        load(str(write(tmp_path / "bad.toml", '[image]\nexposed-port = ["80/tcp"]\n')))
    assert err.value.message.endswith("unknown key image.'exposed-port'")
    assert err.value.hint == "did you mean image.'exposed-ports'?"
    with pytest.raises(RecipeError) as err:
        load(str(write(tmp_path / "bad.toml", '[image]\nzzz = ["80"]\n')))
    assert err.value.hint.startswith("allowed here: annotations, cmd, entrypoint, env, exposed-ports, labels")


def test_unknown_recipe() -> None:
    with pytest.raises(RecipeError, match="unknown recipe 'nonesuch'") as err:
        load("nonesuch")
    assert "debian-slim" in err.value.hint


def test_missing_recipe_file(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="does not exist"):
        load(str(tmp_path / "absent.toml"))


def test_extends_an_unknown_recipe(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="unknown recipe 'nonesuch'"):
        load(str(write(tmp_path / "child.toml", 'extends = "nonesuch"\n')))


def test_extends_loop(tmp_path: Path) -> None:
    a, b = tmp_path / "a.toml", tmp_path / "b.toml"
    write(a, f'extends = "{b}"\n')
    write(b, f'extends = "{a}"\n')
    with pytest.raises(RecipeError, match="extend each other in a loop"):
        load(str(a))


def test_extends_itself(tmp_path: Path) -> None:
    me = tmp_path / "me.toml"
    write(me, f'extends = "{me}"\n')
    with pytest.raises(RecipeError, match="loop"):
        load(str(me))


def test_invalid_parent_is_reported_with_its_path(tmp_path: Path) -> None:
    parent = write(tmp_path / "parent.toml", "suite = 1\n")
    child = write(tmp_path / "child.toml", f'extends = "{parent}"\n')
    with pytest.raises(RecipeError, match=f"{parent}: suite must be a str"):
        load(str(child))


def test_release_tables_merge_over_the_recipe_as_extends_does(tmp_path: Path) -> None:
    """[release.<codename>]: merged over the recipe when that release is built (includes added, other keys
    replaced, tables key by key); a child's release tables merge over its parent's, release by release."""
    parent = write(
        tmp_path / "parent.toml",
        'distribution = "almalinux"\nsuite = "9"\n[packages]\ninclude = ["bash"]\n'
        '[rpm]\ninstall-langs = ["en"]\nweak-deps = false\n[rpm.write]\n"/etc/a" = "1\\n"\n'
        '[release."10".packages]\ninclude = ["tzdata"]\n[release."10".rpm]\ninstall-langs = []\n'
        '[release."10".rpm.write]\n"/etc/b" = "2\\n"\n',
    )
    child = write(
        tmp_path / "child.toml",
        f'extends = "{parent}"\n[release."10".rpm]\nweak-deps = true\n[release."9".packages]\nexclude = ["brotli"]\n',
    )
    r = load(str(child))
    ten, nine, other = r.for_release("10"), r.for_release("9"), r.for_release("8")
    assert ten.include == ("bash", "tzdata") and ten.install_langs == () and ten.weak_deps is True
    assert ten.rpm_write == (("/etc/a", "1\n"), ("/etc/b", "2\n")), "a table merges key by key"
    assert (nine.include, nine.exclude, nine.install_langs, nine.weak_deps) == (("bash",), ("brotli",), ("en",), False)
    assert (other.include, other.exclude, other.weak_deps) == (("bash",), (), False)
    assert ten.releases == nine.releases == other.releases == ()
    assert ten.name == r.name and ten.source == r.source and ten.tag == r.tag
    assert load(str(child)).as_dict()["release"]["10"] == {
        "packages": {"include": ["tzdata"]},
        "rpm": {"install-langs": [], "write": {"/etc/b": "2\n"}, "weak-deps": True},
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[release."10"]\nsuite = "9"\n', r"unknown key release\.10\.'suite'"),
        ('[release."10".image]\ncmd = ["sh"]\n', r"unknown key release\.10\.'image'"),
        ('[release."10".packages]\nincloode = ["x"]\n', r"unknown key release\.10\.packages\.'incloode'"),
        ('release = { "10" = 7 }\n', "release must be a table of tables"),
        ('[release."10".rpm]\nnodocs = "yes"\n', r"release\.10\.rpm\.nodocs must be true or false"),
        ('[release."10".rpm]\nremove = ["var/log"]\n', r"is not an absolute path \(building release 10"),
        ('[release."11".packages]\ninclude = ["x"]\n', r"\[release\.11\]: almalinux has no release '11'"),
        ('[release.latest.packages]\ninclude = ["x"]\n', "almalinux has no release 'latest'"),
    ],
)
def test_release_tables_are_checked_when_loaded(tmp_path: Path, text: str, message: str) -> None:
    """Every release's tables are checked as the recipe is loaded, whichever release is built."""
    path = write(tmp_path / "bad.toml", 'distribution = "almalinux"\nsuite = "9"\n' + text)
    with pytest.raises(RecipeError, match=message):
        load(str(path))


def test_a_debian_recipe_may_not_set_rpm_keys_for_one_release(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.toml", 'extends = "debian"\n[release.trixie.rpm]\nnodocs = false\n')
    with pytest.raises(RecipeError, match=r"rpm\.nodocs is not read when building debian .*release trixie"):
        load(str(path))


def test_a_recipe_s_own_setting_wins_over_its_parent_s_for_one_release(tmp_path: Path) -> None:
    """A child of centos-stream that sets install-langs, weak-deps and the /etc/localtime link keeps them for 9
    too (the parent's [release."9"] gives way); lists that add up keep both; its own release tables still apply."""
    child = write(
        tmp_path / "child.toml",
        'extends = "centos-stream"\n[packages]\ninclude = ["less"]\n'
        '[rpm]\ninstall-langs = ["en", "de"]\nweak-deps = true\n'
        '[rpm.links]\n"/etc/localtime" = "../usr/share/zoneinfo/Europe/Berlin"\n'
        '[release."9".rpm.links]\n"/etc/rhsm-host" = "/run/secrets/rhsm-9"\n',
    )
    for codename in ("9", "10"):
        r = load(str(child)).for_release(codename)
        assert (r.install_langs, r.weak_deps) == (("en", "de"), True), codename
        assert dict(r.rpm_links)["/etc/localtime"] == "../usr/share/zoneinfo/Europe/Berlin", codename
        assert "less" in r.include
    nine, ten = load(str(child)).for_release("9"), load(str(child)).for_release("10")
    assert dict(nine.rpm_links)["/etc/rhsm-host"] == "/run/secrets/rhsm-9"
    assert dict(ten.rpm_links)["/etc/rhsm-host"] == "/run/secrets/rhsm"
    assert "tzdata" in ten.include and "tzdata" not in nine.include, "the parent's list for 10 still adds up"
