"""The command line: parse options, call the pipeline, print. No build logic lives here."""

import atexit
import gc
import json
import os
import shutil
import signal
import sys
import threading
import time
import traceback
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

import click

from bootstrap import __version__, registry
from bootstrap.build import families, pipeline, recipe, recipe_schema, settings, steps
from bootstrap.build.inputs import inputs_of
from bootstrap.build.plan import Options, make_plan
from bootstrap.cli import cache as cli_cache
from bootstrap.cli import common as cli_common
from bootstrap.cli.common import (
    ALLOW_PATH,
    PUBLIC_KEY,
    SIGN_KEY,
    cache_max_option,
    changes_since,
    privileged,
    signing_key,
    source_options,
    verbosity,
    warn_insecure,
)
from bootstrap.errors import EX_SOFTWARE, BootstrapError, os_error
from bootstrap.host import userns
from bootstrap.host.cache import write_atomic
from bootstrap.image.layer import Compression
from bootstrap.log import log
from bootstrap.numbers import MAX_EPOCH
from bootstrap.publish import changes as changes_mod
from bootstrap.records import inspection, outputs
from bootstrap.records import lock as lock_mod

LAZY_COMMANDS = {
    "check": "check",
    "fleet": "fleet_cmd",
    "push": "push_cmd",
    "index": "index_cmd",
    "policy": "policy_cmd",
}
"""The registry commands (bootstrap/cli/registry.py): the module, and the registry client behind it, is loaded
only when one of them runs or help lists them."""


class DefaultGroup(click.Group):
    """`bootstrap RECIPE ...` means `bootstrap build RECIPE ...`; the registry commands are loaded when named."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in LAZY_COMMANDS and cmd_name not in self.commands:
            from bootstrap.cli import registry as cli_registry

            self.add_command(getattr(cli_registry, LAZY_COMMANDS[cmd_name]), cmd_name)
        return super().get_command(ctx, cmd_name)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and not args[0].startswith("-") and args[0] not in {*self.commands, *LAZY_COMMANDS}:
            args = ["build", *args]
        return super().parse_args(ctx, args)


@click.group(cls=DefaultGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bootstrap")
def cli() -> None:
    """Build minimal, reproducible base container images from distribution packages.

    `bootstrap RECIPE` is short for `bootstrap build RECIPE`.
    """


@cli.command(
    epilog=f"Writes {outputs.listing()}; a file of each architecture is NAME-ARCH.EXT in a multi-architecture build."
)
@click.argument("recipe_name", metavar="RECIPE")
@source_options
@click.option(
    "-o", "--output", type=click.Path(path_type=Path, readable=False), help="Output directory (default: dist/RECIPE)."
)
@click.option("--tag", help="Image name:tag (default: from the recipe, e.g. debian:trixie-slim).")
@click.option(
    "--epoch",
    type=click.IntRange(0, MAX_EPOCH),
    help="Timestamp for the image (default: SOURCE_DATE_EPOCH, then the archive's).",
)
@click.option("--offline", is_flag=True, help="Use only cached indexes and packages.")
@click.option(
    "--compression",
    type=click.Choice([c.value for c in Compression]),
    default="gzip",
    help="Layer compression (zstd needs Docker 23 or newer).",
)
@click.option("--tmpfs/--no-tmpfs", default=None, help="Build the tree in memory (default: when 4 GiB are free).")
@click.option(
    "--native-tools/--emulate-all",
    default=True,
    help="For a foreign --arch, run maintainer scripts' tools natively (default) or everything under qemu.",
)
@click.option(
    "--sbom-format",
    "sbom_formats",
    multiple=True,
    type=click.Choice(list(outputs.SBOM_FORMATS)),
    help=f"Also write the SBOM in this format (repeatable): {outputs.sbom_help()}.",
)
@click.option(
    "--lock",
    "lock_file",
    type=click.Path(path_type=Path, readable=False),
    help="Build exactly the packages of this lock.",
)
@click.option(
    "--if-changed",
    "if_changed",
    type=click.Path(path_type=Path, readable=False),
    help="Build only when a rebuild of DIR would change something (-o defaults to DIR).",
)
@click.option("--webhook", "webhooks", multiple=True, help="POST a JSON event here after the build (repeatable).")
@cache_max_option
@SIGN_KEY
@click.option(
    "--push",
    "pushes",
    multiple=True,
    metavar="REF",
    help="Push the image to REF after the build (repeatable; credentials as for `bootstrap push`).",
)
@verbosity
def build(
    recipe_name: str,
    lock_file: Path | None,
    if_changed: Path | None,
    webhooks: tuple[str, ...],
    pushes: tuple[str, ...],
    opts: Options,
    output: Path | None,
    tag: str | None,
    epoch: int | None,
    offline: bool,
    compression: str,
    tmpfs: bool | None,
    native_tools: bool,
    sbom_formats: tuple[str, ...],
    cache_max: str | None,
    sign_key: Path | None,
) -> None:
    """Build RECIPE into an image archive, its layer and its records (listed below).

    As an ordinary user, the build runs as root of a user namespace (see `bootstrap doctor`); a scriptless
    recipe (`scripts = false`) needs neither root nor a namespace."""
    rec = recipe.load(recipe_name, opts.allow_paths, given=True)
    key = signing_key(sign_key)
    if steps.needs_root(rec):
        privileged("building an image")
    opts = replace(
        opts,
        output=output or if_changed,
        tag=tag,
        epoch=epoch,
        offline=offline,
        compression=Compression(compression),
        tmpfs=tmpfs,
        native_tools=native_tools,
        sbom_formats=tuple(f for f in sbom_formats if f != "spdx"),
        cache_max=cache_max,
        sign_key=key,
    )
    changes = None
    if if_changed is not None:
        previous = lock_mod.read(if_changed)
        changes = changes_since(rec, previous, opts)
        if not changes:
            click.echo(changes.report(), nl=False)
            return
        click.echo(changes.report(), nl=False, err=True)
    plan = make_plan(rec, replace(opts, lock=lock_file))
    started = time.monotonic()
    result = pipeline.build(plan)
    click.echo(f"{result.tag} {result.manifest_digest}")
    pushed = {ref: registry.push(result.output, ref, registry.Options(), sign=key) for ref in pushes}
    for ref, digest in pushed.items():
        click.echo(f"{ref}@{digest}")
    if webhooks:
        event = _event("push" if pushes else "build", rec.name, result, changes)
        event["tags"] = [result.tag, *pushed]
        event["pushed"] = pushed
        from bootstrap.publish import webhook  # requests loads only for commands that use the network

        failed = webhook.notify(webhooks, event)
        if failed:
            click.echo(f"warning: {len(failed)} webhook(s) failed; the build is complete", err=True)
    for p in result.platforms:
        log.info(
            f"wrote {result.output}/{outputs.IMAGE.name()}: {p.arch}, {len(p.packages)} packages, layer "
            f"{p.layer.size / 1e6:.1f} MB {plan.compression}, {p.layer.tar_size / 1e6:.1f} MB tar, "
            f"{sum(p.timings.values()):.1f} s"
        )
    if len(result.platforms) > 1:
        log.info(f"{len(result.platforms)} platforms in {time.monotonic() - started:.1f} s")


def _event(kind: str, recipe_name: str, result: outputs.Built, changes: changes_mod.Changes | None) -> dict[str, Any]:
    return {
        "event": kind,
        "recipe": recipe_name,
        "tags": [result.tag],
        "codename": result.codename,
        "epoch": result.epoch,
        "output": str(result.output),
        "digests": {
            "index": result.index_digest,
            "manifest": result.manifest_digest,
            "platforms": {p.arch: p.image.manifest.digest for p in result.platforms},
        },
        "packages": len(result.first.packages),
        "changes": changes.as_dict() if changes is not None else None,
    }


@cli.command(name="lock")
@click.argument("recipe_name", metavar="RECIPE")
@source_options
@click.option(
    "-o", "--output", type=click.Path(path_type=Path, readable=False), help="Lock file (default: RECIPE.lock.json)."
)
@click.option(
    "--epoch",
    type=click.IntRange(0, MAX_EPOCH),
    help="Timestamp to record (default: SOURCE_DATE_EPOCH, then the archive's).",
)
@verbosity
def lock_cmd(recipe_name: str, output: Path | None, epoch: int | None, opts: Options) -> None:
    """Resolve RECIPE and write its lock file, without building."""
    rec = recipe.load(recipe_name, opts.allow_paths, given=True)
    dest = output or Path(f"{rec.name}.lock.json")
    if not dest.parent.is_dir():
        raise BootstrapError(f"cannot write {dest}: {dest.parent} is not a directory", "create it, or pass another -o")
    plan = make_plan(rec, replace(opts, epoch=epoch))
    archive, selection = pipeline.resolve_plan(plan)
    epoch = plan.epoch if plan.epoch is not None else archive.date
    r = plan.recipe
    lock = lock_mod.make_lock(
        r.name, str(r.distribution), plan.suite, plan.arch, epoch, archive, selection, inputs_of(r)
    )
    try:
        write_atomic(dest, lock.to_json())
    except OSError as exc:
        raise os_error(exc, dest) from exc
    click.echo(f"wrote {dest} ({len(selection.packages)} packages, {archive.codename})")


@cli.command(name="verify")
@click.argument("directory", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option(
    "--recipe",
    "recipe_name",
    metavar="RECIPE",
    help="The recipe DIRECTORY was built from (name or path; checked against its lock). Needed when the "
    "recipe it records copies local files, runs hooks or brings its own keyring.",
)
@PUBLIC_KEY
@source_options
@verbosity
def verify_cmd(directory: Path, recipe_name: str | None, key_file: Path | None, opts: Options) -> None:
    """Rebuild DIRECTORY from its lock and check every output is byte-identical (with --key: and that its
    records are signed by that key, before anything is rebuilt)."""
    from bootstrap.publish import verify as verify_mod  # with the keys' cryptography: not every command's start
    from bootstrap.sign import keys

    subject = verify_mod.examine(directory, recipe_name, opts.allow_paths)
    if key_file is not None:
        verify_mod.check_signatures(subject, keys.load_public(key_file))
    if steps.needs_root(subject.recipe):
        privileged("verifying a build")
    if subject.insecure:
        warn_insecure(directory)
    verdict = verify_mod.verify(subject, opts)
    if verdict.ok:
        signed = f"; the records are signed by {key_file}" if key_file is not None else ""
        click.echo(f"verified: {', '.join(verdict.compared)} rebuild bit for bit{signed}")
        return
    click.echo(f"NOT reproducible: {', '.join(verdict.differing)} differ", err=True)
    if verdict.diffoscope:
        click.echo(verdict.diffoscope)
    sys.exit(1)


@cli.command(name="keygen")
@click.option(
    "-o",
    "--output",
    "prefix",
    metavar="PREFIX",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("bootstrap"),
    show_default=True,
    help="Write PREFIX.key (the private key, mode 0600) and PREFIX.pub (the public key).",
)
def keygen_cmd(prefix: Path) -> None:
    """Write a new ECDSA P-256 key pair to sign builds with (--sign-key) and check them with (--key).

    The private key is encrypted with the password in $BOOTSTRAP_SIGN_PASSWORD (or $COSIGN_PASSWORD), else
    one asked twice on a terminal; with neither (or an empty one) it is written unencrypted. An existing file
    is never overwritten."""
    from bootstrap.sign import keys

    private, public = keys.write_pair(prefix, keys.generate(), keys.new_password())
    click.echo(f"wrote {private} and {public} (key id {keys.load_public(public).key_id()[:16]})")


@cli.command(name="inspect")
@click.argument("directory", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option(
    "--diff",
    "other",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    help="Compare with another build's directory.",
)
@click.option("--top", type=int, default=0, help="Show only the N largest packages.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def inspect_cmd(directory: Path, other: Path | None, top: int, as_json: bool) -> None:
    """Digests, sizes, and the size each package takes, largest first."""
    first = inspection.inspect(directory, families.databases())
    if other is not None:
        second = inspection.inspect(other, families.databases())
        if as_json:
            click.echo(json.dumps({"a": first.as_dict(), "b": second.as_dict()}, indent=2))
        else:
            click.echo(inspection.render_diff(first, second), nl=False)
        return
    click.echo(json.dumps(first.as_dict(), indent=2) if as_json else inspection.render(first, top), nl=False)


@cli.command(name="doctor")
def doctor_cmd() -> None:
    """Check what building without root needs and the host programs builds run, and say how to fix what is
    missing."""
    tools = [
        userns.Finding(f"{tool} on PATH ({why})", shutil.which(tool) is not None, f"as root: {fix}")
        for tool, why, fix in families.HOST_TOOLS
    ]
    if os.geteuid() == 0:
        click.echo("running as root: builds need no user namespace")
        findings = tools
    else:
        findings = [*userns.check(), *tools]
    for f in findings:
        click.echo(f"{'ok  ' if f.ok else 'FAIL'} {f.what}")
        if not f.ok:
            click.echo(f"     fix: {f.fix}")
    if not all(f.ok for f in findings):
        sys.exit(1)
    if os.geteuid() != 0:
        click.echo("builds without root work here")


@cli.command(name="list")
def list_recipes() -> None:
    """List the available recipes."""
    for name in recipe.available():
        click.echo(f"{name}\t{recipe.load(name).description}")


@cli.command()
@click.argument("recipe_name", metavar="RECIPE")
@ALLOW_PATH
def show(recipe_name: str, allow_paths: tuple[Path, ...]) -> None:
    """Print a recipe with everything it extends merged in, as JSON."""
    click.echo(json.dumps(recipe.load(recipe_name, allow_paths, given=True).as_dict(), indent=2))


@cli.command(name="new")
@click.argument("name")
@click.option("--from", "parent", default="debian-slim", show_default=True, help="The recipe to extend.")
@click.option("-o", "--output", type=click.Path(path_type=Path, readable=False), help="File (default: NAME.toml).")
def new_cmd(name: str, parent: str, output: Path | None) -> None:
    """Write a commented starting recipe NAME.toml that extends another one."""
    family = settings.family_of(recipe.load(parent))
    dest = output or Path(f"{name}.toml")
    if dest.exists():
        raise BootstrapError(f"{dest} already exists", "choose another NAME or -o FILE, or remove it")
    write_atomic(dest, recipe_schema.template(parent, family).encode())
    click.echo(f"wrote {dest}: edit it, then `bootstrap build {dest}`")


@cli.command(name="resolve")
@click.argument("recipe_name", metavar="RECIPE")
@source_options
@verbosity
def resolve_cmd(recipe_name: str, opts: Options) -> None:
    """Print the package set RECIPE resolves to: name, version, architecture."""
    plan = make_plan(recipe.load(recipe_name, opts.allow_paths, given=True), opts)
    _, selection = pipeline.resolve_plan(plan)
    for p in selection.packages:
        click.echo(f"{p.name}\t{p.version}\t{p.arch}")


cli.add_command(cli_cache.cache)


def _terminate(signum: int, frame: Any) -> NoReturn:
    raise KeyboardInterrupt


def _fail(exc: BootstrapError) -> NoReturn:
    if cli_common.debug:
        traceback.print_exc()
    click.echo(f"error: {exc.message}", err=True)
    if exc.hint:
        click.echo(f"hint: {exc.hint}", err=True)
    sys.exit(exc.exit_code)


def main() -> int:
    """Run the CLI: every failure ends as `error:` and `hint:` lines and an exit code, a traceback only with
    --debug (1: an error the user can act on; 2: usage; 70: a bug; 130: interrupted); a command that ends well
    returns its exit code (what a `ctx.exit(n)` gives, without standalone mode: else 0)."""
    signal.signal(signal.SIGTERM, _terminate)
    # A build makes a few million small objects and almost no reference cycles: collect young ones seldom.
    gc.set_threshold(100_000, 20, 20)
    try:
        result = cli(standalone_mode=False)
    except BootstrapError as exc:
        _fail(exc)
    except click.exceptions.Abort:
        click.echo("error: interrupted; nothing was written", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        click.echo("error: interrupted; nothing was written", err=True)
        sys.exit(130)
    except click.UsageError as exc:
        command = exc.ctx.command_path if exc.ctx else "bootstrap"
        click.echo(f"error: {exc.format_message()}", err=True)
        click.echo(f"hint: see `{command} --help`", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except OSError as exc:
        _fail(os_error(exc))
    except Exception as exc:
        _fail(_internal(exc))
    return result if isinstance(result, int) and not isinstance(result, bool) else 0


def run() -> NoReturn:
    """The `bootstrap` command: `main`, then, when it returns, the exit handlers (the cache's claims released,
    logging flushed) and the standard streams flushed, and an exit without the interpreter's teardown: freeing a
    build's millions of objects one by one (and collecting them) took a tenth of a second, for nothing. A
    stream that cannot be flushed (a closed pipe) gives 120, as Python's own exit does; a thread still at work
    (none should be) is waited for by an ordinary exit."""
    code = main()
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.exit(code)  # a thread still at work (none should be): the interpreter's exit waits for it
    atexit._run_exitfuncs()
    unflushed = False
    for stream in (sys.stdout, sys.stderr):
        if stream is None:  # closed when the command started: nothing to flush, as Python's exit says
            continue
        try:
            stream.flush()
        except (OSError, ValueError):
            unflushed = True
    os._exit(120 if unflushed else code)


def _internal(exc: Exception) -> BootstrapError:
    """An exception nothing expected: a bug, said in one line, with a distinct exit code."""
    error = BootstrapError(
        f"internal error: {type(exc).__name__}: {' '.join(str(exc).split())}",
        "run again with --debug for a traceback and report it",
    )
    error.exit_code = EX_SOFTWARE
    return error
