"""What the commands share: their common options, and how a command gets root for a build."""

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from bootstrap import registry
from bootstrap.build import pipeline, recipe
from bootstrap.build.inputs import inputs_of
from bootstrap.build.plan import Options, make_plan
from bootstrap.errors import BootstrapError
from bootstrap.host import userns
from bootstrap.host.sandbox import isolate
from bootstrap.image.layer import Compression
from bootstrap.log import setup
from bootstrap.publish import changes as changes_mod
from bootstrap.records import lock as lock_mod
from bootstrap.registry.credentials import ENV_USER

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


def allowed(kw: dict[str, Any]) -> tuple[Path, ...]:
    """The directories --allow-path names."""
    return tuple(kw.get("allow_paths") or ())


def source_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Where the packages come from and how they are trusted: suite, arch, mirrors, keyrings, cache."""
    decorators = [
        click.option("--suite", help="Suite or codename (default: the recipe's: stable for Debian, lts for Ubuntu)."),
        click.option("--arch", help="Debian architecture (default: the host's)."),
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
    for opt in reversed(decorators):
        f = opt(f)
    return f


def options(lock: Path | None = None, **kw: Any) -> Options:
    """The build options a command's keyword arguments give."""
    return Options(
        lock=lock,
        suite=kw.get("suite"),
        arch=kw.get("arch"),
        mirror=kw.get("mirror"),
        security_mirror=kw.get("security_mirror"),
        keyrings=tuple(kw.get("keyrings") or ()),
        insecure=kw.get("insecure", False),
        check_valid_until=not kw.get("no_check_valid_until", False),
        cache_dir=kw.get("cache_dir"),
        output=kw.get("output"),
        tag=kw.get("tag"),
        epoch=kw.get("epoch"),
        offline=kw.get("offline", False),
        compression=Compression(kw.get("compression") or "gzip"),
        tmpfs=kw.get("tmpfs"),
        native_tools=kw.get("native_tools", True),
        sbom_formats=tuple(f for f in kw.get("sbom_formats") or () if f != "spdx"),
        default_user=False if kw.get("no_default_user") else None,
        allow_paths=allowed(kw),
        cache_max=kw.get("cache_max"),
    )


def cache_max_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """The cache's size cap, applied after each build."""
    return click.option(
        "--cache-max",
        metavar="SIZE",
        help="After the build, prune the cache to SIZE, least recently used first (e.g. 2G; 'off': no cap; "
        "default: $BOOTSTRAP_CACHE_MAX, else 5G).",
    )(f)


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
    for opt in reversed(decorators):
        f = opt(f)
    return registry_secrets(f)


def registry_opts(kw: dict[str, Any]) -> registry.Options:
    """Take the options `registry_access` (or `registry_options`, whose --insecure is the registry's) added out of
    a command's keyword arguments."""
    return registry.Options(
        creds=registry_creds(kw.pop("creds", None), kw.pop("password_stdin", False)),
        ca_cert=kw.pop("ca_cert", None),
        insecure=kw.pop("insecure_registry") if "insecure_registry" in kw else kw.pop("insecure", False),
        token_realms=tuple(kw.pop("token_realms", None) or ()),
    )


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


def changes_since(rec: recipe.Recipe, previous: lock_mod.Lock, kw: dict[str, Any]) -> changes_mod.Changes:
    """Resolve the recipe against today's archive and compare with a previous lock (made for the same recipe, suite
    and architecture: the lock's own unless the options say otherwise)."""
    kw = {**kw, "suite": kw.get("suite") or previous.suite, "arch": kw.get("arch") or previous.arch}
    plan = make_plan(rec, options(**kw))
    archive, selection = pipeline.resolve_plan(plan)
    asked = changes_mod.Asked(plan.recipe.name, plan.suite, plan.arch)
    return changes_mod.compare(previous, selection, archive.codename, inputs_of(plan.recipe), asked)
