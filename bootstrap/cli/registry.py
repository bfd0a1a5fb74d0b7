"""The commands that talk to a registry: push, index, check against a pushed image, fleets, and the policy that
checks the signatures of pushed images."""

import dataclasses
import json
import sys
from pathlib import Path

import click

from bootstrap import registry
from bootstrap.build import recipe, recipe_trust, steps
from bootstrap.build.plan import Options, host_arch
from bootstrap.cli.common import (
    PUBLIC_KEY,
    SIGN_KEY,
    RegistryAccess,
    cache_max_option,
    changes_since,
    privileged,
    registry_access,
    registry_options,
    signing_key,
    source_options,
    verbosity,
    warn_insecure,
)
from bootstrap.errors import BootstrapError, SignatureError, os_error
from bootstrap.host.cache import write_atomic
from bootstrap.publish import changes as changes_mod
from bootstrap.publish import fleet as fleet_mod
from bootstrap.publish import policy as policy_mod
from bootstrap.publish import signed
from bootstrap.records import lock as lock_mod
from bootstrap.records import outputs
from bootstrap.sign import keys
from bootstrap.sign.gpgsign import GpgSigner
from bootstrap.sign.keys import PublicKey


def _previous(
    against: str, access: RegistryAccess, opts: Options, key: PublicKey | None = None
) -> tuple[lock_mod.Lock, str, Options]:
    """The lock to compare with: of a build directory or lock file, or attached to an image in a registry (and
    the options with the architecture of the image chosen, the build compared with); with `key`, only a lock
    its signed records vouch for."""
    reg_opts = access.options()
    path = Path(against)
    if path.exists() or not registry.looks_like_reference(against):
        if key is None:
            return lock_mod.read(path), against, opts
        if not path.is_dir():
            raise SignatureError(
                f"{against}: a lock file alone carries no signature", "give the output directory of the signed build"
            )
        files = signed.read_directory(path)
        data = signed.trusted_lock(files, signed.check(files, key, against), against)
        return lock_mod.parse(data, against), against, opts
    arch = opts.arch or host_arch()
    opts = dataclasses.replace(opts, arch=arch)
    from bootstrap.registry import artifacts  # the network's modules load with the commands that use it

    found = signed.registry_lock(against, arch, reg_opts, key) if key else artifacts.lock_at(against, arch, reg_opts)
    if found is None:
        raise BootstrapError(f"{against} is not in the registry", "check the reference, or push the image first")
    return found[0], f"{against}@{found[1]}", opts


@click.command()
@click.argument("recipe_name", metavar="RECIPE")
@click.option(
    "--against",
    required=True,
    help="Output directory of a previous build, its lock file, or its image in a registry (HOST/REPO:TAG).",
)
@PUBLIC_KEY
@source_options
@registry_access
@click.option("--json", "as_json", is_flag=True, help="Print the changes as JSON.")
@verbosity
def check(
    recipe_name: str, against: str, key_file: Path | None, as_json: bool, opts: Options, access: RegistryAccess
) -> None:
    """Say whether a rebuild of RECIPE would change anything: exit 0 when not, 10 when a rebuild is due.

    Against a registry reference, the lock attached to the pushed image is read (with the credentials `push`
    uses): no local file is needed."""
    rec = recipe.load(recipe_name, opts.allow_paths, given=True)
    key = keys.load_public(key_file) if key_file is not None else None
    previous, where, opts = _previous(against, access, opts, key)
    if previous.insecure:
        warn_insecure(where)
    changes = changes_since(rec, previous, opts)
    click.echo(json.dumps(changes.as_dict(), indent=2) if as_json else changes.report().rstrip("\n"))
    if changes:
        sys.exit(changes_mod.REBUILD_DUE)


@click.command(name="fleet")
@click.argument("fleet_file", metavar="FILE", type=click.Path(path_type=Path, readable=False))
@click.option(
    "--matrix",
    "matrix",
    is_flag=False,
    flag_value="github",
    type=click.Choice(["github", "gitlab"]),
    help="Print the jobs for CI, in parts of at most 256 (github: a strategy.matrix of parts, each a job matrix "
    "for a reusable workflow) or 200 (gitlab: jobs extending .fleet-job, each with a parallel:matrix), and exit.",
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
@SIGN_KEY
@cache_max_option
@source_options
@registry_access
@verbosity
def fleet_cmd(
    fleet_file: Path,
    matrix: str | None,
    job_id: str | None,
    assemble: bool,
    webhooks: tuple[str, ...],
    as_json: bool,
    output: Path,
    cache_max: str | None,
    sign_key: Path | None,
    opts: Options,
    access: RegistryAccess,
) -> None:
    """Keep the images FILE lists fresh: build those whose check against the registry says something changed,
    push them, and assemble multi-architecture indexes. Prints a summary table."""
    if sum((matrix is not None, job_id is not None, assemble)) > 1:
        raise click.UsageError("--matrix, --job and --assemble are separate steps: give one")
    recipe_trust.warn_untrusted(fleet_file, "fleet file")
    allow = opts.allow_paths
    fleet = fleet_mod.load(fleet_file, opts.arch or host_arch(), lambda name: recipe.load(name, allow).suite, allow)
    if matrix is not None:
        click.echo(fleet_mod.dumps_matrix(fleet, matrix))
        return
    reg_opts = access.options()
    key = signing_key(sign_key or fleet.sign_key)
    # Every recipe the fleet names, read (trusted and confined) before anything is fetched.
    recipes = [] if assemble else [recipe.load(image.recipe, allow) for image in fleet.images]
    if any(steps.needs_root(r) for r in recipes):
        privileged("building images")
    opts = dataclasses.replace(opts, output=output, cache_max=cache_max, sign_key=key)
    from bootstrap.publish import fleetrun  # the network's modules load with the commands that use it

    runner = fleetrun.Runner(fleet, opts, reg_opts, output, webhooks, sign=key)
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


@click.command(name="push")
@click.argument("source", metavar="DIR", type=click.Path(path_type=Path, exists=True))
@click.argument("ref", metavar="REF")
@registry_options
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
@click.option(
    "--no-records",
    is_flag=True,
    help=f"Do not attach the build's records: {outputs.listing(lambda o: o.attached)}.",
)
@SIGN_KEY
@click.option(
    "--gpg-sign",
    "gpg_key",
    metavar="KEY",
    help="Also sign with this key of gpg's keyring (GPG simple signing, for `signedBy` policies); needs --lookaside.",
)
@click.option(
    "--lookaside",
    type=click.Path(path_type=Path, file_okay=False),
    help="Where --gpg-sign writes its signatures (REPO@sha256=HEX/signature-N), to serve as the lookaside store.",
)
@verbosity
def push_cmd(
    source: Path,
    ref: str,
    chunk_size: str | None,
    mount_from: tuple[str, ...],
    webhooks: tuple[str, ...],
    no_records: bool,
    sign_key: Path | None,
    gpg_key: str | None,
    lookaside: Path | None,
    access: RegistryAccess,
) -> None:
    """Push the image of DIR (a build's output directory, its image.tar, or an OCI layout) to REF.

    REF is HOST[:PORT]/REPOSITORY[:TAG] (a name without a host is refused). Prints REF@DIGEST. The records of a
    build (lock, SBOMs, provenance) are attached to the image as OCI artifacts. With --sign-key, each pushed
    manifest gets a signature podman and skopeo verify (`bootstrap policy` writes their configuration).
    """
    key = signing_key(sign_key)
    if (gpg_key is None) != (lookaside is None):
        raise click.UsageError("--gpg-sign and --lookaside go together")
    gpg = GpgSigner(gpg_key, lookaside) if gpg_key is not None and lookaside is not None else None
    options = dataclasses.replace(
        access.options(),
        chunk_size=registry.parse_size(chunk_size) if chunk_size else registry.DEFAULT_CHUNK,
        mount_from=mount_from,
    )
    digest = registry.push(source, ref, options, records=not no_records, sign=key, gpg=gpg)
    click.echo(f"{ref}@{digest}")
    if webhooks:
        from bootstrap.publish import webhook

        webhook.notify(webhooks, {"event": "push", "tags": [ref], "digests": {"manifest": digest}})


@click.command(name="index")
@click.argument("ref", metavar="REF")
@click.argument("sources", metavar="SOURCE_REF...", nargs=-1, required=True)
@registry_options
@SIGN_KEY
@verbosity
def index_cmd(ref: str, sources: tuple[str, ...], sign_key: Path | None, access: RegistryAccess) -> None:
    """Put under REF a multi-platform index of images already in the same registry.

    A SOURCE_REF without a host is on REF's registry (`debian:trixie-arm64`). Only manifests are copied; blobs
    of sources in other repositories are mounted. Prints REF@DIGEST.
    """
    key = signing_key(sign_key)
    click.echo(f"{ref}@{registry.make_index(ref, sources, access.options(), sign=key)}")


@click.command(name="policy")
@click.option(
    "--key",
    "key_file",
    metavar="PUB",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="The public key of the signing key (the .pub file `bootstrap keygen` writes).",
)
@click.option(
    "--gpg-key",
    "gpg_file",
    metavar="KEYRING",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="Also (or instead) require a GPG simple signature by a key of this exported public keyring (signedBy).",
)
@click.option(
    "--lookaside",
    metavar="URL",
    help="Where the GPG signatures are read (https:// or file://; what `push --lookaside` wrote, served).",
)
@click.option(
    "--registry",
    "scopes",
    required=True,
    multiple=True,
    metavar="HOST[:PORT][/REPO]",
    help="Require signatures by the key for images here: a registry, a namespace or a repository (repeatable).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("containers"),
    show_default=True,
    help=f"Where to write {policy_mod.POLICY} and {policy_mod.REGISTRIES_D}.",
)
@click.option(
    "--key-path",
    metavar="PATH",
    help="Name the key by its path on the pulling machine (keyPath) instead of embedding it (keyData).",
)
@click.option("--reject-others", is_flag=True, help="Refuse every other image too (default: no check for them).")
@verbosity
def policy_cmd(
    key_file: Path | None,
    gpg_file: Path | None,
    lookaside: str | None,
    scopes: tuple[str, ...],
    output: Path,
    key_path: str | None,
    reject_others: bool,
) -> None:
    """Write the containers policy (policy.json) and registries.d file with which podman, skopeo and CRI-O refuse
    images of the given registries that are not signed by the key (`push --sign-key`). Copy them to
    /etc/containers/ (or pass them with --signature-policy and --registries.d)."""
    if key_path is not None and not key_path.startswith("/"):
        raise BootstrapError(f"--key-path {key_path!r} is not absolute", "containers/image reads keyPath as given")
    if key_file is None and gpg_file is None:
        raise click.UsageError("give --key, --gpg-key or both")
    if (gpg_file is None) != (lookaside is None):
        raise click.UsageError("--gpg-key and --lookaside go together")
    gpg = None
    if gpg_file is not None and lookaside is not None:
        if not lookaside.startswith(("https://", "http://", "file:///")):
            raise BootstrapError(f"--lookaside {lookaside!r} is not a URL", "give https://HOST/PATH or file:///PATH")
        try:
            gpg = policy_mod.Gpg(gpg_file.read_bytes(), lookaside)
        except OSError as e:
            raise os_error(e, gpg_file) from e
    public = keys.load_public(key_file) if key_file is not None else None
    chosen = policy_mod.Policy(public, tuple(policy_mod.scope(s) for s in scopes), key_path, reject_others, gpg)
    files = chosen.files()
    for name, data in files.items():
        path = output / name
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, data, 0o644)
        except OSError as e:
            raise os_error(e, path) from e
        click.echo(str(path))
