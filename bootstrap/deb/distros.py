"""What differs between distributions of the deb family: keyrings, suites, security layout, container settings,
where the host says which releases exist and which mirror serves them."""

from dataclasses import dataclass
from pathlib import Path

from bootstrap.deb import releases, tweaks
from bootstrap.deb.tweaks import ContainerSettings
from bootstrap.family.names import Distro as Distro  # the names, re-exported for the deb family
from bootstrap.host.arches import ARCHES


@dataclass(frozen=True)
class DistroInfo:
    name: Distro
    codenames: frozenset[str]
    keyrings: tuple[Path, ...]
    keyring_package: str
    sources_file: str
    mirror_env: str
    security_env: str
    security_sibling: str
    supported_suites: frozenset[str]
    """Release `Suite:` values that get -updates and -security sources (empty: every suite does)."""
    base_users: tuple[tuple[str, int], ...] = ()
    """Accounts every image of the distribution has (base-passwd's), checked against recipe users."""
    base_groups: tuple[tuple[str, int], ...] = ()
    settings: ContainerSettings = tweaks.DEBIAN
    """The container settings of the distribution's official images."""
    release_table: str = ""
    """distro-info-data's table of the distribution's releases (`ubuntu.csv`), which resolves suite aliases
    such as `lts` (empty: the archive resolves aliases, as Debian's `stable`)."""
    archive_aliases: frozenset[str] = frozenset()
    """Suite names only the archive's Release file resolves to a release (Debian's `stable`): a recipe's release
    tables cannot be chosen by them before the build."""
    debootstrap_script: str = ""
    """The host's debootstrap script that serves every current suite without a script of its own, read for the
    default mirror when nothing else names one (empty: no such fallback)."""

    def is_ours(self, suite: str, signed_by: str) -> bool:
        """Whether an apt source with this suite and Signed-By belongs to this distribution.

        A source pinned to keyring files belongs to whoever owns the keyring: third-party repositories
        reuse release codenames and even `stable` as suite names (Docker's, Google Chrome's).
        """
        if signed_by.startswith("/"):
            return f"{self.name}-archive-keyring" in signed_by
        base = suite.split("-", 1)[0].split("/", 1)[0]
        return base in self.codenames

    def has_updates(self, release_suite: str) -> bool:
        """Whether a release with this `Suite:` field is served with -updates and -security suites."""
        return not self.supported_suites or release_suite in self.supported_suites


MERGED_USR_DIRS = {a.name: a.usr_links for a in ARCHES.values()}
"""The top-level links into /usr that debootstrap makes, per architecture (from the one architecture table):
also the architectures served."""


def merged_usr_dirs(arch: str) -> tuple[str, ...]:
    """The top-level links into /usr that debootstrap makes for `arch`."""
    return MERGED_USR_DIRS.get(arch, ("bin", "sbin", "lib"))


_KEYRINGS = Path("/usr/share/keyrings")


def _accounts(text: str) -> tuple[tuple[str, int], ...]:
    return tuple((name, int(num)) for name, num in (item.split(":") for item in text.split()))


# base-passwd's static accounts (the same in Debian and Ubuntu), and apt's _apt.
BASE_USERS = _accounts(
    "root:0 daemon:1 bin:2 sys:3 sync:4 games:5 man:6 lp:7 mail:8 news:9 uucp:10 proxy:13 www-data:33 "
    "backup:34 list:38 irc:39 _apt:42 nobody:65534"
)
BASE_GROUPS = _accounts(
    "root:0 daemon:1 bin:2 sys:3 adm:4 tty:5 disk:6 lp:7 mail:8 news:9 uucp:10 man:12 proxy:13 kmem:15 "
    "dialout:20 fax:21 voice:22 cdrom:24 floppy:25 tape:26 sudo:27 audio:29 dip:30 www-data:33 backup:34 "
    "operator:37 list:38 irc:39 src:40 shadow:42 utmp:43 video:44 sasl:45 plugdev:46 staff:50 games:60 "
    "users:100 nogroup:65534"
)
# A scriptless image's accounts (no base-passwd runs): root, nobody and nonroot, the users distroless images
# have, and the groups those name or Debian's files are owned by.
SCRIPTLESS_USERS = _accounts("root:0 nobody:65534 nonroot:65532")
SCRIPTLESS_GROUPS = _accounts("root:0 tty:5 staff:50 nonroot:65532 nogroup:65534")

DISTROS: dict[Distro, DistroInfo] = {
    Distro.DEBIAN: DistroInfo(
        name=Distro.DEBIAN,
        codenames=frozenset(
            [
                "buster",
                "bullseye",
                "bookworm",
                "trixie",
                "forky",
                "duke",
                "sid",
                "experimental",
                "oldoldstable",
                "oldstable",
                "stable",
                "testing",
                "unstable",
            ]
        ),
        keyrings=(_KEYRINGS / "debian-archive-keyring.pgp", _KEYRINGS / "debian-archive-keyring.gpg"),
        keyring_package="debian-archive-keyring",
        sources_file="debian.sources",
        mirror_env="BOOTSTRAP_DEBIAN_MIRROR",
        security_env="BOOTSTRAP_DEBIAN_SECURITY_MIRROR",
        security_sibling="-security",
        supported_suites=frozenset({"stable", "oldstable", "oldoldstable"}),
        archive_aliases=frozenset({"oldoldstable", "oldstable", "stable", "testing", "unstable"}),
        base_users=BASE_USERS,
        base_groups=BASE_GROUPS,
    ),
    Distro.UBUNTU: DistroInfo(
        name=Distro.UBUNTU,
        codenames=frozenset(["focal", "jammy", "noble", "oracular", "plucky", "questing", "resolute"])
        | releases.codenames("ubuntu.csv"),
        keyrings=(_KEYRINGS / "ubuntu-archive-keyring.gpg",),
        keyring_package="ubuntu-keyring",
        sources_file="ubuntu.sources",
        mirror_env="BOOTSTRAP_UBUNTU_MIRROR",
        security_env="BOOTSTRAP_UBUNTU_SECURITY_MIRROR",
        security_sibling="",
        supported_suites=frozenset(),
        base_users=BASE_USERS,
        base_groups=BASE_GROUPS,
        settings=tweaks.UBUNTU,
        release_table="ubuntu.csv",
        debootstrap_script="gutsy",
    ),
}
