"""The configure script: preinsts in dependency order (base-passwd first), then one dpkg --configure -a."""

import subprocess
from pathlib import Path

from bootstrap.deb.configure import FAILED_MARK, install_order, script
from bootstrap.deb.index import Package
from tests.fixtures.records import package


def pkg(name: str, depends: str = "", pre_depends: str = "", multi_arch: str = "no") -> Package:
    return package(name, "1", multi_arch=multi_arch, priority="required", depends=depends, pre_depends=pre_depends)


def test_order_follows_dependencies_with_base_passwd_first() -> None:
    pkgs = [pkg("a", depends="c"), pkg("base-passwd", depends="libc6"), pkg("c", pre_depends="libc6"), pkg("libc6")]
    assert [p.name for p in install_order(pkgs)] == ["libc6", "base-passwd", "c", "a"]


def test_script_runs_preinsts_in_order_and_stops_at_a_failure(tmp_path: Path) -> None:
    pkgs = [pkg("a", depends="b"), pkg("b", multi_arch="same"), pkg("quiet")]
    text = script(pkgs, {"a", "b"})
    assert "preinst b amd64 b:amd64\npreinst a amd64 a\nexec dpkg --configure -a --force-unsafe-io\n" in text
    info = tmp_path / "var/lib/dpkg/info"
    info.mkdir(parents=True)
    (info / "b:amd64.preinst").write_text('#!/bin/sh\necho "b $1 $DPKG_MAINTSCRIPT_PACKAGE $DPKG_MAINTSCRIPT_ARCH"\n')
    (info / "a.preinst").write_text("#!/bin/sh\necho broken >&2\nexit 4\n")
    for f in info.iterdir():
        f.chmod(0o755)
    runnable = text.replace("/var/lib/dpkg/info", str(info))
    proc = subprocess.run(["sh", "-c", runnable], capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stdout.splitlines() == ["b install b amd64", f"{FAILED_MARK}a"]
    assert "broken" in proc.stderr
