"""`[rpm] links`: the symbolic links an official image's build makes after the install (/etc/localtime, systemd's
default.target, the units it masks), made in the tree by the finish step, confined to it, never followed; the
recipe's paths absolute, its targets usable; each shipped recipe's links reach the job as it states them."""

import os
from pathlib import Path

import pytest

from bootstrap.build import families, recipe
from bootstrap.build.plan import Options, make_plan
from bootstrap.errors import BootstrapError
from bootstrap.family.interface import Target
from bootstrap.rpm.family import RpmFamily
from bootstrap.rpm.job import RpmJob
from bootstrap.rpm.options import JobOptions
from bootstrap.rpm.selection import select
from tests.fixtures.gpg import GpgKey
from tests.rpm.conftest import EPOCH
from tests.rpm.test_family import write_recipe

MASK = "/etc/systemd/system/getty.target"
LINKS = {
    "/etc/localtime": "../usr/share/zoneinfo/UTC",
    "/etc/systemd/system/default.target": "/usr/lib/systemd/system/multi-user.target",
    MASK: "/dev/null",
}


def _finish(root: Path, links: dict[str, str]) -> None:
    RpmJob(select([]), {}, Target(root, "x86_64", EPOCH), JobOptions(links=links)).finish()


def test_links_are_made_replacing_what_is_there(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/localtime").write_text("a file the packages left\n")
    _finish(root, LINKS)
    for path, target in LINKS.items():
        assert os.readlink(root / path.lstrip("/")) == target
    # made again over the links of an earlier finish, as over files
    _finish(root, {**LINKS, "/etc/localtime": "../usr/share/zoneinfo/Europe/Paris"})
    assert os.readlink(root / "etc/localtime") == "../usr/share/zoneinfo/Europe/Paris"


def test_a_link_is_never_made_outside_the_tree(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "etc").symlink_to(outside)  # absolute: inside the image it is `outside` below the root
    _finish(root, LINKS)
    assert not any(outside.iterdir())
    assert os.readlink(root / str(outside).lstrip("/") / "systemd/system/getty.target") == "/dev/null"


def test_a_directory_is_not_replaced_by_a_link(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc/systemd/system/getty.target").mkdir(parents=True)
    with pytest.raises(BootstrapError, match=f"rpm.links: {MASK} is a directory in the image"):
        _finish(root, {MASK: "/dev/null"})
    assert (root / MASK.lstrip("/")).is_dir()


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ('[rpm.links]\n"etc/localtime" = "x"\n', "is not an absolute path"),
        ('[rpm.links]\n"/etc/../localtime" = "x"\n', "is not an absolute path"),
        ('[rpm.links]\n"/etc/localtime" = ""\n', "has no usable target"),
    ],
)
def test_link_paths_and_targets_are_checked(tmp_path: Path, gpg_key: GpgKey, body: str, said: str) -> None:
    with pytest.raises(BootstrapError, match=said):
        recipe.load(str(write_recipe(tmp_path, gpg_key, body)), given=True)


@pytest.mark.parametrize("name", ["almalinux", "almalinux-minimal", "almalinux-micro", "rockylinux"])
def test_shipped_recipes_hand_their_links_to_the_job(name: str, tmp_path: Path) -> None:
    r = recipe.load(name)
    assert dict(r.rpm_links)["/etc/localtime"] == "../usr/share/zoneinfo/UTC"
    plan = make_plan(r, Options(arch="amd64", mirror="http://127.0.0.1:9/tree", cache_dir=tmp_path))
    family = families.family_for(plan)
    assert isinstance(family, RpmFamily)
    assert family.options("amd64").links == dict(r.rpm_links)
