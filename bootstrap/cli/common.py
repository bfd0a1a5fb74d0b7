"""What the commands share: their common options, and how a command gets root for a build."""

import functools
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from bootstrap import registry
from bootstrap.build import pipeline, recipe
from bootstrap.build.inputs import inputs_of
from bootstrap.build.plan import Options, make_plan
from bootstrap.errors import BootstrapError
from bootstrap.host import userns
from bootstrap.host.arches import arch_name
from bootstrap.host.sandbox import isolate
from bootstrap.log import setup
from bootstrap.publish import changes as changes_mod
from bootstrap.records import lock as lock_mod
from bootstrap.registry.credentials import ENV_USER

if TYPE_CHECKING:
    from bootstrap.sign import keys

debug = False
"""Set by --debug: errors then come with their traceback."""


def verbosity(f: Callable[..., Any]) -> Callable[..., Any]:
    """-q, -v and --debug."""

    @click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors; no progress bars.")
    @click.option("-v", "--verbose", count=True, help="More detail (-vv for debug output).")
    @click.option("--debug", "debug_flag", is_flag=True, help="Debug output, and a traceback on errors.")
    @functools.wraps(f)
    def wrapper(*args: Any, quiet: bool, verbose: int, debug_flag: bool, **kwargs: Any) -> Any:
        global debug
        debug = debug_flag
        setup(2 if debug_flag else verbose + 1, quiet)
        return f(*args, **kwargs)

    return wrapper


ALLOW_PATH = click.option(
    "--allow-path",
    "allow_paths",
    multiple=True,
    metavar="DIR",
    envvar="BOOTSTRAP_ALLOW_PATH",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    help="Let recipes read local files and keyrings in DIR too, not only in their own directory (repeatable; "
    "default: $BOOTSTRAP_ALLOW_PATH, ':'-separated).",
)
"""Recipes name local files only inside their own directory, unless the user widens that here."""


SIGN_KEY = click.option(
    "--sign-key",
    metavar="FILE",
    envvar="BOOTSTRAP_SIGN_KEY",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="Sign with the ECDSA P-256 key in FILE (`bootstrap keygen` writes one; cosign's key files too; default: "
    "$BOOTSTRAP_SIGN_KEY). An encrypted key's password comes from $BOOTSTRAP_SIGN_PASSWORD or $COSIGN_PASSWORD, "
    "else a prompt.",
)
"""The signing key of builds, pushes and fleets: `keys.load_private(path, keys.password_for(path))`."""

PUBLIC_KEY = click.option(
    "--key",
    "key_file",
    metavar="PUB",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="Trust the records only when signed by this public key (the .pub of `bootstrap keygen`, or cosign's): "
    "their DSSE envelopes are checked first, and a missing envelope, another key or a changed byte is an error.",
)
"""The public key that checks signed records (`verify`, `check`)."""


def signing_key(path: Path | None) -> "keys.SigningKey | None":
    """The key `--sign-key` names, read (and its password asked) before anything else is done; None without one."""
    if path is None:
        return None
    from bootstrap.sign import keys  # cryptography, loaded only when a build signs

    return keys.load_private(path, keys.password_for(path))


def _our_arch_names(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """--arch by our (Debian's) names, whatever names it was given in, so that every command compares like with
    like (a lock's or a registry's architecture); a name none of ours stands for is left for the plan to refuse."""
    if value is None:
        return None
    return ",".join(arch_name(a.strip()) or a.strip() for a in value.split(","))


def source_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Where the packages come from and how they are trusted: suite, arch, mirrors, keyrings, cache. The command
    gets them as one typed value, `opts: Options`, and adds its own options to it with `dataclasses.replace`."""
    decorators = [
        click.option("--suite", help="Suite or codename (default: the recipe's: stable for Debian, lts for Ubuntu)."),
        click.option(
            "--arch",
            help="Architecture(s), comma-separated, by Debian's name or the kernel's: amd64 or x86_64, arm64 or "
            "aarch64 (default: the host's).",
            callback=_our_arch_names,
        ),
        click.option(
            "--mirror",
            help="Archive mirror URL (default: $BOOTSTRAP_<DISTRO>_MIRROR, then apt sources, then debootstrap's).",
        ),
        click.option("--security-mirror", help="Security archive URL (default: from apt sources, else the mirror's)."),
        click.option(
            "--keyring",
            "keyrings",
            multiple=True,
            type=click.Path(path_type=Path, readable=False),
            help="OpenPGP keyring that signs the archive (repeatable; default: the host's).",
        ),
        click.option("--insecure", is_flag=True, help="Do not check archive signatures (loud warning)."),
        click.option("--no-check-valid-until", is_flag=True, help="Accept expired Release files (snapshot mirrors)."),
        click.option(
            "--no-default-user",
            is_flag=True,
            help="Leave out the recipe's default user (Ubuntu's `ubuntu`, uid 1000).",
        ),
        click.option(
            "--cache-dir", type=click.Path(path_type=Path, readable=False), help="Cache directory (default: XDG cache)."
        ),
        ALLOW_PATH,
    ]

    @functools.wraps(f)
    def wrapper(
        *args: Any,
        suite: str | None,
        arch: str | None,
        mirror: str | None,
        security_mirror: str | None,
        keyrings: tuple[Path, ...],
        insecure: bool,
        no_check_valid_until: bool,
        no_default_user: bool,
        cache_dir: Path | None,
        allow_paths: tuple[Path, ...],
        **kwargs: Any,
    ) -> Any:
        opts = Options(
            suite=suite,
            arch=arch,
            mirror=mirror,
            security_mirror=security_mirror,
            keyrings=tuple(keyrings),
            insecure=insecure,
            check_valid_until=not no_check_valid_until,
            default_user=False if no_default_user else None,
            cache_dir=cache_dir,
            allow_paths=tuple(allow_paths),
        )
        return f(*args, opts=opts, **kwargs)

    for opt in reversed(decorators):
        wrapper = opt(wrapper)
    return wrapper


def cache_max_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """The cache's size cap, applied after each build."""
    return click.option(
        "--cache-max",
        metavar="SIZE",
        help="After the build, prune the cache to SIZE, least recently used first (e.g. 2G; 'off': no cap; "
        "default: $BOOTSTRAP_CACHE_MAX, else 5G).",
    )(f)


@dataclass(frozen=True)
class RegistryAccess:
    """What `registry_access` or `registry_options` give a command, as `access`; `options()` reads a
    --password-stdin password (when the command first needs the registry)."""

    creds: str | None
    password_stdin: bool
    ca_cert: Path | None
    insecure: bool
    token_realms: tuple[str, ...]

    def options(self) -> registry.Options:
        return registry.Options(
            creds=registry_creds(self.creds, self.password_stdin),
            ca_cert=self.ca_cert,
            insecure=self.insecure,
            token_realms=self.token_realms,
        )


def _registry(f: Callable[..., Any], insecure_flag: str) -> Callable[..., Any]:
    """Hand the registry options to `f` as one `access: RegistryAccess`; `insecure_flag`: the keyword of the
    option that skips TLS verification (`insecure`, or `insecure_registry` beside the archive options)."""

    @functools.wraps(f)
    def wrapper(
        *args: Any,
        creds: str | None,
        ca_cert: Path | None,
        password_stdin: bool,
        token_realms: tuple[str, ...],
        **kwargs: Any,
    ) -> Any:
        insecure = kwargs.pop(insecure_flag)
        access = RegistryAccess(creds, password_stdin, ca_cert, bool(insecure), tuple(token_realms))
        return f(*args, access=access, **kwargs)

    return wrapper


def registry_access(f: Callable[..., Any]) -> Callable[..., Any]:
    """Reaching a registry from a command that also has archive options (whose --insecure is about signatures)."""
    decorators = [
        click.option(
            "--creds",
            metavar="USER:PASSWORD",
            help="Registry credentials (default: as for `bootstrap push`).",
        ),
        click.option(
            "--ca-cert",
            type=click.Path(path_type=Path, exists=True, dir_okay=False),
            help="Also trust this CA for the registry.",
        ),
        click.option(
            "--insecure-registry", is_flag=True, help="Skip the registry's TLS verification and allow plain HTTP."
        ),
    ]
    f = _registry(f, "insecure_registry")
    for opt in reversed(decorators):
        f = opt(f)
    return registry_secrets(f)


def registry_secrets(f: Callable[..., Any]) -> Callable[..., Any]:
    """Options of every command that reaches a registry: the password off the command line, trusted realms."""
    f = click.option(
        "--password-stdin",
        is_flag=True,
        help="Read the registry password from the first line of standard input; the user is --creds USER "
        "(or $BOOTSTRAP_REGISTRY_USER).",
    )(f)
    return click.option(
        "--token-realm",
        "token_realms",
        multiple=True,
        metavar="HOST",
        help="Also send the credentials to a token server on HOST (or HOST:PORT) when the registry names it as its "
        "realm (repeatable; also $BOOTSTRAP_REGISTRY_TOKEN_REALMS). Default: only the registry's own host.",
    )(f)


def registry_creds(creds: str | None, password_stdin: bool) -> str | None:
    """--creds USER:PASSWORD; or with --password-stdin, USER from --creds (or the environment) and the password
    from the first line of standard input, as `docker login --password-stdin` reads it."""
    if not password_stdin:
        return creds
    if creds and ":" in creds:
        raise BootstrapError(
            "--password-stdin reads the password from standard input, but --creds gives one too",
            "pass --creds USER (without the password)",
        )
    user = creds or os.environ.get(ENV_USER)
    if not user:
        raise BootstrapError("--password-stdin needs a user name", f"pass --creds USER, or set {ENV_USER}")
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise BootstrapError("--password-stdin: no password on standard input", "pipe the password into the command")
    return f"{user}:{password}"


def registry_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Reaching a registry from a command that has no archive options (push, index)."""
    decorators = [
        click.option(
            "--creds",
            metavar="USER:PASSWORD",
            help="Registry credentials (default: $BOOTSTRAP_REGISTRY_USER and $BOOTSTRAP_REGISTRY_PASSWORD, "
            "then Docker's config.json and credential helpers).",
        ),
        click.option(
            "--ca-cert",
            type=click.Path(path_type=Path, exists=True, dir_okay=False),
            help="Also trust this CA (beside the system CAs and /etc/docker/certs.d/HOST:PORT/*.crt).",
        ),
        click.option("--insecure", is_flag=True, help="Skip TLS verification and allow plain HTTP."),
    ]
    f = _registry(f, "insecure")
    for opt in reversed(decorators):
        f = opt(f)
    return registry_secrets(f)


def warn_insecure(what: Path | str) -> None:
    """Say loudly that a build being compared or verified was made without signature checks."""
    click.echo(f"warning: {what} was built with --insecure: no archive signature vouched for its packages", err=True)


def privileged(what: str) -> None:
    """Root for the build: real root (with mounts of its own), or root of a user namespace of its own."""
    if os.geteuid() != 0:
        userns.enter(what)
    if not userns.inside():
        isolate()


def changes_since(rec: recipe.Recipe, previous: lock_mod.Lock, opts: Options) -> changes_mod.Changes:
    """Resolve the recipe against today's archive and compare with a previous lock (made for the same recipe, suite
    and architecture: the lock's own unless the options say otherwise)."""
    plan = make_plan(rec, replace(opts, suite=opts.suite or previous.suite, arch=opts.arch or previous.arch))
    archive, selection = pipeline.resolve_plan(plan)
    asked = changes_mod.Asked(plan.recipe.name, plan.suite, plan.arch)
    return changes_mod.compare(previous, selection, archive.codename, inputs_of(plan.recipe), asked)
