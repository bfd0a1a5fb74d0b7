"""Registry credentials the way Docker users keep them: --creds, the environment, or Docker's config.json.

The Docker config (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`) is read as docker reads it:
`credHelpers.<host>`, then `credsStore`, then `auths.<host>.auth` (base64 `user:password`) or
`identitytoken`. A helper is `docker-credential-<name> get` with the server address on stdin. A key names a
registry by its host alone or as a URL (`https://HOST/v1/`, as `docker login` keeps some registries'), and
either matches a reference on HOST; a helper that keeps nothing under HOST is asked for what it keeps under
such a URL (`docker-credential-<name> list`).
"""

import base64
import json
import os
import shutil
import subprocess
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bootstrap.log import log
from bootstrap.registry.errors import RegistryError
from bootstrap.registry.reference import login_command

ENV_USER = "BOOTSTRAP_REGISTRY_USER"
ENV_PASSWORD = "BOOTSTRAP_REGISTRY_PASSWORD"
IDENTITY_USER = "<token>"
"""The user name a credential helper gives for an OAuth2 refresh (identity) token."""


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str
    source: str
    """Where they came from, for error messages: `--creds`, `environment`, a file or a helper."""

    @property
    def identity_token(self) -> str | None:
        return self.password if self.username == IDENTITY_USER else None

    def basic(self) -> str:
        return "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()

    def __repr__(self) -> str:
        return f"Credentials({self.username!r}, <hidden>, {self.source!r})"


def login_hint(host: str) -> str:
    return f"log in with `{login_command(host)}`, pass --creds USER:PASSWORD, or set {ENV_USER} and {ENV_PASSWORD}"


def config_dir(explicit: Path | None = None) -> Path:
    if explicit is not None:
        return explicit
    env = os.environ.get("DOCKER_CONFIG")
    return Path(env) if env else Path.home() / ".docker"


def _key(server: str) -> str:
    """`https://host:5000/v1/` and `host:5000` name the same registry in config.json."""
    if "://" in server:
        server = urllib.parse.urlsplit(server).netloc
    return server.split("/", 1)[0]


def _names(server: str, host: str) -> bool:
    """A config.json key `server` names the registry `host`."""
    return _key(server).lower() == host.lower()


def _for(entries: dict[str, Any], host: str) -> list[tuple[str, Any]]:
    """The entries of a config.json map for `host`, the one under the bare host first."""
    return sorted(((k, v) for k, v in entries.items() if _names(k, host)), key=lambda kv: kv[0] != host)


def _ask(exe: str, name: str, command: str, server: str, host: str) -> str | None:
    """`docker-credential-<name> COMMAND` with `server` on stdin, on the way to `host`'s credentials: its
    answer, None for "credentials not found"."""
    where = f"docker-credential-{name} {command} failed for {server or host}"
    try:
        proc = subprocess.run([exe, command], input=server, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RegistryError(f"{where}: {exc}", login_hint(host)) from exc
    if proc.returncode != 0:
        if "credentials not found" in (proc.stdout + proc.stderr).lower():
            return None
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise RegistryError(f"{where}: {detail[-1] if detail else proc.returncode}", login_hint(host))
    return proc.stdout


def _kept_under(exe: str, name: str, host: str) -> list[str]:
    """The server names other than `host` itself under which the helper keeps credentials for `host` (none
    when it cannot list what it keeps: `list` is optional to helpers)."""
    try:
        servers = json.loads(_ask(exe, name, "list", "", host) or "{}")
    except (RegistryError, ValueError) as exc:
        log.debug("docker-credential-%s list: %s", name, exc)
        return []
    if not isinstance(servers, dict):
        return []
    return sorted(s for s in servers if isinstance(s, str) and s != host and _names(s, host))


def _from_helper(name: str, host: str, known: Sequence[str] = ()) -> Credentials | None:
    """Ask `docker-credential-<name>` for the credentials it keeps for the registry `host`: under `host`, else under
    the config's other keys that name it (`known`: docker leaves an empty `auths` entry for each server it gave a
    helper), else under a server name the helper lists that names it."""
    exe = shutil.which(f"docker-credential-{name}")
    if exe is None:
        raise RegistryError(
            f"the Docker config names credential helper {name!r} but docker-credential-{name} is not on PATH",
            "install the helper, or pass --creds USER:PASSWORD",
        )

    def servers() -> Iterator[str]:
        yield host
        yield from (k for k in known if k != host)
        yield from (k for k in _kept_under(exe, name, host) if k not in known)

    answer = next((a for server in servers() if (a := _ask(exe, name, "get", server, host)) is not None), None)
    if answer is None:
        return None
    try:
        found = json.loads(answer)
        return Credentials(found["Username"], found["Secret"], f"docker-credential-{name}")
    except (ValueError, KeyError, TypeError) as exc:
        raise RegistryError(f"docker-credential-{name} gave an unreadable answer for {host}", str(exc)) from exc


def _from_auths(auths: dict[str, Any], host: str, path: Path) -> Credentials | None:
    for server, entry in _for(auths, host):
        if not isinstance(entry, dict):
            continue
        if entry.get("identitytoken"):
            return Credentials(IDENTITY_USER, entry["identitytoken"], str(path))
        if entry.get("auth"):
            try:
                user, sep, password = base64.b64decode(entry["auth"]).decode().partition(":")
            except ValueError as exc:
                raise RegistryError(f"{path}: auths.{server}.auth is not base64 of user:password", "") from exc
            if sep:
                return Credentials(user, password, str(path))
        if entry.get("username") and entry.get("password"):
            return Credentials(entry["username"], entry["password"], str(path))
    return None


def from_docker_config(host: str, directory: Path | None = None) -> Credentials | None:
    path = config_dir(directory) / "config.json"
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise RegistryError(f"cannot read {path}: {exc}", "fix or remove the Docker config file") from exc
    if not isinstance(config, dict):
        raise RegistryError(f"cannot read {path}: not a JSON object", "fix or remove the Docker config file")
    helpers = _for(config.get("credHelpers") or {}, host)
    known = [k for k, _ in (*helpers, *_for(config.get("auths") or {}, host))]
    if helpers:
        return _from_helper(helpers[0][1], host, known)
    if config.get("credsStore"):
        found = _from_helper(config["credsStore"], host, known)
        if found is not None:
            return found
    return _from_auths(config.get("auths") or {}, host, path)


def lookup(host: str, creds: str | None = None, docker_config: Path | None = None) -> Credentials | None:
    """The credentials for `host`: --creds, else the environment, else the Docker config; None: anonymous."""
    if creds is not None:
        user, sep, password = creds.partition(":")
        if not sep or not user:
            raise RegistryError("--creds must be USER:PASSWORD", login_hint(host))
        return Credentials(user, password, "--creds")
    env_user, env_password = os.environ.get(ENV_USER), os.environ.get(ENV_PASSWORD)
    if env_user and env_password is not None:
        return Credentials(env_user, env_password, "environment")
    if env_user or env_password:
        log.warning(f"set both {ENV_USER} and {ENV_PASSWORD}; ignoring the one that is set")
    return from_docker_config(host, docker_config)
