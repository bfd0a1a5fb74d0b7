"""The RPM family's tree steps end to end on the distribution in miniature (real programs from the host, packaged
with rpmbuild, signed, served on 127.0.0.1, resolved with libsolv): the tree's own rpm lists exactly the set and
verifies it clean, the scriptlets and triggers ran in the sandbox, and two builds give the same bytes."""

import dataclasses
import os
import stat
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from bootstrap.errors import BootstrapError
from bootstrap.family.interface import Target
from bootstrap.host.cache import Cache
from bootstrap.host.sandbox import Sandbox
from bootstrap.records.inspection import UNOWNED, package_sizes
from bootstrap.rpm import keptdb, pkgsig, rpmdb, scriptlets
from bootstrap.rpm.job import RpmJob, licences
from bootstrap.rpm.options import JobOptions
from bootstrap.rpm.repo import open_repository
from bootstrap.rpm.resolve import Request, resolve
from bootstrap.rpm.rpmdb import RpmDatabase
from bootstrap.rpm.selection import RpmSelection, select, to_model
from tests.fixtures.rpmdistro import INSTALLED, MARKERS, RELEASE_KEY, REQUEST
from tests.fixtures.rpmrepo import RpmRepo
from tests.rpm.conftest import EPOCH, need_tools
from tests.rpm.treeview import view

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox needs root (or a user namespace)")
OPTIONS = JobOptions(write={"/etc/machine-id": b"", "/tmp/scratch": b"x"}, remove=("/tmp/*",))


def _selection(distro: tuple[RpmRepo, str], tmp: Path) -> tuple[RpmSelection, dict[str, Path]]:
    repo, url = distro
    keyring = repo.keyring(tmp / "key.asc")
    opened = open_repository(url, (keyring,), Cache(tmp / "cache").ensure())
    chosen = resolve([("baseos", opened.listing)], opened.groups, Request(names=REQUEST), "x86_64")
    selection = select([(p, to_model(p, url, "fixture")) for p in chosen])
    files = {p.name: repo.root / p.location for p in chosen}
    for name, path in files.items():
        pkgsig.verify(path, (keyring,), name)
    return selection, files


def _build(
    distro: tuple[RpmRepo, str], tmp: Path, options: JobOptions = OPTIONS, kept_db: Path | None = None
) -> tuple[Path, RpmJob]:
    tmp.mkdir()
    selection, files = _selection(distro, tmp)
    root = tmp / "root"
    job = RpmJob(selection, files, Target(root, "x86_64", EPOCH), options, kept_db=kept_db)
    job.unpack(final=False)
    job.configure(lambda: _opened(root))
    job.finish()
    return root, job


class _opened:  # noqa: N801 - a context manager standing for the build's `runnable`
    def __init__(self, root: Path) -> None:
        self.sandbox = Sandbox(root)

    def __enter__(self) -> Sandbox:
        return self.sandbox

    def __exit__(self, *exc: object) -> None:
        return None


def _in_tree(root: Path, *argv: str) -> str:
    proc = Sandbox(root).run(list(argv), {"PATH": "/usr/bin:/bin", "LC_ALL": "C"})
    assert proc.returncode == 0, proc.stdout
    return proc.stdout


@pytest.fixture(scope="module")
def built(rpm_distro: tuple[RpmRepo, str], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, RpmJob]:
    return _build(rpm_distro, tmp_path_factory.mktemp("job") / "a")


def test_tree_rpm_lists_exactly_the_set(built: tuple[Path, RpmJob]) -> None:
    root, _ = built
    listed = _in_tree(root, "/usr/bin/rpm", "-qa", "--qf", "%{NAME}.%{ARCH}\\n").split()
    assert sorted(listed) == sorted(f"{n}.{'noarch' if n in ('filesystem', 'setup') else 'x86_64'}" for n in INSTALLED)


def test_install_times_follow_the_order(built: tuple[Path, RpmJob]) -> None:
    root, job = built
    listed = _in_tree(root, "/usr/bin/rpm", "-qa", "--qf", "%{INSTALLTIME} %{INSTALLTID} %{NAME}\\n").splitlines()
    assert sorted(listed) == [f"{EPOCH + n} {EPOCH} {name}" for n, name in enumerate(job.order())]


def test_tree_rpm_verifies_clean(built: tuple[Path, RpmJob]) -> None:
    root, _ = built
    proc = Sandbox(root).run(["/usr/bin/rpm", "-V", "-a"], {"PATH": "/usr/bin", "LC_ALL": "C"})
    assert proc.returncode == 0 and proc.stdout == "", proc.stdout


def test_scriptlets_and_triggers_ran(built: tuple[Path, RpmJob]) -> None:
    root, _ = built
    marks = root / MARKERS.lstrip("/")
    assert (marks / "coreutils.pre").read_text() == "coreutils pre 1\n"
    assert (marks / "coreutils.post").read_text() == "coreutils post 1\n"
    assert (marks / "shell.post").read_text() == "shell post 1\n"
    assert (marks / "setup.lua").read_text() == "setup lua pre 1\n"  # run by the tree's own rpm
    assert "ls" in (marks / "coreutils.posttrans").read_text().split()
    ldconfig = (marks / "ldconfig.paths").read_text().split()
    assert any(p.endswith("/libc.so.6") for p in ldconfig) and all(p.startswith("/usr/lib") for p in ldconfig)
    assert "/usr/bin/rpm" in (marks / "bin.paths").read_text().split()
    # the Lua file trigger, run by the tree's rpm, got the same paths from rpm.next_file()
    assert (marks / "bin.lua.paths").read_text() == (marks / "bin.paths").read_text()
    assert (marks / "rpm.trigger").read_text() == "rpm triggered by shell 1 1\n"
    assert not (root / scriptlets.STAGE).exists() and not (root / "var/tmp").exists()


def test_owners_modes_and_finish(built: tuple[Path, RpmJob]) -> None:
    root, job = built
    assert (root / "etc/machine-id").read_bytes() == b""
    assert (root / "tmp/scratch").read_bytes() == b"x", "written after the removals (/tmp/*), as the builds order them"
    owned = os.lstat(root / "var/lib/fixture/owned/file")
    assert (owned.st_uid, owned.st_gid, stat.S_IMODE(owned.st_mode)) == (901, 901, 0o640)
    assert not (root / "usr/share/doc/coreutils").exists()  # the weak dependency is not there
    assert not (root / "usr/lib/i686").exists()  # nor the multilib decoy
    assert stat.S_IMODE(os.lstat(root / "var/lib/rpm").st_mode) == 0o755
    notices = job.notices()
    assert set(notices) == set(INSTALLED) and [x.id for x in notices["rpm"].licences] == ["MIT"]
    assert job.native_tools("x86_64") == 0 and job.script_env()["SOURCE_DATE_EPOCH"] == str(EPOCH)


def test_two_builds_same_tree(rpm_distro: tuple[RpmRepo, str], tmp_path: Path) -> None:
    """Two fresh builds (the tree's own rpm, run on the other trees, leaves its -wal and -shm beside the database)."""
    first, second = _build(rpm_distro, tmp_path / "b"), _build(rpm_distro, tmp_path / "c")
    assert view(first[0], None, first[1]) == view(second[0], None, second[1])
    assert not list((first[0] / "var/lib/rpm").glob("*-wal"))


def test_scriptless_tree(rpm_distro: tuple[RpmRepo, str], tmp_path: Path) -> None:
    tmp_path.joinpath("s").mkdir()
    selection, files = _selection(rpm_distro, tmp_path / "s")
    root = tmp_path / "s/root"
    job = RpmJob(selection, files, Target(root, "x86_64", EPOCH), JobOptions(scripts=False))
    job.unpack(final=True)
    assert not (root / "var/lib/rpm/rpmdb.sqlite").exists()
    owned = os.lstat(root / "var/lib/fixture/owned/file")  # coreutils comes before setup's passwd names its owner
    assert (owned.st_uid, owned.st_gid) == (901, 901)
    job.configure(lambda: _opened(root))
    job.package_database()
    assert not (root / MARKERS.lstrip("/") / "coreutils.post").exists()
    assert len(_in_tree(root, "/usr/bin/rpm", "-qa").split()) == len(INSTALLED)


def test_licences_of_license_tags() -> None:
    assert [x.id for x in licences("GPL-3.0-or-later AND (MIT OR BSD-3-Clause)")] == [
        "GPL-3.0-or-later",
        "MIT",
        "BSD-3-Clause",
    ]
    assert [x.id for x in licences("GPLv2+ and Public Domain")] == ["LicenseRef-GPLv2-plus", "LicenseRef-Public-Domain"]
    assert [x.id for x in licences("GPL-2.0-or-later WITH GCC-exception-2.0")] == [
        "GPL-2.0-or-later",
        "GCC-exception-2.0",
    ]


def test_inspect_reads_the_database_in_a_layer(built: tuple[Path, RpmJob], tmp_path: Path) -> None:
    """`bootstrap inspect`'s sizes by package, from the rpm database inside the layer (read from its bytes)."""
    root, _ = built
    layer = tmp_path / "layer.tar"
    with tarfile.open(layer, "w") as tar:
        for path in sorted(root.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(root)), recursive=False)
    sizes = package_sizes(layer, [RpmDatabase()])
    assert set(INSTALLED) - {"filesystem"} <= set(sizes)  # filesystem owns no regular file
    assert sizes["rpm-libs"] > sizes["shell"] > 0
    assert sizes[UNOWNED] >= (root / "var/lib/rpm/rpmdb.sqlite").stat().st_size


KEYED = JobOptions(import_key=True, keys=(RELEASE_KEY,))


def test_the_release_key_is_imported_after_the_packages(rpm_distro: tuple[RpmRepo, str], tmp_path: Path) -> None:
    """`rpm.import-key`: the key file the release package installs goes into the database as a gpg-pubkey header
    dated a second after the last package, and the tree's own rpm then verifies the distribution's packages with
    it, as dnf in the image would; without the option (the `built` tree) there is none."""
    root, job = _build(rpm_distro, tmp_path / "k", KEYED)
    listed = _in_tree(root, "/usr/bin/rpm", "-qa", "--qf", "%{INSTALLTIME} %{NAME}\\n").splitlines()
    assert sorted(listed)[-1] == f"{EPOCH + len(INSTALLED)} gpg-pubkey"
    assert len(listed) == len(INSTALLED) + 1
    # the keyring the image's database holds (read by the host's rpmkeys: the tree's rpm has no rpmkeys)
    keyring = ["rpmkeys", "--root", str(root), "--dbpath", "/var/lib/rpm", "--checksig"]
    checked = subprocess.run([*keyring, str(job.files["coreutils"])], capture_output=True, text=True)
    assert checked.returncode == 0 and "signatures OK" in checked.stdout, checked.stdout + checked.stderr
    proc = Sandbox(root).run(["/usr/bin/rpm", "-V", "-a"], {"PATH": "/usr/bin", "LC_ALL": "C"})
    assert proc.returncode == 0 and proc.stdout == "", proc.stdout
    again, _ = _build(rpm_distro, tmp_path / "k2", KEYED)
    db = "var/lib/rpm/rpmdb.sqlite"
    assert (root / db).read_bytes() == (again / db).read_bytes()


def test_no_key_unless_asked(built: tuple[Path, RpmJob]) -> None:
    root, job = built
    proc = Sandbox(root).run(["/usr/bin/rpm", "-q", "gpg-pubkey"], {"PATH": "/usr/bin", "LC_ALL": "C"})
    assert proc.returncode != 0 and "not installed" in proc.stdout, proc.stdout
    keyring = ["rpmkeys", "--root", str(root), "--dbpath", "/var/lib/rpm", "--checksig"]
    checked = subprocess.run([*keyring, str(job.files["coreutils"])], capture_output=True, text=True)
    assert checked.returncode != 0 and "SIGNATURES NOT OK" in checked.stdout, checked.stdout


def test_the_scriptless_tree_imports_the_key_too(rpm_distro: tuple[RpmRepo, str], tmp_path: Path) -> None:
    tmp_path.joinpath("s").mkdir()
    selection, files = _selection(rpm_distro, tmp_path / "s")
    root = tmp_path / "s/root"
    job = RpmJob(selection, files, Target(root, "x86_64", EPOCH), dataclasses.replace(KEYED, scripts=False))
    job.unpack(final=True)
    job.package_database()
    names = _in_tree(root, "/usr/bin/rpm", "-qa", "--qf", "%{NAME}\\n").split()
    assert names[-1] == "gpg-pubkey" and len(names) == len(INSTALLED) + 1


def test_a_release_key_the_image_lacks_is_one_line(
    rpm_distro: tuple[RpmRepo, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A missing key file, a file that is no key (the error names it in the image) and one too large for a key."""
    options = JobOptions(import_key=True, keys=("/etc/pki/rpm-gpg/RPM-GPG-KEY-none",))
    with pytest.raises(BootstrapError, match=r"rpm.import-key: the release's key /etc/pki/rpm-gpg/RPM-GPG-KEY-none"):
        _build(rpm_distro, tmp_path / "m", options)
    not_a_key = JobOptions(import_key=True, keys=("/usr/lib/os-release",))
    with pytest.raises(BootstrapError, match=r"rpm --import of the image's /usr/lib/os-release"):
        _build(rpm_distro, tmp_path / "n", not_a_key)
    monkeypatch.setattr(rpmdb, "MAX_KEY", 100)
    with pytest.raises(BootstrapError, match=r"RPM-GPG-KEY-AlmaLinux-9 is larger than a key file"):
        _build(rpm_distro, tmp_path / "o", KEYED)


def test_a_kept_database_is_taken_by_the_next_build_of_its_package_set(
    rpm_distro: tuple[RpmRepo, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A build with a cache keeps the database the host's rpm wrote for its package set and keys; the next build of
    the same set takes it without running rpm, byte for byte the same. Other keys, or a kept file that is damaged
    (or was written without the user's key): rpm writes the database again, and the bytes are rpm's."""
    area = Cache(tmp_path / "cache").ensure().area(keptdb.AREA)
    first, _ = _build(rpm_distro, tmp_path / "a", KEYED, kept_db=area)
    (kept,) = area.iterdir()
    runs: list[str] = []
    for name in ("make", "seal"):
        real = getattr(rpmdb, name)

        def counted(*args: object, _name: str = name, _real: Callable[..., None] = real, **kw: object) -> None:
            runs.append(_name)
            _real(*args, **kw)

        monkeypatch.setattr(rpmdb, name, counted)
    second, _ = _build(rpm_distro, tmp_path / "b", KEYED, kept_db=area)
    db = "var/lib/rpm/rpmdb.sqlite"
    assert runs == [] and (second / db).read_bytes() == (first / db).read_bytes()
    assert _in_tree(second, "/usr/bin/rpm", "-q", "gpg-pubkey", "--qf", "%{NAME}\\n") == "gpg-pubkey\n"
    unkeyed, _ = _build(rpm_distro, tmp_path / "c", OPTIONS, kept_db=area)
    assert runs == ["make", "seal"], "kept with other keys: rpm writes it (and seals it, as it does without keys)"
    raw = bytearray(kept.read_bytes())
    raw[-5] ^= 0x01
    kept.write_bytes(bytes(raw))
    runs.clear()
    third, _ = _build(rpm_distro, tmp_path / "d", OPTIONS, kept_db=area)
    assert runs == ["make", "seal"] and (third / db).read_bytes() == (unkeyed / db).read_bytes()


def test_a_database_is_kept_under_all_it_is_made_of() -> None:
    """The key of a kept database changes with each package's sha256, the files its unpack leaves out, the
    order, the epoch and the architecture."""
    packages = [("a" * 64, {"/usr/share/doc/x"}), ("b" * 64, set())]
    base = keptdb.key(packages, EPOCH, "x86_64")
    others = [
        keptdb.key([("c" * 64, {"/usr/share/doc/x"}), packages[1]], EPOCH, "x86_64"),
        keptdb.key([("a" * 64, set()), packages[1]], EPOCH, "x86_64"),
        keptdb.key([("a" * 64, {"/usr/share/doc/y"}), packages[1]], EPOCH, "x86_64"),
        keptdb.key(packages[::-1], EPOCH, "x86_64"),
        keptdb.key(packages, EPOCH + 1, "x86_64"),
        keptdb.key(packages, EPOCH, "aarch64"),
    ]
    assert base == keptdb.key(list(packages), EPOCH, "x86_64")
    assert len({base, *others}) == len(others) + 1


def test_a_database_is_kept_under_the_host_libraries_that_write_it(tmp_path: Path) -> None:
    """librpm, librpmio and SQLite write the database for the host's rpm, and Debian upgrades them apart from
    it: the key of a kept database changes when one of them is a new file, wherever the host keeps it."""
    need_tools("rpm")
    assert any("/librpm.so." in p for p in keptdb.libraries()), "the host's own librpm is found"
    multiarch = tmp_path / "usr/lib/x86_64-linux-gnu"
    multiarch.mkdir(parents=True)
    (multiarch / "librpm.so.9.3.0").write_bytes(b"\x7fELF one")
    (multiarch / "librpm.so.9").symlink_to("librpm.so.9.3.0")
    (multiarch / "libother.so.1").write_bytes(b"\x7fELF other")
    found = keptdb.libraries([str(tmp_path / "usr/lib"), str(tmp_path / "absent")])
    assert found == [str(multiarch / "librpm.so.9.3.0")]
    packages = [("a" * 64, set[str]())]
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(keptdb, "LIBRARY_DIRS", (str(tmp_path / "usr/lib"),))
            keptdb.writer.cache_clear()
            before = keptdb.key(packages, EPOCH, "x86_64")
            (multiarch / "librpm.so.9.3.0").unlink()
            (multiarch / "librpm.so.9.3.0").write_bytes(b"\x7fELF two")  # upgraded: a new file
            keptdb.writer.cache_clear()
            assert keptdb.key(packages, EPOCH, "x86_64") != before
    finally:
        keptdb.writer.cache_clear()


def test_a_restored_job_is_the_unpacked_one_and_a_state_of_other_packages_is_refused(
    rpm_distro: tuple[RpmRepo, str], tmp_path: Path
) -> None:
    """`restore` gives back the packages `unpacked_state` noted, in its order, each one's file table read from its
    header when asked for (eagerly only where an owner is still to give), the identities taken from the tree it is
    given; a state naming a package the selection lacks, missing one, naming one twice or an owner its header does
    not list is refused."""
    import json

    selection, files = _selection(rpm_distro, tmp_path)
    root = tmp_path / "root"
    job = RpmJob(selection, files, Target(root, "x86_64", EPOCH), OPTIONS)
    job.unpack(final=False)
    state = job.unpacked_state()
    assert state is not None
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-a", str(root), str(copy)], check=True)

    def fresh() -> RpmJob:
        return RpmJob(selection, files, Target(copy, "x86_64", EPOCH), OPTIONS)

    again = fresh()
    assert again.restore(state)
    assert [u.name for u in again.unpacked] == [u.name for u in job.unpacked] == job.order()
    for before, after in zip(job.unpacked, again.unpacked, strict=True):
        assert (after.written, after.unknown_owners, after.path) == (before.written, before.unknown_owners, before.path)
        assert (after.table is None) == (not before.unknown_owners), "a table read now only for owners to give"
        assert after.files == before.files and after.files, "read from the header when asked for"
        assert set(after.identities) == set(before.identities)
        assert all(after.identities[p] == _identity(copy / p.lstrip("/")) for p in after.identities)
    assert any(u.unknown_owners for u in job.unpacked), "the fixture leaves owners to a later package"

    rows = json.loads(state)["packages"]
    owing = next(i for i, r in enumerate(rows) if r["unknown"])
    forged = [
        rows[1:],
        [*rows, rows[0]],
        [{**rows[0], "name": "not-selected"}, *rows[1:]],
        [*rows[:owing], {**rows[owing], "unknown": ["/usr/not/in/its/header"]}, *rows[owing + 1 :]],
        [*rows[:owing], {**rows[owing], "written": "/not/a/list"}, *rows[owing + 1 :]],
    ]
    for bad in forged:
        assert not fresh().restore(json.dumps({"packages": bad}).encode()), bad
    assert not fresh().restore(b"not json")


def _identity(path: Path) -> tuple[int, int]:
    st = path.lstat()
    return st.st_dev, st.st_ino
