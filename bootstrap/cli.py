"""The command line: parse options, call the pipeline, print. No build logic lives here."""

import functools
import json
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click

from bootstrap import (
    __version__,
    fleetrun,
    inspection,
    pipeline,
    recipe,
    recipe_schema,
    records,
    registry,
    steps,
    userns,
    webhook,
)
from bootstrap import changes as changes_mod
from bootstrap import fleet as fleet_mod
from bootstrap import lock as lock_mod
from bootstrap import verify as verify_mod
from bootstrap.cache import write_atomic
from bootstrap.errors import EX_SOFTWARE, BootstrapError, os_error
from bootstrap.image.layer import Compression
from bootstrap.log import log, setup
from bootstrap.plan import Options, host_arch, make_plan
from bootstrap.registry import artifacts
from bootstrap.sandbox import isolate

_debug = False


class DefaultGroup(click.Group):
    """`bootstrap RECIPE ...` means `bootstrap build RECIPE ...`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            args = ["build", *args]
        return super().parse_args(ctx, args)


def _verbosity(f: Callable[..., Any]) -> Callable[..., Any]:
    @click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors; no progress bars.")
    @click.option("-v", "--verbose", count=True, help="More detail (-vv for debug output).")
    @click.option("--debug", is_flag=True, help="Debug output, and a traceback on errors.")
    @functools.wraps(f)
    def wrapper(*args: Any, quiet: bool, verbose: int, debug: bool, **kwargs: Any) -> Any:
        global _debug
        _debug = debug
        setup(2 if debug else verbose + 1, quiet)
        return f(*args, **kwargs)

    return wrapper


def _source_options(f: Callable[..., Any]) -> Callable[..., Any]:
    options = [
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
    ]
    for opt in reversed(options):
        f = opt(f)
    return f


def _options(lock: Path | None = None, **kw: Any) -> Options:
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
    )


@click.group(cls=DefaultGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bootstrap")
def cli() -> None:
    """Build minimal, reproducible base container images from distribution packages.

    `bootstrap RECIPE` is short for `bootstrap build RECIPE`.
    """


@cli.command()
@click.argument("recipe_name", metavar="RECIPE")
@_source_options
@click.option(
    "-o", "--output", type=click.Path(path_type=Path, readable=False), help="Output directory (default: dist/RECIPE)."
)
@click.option("--tag", help="Image name:tag (default: from the recipe, e.g. debian:trixie-slim).")
@click.option("--epoch", type=int, help="Timestamp for the image (default: SOURCE_DATE_EPOCH, then the archive's).")
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
    type=click.Choice(list(records.SBOM_FORMATS)),
    help="Also write the SBOM in this format (repeatable): cyclonedx (CycloneDX 1.6 JSON, sbom.cdx.json); SPDX 2.3 "
    "(sbom.spdx.json) and SPDX 3.0.1 (sbom.spdx3.json) are always written.",
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
@click.option(
    "--push",
    "pushes",
    multiple=True,
    metavar="REF",
    help="Push the image to REF after the build (repeatable; credentials as for `bootstrap push`).",
)
@_verbosity
def build(
    recipe_name: str,
    lock_file: Path | None,
    if_changed: Path | None,
    webhooks: tuple[str, ...],
    pushes: tuple[str, ...],
    **kw: Any,
) -> None:
    """Build RECIPE into an image tar, a rootfs tarball, a lock, an SBOM and provenance.

    As an ordinary user, the build runs as root of a user namespace (see `bootstrap doctor`); a scriptless
    recipe (`scripts = false`) needs neither root nor a namespace."""
    rec = recipe.load(recipe_name)
    if steps.needs_root(rec):
        _privileged("building an image")
    changes = None
    if if_changed is not None:
        previous = lock_mod.read(if_changed)
        kw["output"] = kw.get("output") or if_changed
        changes = _changes(rec, previous, kw)
        if not changes:
            click.echo(changes.report(), nl=False)
            return
        click.echo(changes.report(), nl=False, err=True)
    plan = make_plan(rec, _options(lock=lock_file, **kw))
    started = time.monotonic()
    result = pipeline.build(plan)
    click.echo(f"{result.tag} {result.manifest_digest}")
    pushed = {ref: registry.push(result.output, ref, registry.Options()) for ref in pushes}
    for ref, digest in pushed.items():
        click.echo(f"{ref}@{digest}")
    if webhooks:
        event = _event("push" if pushes else "build", rec.name, result, changes)
        event["tags"] = [result.tag, *pushed]
        event["pushed"] = pushed
        failed = webhook.notify(webhooks, event)
        if failed:
            click.echo(f"warning: {len(failed)} webhook(s) failed; the build is complete", err=True)
    for p in result.platforms:
        log.info(
            f"wrote {result.output}/image.tar: {p.arch}, {len(p.selection.packages)} packages, layer "
            f"{p.layer.size / 1e6:.1f} MB {plan.compression}, {p.layer.tar_size / 1e6:.1f} MB tar, "
            f"{sum(p.timings.values()):.1f} s"
        )
    if len(result.platforms) > 1:
        log.info(f"{len(result.platforms)} platforms in {time.monotonic() - started:.1f} s")


def _warn_insecure(what: Path | str) -> None:
    click.echo(f"warning: {what} was built with --insecure: no archive signature vouched for its packages", err=True)


def _privileged(what: str) -> None:
    """Root for the build: real root (with mounts of its own), or root of a user namespace of its own."""
    if os.geteuid() != 0:
        userns.enter(what)
    if not userns.inside():
        isolate()


def _changes(rec: recipe.Recipe, previous: lock_mod.Lock, kw: dict[str, Any]) -> changes_mod.Changes:
    """Resolve the recipe against today's archive and compare with a previous lock."""
    kw = {**kw, "suite": kw.get("suite") or previous.suite, "arch": kw.get("arch") or previous.arch}
    plan = make_plan(rec, _options(**kw))
    archive, selection = pipeline.resolve_plan(plan)
    return changes_mod.compare(previous, selection, archive.codename, lock_mod.inputs_of(plan.recipe))


def _event(kind: str, recipe_name: str, result: pipeline.Result, changes: changes_mod.Changes | None) -> dict[str, Any]:
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
        "packages": len(result.packages.packages),
        "changes": changes.as_dict() if changes is not None else None,
    }


@cli.command(name="lock")
@click.argument("recipe_name", metavar="RECIPE")
@_source_options
@click.option(
    "-o", "--output", type=click.Path(path_type=Path, readable=False), help="Lock file (default: RECIPE.lock.json)."
)
@click.option("--epoch", type=int, help="Timestamp to record (default: SOURCE_DATE_EPOCH, then the archive's).")
@_verbosity
def lock_cmd(recipe_name: str, output: Path | None, **kw: Any) -> None:
    """Resolve RECIPE and write its lock file, without building."""
    rec = recipe.load(recipe_name)
    dest = output or Path(f"{rec.name}.lock.json")
    if not dest.parent.is_dir():
        raise BootstrapError(f"cannot write {dest}: {dest.parent} is not a directory", "create it, or pass another -o")
    plan = make_plan(rec, _options(**kw))
    archive, selection = pipeline.resolve_plan(plan)
    epoch = plan.epoch if plan.epoch is not None else archive.date
    lock = lock_mod.make_lock(plan.recipe, plan.suite, plan.arch, epoch, archive, selection)
    try:
        write_atomic(dest, lock.to_json())
    except OSError as exc:
        raise os_error(exc, dest) from exc
    click.echo(f"wrote {dest} ({len(selection.packages)} packages, {archive.codename})")


def _registry_access(f: Callable[..., Any]) -> Callable[..., Any]:
    """Reaching a registry from a command that also has archive options (whose --insecure is about signatures)."""
    options = [
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
    for opt in reversed(options):
        f = opt(f)
    return f


def _registry_opts(kw: dict[str, Any]) -> registry.Options:
    return registry.Options(
        creds=kw.pop("creds", None), ca_cert=kw.pop("ca_cert", None), insecure=kw.pop("insecure_registry", False)
    )


def _previous(against: str, kw: dict[str, Any]) -> tuple[lock_mod.Lock, str]:
    """The lock to compare with: of a build directory or lock file, or attached to an image in a registry."""
    reg_opts = _registry_opts(kw)
    path = Path(against)
    if path.exists() or not registry.looks_like_reference(against):
        return lock_mod.read(path), against
    found = artifacts.lock_at(against, kw.get("arch") or host_arch(), reg_opts)
    if found is None:
        raise BootstrapError(f"{against} is not in the registry", "check the reference, or push the image first")
    return found[0], f"{against}@{found[1]}"


@cli.command()
@click.argument("recipe_name", metavar="RECIPE")
@click.option(
    "--against",
    required=True,
    help="Output directory of a previous build, its lock file, or its image in a registry (HOST/REPO:TAG).",
)
@_source_options
@_registry_access
@click.option("--json", "as_json", is_flag=True, help="Print the changes as JSON.")
@_verbosity
def check(recipe_name: str, against: str, as_json: bool, **kw: Any) -> None:
    """Say whether a rebuild of RECIPE would change anything: exit 0 when not, 10 when a rebuild is due.

    Against a registry reference, the lock attached to the pushed image is read (with the credentials `push`
    uses): no local file is needed."""
    previous, where = _previous(against, kw)
    if previous.insecure:
        _warn_insecure(where)
    changes = _changes(recipe.load(recipe_name), previous, kw)
    click.echo(json.dumps(changes.as_dict(), indent=2) if as_json else changes.report().rstrip("\n"))
    if changes:
        sys.exit(changes_mod.REBUILD_DUE)


@cli.command(name="fleet")
@click.argument("fleet_file", metavar="FILE", type=click.Path(path_type=Path, readable=False))
@click.option(
    "--matrix",
    "matrix",
    is_flag=False,
    flag_value="github",
    type=click.Choice(["github", "gitlab"]),
    help="Print the jobs as JSON for a CI matrix (github: strategy.matrix; gitlab: parallel:matrix) and exit.",
)
@click.option("--job", "job_id", metavar="ID", help="Run one job of the matrix (check, build, push).")
@click.option("--assemble", is_flag=True, help="Put the multi-architecture indexes over what the jobs pushed.")
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, readable=False),
    default=Path("dist/fleet"),
    show_default=True,
    help="Where each job's build goes (DIR/JOB).",
)
@click.option("--webhook", "webhooks", multiple=True, help="POST an event for every pushed image (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@_source_options
@_registry_access
@_verbosity
def fleet_cmd(
    fleet_file: Path,
    matrix: str | None,
    job_id: str | None,
    assemble: bool,
    webhooks: tuple[str, ...],
    as_json: bool,
    **kw: Any,
) -> None:
    """Keep the images FILE lists fresh: build those whose check against the registry says something changed,
    push them, and assemble multi-architecture indexes. Prints a summary table."""
    if sum((matrix is not None, job_id is not None, assemble)) > 1:
        raise click.UsageError("--matrix, --job and --assemble are separate steps: give one")
    fleet = fleet_mod.load(fleet_file, kw.get("arch") or host_arch(), lambda name: recipe.load(name).suite)
    if matrix is not None:
        click.echo(fleet_mod.dumps_matrix(fleet, matrix))
        return
    reg_opts = _registry_opts(kw)
    if not assemble and any(steps.needs_root(recipe.load(image.recipe)) for image in fleet.images):
        _privileged("building images")
    runner = fleetrun.Runner(fleet, _options(**kw), reg_opts, kw.get("output") or Path("dist/fleet"), webhooks)
    if assemble:
        rows = runner.assemble_all()
    elif job_id is not None:
        rows = runner.run([fleet.job(job_id)], assemble=False)
    else:
        rows = runner.run()
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in rows], indent=2))
    else:
        click.echo(fleetrun.table(rows), nl=False)
    if runner.failed_webhooks:
        click.echo(f"warning: {len(runner.failed_webhooks)} webhook(s) failed; the images are pushed", err=True)


@cli.command(name="verify")
@click.argument("directory", type=click.Path(path_type=Path, exists=True, file_okay=False))
@_source_options
@_verbosity
def verify_cmd(directory: Path, **kw: Any) -> None:
    """Rebuild DIRECTORY from its lock and check every output is byte-identical."""
    if steps.needs_root(verify_mod.recorded_recipe(directory)):
        _privileged("verifying a build")
    if verify_mod.recorded_insecure(directory):
        _warn_insecure(directory)
    verdict = verify_mod.verify(directory, _options(**kw))
    if verdict.ok:
        click.echo(f"verified: {', '.join(verdict.compared)} rebuild bit for bit")
        return
    click.echo(f"NOT reproducible: {', '.join(verdict.differing)} differ", err=True)
    if verdict.diffoscope:
        click.echo(verdict.diffoscope)
    sys.exit(1)


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
    first = inspection.inspect(directory)
    if other is not None:
        second = inspection.inspect(other)
        if as_json:
            click.echo(json.dumps({"a": first.as_dict(), "b": second.as_dict()}, indent=2))
        else:
            click.echo(inspection.render_diff(first, second), nl=False)
        return
    click.echo(json.dumps(first.as_dict(), indent=2) if as_json else inspection.render(first, top), nl=False)


def _registry_options(f: Callable[..., Any]) -> Callable[..., Any]:
    options = [
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
    for opt in reversed(options):
        f = opt(f)
    return f


@cli.command(name="push")
@click.argument("source", metavar="DIR", type=click.Path(path_type=Path, exists=True))
@click.argument("ref", metavar="REF")
@_registry_options
@click.option(
    "--chunk-size",
    metavar="SIZE",
    help=f"Upload blobs larger than SIZE in chunks of SIZE, e.g. 8M (default {registry.DEFAULT_CHUNK >> 20}M).",
)
@click.option(
    "--mount-from",
    "mount_from",
    multiple=True,
    metavar="REPO",
    help="A repository of the same registry that may have the blobs: mounted, not uploaded (repeatable).",
)
@click.option("--webhook", "webhooks", multiple=True, help="POST a JSON event here after the push (repeatable).")
@click.option("--no-records", is_flag=True, help="Do not attach the build's lock, SBOMs and provenance.")
@_verbosity
def push_cmd(
    source: Path,
    ref: str,
    creds: str | None,
    ca_cert: Path | None,
    insecure: bool,
    chunk_size: str | None,
    mount_from: tuple[str, ...],
    webhooks: tuple[str, ...],
    no_records: bool,
) -> None:
    """Push the image of DIR (a build's output directory, its image.tar, or an OCI layout) to REF.

    REF is HOST[:PORT]/REPOSITORY[:TAG] (a name without a host is refused). Prints REF@DIGEST. The records of a
    build (lock, SBOMs, provenance) are attached to the image as OCI artifacts.
    """
    options = registry.Options(
        creds=creds,
        ca_cert=ca_cert,
        insecure=insecure,
        chunk_size=registry.parse_size(chunk_size) if chunk_size else registry.DEFAULT_CHUNK,
        mount_from=mount_from,
    )
    digest = registry.push(source, ref, options, records=not no_records)
    click.echo(f"{ref}@{digest}")
    if webhooks:
        webhook.notify(webhooks, {"event": "push", "tags": [ref], "digests": {"manifest": digest}})


@cli.command(name="index")
@click.argument("ref", metavar="REF")
@click.argument("sources", metavar="SOURCE_REF...", nargs=-1, required=True)
@_registry_options
@_verbosity
def index_cmd(ref: str, sources: tuple[str, ...], creds: str | None, ca_cert: Path | None, insecure: bool) -> None:
    """Put under REF a multi-platform index of images already in the same registry.

    A SOURCE_REF without a host is on REF's registry (`debian:trixie-arm64`). Only manifests are copied; blobs
    of sources in other repositories are mounted. Prints REF@DIGEST.
    """
    options = registry.Options(creds=creds, ca_cert=ca_cert, insecure=insecure)
    click.echo(f"{ref}@{registry.make_index(ref, sources, options)}")


@cli.command(name="doctor")
def doctor_cmd() -> None:
    """Check what building without root needs, and say how to fix what is missing."""
    if os.geteuid() == 0:
        click.echo("running as root: builds need no user namespace")
        return
    findings = userns.check()
    for f in findings:
        click.echo(f"{'ok  ' if f.ok else 'FAIL'} {f.what}")
        if not f.ok:
            click.echo(f"     fix: {f.fix}")
    if all(f.ok for f in findings):
        click.echo("builds without root work here")
    else:
        sys.exit(1)


@cli.command(name="list")
def list_recipes() -> None:
    """List the available recipes."""
    for name in recipe.available():
        click.echo(f"{name}\t{recipe.load(name).description}")


@cli.command()
@click.argument("recipe_name", metavar="RECIPE")
def show(recipe_name: str) -> None:
    """Print a recipe with everything it extends merged in, as JSON."""
    click.echo(json.dumps(recipe.load(recipe_name).as_dict(), indent=2))


@cli.command(name="new")
@click.argument("name")
@click.option("--from", "parent", default="debian-slim", show_default=True, help="The recipe to extend.")
@click.option("-o", "--output", type=click.Path(path_type=Path, readable=False), help="File (default: NAME.toml).")
def new_cmd(name: str, parent: str, output: Path | None) -> None:
    """Write a commented starting recipe NAME.toml that extends another one."""
    recipe.load(parent)
    dest = output or Path(f"{name}.toml")
    if dest.exists():
        raise BootstrapError(f"{dest} already exists", "choose another NAME or -o FILE, or remove it")
    write_atomic(dest, recipe_schema.template(parent).encode())
    click.echo(f"wrote {dest}: edit it, then `bootstrap build {dest}`")


@cli.command(name="resolve")
@click.argument("recipe_name", metavar="RECIPE")
@_source_options
@_verbosity
def resolve_cmd(recipe_name: str, **kw: Any) -> None:
    """Print the package set RECIPE resolves to: name, version, architecture."""
    plan = make_plan(recipe.load(recipe_name), _options(**kw))
    _, selection = pipeline.resolve_plan(plan)
    for p in selection.packages:
        click.echo(f"{p.name}\t{p.version}\t{p.arch}")


def _terminate(signum: int, frame: Any) -> NoReturn:
    raise KeyboardInterrupt


def _fail(exc: BootstrapError) -> NoReturn:
    if _debug:
        traceback.print_exc()
    click.echo(f"error: {exc.message}", err=True)
    if exc.hint:
        click.echo(f"hint: {exc.hint}", err=True)
    sys.exit(exc.exit_code)


def main() -> None:
    """Run the CLI: every failure ends as `error:` and `hint:` lines and an exit code, a traceback only with
    --debug (1: an error the user can act on; 2: usage; 70: a bug; 130: interrupted)."""
    signal.signal(signal.SIGTERM, _terminate)
    try:
        cli(standalone_mode=False)
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


def _internal(exc: Exception) -> BootstrapError:
    """An exception nothing expected: a bug, said in one line, with a distinct exit code."""
    error = BootstrapError(
        f"internal error: {type(exc).__name__}: {' '.join(str(exc).split())}",
        "run again with --debug for a traceback and report it",
    )
    error.exit_code = EX_SOFTWARE
    return error
