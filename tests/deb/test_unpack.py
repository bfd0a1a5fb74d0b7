"""Unpacking real .debs (built with dpkg-deb) into a root: confinement, merged /usr, filters, conffiles, and
the dpkg database written beside them."""

import dataclasses
import hashlib
import os
import re
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from bootstrap.deb import debfile, dpkgdb
from bootstrap.deb.filters import PathFilter
from bootstrap.deb.index import Package
from bootstrap.deb.unpack import drop_unshipped_links, prepare_root, unpack_all, unpack_one
from bootstrap.errors import UnpackError
from bootstrap.host.cache import sha256_file
from bootstrap.host.rootwriter import RootWriter
from bootstrap.host.tree import Tree
from tests.fixtures.debs import TarEntry, build_deb, build_hostile_deb, build_raw_deb, raw_control
from tests.fixtures.records import package

NO_FILTER = PathFilter()


def pkg(name: str, version: str = "1.0", multi_arch: str = "no", deb: Path | None = None) -> Package:
    """An index record for `name`; with `deb`, its size and sha256 (what unpack_all checks the file against)."""
    record = package(name, version, multi_arch=multi_arch)
    if deb is None:
        return record
    return dataclasses.replace(record, size=deb.stat().st_size, sha256=sha256_file(deb))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    prepare_root(r, ("bin", "sbin", "lib", "lib64"))
    return r


@pytest.mark.parametrize("kind", ["dotdot", "nested-dotdot", "absolute", "symlink", "hardlink"])
def test_hostile_entries_never_leave_the_root(kind: str, tmp_path: Path, root: Path) -> None:
    outside = tmp_path / "outside"
    target = str(outside) if kind == "symlink" else ""
    deb = build_hostile_deb(tmp_path, kind, target=target)  # type: ignore[arg-type]
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(UnpackError) as err:
        unpack_one(RootWriter(root), pkg(f"hostile-{kind}"), debfile.read(deb), NO_FILTER)
    assert "root" in err.value.message or "directory" in err.value.message or "outside" in err.value.message
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert not outside.exists() and not (tmp_path / "escape").exists()
    assert not Path("/etc/evil").exists()


def test_symlink_to_a_directory_inside_the_root_is_followed_inside(tmp_path: Path, root: Path) -> None:
    (root / "srv").mkdir()
    link = build_deb(tmp_path / "a", "links", "1.0", symlinks={"/opt/data": "/srv"})
    data = build_deb(tmp_path / "b", "data", "1.0", files={"/opt/data/file": b"x"})
    writer = RootWriter(root)
    unpack_one(writer, pkg("links"), debfile.read(link), NO_FILTER)
    unpack_one(writer, pkg("data"), debfile.read(data), NO_FILTER)
    assert (root / "srv/file").read_bytes() == b"x"
    assert os.readlink(root / "opt/data") == "/srv"


def test_merged_usr_paths_land_under_usr(tmp_path: Path, root: Path) -> None:
    deb = build_deb(tmp_path, "tool", "1.0", files={"/bin/tool": (b"#!/bin/sh\n", 0o755), "/lib/x.so": b"so"})
    item = unpack_one(RootWriter(root), pkg("tool"), debfile.read(deb), NO_FILTER)
    assert (root / "usr/bin/tool").is_file() and (root / "bin").is_symlink()
    assert os.stat(root / "usr/bin/tool").st_mode & 0o777 == 0o755
    assert "/bin/tool" in item.paths and "/." in item.paths


@pytest.mark.parametrize("compression", ["xz", "gzip", "zstd", "none"])
def test_every_dpkg_compression_unpacks(compression: str, tmp_path: Path, root: Path) -> None:
    deb = build_deb(tmp_path, "c", "1.0", files={"/usr/share/c/data": b"payload"}, compression=compression)  # type: ignore[arg-type]
    unpack_one(RootWriter(root), pkg("c"), debfile.read(deb), NO_FILTER)
    assert (root / "usr/share/c/data").read_bytes() == b"payload"


def test_filtered_files_are_never_written_but_stay_listed(tmp_path: Path, root: Path) -> None:
    deb = build_deb(
        tmp_path,
        "doc",
        "1.0",
        files={
            "/usr/share/doc/doc/README": b"r",
            "/usr/share/doc/doc/copyright": b"c",
            "/usr/bin/doc": b"b",
            "/usr/share/locale/de/LC_MESSAGES/doc.mo": b"m",
        },
    )
    pfilter = PathFilter.from_lists(["/usr/share/doc/*", "/usr/share/locale/*"], ["/usr/share/doc/*/copyright"])
    item = unpack_one(RootWriter(root), pkg("doc"), debfile.read(deb), pfilter)
    assert (root / "usr/share/doc/doc/copyright").is_file()
    assert not (root / "usr/share/doc/doc/README").exists()
    assert not (root / "usr/share/locale/de").exists()
    assert (root / "usr/bin/doc").is_file()
    assert "/usr/share/doc/doc/README" in item.paths, "dpkg lists filtered files too"


def test_conffiles_are_in_place_and_as_dpkg_new_and_database_is_written(tmp_path: Path, root: Path) -> None:
    """As in a debootstrapped tree, a conffile is in place before configure (other packages' scripts read it:
    passwd's reads login.defs) and dpkg installs the identical, separate `.dpkg-new` when configuring."""
    deb = build_deb(
        tmp_path,
        "libconf1",
        "2.0",
        multi_arch="same",
        files={"/etc/conf.d/x": b"setting=1\n"},
        conffiles=["/etc/conf.d/x"],
        scripts={"postinst": "#!/bin/sh\nexit 0\n"},
        triggers="interest-noawait /usr/lib/plugins\ninterest ldconfig\n",
    )
    items = unpack_all(root, [(pkg("libconf1", "2.0", "same", deb), deb)], NO_FILTER)
    assert (root / "etc/conf.d/x.dpkg-new").read_bytes() == b"setting=1\n"
    assert (root / "etc/conf.d/x").read_bytes() == b"setting=1\n"
    assert not (root / "etc/conf.d/x").samefile(root / "etc/conf.d/x.dpkg-new"), "dpkg renames one over the other"
    dpkgdb.write(Tree(root), items)
    db = root / "var/lib/dpkg"
    status = (db / "status").read_text()
    assert "Package: libconf1\nStatus: install ok unpacked\n" in status
    assert "Conffiles:\n /etc/conf.d/x newconffile\n" in status
    assert (db / "info/libconf1:amd64.list").read_text().splitlines()[0] == "/."
    assert os.stat(db / "info/libconf1:amd64.postinst").st_mode & 0o777 == 0o755
    assert (db / "info/libconf1:amd64.md5sums").is_file()
    assert (db / "triggers/File").read_text() == "/usr/lib/plugins libconf1:amd64/noawait\n"
    assert (db / "triggers/ldconfig").read_text() == "libconf1:amd64\n"


def test_replacing_a_directory_with_a_file_is_refused(tmp_path: Path, root: Path) -> None:
    a = build_deb(tmp_path / "a", "a", "1.0", files={"/opt/thing/inside": b"1"})
    b = build_deb(tmp_path / "b", "b", "1.0", files={"/opt/thing": b"2"})
    writer = RootWriter(root)
    unpack_one(writer, pkg("a"), debfile.read(a), NO_FILTER)
    with pytest.raises(UnpackError, match="directory"):
        unpack_one(writer, pkg("b"), debfile.read(b), NO_FILTER)


def test_links_shipped_by_packages_replace_the_prepared_set(tmp_path: Path) -> None:
    r = tmp_path / "r"
    prepare_root(r, ("bin", "sbin", "lib", "lib32", "lib64"))
    base = build_deb(
        tmp_path,
        "base-files",
        "13",
        symlinks={"/bin": "usr/bin", "/lib": "usr/lib", "/sbin": "usr/sbin", "/lib64": "usr/lib64"},
    )
    items = unpack_all(r, [(pkg("base-files", "13", deb=base), base)], NO_FILTER)
    drop_unshipped_links(r, ("bin", "sbin", "lib", "lib32", "lib64"), items)
    assert not (r / "lib32").exists() and not (r / "usr/lib32").exists()
    assert (r / "lib64").is_symlink() and (r / "bin").is_symlink()


def raw(tmp_path: Path, name: str, entries: list[TarEntry], conffiles: str = "") -> Path:
    extra = [TarEntry("./conffiles", data=conffiles.encode())] if conffiles else []
    base = [
        TarEntry("./", "dir"),
        TarEntry("./etc/", "dir"),
        TarEntry("./usr/", "dir"),
        TarEntry("./usr/share/", "dir"),
    ]
    return build_raw_deb(tmp_path / f"{name}.deb", raw_control(name), [*base, *entries], control_entries=extra)


def test_a_hard_link_links_to_an_earlier_file(tmp_path: Path, root: Path) -> None:
    deb = raw(tmp_path, "links", [TarEntry("./usr/a", data=b"same"), TarEntry("./usr/b", "hardlink", target="./usr/a")])
    unpack_one(RootWriter(root), pkg("links"), debfile.read(deb), NO_FILTER)
    assert (root / "usr/b").read_bytes() == b"same"
    assert os.stat(root / "usr/a").st_ino == os.stat(root / "usr/b").st_ino


def test_a_hard_link_to_a_conffile_links_to_its_dpkg_new(tmp_path: Path, root: Path) -> None:
    entries = [
        TarEntry("./etc/app.conf", data=b"x=1\n"),
        TarEntry("./etc/app.alias", "hardlink", target="./etc/app.conf"),
    ]
    deb = raw(tmp_path, "conf", entries, conffiles="/etc/app.conf\n")
    item = unpack_one(RootWriter(root), pkg("conf"), debfile.read(deb), NO_FILTER)
    assert (root / "etc/app.conf").read_bytes() == b"x=1\n", "the conffile is in place too"
    assert os.stat(root / "etc/app.alias").st_ino == os.stat(root / "etc/app.conf.dpkg-new").st_ino
    assert item.conffiles == ("/etc/app.conf",) and "/etc/app.alias" in item.paths


def test_a_hard_link_to_a_filtered_file_is_a_copy(tmp_path: Path, root: Path) -> None:
    entries = [
        TarEntry("./usr/share/doc/", "dir"),
        TarEntry("./usr/share/doc/README", data=b"read me", mode=0o640),
        TarEntry("./usr/readme", "hardlink", target="./usr/share/doc/README"),
    ]
    deb = raw(tmp_path, "docs", entries)
    pfilter = PathFilter.from_lists(["/usr/share/doc/*"], [])
    unpack_one(RootWriter(root), pkg("docs"), debfile.read(deb), pfilter)
    assert not (root / "usr/share/doc/README").exists()
    assert (root / "usr/readme").read_bytes() == b"read me"
    assert os.stat(root / "usr/readme").st_mode & 0o777 == 0o640


def test_a_hard_link_to_a_file_replaced_by_a_symlink_is_refused(tmp_path: Path, root: Path) -> None:
    entries = [
        TarEntry("./usr/a", data=b"a"),
        TarEntry("./usr/a", "symlink", target="/etc/shadow"),
        TarEntry("./usr/b", "hardlink", target="./usr/a"),
    ]
    with pytest.raises(UnpackError, match="hard link /usr/b points outside the files before it"):
        unpack_one(RootWriter(root), pkg("swap"), debfile.read(raw(tmp_path, "swap", entries)), NO_FILTER)
    assert not (root / "usr/b").exists()


def remove_chain(top: Path) -> None:
    """Remove a tree one level deep per directory without recursion (shutil.rmtree, and so pytest's clean-up,
    recurses once per level)."""
    levels = []
    path: Path | None = top
    while path is not None:
        levels.append(path)
        below = None
        for entry in path.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                below = entry
            else:
                entry.unlink()
        path = below
    for level in reversed(levels):
        level.rmdir()


def test_a_deep_path_through_a_symlink_needs_no_deep_recursion(tmp_path: Path, root: Path) -> None:
    depth = sys.getrecursionlimit() + 100  # more levels than Python's recursion limit (each costs all above it)
    dirs = [TarEntry("./" + "/".join(["a"] * i) + "/", "dir") for i in range(1, depth + 1)]
    deep = "./m/" + "/".join(["a"] * (depth - 1)) + "/file"
    entries = [*dirs, TarEntry("./m", "symlink", target="a"), TarEntry(deep, data=b"deep")]
    try:
        unpack_one(RootWriter(root), pkg("deep"), debfile.read(raw(tmp_path, "deep", entries)), NO_FILTER)
        assert (root / "/".join(["a"] * depth) / "file").read_bytes() == b"deep"
    finally:
        remove_chain(root / "a")


def test_a_corrupt_package_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.deb"
    bad.write_bytes(b"!<arch>\nnot really")
    with pytest.raises(UnpackError):
        debfile.read(bad)
    bad.write_bytes(b"PK\x03\x04 a zip file")
    with pytest.raises(UnpackError, match="not a Debian package"):
        debfile.read(bad)


def test_status_classification_from_the_archive_or_the_deb(tmp_path: Path, root: Path) -> None:
    deb = build_deb(tmp_path, "libz", "1.0", priority="required", section="libs")
    digest = hashlib.sha256(deb.read_bytes()).hexdigest()
    archive = replace(pkg("libz"), priority="optional", section="oldlibs", sha256=digest, size=deb.stat().st_size)
    items = unpack_all(root, [(archive, deb)], NO_FILTER)
    dpkgdb.write(Tree(root), items)
    status = (root / "var/lib/dpkg/status").read_text()
    assert "Priority: required\n" in status and "Section: libs\n" in status
    dpkgdb.write(Tree(root), items, {"libz"})
    status = (root / "var/lib/dpkg/status").read_text()
    assert "Priority: optional\n" in status and "Section: oldlibs\n" in status
    assert "Priority: required" not in status and "Section: libs\n" not in status


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        ({"Description": "x\n\nPackage: openssl\nVersion: 99.0\nStatus: install ok installed"}, "more than one stanza"),
        ({"Status": "install ok installed"}, "is not a field dpkg takes there"),
        ({"Conffiles": "\n /etc/shadow 0"}, "is not a field dpkg takes there"),
        ({"Package": "other"}, "names other 1.0 amd64, not the package its index names"),
        ({"Version": "9.9"}, "names evil 9.9 amd64, not the package its index names"),
    ],
)
def test_a_control_file_is_one_stanza_of_the_package_its_index_names(
    tmp_path: Path, root: Path, extra: dict[str, str], said: str
) -> None:
    """The control file goes into the image's dpkg database as shipped (status, status.d/): a second stanza after
    a blank line would be a package scanners see installed that is not (dpkg --unpack refuses it too), a Status
    field of its own would speak for dpkg, and a control file of another package than the index names is not
    the package resolved."""
    deb = build_raw_deb(tmp_path / "evil.deb", {**raw_control("evil"), **extra}, [TarEntry("./", "dir")])
    with pytest.raises(UnpackError, match=re.escape(said)) as err:
        unpack_one(RootWriter(root), pkg("evil"), debfile.read(deb), NO_FILTER)
    assert "\n" not in err.value.message
    assert unpack_one(
        RootWriter(root),
        pkg("fine"),
        debfile.read(build_raw_deb(tmp_path / "f.deb", raw_control("fine"), [TarEntry("./", "dir")])),
        NO_FILTER,
    )


@pytest.mark.parametrize(("uid", "gid"), [(1 << 40, 0), (0, (1 << 63)), (-5, 0), ((1 << 32) - 1, 0)])
def test_an_owner_no_file_can_have_is_refused(tmp_path: Path, root: Path, uid: int, gid: int) -> None:
    """PAX records can give any number as a member's owner; one past 2^32 - 2 (or below 0) cannot be given to a
    file by the kernel or a container runtime extracting the layer: one line, not a layer that fails to pull."""
    pax = (("uid", str(uid)), ("gid", str(gid)))
    deb = build_raw_deb(tmp_path / "o.deb", raw_control("owners"), [TarEntry("./", "dir"), TarEntry("./f", pax=pax)])
    with pytest.raises(UnpackError, match="no id a file can have") as err:
        unpack_one(RootWriter(root), pkg("owners"), debfile.read(deb), NO_FILTER)
    assert "\n" not in err.value.message
