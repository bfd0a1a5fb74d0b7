"""The last resort of mirror discovery: the default mirror a host's debootstrap suite script names, read (never
run) from fake script directories written in the shape of debootstrap's own."""

from pathlib import Path

import pytest

from bootstrap.deb import debootstrap
from bootstrap.deb.distros import DISTROS, Distro
from bootstrap.deb.mirrors import Mirrors, discover
from bootstrap.errors import MirrorError
from tests.deb.test_mirrors import apt  # noqa: F401 - the empty apt configuration fixture

UBUNTU = DISTROS[Distro.UBUNTU]
DEBIAN = DISTROS[Distro.DEBIAN]

COMMON = """\
case $ARCH in
  amd64|i386)
\tcase $SUITE in
\t  gutsy|hardy|zesty)
\tdefault_mirror http://old.example.test/ubuntu
\t  ;;
\t  *)
\tdefault_mirror http://main.example.test/ubuntu
\t;;
\tesac
\t;;
  sparc)
\tcase $SUITE in
\t  gutsy)
\tdefault_mirror http://old.example.test/ubuntu
\t;;
\t  *)
\tdefault_mirror http://ports.example.test/ubuntu-ports
\t;;
\tesac
\t;;
  *)
\tdefault_mirror http://ports.example.test/ubuntu-ports  # every other architecture
\t;;
esac
mirror_style release
keyring /usr/share/keyrings/ubuntu-archive-keyring.gpg

case $ARCH in
\talpha|ia64) LIBC="libc6.1" ;;
\t*)          LIBC="libc6" ;;
esac
"""


@pytest.fixture
def scripts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, apt: Path) -> Path:  # noqa: F811
    """A debootstrap scripts directory: the common script `gutsy`, a suite linked to it, an old suite with a
    script of its own, and no apt sources at all."""
    d = tmp_path / "scripts"
    d.mkdir()
    (d / "gutsy").write_text(COMMON)
    (d / "jammy").symlink_to("gutsy")
    (d / "warty").write_text("default_mirror http://older.example.test/ubuntu\n")
    monkeypatch.setenv("BOOTSTRAP_DEBOOTSTRAP_DIR", str(d))
    return d


@pytest.mark.parametrize(
    ("suite", "arch", "expected"),
    [
        ("noble", "amd64", "http://main.example.test/ubuntu"),
        ("noble", "i386", "http://main.example.test/ubuntu"),
        ("zesty", "amd64", "http://old.example.test/ubuntu"),
        ("noble", "arm64", "http://ports.example.test/ubuntu-ports"),
        ("noble", "sparc", "http://ports.example.test/ubuntu-ports"),
        ("gutsy", "sparc", "http://old.example.test/ubuntu"),
    ],
)
def test_the_case_blocks_choose_as_the_shell_would(suite: str, arch: str, expected: str) -> None:
    assert debootstrap.default_mirror(COMMON, suite, arch) == expected


def test_no_default_mirror_in_a_script_is_none() -> None:
    text = "mirror_style release\n# default_mirror http://x.example.test\n"
    assert debootstrap.default_mirror(text, "noble", "amd64") is None


def test_a_suite_without_its_own_script_takes_the_common_one(scripts: Path) -> None:
    found = debootstrap.mirror_for("resolute", "arm64", "gutsy")
    assert found == ("http://ports.example.test/ubuntu-ports", scripts / "gutsy")
    assert debootstrap.mirror_for("jammy", "amd64", "gutsy") == ("http://main.example.test/ubuntu", scripts / "jammy")
    assert debootstrap.mirror_for("warty", "amd64", "gutsy") == ("http://older.example.test/ubuntu", scripts / "warty")
    assert debootstrap.mirror_for("../gutsy", "amd64", "") is None, "a suite name is never a path"
    assert debootstrap.mirror_for("resolute", "amd64", "") is None


def test_discovery_ends_with_the_debootstrap_default_and_security_defaults_to_it(scripts: Path) -> None:
    assert discover(UBUNTU, None, None, "noble", "amd64") == Mirrors(
        "http://main.example.test/ubuntu", "http://main.example.test/ubuntu"
    )
    assert discover(UBUNTU, None, None, "noble", "arm64").main == "http://ports.example.test/ubuntu-ports"
    separate = discover(UBUNTU, None, "http://security.example.test/ubuntu", "noble", "amd64")
    assert separate == Mirrors("http://main.example.test/ubuntu", "http://security.example.test/ubuntu")


def test_options_environment_and_ubuntu_apt_sources_come_first(
    scripts: Path,
    monkeypatch: pytest.MonkeyPatch,
    apt: Path,  # noqa: F811
) -> None:
    assert discover(UBUNTU, "http://given.example.test/ubuntu", None, "noble", "amd64").main == (
        "http://given.example.test/ubuntu"
    )
    monkeypatch.setenv(UBUNTU.mirror_env, "http://env.example.test/ubuntu")
    assert discover(UBUNTU, None, None, "noble", "amd64").main == "http://env.example.test/ubuntu"
    monkeypatch.delenv(UBUNTU.mirror_env)
    (apt / "sources.list.d/ubuntu.sources").write_text(
        "Types: deb\nURIs: http://host.example.test/ubuntu\nSuites: noble noble-updates\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg\n\n"
        "Types: deb\nURIs: http://host-security.example.test/ubuntu\nSuites: noble-security\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg\n"
    )
    assert discover(UBUNTU, None, None, "noble", "amd64") == Mirrors(
        "http://host.example.test/ubuntu", "http://host-security.example.test/ubuntu"
    )


def test_a_distribution_without_the_fallback_still_says_what_is_missing(scripts: Path) -> None:
    with pytest.raises(MirrorError, match="no debian mirror given"):
        discover(DEBIAN, None, None, "trixie", "amd64")
    (scripts / "gutsy").write_text("mirror_style release\n")
    with pytest.raises(MirrorError, match=f"nor in {scripts}"):
        discover(UBUNTU, None, None, "noble", "amd64")


def test_a_bad_url_in_a_script_is_refused_with_its_origin(scripts: Path) -> None:
    (scripts / "gutsy").write_text("default_mirror ftp://old.example.test/ubuntu\n")
    with pytest.raises(MirrorError, match="debootstrap script"):
        discover(UBUNTU, None, None, "noble", "amd64")
