"""Finish the tree as the official images do: container settings, slim rules, apt sources, scrubbing."""

import glob
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bootstrap.deb.configure import POLICY_RC_D
from bootstrap.deb.filters import PathFilter

_APT_CLEAN = '"rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true";'

# One setting per file, so a derived image can drop any one of them.
TWEAKS: dict[str, str] = {
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

SCRUB = (
    "etc/machine-id",
    "var/lib/dbus/machine-id",
    "etc/hostname",
    "etc/resolv.conf",
    "etc/apt/apt.conf.d/01autoremove-kernels",
    "var/log/dpkg.log",
    "var/log/alternatives.log",
    "var/log/bootstrap.log",
    "var/log/apt/*",
    "var/cache/ldconfig/aux-cache",
    "var/cache/debconf/*-old",
    "var/lib/dpkg/*-old",
    "var/lib/apt/lists/*",
    "var/cache/apt/*.bin",
    "var/cache/apt/archives/*.deb",
    "var/cache/apt/archives/partial/*",
    "usr/sbin/policy-rc.d.dpkg-*",
    "run/*",
    "tmp/*",
    "var/tmp/*",
    "dev/*",
    "proc/*",
    "sys/*",
)


@dataclass(frozen=True)
class AptSourceEntry:
    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]


def sources_deb822(entries: Sequence[AptSourceEntry], signed_by: str) -> str:
    """An apt sources file in deb822 form, one stanza per mirror."""
    stanzas = []
    for e in entries:
        stanzas.append(
            f"Types: deb\nURIs: {e.uri}\nSuites: {' '.join(e.suites)}\nComponents: {' '.join(e.components)}\n"
            f"Signed-By: {signed_by}\n"
        )
    return "\n".join(stanzas)


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def clamp_shadow(root: Path, epoch: int) -> None:
    """Field 3 of shadow files (last password change, in days) never later than the epoch."""
    day = epoch // 86400
    for name in ("etc/shadow", "etc/shadow-"):
        path = root / name
        if not path.is_file():
            continue
        st = path.stat()
        lines = []
        for line in path.read_text().splitlines():
            fields = line.split(":")
            if len(fields) > 2 and fields[2].isdigit() and int(fields[2]) > day:
                fields[2] = str(day)
            lines.append(":".join(fields))
        path.write_text("".join(line + "\n" for line in lines))
        os.chmod(path, st.st_mode & 0o7777)
        os.chown(path, st.st_uid, st.st_gid)


def finish(
    root: Path,
    pfilter: PathFilter,
    sources: Sequence[AptSourceEntry],
    sources_file: str,
    keyring_names: Sequence[str],
    epoch: int,
) -> None:
    """Container tweaks, slim rules kept in the image, apt sources, and every run-dependent file removed."""
    _write(root / "usr/sbin/policy-rc.d", POLICY_RC_D, 0o755)
    for rel, text in TWEAKS.items():
        _write(root / rel, text)
    if pfilter:
        _write(root / "etc/dpkg/dpkg.cfg.d/docker", pfilter.dpkg_cfg())
        for n in range(1, 10):
            (root / f"usr/share/man/man{n}").mkdir(mode=0o755, parents=True, exist_ok=True)
    keyring = next(
        (f"/usr/share/keyrings/{k}" for k in keyring_names if (root / "usr/share/keyrings" / k).exists()),
        f"/usr/share/keyrings/{keyring_names[0]}",
    )
    _write(root / "etc/apt/sources.list.d" / sources_file, sources_deb822(sources, keyring))
    sources_list = root / "etc/apt/sources.list"
    if sources_list.is_file() and not sources_list.read_text().strip():
        sources_list.unlink()
    for pattern in SCRUB:
        for match in sorted(glob.glob(str(root / pattern), include_hidden=True)):
            _remove(Path(match))
    for keep in ("var/lib/apt/lists/partial", "var/cache/apt/archives/partial"):
        (root / keep).mkdir(parents=True, exist_ok=True)
    clamp_shadow(root, epoch)
