"""The checks behind builds without root, on /proc/sys and /etc/sub?id files written by the test (the kernel
settings that cannot be switched for real on this machine: Ubuntu's AppArmor restriction, Debian's old
unprivileged_userns_clone)."""

import os
import pwd
from pathlib import Path

from bootstrap.host import userns


def _sysctls(root: Path, values: dict[str, str]) -> Path:
    for key, value in values.items():
        path = root / key.replace(".", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value + "\n")
    return root


def _me() -> str:
    return pwd.getpwuid(os.getuid()).pw_name


def test_each_missing_piece_is_named_with_its_fix(tmp_path: Path) -> None:
    proc = _sysctls(
        tmp_path / "proc",
        {
            "kernel.unprivileged_userns_clone": "0",
            "user.max_user_namespaces": "0",
            "kernel.apparmor_restrict_unprivileged_userns": "1",
        },
    )
    subuid = tmp_path / "subuid"
    subuid.write_text(f"{_me()}:100000:1000\nsomeone:300000:65536\n")
    found = {f.what.split(" =")[0].split(" of ")[0]: f for f in userns.check(proc, subuid, tmp_path / "none", False)}
    assert not found["subordinate uid range"].ok, "a range too small for nobody (65534) does not count"
    assert "usermod --add-subuids 100000-165535" in found["subordinate uid range"].fix
    assert not found["subordinate gid range"].ok
    assert not found["kernel.unprivileged_userns_clone"].ok
    assert "sysctl -w kernel.unprivileged_userns_clone=1" in found["kernel.unprivileged_userns_clone"].fix
    assert not found["user.max_user_namespaces"].ok
    assert not found["kernel.apparmor_restrict_unprivileged_userns"].ok
    assert "AppArmor profile" in found["kernel.apparmor_restrict_unprivileged_userns"].fix


def test_a_ready_machine_passes_every_check(tmp_path: Path) -> None:
    proc = _sysctls(
        tmp_path / "proc", {"user.max_user_namespaces": "15000", "kernel.apparmor_restrict_unprivileged_userns": "0"}
    )
    ids = tmp_path / "subid"
    ids.write_text(f"{os.getuid()}:200000:65536\n")
    findings = userns.check(proc, ids, ids, False)
    assert [f.what for f in findings if not f.ok] == [] or not all(
        userns._helper_ok(h) for h in ("newuidmap", "newgidmap")
    )
    assert userns.subordinate(ids, "whoever", os.getuid()) == (200000, 65536), "matched by uid as well as by name"
