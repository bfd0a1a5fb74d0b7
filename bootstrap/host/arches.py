"""Debian architectures and what other tools call them: one row per architecture."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Arch:
    """One Debian architecture: `machine` is what `uname -m` says on a host that runs it natively (None when
    no host is taken to be this architecture), `triplet` its multiarch directory (/usr/lib/<triplet>), `qemu`
    qemu-user's name for the CPU, `go_arch` and `variant` the OCI platform's architecture and variant, `usr_links`
    the top-level links into /usr of a merged-/usr tree (those debootstrap makes)."""

    name: str
    machine: str | None
    triplet: str
    qemu: str
    go_arch: str
    usr_links: tuple[str, ...]
    variant: str | None = None


ARCHES = {
    a.name: a
    for a in (
        Arch(
            "amd64", "x86_64", "x86_64-linux-gnu", "x86_64", "amd64", ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
        ),
        Arch("arm64", "aarch64", "aarch64-linux-gnu", "aarch64", "arm64", ("bin", "sbin", "lib"), "v8"),
        Arch("armhf", "armv7l", "arm-linux-gnueabihf", "arm", "arm", ("bin", "sbin", "lib"), "v7"),
        Arch("armel", None, "arm-linux-gnueabi", "arm", "arm", ("bin", "sbin", "lib"), "v5"),
        Arch("i386", "i686", "i386-linux-gnu", "i386", "386", ("bin", "sbin", "lib", "lib64", "libx32")),
        Arch("ppc64el", "ppc64le", "powerpc64le-linux-gnu", "ppc64le", "ppc64le", ("bin", "sbin", "lib", "lib64")),
        Arch("s390x", "s390x", "s390x-linux-gnu", "s390x", "s390x", ("bin", "sbin", "lib", "lib64")),
        Arch("riscv64", "riscv64", "riscv64-linux-gnu", "riscv64", "riscv64", ("bin", "sbin", "lib", "lib64")),
        Arch(
            "mips64el",
            None,
            "mips64el-linux-gnuabi64",
            "mips64el",
            "mips64le",
            ("bin", "sbin", "lib", "lib32", "lib64"),
        ),
    )
}

MACHINE_TO_DEB = {a.machine: a.name for a in ARCHES.values() if a.machine}
ALIASES = {
    **{a.go_arch: a.name for a in ARCHES.values() if a.go_arch != "arm"},
    **MACHINE_TO_DEB,
    "armhfp": "armhf",
}
"""The names other tools give an architecture, each for one of ours: the kernel's (`uname -m`: x86_64, aarch64),
dnf's `$basearch` (which are the kernel's, and `armhfp`) and the OCI platform's (`386`, `mips64le`; not `arm`,
which is two of ours)."""


def arch_name(given: str) -> str | None:
    """Our (Debian's) name for an architecture given by ours or another tool's name, or None if unknown."""
    return given if given in ARCHES else ALIASES.get(given)


TRIPLETS = {a.name: a.triplet for a in ARCHES.values()}
QEMU = {a.name: a.qemu for a in ARCHES.values()}
GO_ARCH = {a.name: a.go_arch for a in ARCHES.values()}
VARIANT = {a.name: a.variant for a in ARCHES.values() if a.variant}
