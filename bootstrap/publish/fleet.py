"""A fleet file: the images to keep fresh, each a recipe built for some suites and architectures and pushed
to some references; and the jobs it makes, one per (image, suite, architecture).

    [[image]]
    recipe = "debian-slim"
    suites = ["bookworm", "trixie"]
    arches = ["amd64", "arm64"]
    push = ["<registry>/base/debian:{codename}-slim"]

A reference's tag may use `{codename}` (the suite's codename, known once built), `{suite}` (as written) and
`{recipe}`; its repository only `{recipe}`, so that every image of a group, and its records, stay in one
repository. An image of several architectures is pushed by each job to a per-architecture tag (the tag
with `{codename}` standing for the suite as written, plus `-<arch>`: `bookworm-slim-amd64`), then assembled into
an index under the final tags from what the jobs pushed: the registry is the only state between them.

A top-level `sign-key = "keys/release.key"` (relative to the fleet file, confined to its directory like a
recipe's files) signs the images and records when neither --sign-key nor $BOOTSTRAP_SIGN_KEY names a key.
"""

import difflib
import json
import re
import string
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bootstrap.build.families import ARCHES
from bootstrap.build.recipe_trust import confine
from bootstrap.errors import BootstrapError
from bootstrap.host.arches import arch_name
from bootstrap.records import outputs
from bootstrap.registry import RegistryError, parse_reference

IMAGE_KEYS = {
    "recipe": "recipe name, or path relative to the fleet file",
    "suites": "suites or codenames to build (default: the recipe's suite)",
    "arches": "architectures, by Debian's name or the kernel's (amd64 or x86_64; default: the host's)",
    "push": "references to push to; tags may use {codename}, {suite} and {recipe}",
    "sbom-formats": f"SBOM formats besides those always written, of {list(outputs.SBOM_FORMATS)}",
}
TOP_KEYS = {
    "image": "the images ([[image]] tables)",
    "webhooks": "URLs that receive an event for every pushed image",
    "runners": 'CI runner label per architecture, for --matrix (e.g. arm64 = "ubuntu-24.04-arm")',
    "sign-key": "the key that signs the pushed images and the records, relative to the fleet file (when neither "
    "--sign-key nor $BOOTSTRAP_SIGN_KEY gives one)",
}
PLACEHOLDERS = {"codename", "suite", "recipe"}
MATRIX_LIMITS = {"github": 256, "gitlab": 200}
"""The most jobs one matrix may make: GitHub's `strategy.matrix`, GitLab's `parallel:matrix` (its schema's maximum)."""
DEFAULT_RUNNERS = {"amd64": "ubuntu-latest", "arm64": "ubuntu-24.04-arm"}
"""GitHub-hosted runners native to each architecture; others build on amd64 runners through qemu-user."""


class FleetError(BootstrapError):
    """A fleet file that cannot be used as written."""


@dataclass(frozen=True)
class Image:
    index: int
    recipe: str
    suites: tuple[str, ...]
    arches: tuple[str, ...]
    push: tuple[str, ...]
    sbom_formats: tuple[str, ...] = ()

    @property
    def multi(self) -> bool:
        return len(self.arches) > 1


@dataclass(frozen=True)
class Job:
    id: str
    image: Image
    suite: str
    arch: str

    def final_refs(self, codename: str) -> list[str]:
        return [fill(t, self.image.recipe, self.suite, codename) for t in self.image.push]

    def staging_refs(self) -> list[str]:
        """Where this job's image goes when it is one architecture of several (assembled later)."""
        return [per_arch(fill(t, self.image.recipe, self.suite, self.suite), self.arch) for t in self.image.push]


@dataclass(frozen=True)
class Fleet:
    path: Path
    images: tuple[Image, ...]
    jobs: tuple[Job, ...]
    webhooks: tuple[str, ...]
    runners: dict[str, str]
    sign_key: Path | None = None
    """The fleet file's `sign-key`, absolute, inside the fleet file's directory or an allowed one."""

    def job(self, job_id: str) -> Job:
        for j in self.jobs:
            if j.id == job_id:
                return j
        close = difflib.get_close_matches(job_id, [j.id for j in self.jobs], n=1)
        raise FleetError(
            f"{self.path}: no job {job_id!r}",
            f"did you mean {close[0]!r}?" if close else "list the jobs with `bootstrap fleet FILE --matrix`",
        )

    def groups(self) -> list[tuple[Image, str, list[Job]]]:
        """The (image, suite) pairs with the jobs that make them, in file order."""
        out: dict[tuple[int, str], list[Job]] = {}
        for j in self.jobs:
            out.setdefault((j.image.index, j.suite), []).append(j)
        return [(jobs[0].image, suite, jobs) for (_, suite), jobs in out.items()]

    def matrix(self, ci: str) -> Any:
        """The jobs for CI, in parts of at most the CI's limit (`MATRIX_LIMITS`): for GitHub, a `strategy.matrix`
        of parts, each with its jobs' `strategy.matrix` (`include`) to hand to a reusable workflow; for GitLab,
        jobs (`fleet-part-N`) that extend `.fleet-job`, each with a `parallel:matrix` of its jobs."""
        parts = self.parts(MATRIX_LIMITS[ci])
        if ci == "gitlab":
            return {
                f"fleet-part-{k}": {
                    "extends": ".fleet-job",
                    "parallel": {"matrix": [{"JOB": [j.id], "ARCH": [j.arch]} for j in part]},
                }
                for k, part in enumerate(parts, 1)
            }
        if len(parts) > MATRIX_LIMITS["github"]:
            raise FleetError(
                f"{self.path}: {len(self.jobs)} jobs need {len(parts)} matrices of {MATRIX_LIMITS['github']}; "
                f"GitHub runs at most {MATRIX_LIMITS['github']}",
                "split the fleet file into several, each run by its own workflow",
            )
        return {
            "include": [
                {"part": f"{k}/{len(parts)}", "jobs": {"include": [self._github_job(j) for j in part]}}
                for k, part in enumerate(parts, 1)
            ]
        }

    def parts(self, limit: int) -> list[tuple[Job, ...]]:
        """The jobs in as few parts of at most `limit` as can be, in file order; sizes differ by one at most."""
        count = -(-len(self.jobs) // limit)
        size, extra = divmod(len(self.jobs), count)
        starts = [k * size + min(k, extra) for k in range(count + 1)]
        return [self.jobs[starts[k] : starts[k + 1]] for k in range(count)]

    def _github_job(self, j: Job) -> dict[str, str]:
        return {
            "job": j.id,
            "recipe": j.image.recipe,
            "suite": j.suite,
            "arch": j.arch,
            "runner": self.runners.get(j.arch, self.runners.get("amd64", DEFAULT_RUNNERS["amd64"])),
        }


def fill(template: str, recipe: str, suite: str, codename: str) -> str:
    return template.format(codename=codename, suite=suite, recipe=Path(recipe).stem)


def per_arch(ref: str, arch: str) -> str:
    """`host/repo:tag` -> `host/repo:tag-<arch>`."""
    r = parse_reference(ref)
    return f"{r.host}/{r.repository}:{r.tag or 'latest'}-{arch}"


def _unknown(where: str, key: str, allowed: dict[str, str]) -> FleetError:
    close = difflib.get_close_matches(key, list(allowed), n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}?" if close else "known keys: " + ", ".join(sorted(allowed))
    return FleetError(f"{where}: unknown key {key!r}", hint)


def _strings(where: str, value: object, key: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise FleetError(f"{where}: {key} must be a list of strings", f'write {key} = ["..."]')
    return tuple(value)


def _check_template(where: str, template: str) -> None:
    fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    unknown = fields - PLACEHOLDERS
    if unknown:
        raise FleetError(
            f"{where}: {template!r} uses {{{sorted(unknown)[0]}}}", "placeholders are {codename}, {suite} and {recipe}"
        )
    repository_part = template.rsplit(":", 1)[0] if ":" in template.rsplit("/", 1)[-1] else template
    if "{codename}" in repository_part or "{suite}" in repository_part:
        raise FleetError(
            f"{where}: {template!r} puts {{codename}} or {{suite}} in the repository",
            "use them in the tag (HOST/REPO:{codename}-slim): an image's architectures and records share a repository",
        )
    try:
        parse_reference(fill(template, "recipe", "suite", "codename"))
    except RegistryError as exc:
        raise FleetError(f"{where}: {exc.message}", exc.hint) from None


def _image(path: Path, i: int, table: object, host_arch: str) -> Image:
    where = f"{path}: image[{i}]"
    if not isinstance(table, dict):
        raise FleetError(f"{where} is not a table", "write [[image]] tables")
    for key in table:
        if key not in IMAGE_KEYS:
            raise _unknown(where, key, IMAGE_KEYS)
    recipe = table.get("recipe")
    if not isinstance(recipe, str) or not recipe:
        raise FleetError(f"{where}: no recipe", 'add recipe = "debian-slim" (a name or a path)')
    if recipe.endswith(".toml") and not Path(recipe).is_absolute():
        recipe = str(path.parent / recipe)
    suites = _strings(where, table["suites"], "suites") if "suites" in table else ()
    given = _strings(where, table["arches"], "arches") if "arches" in table else (host_arch,)
    arches = []
    for arch in given:
        name = arch_name(arch)
        if name is None or name not in ARCHES:
            raise FleetError(f"{where}: unsupported architecture {arch!r}", f"use {', '.join(sorted(ARCHES))}")
        arches.append(name)
    pushes = _strings(where, table.get("push", []), "push")
    for template in pushes:
        _check_template(where, template)
    formats = _strings(where, table.get("sbom-formats", []), "sbom-formats")
    if set(formats) - set(outputs.SBOM_FORMATS):
        raise FleetError(f"{where}: sbom-formats {list(formats)}", f"formats are {outputs.sbom_help()}")
    for name, values in (("suites", suites), ("arches", arches), ("push", pushes)):
        if len(set(values)) != len(values):
            raise FleetError(f"{where}: {name} names something twice", "list each once")
    always = {o.sbom for o in outputs.OUTPUTS if o.sbom and not o.asked}
    return Image(i, recipe, suites, tuple(arches), pushes, tuple(f for f in formats if f not in always))


def _job_id(recipe: str, suite: str, arch: str) -> str:
    return re.sub(r"[^a-z0-9.-]+", "-", f"{Path(recipe).stem}-{suite}-{arch}".lower()).strip("-")


def load(path: Path, host_arch: str, default_suite: Any = None, allow: Sequence[Path] = ()) -> Fleet:
    """Read and check a fleet file; `default_suite(recipe)` gives the suite of an image that names none. Its
    `sign-key` must resolve inside the fleet file's directory or one of `allow` (--allow-path), as a recipe's
    local files must."""
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise FleetError(f"no fleet file at {path}", "give the path of a TOML file with [[image]] tables") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise FleetError(f"{path}: invalid TOML: {exc}", "fix the file's syntax") from None
    for key in data:
        if key not in TOP_KEYS:
            raise _unknown(str(path), key, TOP_KEYS)
    tables = data.get("image")
    if not isinstance(tables, list) or not tables:
        raise FleetError(f"{path} lists no image", 'add an [[image]] table with recipe = "..."')
    images = []
    for i, t in enumerate(tables):
        image = _image(path, i, t, host_arch)
        suites = image.suites or ((default_suite(image.recipe),) if default_suite else ("stable",))
        images.append(Image(i, image.recipe, suites, image.arches, image.push, image.sbom_formats))
    jobs: list[Job] = []
    seen_refs: dict[str, str] = {}
    for image in images:
        for suite in image.suites:
            for template in image.push:
                ref = fill(template, image.recipe, suite, suite)
                if ref in seen_refs:
                    raise FleetError(
                        f"{path}: {seen_refs[ref]} and image[{image.index}] {suite} both push to {ref}",
                        "give each suite its own tag, with {codename} or {suite} in it",
                    )
                seen_refs[ref] = f"image[{image.index}] {suite}"
            for arch in image.arches:
                base = _job_id(image.recipe, suite, arch)
                job_id = base if all(j.id != base for j in jobs) else f"{base}-{image.index}"
                jobs.append(Job(job_id, image, suite, arch))
    webhooks = _strings(str(path), data.get("webhooks", []), "webhooks")
    runners = data.get("runners", {})
    if not isinstance(runners, dict) or not all(isinstance(v, str) for v in runners.values()):
        raise FleetError(f"{path}: runners must map architectures to runner labels", 'write arm64 = "label"')
    runners = {_runner_arch(str(path), k): v for k, v in runners.items()}
    written = data.get("sign-key")
    if written is not None and (not isinstance(written, str) or not written):
        raise FleetError(f"{path}: sign-key must be a path", 'write sign-key = "release.key"')
    here = path.absolute().parent
    sign_key = (
        None if written is None else Path(confine(str(path), "sign-key", written, here, allow, False, "fleet file"))
    )
    return Fleet(path, tuple(images), tuple(jobs), webhooks, {**DEFAULT_RUNNERS, **runners}, sign_key)


def _runner_arch(where: str, key: str) -> str:
    """A runners key by our name (`aarch64` is `arm64`), so that a job's architecture finds its label."""
    name = arch_name(key)
    if name is None or name not in ARCHES:
        raise FleetError(f"{where}: runners names unsupported architecture {key!r}", f"use {', '.join(sorted(ARCHES))}")
    return name


def dumps_matrix(fleet: Fleet, ci: str) -> str:
    """GitHub's matrix as one line of JSON (for `$GITHUB_OUTPUT`); GitLab's jobs as YAML lines, one job a line
    (each a JSON mapping), to append to a child pipeline file that defines `.fleet-job`."""
    matrix = fleet.matrix(ci)
    if ci == "gitlab":
        return "\n".join(f"{name}: {json.dumps(job, separators=(',', ':'))}" for name, job in matrix.items())
    return json.dumps(matrix, separators=(",", ":"))
