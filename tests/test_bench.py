"""The benchmark's own logic: statistics and ratios, command lines, and the frozen pull-through mirror
(served from a local origin on 127.0.0.1; no external network)."""

import encodings
import hashlib
import os
import sys
from pathlib import Path

import pytest
import requests
import solv

from bench import measure, report, runner, tools
from bench import rpm as bench_rpm
from bench.mirror import FrozenMirror, parse_range, release_checksums
from bench.stats import Summary, Target, ratio
from bench.tools import Context, Mmdebstrap, bootstrap_build, mmdebstrap_lines
from bootstrap.build import recipe
from bootstrap.host.cache import Cache
from bootstrap.rpm import listing
from bootstrap.rpm.repo import open_repository
from bootstrap.sign import keys
from tests.conftest import Serve
from tests.fixtures import rpmdistro
from tests.fixtures.gpg import GpgKey
from tests.fixtures.rpmrepo import DNF_MARK, left_running, shared_miniature
from tests.rpm.conftest import need_tools


def test_summary_and_ratio() -> None:
    s = Summary.of([3.0, 1.0, 2.0, 10.0])
    assert (s.median, s.min, s.max, s.n) == (2.5, 1.0, 10.0, 4)
    with pytest.raises(ValueError):
        Summary.of([])
    assert ratio(1.0, 4.0) == 0.25
    assert ratio(1.0, 0.0) is None
    assert ratio(None, 4.0) is None
    assert Target("x", 0.2, 0.2).verdict == "PASS"
    assert Target("x", 0.21, 0.2).verdict == "MISS"
    assert Target("x", None, 0.2).verdict == "N/A"


def _case(wall: float, rss: float = 100.0, size: int = 1000) -> dict[str, object]:
    summary = {"median": wall, "min": wall, "max": wall, "n": 1}
    return {
        "wall": summary,
        "cpu": summary,
        "peak_rss_mb": {**summary, "median": rss},
        "uncompressed_bytes": size,
        "samples": [{"peak_rss_mb": rss}],
    }


def test_ratios_and_targets() -> None:
    cases = {"bootstrap-warm": _case(2.0), "bootstrap-empty": _case(6.0, 350.0), "mmdebstrap": _case(20.0, 50.0)}
    rows = runner.ratios(cases)
    assert [(r["ours"], r["theirs"], r["wall"]) for r in rows] == [
        ("bootstrap-warm", "mmdebstrap", 0.1),
        ("bootstrap-empty", "mmdebstrap", 0.3),
    ]
    cases["debootstrap"] = {"failure": "warm-up exited 1:\nE: no", "samples": []}
    suite = {"suite": "trixie", "runs": 1, "cases": cases, "ratios": rows}
    verdicts = {t.name.split(": ", 1)[1]: t.verdict for t in report.targets(suite)}
    assert verdicts["warm bootstrap / mmdebstrap, wall"] == "PASS"
    assert verdicts["empty-cache bootstrap / mmdebstrap, wall"] == "PASS"
    assert verdicts["bootstrap peak RSS, largest of all runs"] == "MISS"
    assert verdicts["check, nothing changed"] == "N/A"
    table = report.suite_table(suite)
    assert "bootstrap-warm / mmdebstrap" in table
    assert "debootstrap FAILED: warm-up exited 1:" in table


def test_what_signing_adds_to_a_warm_build(tmp_path: Path) -> None:
    """bootstrap-signed is the warm build with an encrypted key (as keygen writes one, its password in the
    environment); the target compares its median wall with the unsigned warm build's."""
    ctx = Context("trixie", "http://127.0.0.1:9", tmp_path / "warm-cache")
    tools.make_signing_key(ctx)
    case = tools.CASES["bootstrap-signed"]
    argv = case.command(ctx, tmp_path / "w")
    key = Path(argv[argv.index("--sign-key") + 1])
    assert key.read_bytes().startswith(b"-----BEGIN ENCRYPTED")
    assert keys.load_private(key, lambda: case.env()[keys.PASSWORD_ENV[0]].encode()).public.key_id()
    at = argv.index("--sign-key")
    assert argv[:at] + argv[at + 2 :] == tools.CASES["bootstrap-warm"].command(ctx, tmp_path / "w")
    assert runner.signing_cost({"bootstrap-warm": _case(2.0)}) is None
    for signed, verdict in ((2.15, "PASS"), (2.5, "MISS")):
        cost = runner.signing_cost({"bootstrap-warm": _case(2.0), "bootstrap-signed": _case(signed)})
        assert cost is not None and cost["added_wall"] == round(signed - 2.0, 3)
        suite = {"suite": "trixie", "runs": 1, "cases": {}, "signing": cost}
        verdicts = {t.name.split(": ", 1)[1]: t.verdict for t in report.targets(suite)}
        assert verdicts["signing adds to a warm build, wall"] == verdict
        assert f"signing adds {signed - 2.0:.3f} s to a warm build" in report.suite_table(suite)


def test_command_lines() -> None:
    ctx = Context("trixie", "http://127.0.0.1:9", Path("/c"), (("M", "trixie"), ("M", "trixie-updates"), ("S", "x")))
    assert mmdebstrap_lines(ctx) == ["deb M trixie main", "deb M trixie-updates main", "deb S x main"]
    assert mmdebstrap_lines(Context("sid", "http://h", Path("/c"))) == ["deb http://h/debian sid main"]
    argv = bootstrap_build(ctx, Path("/o"), Path("/c"))
    assert argv[argv.index("--mirror") + 1] == "http://127.0.0.1:9/debian"
    assert argv[argv.index("--security-mirror") + 1] == "http://127.0.0.1:9/debian-security"
    argv = Mmdebstrap().command(ctx, Path("/w"))
    assert argv[argv.index("/w/rootfs.tar") :] == ["/w/rootfs.tar", *mmdebstrap_lines(ctx)]


def test_parse_range_and_release_checksums() -> None:
    assert parse_range("bytes=0-9", 100) == (0, 9)
    assert parse_range("bytes=90-", 100) == (90, 99)
    assert parse_range("bytes=-10", 100) == (90, 99)
    assert parse_range("bytes=50-500", 100) == (50, 99)
    assert parse_range("bytes=0-1,5-6", 100) is None
    with pytest.raises(ValueError):
        parse_range("bytes=100-", 100)
    text = "Origin: X\nAcquire-By-Hash: yes\nMD5Sum:\n 00 1 a\nSHA256:\n ab 12 main/Packages\n cd 3 main/Release\n"
    assert release_checksums(text) == ({"main/Packages": "ab", "main/Release": "cd"}, True)


def test_mirror_serves_and_freezes(tmp_path: Path, serve: Serve) -> None:
    origin = tmp_path / "origin"
    (origin / "pool").mkdir(parents=True)
    (origin / "pool/a.deb").write_bytes(b"0123456789")
    old, new = b"Package: a\n", b"Package: a\nPackage: b\n"
    sha = hashlib.sha256(old).hexdigest()
    dists = origin / "dists/s"
    (dists / "main/by-hash/SHA256").mkdir(parents=True)
    (dists / "main/by-hash/SHA256" / sha).write_bytes(old)
    (dists / "main/Packages").write_bytes(new)  # the archive moved on after InRelease was frozen
    (dists / "InRelease").write_text(f"Acquire-By-Hash: yes\nSHA256:\n {sha} {len(old)} main/Packages\n")
    cache = tmp_path / "cache"
    with FrozenMirror(cache, {"debian": serve(origin)}) as mirror:
        base = f"{mirror.url}/debian"
        assert requests.get(f"{base}/dists/s/InRelease").ok
        assert requests.get(f"{base}/dists/s/main/Packages").content == old
        first = requests.get(f"{base}/pool/a.deb")
        assert first.content == b"0123456789"
        assert (cache / "debian/pool/a.deb").read_bytes() == b"0123456789"
        (origin / "pool/a.deb").write_bytes(b"changed")
        assert requests.get(f"{base}/pool/a.deb").content == b"0123456789"
        part = requests.get(f"{base}/pool/a.deb", headers={"Range": "bytes=2-4"})
        assert (part.status_code, part.content, part.headers["Content-Range"]) == (206, b"234", "bytes 2-4/10")
        stale = requests.get(f"{base}/pool/a.deb", headers={"Range": "bytes=2-4", "If-Range": '"other"'})
        assert (stale.status_code, stale.content) == (200, b"0123456789")
        head = requests.head(f"{base}/pool/a.deb")
        assert (head.status_code, head.headers["Content-Length"], head.content) == (200, "10", b"")
        again = requests.get(f"{base}/pool/a.deb", headers={"If-Modified-Since": first.headers["Last-Modified"]})
        assert again.status_code == 304
        assert requests.get(f"{base}/pool/b.deb").status_code == 404
        (origin / "pool/b.deb").write_bytes(b"late")
        assert requests.get(f"{base}/pool/b.deb").status_code == 404  # "not found" is frozen too
        assert requests.get(f"{mirror.url}/elsewhere/pool/a.deb").status_code == 404
        assert requests.get(f"{base}/../origin/pool/a.deb").status_code == 404
        counters = mirror.store.snapshot()
    assert counters.fetched == 3
    assert not any(p.name.endswith(".part") for p in cache.rglob("*"))
    assert os.listdir(cache / ".missing")


def test_measure_reports_the_tree_not_the_benchmark(tmp_path: Path) -> None:
    ballast = bytearray(150_000_000)  # the benchmark's own peak must not show up as the command's
    ballast[::4096] = b"x" * len(ballast[::4096])
    small = measure.run(["true"], tmp_path / "log")
    assert (small.returncode, small.peak_rss_mb < 50) == (0, True)
    grow = f"{sys.executable} -c 'x = bytearray(80_000_000); x[::4096] = b\"y\" * len(x[::4096])'; exit 3"
    tree = measure.run(["sh", "-c", grow], tmp_path / "log")
    assert tree.returncode == 3
    assert 80 <= tree.peak_rss_mb < 150
    assert tree.cpu > 0 and tree.wall > 0
    assert measure.run(["/nonexistent/command"], tmp_path / "log").returncode == 127
    del ballast


def test_rpm_inputs_name_one_repository(tmp_path: Path) -> None:
    """bootstrap's recipe and dnf's configuration read the same repository with the same key and request; the
    recipe is one bootstrap loads, and dnf runs with the official builds' settings and a kept cache."""
    key = tmp_path / "key.asc"
    key.write_text("an armored key\n")
    ctx = bench_rpm.write_inputs(tmp_path, "http://127.0.0.1:9", key, "AB" * 20, ("setup", "shell"))
    loaded = recipe.load(str(ctx.recipe), given=True)
    assert (loaded.distribution, loaded.include, loaded.rpm_repos) == (
        "almalinux",
        ("setup", "shell"),
        ("baseos",),
    )
    conf = ctx.dnf_conf.read_text()
    assert f"baseurl=http://127.0.0.1:9/{bench_rpm.RELEASE_PATH}\n" in conf and f"gpgkey=file://{key}\n" in conf
    assert "gpgcheck=1" in conf and "repo_gpgcheck=1" in conf
    argv = bench_rpm.dnf_command(ctx, tmp_path / "root")
    assert argv[-3:] == ["install", "setup", "shell"]
    assert {"--setopt=install_weak_deps=False", "--setopt=tsflags=nodocs", "--setopt=keepcache=True"} <= set(argv)
    ours = bench_rpm.bootstrap_command(ctx, tmp_path / "out")
    assert ours[ours.index("--mirror") + 1] == "http://127.0.0.1:9"
    assert ours[ours.index("--cache-dir") + 1] == str(ctx.cache)


def test_rpm_target_and_table() -> None:
    cases = {"bootstrap-rpm-warm": _case(0.5), "dnf-installroot": {"failure": "run 1 exited 1:\nError", "samples": []}}
    done = {"runs": 1, "request": ["shell"], "cases": cases, "ratio_wall": None, "ratio_wall_tmpfs": None}
    assert [t.verdict for t in report.rpm_targets(done)] == ["N/A", "N/A"]
    assert "dnf-installroot      FAILED: run 1 exited 1:" in report.rpm_table(done)
    assert [t.verdict for t in report.rpm_targets({**done, "ratio_wall": 0.25})] == ["PASS", "N/A"]
    assert [t.verdict for t in report.rpm_targets({**done, "ratio_wall": 0.3, "ratio_wall_tmpfs": 0.2})] == [
        "MISS",
        "PASS",
    ]
    assert "on a tmpfs, wall medians: 0.600" in report.rpm_table({**done, "ratio_wall_tmpfs": 0.6})
    warmed = {**done, "cases": {"bootstrap-rpm-warm": {**_case(0.5), "warm_ups": [2.5, 1.25, 1.5]}}}
    assert "untimed warm-ups, wall s: 2.50, 1.25, 1.50" in report.rpm_table(warmed)
    assert "not measured: missing dnf" in report.rpm_table({"runs": 1, "cases": {}, "failure": "missing dnf"})


@pytest.mark.e2e
def test_rpm_comparison_builds_the_same_set_both_ways(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One round for real: the fixture distribution built and served, bootstrap's warm build and dnf's install
    of the same request both succeed and install the same packages; the ratio is of their medians. End to end
    (a whole image built through the command line, dnf installing into a root, each twice): `make test` runs it,
    `make unit` does not."""
    need_tools(*bench_rpm.TOOLS)
    if os.geteuid() != 0:
        pytest.skip("dnf --installroot runs the scriptlets chrooted: root only")
    monkeypatch.setenv(DNF_MARK, str(tmp_path))  # in every process the benchmark starts
    done = bench_rpm.run(1, tmp_path / "rpm", lambda _: None)
    ours, theirs = done["cases"]["bootstrap-rpm-warm"], done["cases"]["dnf-installroot"]
    memory = done["cases"][bench_rpm.ON_TMPFS]
    failures = [c.get("failure") for c in (ours, theirs, memory)]
    assert not any(failures), failures
    assert ours["packages"] == theirs["packages"] == memory["packages"] == len(rpmdistro.INSTALLED)
    assert done["ratio_wall"] == round(ours["wall"]["median"] / theirs["wall"]["median"], 3)
    assert done["ratio_wall_tmpfs"] == round(ours["wall"]["median"] / memory["wall"]["median"], 3)
    assert not os.path.ismount(tmp_path / "rpm" / "tmpfs"), "the tmpfs is unmounted after the comparison"
    assert {"unpack", "configure", "pack"} <= set(ours["steps"])
    assert len(ours["warm_ups"]) == bench_rpm.WARM_UPS["bootstrap-rpm-warm"] and len(theirs["warm_ups"]) == 1
    assert left_running(str(tmp_path)) == [], "dnf left a gpg-agent running"


def test_rpm_fillers_share_out_host_files_within_the_budget() -> None:
    """The base-image scale's fillers: each its own directory of real host files, every fourth with a %post, the
    files together within the budget and the same on every call."""
    sources = (os.path.dirname(encodings.__file__),)  # a small part of the host's tree, quick to walk
    specs = bench_rpm.fillers(4, budget=2 << 20, sources=sources)
    assert [s.name for s in specs] == ["filler000", "filler001", "filler002", "filler003"]
    copied = [line.split("'")[1] for s in specs for line in s.install.splitlines() if line.startswith("cp ")]
    assert copied and sum(os.path.getsize(f) for f in copied) <= 2 << 20
    assert max(os.path.getsize(f) for f in copied) <= bench_rpm.FILLER_FILE
    assert [list(s.file_lines) for s in specs] == [[f"/usr/share/{s.name}"] for s in specs]
    assert [bool(s.post) for s in specs] == [True, False, False, False]
    assert bench_rpm.fillers(4, budget=2 << 20, sources=sources) == specs and bench_rpm.fillers(0) == []


def test_rpm_targets_name_their_scale() -> None:
    done = {"runs": 1, "request": [f"p{i}" for i in range(20)], "cases": {}, "ratio_wall": 0.5, "scale": "base"}
    target, memory = report.rpm_targets(done)
    assert (target.name, target.verdict) == ("rpm base: warm bootstrap / dnf --installroot, wall", "MISS")
    assert (memory.name, memory.verdict) == ("rpm base: ... / dnf --installroot on a tmpfs, wall", "N/A")
    assert "request: p0 p1 p2 p3 p4 p5 and 14 more" in report.rpm_table(done)


def test_the_appstream_listing_reads_as_a_signed_repository(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, gpg_key: GpgKey, serve: Serve, cache: Cache
) -> None:
    """The distribution scale's AppStream: a repository bootstrap opens as any other (repomd.xml signed, each file
    checked against it, the namespaces createrepo_c writes), whose packages carry their file lists."""
    need_tools("rpmbuild", "createrepo_c")
    like = shared_miniature(tmp_path_factory, gpg_key).root
    bench_rpm.write_listing(tmp_path / "appstream", gpg_key, like, count=40, files=12)
    keyring = gpg_key.export(tmp_path / "key.asc", armor=True)
    got = open_repository(serve(tmp_path / "appstream"), (keyring,), cache, frozenset({gpg_key.fingerprint}))
    assert [p.name for p in got.packages] == [f"listed{i:05d}" for i in range(40)]
    assert {p.arch for p in got.packages} == {"noarch", "x86_64"} and got.repomd.revision == "1700000000"
    pool = listing.new_pool("x86_64")
    records = listing.load(pool, "appstream", got.listing)
    owners = pool.select("/usr/share/listed00007/data/part-0009.dat", solv.Selection.SELECTION_FILELIST).solvables()
    assert [records[s.id].name for s in owners] == ["listed00007"]
