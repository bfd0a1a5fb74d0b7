"""Foreign architectures: their maintainer scripts run through qemu-user, registered with binfmt_misc."""

from dataclasses import dataclass
from pathlib import Path

from bootstrap.errors import BootstrapError
from bootstrap.host.arches import QEMU
from bootstrap.host.tree import Tree

BINFMT = Path("/proc/sys/fs/binfmt_misc")

# Architectures a host runs natively besides its own.
NATIVE_EXTRA = {"amd64": {"i386"}, "arm64": {"armhf", "armel"}}


@dataclass(frozen=True)
class Emulator:
    """A binfmt_misc handler; `interpreter` must be copied into the root when the kernel does not hold it open."""

    arch: str
    interpreter: Path
    fix_binary: bool


def emulator(arch: str, host: str) -> Emulator | None:
    """The emulator that runs `arch` binaries on `host` (None when the host runs them natively).

    Raises an actionable error before any work when the architecture cannot run here."""
    if arch == host or arch in NATIVE_EXTRA.get(host, set()):
        return None
    cpu = QEMU.get(arch)
    hint = (
        "apt-get install qemu-user-static binfmt-support, then make sure binfmt_misc is mounted "
        "(mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc) and enabled (update-binfmts --enable)"
    )
    if cpu is None:
        raise BootstrapError(f"no emulator is known for architecture {arch}", "build it on a native machine")
    if not (BINFMT / "status").exists():
        raise BootstrapError(f"cannot run {arch} maintainer scripts: binfmt_misc is not mounted", hint)
    entry = BINFMT / f"qemu-{cpu}"
    try:
        lines = entry.read_text().splitlines()
    except OSError:
        raise BootstrapError(f"cannot run {arch} maintainer scripts: no qemu-{cpu} binfmt_misc handler", hint) from None
    if "enabled" not in lines:
        raise BootstrapError(f"the qemu-{cpu} binfmt_misc handler is disabled", hint)
    fields = dict(line.split(" ", 1) for line in lines if " " in line)
    interpreter = Path(fields.get("interpreter", ""))
    fix_binary = "F" in fields.get("flags:", "")
    if not fix_binary and not interpreter.is_file():
        raise BootstrapError(f"the qemu-{cpu} interpreter {interpreter} is missing", hint)
    return Emulator(arch, interpreter, fix_binary)


def install_interpreter(emu: Emulator, tree: Tree) -> str | None:
    """Copy the interpreter into the tree when the kernel needs to find it there (never following the tree's
    symlinks); returns the tree path to remove afterwards."""
    if emu.fix_binary:
        return None
    dest = str(emu.interpreter).lstrip("/")
    if tree.lstat(dest) is not None:
        return None
    tree.write(dest, emu.interpreter.read_bytes(), 0o755)
    return dest
