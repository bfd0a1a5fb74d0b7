"""Running a fleet: each job checks its image against the registry (the lock attached there), builds and
pushes only when something changed; then the images of several architectures are assembled into indexes.

One process runs the whole fleet (`bootstrap fleet FILE`), sharing one cache and loading each archive's
indexes once; or CI runs each job on a runner of its architecture (`--job ID`) and assembles at the end
(`--assemble`). Both take the same steps, so they give the same digests.
"""

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bootstrap import registry
from bootstrap.build import families, pipeline, recipe
from bootstrap.build.inputs import inputs_of
from bootstrap.build.plan import Options, Plan, make_plan
from bootstrap.errors import BootstrapError, SignatureError
from bootstrap.family.interface import Archive, Selection
from bootstrap.log import log
from bootstrap.publish import changes as changes_mod
from bootstrap.publish import signed, webhook
from bootstrap.publish.fleet import Fleet, Image, Job, fill
from bootstrap.records import lock as lock_mod
from bootstrap.registry import artifacts, manifests
from bootstrap.registry.client import Client
from bootstrap.sign.keys import SigningKey


@dataclass
class Row:
    """One line of the summary: a job's image, or an assembled index."""

    image: str
    suite: str
    codename: str
    arch: str
    state: str
    """`new`, `changed`, `unchanged` (or `built` when nothing is pushed, so nothing is compared)."""
    digest: str
    pushed: list[str] = field(default_factory=list)
    seconds: float = 0.0
    changes: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "suite": self.suite,
            "codename": self.codename,
            "arch": self.arch,
            "state": self.state,
            "digest": self.digest,
            "pushed": self.pushed,
            "seconds": round(self.seconds, 1),
        }


class Runner:
    def __init__(
        self,
        fleet: Fleet,
        options: Options,
        registry_options: registry.Options,
        output: Path,
        webhooks: Sequence[str] = (),
        sign: SigningKey | None = None,
    ) -> None:
        self.fleet = fleet
        self.sign = sign
        """The key that signs every pushed manifest and assembled index (none: nothing is signed)."""
        self.options = options
        self.registry_options = registry_options
        self.output = output
        self.webhooks = [*fleet.webhooks, *webhooks]
        self.failed_webhooks: list[str] = []
        self._archives: dict[tuple[Any, ...], tuple[Archive, Selection]] = {}

    # --- one job ----------------------------------------------------------------------------------------------

    def plan(self, job: Job) -> Plan:
        rec = recipe.load(job.image.recipe, self.options.allow_paths)
        opts = replace(
            self.options,
            suite=job.suite,
            arch=job.arch,
            output=self.output / job.id,
            sbom_formats=job.image.sbom_formats,
        )
        return make_plan(rec, opts)

    def resolve(self, plan: Plan) -> tuple[Archive, Selection]:
        """Indexes and package set, loaded once per archive state for every job of the run that shares them."""
        key = (
            plan.mirror,
            plan.security_mirror,
            plan.suite,
            plan.arch,
            plan.recipe.components,
            plan.extra,
            plan.keyrings,
            plan.signers,
            plan.insecure,
            families.request_for(plan.recipe),
            plan.recipe.package_groups,
            plan.recipe.weak_deps,
            plan.recipe.rpm_repos,
            plan.recipe.rpm_metalink,
        )
        if key not in self._archives:
            self._archives[key] = pipeline.resolve_plan(plan)
        return self._archives[key]

    def targets(self, job: Job, codename: str) -> list[str]:
        return job.staging_refs() if job.image.multi else job.final_refs(codename)

    def check(self, job: Job, plan: Plan, archive: Archive, selection: Selection) -> tuple[str, Any]:
        """`new`, `changed` or `unchanged` against every target, with the changes and the digest there."""
        inputs = inputs_of(plan.recipe)
        found = [self._lock_at(ref, job.arch) for ref in self.targets(job, archive.codename)]
        if not found:
            return "built", None
        if any(f is None for f in found):
            return "new", None
        digests = {f[1] for f in found if f is not None}
        for previous, _ in (f for f in found if f is not None):
            asked = changes_mod.Asked(plan.recipe.name, plan.suite, job.arch)
            changes = changes_mod.compare(previous, selection, archive.codename, inputs, asked)
            if changes:
                return "changed", changes
        if len(digests) > 1:
            return "changed", None
        return "unchanged", digests.pop()

    def _lock_at(self, ref: str, arch: str) -> tuple[lock_mod.Lock, str] | None:
        """The lock of the image at `ref`; with the fleet's key, only one its signed records vouch for: an image
        whose records do not (an unsigned one put under the tag, or records changed) counts as none there, so
        it is built and pushed again rather than trusted as unchanged."""
        if self.sign is None:
            return artifacts.lock_at(ref, arch, self.registry_options)
        try:
            return signed.registry_lock(ref, arch, self.registry_options, self.sign.public)
        except SignatureError as exc:
            log.warning(f"{ref}: not vouched for by the fleet's key ({exc.message}): built again")
            return None

    def run_job(self, job: Job) -> Row:
        started = time.monotonic()
        plan = self.plan(job)
        archive, selection = self.resolve(plan)
        state, detail = self.check(job, plan, archive, selection)
        name = Path(job.image.recipe).stem
        if state == "unchanged":
            log.info(f"{job.id}: unchanged in the registry; not built")
            return Row(name, job.suite, archive.codename, job.arch, state, detail, [], time.monotonic() - started)
        changes = detail.as_dict() if isinstance(detail, changes_mod.Changes) else None
        if isinstance(detail, changes_mod.Changes):
            log.info(f"{job.id}: " + detail.report().rstrip("\n").replace("\n", "\n  "))
        result = pipeline.build(plan, {job.arch: archive})
        pushed = self.targets(job, result.codename)
        for ref in pushed:
            registry.push(result.output, ref, self.registry_options, sign=self.sign)
        row = Row(
            name,
            job.suite,
            result.codename,
            job.arch,
            state,
            result.manifest_digest,
            pushed,
            time.monotonic() - started,
            changes,
        )
        if not job.image.multi:
            self.announce(row, result.manifest_digest)
        return row

    # --- indexes ----------------------------------------------------------------------------------------------

    def assemble(self, image: Image, suite: str, jobs: Sequence[Job]) -> list[Row]:
        """Put an index over the jobs' per-architecture images under each final reference; nothing when it is
        there already."""
        started = time.monotonic()
        rows = []
        name = Path(image.recipe).stem
        for k, template in enumerate(image.push):
            sources = [job.staging_refs()[k] for job in jobs]
            codenames = set()
            for job, source in zip(jobs, sources, strict=True):
                found = artifacts.lock_at(source, job.arch, self.registry_options)
                if found is None:
                    raise BootstrapError(
                        f"{source} is not in the registry: job {job.id} has not pushed it",
                        f"run `bootstrap fleet {self.fleet.path} --job {job.id}` first",
                    )
                codenames.add(found[0].codename)
            if len(codenames) != 1:
                raise BootstrapError(
                    f"the images of {name} {suite} come from different codenames: {', '.join(sorted(codenames))}",
                    "the suite moved while the jobs ran: run every job again",
                )
            codename = codenames.pop()
            final = fill(template, image.recipe, suite, codename)
            before = self._current(final)
            digest = registry.make_index(final, sources, self.registry_options, sign=self.sign)
            pushed = [final] if before != digest else []
            state = "new" if before is None else "changed" if pushed else "unchanged"
            row = Row(name, suite, codename, "+".join(image.arches), state, digest, pushed, 0.0)
            rows.append(row)
            if pushed:
                self.announce(row, digest)
        for row in rows:
            row.seconds = time.monotonic() - started
        return rows

    def _current(self, ref_text: str) -> str | None:
        ref = registry.parse_reference(ref_text)
        with Client(ref.host, self.registry_options) as client:
            client.need(ref.repository, "pull")
            found = manifests.find(client, ref.repository, ref.reference)
        return None if found is None else found.digest

    def assemble_all(self) -> list[Row]:
        groups = [(image, suite, jobs) for image, suite, jobs in self.fleet.groups() if image.multi]
        return [row for image, suite, jobs in groups for row in self.assemble(image, suite, jobs)]

    # --- everything -------------------------------------------------------------------------------------------

    def run(self, jobs: Sequence[Job] | None = None, assemble: bool = True) -> list[Row]:
        rows = [self.run_job(job) for job in (self.fleet.jobs if jobs is None else jobs)]
        if assemble:
            rows += self.assemble_all()
        return rows

    def announce(self, row: Row, digest: str) -> None:
        """One event per pushed reference, in our shape and Docker Hub's."""
        if not self.webhooks:
            return
        fields = {
            "recipe": row.image,
            "suite": row.suite,
            "codename": row.codename,
            "arch": row.arch,
            "state": row.state,
            "digests": {"manifest": digest},
            "changes": row.changes,
        }
        for ref in row.pushed:
            self.failed_webhooks += webhook.notify(self.webhooks, webhook.push_event(ref, digest, fields, time.time()))


COLUMNS = ("image", "codename", "arch", "state", "digest", "pushed", "time")


def table(rows: Sequence[Row]) -> str:
    """The summary: one line per job and per index."""
    cells = [
        (r.image, r.codename, r.arch, r.state, r.digest[:19] if r.digest else "-", " ".join(r.pushed) or "-",
         f"{r.seconds:.1f}s")
        for r in rows
    ]  # fmt: skip
    widths = [max(len(c[i]) for c in [COLUMNS, *cells]) for i in range(len(COLUMNS))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() for line in [COLUMNS, *cells]]
    pushed = sum(len(r.pushed) for r in rows)
    lines.append(f"{pushed} reference(s) pushed" if pushed else "nothing changed: nothing pushed")
    return "\n".join(lines) + "\n"
