"""Architecture names: ours (Debian's) and the kernel's, dnf's and the OCI platform's for the same one."""

import platform
import subprocess
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from bootstrap.build import recipe
from bootstrap.build.plan import Options, make_plan
from bootstrap.errors import BootstrapError
from bootstrap.host.arches import ARCHES, GO_ARCH, arch_name


@pytest.mark.parametrize(
    ("given", "ours"),
    [("amd64", "amd64"), ("x86_64", "amd64"), ("aarch64", "arm64"), ("ppc64le", "ppc64el"), ("ppc64el", "ppc64el"),
     ("i686", "i386"), ("386", "i386"), ("armhfp", "armhf"), ("armv7l", "armhf"), ("mips64le", "mips64el"),
     ("s390x", "s390x"), ("riscv64", "riscv64")],
)  # fmt: skip
def test_each_name_is_one_of_ours(given: str, ours: str) -> None:
    assert arch_name(given) == ours


@pytest.mark.parametrize("given", ["arm", "vax", "X86_64", "", "amd64 "])
def test_an_unknown_or_ambiguous_name_is_none(given: str) -> None:
    """`arm` is the OCI name of armhf and armel both: it names neither."""
    assert arch_name(given) is None


def test_every_oci_name_but_arm_and_the_hosts_own_come_back_to_the_same_architecture() -> None:
    for name, go in GO_ARCH.items():
        if go != "arm":
            assert arch_name(go) == name
    machine = platform.machine()
    dpkg = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True, check=False).stdout
    if dpkg.strip() in ARCHES:
        assert arch_name(machine) == dpkg.strip()


def test_a_build_takes_the_kernels_names_and_records_ours(tmp_path: Path) -> None:
    plan = make_plan(
        recipe.load("almalinux"), Options(arch="x86_64,aarch64", mirror="http://127.0.0.1:9", cache_dir=tmp_path)
    )
    assert plan.arches == ("amd64", "arm64")
    with pytest.raises(BootstrapError, match="twice"):
        make_plan(
            recipe.load("almalinux"), Options(arch="x86_64,amd64", mirror="http://127.0.0.1:9", cache_dir=tmp_path)
        )
    with pytest.raises(BootstrapError, match="unsupported architecture 'arm'") as caught:
        make_plan(recipe.load("almalinux"), Options(arch="arm", mirror="http://127.0.0.1:9", cache_dir=tmp_path))
    assert "x86_64" in caught.value.hint


def test_every_command_gets_our_names_from_arch() -> None:
    """The option itself gives our names (a registry's platform, a lock's architecture are compared with
    them); a name of none of ours is left as given, for the plan to refuse in its words."""
    from bootstrap.cli.common import source_options

    @click.command()
    @source_options
    def show(opts: Options) -> None:
        click.echo(opts.arch)

    assert CliRunner().invoke(show, ["--arch", "x86_64, aarch64"]).output == "amd64,arm64\n"
    assert CliRunner().invoke(show, ["--arch", "vax"]).output == "vax\n"
