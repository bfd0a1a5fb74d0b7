"""The bundled `ubuntu` recipe as data: its default user and the switch that leaves it out, the per-release
includes, the pinned archive keys, and the distribution's container settings, recorded in the lock."""

import os
from pathlib import Path

import pytest

from bootstrap.build import accounts, recipe
from bootstrap.build.inputs import inputs_of
from bootstrap.build.plan import Options, make_plan
from bootstrap.deb import tweaks
from bootstrap.deb.distros import DISTROS, Distro
from bootstrap.errors import RecipeError
from bootstrap.host.tree import Tree

UBUNTU = DISTROS[Distro.UBUNTU]


@pytest.fixture
def mirror(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """A mirror that make_plan accepts without looking anything up (nothing is fetched here)."""
    apt = tmp_path / "apt"
    (apt / "sources.list.d").mkdir(parents=True)
    monkeypatch.setenv("BOOTSTRAP_APT_DIR", str(apt))
    return "http://127.0.0.1:9/ubuntu"


def test_the_default_user_is_ubuntu_with_uid_1000() -> None:
    rec = recipe.load("ubuntu")
    assert rec.distribution == Distro.UBUNTU and rec.suite == "lts"
    (user,) = rec.accounts
    assert (user.name, user.uid, user.gid, user.group, user.shell, user.comment, user.default) == (
        "ubuntu",
        1000,
        None,
        None,
        "/bin/bash",
        "Ubuntu",
        True,
    )
    assert set(user.groups) == {"adm", "audio", "cdrom", "dialout", "dip", "floppy", "plugdev", "sudo", "video"}
    assert rec.for_release("noble").include == ("apt", "unminimize") and rec.for_release("resolute").include == ("apt",)


def test_no_default_user_leaves_uid_1000_free_and_is_recorded(mirror: str, tmp_path: Path) -> None:
    rec = recipe.load("ubuntu")
    kept = make_plan(rec, Options(suite="noble", mirror=mirror, cache_dir=tmp_path))
    dropped = make_plan(rec, Options(suite="noble", mirror=mirror, cache_dir=tmp_path, default_user=False))
    assert [u.uid for u in kept.recipe.accounts] == [1000]
    assert dropped.recipe.accounts == () and dropped.recipe.users == rec.users
    assert kept.recipe.as_dict()["default-user"] is True
    assert dropped.recipe.as_dict()["default-user"] is False, "build.json records the choice; verify replays it"
    assert inputs_of(kept.recipe)[0] != inputs_of(dropped.recipe)[0], "check sees it as a change"
    again = recipe.from_data(dropped.recipe.as_dict(), "ubuntu", "build.json")
    assert again.accounts == () and again.default_user is False


def test_a_recipe_can_turn_the_default_user_off_and_use_uid_1000(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text('extends = "ubuntu"\ndefault-user = false\n[[users]]\nname = "app"\nuid = 1000\n')
    assert [u.name for u in recipe.load(str(path)).accounts] == ["app"]
    path.write_text('extends = "ubuntu"\n[[users]]\nname = "app"\nuid = 1000\n')
    with pytest.raises(RecipeError, match="uid 1000 is already taken"):
        recipe.load(str(path))


def test_the_archive_keyring_is_an_input_of_the_lock() -> None:
    rec = recipe.load("ubuntu")
    assert Path(rec.archive_keyring).is_file() and rec.archive_keyring in rec.local_paths
    inputs = {(i.kind, i.name) for i in inputs_of(rec)}
    assert ("keyring", "archive") in inputs
    assert all(i.kind != "keyring" for i in inputs_of(recipe.load("debian-slim"))), "Debian's is the host's"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[archive]\nsigners = ["F6ECB376"]\n', "not a full fingerprint"),
        ('[archive]\nkeyring = "missing.asc"\n', "archive.keyring .* does not exist"),
        ('[release.noble.packages]\ninclude = "unminimize"\n', "release.noble.packages.include must be a list"),
        ('[packages]\ninclude-for = { noble = ["unminimize"] }\n', "packages.include-for is no longer read"),
        ('default-user = "no"\n', "default-user must be true or false"),
        ('[[users]]\nname = "x"\nuid = 2000\ncomment = 7\n', "comment must be a string"),
    ],
)
def test_new_keys_are_checked(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('extends = "ubuntu"\n' + text)
    with pytest.raises(RecipeError, match=message):
        recipe.load(str(path))


def test_the_distribution_table_names_ubuntus_settings() -> None:
    assert UBUNTU.settings is tweaks.UBUNTU and DISTROS[Distro.DEBIAN].settings is tweaks.DEBIAN
    assert UBUNTU.settings.filters_file == "excludes" and tweaks.DEBIAN.filters_file == "docker"
    assert UBUNTU.settings.sources_list is not None and tweaks.DEBIAN.sources_list is None
    assert {"noble", "resolute"} <= UBUNTU.codenames
    assert UBUNTU.is_ours("noble-security", "/usr/share/keyrings/ubuntu-archive-keyring.gpg")
    assert not UBUNTU.is_ours("noble", "/usr/share/keyrings/debian-archive-keyring.gpg")


@pytest.mark.skipif(os.geteuid() != 0, reason="files of other owners need root")
def test_the_default_user_is_written_as_useradd_would(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc/skel").mkdir(parents=True)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (root / "etc/group").write_text("root:x:0:\nadm:x:4:syslog\nsudo:x:27:\nshadow:x:42:\n")
    (root / "etc/shadow").write_text("root:*:20000:0:99999:7:::\n")
    (root / "etc/login.defs").write_text("HOME_MODE\t0750\n")
    user = recipe.UserSpec("ubuntu", 1000, shell="/bin/bash", groups=("adm", "sudo"), comment="Ubuntu")
    accounts.add(Tree(root), [], [user], 1_750_000_000)
    assert (root / "etc/passwd").read_text().splitlines()[-1] == "ubuntu:x:1000:1000:Ubuntu:/home/ubuntu:/bin/bash"
    group = (root / "etc/group").read_text().splitlines()
    assert "adm:x:4:syslog,ubuntu" in group and "sudo:x:27:ubuntu" in group and group[-1] == "ubuntu:x:1000:"
    assert oct((root / "home/ubuntu").stat().st_mode & 0o777) == "0o750"


def test_a_debian_suite_only_the_archive_resolves_cannot_choose_a_release_table(mirror: str, tmp_path: Path) -> None:
    """`stable` is resolved by the archive's Release file, after the plan: with tables for trixie the build cannot
    tell whether trixie's applies, so it says to name the release; a table keyed by the suite itself applies."""
    path = tmp_path / "mine.toml"
    path.write_text('extends = "debian"\n[release.trixie.packages]\ninclude = ["curl"]\n')
    rec = recipe.load(str(path))
    options = Options(suite="stable", mirror=mirror, cache_dir=tmp_path, insecure=True)
    with pytest.raises(RecipeError, match="suite 'stable' names a release only the archive tells") as caught:
        make_plan(rec, options)
    assert "--suite CODENAME" in caught.value.hint
    named = make_plan(rec, Options(suite="trixie", mirror=mirror, cache_dir=tmp_path, insecure=True))
    assert named.recipe.include == ("apt", "curl")
    path.write_text('extends = "debian"\n[release.stable.packages]\ninclude = ["wget"]\n')
    assert make_plan(recipe.load(str(path)), options).recipe.include == ("apt", "wget")
    path.write_text('extends = "debian"\n')
    assert make_plan(recipe.load(str(path)), options).recipe.include == ("apt",), "no tables: nothing to choose"
