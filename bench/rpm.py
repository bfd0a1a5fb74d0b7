"""The RPM comparison: a warm `bootstrap build` of the distribution in miniature (tests/fixtures/rpmdistro.py: the
host's shell, coreutils and rpm packaged with rpmbuild, signed by a throwaway key, metadata by createrepo_c,
`repomd.xml` signed), served on 127.0.0.1 as AlmaLinux 9's BaseOS, against `dnf --installroot` installing the same
request from the same repository, its installroot on the scratch directory's disk and again on a tmpfs (bootstrap's
root builds unpack into a tmpfs of their own). Both run the scriptlets; dnf checks every package's signature
again, bootstrap hashes every package against the signed metadata and takes the signature verdict an earlier build
recorded for those bytes and keys (`bootstrap/rpm/verdicts.py`). Both have a warm cache (untimed runs filled
bootstrap's, `WARM_UPS`, until its package set is settled and its unpacked tree kept, so that its scriptlets run on
that tree seen through an overlay rather than on packages unpacked again; `dnf makecache` and an untimed install
filled dnf's, kept). The timed runs alternate, each in a fresh directory.

Three scales: the miniature alone (8 packages, where both tools' fixed costs decide); the miniature with FILLERS
packages more, each carrying a share of the host's libraries and message catalogues, about BASE_BYTES in all (the
size and count of a distribution's base image, where the per-package and per-byte costs decide); and that base
set again with an AppStream beside BaseOS, as the official images' builds enable it: a signed repository listing
LISTED packages with LISTED_FILES files each (about AlmaLinux 9 AppStream's count and file lists), none of them
installed, so that reading a real distribution's metadata is part of the time, for both tools."""

import contextlib
import functools
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import measure
from bench.stats import Summary, ratio
from bench.tools import REPO, remove, tree_bytes

RELEASE_PATH = "9/BaseOS/x86_64/os"
"""Where the repository is under the served tree: AlmaLinux 9's BaseOS (bootstrap/rpm/distros.py)."""
PATHS = {"baseos": RELEASE_PATH, "appstream": "9/AppStream/x86_64/os"}
"""Each repository's place under the served tree, by its id in AlmaLinux 9's repository files."""
TOOLS = ("rpmbuild", "rpmsign", "createrepo_c", "dnf", "gpg")
CASES = ("bootstrap-rpm-warm", "dnf-installroot", "dnf-installroot-tmpfs")
"""bootstrap as it runs by default (a root build unpacks into a tmpfs of its own); dnf with its installroot where
the user puts it, on the scratch directory's disk, and again on a tmpfs (the file systems alike: tool against
tool)."""
ON_TMPFS = "dnf-installroot-tmpfs"
WARM_UPS = {"bootstrap-rpm-warm": 3}
"""Untimed runs before the timed ones (one where not given): bootstrap's first build fills its cache, the second
settles the package set (two builds gave one layer), the third keeps the tree its unpack left
(`bootstrap/host/kepttree.py`); every timed run is then the build a scheduled rebuild of an unchanged package set
makes. Their times are reported too (`warm_ups`): the second is a warm build of a set not settled yet."""
SCALES = {"miniature": 0, "base": 120}
"""How many filler packages each scale adds to the miniature (the distribution scale is the base one, AppStream
added)."""
LISTED = 6000
LISTED_FILES = 200
BASE_BYTES = 150 << 20
"""The filler packages' files, in all: about an AlmaLinux or Rocky Linux base image's tree."""
FILLER_FILE = 8 << 20
"""No filler takes a host file larger than this (a base image's files are small)."""


@dataclass(frozen=True)
class RpmContext:
    """What both commands need: the served tree, bootstrap's recipe and cache, dnf's configuration and cache."""

    mirror: str
    """The tree's base URL (the mirror bootstrap is given); the repository is at RELEASE_PATH under it."""
    recipe: Path
    cache: Path
    dnf_conf: Path
    dnf_cache: Path
    request: tuple[str, ...]


def bootstrap_command(ctx: RpmContext, out: Path) -> list[str]:
    return [
        sys.executable, "-m", "bootstrap", "build", str(ctx.recipe), "--arch", "amd64",
        "--mirror", ctx.mirror, "--cache-dir", str(ctx.cache), "-o", str(out), "-q",
    ]  # fmt: skip


def dnf_command(ctx: RpmContext, root: Path, *action: str) -> list[str]:
    """dnf on the fixture repository alone, into `root`, with the settings of the official images' builds; the
    first process of a PID namespace of its own (the benchmark runs as root), so that the gpg-agents librepo and
    dnf start, and leave running, end with it."""
    return [
        "unshare", "--pid", "--fork", "--",
        "dnf", "-y", "-q", "--config", str(ctx.dnf_conf), "--installroot", str(root), "--releasever", "9",
        "--setopt=install_weak_deps=False", "--setopt=tsflags=nodocs", "--setopt=keepcache=True",
        f"--setopt=cachedir={ctx.dnf_cache}", "--disableplugin=*",
        *(action or ("install", *ctx.request)),
    ]  # fmt: skip


def write_inputs(
    directory: Path,
    mirror: str,
    key_file: Path,
    fingerprint: str,
    request: tuple[str, ...],
    repos: tuple[str, ...] = ("baseos",),
) -> RpmContext:
    """The recipe bootstrap builds and the dnf configuration dnf reads, both naming the same repositories, key and
    request."""
    directory.mkdir(parents=True, exist_ok=True)
    include = ", ".join(f'"{n}"' for n in request)
    ids = ", ".join(f'"{r}"' for r in repos)
    recipe = directory / "fixture.toml"
    recipe.write_text(
        f'distribution = "almalinux"\nsuite = "9"\n\n[archive]\nkeyring = "{key_file}"\nsigners = ["{fingerprint}"]\n'
        f"\n[packages]\ninclude = [{include}]\n\n[rpm]\nrepos = [{ids}]\nnodocs = true\nweak-deps = false\n"
    )
    conf = directory / "dnf.conf"
    conf.write_text(
        "[main]\nreposdir=/nonexistent\nmetadata_expire=-1\n"
        + "".join(
            f"\n[{r}]\nname={r}\nbaseurl={mirror}/{PATHS[r]}\ngpgcheck=1\nrepo_gpgcheck=1\ngpgkey=file://{key_file}\n"
            for r in repos
        )
    )
    return RpmContext(mirror, recipe, directory / "bootstrap-cache", conf, directory / "dnf-cache", request)


def _listed(i: int) -> tuple[str, str, str, str]:
    """The i-th listed package: its name, architecture, version attributes and package id."""
    name = f"listed{i:05d}"
    arch = "noarch" if i % 5 == 0 else "x86_64"
    return name, arch, f'epoch="0" ver="1.{i % 97}" rel="1.el9"', hashlib.sha256(name.encode()).hexdigest()


def _listed_primary(count: int, root: str) -> bytes:
    out = [f'<?xml version="1.0" encoding="UTF-8"?>\n{root}\n']
    for i in range(count):
        name, arch, evr, pkgid = _listed(i)
        nevra = f"{name}-1.{i % 97}-1.el9"
        needs = "".join(f'<rpm:entry name="listed{(i * 7 + k) % count:05d}"/>' for k in range(1, 4))
        out.append(
            f'<package type="rpm"><name>{name}</name><arch>{arch}</arch><version {evr}/>'
            f'<checksum type="sha256" pkgid="YES">{pkgid}</checksum><summary>{name}</summary>'
            f"<description>The listed package {i}.</description><packager>bench</packager><url></url>"
            f'<time file="1700000000" build="1700000000"/>'
            f'<size package="{40000 + i}" installed="{90000 + i}" archive="{91000 + i}"/>'
            f'<location href="Packages/l/{nevra}.{arch}.rpm"/><format><rpm:license>MIT</rpm:license>'
            f"<rpm:vendor>bench</rpm:vendor><rpm:group>Unspecified</rpm:group><rpm:buildhost>bench.invalid"
            f'</rpm:buildhost><rpm:sourcerpm>{nevra}.src.rpm</rpm:sourcerpm><rpm:header-range start="4504" '
            f'end="{20000 + i}"/><rpm:provides><rpm:entry name="{name}" flags="EQ" {evr}/>'
            f'<rpm:entry name="listed-cap-{i}"/></rpm:provides><rpm:requires><rpm:entry name="/bin/sh" pre="1"/>'
            f'<rpm:entry name="glibc"/>{needs}</rpm:requires><file>/usr/bin/{name}</file></format></package>\n'
        )
    out.append("</metadata>\n")
    return "".join(out).encode()


def _listed_filelists(count: int, files: int, root: str) -> bytes:
    out = [f'<?xml version="1.0" encoding="UTF-8"?>\n{root}\n']
    for i in range(count):
        name, arch, evr, pkgid = _listed(i)
        out.append(f'<package pkgid="{pkgid}" name="{name}" arch="{arch}"><version {evr}/>')
        out.append(f'<file>/usr/bin/{name}</file><file type="dir">/usr/share/{name}</file>')
        out.extend(f"<file>/usr/share/{name}/data/part-{j:04d}.dat</file>" for j in range(files - 2))
        out.append("</package>\n")
    out.append("</filelists>\n")
    return "".join(out).encode()


def _roots(repodata: Path, count: int) -> dict[str, str]:
    """The root elements' start tags createrepo_c wrote in `repodata` (their XML namespaces), by file kind, each
    with `count` packages."""
    import lzma

    out = {"repomd": re.search(r"<repomd[^>]*>", (repodata / "repomd.xml").read_text())[0]}  # type: ignore[index]
    for kind, element in (("primary", "metadata"), ("filelists", "filelists")):
        with lzma.open(repodata / f"{kind}.xml.xz") as f:
            head = f.read(4096).decode()
        tag = re.search(rf"<{element}[^>]*>", head)[0]  # type: ignore[index]
        out[kind] = re.sub(r'packages="\d+"', f'packages="{count}"', tag)
    return out


def write_listing(root: Path, key: Any, like: Path, count: int = LISTED, files: int = LISTED_FILES) -> None:
    """A signed repository at `root` that lists `count` packages of `files` files each (gzip, as EL 9's metadata;
    the XML namespaces of the repository `like`), whose package files are never there: none is asked for."""
    import gzip

    repodata = root / "repodata"
    repodata.mkdir(parents=True, exist_ok=True)
    roots = _roots(like / "repodata", count)
    entries = []
    texts = {"primary": _listed_primary(count, roots["primary"])}
    texts["filelists"] = _listed_filelists(count, files, roots["filelists"])
    for kind, text in texts.items():
        packed = gzip.compress(text, compresslevel=6, mtime=0)
        (repodata / f"{kind}.xml.gz").write_bytes(packed)
        entries.append(
            f'<data type="{kind}"><checksum type="sha256">{hashlib.sha256(packed).hexdigest()}</checksum>'
            f'<open-checksum type="sha256">{hashlib.sha256(text).hexdigest()}</open-checksum>'
            f'<location href="repodata/{kind}.xml.gz"/><timestamp>1700000000</timestamp><size>{len(packed)}</size>'
            f"<open-size>{len(text)}</open-size></data>"
        )
    body = "".join(entries)
    md = f'<?xml version="1.0" encoding="UTF-8"?>\n{roots["repomd"]}<revision>1700000000</revision>{body}</repomd>\n'
    (repodata / "repomd.xml").write_text(md)
    (repodata / "repomd.xml.asc").write_bytes(key.detach_sign(md.encode()))


FILLER_SOURCES = ("/usr/lib", "/usr/share/locale")
"""Where the fillers' files come from: the host's libraries and message catalogues."""


def fillers(count: int, budget: int = BASE_BYTES, sources: tuple[str, ...] = FILLER_SOURCES) -> list[Any]:
    """`count` packages sharing out the files under `sources` (real files: real compression ratios) up to `budget`
    bytes, each under /usr/share/NAME, every fourth with a %post."""
    from tests.fixtures.rpmrepo import Spec

    if not count:
        return []
    groups: list[list[Path]] = [[] for _ in range(count)]
    total = 0
    for i, (path, size) in enumerate(f for top in sources for f in _regular_files(top)):
        if size <= FILLER_FILE and total + size <= budget:
            groups[i % count].append(path)
            total += size
    specs = []
    for k, group in enumerate(groups):
        name = f"filler{k:03d}"
        home = f"/usr/share/{name}"
        lines = [f"mkdir -p $RPM_BUILD_ROOT{home}"]
        lines += [f"cp '{f}' $RPM_BUILD_ROOT{home}/{n}-{f.name}" for n, f in enumerate(group)]
        post = f": {name} configured" if k % 4 == 0 else ""
        install = "\n".join(lines)
        specs.append(Spec(name, arch="x86_64", requires=["glibc"], install=install, post=post, file_lines=[home]))
    return specs


@functools.cache
def _regular_files(top: str) -> tuple[tuple[Path, int], ...]:
    """Every regular file below `top` (symlinks neither taken nor followed) with its size, in the order of their
    paths' parts (as sorted Path objects), each file stat'ed once (and the walk made once a process)."""
    found = []
    for directory, _, names in os.walk(top):
        for name in names:
            full = os.path.join(directory, name)
            st = os.lstat(full)
            if stat.S_ISREG(st.st_mode):
                found.append((full.split("/"), full, st.st_size))
    found.sort(key=lambda f: f[0])
    return tuple((Path(full), size) for _, full, size in found)


@contextlib.contextmanager
def fixture(scratch: Path, filler_count: int = 0, listed: int = 0) -> Iterator[RpmContext]:
    """The miniature (with `filler_count` filler packages) built, signed and served on 127.0.0.1 for as long as
    the context lasts; with `listed`, an AppStream listing that many packages beside it (`write_listing`)."""
    with served(scratch, filler_count) as (ctx, appstream):
        yield appstream(listed) if listed else ctx


@contextlib.contextmanager
def served(scratch: Path, filler_count: int = 0) -> Iterator[tuple[RpmContext, Callable[[int], RpmContext]]]:
    """The miniature with its fillers, served: its context, and a function that adds an AppStream listing N
    packages to the served tree and gives the context that reads both repositories."""
    from tests.fixtures import rpmdistro
    from tests.fixtures.gpg import GpgKey
    from tests.fixtures.rpmrepo import RpmRepo
    from tests.fixtures.server import Server

    extra = fillers(filler_count)
    with GpgKey.generate("Bench Fixture <bench@example.invalid>") as key:
        repo = RpmRepo(scratch / "tree" / RELEASE_PATH, key)
        repo.build([*rpmdistro.specs(), *extra], payload="w19.zstdio")
        repo.publish()
        key_file = key.export(scratch / "fixture-key.asc", armor=True)
        request = (*rpmdistro.REQUEST, *(s.name for s in extra))
        with Server(scratch / "tree") as server:

            def appstream(count: int) -> RpmContext:
                write_listing(scratch / "tree" / PATHS["appstream"], key, repo.root, count)
                home = scratch / "with-appstream"  # a recipe reads files in its own directory only
                home.mkdir(exist_ok=True)
                own_key = key.export(home / "fixture-key.asc", armor=True)
                repos = ("baseos", "appstream")
                return write_inputs(home, server.url, own_key, key.fingerprint, request, repos)

            yield write_inputs(scratch, server.url, key_file, key.fingerprint, request), appstream


def installed(root: Path) -> int:
    """How many packages the rpm database of `root` holds (the host's rpm reading it where dnf wrote it), keys
    aside."""
    proc = subprocess.run(["rpm", "--root", str(root), "-qa", "--qf", "%{NAME}\\n"], capture_output=True, text=True)
    return sum(1 for name in proc.stdout.split() if name != "gpg-pubkey")


def _collect(case: str, work: Path) -> dict[str, Any]:
    if case.startswith("dnf-installroot"):
        return {"uncompressed_bytes": tree_bytes(work / "root"), "packages": installed(work / "root")}
    info = json.loads((work / "out" / "build.json").read_text())
    return {
        "uncompressed_bytes": info["image"].get("tar_size"),
        "packages": info["platforms"][0]["packages"],
        "steps": info.get("timings", {}),
    }


def _command(case: str, ctx: RpmContext, work: Path) -> list[str]:
    return bootstrap_command(ctx, work / "out") if case == "bootstrap-rpm-warm" else dnf_command(ctx, work / "root")


@contextlib.contextmanager
def _tmpfs(where: Path) -> Iterator[Path]:
    """A tmpfs mounted at `where` while the context lasts (the tmpfs case's installroots), with the options of the
    tmpfs bootstrap builds in (huge pages where the kernel has them): the file systems alike."""
    from bootstrap.host.sandbox import tmpfs_options

    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", tmpfs_options("4g"), "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=False)


def _once(case: str, ctx: RpmContext, work: Path, log: Path) -> tuple[measure.Sample, dict[str, Any] | None]:
    work.mkdir(parents=True)
    sample = measure.run(_command(case, ctx, work), log, measure.loopback_env(), REPO)
    return sample, _collect(case, work) if sample.returncode == 0 else None


def compare(ctx: RpmContext, runs: int, scratch: Path, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Warm the caches, then time the cases in turn `runs` times; their summaries and bootstrap's ratio of medians
    to each dnf case."""
    logs = scratch / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with _tmpfs(scratch / "tmpfs") as memory:
        return _compare(ctx, runs, scratch, logs, memory, say)


def _compare(
    ctx: RpmContext, runs: int, scratch: Path, logs: Path, memory: Path, say: Callable[[str], None]
) -> dict[str, Any]:
    def home(case: str) -> Path:
        return memory if case == ON_TMPFS else scratch

    cases: dict[str, dict[str, Any]] = {c: {"command": _command(c, ctx, Path("WORK")), "samples": []} for c in CASES}
    makecache = dnf_command(ctx, scratch / "makecache-root", "makecache")
    measure.run(makecache, logs / "dnf-makecache.log", measure.loopback_env(), REPO)
    for case in CASES:
        for n in range(WARM_UPS.get(case, 1)):
            say(f"rpm: warm-up {n + 1} {case}")
            work, log = home(case) / f"warm-up-{case}-{n}", logs / f"warm-up-{case}-{n}.log"
            sample, details = _once(case, ctx, work, log)
            remove(work)
            os.sync()
            cases[case].setdefault("warm_ups", []).append(round(sample.wall, 3))
            if details is None:
                cases[case]["failure"] = f"warm-up exited {sample.returncode}:\n{measure.tail(log)}"
                break
    details_of: dict[str, list[dict[str, Any]]] = {c: [] for c in CASES}
    for i in range(runs):
        for case in CASES:
            if cases[case].get("failure"):
                continue
            work, log = home(case) / f"{case}-{i}", logs / f"{case}-{i}.log"
            sample, details = _once(case, ctx, work, log)
            remove(work)
            os.sync()  # the run's writes reach the disk now, untimed, not during the next case's run
            say(f"rpm: run {i + 1}/{runs} {case}: {sample.wall:.2f} s, exit {sample.returncode}")
            if details is None:
                cases[case]["failure"] = f"run {i + 1} exited {sample.returncode}:\n{measure.tail(log)}"
                continue
            cases[case]["samples"].append(sample.as_dict())
            details_of[case].append(details)
    for case, c in cases.items():
        if c["samples"]:
            for key in ("wall", "cpu", "peak_rss_mb"):
                c[key] = Summary.of([s[key] for s in c["samples"]]).as_dict()
            c.update({k: v for k, v in details_of[case][-1].items() if k != "steps"})
            steps = [d["steps"] for d in details_of[case] if "steps" in d]
            if steps:
                c["steps"] = {n: Summary.of([s.get(n, 0.0) for s in steps]).as_dict() for n in steps[-1]}
    ours = cases["bootstrap-rpm-warm"]

    def against(theirs: dict[str, Any]) -> float | None:
        return ratio(ours["wall"]["median"], theirs["wall"]["median"]) if "wall" in ours and "wall" in theirs else None

    return {
        "runs": runs,
        "request": list(ctx.request),
        "cases": cases,
        "ratio_wall": against(cases["dnf-installroot"]),
        "ratio_wall_tmpfs": against(cases[ON_TMPFS]),
    }


def run_scales(runs: int, scratch: Path, say: Callable[[str], None] = print) -> dict[str, dict[str, Any]]:
    """The comparison at each scale: scale name -> its comparison. The distribution scale reads the base scale's
    repository, served again with the AppStream listing beside it."""
    failed = _missing(runs)
    if failed:
        return {scale: {**failed, "scale": scale} for scale in (*SCALES, "distribution")}
    _compile()
    out = {}
    for scale, count in SCALES.items():
        say(f"rpm: building the {scale} fixture repository")
        (scratch / scale).mkdir(parents=True, exist_ok=True)
        with served(scratch / scale, count) as (ctx, appstream):
            out[scale] = {**compare(ctx, runs, scratch / scale, say), "scale": scale}
            if scale == "base":
                say(f"rpm: adding an AppStream of {LISTED} listed packages")
                done = compare(appstream(LISTED), runs, scratch / "distribution", say)
                out["distribution"] = {**done, "scale": "distribution"}
    return out


def _missing(runs: int) -> dict[str, Any] | None:
    """The comparison's failure when a tool it runs is missing."""
    missing = [t for t in TOOLS if shutil.which(t) is None]
    return (
        {"runs": runs, "cases": {}, "ratio_wall": None, "failure": f"missing {', '.join(missing)}"} if missing else None
    )


def _compile() -> None:
    """bootstrap's bytecode, as an installed bootstrap has it (PYTHONDONTWRITEBYTECODE would leave every run
    compiling its modules again)."""
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(REPO / "bootstrap")], check=True, stdout=subprocess.DEVNULL
    )


def run(runs: int, scratch: Path, say: Callable[[str], None] = print, filler_count: int = 0) -> dict[str, Any]:
    """Build the fixture (with `filler_count` fillers) in `scratch` and compare; a missing tool is reported as the
    comparison's failure."""
    failed = _missing(runs)
    if failed:
        return failed
    _compile()
    scratch.mkdir(parents=True, exist_ok=True)
    with served(scratch, filler_count) as (ctx, _):
        return compare(ctx, runs, scratch, say)
