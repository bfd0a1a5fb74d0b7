"""Blobs into a repository: skip what is there, mount what another repository has, upload the rest.

Uploads are monolithic (POST, then PUT with the body and digest) or, above the chunk size, chunked (PATCH with
Content-Range, always continuing at the newest Location, then an empty PUT with the digest). A chunk cut off is
resumed where the registry says the upload stands (GET on the session); any other dropped upload is retried from
a new session, the old one abandoned for the registry to clean up: `retry.call` with one budget of attempts
for both. A HEAD that says a blob is there is believed
only when it also gives the blob's size.
"""

import enum
from collections.abc import Callable, Sequence

from bootstrap.host import retry
from bootstrap.log import log
from bootstrap.numbers import is_decimal
from bootstrap.registry.client import Client, location, with_query
from bootstrap.registry.errors import RegistryError, TransientError
from bootstrap.registry.layout import BlobSource

OCTETS = "application/octet-stream"


class Outcome(enum.StrEnum):
    PRESENT = "present"
    MOUNTED = "mounted"
    UPLOADED = "uploaded"


def exists(client: Client, repository: str, digest: str, size: int | None = None) -> bool:
    """Whether the repository has the blob: a 200 answer, of the blob's size when one is given."""
    resp = client.request(
        "HEAD", f"/v2/{repository}/blobs/{digest}", what=f"checking blob {digest} in {repository}", expect=(200, 404)
    )
    if resp.status_code != 200:
        return False
    length = resp.headers.get("Content-Length")
    if size is not None and length != str(size):
        log.debug(f"HEAD of {digest} in {repository} says {length} bytes, not {size}: uploading it")
        return False
    return True


def mount(client: Client, repository: str, source: str, digest: str) -> str | None:
    """Ask for a cross-repository mount; None when mounted (201), else the Location of the upload session offered."""
    resp = client.request(
        "POST",
        f"/v2/{repository}/blobs/uploads/",
        what=f"mounting blob {digest} from {source} into {repository}",
        expect=(201, 202),
        params={"mount": digest, "from": source},
    )
    if resp.status_code == 201:
        log.debug(f"mounted {digest} from {source} into {repository}")
        return None
    return location(resp)


def abandon(client: Client, upload: str) -> None:
    """Cancel an upload session we will not use (best effort: the registry expires it anyway)."""
    try:
        client.request("DELETE", upload, what="cancelling an upload", expect=(204, 404), retry=False)
    except RegistryError as exc:
        log.debug(f"could not cancel upload session: {exc.message}")


class Uploader:
    """Puts blobs into one repository; counts how each got there."""

    def __init__(
        self,
        client: Client,
        repository: str,
        mount_from: Sequence[str] = (),
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self.client = client
        self.repository = repository
        self.mount_from = [m for m in mount_from if m != repository]
        self.progress = progress
        self.options = client.options

    def ensure(self, blob: BlobSource, trust_head: bool = True) -> Outcome:
        """Get the blob into the repository; `trust_head=False` uploads it even when a HEAD says it is there.

        New sessions and resumed chunks draw on one budget of attempts (the retry policy's)."""
        tries = self.options.policy.tries()

        def note(failure: retry.Transient, tries: retry.Tries) -> None:
            if tries.used < tries.policy.attempts:
                log.warning(f"upload of {blob.digest} interrupted ({failure.why}); retrying in a new session")

        try:
            return retry.call(lambda: self._once(blob, trust_head, tries), tries, on_retry=note)
        except retry.GaveUp as exc:
            advice = "" if self._chunked(blob) else "; or upload in smaller requests with --chunk-size"
            raise RegistryError(
                f"upload of blob {blob.digest} ({blob.size / 1e6:.1f} MB) to {self.client.host}/{self.repository} "
                f"failed after {exc.attempts} attempts: {exc.last.why}",
                f"run the push again: blobs already in the registry are skipped{advice}",
            ) from exc

    def _chunked(self, blob: BlobSource) -> bool:
        return self.options.chunked or blob.size > self.options.chunk_size

    def _once(self, blob: BlobSource, trust_head: bool, tries: retry.Tries) -> Outcome:
        if trust_head and exists(self.client, self.repository, blob.digest, blob.size):
            return Outcome.PRESENT
        upload = None
        for source in self.mount_from:
            if upload is not None:
                abandon(self.client, upload)
            upload = mount(self.client, self.repository, source, blob.digest)
            if upload is None:
                return Outcome.MOUNTED
        if upload is None:
            resp = self.client.request(
                "POST",
                f"/v2/{self.repository}/blobs/uploads/",
                what=f"starting an upload to {self.repository}",
                expect=(202,),
            )
            upload = location(resp)
        if self._chunked(blob):
            upload = self._patch_all(blob, upload, tries)
            body = None
        else:
            body = blob.open(progress=self.progress)
        try:
            resp = self.client.request(
                "PUT",
                with_query(upload, digest=blob.digest),
                what=f"upload of blob {blob.digest} to {self.repository}",
                expect=(201,),
                headers={"Content-Type": OCTETS, "Content-Length": str(blob.size if body is not None else 0)},
                data=body if body is not None else b"",
                retry=False,
            )
        finally:
            if body is not None:
                body.close()
        answered = resp.headers.get("Docker-Content-Digest")
        if answered and answered != blob.digest:
            raise RegistryError(f"{self.client.host} stored blob {blob.digest} as {answered}", "the registry is broken")
        return Outcome.UPLOADED

    def _patch_all(self, blob: BlobSource, upload: str, tries: retry.Tries) -> str:
        size, step = blob.size, self.options.chunk_size
        start = 0
        while start < size:
            n = min(step, size - start)
            end = start + n - 1
            try:
                with blob.open(start, n, self.progress) as body:
                    resp = self.client.request(
                        "PATCH",
                        upload,
                        what=f"upload of bytes {start}-{end} of blob {blob.digest} to {self.repository}",
                        expect=(202,),
                        headers={"Content-Type": OCTETS, "Content-Range": f"{start}-{end}", "Content-Length": str(n)},
                        data=body,
                        retry=False,
                    )
            except TransientError as exc:
                if not tries.begin():  # the chunk is resumed from the same budget as new sessions
                    raise
                start, upload = self._status(upload)
                log.warning(f"upload of {blob.digest} cut off ({exc.reason}); resuming at byte {start}")
                continue
            got = resp.headers.get("Range")
            if got and got.removeprefix("bytes=") != f"0-{end}":
                raise TransientError(f"the registry holds {got} of the upload after sending up to {end}", "")
            upload = location(resp)
            start = end + 1
        return upload

    def _status(self, upload: str) -> tuple[int, str]:
        """Where an upload session stands: the next byte it expects, and its newest Location."""
        resp = self.client.request("GET", upload, what=f"checking an upload to {self.repository}", expect=(204,))
        held = resp.headers.get("Range", "").removeprefix("bytes=")
        first, _, last = held.partition("-")
        if first != "0" or not is_decimal(last) or last == "0":  # registries say 0-0 for an empty upload
            return 0, location(resp)
        return int(last) + 1, location(resp)
