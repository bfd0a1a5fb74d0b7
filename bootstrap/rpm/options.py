"""What the RPM family's steps for one tree take from the recipe and the distribution's data (`job.RpmJob`):
rpm's transaction flags and what the official image's kickstart or kiwi `%post` leaves in the tree."""

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class JobOptions:
    """How one RPM tree is installed and finished."""

    nodocs: bool = True
    """`tsflags=nodocs` / `--excludedocs`: files the package marks %doc are not installed."""
    install_langs: tuple[str, ...] = ()
    """`%_install_langs`: the languages whose %lang files are installed (empty: all)."""
    scripts: bool = True
    """Run the scriptlets and triggers (false: a scriptless tree, the database written alone)."""
    write: Mapping[str, bytes] = field(default_factory=dict)
    """Files the distribution's image writes after the install (absolute path in the tree: content): the
    repository files pointing at the user's mirror, dnf.conf, an empty machine-id, language macros."""
    remove: tuple[str, ...] = ()
    """Paths (globs, absolute in the tree) the distribution's image removes after the install: one ending in `/`
    matches directories only; `!PATTERN` keeps what it matches."""
    links: Mapping[str, str] = field(default_factory=dict)
    """Symbolic links the distribution's image makes after the install (absolute path in the tree: target):
    /etc/localtime, systemd's default.target, the units it masks (links to /dev/null)."""
    append: Mapping[str, bytes] = field(default_factory=dict)
    """Text the distribution's image appends to files after the install (absolute path in the tree: text)."""
    dates: Mapping[str, str] = field(default_factory=dict)
    """Files the distribution's image writes its build date into (absolute path in the tree: strftime format): the
    epoch's date, UTC, and a newline, as `date +FORMAT > FILE` in a build dated the epoch."""
    hardlinks: Mapping[str, str] = field(default_factory=dict)
    """Hard links the distribution's image makes (absolute path in the tree: the existing file)."""
    moves: Mapping[str, str] = field(default_factory=dict)
    """Files the distribution's image moves (absolute path in the tree: the existing file), before the removals."""
    mask: tuple[str, ...] = ()
    """systemd units the distribution's image masks (`systemctl mask`), when the image has systemctl."""
    dirs: tuple[str, ...] = ()
    """Directories the distribution's image makes (`mkdir -p`), absolute in the tree."""
    modes: Mapping[str, int] = field(default_factory=dict)
    """Modes the distribution's image sets (`chmod`), after the writes and directories."""
    tmpfiles: tuple[str, ...] = ()
    """The tree's tmpfiles.d files applied as `systemd-tmpfiles --create` (`*`: all of them)."""
    tmpfiles_boot: bool = False
    tmpfiles_in_image: bool = False
    """`tmpfiles` is the image's own systemd-tmpfiles, run by a kickstart's `%post`: nothing when the image has none."""
    """With `tmpfiles`, also the boot-only lines (`--boot`)."""
    import_key: bool = False
    """Import the release's key into the database after the packages (`rpm --import`)."""
    keys: tuple[str, ...] = ()
    """With `import_key`, the key files to import (absolute in the tree): the release's `gpgkey`, which the
    family fills in."""
    dbpath: str = "/var/lib/rpm"
    """`%_dbpath` of the distribution's rpm: /var/lib/rpm (EL 9), /usr/lib/sysimage/rpm (Fedora, EL 10); the
    family sets it from the release's data (`distros.Release.dbpath`)."""
