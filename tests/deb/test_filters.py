"""dpkg path filters: the table-driven semantics, and the same tables checked against dpkg itself."""

import shutil
import subprocess
from pathlib import Path

import pytest

from bootstrap.build.recipe import load
from bootstrap.deb.filters import PathFilter, Rule
from tests.fixtures.repo import build_deb


def rules(*spec: str) -> PathFilter:
    """`rules("-/usr/*", "+/usr/bin/*")`: "-" excludes, "+" includes, in order."""
    return PathFilter(tuple(Rule(s[0] == "+", s[1:]) for s in spec))


@pytest.fixture(scope="module")
def slim() -> PathFilter:
    recipe = load("debian-slim")
    return PathFilter.from_lists(recipe.path_exclude, recipe.path_include)


# --- semantics ---------------------------------------------------------------------------------------------


def test_empty_filter_keeps_everything() -> None:
    f = PathFilter()
    assert not f
    assert not f.skips("/usr/share/doc/x")
    assert rules("-/x")


def test_last_match_wins() -> None:
    f = rules("-/usr/*", "+/usr/bin/*", "-/usr/bin/b*")
    assert f.skips("/usr/lib/x")
    assert not f.skips("/usr/bin/apt")
    assert f.skips("/usr/bin/bash")
    assert not f.skips("/etc/passwd")


def test_rule_order_matters() -> None:
    assert not rules("-/usr/share/doc/*", "+/usr/share/doc/*/copyright").skips("/usr/share/doc/a/copyright")
    assert rules("+/usr/share/doc/*/copyright", "-/usr/share/doc/*").skips("/usr/share/doc/a/copyright")


def test_from_lists_puts_includes_after_excludes() -> None:
    f = PathFilter.from_lists(["/a/*"], ["/a/keep"])
    assert f.rules == (Rule(False, "/a/*"), Rule(True, "/a/keep"))
    assert not f.skips("/a/keep")
    assert f.skips("/a/other")


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        # `*` and `?` match `/` (no FNM_PATHNAME)
        ("/usr/share/doc/*", "/usr/share/doc/a/b/c/d", True),
        ("/usr/*.txt", "/usr/share/deep/x.txt", True),
        ("/usr?bin", "/usr/bin", True),
        ("/usr/*", "/usr", False),
        # leading dots are not special (no FNM_PERIOD)
        ("/etc/*", "/etc/.hidden", True),
        ("/etc/?hidden", "/etc/.hidden", True),
        # the whole path must match
        ("/usr/share/doc", "/usr/share/doc/x", False),
        ("/usr/share/doc", "/x/usr/share/doc", False),
        ("*/doc", "/usr/share/doc", True),
        # backslash escapes
        (r"/opt/a\*b", "/opt/a*b", True),
        (r"/opt/a\*b", "/opt/axxb", False),
        (r"/opt/a\?", "/opt/a?", True),
        (r"/opt/a\?", "/opt/ab", False),
        (r"/opt/\[x]", "/opt/[x]", True),
        (r"/opt/\[x]", "/opt/x", False),
        (r"/opt/\a", "/opt/a", True),
        # bracket classes
        ("/lib/[abc]*", "/lib/apt", True),
        ("/lib/[abc]*", "/lib/dpkg", False),
        ("/x/[!a]", "/x/b", True),
        ("/x/[!a]", "/x/a", False),
        ("/x/[^a]", "/x/a", False),
        ("/x/[0-9][0-9]", "/x/42", True),
        ("/x/[0-9][0-9]", "/x/4a", False),
        ("/x/[]]", "/x/]", True),
        ("/x/[!]]", "/x/]", False),
        ("/usr[/]bin", "/usr/bin", True),
        ("/x/[abc", "/x/[abc", True),
        ("/x/[abc", "/x/a", False),
        # regular-expression characters are literal
        ("/usr/share/doc/g++*", "/usr/share/doc/g++-12/README", True),
        ("/usr/share/doc/g++*", "/usr/share/doc/gxx", False),
        ("/usr/lib/libc.so.6", "/usr/lib/libcXso.6", False),
        ("/x/(a|b)", "/x/(a|b)", True),
        ("/x/(a|b)", "/x/a", False),
        ("/x/a{1,2}", "/x/a{1,2}", True),
        ("/x/$HOME^", "/x/$HOME^", True),
    ],
)
def test_fnmatch_semantics(pattern: str, path: str, matches: bool) -> None:
    assert rules(f"-{pattern}").skips(path) is matches


def test_directories_and_symlinks_survive_under_an_include_prefix() -> None:
    f = rules("-/usr/share/doc/*", "+/usr/share/doc/*/copyright", "-/usr/share/man/*")
    assert f.skips("/usr/share/doc/pkg")
    assert not f.skips("/usr/share/doc/pkg", is_dir_or_symlink=True)
    assert not f.skips("/usr/share/doc/pkg/examples", is_dir_or_symlink=True)
    assert f.skips("/usr/share/doc/pkg/examples/x", is_dir_or_symlink=False)
    # no include rule starts with /usr/share/man
    assert f.skips("/usr/share/man/man1", is_dir_or_symlink=True)


def test_include_prefix_is_compared_without_trailing_slash() -> None:
    # dpkg strips the trailing slash of the literal part: /usr/share/locale/currency stays (it holds the
    # re-included files), /usr/share/locale/fr goes.
    f = rules("-/usr/share/locale/*", "+/usr/share/locale/currency/*")
    assert not f.skips("/usr/share/locale/currency", is_dir_or_symlink=True)
    assert f.skips("/usr/share/locale/fr", is_dir_or_symlink=True)
    assert f.skips("/usr/share/locale/currency")


def test_dpkg_cfg_lists_the_rules_in_order() -> None:
    f = rules("-/usr/share/doc/*", "+/usr/share/doc/*/copyright")
    lines = [line for line in f.dpkg_cfg().splitlines() if not line.startswith("#")]
    assert lines == ["path-exclude /usr/share/doc/*", "path-include /usr/share/doc/*/copyright"]


# --- the official slim rule set ----------------------------------------------------------------------------

SLIM_TABLE: list[tuple[str, bool, bool]] = [
    # path, is a directory or symlink, skipped
    ("/usr/share/doc/bash/README", False, True),
    ("/usr/share/doc/bash/copyright", False, False),
    ("/usr/share/doc/bash", True, False),
    ("/usr/share/doc/bash/examples", True, False),
    ("/usr/share/doc/bash/examples/loadables", False, True),
    ("/usr/share/doc", True, False),
    ("/usr/share/doc-base/bash", False, False),
    ("/usr/share/docs/x", False, False),
    ("/usr/share/doc/kde/HTML/en/index.html", False, True),
    ("/usr/share/doc/kde/HTML/C/index.html", False, False),
    ("/usr/share/man/man1/ls.1.gz", False, True),
    ("/usr/share/man/man1", True, True),
    ("/usr/share/man", True, False),
    ("/usr/share/info/dir", False, True),
    ("/usr/share/locale/fr/LC_MESSAGES/apt.mo", False, True),
    ("/usr/share/locale/fr", True, True),
    ("/usr/share/locale/locale.alias", False, False),
    ("/usr/share/locale/languages", False, False),
    ("/usr/share/locale/all_languages", False, False),
    ("/usr/share/locale/currency/EUR", False, False),
    ("/usr/share/locale/currency", True, False),
    ("/usr/share/locale/l10n/fr/x", False, False),
    ("/usr/share/locale/l10n", True, False),
    ("/usr/share/lintian/overrides/bash", False, True),
    ("/usr/share/lintian/profiles/debian/main.profile", False, False),
    ("/usr/share/linda/overrides/x", False, True),
    ("/usr/share/gnome/help/foo/C/index.docbook", False, False),
    ("/usr/share/gnome/help/foo/de/index.docbook", False, True),
    ("/usr/share/omf/foo/foo-C.emf", False, False),
    ("/usr/share/omf/foo/foo-de.emf", False, True),
    ("/usr/share/omf/foo/readme", False, False),
    ("/usr/bin/bash", False, False),
    ("/etc/locale.gen", False, False),
    ("/usr/lib/locale/C.utf8/LC_CTYPE", False, False),
]


@pytest.mark.parametrize(("path", "is_dir", "skipped"), SLIM_TABLE)
def test_slim_rules(slim: PathFilter, path: str, is_dir: bool, skipped: bool) -> None:
    assert slim.skips(path, is_dir_or_symlink=is_dir) is skipped


# --- against dpkg itself -------------------------------------------------------------------------------------

needs_dpkg = pytest.mark.skipif(shutil.which("dpkg") is None, reason="dpkg is not installed")


def dpkg_unpack(deb: Path, f: PathFilter, root: Path) -> set[str]:
    """Unpack `deb` into an empty `root` with real dpkg and these filters; the paths that were written."""
    admin = root / "var/lib/dpkg"
    for sub in ("info", "updates"):
        (admin / sub).mkdir(parents=True)
    (admin / "status").touch()
    cmd = ["dpkg", f"--root={root}", "--force-not-root", "--force-unsafe-io", "--no-triggers"]
    cmd += [f"--path-{'include' if r.include else 'exclude'}={r.pattern}" for r in f.rules]
    subprocess.run([*cmd, "--unpack", str(deb)], check=True, capture_output=True)
    return {"/" + str(p.relative_to(root)) for p in root.rglob("*") if not str(p.relative_to(root)).startswith("var")}


def package_paths(files: list[str], symlinks: list[str], tmp: Path) -> tuple[Path, dict[str, bool]]:
    """A .deb holding these files and symlinks (and their parent directories), and each path's kind."""
    deb = build_deb(tmp, "filtered", "1", files={p: b"x" for p in files}, symlinks={p: "target" for p in symlinks})
    kinds = {p: False for p in files} | {p: True for p in symlinks}
    for p in [*files, *symlinks]:
        parts = p.strip("/").split("/")
        for i in range(1, len(parts)):
            kinds["/" + "/".join(parts[:i])] = True
    return deb, kinds


@needs_dpkg
def test_slim_rules_agree_with_dpkg(slim: PathFilter, tmp_path: Path) -> None:
    files = [p for p, is_dir, _ in SLIM_TABLE if not is_dir]
    files += ["/usr/share/locale/currency/USD", "/usr/share/locale/l10n/de/y", "/usr/share/man/man8/x.8.gz"]
    symlinks = ["/usr/share/doc/libfoo1", "/usr/share/man/man1/sh.1.gz", "/usr/share/locale/currency/EURO"]
    deb, kinds = package_paths(files, symlinks, tmp_path)
    written = dpkg_unpack(deb, slim, tmp_path / "root")
    predicted = {p for p, is_dir in kinds.items() if not slim.skips(p, is_dir)}
    assert written == predicted


@needs_dpkg
@pytest.mark.parametrize(
    "spec",
    [
        ("-/t/*", "+/t/[ab]*", "-/t/b*"),
        ("-/t/*.txt", "+/t/keep*"),
        ("-/t/a\\*b", "-/t/?q", "-/t/[!x]y"),
        ("-/t/[]]", "-/t/*.[0-9]"),
    ],
)
def test_patterns_agree_with_dpkg(spec: tuple[str, ...], tmp_path: Path) -> None:
    f = rules(*spec)
    files = [
        "/t/apt",
        "/t/bash",
        "/t/cat",
        "/t/sub/x.txt",
        "/t/keep.txt",
        "/t/a*b",
        "/t/axb",
        "/t/.q",
        "/t/qq",
        "/t/xy",
        "/t/zy",
        "/t/]",
        "/t/lib.so.6",
        "/t/lib.so.x",
    ]
    deb, kinds = package_paths(files, [], tmp_path)
    written = dpkg_unpack(deb, f, tmp_path / "root")
    assert written == {p for p, is_dir in kinds.items() if not f.skips(p, is_dir)}
