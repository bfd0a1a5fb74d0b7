"""The container settings each distribution's official images carry, as data: files, local diversions, the
name of the dpkg filter file, the apt sources layout. `finish` applies whichever set the distribution names."""

from collections.abc import Mapping
from dataclasses import dataclass, field

_APT_CLEAN = '"rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true";'


@dataclass(frozen=True)
class Diversion:
    """A local `dpkg-divert --rename --add PATH` (to `divert_to`), with `content` put in its place."""

    path: str
    divert_to: str
    content: str


@dataclass(frozen=True)
class ContainerSettings:
    files: Mapping[str, str]
    """Path in the image -> text (mode 0644), one setting per file so a derived image can drop any one."""
    executables: Mapping[str, str] = field(default_factory=dict)
    """Path in the image -> script text (mode 0755)."""
    diversions: tuple[Diversion, ...] = ()
    filters_file: str = "docker"
    """The recipe's dpkg path filters are kept as /etc/dpkg/dpkg.cfg.d/<this>."""
    sources_list: str | None = None
    """Text of /etc/apt/sources.list (None: the file is left out when empty)."""
    sources_layout: tuple[tuple[str, tuple[str, ...]], ...] = (("main", ("", "-updates")), ("security", ("-security",)))
    """The image's apt sources, one stanza per entry: the mirror (`main` or `security`) and the suites, as
    suffixes of the codename. Suffixes other than "" are left out for releases without -updates/-security."""
    kept_dirs: tuple[str, ...] = ()
    """Package directories under scrubbed places (apt's caches) that stay, empty, with their owner and mode."""
    status_from_index: bool = True
    """Whether dpkg's status takes Priority and Section of the first-installed packages from the archive
    index, as debootstrap leaves them (Debian). Ubuntu's build reinstalls every package through apt, after
    which each status entry is the package's own control data."""


_COMMON = {
    "etc/dpkg/dpkg.cfg.d/docker-apt-speedup": "# No fsync for every unpacked file: a container layer is written once.\n"
    "force-unsafe-io\n",
    "etc/apt/apt.conf.d/docker-clean": "# Downloaded .debs and apt's binary caches only bloat image layers.\n"
    f"DPkg::Post-Invoke {{ {_APT_CLEAN} }};\n"
    f"APT::Update::Post-Invoke {{ {_APT_CLEAN} }};\n"
    'Dir::Cache::pkgcache "";\nDir::Cache::srcpkgcache "";\n',
    "etc/apt/apt.conf.d/docker-gzip-indexes": "# Keep the package lists compressed on disk.\n"
    'Acquire::GzipIndexes "true";\n',
    "etc/apt/apt.conf.d/docker-no-languages": '# No translated package descriptions.\nAcquire::Languages "none";\n',
    "etc/apt/apt.conf.d/docker-autoremove-suggests": "# Packages that are only suggested may be autoremoved.\n"
    'Apt::AutoRemove::SuggestsImportant "false";\n',
}

DEBIAN = ContainerSettings(files=_COMMON)
"""debuerreotype's settings, as in the official `debian` images."""

_MINIMIZED = (
    "This image is minimized: manual pages, documentation and translations are left out\n"
    "(see /etc/dpkg/dpkg.cfg.d/excludes). Run unminimize to bring them back."
)

UBUNTU = ContainerSettings(
    files={
        **_COMMON,
        "etc/apt/apt.conf.d/docker-gzip-indexes": "# Package lists compressed on disk, fetched as gzip.\n"
        'Acquire::GzipIndexes "true";\nAcquire::CompressionTypes::Order:: "gz";\n',
        "etc/apt/apt.conf.d/docker-disable-periodic-update": "# No periodic apt jobs in a container.\n"
        'APT::Periodic::Enable "0";\n',
        "run/systemd/container": "docker\n",
        "etc/default/locale": "LANG=C.UTF-8\n",
    },
    executables={
        "etc/update-motd.d/60-unminimize": "#!/bin/sh\n# Not owned by any package: remove it to drop the notice.\n"
        + "".join(f"echo '{line}'\n" for line in ("", *_MINIMIZED.splitlines())),
    },
    diversions=(
        Diversion("/sbin/initctl", "/sbin/initctl.distrib", "#!/bin/sh\nexit 0\n"),
        Diversion(
            "/usr/bin/man",
            "/usr/bin/man.REAL",
            "#!/bin/sh\n"
            + "".join(f"echo '{line}'\n" for line in _MINIMIZED.splitlines())
            + "echo 'Manual pages also need the man-db package.'\n",
        ),
    ),
    filters_file="excludes",
    kept_dirs=("var/cache/apt/archives/partial", "var/lib/apt/lists/partial"),
    status_from_index=False,
    sources_list="# This image's apt sources are in /etc/apt/sources.list.d/ubuntu.sources, in deb822 format\n"
    "# (see sources.list(5)); add your own as .sources files in that directory.\n",
    sources_layout=(("main", ("", "-updates", "-backports")), ("security", ("-security",))),
)
"""livecd-rootfs' `ubuntu-oci` settings, as in the official `ubuntu` images."""
