"""Hostile input to `verify`, made for real on real builds of the fixture archive: a forged cache (an expanded
package with a setuid file added, a parsed index with a package taken out, a kept gzip member with a second
member appended, each derived file written whole again, with the user's key or without it), and an output directory
from someone else (an edited build.json naming a host file or adding a hook, a wrong recorded digest, deleted
outputs, an output that is a symbolic link to a host file).

`verify` must be an independent check: it takes nothing from the cache's derived areas, takes the recipe only
when it matches the lock (and reads no host file for it), never prints a host file, and fails when an output
is missing or not what build.json records."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import shutil
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import deflate
import pytest

from bootstrap.build import recipe, recipe_trust
from bootstrap.build.inputs import inputs_of
from bootstrap.deb.index import PackagesFile
from bootstrap.host.cache import FILE_MODE, read_derived, write_atomic, write_derived
from bootstrap.image.compress import is_member_of
from tests.faults.conftest import Case, Reference, Site, cli, env_for

pytestmark = [pytest.mark.e2e, pytest.mark.faults]

SECRET = "host-secret-3f9c2a7e"
"""The content of the host file the hostile directories name: it must never appear in verify's output."""
ALL_AREAS = ("parsed", "expanded", "releases", "sha256", "gzip")


def verify(site: Site, directory: Path, *extra: str) -> tuple[int, str, str]:
    proc = cli(
        "verify",
        str(directory),
        "--keyring",
        str(site.mirrored.repo.keyring),
        "--cache-dir",
        str(site.cache),
        *extra,
        env=env_for(site.scratch),
    )
    return proc.returncode, proc.stdout, proc.stderr


def _derived_names(cache: Path) -> dict[str, list[str]]:
    return {a: sorted(p.name for p in (cache / a).iterdir()) for a in ("parsed", "expanded", "gzip")}


def _package_sha256(out: Path, name: str) -> str:
    lock = json.loads((out / "lock.json").read_text())
    return str(next(p["sha256"] for p in lock["packages"] if p["name"] == name))


def _with_setuid_file(data_tar: bytes, payload: bytes) -> bytes:
    """The data tar of a package with one more entry: a setuid-root executable."""
    out = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(data_tar)) as src,
        tarfile.open(fileobj=out, mode="w", format=src.format) as dst,
    ):
        for member in src:
            dst.addfile(member, src.extractfile(member) if member.isreg() else None)
        info = tarfile.TarInfo("./usr/bin/rootme")
        info.mode, info.size, info.mtime = 0o4755, len(payload), 0
        dst.addfile(info, io.BytesIO(payload))
    return out.getvalue()


def _layer_entry(out: Path, suffix: str) -> tarfile.TarInfo | None:
    with tarfile.open(out / "rootfs.tar.gz") as layer:
        return next((m for m in layer if m.name.endswith(suffix)), None)


# --- 4: verify is fooled by a forged cache --------------------------------------------------------------------


@contextlib.contextmanager
def _keyed_elsewhere(tmp: Path) -> Iterator[None]:
    """Derived files written meanwhile are keyed as by someone who can write the cache but cannot read the user's
    key (`bootstrap.host.cache.derived_key`): a cache restored from elsewhere."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_STATE_HOME", str(tmp / "someone-else"))
        yield


def _plant_setuid(site: Site, reference: Reference) -> tuple[Path, str, list[bytes]]:
    sha = _package_sha256(reference.out, "base-files")
    slot = site.cache / "expanded" / f"{sha}.v1"
    sections = read_derived(slot, sha)
    assert sections is not None, "the reference build kept base-files decompressed"
    sections[-1] = _with_setuid_file(sections[-1], b"#!/bin/sh\nexec /bin/sh -p\n")
    return slot, sha, sections


def test_forged_expanded_package_without_the_users_key_is_not_taken(
    case: Case, site: Site, reference: Reference
) -> None:
    case.describe(
        "cache",
        "the cache's decompressed base-files gets a setuid-root /usr/bin/rootme, its derived file written whole "
        "again by someone who can write the cache but not read the user's key (a cache restored from elsewhere)",
        "the build does not take it: base-files is decompressed again from the .deb checked against the signed "
        "index, the image is byte-identical to the reference, the forged entry replaced",
    )
    site.seed(reference.cache, ALL_AREAS)
    slot, sha, sections = _plant_setuid(site, reference)
    with _keyed_elsewhere(site.root):
        write_derived(slot, sha, sections)
        assert read_derived(slot, sha) == sections, "a derived file as its writer's key proves it"
    run = site.build()
    assert run.proc.returncode == 0, run.proc.stderr
    assert _layer_entry(site.out, "usr/bin/rootme") is None, "the forged entry went into the image"
    assert case.same_bytes(site.out, reference.out)
    assert read_derived(slot, sha) not in (None, sections), "made again, and proven by the user's key"
    case.saw("the forged derived file was refused and made again; the image is the reference's")


def test_forged_expanded_package_goes_into_a_build_and_verify_names_it(
    case: Case, site: Site, reference: Reference
) -> None:
    case.describe(
        "verify",
        "the cache's decompressed base-files gets a setuid-root /usr/bin/rootme, written by someone holding the "
        "user's key (the user's own account); a build takes it; then `verify` of that build with the same cache",
        "the build has the file (what the user's key proves is taken); verify rebuilds from the .debs "
        "checked against the signed index and FAILS naming rootfs.tar.gz",
    )
    site.seed(reference.cache, ALL_AREAS)
    slot, sha, sections = _plant_setuid(site, reference)
    write_derived(slot, sha, sections)
    run = site.build()
    assert run.proc.returncode == 0, run.proc.stderr
    planted = _layer_entry(site.out, "usr/bin/rootme")
    assert planted is not None and planted.mode & 0o4000, "the forged entry went into the image (the attack)"
    before = _derived_names(site.cache)
    code, stdout, stderr = verify(site, site.out)
    assert code == 1, stdout + stderr
    said = next(line for line in stderr.splitlines() if line.startswith("NOT reproducible"))
    assert "rootfs.tar.gz" in said and "image.tar" in said, stderr
    if shutil.which("diffoscope"):
        assert "rootme" in stdout, "diffoscope names the planted file"
    assert _derived_names(site.cache) == before, "verify neither read nor filled the derived areas"
    assert read_derived(slot, sha) == sections, "verify left the user's cache alone"
    case.saw(said)


def test_forged_parsed_index_is_not_what_verify_reads(case: Case, site: Site, reference: Reference) -> None:
    case.describe(
        "verify",
        "the cache's parsed index of the suite loses base-files' stanza, its offsets and block hashes "
        "recomputed; then `verify` of the reference build with that cache",
        "`lock` (a normal command) resolves from the forged parse; verify re-parses the index file checked "
        "against the signed InRelease and passes",
    )
    site.seed(reference.cache, ALL_AREAS)
    forged = 0
    for text_path in sorted((site.cache / "parsed").glob("*.text")):
        text = text_path.read_bytes()
        stanzas = text.split(b"\n\n")
        kept = [s for s in stanzas if not s.lstrip(b"\n").startswith(b"Package: base-files\n")]
        if len(kept) == len(stanzas):
            continue
        new = b"\n\n".join(kept)
        source = text_path.name.split(".", 1)[0]
        write_atomic(text_path, new, FILE_MODE)
        write_derived(
            text_path.with_name(text_path.name.replace(".text", ".offsets")), source, PackagesFile.parse(new).sections()
        )
        forged += 1
    assert forged, "base-files is in a parsed index"
    locked = site.root / "forged.lock.json"
    args = site.args()[3:]  # the mirror, keyring and cache options, without -o
    proc = cli("lock", "debian-slim", "-o", str(locked), *args, env=env_for(site.scratch))
    assert proc.returncode != 0 or "base-files" not in locked.read_text(), "the forged parse is taken by `lock`"
    code, stdout, stderr = verify(site, reference.out)
    assert code == 0 and stdout.startswith("verified:"), stdout + stderr
    case.saw(f"lock: {'failed' if proc.returncode else 'no base-files'}; verify: {stdout.strip()[:100]}")


def test_kept_gzip_member_with_a_second_member_appended_is_not_taken(
    case: Case, site: Site, reference: Reference
) -> None:
    case.describe(
        "verify",
        "every kept gzip member of the cache gets a second gzip member appended (its trailer naming the block's "
        "size, so libdeflate inflates the pair to the block), derived hash recomputed; then a build",
        "no forged member is taken: the layer is compressed again, byte-identical to the reference; the "
        "forged entries are replaced",
    )
    site.seed(reference.cache, ALL_AREAS)
    kept = sorted((site.cache / "gzip").iterdir())
    assert kept, "the reference build kept its members"
    for path in kept:
        digest = path.name.split(".", 1)[0]
        (member,) = read_derived(path, digest) or [b""]
        size = len(gzip.decompress(member))
        forged = member + bytes(deflate.gzip_compress(b"\0" * size, 6))
        assert deflate.gzip_decompress(forged) == gzip.decompress(member), "libdeflate takes the pair"
        write_derived(path, digest, [forged])
    run = site.build()
    assert run.proc.returncode == 0, run.proc.stderr
    assert case.same_bytes(site.out, reference.out), "a forged member went into the layer"
    assert site.bad_cache() == []
    for path in kept:
        digest = path.name.split(".", 1)[0]
        (member,) = read_derived(path, digest) or [b""]
        assert is_member_of(member, gzip.decompress(member)), f"{path.name} was not replaced"
    case.saw(f"{len(kept)} forged members refused; layer identical to the reference")


# --- 8: verify trusts the directory it is given ---------------------------------------------------------------


def _copy(reference: Reference, site: Site) -> Path:
    out = site.root / "theirs"
    shutil.copytree(reference.out, out)
    return out


def _rewrite(out: Path, name: str, edit: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    """Change a JSON record of the directory in place."""
    data: dict[str, Any] = json.loads((out / name).read_text())
    edit(data)
    (out / name).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return data


def _edit_build(out: Path, change: dict[str, object]) -> dict[str, Any]:
    return _rewrite(out, "build.json", lambda b: b["recipe"].update(change))


def _record_digest(out: Path, name: str, digest: str) -> None:
    _rewrite(out, "build.json", lambda b: b["files"].update({name: "sha256:" + digest}))


def _host_file(site: Site) -> Path:
    secret = site.root / "host-secret"
    secret.write_text(f"root:{SECRET}:19000:0:99999:7:::\n")
    return secret


def _assert_refused_before_building(
    site: Site, code: int, stdout: str, stderr: str, *words: str, planned: bool = False
) -> str:
    """One error line with `words`, nothing of the host file printed, nothing fetched or built (`planned`:
    refused after the plan, which may have opened the cache, but before any index or package came in)."""
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert code != 0 and len(errors) == 1, stdout + stderr
    assert all(w in errors[0] for w in words), stderr
    assert "Traceback" not in stderr and SECRET not in stdout + stderr
    if planned:
        assert not (site.cache / "sha256").exists() or not any((site.cache / "sha256").iterdir())
    else:
        assert not site.cache.exists(), "nothing was fetched or built"
    assert list(site.scratch.iterdir()) == [], "nothing was built"
    return errors[0]


def test_build_json_naming_a_host_file_is_refused(case: Case, site: Site, reference: Reference) -> None:
    case.describe(
        "verify",
        "a real output directory whose build.json recipe gains [[files]] source = a host file (a shadow-like secret)",
        "refused with one line before anything is built; nothing of the host file printed",
    )
    out = _copy(reference, site)
    secret = _host_file(site)
    _edit_build(out, {"files": [{"source": str(secret), "dest": "/etc/leak"}]})
    code, stdout, stderr = verify(site, out)
    case.saw(_assert_refused_before_building(site, code, stdout, stderr, "build.json", "local file"))
    assert "hint: " in stderr and "--recipe" in stderr


def test_build_json_adding_a_hook_with_a_matching_lock_is_refused(case: Case, site: Site, reference: Reference) -> None:
    case.describe(
        "verify",
        "a real output directory whose build.json recipe gains a [[customize]] hook, the lock's recipe digest "
        "recomputed to match (the whole directory forged)",
        "refused with one line before anything is built; the hook never runs",
    )
    out = _copy(reference, site)
    marker = f"hook-ran-{SECRET}"
    build = _edit_build(out, {"customize": [{"run": f"echo {marker}; touch /{marker}; exit 3"}]})
    data = build["recipe"]
    assert isinstance(data, dict)
    rec = recipe.from_data(dict(data), str(data["name"]), "forged")
    _rewrite(out, "lock.json", lambda lock: lock.update(inputs=[asdict(i) for i in inputs_of(rec)]))
    _record_digest(out, "lock.json", hashlib.sha256((out / "lock.json").read_bytes()).hexdigest())
    code, stdout, stderr = verify(site, out)
    error = _assert_refused_before_building(site, code, stdout, stderr, "customize hook")
    assert "hint: " in stderr and "--recipe" in stderr
    assert marker not in stdout + stderr
    case.saw(error)


def test_recipe_given_is_checked_against_the_lock(case: Case, site: Site, reference: Reference) -> None:
    case.describe(
        "verify",
        "`verify --recipe` with a recipe of the same name whose package set differs from what the lock records",
        "refused with one line naming the mismatch, before anything is built",
    )
    other = site.root / "mine" / "debian-slim.toml"
    other.parent.mkdir()
    shipped = next(d / "debian-slim.toml" for d in recipe_trust.bundled_dirs() if (d / "debian-slim.toml").is_file())
    other.write_text(shipped.read_text() + '\n[packages]\ninclude = ["apt", "hostname"]\n')
    code, stdout, stderr = verify(site, reference.out, "--recipe", str(other))
    case.saw(_assert_refused_before_building(site, code, stdout, stderr, "not the one its lock records", planned=True))


def test_recorded_digest_of_zeros_fails(case: Case, site: Site, reference: Reference) -> None:
    case.describe(
        "verify",
        "build.json records image.tar's digest as sha256:000...0",
        "fails before building, naming image.tar",
    )
    out = _copy(reference, site)
    _record_digest(out, "image.tar", "0" * 64)
    code, stdout, stderr = verify(site, out)
    case.saw(_assert_refused_before_building(site, code, stdout, stderr, "image.tar", "not the digest"))


def test_deleted_outputs_fail(case: Case, site: Site, reference: Reference) -> None:
    case.describe(
        "verify",
        "image.tar and rootfs.tar.gz deleted from a real output directory",
        "fails before building, naming both missing outputs",
    )
    out = _copy(reference, site)
    (out / "image.tar").unlink()
    (out / "rootfs.tar.gz").unlink()
    code, stdout, stderr = verify(site, out)
    case.saw(_assert_refused_before_building(site, code, stdout, stderr, "missing", "image.tar", "rootfs.tar.gz"))


def test_output_that_is_a_link_to_a_host_file_is_not_read(case: Case, site: Site, reference: Reference) -> None:
    case.describe(
        "verify",
        "rootfs.tar.gz replaced by a symbolic link to a host file (a secret), its digest recorded in build.json",
        "fails before building, naming rootfs.tar.gz; nothing of the host file printed",
    )
    out = _copy(reference, site)
    secret = _host_file(site)
    (out / "rootfs.tar.gz").unlink()
    (out / "rootfs.tar.gz").symlink_to(secret)
    _record_digest(out, "rootfs.tar.gz", hashlib.sha256(secret.read_bytes()).hexdigest())
    code, stdout, stderr = verify(site, out)
    case.saw(_assert_refused_before_building(site, code, stdout, stderr, "rootfs.tar.gz", "not regular"))
