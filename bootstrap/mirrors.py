"""Mirror discovery: --mirror, then the environment, then the host's apt sources. No host name is built in."""

import os
import re
from dataclasses import dataclass
from pathlib import Path

from bootstrap.distros import DistroInfo
from bootstrap.errors import MirrorError


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
    out = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = ""
        for raw in stanza.splitlines():
            if raw.startswith("#"):
                continue
            if raw[:1] in (" ", "\t") and key:
                fields[key] += " " + raw.strip()
            elif ":" in raw:
                key, _, value = raw.partition(":")
                key = key.strip().lower()
                fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes").lower() == "no":
            continue
        for uri in fields.get("uris", "").split():
            out.append(
                AptSource(
                    uri,
                    tuple(fields.get("suites", "").split()),
                    tuple(fields.get("components", "").split()),
                    fields.get("signed-by", ""),
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


def discover(distro: DistroInfo, mirror: str | None, security: str | None) -> Mirrors:
    """Pick the archive and security mirror: options > environment > host apt sources."""
    main_origin = "option"
    if not mirror:
        mirror, main_origin = os.environ.get(distro.mirror_env), "environment"
    if not security:
        security = os.environ.get(distro.security_env)
    sources = [s for s in host_sources() if any(distro.is_ours(x, s.signed_by) for x in s.suites)]
    if not mirror:
        main_origin = "apt"
        mirror = next((s.uri for s in sources if any(not _is_security(x) for x in s.suites)), None)
    if not mirror:
        raise MirrorError(
            f"no {distro.name} mirror given and none found in {apt_dir()}/sources.list(.d)",
            f"pass --mirror <{distro.name}-mirror-url> or set {distro.mirror_env}",
        )
    if not security and main_origin == "apt":
        security = next((s.uri for s in sources if any(_is_security(x) for x in s.suites)), None)
    if not security:
        base = mirror.rstrip("/")
        sibling = distro.security_sibling
        security = base + sibling if sibling and base.endswith(f"/{distro.name}") else base
    return Mirrors(mirror.rstrip("/"), security.rstrip("/"))
