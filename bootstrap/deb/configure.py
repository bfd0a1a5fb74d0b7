"""Configure an unpacked root: every preinst, then one `dpkg --configure -a`, inside the sandbox."""

import shlex
from collections.abc import Sequence
from pathlib import Path

from bootstrap.deb import relations
from bootstrap.deb.index import Package
from bootstrap.deb.unpack import Unpacked
from bootstrap.errors import ConfigureError
from bootstrap.family.order import depth_first
from bootstrap.host.sandbox import Sandbox
from bootstrap.host.tree import Tree
from bootstrap.log import log

POLICY_RC_D = "#!/bin/sh\n# Installed by bootstrap: services do not start inside a container image build.\nexit 101\n"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def base_env(epoch: int) -> dict[str, str]:
    """The whole environment maintainer scripts see: nothing from the host leaks in."""
    return {
        "PATH": PATH,
        "HOME": "/root",
        "LC_ALL": "C.UTF-8",
        "LANG": "C.UTF-8",
        "DEBIAN_FRONTEND": "noninteractive",
        "DEBCONF_NONINTERACTIVE_SEEN": "true",
        "DEBCONF_NOWARNINGS": "yes",
        "SOURCE_DATE_EPOCH": str(epoch),
        "TZ": "UTC",
    }


def install_order(packages: Sequence[Package]) -> list[Package]:
    """Pre-Depends and Depends before dependents (cycles broken by name); base-passwd first."""
    by_name = {p.name: p for p in packages}
    provides: dict[str, str] = {}
    for p in packages:
        for group in relations.parse(p.provides):
            provides.setdefault(group[0].name, p.name)

    def needs(name: str) -> list[str]:
        """The package each Pre-Depends and Depends group of `name` is met by here (its first alternative
        that is), in order."""
        pkg, out = by_name[name], []
        for group in relations.parse(pkg.pre_depends) + relations.parse(pkg.depends):
            met = next((d for d in (r.name if r.name in by_name else provides.get(r.name) for r in group) if d), None)
            if met:
                out.append(met)
        return out

    first = [name for name in ("base-passwd",) if name in by_name]
    return [by_name[name] for name in depth_first([*first, *sorted(by_name)], needs)]


def _fail(what: str, output: str) -> ConfigureError:
    """One line that names the failing package and what its script said, not dpkg's closing summary."""
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    first = next((i for i, line in enumerate(lines) if line.startswith("dpkg: error processing package")), None)
    if first is not None:
        package = lines[first].split()[4]
        said = [line for line in lines[max(0, first - 2) : first] if not line.startswith("Setting up")]
        detail = " | ".join([*said, *lines[first + 1 : first + 2]])
        return ConfigureError(
            f"{what} failed in {package}: {detail}", "run with -v to see all maintainer script output"
        )
    tail = " | ".join(lines[-3:])
    return ConfigureError(f"{what} failed: {tail or 'no output'}", "run with -v to see all maintainer script output")


FAILED_MARK = "bootstrap: preinst failed: "
STAGED = "var/lib/dpkg/tmp.bootstrap"
"""Control areas of the packages with a preinst, each moved to dpkg's `tmp.ci` while its preinst runs."""
DPKG_FORCE = "security-mac,downgrade,unsafe-io"
"""What dpkg tells scripts about its --force options (its defaults, plus the unsafe-io it is run with)."""
_SCRIPTS = ("preinst", "postinst", "prerm", "postrm", "config")


def dpkg_env(dpkg_version: str) -> dict[str, str]:
    """The variables dpkg sets for every maintainer script it runs (besides the per-script ones)."""
    return {
        "DPKG_ADMINDIR": "/var/lib/dpkg",
        "DPKG_ROOT": "",
        "DPKG_FORCE": DPKG_FORCE,
        "DPKG_MAINTSCRIPT_DEBUG": "0",
        "DPKG_RUNNING_VERSION": dpkg_version.split(":", 1)[-1],
    }


def script(packages: Sequence[Package], with_preinst: set[str]) -> str:
    """One shell script for the whole configure step: every preinst (`install`), in dependency order, run as
    dpkg runs it (from the package's control area in /var/lib/dpkg/tmp.ci, with dpkg's environment), then
    `dpkg --configure -a`. One sandbox instead of one per script."""
    dpkg_version = next((p.version for p in packages if p.name == "dpkg"), "")
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in dpkg_env(dpkg_version).items())
    lines = [
        "ci=/var/lib/dpkg/tmp.ci",
        "preinst() (",
        f"  export {exports} DPKG_MAINTSCRIPT_NAME=preinst DPKG_MAINTSCRIPT_PACKAGE_REFCOUNT=1",
        # The previous package's control area goes only when the next one needs the name (one exec fewer each).
        f'  {{ [ ! -e "$ci" ] || rm -rf "$ci"; }} && mv "/{STAGED}/$3" "$ci" || exit 1',
        '  DPKG_MAINTSCRIPT_PACKAGE="$1" DPKG_MAINTSCRIPT_ARCH="$2" "$ci/preinst" install || exit 1',
        ")",
    ]
    for pkg in install_order(packages):
        if pkg.name in with_preinst:
            args = " ".join(shlex.quote(a) for a in (pkg.name, pkg.arch, pkg.key))
            lines.append(f'preinst {args} || {{ echo "{FAILED_MARK}{pkg.name}"; exit 1; }}')
    lines.append(f'rm -rf "$ci" /{STAGED}')
    lines.append("exec dpkg --configure -a --force-unsafe-io")
    return "\n".join(lines) + "\n"


def stage_control_areas(tree: Tree, unpacked: Sequence[Unpacked]) -> set[str]:
    """Write the control area of every package that has a preinst where the script can move it to tmp.ci;
    returns those packages' names."""
    staged = set()
    for u in unpacked:
        if "preinst" not in u.control:
            continue
        staged.add(u.package.name)
        for member, data in sorted(u.control.items()):
            tree.write(f"{STAGED}/{u.package.key}/{member}", data, 0o755 if member in _SCRIPTS else 0o644)
    return staged


def configure(root: Path, unpacked: Sequence[Unpacked], epoch: int, sandbox: Sandbox) -> None:
    """Run every preinst (`install`) in dependency order, then `dpkg --configure -a` once."""
    tree = Tree(root)
    tree.write("usr/sbin/policy-rc.d", POLICY_RC_D, 0o755)
    with_preinst = stage_control_areas(tree, unpacked)
    packages = [u.package for u in unpacked]
    proc = sandbox.run(["/bin/sh", "-c", script(packages, with_preinst)], base_env(epoch))
    log.debug("%s", proc.stdout.rstrip())
    if proc.returncode != 0:
        failed = [line[len(FAILED_MARK) :] for line in proc.stdout.splitlines() if line.startswith(FAILED_MARK)]
        if failed:
            before = proc.stdout.split(FAILED_MARK, 1)[0]
            raise _fail(f"{failed[0]} preinst", before)
        raise _fail("dpkg --configure -a", proc.stdout)
