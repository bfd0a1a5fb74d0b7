"""The configure script: preinsts in dependency order (base-passwd first), then one dpkg --configure -a."""

import random
import subprocess
from pathlib import Path

from bootstrap.deb import relations
from bootstrap.deb.configure import FAILED_MARK, STAGED, install_order, script
from bootstrap.deb.index import Package
from tests.fixtures.records import package


def pkg(name: str, depends: str = "", pre_depends: str = "", multi_arch: str = "no") -> Package:
    return package(name, "1", multi_arch=multi_arch, priority="required", depends=depends, pre_depends=pre_depends)


def test_order_follows_dependencies_with_base_passwd_first() -> None:
    pkgs = [pkg("a", depends="c"), pkg("base-passwd", depends="libc6"), pkg("c", pre_depends="libc6"), pkg("libc6")]
    assert [p.name for p in install_order(pkgs)] == ["libc6", "base-passwd", "c", "a"]


def _recursive_order(packages: list[Package]) -> list[str]:
    """The rule, stated plainly (recursive, as it was written before): depth first in name order (base-passwd
    first), each group's first alternative present, a package on the way down skipped."""
    by_name = {p.name: p for p in packages}
    done: list[str] = []

    def visit(name: str, way: set[str]) -> None:
        if name in done or name in way:
            return
        way.add(name)
        p = by_name[name]
        for group in relations.parse(p.pre_depends) + relations.parse(p.depends):
            found = next((r.name for r in group if r.name in by_name), None)
            if found:
                visit(found, way)
        way.discard(name)
        if name not in done:
            done.append(name)

    for name in ["base-passwd", *sorted(by_name)] if "base-passwd" in by_name else sorted(by_name):
        visit(name, set())
    return done


def test_the_order_is_the_rule_on_random_graphs_and_no_chain_is_too_long() -> None:
    """Against the plain recursive statement of the rule, on 500 random dependency graphs with cycles and
    alternatives; then a Depends chain of 5,000 packages (an index may hold one), ordered without recursion."""
    rng = random.Random(7)
    for _ in range(500):
        names = [f"p{i}" for i in range(rng.randint(1, 12))] + (["base-passwd"] if rng.random() < 0.3 else [])

        def deps(names: list[str] = names) -> str:
            groups = [" | ".join(rng.sample(names + ["absent"], rng.randint(1, 2))) for _ in range(rng.randint(0, 3))]
            return ", ".join(groups)

        pkgs = [pkg(n, depends=deps(), pre_depends=deps() if rng.random() < 0.2 else "") for n in names]
        assert [p.name for p in install_order(pkgs)] == _recursive_order(pkgs)
    chain = [pkg(f"c{i:05}", depends=f"c{i + 1:05}" if i < 4999 else "") for i in range(5000)]
    assert [p.name for p in install_order(chain)] == [f"c{i:05}" for i in reversed(range(5000))]


def test_script_runs_preinsts_as_dpkg_does_and_stops_at_a_failure(tmp_path: Path) -> None:
    """Each preinst runs from dpkg's tmp.ci holding its package's control area (debconf learns the package
    from tmp.ci/control), with the arguments and environment dpkg gives it, in dependency order."""
    pkgs = [pkg("a", depends="b"), pkg("b", multi_arch="same"), pkg("quiet"), package("dpkg", "1:1.22.6")]
    text = script(pkgs, {"a", "b"})
    order = [line.split()[1] for line in text.splitlines() if line.startswith("preinst ")]
    assert order == ["b", "a"] and text.endswith("exec dpkg --configure -a --force-unsafe-io\n")
    staged = tmp_path / STAGED
    report = (
        '#!/bin/sh\necho "$(basename $0) $1 $(sed -n s/^Package:.//p $(dirname $0)/control) $(pwd) '
        '$DPKG_MAINTSCRIPT_NAME $DPKG_MAINTSCRIPT_PACKAGE $DPKG_MAINTSCRIPT_ARCH $DPKG_RUNNING_VERSION $DPKG_ROOT."\n'
    )
    for key, name, body in (("b:amd64", "b", report), ("a", "a", report + "echo broken >&2\nexit 4\n")):
        (staged / key).mkdir(parents=True)
        (staged / key / "control").write_text(f"Package: {name}\nVersion: 1\n")
        (staged / key / "preinst").write_text(body)
        (staged / key / "preinst").chmod(0o755)
    runnable = text.replace("/var/lib/dpkg/tmp.ci", str(tmp_path / "tmp.ci")).replace(f"/{STAGED}", str(staged))
    proc = subprocess.run(["sh", "-c", runnable], capture_output=True, text=True, cwd="/")
    assert proc.returncode == 1
    assert proc.stdout.splitlines() == [
        "preinst install b / preinst b amd64 1.22.6 .",
        "preinst install a / preinst a amd64 1.22.6 .",
        f"{FAILED_MARK}a",
    ]
    assert "broken" in proc.stderr
    assert not (staged / "b:amd64").exists(), "a control area is consumed by its preinst"
