"""The builds compared, as command lines (data, testable without running anything), and what each leaves behind.

Every run gets a fresh work directory; the case names its command from it and reads sizes (and, for ours, the
step timings of build.json) from what the command left there. The runner removes the directory afterwards.
"""

import json
import stat
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bootstrap.host.sandbox import mounts_under
from bootstrap.sign import keys

REPO = Path(__file__).resolve().parent.parent
RECIPE = "debian-slim"
STEPS = ("indexes", "resolve", "download", "unpack", "configure", "finish", "pack", "outputs")


@dataclass(frozen=True)
class Context:
    """What every command of one suite needs."""

    suite: str
    mirror: str
    """the loopback mirror's base URL; the archive is under /debian, the security archive under /debian-security"""
    warm_cache: Path
    sources: tuple[tuple[str, str], ...] = ()
    """(mirror URL, dist) of every suite bootstrap used, from its build.json: mmdebstrap gets the same ones"""

    @property
    def main(self) -> str:
        return f"{self.mirror}/debian"

    @property
    def security(self) -> str:
        return f"{self.mirror}/debian-security"


def bootstrap_build(ctx: Context, out: Path, cache: Path, *extra: str) -> list[str]:
    return [
        *bootstrap_cli(ctx, RECIPE, "--suite", ctx.suite, "-o", str(out), "--cache-dir", str(cache), *extra),
        "-q",
    ]


def bootstrap_cli(ctx: Context, *args: str) -> list[str]:
    """`python -m bootstrap ARGS` against the loopback mirror (Valid-Until is not checked: the copy is frozen)."""
    return [
        sys.executable, "-m", "bootstrap", *args,
        "--mirror", ctx.main, "--security-mirror", ctx.security, "--no-check-valid-until",
    ]  # fmt: skip


def mmdebstrap_lines(ctx: Context) -> list[str]:
    """One-line sources, one per suite bootstrap used (the suite, -updates, -security), else just the suite."""
    sources = ctx.sources or ((ctx.main, ctx.suite),)
    return [f"deb {url} {dist} main" for url, dist in sources]


class Case:
    """One of the compared builds."""

    name = ""
    ours = False
    arch = "native"
    """Cases are compared with the other tool's case of the same architecture."""

    def command(self, ctx: Context, work: Path) -> list[str]:
        raise NotImplementedError

    def collect(self, work: Path) -> dict[str, Any]:
        """Sizes (bytes) and, where known, the package count and step timings of the run in `work`."""
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        """What the command needs in its environment besides the loopback mirror's settings."""
        return {}


class BootstrapWarm(Case):
    name = "bootstrap-warm"
    ours = True

    def command(self, ctx: Context, work: Path) -> list[str]:
        return bootstrap_build(ctx, work / "out", ctx.warm_cache)

    def collect(self, work: Path) -> dict[str, Any]:
        out = work / "out"
        info = json.loads((out / "build.json").read_text())
        return {
            "output_bytes": (out / "rootfs.tar.gz").stat().st_size,
            "image_bytes": (out / "image.tar").stat().st_size,
            "uncompressed_bytes": info["image"].get("tar_size"),
            "packages": info["platforms"][0]["packages"],
            "steps": info.get("timings", {}),
            "sources": info.get("sources", []),
        }


SIGN_PASSWORD = "bench-password"
"""The password of the benchmark's signing key: encrypted as `bootstrap keygen` writes one, so that reading it
(its scrypt) counts in what signing costs."""


def signing_key(ctx: Context) -> Path:
    """Where the suite's signing key is (written by `make_signing_key` before the first build)."""
    return ctx.warm_cache.parent / "bench-sign.key"


def make_signing_key(ctx: Context) -> None:
    if not signing_key(ctx).exists():
        keys.write_pair(signing_key(ctx).with_suffix(""), keys.generate(), SIGN_PASSWORD.encode())


class BootstrapSigned(BootstrapWarm):
    """The warm build with --sign-key: the SBOMs and the provenance in signed envelopes. Compared with
    bootstrap-warm, it gives what signing adds to a warm build."""

    name = "bootstrap-signed"

    def command(self, ctx: Context, work: Path) -> list[str]:
        return bootstrap_build(ctx, work / "out", ctx.warm_cache, "--sign-key", str(signing_key(ctx)))

    def env(self) -> dict[str, str]:
        return {keys.PASSWORD_ENV[0]: SIGN_PASSWORD}


class BootstrapEmpty(BootstrapWarm):
    name = "bootstrap-empty"

    def command(self, ctx: Context, work: Path) -> list[str]:
        return bootstrap_build(ctx, work / "out", work / "cache")


class Mmdebstrap(Case):
    name = "mmdebstrap"

    def command(self, ctx: Context, work: Path) -> list[str]:
        return [
            "mmdebstrap", "--variant=minbase", "--mode=root", '--aptopt=Acquire::Check-Valid-Until "false"',
            ctx.suite, str(work / "rootfs.tar"), *mmdebstrap_lines(ctx),
        ]  # fmt: skip

    def collect(self, work: Path) -> dict[str, Any]:
        tar = work / "rootfs.tar"
        size = tar.stat().st_size
        return {"output_bytes": size, "uncompressed_bytes": size, "packages": _packages_in_tar(tar)}


class BootstrapArm64(BootstrapWarm):
    """A foreign architecture (warm cache): maintainer scripts' tools run natively, dpkg under qemu-user."""

    name = "bootstrap-arm64"
    arch = "arm64"

    def command(self, ctx: Context, work: Path) -> list[str]:
        return bootstrap_build(ctx, work / "out", ctx.warm_cache, "--arch", "arm64")


class MmdebstrapArm64(Mmdebstrap):
    """mmdebstrap's foreign build: everything under qemu-user."""

    name = "mmdebstrap-arm64"
    arch = "arm64"

    def command(self, ctx: Context, work: Path) -> list[str]:
        base = super().command(ctx, work)
        return [base[0], "--arch=arm64", *base[1:]]


class Debootstrap(Case):
    name = "debootstrap"

    def command(self, ctx: Context, work: Path) -> list[str]:
        return ["debootstrap", "--variant=minbase", ctx.suite, str(work / "root"), ctx.main]

    def collect(self, work: Path) -> dict[str, Any]:
        size = tree_bytes(work / "root")
        status = work / "root/var/lib/dpkg/status"
        return {"output_bytes": size, "uncompressed_bytes": size, "packages": _count_packages(status.read_bytes())}


CASES: dict[str, Case] = {
    c.name: c
    for c in (
        BootstrapWarm(),
        BootstrapSigned(),
        BootstrapEmpty(),
        Mmdebstrap(),
        Debootstrap(),
        BootstrapArm64(),
        MmdebstrapArm64(),
    )  # fmt: skip
}


def _count_packages(status: bytes) -> int:
    return sum(1 for line in status.splitlines() if line.startswith(b"Package:"))


def _packages_in_tar(tar: Path) -> int | None:
    with tarfile.open(tar) as tf:
        for member in tf:
            if member.name.lstrip("./") == "var/lib/dpkg/status":
                f = tf.extractfile(member)
                return _count_packages(f.read()) if f else None
    return None


def tree_bytes(root: Path) -> int:
    """Apparent size of a tree: regular files and symlinks, without following links."""
    total = 0
    for path in root.rglob("*"):
        st = path.lstat()
        if stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode):
            total += st.st_size
    return total


def remove(path: Path) -> None:
    """Remove a work directory; anything still mounted below it is unmounted first, or nothing is removed."""
    if not path.exists():
        return
    for point in mounts_under(path, include_self=True):
        subprocess.run(["umount", "-l", point], capture_output=True)
    left = mounts_under(path, include_self=True)
    if left:
        raise RuntimeError(f"not removing {path}: still mounted: {', '.join(left)}")
    subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=True)


def archive_state(out: Path) -> list[dict[str, str]]:
    """The suites and InRelease digests a build used (from its build.json): equal digests, equal archive."""
    info = json.loads((out / "build.json").read_text())
    return [{"dist": s["dist"], "inrelease_sha256": s["inrelease_sha256"]} for s in info.get("sources", [])]
