"""Shared by the RPM family's tests."""

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import Serve
from tests.fixtures import rpmdistro
from tests.fixtures.gpg import GpgKey
from tests.fixtures.rpmrepo import RpmRepo, Spec
from tests.fixtures.shared import made_once


def need_tools(*tools: str) -> None:
    """Skip (fail on CI) when a tool of the fixture is missing: `make test-deps` installs them."""
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"missing {', '.join(missing)}: run make test-deps")
        pytest.skip(f"missing {', '.join(missing)}")


EPOCH = 2000000000
"""After the fixture packages' file mtimes (their build time): none is clamped, so `rpm -V` finds them as built."""
SAMPLE = Spec(
    "sample",
    "1.0",
    "1",
    arch="x86_64",
    files={"/usr/bin/sample": "#!/bin/sh\necho sample"},
    install="\n".join(
        [
            "mkdir -p $RPM_BUILD_ROOT/usr/share/doc/sample $RPM_BUILD_ROOT/usr/share/locale/de "
            "$RPM_BUILD_ROOT/usr/share/locale/fr $RPM_BUILD_ROOT/var/log/sample $RPM_BUILD_ROOT/etc",
            "echo readme > $RPM_BUILD_ROOT/usr/share/doc/sample/README",
            "echo hallo > $RPM_BUILD_ROOT/usr/share/locale/de/sample.mo",
            "echo salut > $RPM_BUILD_ROOT/usr/share/locale/fr/sample.mo",
            "ln -s sample $RPM_BUILD_ROOT/usr/bin/sample-link",
            "echo linked > $RPM_BUILD_ROOT/usr/bin/one && ln $RPM_BUILD_ROOT/usr/bin/one $RPM_BUILD_ROOT/usr/bin/two",
            "echo conf > $RPM_BUILD_ROOT/etc/sample.conf",
        ]
    ),
    file_lines=[
        "%attr(0755,root,root) /usr/bin/sample-link",
        "%attr(4755,root,daemon) /usr/bin/one",
        "%attr(4755,root,daemon) /usr/bin/two",
        "%dir /usr/share/doc/sample",
        "%doc /usr/share/doc/sample/README",
        "%lang(de) /usr/share/locale/de/sample.mo",
        "%lang(fr) /usr/share/locale/fr/sample.mo",
        "%dir %attr(0750,daemon,daemon) /var/log/sample",
        "%ghost /var/log/sample/sample.log",
        "%config(noreplace) /etc/sample.conf",
    ],
)


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory, gpg_key: GpgKey) -> Path:
    need_tools("rpmbuild", "rpmsign")
    made = made_once(
        tmp_path_factory, f"sample-rpm-{gpg_key.fingerprint}", lambda d: RpmRepo(d / "repo", gpg_key).build([SAMPLE])
    )
    (rpm,) = (made / "repo" / "Packages").iterdir()
    return rpm


def accounts_root(tmp_path: Path) -> Path:
    """An empty tree but for passwd and group naming root and daemon."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\ndaemon:x:2:2::/:/sbin/nologin\n")
    (root / "etc/group").write_text("root:x:0:\ndaemon:x:2:\n")
    for name in ("passwd", "group"):  # dated alike in every tree made (two made a second apart compare equal)
        os.utime(root / "etc" / name, (EPOCH - 1, EPOCH - 1))
    return root


@pytest.fixture(scope="session")
def rpm_distro_tree(tmp_path_factory: pytest.TempPathFactory, gpg_key: GpgKey) -> Path:
    """The distribution in miniature with real programs (`tests.fixtures.rpmdistro`), built and signed once for the
    whole run (tests/fixtures/shared.py) as AlmaLinux 9's BaseOS: the tree a mirror serves, the repository at
    `rpmdistro.RELEASE_PATH` in it. Read only."""
    need_tools("rpmbuild", "rpmsign", "createrepo_c")
    made = made_once(
        tmp_path_factory,
        f"rpmdistro-{gpg_key.fingerprint}",
        lambda d: rpmdistro.build(d / "tree" / rpmdistro.RELEASE_PATH, gpg_key),
    )
    return made / "tree"


@pytest.fixture(scope="session")
def rpm_distro(rpm_distro_tree: Path, gpg_key: GpgKey, serve_session: Serve) -> tuple[RpmRepo, str]:
    """The miniature's repository (`rpm_distro_tree`) served on 127.0.0.1: (the repository, its base URL)."""
    repo = RpmRepo(rpm_distro_tree / rpmdistro.RELEASE_PATH, gpg_key)
    return repo, serve_session(repo.root)
