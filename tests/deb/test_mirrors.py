"""Mirror discovery from options, the environment and fake apt configuration directories."""

from pathlib import Path

import pytest

from bootstrap.deb.distros import DISTROS, Distro
from bootstrap.deb.mirrors import AptSource, Mirrors, discover, host_sources
from bootstrap.errors import MirrorError

DEBIAN = DISTROS[Distro.DEBIAN]
UBUNTU = DISTROS[Distro.UBUNTU]
KEYRING = "/usr/share/keyrings/debian-archive-keyring.pgp"

TRIXIE_SOURCES = f"""\
Types: deb
URIs: http://deb.mirror.example/debian
Suites: trixie trixie-updates
Components: main
Signed-By: {KEYRING}

Types: deb
URIs: http://deb.mirror.example/debian-security
Suites: trixie-security
Components: main
Signed-By: {KEYRING}
"""

DOCKER_LIST = (
    "deb [arch=amd64 signed-by=/etc/apt/keyrings/docker.asc] "
    "https://containers.vendor.example/linux/debian bookworm stable\n"
)
CHROME_LIST = (
    "deb [arch=amd64 signed-by=/usr/share/keyrings/google-chrome.gpg] "
    "https://browser.vendor.example/linux/deb/ stable main\n"
)


@pytest.fixture
def apt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty apt configuration directory that discovery reads instead of /etc/apt."""
    root = tmp_path / "apt"
    (root / "sources.list.d").mkdir(parents=True)
    monkeypatch.setenv("BOOTSTRAP_APT_DIR", str(root))
    for distro in DISTROS.values():
        monkeypatch.delenv(distro.mirror_env, raising=False)
        monkeypatch.delenv(distro.security_env, raising=False)
    return root


def write(apt: Path, name: str, text: str) -> None:
    path = apt / name if name == "sources.list" else apt / "sources.list.d" / name
    path.write_text(text)


# --- parsing ------------------------------------------------------------------------------------------------


def test_deb822_sources(apt: Path) -> None:
    write(apt, "debian.sources", TRIXIE_SOURCES)
    assert host_sources() == [
        AptSource("http://deb.mirror.example/debian", ("trixie", "trixie-updates"), ("main",), KEYRING),
        AptSource("http://deb.mirror.example/debian-security", ("trixie-security",), ("main",), KEYRING),
    ]


def test_deb822_details(apt: Path) -> None:
    write(
        apt,
        "extra.sources",
        "# a comment before the stanza\n"
        "Types: deb-src\nURIs: http://src.example/debian\nSuites: trixie\nComponents: main\n\n"
        "Types: deb\nURIs: http://off.example/debian\nSuites: trixie\nComponents: main\nEnabled: no\n\n"
        "types: deb deb-src\nuris: http://a.example/debian http://b.example/debian\n"
        "suites: bookworm\ncomponents: main contrib\n  non-free\n"
        "Signed-By:\n -----BEGIN PGP PUBLIC KEY BLOCK-----\n .\n mQINBF\n -----END PGP PUBLIC KEY BLOCK-----\n",
    )
    sources = host_sources()
    assert [s.uri for s in sources] == ["http://a.example/debian", "http://b.example/debian"]
    assert sources[0].suites == ("bookworm",)
    assert sources[0].components == ("main", "contrib", "non-free")
    assert "-----BEGIN PGP PUBLIC KEY BLOCK----- . mQINBF" in sources[0].signed_by
    # an embedded key names no keyring file: the suite decides
    assert discover(DEBIAN, None, None).main == "http://a.example/debian"


def test_one_line_sources(apt: Path) -> None:
    write(
        apt,
        "sources.list",
        "# deb http://disabled.example/debian bookworm main\n"
        "deb-src http://deb.mirror.example/debian bookworm main\n"
        "\n"
        "deb http://deb.mirror.example/debian bookworm main contrib # trailing comment\n"
        "deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
        "http://security.mirror.example/debian-security bookworm-security main\n"
        "deb http://broken.example/debian\n",
    )
    assert host_sources() == [
        AptSource("http://deb.mirror.example/debian", ("bookworm",), ("main", "contrib"), ""),
        AptSource(
            "http://security.mirror.example/debian-security",
            ("bookworm-security",),
            ("main",),
            "/usr/share/keyrings/debian-archive-keyring.gpg",
        ),
    ]


def test_sources_list_first_then_directory_in_name_order(apt: Path) -> None:
    write(apt, "sources.list", "deb http://one.example/debian bookworm main\n")
    write(apt, "b.list", "deb http://three.example/debian bookworm main\n")
    write(apt, "a.sources", "Types: deb\nURIs: http://two.example/debian\nSuites: bookworm\nComponents: main\n")
    write(apt, "c.list.disabled", "deb http://ignored.example/debian bookworm main\n")
    assert [s.uri for s in host_sources()] == [
        "http://one.example/debian",
        "http://two.example/debian",
        "http://three.example/debian",
    ]


# --- discovery ------------------------------------------------------------------------------------------------


def test_discover_from_deb822(apt: Path) -> None:
    write(apt, "debian.sources", TRIXIE_SOURCES)
    assert discover(DEBIAN, None, None) == Mirrors(
        "http://deb.mirror.example/debian", "http://deb.mirror.example/debian-security"
    )


def test_discover_from_one_line_with_old_security_suite(apt: Path) -> None:
    write(
        apt,
        "sources.list",
        "deb http://ftp.example.org/debian/ buster main\ndeb http://security.example.org/ buster/updates main\n",
    )
    assert discover(DEBIAN, None, None) == Mirrors("http://ftp.example.org/debian", "http://security.example.org")


def test_disabled_entries_are_ignored(apt: Path) -> None:
    write(apt, "sources.list", "#deb http://commented.example/debian bookworm main\n")
    write(
        apt,
        "debian.sources",
        "Types: deb\nURIs: http://disabled.example/debian\nSuites: bookworm\nComponents: main\nEnabled: no\n\n"
        + TRIXIE_SOURCES,
    )
    assert discover(DEBIAN, None, None).main == "http://deb.mirror.example/debian"


def test_non_debian_sources_are_ignored(apt: Path) -> None:
    # Docker's and Chrome's repositories use `bookworm` and `stable` as suites; Ubuntu's use its codenames.
    write(apt, "sources.list", DOCKER_LIST + CHROME_LIST + "deb http://ubuntu.mirror.example/ubuntu noble main\n")
    vendor = "deb [signed-by=/etc/apt/keyrings/vendor.gpg] https://vendor.example/apt trixie main\n"
    write(apt, "aaa-vendor.list", vendor)
    write(apt, "debian.sources", TRIXIE_SOURCES)
    assert discover(DEBIAN, None, None) == Mirrors(
        "http://deb.mirror.example/debian", "http://deb.mirror.example/debian-security"
    )


def test_only_non_debian_sources_is_an_error(apt: Path) -> None:
    write(apt, "sources.list", DOCKER_LIST + CHROME_LIST + "deb http://ubuntu.mirror.example/ubuntu noble main\n")
    with pytest.raises(MirrorError, match="no debian mirror given and none found"):
        discover(DEBIAN, None, None)


def test_signed_by_the_archive_keyring_counts_whatever_the_suite(apt: Path) -> None:
    write(
        apt,
        "snapshot.list",
        "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://snapshot.example/archive/debian/ "
        "my-frozen-suite main\n",
    )
    assert discover(DEBIAN, None, None).main == "http://snapshot.example/archive/debian"


def test_ubuntu_sources_for_ubuntu(apt: Path) -> None:
    write(apt, "sources.list", DOCKER_LIST)
    write(
        apt,
        "ubuntu.sources",
        "Types: deb\nURIs: http://ubuntu.mirror.example/ubuntu/\nSuites: noble noble-updates\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg\n\n"
        "Types: deb\nURIs: http://ubuntu-security.mirror.example/ubuntu/\nSuites: noble-security\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg\n",
    )
    assert discover(UBUNTU, None, None) == Mirrors(
        "http://ubuntu.mirror.example/ubuntu", "http://ubuntu-security.mirror.example/ubuntu"
    )
    with pytest.raises(MirrorError):
        discover(DEBIAN, None, None)


# --- precedence -------------------------------------------------------------------------------------------------


def test_option_beats_environment_and_apt(apt: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(apt, "debian.sources", TRIXIE_SOURCES)
    monkeypatch.setenv("BOOTSTRAP_DEBIAN_MIRROR", "http://env.example/debian")
    assert discover(DEBIAN, "http://opt.example/debian/", None) == Mirrors(
        "http://opt.example/debian", "http://opt.example/debian-security"
    )
    assert discover(DEBIAN, "http://opt.example/debian", "http://sec.example/s/").security == "http://sec.example/s"


def test_environment_beats_apt(apt: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(apt, "debian.sources", TRIXIE_SOURCES)
    monkeypatch.setenv("BOOTSTRAP_DEBIAN_MIRROR", "http://env.example/debian")
    # the security mirror follows the chosen archive mirror, not the host's
    assert discover(DEBIAN, None, None) == Mirrors("http://env.example/debian", "http://env.example/debian-security")
    monkeypatch.setenv("BOOTSTRAP_DEBIAN_SECURITY_MIRROR", "http://env-sec.example/debian-security")
    assert discover(DEBIAN, None, None).security == "http://env-sec.example/debian-security"


def test_security_environment_with_apt_archive(apt: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(apt, "debian.sources", TRIXIE_SOURCES)
    monkeypatch.setenv("BOOTSTRAP_DEBIAN_SECURITY_MIRROR", "http://env-sec.example/x")
    assert discover(DEBIAN, None, None) == Mirrors("http://deb.mirror.example/debian", "http://env-sec.example/x")


def test_security_mirror_is_the_archive_when_not_named_debian(apt: Path) -> None:
    assert discover(DEBIAN, "http://127.0.0.1:8080", None) == Mirrors("http://127.0.0.1:8080", "http://127.0.0.1:8080")
    assert discover(UBUNTU, "http://mirror.example/ubuntu", None).security == "http://mirror.example/ubuntu"


def test_apt_without_security_source_derives_it(apt: Path) -> None:
    write(apt, "sources.list", "deb http://ftp.example.org/debian bookworm main\n")
    assert discover(DEBIAN, None, None) == Mirrors(
        "http://ftp.example.org/debian", "http://ftp.example.org/debian-security"
    )


def test_nothing_found(apt: Path) -> None:
    with pytest.raises(MirrorError) as err:
        discover(DEBIAN, None, None)
    assert str(apt) in err.value.message
    assert "BOOTSTRAP_DEBIAN_MIRROR" in err.value.hint


def test_missing_apt_directory(tmp_path: Path, apt: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOOTSTRAP_APT_DIR", str(tmp_path / "does-not-exist"))
    assert host_sources() == []
    with pytest.raises(MirrorError):
        discover(DEBIAN, None, None)


@pytest.mark.parametrize("url", ["http://[::1", "http://127.0.0.1:99999/debian", "ftp://127.0.0.1/debian", "debian"])
def test_malformed_mirror_urls_are_refused(apt: Path, monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    with pytest.raises(MirrorError, match=r"\(from --mirror\) is not valid") as info:
        discover(DEBIAN, url, None)
    assert "\n" not in info.value.message and "file:///PATH" in info.value.hint
    with pytest.raises(MirrorError, match=r"\(from --security-mirror\) is not valid"):
        discover(DEBIAN, "http://127.0.0.1:9/debian", url)
    monkeypatch.setenv(DEBIAN.mirror_env, url)
    with pytest.raises(MirrorError, match=rf"\(from \${DEBIAN.mirror_env}\) is not valid"):
        discover(DEBIAN, None, None)


def test_well_formed_mirror_urls_are_kept(apt: Path) -> None:
    found = discover(DEBIAN, "http://[::1]:8080/debian/", "file:///srv/security")
    assert found == Mirrors("http://[::1]:8080/debian", "file:///srv/security")
