"""The RPM finish step beyond links (tests/rpm/test_links.py): what an official build's `%post` or Containerfile
does after the install, in its order: removals, writes, appends (`echo >>`), `mkdir -p`, `chmod`, `systemd-tmpfiles
--create`; the recipe keys checked; each shipped recipe's steps reach the job as the recipe states them."""

import os
import stat
import time
from pathlib import Path

import pytest

from bootstrap.build import families, recipe
from bootstrap.build.plan import Options, make_plan
from bootstrap.errors import BootstrapError
from bootstrap.family.interface import Target
from bootstrap.rpm.family import RpmFamily
from bootstrap.rpm.job import RpmJob
from bootstrap.rpm.options import JobOptions
from bootstrap.rpm.selection import select
from tests.fixtures.gpg import GpgKey
from tests.rpm.conftest import EPOCH
from tests.rpm.test_family import write_recipe


def _finish(root: Path, **options: object) -> None:
    RpmJob(select([]), {}, Target(root, "x86_64", EPOCH), JobOptions(**options)).finish()  # type: ignore[arg-type]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_the_steps_in_the_builds_order(tmp_path: Path) -> None:
    """AlmaLinux's order: `rm -rf /run/*` before `mkdir -p /run/lock`; `touch` then `chmod 600`; rootfiles.conf's
    copy of /root/.bashrc; an append keeps the file's mode; a missing file is made by `>>`."""
    root = tmp_path / "root"
    for rel, text in {
        "run/old/file": "stale",
        "etc/dnf/dnf.conf": "[main]\n",
        "usr/share/rootfiles/.bashrc": "# .bashrc\n",
        "usr/lib/tmpfiles.d/rootfiles.conf": "C /root/.bashrc - - - - /usr/share/rootfiles/.bashrc\n",
    }.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    os.chmod(root / "etc/dnf/dnf.conf", 0o600)
    _finish(
        root,
        remove=("/run/*",),
        write={"/etc/.pwd.lock": b""},
        dates={"/etc/BUILDTIME": "%Y-%m-%d_%H:%M:%S"},
        append={"/etc/dnf/dnf.conf": b"tsflags=nodocs\n", "/etc/new.conf": b"made\n"},
        dirs=("/run/lock", "/var/lib/private"),
        modes={"/etc/.pwd.lock": 0o600, "/var/lib/private": 0o700},
        tmpfiles=("/usr/lib/tmpfiles.d/rootfiles.conf",),
    )
    assert os.listdir(root / "run") == ["lock"]
    assert _mode(root / "run/lock") == 0o755
    assert (_mode(root / "etc/.pwd.lock"), _mode(root / "var/lib/private")) == (0o600, 0o700)
    assert (root / "etc/dnf/dnf.conf").read_text() == "[main]\ntsflags=nodocs\n"
    assert _mode(root / "etc/dnf/dnf.conf") == 0o600
    assert (root / "etc/new.conf").read_text() == "made\n"
    assert (root / "root/.bashrc").read_text() == "# .bashrc\n"
    stamp = time.strftime("%Y-%m-%d_%H:%M:%S", time.gmtime(EPOCH))
    assert (root / "etc/BUILDTIME").read_text() == f"{stamp}\n" and (root / "etc/BUILDTIME").stat().st_mtime == EPOCH


def test_a_hard_link_is_another_name_of_the_file(tmp_path: Path) -> None:
    """fedora-minimal's `ln /usr/bin/ln usr/sbin/sln`, where usr/sbin is a link to bin (a merged /usr): made inside
    the tree, after the removals; a missing or non-regular source is an error."""
    root = tmp_path / "root"
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/ln").write_text("ln")
    (root / "usr/bin/sln").write_text("the static sln")
    (root / "usr/sbin").symlink_to("bin")
    _finish(root, remove=("/usr/sbin/sln",), hardlinks={"/usr/sbin/sln": "/usr/bin/ln"})
    assert (root / "usr/bin/sln").stat().st_ino == (root / "usr/bin/ln").stat().st_ino
    assert (root / "usr/bin/ln").stat().st_nlink == 2
    for source in ("/usr/bin/missing", "/usr/bin"):
        with pytest.raises(BootstrapError, match=f"{source} is not a regular file in the image"):
            _finish(root, hardlinks={"/usr/bin/other": source})


def test_linking_a_file_to_itself_keeps_it_and_appends_go_through_links(tmp_path: Path) -> None:
    """`ln usr/bin/ln usr/sbin/ln` where usr/sbin is usr/bin: one file, still there. `echo >>` through a symbolic
    link appends to its target (inside the tree) and leaves the link. A directory the tree left at the writer's
    temporary name does not stop a write."""
    root = tmp_path / "root"
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/ln").write_text("ln")
    (root / "usr/sbin").symlink_to("bin")
    (root / "etc/dnf").mkdir(parents=True)
    (root / "etc/dnf/dnf.conf").write_text("[main]\n")
    (root / "etc/dnf.conf").symlink_to("dnf/dnf.conf")
    (root / "etc/.machine-id.bootstrap-new/deep").mkdir(parents=True)
    _finish(
        root,
        hardlinks={"/usr/sbin/ln": "/usr/bin/ln"},
        append={"/etc/dnf.conf": b"tsflags=nodocs\n"},
        write={"/etc/machine-id": b""},
    )
    assert (root / "usr/bin/ln").read_text() == "ln"
    assert (root / "etc/dnf.conf").is_symlink()
    assert (root / "etc/dnf/dnf.conf").read_text() == "[main]\ntsflags=nodocs\n"
    assert (root / "etc/machine-id").read_bytes() == b"" and not (root / "etc/.machine-id.bootstrap-new").exists()


def test_an_append_to_a_file_a_script_made_gigabytes_long_is_an_error_not_memory(tmp_path: Path) -> None:
    """A `%post` can `truncate -s 1G` the file a recipe appends to: it takes nothing on disk, and the append would
    read it whole. Refused in one line naming it, read no further than the limit, the file left as it was."""
    root = tmp_path / "root"
    (root / "etc/dnf").mkdir(parents=True)
    conf = root / "etc/dnf/dnf.conf"
    conf.touch()
    os.truncate(conf, 1 << 30)
    with pytest.raises(BootstrapError, match="rpm.append: /etc/dnf/dnf.conf is larger than 64 MiB") as caught:
        _finish(root, append={"/etc/dnf/dnf.conf": b"tsflags=nodocs\n"})
    assert "\n" not in caught.value.message
    assert conf.stat().st_size == 1 << 30 and conf.stat().st_blocks == 0


def test_removals_of_directories_only_with_exceptions(tmp_path: Path) -> None:
    """CentOS Stream minimal's `find /usr/share/{locale,i18n} -mindepth 1 -maxdepth 1 -type d -not \\( -name en_US -o
    -name POSIX \\) -exec rm -rf`: `*/` takes directories only (locale.alias stays), `!` keeps what it matches."""
    root = tmp_path / "root"
    made = ("locale/de/LC_MESSAGES/x.mo", "locale/en_US/LC_MESSAGES/y.mo", "locale/POSIX/z", "i18n/fr_FR/a",
            "i18n/en_US/b", "locale/ja/c")  # fmt: skip
    for rel in (f"usr/share/{m}" for m in made):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(rel)
    (root / "usr/share/locale/locale.alias").write_text("aliases\n")
    (root / "usr/share/locale/el").symlink_to("de")  # not a directory to `-type d`
    _finish(root, remove=("/usr/share/locale/*/", "/usr/share/i18n/*/", "!/usr/share/*/en_US", "!/usr/share/*/POSIX"))
    assert sorted(os.listdir(root / "usr/share/locale")) == ["POSIX", "el", "en_US", "locale.alias"]
    assert sorted(os.listdir(root / "usr/share/i18n")) == ["en_US"]
    assert (root / "usr/share/locale/en_US/LC_MESSAGES/y.mo").is_file()


def test_a_move_comes_before_the_removals_and_a_missing_source_is_passed_over(tmp_path: Path) -> None:
    """CentOS Stream 9 minimal's `mv /usr/share/zoneinfo/UTC /etc/localtime` then `rm -rf /usr/share/zoneinfo`: the
    file (its inode: mode, date, content) is at /etc/localtime, in place of the link there; a source the image
    lacks leaves the path as it is, as the build's failing `mv` does."""
    root = tmp_path / "root"
    (root / "usr/share/zoneinfo/Etc").mkdir(parents=True)
    (root / "usr/share/zoneinfo/UTC").write_bytes(b"TZif2 UTC")
    os.chmod(root / "usr/share/zoneinfo/UTC", 0o644)
    os.utime(root / "usr/share/zoneinfo/UTC", (1000, 1000))
    (root / "etc").mkdir()
    (root / "etc/localtime").symlink_to("../usr/share/zoneinfo/Etc/UTC")
    inode = (root / "usr/share/zoneinfo/UTC").stat().st_ino
    _finish(root, moves={"/etc/localtime": "/usr/share/zoneinfo/UTC"}, remove=("/usr/share/zoneinfo",))
    moved = (root / "etc/localtime").lstat()
    assert stat.S_ISREG(moved.st_mode) and moved.st_ino == inode and moved.st_mtime == 1000
    assert (root / "etc/localtime").read_bytes() == b"TZif2 UTC" and not (root / "usr/share/zoneinfo").exists()
    _finish(root, moves={"/etc/other": "/usr/share/zoneinfo/UTC"})
    assert not (root / "etc/other").exists()


def test_units_are_masked_only_where_the_image_has_systemctl(tmp_path: Path) -> None:
    """`systemctl mask` in a %post: a link to /dev/null in /etc/systemd/system when the image has systemctl (found
    through /bin, a link to usr/bin); without it the command is not found and nothing is made."""
    units = ("getty.target", "systemd-logind.service")
    bare = tmp_path / "bare"
    (bare / "etc").mkdir(parents=True)
    _finish(bare, mask=units)
    assert not (bare / "etc/systemd").exists()
    root = tmp_path / "root"
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/systemctl").write_text("systemctl")
    (root / "bin").symlink_to("usr/bin")
    _finish(root, mask=units)
    assert sorted(os.listdir(root / "etc/systemd/system")) == sorted(units)
    assert all(os.readlink(root / "etc/systemd/system" / u) == "/dev/null" for u in units)


def test_removals_are_the_shell_s_and_exceptions_read_the_path_as_named(tmp_path: Path) -> None:
    """`rm -rf /tmp/* /var/cache/*` leaves dot entries, as the shell's `*` does; an exception is matched part by
    part (`*` never crosses `/`) against the path as the pattern names it, not as a link inside the tree resolves it."""
    root = tmp_path / "root"
    for rel in ("tmp/a", "tmp/.X11-unix/X0", "var/cache/.keep", "var/cache/dnf/x", "var/log/a/keep", "var/log/keep",
                "usr/lib/locale/en_US/x", "usr/lib/locale/de/x"):  # fmt: skip
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(rel)
    (root / "usr/share").mkdir(parents=True)
    (root / "usr/share/locale").symlink_to("../lib/locale")
    _finish(root, remove=("/tmp/*", "/var/cache/*", "/var/log/*", "/var/log/a/*", "/usr/share/locale/*/",
                          "!/var/*/keep", "!/usr/share/locale/en_US"))  # fmt: skip
    assert os.listdir(root / "tmp") == [".X11-unix"] and os.listdir(root / "var/cache") == [".keep"]
    assert sorted(os.listdir(root / "var/log")) == ["keep"], "`!/var/*/keep` is not `/var/log/a/keep`"
    assert os.listdir(root / "usr/lib/locale") == ["en_US"], "kept as named through the link"


def test_what_makes_mv_fail_is_passed_over_and_a_directory_takes_the_file(tmp_path: Path) -> None:
    """`mv FILE DIR` moves the file into DIR; `mv` into a directory that is not there fails, and the %post goes on."""
    root = tmp_path / "root"
    (root / "etc/zones").mkdir(parents=True)
    (root / "usr/share/zoneinfo").mkdir(parents=True)
    (root / "usr/share/zoneinfo/UTC").write_text("utc")
    (root / "usr/share/zoneinfo/GMT").write_text("gmt")
    _finish(root, moves={"/etc/zones": "/usr/share/zoneinfo/UTC", "/nowhere/localtime": "/usr/share/zoneinfo/GMT"})
    assert (root / "etc/zones/UTC").read_text() == "utc"
    assert (root / "usr/share/zoneinfo/GMT").read_text() == "gmt" and not (root / "nowhere").exists()


@pytest.mark.parametrize("systemctl", ["directory", "loop", "outside"])
def test_no_mask_without_a_systemctl_a_shell_could_run(tmp_path: Path, systemctl: str) -> None:
    root = tmp_path / "root"
    (root / "usr/bin").mkdir(parents=True)
    program = root / "usr/bin/systemctl"
    if systemctl == "directory":
        program.mkdir()
    elif systemctl == "loop":
        program.symlink_to("systemctl")
    else:
        program.symlink_to(tmp_path / "host-systemctl")
        (tmp_path / "host-systemctl").write_text("the host's")
    _finish(root, mask=("getty.target",))
    assert not (root / "etc").exists()


def test_a_unit_already_there_is_left_as_systemctl_leaves_it(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/systemctl").write_text("systemctl")
    (root / "etc/systemd/system/getty.target").mkdir(parents=True)
    (root / "etc/systemd/system/local.service").write_text("[Unit]\n")
    (root / "etc/systemd/system/masked.service").symlink_to("/dev/null")
    _finish(root, mask=("getty.target", "local.service", "masked.service", "dev-hugepages.mount"))
    system = root / "etc/systemd/system"
    assert (system / "getty.target").is_dir() and (system / "local.service").read_text() == "[Unit]\n"
    assert os.readlink(system / "masked.service") == os.readlink(system / "dev-hugepages.mount") == "/dev/null"


def test_the_image_s_own_systemd_tmpfiles_runs_only_where_the_image_has_it(tmp_path: Path) -> None:
    """Rocky's `%post` runs `systemd-tmpfiles --create --boot` chrooted: in an image without systemd the command
    is not found and nothing is made; with it, the lines are applied as it applies them."""
    for has_tool in (False, True):
        root = tmp_path / f"root-{has_tool}"
        (root / "usr/lib/tmpfiles.d").mkdir(parents=True)
        (root / "usr/lib/tmpfiles.d/x.conf").write_text("d /var/lib/made 0700 root root -\n")
        (root / "usr/bin").mkdir()
        if has_tool:
            (root / "usr/bin/systemd-tmpfiles").write_text("systemd-tmpfiles")
        _finish(root, tmpfiles=("*",), tmpfiles_in_image=True)
        assert (root / "var/lib/made").is_dir() is has_tool
        if has_tool:
            assert _mode(root / "var/lib/made") == 0o700
    host = tmp_path / "host-tool"
    (host / "usr/lib/tmpfiles.d").mkdir(parents=True)
    (host / "usr/lib/tmpfiles.d/x.conf").write_text("d /var/lib/made 0700 root root -\n")
    _finish(host, tmpfiles=("*",))
    assert (host / "var/lib/made").is_dir(), "AlmaLinux's `systemd-tmpfiles --root`: the builder's, always"


def test_a_mode_for_a_path_the_image_lacks_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "root").mkdir()
    with pytest.raises(BootstrapError, match="rpm.modes: /run/utmp is not in the image"):
        _finish(tmp_path / "root", modes={"/run/utmp": 0o664})


def test_nothing_is_made_or_changed_outside_the_tree(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "etc").mkdir(parents=True)
    outside.mkdir()
    (outside / "dnf.conf").write_text("host\n")
    os.chmod(outside / "dnf.conf", 0o644)
    (root / "etc/dnf").symlink_to(outside)  # absolute: inside the image it is `outside` below the root
    _finish(root, append={"/etc/dnf/dnf.conf": b"x\n"}, dirs=("/etc/dnf/made",), modes={"/etc/dnf/made": 0o700})
    assert sorted(os.listdir(outside)) == ["dnf.conf"]
    assert ((outside / "dnf.conf").read_text(), _mode(outside / "dnf.conf")) == ("host\n", 0o644)
    inside = root / str(outside).lstrip("/")
    assert ((inside / "dnf.conf").read_text(), _mode(inside / "made")) == ("x\n", 0o700)


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ('[rpm]\ndirs = ["run/lock"]\n', "rpm.dirs: 'run/lock' is not an absolute path"),
        ('[rpm.modes]\n"/etc/x" = "rw-r--r--"\n', "rpm.modes: '/etc/x' has mode 'rw-r--r--', not octal"),
        ('[rpm.append]\n"etc/dnf.conf" = "x"\n', "rpm.append: 'etc/dnf.conf' is not an absolute path"),
        ('[rpm]\ntmpfiles = ["rootfiles.conf"]\n', "rpm.tmpfiles: 'rootfiles.conf' is not an absolute path"),
        ('[rpm.dates]\n"/etc/BUILDTIME" = "today"\n', "rpm.dates: '/etc/BUILDTIME' has no date format 'today'"),
        ('[rpm.hardlinks]\n"/usr/sbin/sln" = "usr/bin/ln"\n', "rpm.hardlinks: 'usr/bin/ln' is not an absolute path"),
        ('[[groups]]\nname = "g"\ngid = 990\npassword = "a:b"\n', "password 'a:b' has ':'"),
        ('[rpm]\nmask = ["../../etc/passwd"]\n', "rpm.mask: '../../etc/passwd' is not a systemd unit name"),
        ('[rpm.moves]\n"/etc/localtime" = "usr/share/zoneinfo/UTC"\n', "rpm.moves: 'usr/share/zoneinfo/UTC' is not an"),
        ('[rpm]\nremove = ["!usr/share/locale/en_US"]\n', "rpm.remove: 'usr/share/locale/en_US' is not an absolute"),
        ('[rpm.moves]\n"/" = "/etc"\n', "rpm.moves: '/' names the image's root"),
        ('[rpm]\nremove = ["/."]\n', "rpm.remove: '/.' names the image's root"),
    ],
)
def test_recipe_keys_are_checked(tmp_path: Path, gpg_key: GpgKey, body: str, said: str) -> None:
    with pytest.raises(BootstrapError, match=said):
        recipe.load(str(write_recipe(tmp_path, gpg_key, body)), given=True)


def _options(name: str, tmp_path: Path, suite: str | None = None) -> JobOptions:
    r = recipe.load(name)
    plan = make_plan(r, Options(suite=suite, arch="amd64", mirror="http://127.0.0.1:9/tree", cache_dir=tmp_path))
    family = families.family_for(plan)
    assert isinstance(family, RpmFamily)
    return family.options("amd64")


def test_shipped_recipes_hand_their_steps_to_the_job(tmp_path: Path) -> None:
    alma = _options("almalinux", tmp_path)
    assert {"/run/lock", "/var/lib/private", "/run/systemd/users"} <= set(alma.dirs)
    assert alma.modes["/var/lib/private"] == 0o700 and alma.modes["/etc/.pwd.lock"] == 0o600
    assert alma.tmpfiles == ("/usr/lib/tmpfiles.d/rootfiles.conf",) and not alma.tmpfiles_boot
    assert not alma.tmpfiles_in_image, "the Containerfile's `systemd-tmpfiles --root` is the builder's"
    accounts = recipe.load("almalinux")
    assert [(g.name, g.gid, g.password) for g in accounts.groups] == [("sgx", 996, "!*"), ("systemd-oom", 995, "!*")]
    (oom,) = accounts.users
    assert (oom.name, oom.uid, oom.gid, oom.home, oom.system) == ("systemd-oom", 995, 995, "/", True)
    for name in ("rockylinux", "rockylinux-minimal"):
        rocky = _options(name, tmp_path)
        assert (rocky.tmpfiles, rocky.tmpfiles_boot, rocky.tmpfiles_in_image) == (("*",), True, True), name
        assert not any(p.startswith(("/tmp", "/var/log")) for p in rocky.remove), "the kickstart's quoted globs"
        assert "getty.target" in rocky.mask and not any(p.startswith("/etc/systemd") for p in rocky.links), name
    for name in ("fedora", "fedora-minimal"):
        assert _options(name, tmp_path).append == {"/etc/dnf/dnf.conf": b"tsflags=nodocs\n"}
    assert _options("almalinux-micro", tmp_path).dirs == ("/run/lock",)
    assert _options("fedora-minimal", tmp_path).hardlinks == {"/usr/sbin/sln": "/usr/bin/ln"}
    for name in ("almalinux", "almalinux-minimal", "almalinux-micro", "rockylinux"):
        assert _options(name, tmp_path).dates == {"/etc/BUILDTIME": "%Y%m%d_%H%M"}, name
    assert _options("rockylinux-minimal", tmp_path).dates == {"/etc/BUILDTIME": "%Y-%m-%d_%H:%M:%S"}


def test_shipped_recipes_import_the_release_key_where_the_official_builds_do(tmp_path: Path) -> None:
    """Fedora's config.sh runs `rpm --import`; AlmaLinux's dnf imports the key it checks packages with. The key is
    the release's `gpgkey`, dnf's variables filled in for the build. Rocky's published images hold no gpg-pubkey
    (repo-info's package lists), nor do CentOS Stream's (its kickstart's import is commented out)."""
    assert _options("fedora", tmp_path).keys == ("/etc/pki/rpm-gpg/RPM-GPG-KEY-fedora-45-x86_64",)
    assert _options("almalinux", tmp_path).keys == ("/etc/pki/rpm-gpg/RPM-GPG-KEY-AlmaLinux-10",)
    for name in ("fedora-minimal", "almalinux-minimal"):
        assert len(_options(name, tmp_path).keys) == 1, name
    for name in ("centos-stream", "centos-stream-minimal", "almalinux-micro", "rockylinux", "rockylinux-minimal"):
        assert _options(name, tmp_path).keys == (), name


def _request(name: str, suite: str, tmp_path: Path) -> tuple[tuple[str, ...], tuple[str, ...], bool]:
    plan = make_plan(
        recipe.load(name), Options(suite=suite, arch="amd64", mirror="http://127.0.0.1:9", cache_dir=tmp_path)
    )
    family = families.family_for(plan)
    assert isinstance(family, RpmFamily)
    return family.settings.request.names, family.settings.exclude, family.settings.request.weak


def test_centos_streams_kickstarts_release_by_release(tmp_path: Path) -> None:
    """CentOS-Stream-{9,10}-container-{common,base,minimal}.ks: 9 installs English alone and no weak dependencies,
    10 (whose installer dropped those options) every language and its weak dependencies, and tzdata; the
    nochroot %post's empty /run with /run/lock; machine-id 0444; the masks, only with systemctl; 9's minimal
    image moves zoneinfo's UTC to /etc/localtime and removes the rest."""
    nine, ten = _options("centos-stream", tmp_path, "9"), _options("centos-stream", tmp_path, "10")
    assert (nine.install_langs, ten.install_langs) == (("en",), ())
    assert (nine.links["/etc/localtime"], ten.links["/etc/localtime"]) == (
        "../usr/share/zoneinfo/Etc/UTC",
        "../usr/share/zoneinfo/UTC",
    )
    assert nine.links["/etc/rhsm-host"] == "/run/secrets/rhsm" and nine.modes["/etc/machine-id"] == 0o444
    assert "/run/*" in nine.remove and nine.dirs == ("/run/lock",) and "getty.target" in nine.mask
    assert not nine.tmpfiles and not nine.dates
    names9, _, weak9 = _request("centos-stream", "9", tmp_path)
    names10, excluded10, weak10 = _request("centos-stream", "10", tmp_path)
    assert (weak9, weak10) == (False, True)
    assert "tzdata" in names10 and "tzdata" not in names9 and "python3-dnf-plugins-core" in names9
    assert "kernel" in excluded10
    small9, small10 = (
        _options("centos-stream-minimal", tmp_path, "9"),
        _options("centos-stream-minimal", tmp_path, "10"),
    )
    assert small9.moves == {"/etc/localtime": "/usr/share/zoneinfo/UTC"} and "/usr/share/zoneinfo" in small9.remove
    assert "/etc/localtime" not in small9.links and small10.links["/etc/localtime"] == "../usr/share/zoneinfo/UTC"
    assert not small10.moves and "/usr/share/zoneinfo" not in small10.remove
    assert {"!/usr/share/*/en_US", "/usr/share/locale/*/"} <= set(small10.remove)
    assert small10.hardlinks == {"/usr/sbin/sln": "/usr/bin/ln"}
    mini10, out10, _ = _request("centos-stream-minimal", "10", tmp_path)
    assert {"microdnf", "libusbx", "tzdata"} <= set(mini10) and {"systemd", "chrony", "crypto-policies-scripts"} <= set(
        out10
    )


def test_rocky_requests_follow_the_release_branches_kickstarts(tmp_path: Path) -> None:
    """Rocky builds each release from its branch's kickstart (r9, r10), whose lists are the same; the published
    rockylinux:9.3.20231119 images hold gzip, usermode and util-linux (-minimal) and no iputils, as those files ask
    (main's older Rocky-9 files list iputils instead)."""
    for suite in ("9", "10"):
        base, base_out, base_weak = _request("rockylinux", suite, tmp_path)
        assert {"gzip", "usermode", "libusbx", "findutils"} <= set(base) and "iputils" not in base, suite
        assert "langpacks-*" in base_out and not base_weak, suite
        small, small_out, _ = _request("rockylinux-minimal", suite, tmp_path)
        assert "util-linux" in small and {"iputils", "yum", "tar"} <= set(small_out), suite
    assert _request("rockylinux", "9", tmp_path) == _request("rockylinux", "10", tmp_path)
