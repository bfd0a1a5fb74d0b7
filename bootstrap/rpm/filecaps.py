"""File capabilities (`%caps(cap_net_raw=p)`): the text a package's header holds for a file (libcap's
`cap_to_text` form, RPMTAG_FILECAPS) made into the `security.capability` extended attribute rpm sets with
`cap_set_file`: a `vfs_cap_data` of revision 2 (the kernel's `capability.h`), which the layer carries as a pax
record and a container runtime writes back when it unpacks the image.

The text is clauses separated by spaces, each a comma-separated list of capabilities (names with or without
`cap_`, `all`, or numbers; none before `=` means all) followed by one or more operations: `=` (clear the
capabilities' three sets, then set the flags given), `+` (set) or `-` (clear), with flags of `e`, `i` and `p`."""

import re
import struct

from bootstrap.errors import UnpackError

NAMES = (
    "chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill", "setgid", "setuid", "setpcap",
    "linux_immutable", "net_bind_service", "net_broadcast", "net_admin", "net_raw", "ipc_lock", "ipc_owner",
    "sys_module", "sys_rawio", "sys_chroot", "sys_ptrace", "sys_pacct", "sys_admin", "sys_boot", "sys_nice",
    "sys_resource", "sys_time", "sys_tty_config", "mknod", "lease", "audit_write", "audit_control", "setfcap",
    "mac_override", "mac_admin", "syslog", "wake_alarm", "block_suspend", "audit_read", "perfmon", "bpf",
    "checkpoint_restore",
)  # fmt: skip
"""The capabilities by number (linux/capability.h), 0 to 40."""
ATTRIBUTE = "security.capability"
_REVISION_2 = 0x02000000
_EFFECTIVE = 0x000001
_CLAUSE = re.compile(r"([^=+-]*)((?:[=+-][eip]*)+)")
_OPERATION = re.compile(r"([=+-])([eip]*)")
_ALL = (1 << len(NAMES)) - 1


def _mask(names: str, text: str) -> int:
    if not names:
        return _ALL
    out = 0
    for name in names.lower().split(","):
        if name == "all":
            out |= _ALL
            continue
        bare = name.removeprefix("cap_")
        if bare in NAMES:
            out |= 1 << NAMES.index(bare)
        elif bare.isdigit() and int(bare) < len(NAMES):
            out |= 1 << int(bare)
        else:
            raise ValueError(f"unknown capability {name!r} in {text!r}")
    return out


def sets(text: str) -> tuple[int, int, int]:
    """(effective, inheritable, permitted) of a capability text; ValueError when it is not one."""
    flags = {"e": 0, "i": 0, "p": 0}
    for clause in text.split():
        m = _CLAUSE.fullmatch(clause)
        if m is None or (not m[1] and not m[2].startswith("=")):
            raise ValueError(f"malformed capability clause {clause!r}")
        caps = _mask(m[1], text)
        for op, given in _OPERATION.findall(m[2]):
            if op == "=":
                for f in flags:
                    flags[f] &= ~caps
            for f in given:
                flags[f] = flags[f] & ~caps if op == "-" else flags[f] | caps
    return flags["e"], flags["i"], flags["p"]


def attribute(text: str, what: str) -> bytes | None:
    """The `security.capability` value rpm writes for a file of `text` (None: no capabilities, nothing to
    write); a text that is not capabilities is refused with the package and file in `what`."""
    try:
        effective, inheritable, permitted = sets(text)
    except ValueError as exc:
        raise UnpackError(f"{what}: {exc}", "the package's header is not what rpmbuild writes") from None
    if not (effective or inheritable or permitted):
        return None
    if effective and effective != permitted | inheritable:
        # the attribute has one effective bit, for all of them: libcap's cap_set_file refuses the rest
        raise UnpackError(
            f"{what}: capabilities {text!r} are effective for some of those permitted or inheritable only",
            "the package's header is not what rpm can install",
        )
    magic = _REVISION_2 | (_EFFECTIVE if effective else 0)
    low, high = 0xFFFFFFFF, 32
    return struct.pack("<5I", magic, permitted & low, inheritable & low, permitted >> high, inheritable >> high)
