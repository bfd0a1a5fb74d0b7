"""The declarative steps of a scriptless build, each on a tree of its own (recording owners in an override
table, as such a build does): accounts, declared entries, CA bundle, status.d, and the steps a recipe takes."""

import dataclasses
import hashlib
import stat
from pathlib import Path

import pytest

from bootstrap.build import recipe, scriptless, steps
from bootstrap.build.recipe import GroupSpec, UserSpec
from bootstrap.deb import dpkgdb
from bootstrap.deb.unpack import Unpacked
from bootstrap.errors import RecipeError
from bootstrap.host.overrides import Overrides
from bootstrap.host.tree import Tree
from tests.fixtures.certs import self_signed
from tests.fixtures.records import package

EPOCH = 1_750_000_000


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    root = tmp_path / "root"
    root.mkdir()
    return Tree(root, Overrides(default_owner=(0, 0)))


def attrs(tree: Tree, path: str) -> tuple[int, int, int]:
    st = tree.lstat(path)
    assert st is not None, path
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


def scriptless_recipe(tmp_path: Path, body: str = "") -> recipe.Recipe:
    path = tmp_path / "mine.toml"
    path.write_text(f'scripts = false\n[image]\ntag = "mine:x"\n{body}')
    return recipe.load(str(path))


def test_accounts_from_nothing(tree: Tree, tmp_path: Path) -> None:
    rec = scriptless_recipe(tmp_path)
    app = {"groups": (GroupSpec("app", 10001),), "users": (UserSpec("app", 10001, group="app"),)}
    rec = dataclasses.replace(rec, **app)  # type: ignore[arg-type]
    scriptless.write_accounts(tree, rec, EPOCH)
    passwd = (tree.read("etc/passwd") or b"").decode().splitlines()
    assert passwd[:3] == [
        "root:x:0:0:root:/root:/sbin/nologin",
        "nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin",
        "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin",
    ]
    assert passwd[3].startswith("app:x:10001:10001:"), "the recipe's users are added as useradd would"
    group = (tree.read("etc/group") or b"").decode()
    assert "nonroot:x:65532:\n" in group and "nogroup:x:65534:\n" in group and "app:x:10001:" in group
    shadow = (tree.read("etc/shadow") or b"").decode().splitlines()
    assert shadow[0] == f"root:*:{EPOCH // 86400}:0:99999:7:::"
    assert attrs(tree, "etc/shadow") == (0, 0, 0o640) and attrs(tree, "etc/passwd") == (0, 0, 0o644)
    assert attrs(tree, "home/nonroot") == (65532, 65532, 0o700) and attrs(tree, "root") == (0, 0, 0o700)
    assert tree.lstat("nonexistent") is None
    assert attrs(tree, "home/app")[:2] == (10001, 10001)


def test_declared_entries_and_the_effects_of_present_packages(tree: Tree) -> None:
    tree.mkdir("var/run")  # base-files ships a directory; its script makes it a link
    made = scriptless.declare(tree, ["tzdata", "base-files"], "debian")
    assert attrs(tree, "tmp") == (0, 0, 0o1777) and attrs(tree, "var/tmp") == (0, 0, 0o1777)
    assert b"hosts:          files dns\n" in (tree.read("etc/nsswitch.conf") or b"")
    localtime = tree.lstat("etc/localtime")
    assert localtime is not None and stat.S_ISLNK(localtime.st_mode)
    assert tree.resolve("etc/localtime", follow_last=True) == "usr/share/zoneinfo/Etc/UTC"
    assert tree.resolve("var/run", follow_last=True) == "run" and attrs(tree, "run/lock") == (0, 0, 0o1777)
    assert "etc/dpkg/origins/default" in made
    assert tree.resolve("etc/dpkg/origins/default", follow_last=True) == "etc/dpkg/origins/debian"


def test_the_origins_link_names_the_distribution_of_the_family(tree: Tree) -> None:
    scriptless.declare(tree, ["base-files"], "ubuntu")
    assert tree.resolve("etc/dpkg/origins/default", follow_last=True) == "etc/dpkg/origins/ubuntu"


def test_effects_of_absent_packages_are_not_made(tree: Tree) -> None:
    scriptless.declare(tree, ["netbase"], "debian")
    assert tree.lstat("etc/localtime") is None and tree.lstat("run/lock") is None
    assert tree.lstat("tmp") is not None


def test_ca_bundle_as_update_ca_certificates_makes_it(tree: Tree, tmp_path: Path) -> None:
    b = self_signed(tmp_path / "b.crt", "B root")
    a = self_signed(tmp_path / "a.crt", "A root")
    local = self_signed(tmp_path / "local.crt", "Local root")
    tree.write("usr/share/ca-certificates/mozilla/B_Root.crt", b)
    tree.write("usr/share/ca-certificates/mozilla/A_Root.crt", a.rstrip(b"\n"))  # no final newline
    tree.write("usr/share/ca-certificates/mozilla/README", b"not a certificate")
    tree.write("usr/local/share/ca-certificates/company/local.crt", local)
    assert scriptless.ca_bundle(tree) == 3
    assert tree.read(scriptless.CA_BUNDLE) == a + b + local, "packaged ones sorted, a newline ensured, then local"
    assert attrs(tree, scriptless.CA_BUNDLE) == (0, 0, 0o644)


def test_a_local_certificate_that_is_not_pem_is_refused(tree: Tree) -> None:
    tree.write("usr/local/share/ca-certificates/der.crt", b"\x30\x82\x01\x0a binary")
    with pytest.raises(RecipeError, match="not a PEM certificate"):
        scriptless.ca_bundle(tree)


def test_no_certificates_no_bundle(tree: Tree) -> None:
    assert scriptless.ca_bundle(tree) == 0 and tree.lstat(scriptless.CA_BUNDLE) is None


def test_status_d_carries_control_and_md5sums(tree: Tree) -> None:
    control = b"Package: hello\nVersion: 1.0\nArchitecture: amd64\nDescription: hi\n"
    shipped = Unpacked(package("hello"), {"control": control, "md5sums": b"abc  usr/bin/hello\n"}, ("/.",), ())
    tree.write("usr/share/bare/data", b"payload")
    bare = Unpacked(package("bare"), {"control": b"Package: bare\n"}, ("/.", "/usr", "/usr/share/bare/data"), ())
    assert dpkgdb.write_status_d(tree, [shipped, bare]) == ["bare", "hello"]
    assert tree.read("var/lib/dpkg/status.d/hello") == control
    assert tree.read("var/lib/dpkg/status.d/hello.md5sums") == b"abc  usr/bin/hello\n"
    digest = hashlib.md5(b"payload").hexdigest()
    assert tree.read("var/lib/dpkg/status.d/bare.md5sums") == f"{digest}  usr/share/bare/data\n".encode()
    assert tree.lstat("var/lib/dpkg/status") is None


def test_a_scriptless_recipe_takes_the_declarative_steps_and_needs_no_root(tmp_path: Path) -> None:
    rec = scriptless_recipe(tmp_path)
    names = [name for name, _ in steps.chosen(rec)]
    assert names == ["unpack", "accounts", "declare", "ca-certificates", "ld.so.cache", "status.d", "notices"]
    assert not steps.needs_root(rec) and steps.overrides_for(rec).owners
    slim = recipe.load("debian-slim")
    assert [name for name, _ in steps.chosen(slim)] == ["unpack", "configure", "finish", "notices"]
    assert [name for name, _ in steps.chosen(slim, foreign=True)][:3] == ["unpack", "native", "configure"]
    assert "native" not in [name for name, _ in steps.chosen(rec, foreign=True)], "nothing of the image runs"
    assert steps.needs_root(slim) and not steps.overrides_for(slim).owners, "a root build records devices only"


def test_hooks_need_scripts(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="scripts = false"):
        scriptless_recipe(tmp_path, '[[customize]]\nrun = "true"\n')


def test_the_bundled_distroless_recipes(tmp_path: Path) -> None:
    static, cc = recipe.load("debian-static"), recipe.load("debian-cc-nonroot")
    assert not static.scripts and static.priorities == () and not static.essential
    assert "debconf" in static.ignore_depends and static.cmd == ()
    assert cc.include == (
        "base-files",
        "netbase",
        "tzdata",
        "media-types",
        "ca-certificates",
        "libc6",
        "libssl3",
        "libgcc-s1",
        "libstdc++6",
        "libgomp1",
    )
    assert (cc.user, cc.workdir, cc.tag) == ("65532", "/home/nonroot", "debian-cc:{codename}-nonroot")
    shown = static.as_dict()
    assert shown["scripts"] is False and shown["packages"]["ignore-depends"] == list(static.ignore_depends)
    again = recipe.from_data(shown, "debian-static", "build.json")
    assert again == dataclasses.replace(static, source="build.json")
    assert "scripts" not in recipe.load("debian-slim").as_dict(), "recipes with scripts record what they did"


def test_scriptless_accounts_are_checked_against_the_scriptless_base(tmp_path: Path) -> None:
    daemon = scriptless_recipe(tmp_path, '[[users]]\nname = "daemon"\nuid = 1\n')
    assert [u.name for u in daemon.users] == ["daemon"], "base-passwd's daemon is not in a scriptless image"
    with pytest.raises(RecipeError, match="nonroot is already taken"):
        scriptless_recipe(tmp_path, '[[users]]\nname = "nonroot"\nuid = 1000\n')
    slim = tmp_path / "slim.toml"
    slim.write_text('extends = "debian-slim"\n[[users]]\nname = "daemon"\nuid = 9\n')
    with pytest.raises(RecipeError, match="daemon is already taken"):
        recipe.load(str(slim))
