"""Hostile packages, made for real and served from a signed repository on 127.0.0.1 that a recipe names in
`[[repositories]]`: device nodes that would reach the host's devices, and compression bombs.

A package's device node is never made on the host (the override table records it for the layer), and the
sandbox binds the tree nodev and nosuid, so no node in it opens a host device whoever made it. A data.tar
that inflates far beyond any real package is refused with one line naming the package and the limit, with
memory bounded; one that is large but legitimate unpacks by streaming to disk."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
import tarfile
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import zstandard

from bootstrap.deb.debfile import MAX_DATA
from bootstrap.host.sandbox import Sandbox
from tests.faults.conftest import Case, Reference, Run, Site, cli, env_for
from tests.fixtures.debs import EPOCH, TarEntry, ar_archive, build_raw_deb, make_tar, raw_control, raw_members
from tests.fixtures.gpg import GpgKey
from tests.fixtures.peak import measured, peak
from tests.fixtures.repo import Repo
from tests.fixtures.server import Server
from tests.host.test_sandbox import tiny_root  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.e2e, pytest.mark.faults]

MiB = 1 << 20
PEAK = 300 * 1000 * 1000
"""The most memory a debian-slim build may take, bombs or not."""
ZEROS = 8 * MiB
"""The bombs are zstd frames of this many zero bytes, repeated (dpkg reads every frame of a member)."""
LEGITIMATE = 200 * MiB
"""A large package that is still legitimate: it unpacks, streamed to disk."""
BOMB = (2 << 30) + 8 * ZEROS
"""Past the limit (MAX_DATA, 2 GiB): refused."""
DEVICES = {"null": ("chr", (1, 3)), "loop0": ("blk", (7, 0))}
"""What the hostile package ships, mode 0666: /dev/null's numbers and the host's first loop device's."""
PROBE = textwrap.dedent(
    """\
    #!/bin/sh
    # Only tries to open each node for writing; never writes to it.
    out=/var/lib/zz-devices/result
    : > "$out"
    for f in /usr/share/zz-devices/null /usr/share/zz-devices/loop0; do
        if [ -c "$f" ] || [ -b "$f" ]; then
            if (exec 3>"$f") 2>/dev/null; then echo "$f opened" >> "$out"; else echo "$f refused" >> "$out"; fi
        else
            echo "$f not-a-device" >> "$out"
        fi
    done
    if echo probe > /dev/null; then echo "/dev/null works" >> "$out"; fi
    """
)


@dataclass(frozen=True)
class Hostile:
    """The signed repository of hostile packages and the recipe text that adds it to debian-slim."""

    url: str
    keyring: Path
    sizes: dict[str, int]
    """Each package's size in bytes, by name."""

    def recipe(self, directory: Path, package: str) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "hostile.asc").write_bytes(self.keyring.read_bytes())
        path = directory / f"{package}.toml"
        path.write_text(
            f'extends = "debian-slim"\n[packages]\ninclude = ["{package}"]\n'
            f'[[repositories]]\nurl = "{self.url}"\nsuites = ["stable"]\nkeyring = "hostile.asc"\n'
        )
        return path


def _device_package(directory: Path) -> Path:
    entries = [
        TarEntry("./", "dir"),
        TarEntry("./usr/", "dir"),
        TarEntry("./usr/share/", "dir"),
        TarEntry("./usr/share/zz-devices/", "dir"),
        *(
            TarEntry(f"./usr/share/zz-devices/{name}", kind, mode=0o666, device=numbers)  # type: ignore[arg-type]
            for name, (kind, numbers) in DEVICES.items()
        ),
        TarEntry("./var/", "dir"),
        TarEntry("./var/lib/", "dir"),
        TarEntry("./var/lib/zz-devices/", "dir"),
    ]
    control = raw_control("zz-devices", what="device node")
    return build_raw_deb(directory / "zz-devices_1.0_amd64.deb", control, entries, scripts={"postinst": PROBE})


def _zeros_package(directory: Path, name: str, inflated: int) -> Path:
    """A package whose data.tar.zst holds one file of `inflated` zero bytes, in a few dozen KB."""
    dirs = [TarEntry("./", "dir"), TarEntry("./usr/", "dir"), TarEntry("./usr/share/", "dir")]
    head = make_tar([*dirs, TarEntry(f"./usr/share/{name}/", "dir")], end=False)
    info = tarfile.TarInfo(f"./usr/share/{name}/zeros")
    info.size, info.mtime, info.uname, info.gname = inflated, EPOCH, "root", "root"
    compressor = zstandard.ZstdCompressor(level=3)
    assert inflated % ZEROS == 0
    frames = [compressor.compress(head + info.tobuf(tarfile.GNU_FORMAT))]
    frames += [compressor.compress(bytes(ZEROS))] * (inflated // ZEROS)
    frames.append(compressor.compress(bytes(tarfile.RECORDSIZE)))
    members = raw_members(raw_control(name, what="compression bomb"), [], compression="zstd")[:2]
    deb = directory / f"{name}_1.0_amd64.deb"
    directory.mkdir(parents=True, exist_ok=True)
    deb.write_bytes(ar_archive([*members, ("data.tar.zst", b"".join(frames))]))
    return deb


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory, gpg_key: GpgKey) -> Iterator[Hostile]:
    """The repository, signed with the fixture archive's key (so the fault checks can prove its cached release)."""
    base = tmp_path_factory.mktemp("hostile")
    repo = Repo(base / "repo", gpg_key)
    repo.add_dist("stable", "stable", "stable")
    debs = base / "debs"
    bombs = [_zeros_package(debs, "zz-large", LEGITIMATE), _zeros_package(debs, "zz-bomb", BOMB)]
    for deb in (_device_package(debs), *bombs):
        listing = subprocess.run(["dpkg-deb", "--info", str(deb)], capture_output=True, text=True, check=True)
        assert "Package: zz-" in listing.stdout, "dpkg-deb reads the package"
        repo.add_deb("stable", deb)
    assert bombs[1].stat().st_size < 100_000
    repo.publish()
    server = Server(repo.root)
    try:
        sizes = {d.name.split("_", 1)[0]: d.stat().st_size for d in debs.iterdir()}
        yield Hostile(server.url, gpg_key.export(base / "hostile.asc", armor=True), sizes)
    finally:
        server.stop()


def _build(site: Site, recipe: Path, reference: Reference) -> subprocess.CompletedProcess[str]:
    site.seed(reference.cache, ("parsed", "expanded", "releases", "sha256"))
    return cli(str(recipe), *site.args()[1:], env=env_for(site.scratch))


def _measured_build(site: Site, recipe: Path, reference: Reference) -> tuple[Run, int]:
    """A build run through the measuring launcher: what it did and its peak resident memory in bytes."""
    site.seed(reference.cache, ("parsed", "expanded", "releases", "sha256"))
    peak_file = site.root / "peak"
    argv = measured([sys.executable, "-m", "bootstrap", str(recipe)], peak_file)
    proc = subprocess.run(
        [*argv, *site.args()[1:]], capture_output=True, text=True, env=env_for(site.scratch), timeout=600
    )
    return Run(proc, site.out), peak(peak_file)


def _member(rootfs: Path, name: str) -> tuple[tarfile.TarInfo, bytes]:
    with tarfile.open(rootfs) as tar:
        info = tar.getmember(name)
        f = tar.extractfile(info) if info.isreg() else None
        return info, f.read() if f is not None else b""


def test_a_package_s_device_nodes_never_reach_a_host_device(
    case: Case, site: Site, reference: Reference, hostile: Hostile
) -> None:
    case.describe(
        "package",
        "a package from a recipe's [[repositories]] ships c 1:3 and b 7:0, mode 0666; its postinst opens "
        "them for writing",
        "builds; no device node on the host side, so the postinst opens none; the layer keeps both nodes as shipped",
    )
    proc = _build(site, hostile.recipe(site.root / "recipe", "zz-devices"), reference)
    assert proc.returncode == 0, proc.stderr
    _, result = _member(site.out / "rootfs.tar.gz", "var/lib/zz-devices/result")
    lines = result.decode().splitlines()
    assert "/dev/null works" in lines, "the sandbox's own /dev still works"
    assert not [line for line in lines if line.endswith(" opened")], lines
    assert lines[:2] == [f"/usr/share/zz-devices/{n} not-a-device" for n in DEVICES], "nothing was made on the host"
    for name, (kind, (major, minor)) in DEVICES.items():
        info, _ = _member(site.out / "rootfs.tar.gz", f"usr/share/zz-devices/{name}")
        assert info.ischr() if kind == "chr" else info.isblk(), f"{name} is a {kind} device in the layer"
        assert (info.devmajor, info.devminor, info.mode, info.uid, info.gid) == (major, minor, 0o666, 0, 0)
    case.saw("; ".join(lines[:2]) + "; layer: c 1:3 and b 7:0, mode 0666")


def test_the_sandbox_binds_the_tree_without_devices_or_setuid(case: Case, tiny_root: Path) -> None:  # noqa: F811
    case.describe(
        "sandbox",
        "a real device node (c 1:3, mode 0666) already in the tree, made by the host; a script opens it",
        "refused: the tree is bound nodev and nosuid; the sandbox's own /dev/null still works",
    )
    os.mknod(tiny_root / "node", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.chmod(tiny_root / "node", 0o666)
    script = (
        'if (exec 3>/node) 2>/dev/null; then echo "node opened"; else echo "node refused"; fi\n'
        'echo probe > /dev/null && echo "/dev/null works"\n'
        "cat /proc/self/mountinfo\n"
    )
    proc = Sandbox(tiny_root).run(["/bin/sh", "-c", script], {"PATH": "/bin"})
    assert proc.returncode == 0, proc.stdout
    lines = proc.stdout.splitlines()
    assert lines[:2] == ["node refused", "/dev/null works"], proc.stdout
    root_mount = next(line.split() for line in lines[2:] if line.split()[4] == "/")
    assert {"nodev", "nosuid"} <= set(root_mount[5].split(",")), root_mount
    case.saw(f"{lines[0]}; the tree is mounted {root_mount[5]}")


def test_a_compression_bomb_is_refused_with_memory_bounded(
    case: Case, site: Site, reference: Reference, hostile: Hostile
) -> None:
    case.describe(
        "package",
        f"a {{0}} KB package from a recipe's [[repositories]] whose data.tar.zst inflates to {BOMB >> 20} MiB",
        f"fails: one line naming the package and the {MAX_DATA >> 20} MiB limit; peak memory under 300 MB; "
        "nothing left",
    )
    site.previous(reference.out)
    run, peak = _measured_build(site, hostile.recipe(site.root / "recipe", "zz-bomb"), reference)
    error = site.assert_clean_failure(run, "zz-bomb 1.0", f"more than {MAX_DATA >> 20} MiB")
    assert peak < PEAK, f"peak memory {peak >> 20} MiB"
    assert [p for p in (site.cache / "expanded").iterdir() if p.stat().st_size > 64 * MiB] == [], "no spill kept"
    case.fault = case.fault.format(hostile.sizes["zz-bomb"] >> 10)
    case.saw(f"{error} (peak memory {peak >> 20} MiB)")


def test_a_large_legitimate_package_unpacks_by_streaming_to_disk(
    case: Case, site: Site, reference: Reference, hostile: Hostile
) -> None:
    case.describe(
        "package",
        f"a package whose data.tar.zst holds one {LEGITIMATE >> 20} MiB file (zeros): large, but within the limit",
        "builds; the file is whole in the image; peak memory under 300 MB (the data streamed to disk)",
    )
    run, peak = _measured_build(site, hostile.recipe(site.root / "recipe", "zz-large"), reference)
    assert run.proc.returncode == 0, run.proc.stderr
    assert peak < PEAK, f"peak memory {peak >> 20} MiB"
    with tarfile.open(site.out / "rootfs.tar.gz") as tar:
        info = tar.getmember("usr/share/zz-large/zeros")
        f = tar.extractfile(info)
        assert f is not None
        digest = hashlib.sha256()
        while block := f.read(MiB):
            digest.update(block)
    zeros = hashlib.sha256()
    for _ in range(LEGITIMATE // MiB):
        zeros.update(bytes(MiB))
    assert info.size == LEGITIMATE and digest.digest() == zeros.digest()
    case.saw(f"built; /usr/share/zz-large/zeros is {info.size >> 20} MiB of zeros; peak memory {peak >> 20} MiB")


@pytest.fixture(autouse=True)
def _root_only(as_root: None) -> None:
    """Building with scripts and making device nodes need root; as_root skips (or fails in CI) otherwise."""
