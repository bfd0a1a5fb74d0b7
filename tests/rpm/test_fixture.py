"""The RPM fixture repository is real: Debian's dnf installs from it what a resolver must find."""

from pathlib import Path

import pytest

from tests.conftest import Serve
from tests.fixtures.gpg import GpgKey
from tests.fixtures.rpmrepo import GROUP, MINIATURE_INSTALLED, dnf_install, left_running, shared_miniature
from tests.rpm.conftest import need_tools


@pytest.mark.parametrize("compress", ["xz", "gz"])
def test_dnf_installs_the_group_without_weak_deps(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, gpg_key: GpgKey, serve: Serve, compress: str
) -> None:
    need_tools("rpmbuild", "createrepo_c", "dnf")
    repo = shared_miniature(tmp_path_factory, gpg_key, compress)
    suffix = f".{compress}"
    assert (repo.root / "repodata" / f"primary.xml{suffix}").is_file()
    url = serve(repo.root)
    keyring = repo.keyring(tmp_path / "RPM-GPG-KEY-fixture")
    # Signed packages and a signed repomd.xml, checked by dnf itself with the key.
    got = dnf_install(url, tmp_path / "root", [f"@{GROUP}"], keyring)
    assert left_running(str(tmp_path / "root")) == [], "dnf left a gpg-agent running"
    assert got == MINIATURE_INSTALLED


def test_dnf_installs_names(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, gpg_key: GpgKey, serve: Serve
) -> None:
    need_tools("rpmbuild", "createrepo_c", "dnf")
    repo = shared_miniature(tmp_path_factory, gpg_key)
    got = dnf_install(serve(repo.root), tmp_path / "root", ["rpm-tool", "filesystem"])
    # rpm-tool pulls the rest: a versioned provide (coreutils), a file dependency (/bin/sh), `or` and `if`.
    assert got == MINIATURE_INSTALLED
