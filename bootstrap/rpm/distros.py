"""What differs between the distributions of the RPM family, as data: the releases, the repositories of each
(the id dnf knows it by, the file of /etc/yum.repos.d it is written to, its path under the distribution's tree
with dnf's `$releasever` and `$basearch`), which keys sign them, the environment variable naming the mirror,
and the accounts of the `setup` package. No host name: the tree's root is the mirror the user gives."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bootstrap.family.names import Distro


@dataclass(frozen=True)
class RepoDef:
    """One repository of a release as the official image's repository files define it."""

    id: str
    file: str
    """The file of /etc/yum.repos.d/ the official image has it in."""
    name: str
    path: str
    """Under the mirror, with `$releasever` and `$basearch` as dnf writes them."""
    enabled: bool = True
    metalink: str = ""
    """The query of the official repository file's `metalink=` after the service's URL (`?repo=...&arch=...`),
    where the distribution uses one; the service itself is the user's (`rpm.metalink`)."""


@dataclass(frozen=True)
class Release:
    name: str
    repos: tuple[RepoDef, ...]
    gpgkey: str
    """The `gpgkey=` of the image's repository files (the key file the release package installs)."""
    releasever: str = ""
    """dnf's `$releasever` (default: the release's name)."""
    dbpath: str = "/var/lib/rpm"
    """`%_dbpath` of the release's rpm, where the image's rpm and dnf read the database: /var/lib/rpm up to EL 9;
    /usr/lib/sysimage/rpm in Fedora since 36 (the change "Relocate RPM database to /usr") and in EL 10, where the
    rpm package's %posttrans makes /var/lib/rpm a symlink to it."""

    @property
    def version(self) -> str:
        return self.releasever or self.name


@dataclass(frozen=True)
class RpmDistro:
    name: Distro
    releases: Mapping[str, Release]
    aliases: Mapping[str, str]
    """Suite names standing for a release (`current`); the recipe's or `--suite`'s, then these."""
    mirror_env: str
    metadata_signed: bool
    """The distribution signs `repomd.xml` (repomd.xml.asc, `repo_gpgcheck=1`); otherwise only the packages are
    signed and the metadata is trusted by its checksums alone (its repository files say `repo_gpgcheck=0`)."""
    base_users: tuple[tuple[str, int], ...] = ()
    base_groups: tuple[tuple[str, int], ...] = ()
    keyrings: tuple[Path, ...] = field(default=())
    """Host keyrings: none (the keys come with the recipes)."""

    @property
    def has_metalinks(self) -> bool:
        """Whether the distribution's repository files name metalinks (Fedora, CentOS Stream), not mirror lists."""
        return any(r.metalink for release in self.releases.values() for r in release.repos)

    @property
    def metalink_env(self) -> str:
        """The environment variable naming the distribution's metalink service (BOOTSTRAP_FEDORA_METALINK)."""
        return self.mirror_env.removesuffix("_MIRROR") + "_METALINK"

    @property
    def codenames(self) -> frozenset[str]:
        return frozenset(self.releases) | frozenset(self.aliases)


def _accounts(text: str) -> tuple[tuple[str, int], ...]:
    return tuple((name, int(num)) for name, num in (item.split(":") for item in text.split()))


# The static accounts of the `setup` package (/etc/passwd and /etc/group), the same in all four.
SETUP_USERS = _accounts(
    "root:0 bin:1 daemon:2 adm:3 lp:4 sync:5 shutdown:6 halt:7 mail:8 operator:11 games:12 ftp:14 nobody:65534"
)
SETUP_GROUPS = _accounts(
    "root:0 bin:1 daemon:2 sys:3 adm:4 tty:5 disk:6 lp:7 mem:8 kmem:9 wheel:10 cdrom:11 mail:12 man:15 dialout:18 "
    "floppy:19 games:20 tape:33 video:39 ftp:50 lock:54 audio:63 users:100 nobody:65534"
)


def _el(vendor: str, files: Mapping[str, str], tree: str, extras: RepoDef, metalink: str = "") -> tuple[RepoDef, ...]:
    """BaseOS, AppStream, CRB (disabled) and the extras of an Enterprise Linux rebuild (`tree`: the path of a
    release's directory, `$releasever` or `$releasever-stream`; `metalink`: the query of each repository's
    metalink, `{id}` standing for its id, where the distribution uses one)."""

    def link(rid: str) -> str:
        return metalink.replace("{id}", rid)

    return (
        RepoDef("baseos", files["baseos"], f"{vendor} $releasever - BaseOS", f"{tree}/BaseOS/$basearch/os",
                metalink=link("baseos")),
        RepoDef("appstream", files["appstream"], f"{vendor} $releasever - AppStream", f"{tree}/AppStream/$basearch/os",
                metalink=link("appstream")),
        RepoDef("crb", files["crb"], f"{vendor} $releasever - CRB", f"{tree}/CRB/$basearch/os", enabled=False,
                metalink=link("crb")),
        extras,
    )  # fmt: skip


_ALMA_FILES = {k: f"almalinux-{k}.repo" for k in ("baseos", "appstream", "crb")}
_ALMA = _el(
    "AlmaLinux",
    _ALMA_FILES,
    "$releasever",
    RepoDef("extras", "almalinux-extras.repo", "AlmaLinux $releasever - Extras", "$releasever/extras/$basearch/os"),
)
_ROCKY = _el(
    "Rocky Linux",
    dict.fromkeys(("baseos", "appstream", "crb"), "rocky.repo"),
    "$releasever",
    RepoDef("extras", "rocky-extras.repo", "Rocky Linux $releasever - Extras", "$releasever/extras/$basearch/os"),
)
_CENTOS = _el(
    "CentOS Stream",
    dict.fromkeys(("baseos", "appstream", "crb"), "centos.repo"),
    "$releasever-stream",
    RepoDef(
        "extras-common",
        "centos-addons.repo",
        "CentOS Stream $releasever - Extras packages",
        "SIGs/$releasever-stream/extras/$basearch/extras-common",
        metalink="?repo=centos-extras-sig-extras-common-$stream&arch=$basearch&protocol=https,http",
    ),
    "?repo=centos-{id}-$stream&arch=$basearch&protocol=https,http",
)
_FEDORA = (
    RepoDef("fedora", "fedora.repo", "Fedora $releasever - $basearch", "releases/$releasever/Everything/$basearch/os",
            metalink="?repo=fedora-$releasever&arch=$basearch"),
    RepoDef("updates", "fedora-updates.repo", "Fedora $releasever - $basearch - Updates",
            "updates/$releasever/Everything/$basearch", metalink="?repo=updates-released-f$releasever&arch=$basearch"),
)  # fmt: skip
_PKI = "/etc/pki/rpm-gpg"
SYSIMAGE = "/usr/lib/sysimage/rpm"


def _el_release(version: str, repos: tuple[RepoDef, ...], gpgkey: str) -> Release:
    """An Enterprise Linux release: its database where that release's rpm keeps it (/usr from 10 on)."""
    return Release(version, repos, gpgkey, dbpath=SYSIMAGE if int(version) >= 10 else "/var/lib/rpm")


def _distro(
    name: Distro, releases: dict[str, Release], aliases: dict[str, str], signed: bool, env: str = ""
) -> RpmDistro:
    env = env or f"BOOTSTRAP_{name.upper().replace('-', '_')}_MIRROR"
    return RpmDistro(name, releases, aliases, env, signed, SETUP_USERS, SETUP_GROUPS)


DISTROS: dict[Distro, RpmDistro] = {
    Distro.ALMALINUX: _distro(
        Distro.ALMALINUX,
        {v: _el_release(v, _ALMA, f"{_PKI}/RPM-GPG-KEY-AlmaLinux-{v}") for v in ("9", "10")},
        {"latest": "10"},
        signed=True,
    ),
    Distro.ROCKYLINUX: _distro(
        Distro.ROCKYLINUX,
        {v: _el_release(v, _ROCKY, f"{_PKI}/RPM-GPG-KEY-Rocky-{v}") for v in ("9", "10")},
        {"latest": "10"},
        signed=True,
    ),
    Distro.CENTOS_STREAM: _distro(
        Distro.CENTOS_STREAM,
        {
            "9": _el_release("9", _CENTOS, f"{_PKI}/RPM-GPG-KEY-centosofficial"),
            "10": _el_release("10", _CENTOS, f"{_PKI}/RPM-GPG-KEY-centosofficial-SHA256"),
        },
        {"latest": "10", "stream9": "9", "stream10": "10"},
        signed=False,
    ),
    Distro.FEDORA: _distro(
        Distro.FEDORA,
        {
            v: Release(v, _FEDORA, f"{_PKI}/RPM-GPG-KEY-fedora-$releasever-$basearch", dbpath=SYSIMAGE)
            for v in ("43", "44", "45")
        },
        # Fedora's current release and the one before; moved on at each release.
        {"current": "45", "latest": "45", "previous": "44"},
        signed=False,
    ),
}
"""Each distribution's mirror variable is BOOTSTRAP_<NAME>_MIRROR (BOOTSTRAP_CENTOS_STREAM_MIRROR)."""
