"""Mirror discovery: --mirror, then the environment, then the host's apt sources, then the default mirror of the
host's debootstrap suite scripts. No host name is built in."""

import os
import re
from dataclasses import dataclass
from pathlib import Path

from bootstrap.deb import debootstrap
from bootstrap.deb.distros import DistroInfo
from bootstrap.errors import MirrorError
from bootstrap.host import mirror_url


@dataclass(frozen=True)
class AptSource:
    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]
    signed_by: str


def apt_dir() -> Path:
    """The host's apt configuration directory (BOOTSTRAP_APT_DIR overrides, for tests and chroots)."""
    return Path(os.environ.get("BOOTSTRAP_APT_DIR", "/etc/apt"))


def _parse_one_line(text: str) -> list[AptSource]:
    out = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line.startswith("deb "):
            continue
        options = ""
        m = re.match(r"deb\s+\[([^\]]*)\]\s+(.*)", line)
        rest = line[4:].strip()
        if m:
            options, rest = m.group(1), m.group(2)
        fields = rest.split()
        if len(fields) < 2:
            continue
        signed = re.search(r"signed-by=(\S+)", options)
        out.append(AptSource(fields[0], (fields[1],), tuple(fields[2:]), signed.group(1) if signed else ""))
    return out


def _parse_deb822(text: str) -> list[AptSource]:
    """The enabled `deb` entries of a deb822 `.sources` file (python-debian reads its stanzas)."""
    from debian.deb822 import Deb822  # loaded when a host's sources are read, not at every start

    out = []
    for stanza in Deb822.iter_paragraphs(text.splitlines(keepends=True)):
        if "deb" not in stanza.get("Types", "").split() or stanza.get("Enabled", "yes").strip().lower() == "no":
            continue
        for uri in stanza.get("URIs", "").split():
            out.append(
                AptSource(
                    uri,
                    tuple(stanza.get("Suites", "").split()),
                    tuple(stanza.get("Components", "").split()),
                    " ".join(stanza.get("Signed-By", "").split()),
                )
            )
    return out


def host_sources(root: Path | None = None) -> list[AptSource]:
    """Every enabled `deb` source on the host, sources.list first, then sources.list.d in name order."""
    base = root or apt_dir()
    found: list[AptSource] = []
    main = base / "sources.list"
    if main.is_file():
        found += _parse_one_line(main.read_text(errors="replace"))
    d = base / "sources.list.d"
    if d.is_dir():
        for path in sorted(d.iterdir()):
            if path.suffix == ".list":
                found += _parse_one_line(path.read_text(errors="replace"))
            elif path.suffix == ".sources":
                found += _parse_deb822(path.read_text(errors="replace"))
    return found


def _is_security(suite: str) -> bool:
    return suite.endswith("-security") or suite.endswith("/updates")


@dataclass(frozen=True)
class Mirrors:
    main: str
    security: str


_APT = "apt sources"


def discover(distro: DistroInfo, mirror: str | None, security: str | None, suite: str = "", arch: str = "") -> Mirrors:
    """Pick the archive and security mirror: options > environment > host apt sources > the default mirror the
    host's debootstrap script for the suite names for the architecture (where the distribution has one)."""
    main_origin, security_origin = "--mirror", "--security-mirror"
    if not mirror:
        mirror, main_origin = os.environ.get(distro.mirror_env), f"${distro.mirror_env}"
    if not security:
        security, security_origin = os.environ.get(distro.security_env), f"${distro.security_env}"
    sources = [s for s in host_sources() if any(distro.is_ours(x, s.signed_by) for x in s.suites)]
    if not mirror:
        main_origin = _APT
        mirror = next((s.uri for s in sources if any(not _is_security(x) for x in s.suites)), None)
    if not mirror and distro.debootstrap_script and suite:
        found = debootstrap.mirror_for(suite, arch, distro.debootstrap_script)
        if found is not None:
            mirror, main_origin = found[0], f"debootstrap script {found[1]}"
    if not mirror:
        where = f"{apt_dir()}/sources.list(.d)"
        if distro.debootstrap_script:
            where += f" nor in {debootstrap.scripts_dir()}"
        raise MirrorError(
            f"no {distro.name} mirror given and none found in {where}",
            f"pass --mirror <{distro.name}-mirror-url> or set {distro.mirror_env}",
        )
    main = mirror_url.checked(mirror, main_origin)
    if not security and main_origin == _APT:
        security, security_origin = next((s.uri for s in sources if any(_is_security(x) for x in s.suites)), None), _APT
    if not security:
        sibling = distro.security_sibling
        security = main + sibling if sibling and main.endswith(f"/{distro.name}") else main
        security_origin = main_origin
    return Mirrors(main, mirror_url.checked(security, security_origin))
