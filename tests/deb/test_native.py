"""Native tools for a foreign tree: ELF interpreters retargeted, counterparts found by source version, and a
tree that comes out of stage + unstage exactly as it went in."""

import hashlib
import os
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from bootstrap.deb import native
from bootstrap.deb.index import Index, PackagesFile
from bootstrap.deb.release import Release
from bootstrap.host.tree import Tree
from tests.fixtures.debs import build_deb
from tests.fixtures.records import package


def host_elf() -> bytes:
    return Path(os.path.realpath(shutil.which("true") or "/bin/true")).read_bytes()


def test_the_program_interpreter_is_found_and_retargeted_in_place() -> None:
    elf = host_elf()
    found = native.interpreter(elf)
    assert found is not None and found[2].startswith("/") and "ld" in found[2]
    moved = native.retarget(elf)
    assert len(moved) == len(elf)
    assert native.interpreter(moved) == (found[0], found[1], native.LOADER)
    changed = [i for i, (a, b) in enumerate(zip(elf, moved, strict=True)) if a != b]
    assert changed and min(changed) >= found[0] and max(changed) < found[0] + found[1], "only the interpreter changes"
    assert native.retarget(b"#!/bin/sh\n") == b"#!/bin/sh\n", "scripts are left alone"


def test_a_binary_only_rebuild_is_the_same_source() -> None:
    assert native.source_version("3.11-4+b1") == "3.11-4"
    assert native.source_version("1:2.41-12+deb13u5") == "1:2.41-12+deb13u5"


def _index(arch: str, packages: list[tuple[str, str, str]]) -> Index:
    stanza = "Package: {}\nVersion: {}\nArchitecture: {}\nFilename: pool/x.deb\nSize: 1\nSHA256: " + "0" * 64 + "\n\n"
    text = "".join(stanza.format(n, v, a) for n, v, a in packages)
    release = Release("http://127.0.0.1", "fixture", "", "fixture", "fixture", 0, None, False, ("main",), {}, "")
    return Index([(release, PackagesFile.parse(text))], arch)


def test_counterparts_by_source_version_or_none_at_all() -> None:
    foreign = [package("grep", "3.11-4+b1", arch="arm64"), package("debconf", "1.5", arch="all")]
    found = native.counterparts(foreign, _index("amd64", [("grep", "3.11-4", "amd64"), ("grep", "3.10-1", "amd64")]))
    assert found is not None and [(p.name, p.version) for p in found] == [("grep", "3.11-4")]
    assert native.counterparts(foreign, _index("amd64", [("grep", "3.10-1", "amd64")])) is None


def _snapshot(root: Path) -> dict[str, tuple[int, int, bytes | str]]:
    out: dict[str, tuple[int, int, bytes | str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            body: bytes | str = os.readlink(p) if p.is_symlink() else p.read_bytes() if p.is_file() else "dir"
            out[str(p.relative_to(root))] = (st.st_mode, int(st.st_mtime) if not p.is_dir() else 0, body)
    return out


@pytest.fixture
def foreign_tree(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    for d in ("usr/bin", "usr/lib/aarch64-linux-gnu"):
        (root / d).mkdir(parents=True)
    (root / "bin").symlink_to("usr/bin")
    foreign_elf = b"\x7fELF" + b"\x02\x01\x01" + bytes(9) + b"foreign tool"
    for name in ("tool", "uname"):
        (root / "usr/bin" / name).write_bytes(foreign_elf)
        os.utime(root / "usr/bin" / name, (1_600_000_000, 1_600_000_000))
    (root / "usr/bin/script").write_text("#!/bin/sh\n")
    return root


def test_stage_then_unstage_gives_back_the_same_tree(foreign_tree: Path, tmp_path: Path) -> None:
    before = _snapshot(foreign_tree)
    elf = host_elf()
    deb = build_deb(
        tmp_path / "debs",
        "tool",
        "1.0",
        files={
            "/usr/bin/tool": (elf, 0o755),
            "/usr/bin/uname": (elf, 0o755),
            "/usr/bin/script": ("#!/bin/sh\necho native\n", 0o755),
            "/usr/bin/only-native": (elf, 0o755),
            "/usr/lib/x86_64-linux-gnu/libtool.so.1": b"native library",
            "/lib64/ld-linux-x86-64.so.2": b"loader elsewhere",
        },
    )
    pkg = replace(package("tool", "1.0"), sha256=hashlib.sha256(deb.read_bytes()).hexdigest())
    tree = Tree(foreign_tree)
    staged = native.Staged()
    native.stage(tree, [(pkg, deb)], None, "x86_64-linux-gnu", staged)
    tool = (foreign_tree / "usr/bin/tool").read_bytes()
    assert native.interpreter(tool) is not None and native.interpreter(tool)[2] == native.LOADER  # type: ignore[index]
    assert (foreign_tree / "usr/bin/tool").stat().st_mtime == 1_600_000_000, "the foreign file's time is kept"
    assert (foreign_tree / "usr/bin/uname").read_bytes().endswith(b"foreign tool"), "uname stays foreign"
    assert (foreign_tree / "usr/bin/script").read_text() == "#!/bin/sh\n", "only executables that are ELF on both sides"
    assert not (foreign_tree / "usr/bin/only-native").exists(), "nothing new among the programs"
    assert (foreign_tree / "usr/lib/x86_64-linux-gnu/libtool.so.1").read_bytes() == b"native library"
    found = native.interpreter(elf)
    assert found is not None
    assert os.readlink(foreign_tree / native.LOADER.lstrip("/")).endswith("x86_64-linux-gnu/" + Path(found[2]).name)
    assert not (foreign_tree / "lib64").exists(), "no /lib64 that the tree's scripts would tidy away"
    native.unstage(tree, staged)
    assert _snapshot(foreign_tree) == before


def test_one_file_under_two_names_is_swapped_once(foreign_tree: Path, tmp_path: Path) -> None:
    """/bin/tool and /usr/bin/tool are one file in a merged-/usr tree: its foreign copy must survive."""
    before = _snapshot(foreign_tree)
    elf = host_elf()
    pairs = []
    for name, path in (("tool-a", "/bin/tool"), ("tool-b", "/usr/bin/tool")):
        deb = build_deb(tmp_path / name, name, "1.0", files={path: (elf, 0o755)})
        pairs.append((replace(package(name, "1.0"), sha256=hashlib.sha256(deb.read_bytes()).hexdigest()), deb))
    tree = Tree(foreign_tree)
    staged = native.Staged()
    native.stage(tree, pairs, None, "x86_64-linux-gnu", staged)
    assert staged.swapped == ["usr/bin/tool"]
    native.unstage(tree, staged)
    assert _snapshot(foreign_tree) == before
