"""The RPM family end to end up to the install steps: a recipe pointing at the signed fixture repository, laid
out as a distribution's tree and served on 127.0.0.1, made into a plan, opened, resolved (the same set as
Debian's dnf), pinned from a lock, fetched and each package verified; every hostile input refused with one line
before anything is unpacked (the install steps, `RpmJob`, are never reached). A build of the miniature with
real programs (`tests/fixtures/rpmdistro.py`) through the command line gives an image whose rpm lists the set."""

import hashlib
import json
import lzma
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from bootstrap.build import download, families, recipe
from bootstrap.build.plan import Options, Plan, make_plan
from bootstrap.errors import BootstrapError, ChecksumError, MirrorError, SignatureError
from bootstrap.family.interface import Job, Target
from bootstrap.family.model import Pin
from bootstrap.host import openpgp
from bootstrap.host.sandbox import Sandbox
from bootstrap.rpm import metalink
from bootstrap.rpm.family import RpmFamily
from bootstrap.rpm.job import RpmJob
from tests.conftest import Serve
from tests.fixtures import rpmdistro
from tests.fixtures.gpg import GpgKey
from tests.fixtures.rpmrepo import GROUP, MINIATURE_INSTALLED, RpmRepo, dnf_install, shared_miniature
from tests.fixtures.shared import made_once
from tests.rpm.conftest import need_tools

ROOT = Path(__file__).resolve().parents[2]
ALMA = rpmdistro.RELEASE_PATH
FEDORA = "releases/44/Everything/x86_64/os"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, gpg_key: GpgKey) -> Path:
    """A tree holding the miniature as AlmaLinux 9's BaseOS, built and signed once; hostile tests copy it."""
    need_tools("rpmbuild", "rpmsign", "createrepo_c", "dnf")
    miniature = shared_miniature(tmp_path_factory, gpg_key).root
    return made_once(
        tmp_path_factory, f"alma-tree-{gpg_key.fingerprint}", lambda d: shutil.copytree(miniature, d / ALMA)
    )


def write_recipe(directory: Path, key: GpgKey, body: str, distribution: str = "almalinux", suite: str = "9") -> Path:
    key.export(directory / "fixture-key.asc", armor=True)
    path = directory / "fixture.toml"
    path.write_text(
        f'distribution = "{distribution}"\nsuite = "{suite}"\n\n[archive]\nkeyring = "fixture-key.asc"\n'
        f'signers = ["{key.fingerprint}"]\n\n{body}'
    )
    return path


def plan_for(directory: Path, mirror: str, key: GpgKey, body: str = "", **kw: str) -> Plan:
    path = write_recipe(
        directory, key, body or f'[packages]\ngroups = ["{GROUP}"]\n\n[rpm]\nrepos = ["baseos"]\n', **kw
    )
    return make_plan(
        recipe.load(str(path), given=True), Options(arch="amd64", mirror=mirror, cache_dir=directory / "c")
    )


@pytest.fixture(scope="module")
def served(built: Path, serve_session: Serve, tmp_path_factory: pytest.TempPathFactory, gpg_key: GpgKey) -> Plan:
    return plan_for(tmp_path_factory.mktemp("recipe"), serve_session(built), gpg_key)


def _nevras(plan: Plan) -> set[str]:
    family = families.family_for(plan)
    selection = family.resolve(family.open("amd64"))
    return {f"{p.name}-{p.version if ':' in p.version else '0:' + p.version}.{p.arch}" for p in selection.packages}


def test_open_gives_the_release_and_its_sources(served: Plan) -> None:
    family = families.family_for(served)
    archive = family.open("amd64")
    assert (family.name, family.origin, archive.codename, archive.suite) == ("rpm", "almalinux", "9", "9")
    assert archive.date == 1700000000 and not archive.insecure
    (source,) = archive.sources
    assert source.dist == "baseos" and source.uri == f"{served.mirror}/{ALMA}/repodata/repomd.xml"
    assert len(source.digest) == 64


@pytest.mark.parametrize(
    ("body", "dnf_args", "exclude", "weak"),
    [
        (f'[packages]\ngroups = ["{GROUP}"]\n', [f"@{GROUP}"], [], False),
        ('[packages]\ninclude = ["rpm-tool"]\n', ["rpm-tool"], [], False),
        ('[packages]\ninclude = ["coreutils", "selinux-policy"]\n', ["coreutils", "selinux-policy"], [], False),
        ('[packages]\ninclude = ["coreutils"]\nexclude = ["libacl"]\n', ["coreutils"], ["libacl"], False),
        (f'[packages]\ngroups = ["{GROUP}"]\n', [f"@{GROUP}"], [], True),
    ],
)
def test_same_set_as_dnf(
    built: Path,
    served: Plan,
    tmp_path: Path,
    gpg_key: GpgKey,
    body: str,
    dnf_args: list[str],
    exclude: list[str],
    weak: bool,
) -> None:
    """The family's resolution from the recipe equals what Debian's dnf installs with the same install_weak_deps
    (false, as most official builds; true, as CentOS Stream 10's installer)."""
    rpm = f'\n[rpm]\nrepos = ["baseos"]\nweak-deps = {str(weak).lower()}\n'
    plan = plan_for(tmp_path, served.mirror, gpg_key, body + rpm)
    expected = dnf_install(f"{served.mirror}/{ALMA}", tmp_path / "root", dnf_args, exclude=exclude, weak=weak)
    assert _nevras(plan) == expected
    if exclude:
        assert any(n.startswith("libacl-ng-") for n in expected)
    assert any(n.startswith("coreutils-doc-") for n in expected) is weak, "the weak dependency, only when asked"


def test_group_set_and_neutral_records(served: Plan) -> None:
    family = families.family_for(served)
    selection = family.resolve(family.open("amd64"))
    assert _nevras(served) == MINIATURE_INSTALLED
    core = selection.by_name()["coreutils"]
    assert (core.purl_type, core.dist, core.version) == ("rpm", "baseos", "1:9.4-5")
    assert core.url == f"{served.mirror}/{ALMA}/{core.filename}"
    assert selection.names() == sorted(selection.names())


def test_pinned_from_a_lock(served: Plan) -> None:
    family = families.family_for(served)
    archive = family.open("amd64")
    selection = family.resolve(archive)
    pins = [Pin(p.name, p.version, p.arch, p.sha256) for p in selection.packages]
    stale = Pin("acl-legacy", "2.2.0-1", "x86_64", "0" * 64)
    again, gone = family.pinned(archive, [*pins, stale])
    assert again.packages == selection.packages and gone == [stale]


def test_fetched_packages_are_verified_then_handed_to_the_job(served: Plan) -> None:
    family = families.family_for(served)
    archive = family.open("amd64")
    selection = family.resolve(archive)
    files = download.fetch_all(selection.packages, served.cache)
    assert isinstance(family, RpmFamily)
    checked = family.verified(family.resolve(archive), files)
    assert set(checked) == set(selection.names())
    # The install steps are reached only once every package passed, with the verified files.
    job = family.job(archive, selection, files, _target(served))
    assert isinstance(job, RpmJob) and dict(job.files) == dict(checked)


def _target(plan: Plan) -> Target:
    return Target(plan.output / "tree", "amd64", 0)


def test_repository_files_point_at_the_mirror(served: Plan) -> None:
    family = families.family_for(served)
    assert isinstance(family, RpmFamily)
    written = family.options("amd64").write
    baseos = written["/etc/yum.repos.d/almalinux-baseos.repo"].decode()
    assert f"baseurl={served.mirror}/$releasever/BaseOS/$basearch/os/\n" in baseos
    assert "gpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-AlmaLinux-9\n" in baseos and "repo_gpgcheck=1\n" in baseos
    assert "enabled=0" in written["/etc/yum.repos.d/almalinux-crb.repo"].decode()
    assert "mirrorlist" not in "".join(v.decode() for v in written.values())


# --- hostile inputs: each a copy of the tree, changed for real, refused before the job -------------------------


def _copy(built: Path, tmp_path: Path, key: GpgKey) -> RpmRepo:
    shutil.copytree(built, tmp_path / "tree")
    return RpmRepo(tmp_path / "tree" / ALMA, key)


def _one_line(exc: BootstrapError) -> None:
    assert "\n" not in exc.message


def _fetch_and_job(plan: Plan) -> Job:
    family = families.family_for(plan)
    archive = family.open("amd64")
    selection = family.resolve(archive)
    files = download.fetch_all(selection.packages, plan.cache)
    return family.job(archive, selection, files, _target(plan))


def _bash(repo: RpmRepo) -> Path:
    (path,) = (repo.root / "Packages").glob("bash-*.x86_64.rpm")
    return path


@pytest.mark.parametrize("change", ["unknown key", "unsigned", "payload"])
def test_hostile_package_is_refused_before_the_job(
    built: Path, tmp_path: Path, gpg_key: GpgKey, other_gpg_key: GpgKey, serve: Serve, change: str
) -> None:
    """The repository's metadata (signed by the right key) lists a package that is not the distribution's."""
    repo = _copy(built, tmp_path, gpg_key)
    bash = _bash(repo)
    if change == "unknown key":
        repo.sign([bash], other_gpg_key)
    elif change == "unsigned":
        subprocess.run(["rpmsign", "--delsign", str(bash)], check=True, capture_output=True)
    else:
        data = bytearray(bash.read_bytes())
        data[-40] ^= 0x01
        bash.write_bytes(bytes(data))
    repo.publish()
    plan = plan_for(tmp_path, serve(tmp_path / "tree"), gpg_key)
    message = {"unknown key": "not in the keyring", "unsigned": "not signed", "payload": "payload does not match"}
    with pytest.raises(SignatureError, match=message[change]) as caught:
        _fetch_and_job(plan)
    assert "bash" in caught.value.message
    _one_line(caught.value)


def _flip_primary(root: Path) -> None:
    primary = root / "repodata" / "primary.xml.xz"
    data = primary.read_bytes()
    primary.write_bytes(data[:100] + bytes([data[100] ^ 1]) + data[101:])


def _raise_revision(root: Path) -> None:
    md = root / "repodata" / "repomd.xml"
    md.write_bytes(md.read_bytes().replace(b"<revision>1700000000<", b"<revision>1800000000<"))


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [(_raise_revision, SignatureError, "bad signature"), (_flip_primary, ChecksumError, "checksum mismatch")],
    ids=["tampered repomd.xml", "metadata file not matching"],
)
def test_tampered_metadata(
    built: Path,
    tmp_path: Path,
    gpg_key: GpgKey,
    serve: Serve,
    change: Callable[[Path], None],
    error: type[BootstrapError],
    message: str,
) -> None:
    change(_copy(built, tmp_path, gpg_key).root)
    plan = plan_for(tmp_path, serve(tmp_path / "tree"), gpg_key)
    family = families.family_for(plan)
    with pytest.raises(error, match=message) as caught:
        family.resolve(family.open("amd64"))  # a metadata file is read (and checked) when first needed
    _one_line(caught.value)


def test_older_revision(built: Path, tmp_path: Path, gpg_key: GpgKey, serve: Serve) -> None:
    repo = _copy(built, tmp_path, gpg_key)
    plan = plan_for(tmp_path, serve(tmp_path / "tree"), gpg_key)
    repo.publish(revision=1700000500)
    family = families.family_for(plan)
    family.resolve(family.open("amd64"))  # a state is the floor once a build has read (and checked) its metadata
    repo.publish(revision=1700000400)
    with pytest.raises(SignatureError, match="rollback") as caught:
        families.family_for(plan).open("amd64")
    _one_line(caught.value)


def test_unsigned_metadata_distribution(built: Path, tmp_path: Path, gpg_key: GpgKey, serve: Serve) -> None:
    """Fedora does not sign repomd.xml: the repository opens on its checksums, each package is still checked."""
    (tmp_path / "tree" / FEDORA).parent.mkdir(parents=True)
    shutil.copytree(built / ALMA, tmp_path / "tree" / FEDORA)
    (tmp_path / "tree" / FEDORA / "repodata" / "repomd.xml.asc").unlink()
    body = f'[packages]\ngroups = ["{GROUP}"]\n\n[rpm]\nrepos = ["fedora"]\n'
    plan = plan_for(tmp_path, serve(tmp_path / "tree"), gpg_key, body, distribution="fedora", suite="44")
    assert _nevras(plan) == MINIATURE_INSTALLED
    assert isinstance(_fetch_and_job(plan), RpmJob)


def _point_record_at(root: Path, name: str, version: str, other: Path, href: str = "") -> None:
    """The mirror's own primary.xml (an unsigned repomd.xml names its checksums): `name`'s record at `version` is
    left as it is but for where its file is (`href`, else `other`'s place), its sha256 and size, which are now
    those of `other`."""
    data = other.read_bytes()
    primary = root / "repodata" / "primary.xml.xz"
    text = lzma.decompress(primary.read_bytes()).decode()
    blocks = text.split('<package type="rpm">')
    (i,) = (i for i, b in enumerate(blocks) if f"<name>{name}</name>" in b and f'ver="{version}"' in b)
    sha256 = hashlib.sha256(data).hexdigest()
    b = re.sub(r'(<checksum type="sha256" pkgid="YES">)[0-9a-f]+', rf"\g<1>{sha256}", blocks[i])
    b = re.sub(r'(<size package=")\d+', rf"\g<1>{len(data)}", b)
    blocks[i] = re.sub(r'(<location href=")[^"]+', rf"\g<1>{href or 'Packages/' + other.name}", b)
    opened = '<package type="rpm">'.join(blocks).encode()
    packed = lzma.compress(opened)
    primary.write_bytes(packed)
    md = root / "repodata" / "repomd.xml"
    text = re.sub(r'<data type="filelists">.*?</data>', "", md.read_text(), flags=re.S)
    start = text.index('<data type="primary">')
    end = text.index("</data>", start)
    block = text[start:end]
    given = {"checksum": hashlib.sha256(packed).hexdigest(), "open-checksum": hashlib.sha256(opened).hexdigest()}
    given |= {"size": str(len(packed)), "open-size": str(len(opened))}
    for tag, value in given.items():
        block = re.sub(rf"(<{tag}[^>]*>)[^<]*(</{tag}>)", rf"\g<1>{value}\g<2>", block)
    md.write_text(text[:start] + block + text[end:])


def test_a_record_pointing_at_another_signed_package_is_refused(
    built: Path, tmp_path: Path, gpg_key: GpgKey, serve: Serve
) -> None:
    """Where no key vouches for the metadata (Fedora's unsigned repomd.xml, no metalink), the mirror lists
    libacl-2.3.2, which bash needs, at the file of the older libacl-2.3.1, genuinely signed: the lock and the
    SBOMs would name 2.3.2 and the image hold 2.3.1. Refused, on every build: the package's signature verdict
    kept by the first does not let the second take the file under that record."""
    root = tmp_path / "tree" / FEDORA
    root.parent.mkdir(parents=True)
    shutil.copytree(built / ALMA, root)
    (root / "repodata" / "repomd.xml.asc").unlink()
    (older,) = (root / "Packages").glob("libacl-2.3.1-*.rpm")
    _point_record_at(root, "libacl", "2.3.2", older)
    body = f'[packages]\ngroups = ["{GROUP}"]\n\n[rpm]\nrepos = ["fedora"]\n'
    plan = plan_for(tmp_path, serve(tmp_path / "tree"), gpg_key, body, distribution="fedora", suite="44")
    for _ in range(2):
        with pytest.raises(SignatureError, match="metadata names") as caught:
            _fetch_and_job(plan)
        assert "libacl-0:2.3.1-1.x86_64" in caught.value.message
        assert "libacl-0:2.3.2-1.x86_64" in caught.value.message
        _one_line(caught.value)


@pytest.mark.parametrize("href", ["../../../../elsewhere/libacl.rpm", "http://127.0.0.1:9/libacl.rpm"])
def test_a_package_location_leaving_the_repository_is_refused(
    built: Path, tmp_path: Path, gpg_key: GpgKey, serve: Serve, href: str
) -> None:
    """A record's file placed outside the repository (up the mirror's tree, or on another host) is refused in one
    line before anything is fetched, as the metadata's own locations are."""
    root = tmp_path / "tree" / FEDORA
    root.parent.mkdir(parents=True)
    shutil.copytree(built / ALMA, root)
    (root / "repodata" / "repomd.xml.asc").unlink()
    (package,) = (root / "Packages").glob("libacl-2.3.2-*.rpm")
    _point_record_at(root, "libacl", "2.3.2", package, href)
    body = f'[packages]\ngroups = ["{GROUP}"]\n\n[rpm]\nrepos = ["fedora"]\n'
    plan = plan_for(tmp_path, serve(tmp_path / "tree"), gpg_key, body, distribution="fedora", suite="44")
    family = families.family_for(plan)
    with pytest.raises(ChecksumError, match="leaves the repository") as caught:
        family.resolve(family.open("amd64"))
    assert "libacl-0:2.3.2-1.x86_64" in caught.value.message
    _one_line(caught.value)


def metalink_doc(
    current: bytes,
    *alternates: bytes,
    kinds: tuple[str, ...] = ("md5", "sha256"),
    mirrors: tuple[tuple[str, int], ...] = (("http://127.0.0.1:9", 100),),
) -> str:
    """A metalink as MirrorManager serves one: repomd.xml's size and digests, those of earlier states, and the
    mirrors serving it (base URL, preference)."""

    def state(data: bytes) -> str:
        hashes = "".join(f'<hash type="{k}">{hashlib.new(k, data).hexdigest()}</hash>' for k in kinds)
        return f"<mm0:timestamp>1</mm0:timestamp><size>{len(data)}</size><verification>{hashes}</verification>"

    alts = "".join(f"<mm0:alternate>{state(a)}</mm0:alternate>" for a in alternates)
    urls = "".join(
        f'<url protocol="{m.split(":")[0]}" preference="{p}">{m}/repodata/repomd.xml</url>' for m, p in mirrors
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<metalink version="3.0" xmlns="http://www.metalinker.org/" '
        'xmlns:mm0="http://fedorahosted.org/mirrormanager" type="dynamic"><files><file name="repomd.xml">'
        f"{state(current)}<mm0:alternates>{alts}</mm0:alternates>"
        f"<resources>{urls}</resources></file></files></metalink>\n"
    )


def test_a_metalink_vouches_for_the_unsigned_repomd_and_the_image_names_it(
    built: Path, tmp_path: Path, gpg_key: GpgKey, serve: Serve
) -> None:
    """Fedora's repository files name a metalink; with the user's service (`rpm.metalink`), repomd.xml must be a
    state it gives (an alternate counts: a mirror a state behind), and the image's fedora.repo names that metalink
    instead of a baseurl. A repomd.xml the metalink does not give is refused, in one line."""
    tree = tmp_path / "tree"
    (tree / FEDORA).parent.mkdir(parents=True)
    shutil.copytree(built / ALMA, tree / FEDORA)
    repomd = (tree / FEDORA / "repodata/repomd.xml").read_bytes()
    (tree / "metalink").write_text(metalink_doc(b"a newer state", repomd))
    url = serve(tree)
    body = f'[packages]\ngroups = ["{GROUP}"]\n\n[rpm]\nrepos = ["fedora"]\nmetalink = "{url}/metalink"\n'
    plan = plan_for(tmp_path, url, gpg_key, body, distribution="fedora", suite="44")
    assert _nevras(plan) == MINIATURE_INSTALLED
    family = families.family_for(plan)
    assert isinstance(family, RpmFamily)
    repo = family.options("amd64").write["/etc/yum.repos.d/fedora.repo"].decode()
    assert f"metalink={url}/metalink?repo=fedora-$releasever&arch=$basearch\n" in repo and "baseurl" not in repo
    (tree / "metalink").write_text(metalink_doc(b"a newer state", b"an older one"))
    with pytest.raises(ChecksumError, match="matches neither the state nor the alternates") as caught:
        family.open("amd64")
    _one_line(caught.value)
    (tree / "metalink").write_text(metalink_doc(repomd, kinds=("md5", "sha1")))
    with pytest.raises(ChecksumError, match="gives no sha256 or sha512"):
        family.open("amd64")


def test_without_a_mirror_the_metalinks_mirrors_serve_the_repository(
    built: Path, tmp_path: Path, gpg_key: GpgKey, serve: Serve
) -> None:
    """No --mirror, a metalink service named: its mirrors are tried most preferred first, as dnf tries them. One
    that cannot be reached and one a state behind give way to the next; the packages come from the mirror that
    served the metadata (the lock names it); offline, the same mirror's cached state serves."""
    good, stale = tmp_path / "good", tmp_path / "stale"
    for tree in (good, stale):
        (tree / FEDORA).parent.mkdir(parents=True)
        shutil.copytree(built / ALMA, tree / FEDORA)
    repomd = (good / FEDORA / "repodata/repomd.xml").read_bytes()
    (stale / FEDORA / "repodata/repomd.xml").write_bytes(repomd.replace(b"<revision>", b"<revision>0"))
    good_url, stale_url = serve(good), serve(stale)
    service = tmp_path / "service"
    service.mkdir()
    mirrors = (("http://127.0.0.1:9", 100), (f"{stale_url}/{FEDORA}", 90), (f"{good_url}/{FEDORA}", 50))
    (service / "metalink").write_text(metalink_doc(repomd, mirrors=mirrors))
    body = f'[packages]\ngroups = ["{GROUP}"]\n\n[rpm]\nrepos = ["fedora"]\nmetalink = "{serve(service)}/metalink"\n'
    path = write_recipe(tmp_path, gpg_key, body, distribution="fedora", suite="44")
    plan = make_plan(recipe.load(str(path), given=True), Options(arch="amd64", cache_dir=tmp_path / "c"))
    assert plan.mirror == ""
    family = families.family_for(plan)
    archive = family.open("amd64")
    (source,) = archive.sources
    assert source.mirror == f"{good_url}/{FEDORA}"
    selection = family.resolve(archive)
    assert selection.packages and all(p.url.startswith(f"{good_url}/{FEDORA}/") for p in selection.packages)
    files = download.fetch_all(selection.packages, plan.cache)
    offline = make_plan(
        recipe.load(str(path), given=True), Options(arch="amd64", cache_dir=tmp_path / "c", offline=True)
    )
    (cached,) = families.family_for(offline).open("amd64").sources
    assert cached.mirror == source.mirror and len(files) == len(selection.packages)


def test_the_metalink_service_is_the_users_and_only_where_the_distribution_has_one(
    tmp_path: Path, gpg_key: GpgKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    """$BOOTSTRAP_<DISTRO>_METALINK comes before the recipe's; CentOS Stream's queries carry its `$stream`; AlmaLinux
    names a mirror list, not a metalink: naming one is a one-line error."""
    monkeypatch.setenv("BOOTSTRAP_CENTOS_STREAM_METALINK", "https://metalink.invalid/metalink")
    body = '[rpm]\nmetalink = "https://other.invalid/metalink"\n'
    plan = plan_for(tmp_path, "http://127.0.0.1:9", gpg_key, body, distribution="centos-stream", suite="10")
    family = families.family_for(plan)
    assert isinstance(family, RpmFamily)
    repo = family.options("amd64").write["/etc/yum.repos.d/centos.repo"].decode()
    assert "metalink=https://metalink.invalid/metalink?repo=centos-baseos-$stream&arch=$basearch" in repo
    with pytest.raises(BootstrapError, match="name no metalink") as caught:
        families.family_for(plan_for(tmp_path, "http://127.0.0.1:9", gpg_key, body))
    _one_line(caught.value)
    monkeypatch.setenv("BOOTSTRAP_CENTOS_STREAM_METALINK", "http://metalink.invalid/metalink")
    with pytest.raises(MirrorError, match="plain http") as caught:
        families.family_for(plan_for(tmp_path, "http://127.0.0.1:9", gpg_key, body, distribution="centos-stream"))
    _one_line(caught.value)


def test_a_malformed_metalink_is_a_one_line_error_or_read_as_far_as_it_is_sound() -> None:
    """Numbers Python would choke on (a superscript digit, 5000 digits) are no size or preference; an encoding
    Python does not know is a malformed document."""
    doc = metalink_doc(b"repomd").replace("<size>6</size>", "<size>\u00b2</size>")
    doc = doc.replace('preference="100"', f'preference="{"9" * 5000}"')
    parsed = metalink.parse(doc.encode(), "m")
    assert parsed.states[0].size is None and parsed.states[0].matches(b"repomd")
    assert parsed.mirrors == ("http://127.0.0.1:9",)
    bogus = doc.replace('encoding="utf-8"', 'encoding="bogus"').encode()
    with pytest.raises(ChecksumError, match="not well-formed") as caught:
        metalink.parse(bogus, "m")
    _one_line(caught.value)


# --- plans of the shipped recipes, and what a plan refuses -----------------------------------------------------

RPM_RECIPES = [
    "almalinux",
    "almalinux-minimal",
    "almalinux-micro",
    "rockylinux",
    "rockylinux-minimal",
    "fedora",
    "fedora-minimal",
    "centos-stream",
    "centos-stream-minimal",
]


@pytest.mark.parametrize("name", RPM_RECIPES)
def test_every_pinned_signer_is_a_key_of_the_shipped_key_file(name: str) -> None:
    """A typo in a pinned fingerprint, or a key file swapped, shows here rather than first against a real mirror:
    each full fingerprint the recipe pins is a key (or subkey) of the key file shipped beside it."""
    r = recipe.load(name)
    assert r.archive_keyring and r.archive_signers
    held = openpgp.fingerprints(Path(r.archive_keyring))
    assert all(len(f) == 40 for f in r.archive_signers)
    assert set(r.archive_signers) <= held, sorted(set(r.archive_signers) - held)


@pytest.mark.parametrize("name", RPM_RECIPES)
def test_every_shipped_rpm_recipe_makes_a_plan(name: str, tmp_path: Path) -> None:
    r = recipe.load(name)
    plan = make_plan(r, Options(arch="amd64", mirror="http://127.0.0.1:9/tree", cache_dir=tmp_path))
    assert families.family_for(plan).name == "rpm"
    assert plan.signers == frozenset(r.archive_signers) and len(plan.signers) >= 1
    assert plan.suite in families.DISTROS[r.distribution].codenames
    family = families.family_for(plan)
    assert isinstance(family, RpmFamily)
    options = family.options("amd64")
    assert (options.nodocs, options.install_langs, options.scripts) == (True, r.install_langs, True)
    assert options.remove == r.rpm_remove and {k: v.encode() for k, v in r.rpm_write}.items() <= options.write.items()
    repos = [v.decode() for k, v in options.write.items() if k.startswith("/etc/yum.repos.d/")]
    assert repos and all("baseurl=http://127.0.0.1:9/tree/" in text for text in repos)


def test_no_mirror_names_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BOOTSTRAP_ALMALINUX_MIRROR", raising=False)
    with pytest.raises(MirrorError, match="no almalinux mirror given") as caught:
        make_plan(recipe.load("almalinux"), Options(arch="amd64", cache_dir=tmp_path))
    assert "BOOTSTRAP_ALMALINUX_MIRROR" in caught.value.hint and "--mirror" in caught.value.hint
    monkeypatch.setenv("BOOTSTRAP_ALMALINUX_MIRROR", "http://127.0.0.1:9/alma/")
    assert make_plan(recipe.load("almalinux"), Options(arch="amd64", cache_dir=tmp_path)).mirror.endswith("/alma")


def test_the_mirror_comes_from_the_flag_then_the_environment_then_the_recipe(
    tmp_path: Path, gpg_key: GpgKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BOOTSTRAP_ALMALINUX_MIRROR", raising=False)
    body = f'[packages]\ngroups = ["{GROUP}"]\n\n[rpm]\nrepos = ["baseos"]\nmirror = "http://127.0.0.1:9/recipe/"\n'
    r = recipe.load(str(write_recipe(tmp_path, gpg_key, body)), given=True)

    def mirror(flag: str | None) -> str:
        return make_plan(r, Options(arch="amd64", mirror=flag, cache_dir=tmp_path / "c")).mirror

    assert mirror(None) == "http://127.0.0.1:9/recipe"
    monkeypatch.setenv("BOOTSTRAP_ALMALINUX_MIRROR", "http://127.0.0.1:9/env")
    assert mirror(None) == "http://127.0.0.1:9/env"
    assert mirror("http://127.0.0.1:9/flag") == "http://127.0.0.1:9/flag"


def test_unknown_release_and_architecture(tmp_path: Path) -> None:
    with pytest.raises(BootstrapError, match="no release '8'"):
        make_plan(
            recipe.load("almalinux"), Options(suite="8", arch="amd64", mirror="http://127.0.0.1:9", cache_dir=tmp_path)
        )
    plan = make_plan(recipe.load("almalinux"), Options(arch="armhf", mirror="http://127.0.0.1:9", cache_dir=tmp_path))
    with pytest.raises(BootstrapError, match="not built for 'armhf'"):
        families.family_for(plan).open("armhf")


def test_command_line_resolve_lock_and_build_from_the_lock(
    built: Path, served: Plan, tmp_path: Path, gpg_key: GpgKey
) -> None:
    """`bootstrap resolve` and `lock` on an RPM recipe, then a build from the lock: it fetches and verifies every
    package and unpacks them; the miniature's programs are stand-ins (no /bin/sh), so its scriptlets cannot run:
    one line, exit 1, nothing half-written."""
    path = write_recipe(tmp_path, gpg_key, f'[packages]\ngroups = ["{GROUP}"]\n\n[rpm]\nrepos = ["baseos"]\n')
    common = ["--arch", "amd64", "--mirror", served.mirror, "--cache-dir", str(tmp_path / "c")]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "bootstrap", *args], capture_output=True, text=True, cwd=ROOT)

    listed = run("resolve", str(path), *common)
    assert listed.returncode == 0, listed.stderr
    assert {line.split("\t")[0] for line in listed.stdout.splitlines()} == {
        n.split("-0:")[0].split("-1:")[0] for n in MINIATURE_INSTALLED
    }
    lock = tmp_path / "fixture.lock.json"
    locked = run("lock", str(path), *common, "-o", str(lock))
    assert locked.returncode == 0, locked.stderr
    data = json.loads(lock.read_text())
    assert data["suite"] == "9" and len(data["packages"]) == len(MINIATURE_INSTALLED)
    build = run("build", str(path), *common, "--lock", str(lock), "-o", str(tmp_path / "out"))
    assert build.returncode == 1
    assert "\nerror: the scriptlets could not run: bootstrap sandbox: cannot run /bin/sh" in build.stderr, build.stderr
    assert not (tmp_path / "out").exists(), "nothing half-written"


@pytest.mark.parametrize("body", ['[rpm]\nremove = ["var/log"]\n', '[rpm.write]\n"/etc/../x" = ""\n'])
def test_rpm_paths_must_be_absolute(tmp_path: Path, gpg_key: GpgKey, body: str) -> None:
    with pytest.raises(BootstrapError, match="is not an absolute path"):
        recipe.load(str(write_recipe(tmp_path, gpg_key, body)), given=True)


def test_exclusions_for_one_release(served: Plan, tmp_path: Path, gpg_key: GpgKey) -> None:
    """[release.<codename>]: the release built (9) keeps libacl out, so coreutils takes libacl-ng; the plan's recipe
    is that release's, as the build records it."""
    body = (
        '[packages]\ninclude = ["coreutils"]\n\n[release."9".packages]\nexclude = ["libacl"]\n\n'
        '[release."10".packages]\nexclude = ["libacl-ng"]\n'
    )
    plan = plan_for(tmp_path, served.mirror, gpg_key, body + '\n[rpm]\nrepos = ["baseos"]\n')
    names = {n.rsplit("-", 2)[0] for n in _nevras(plan)}
    assert "libacl-ng" in names and "libacl" not in names
    assert plan.suite == "9" and "libacl" in plan.recipe.exclude and "libacl-ng" not in plan.recipe.exclude
    assert plan.recipe.releases == () and "release" not in plan.recipe.as_dict()


def test_offline_from_the_cache(built: Path, tmp_path: Path, gpg_key: GpgKey, serve: Serve) -> None:
    """--offline: the repository state verified before, and the packages fetched before, from the cache alone."""
    shutil.copytree(built, tmp_path / "tree")
    mirror = serve(tmp_path / "tree")
    online = plan_for(tmp_path, mirror, gpg_key)
    _nevras(online)
    family = families.family_for(online)
    download.fetch_all(family.resolve(family.open("amd64")).packages, online.cache)
    shutil.rmtree(tmp_path / "tree")
    path = tmp_path / "fixture.toml"
    options = Options(arch="amd64", mirror=mirror, cache_dir=tmp_path / "c", offline=True)
    offline = make_plan(recipe.load(str(path), given=True), options)
    assert _nevras(offline) == MINIATURE_INSTALLED
    assert isinstance(_fetch_and_job(offline), RpmJob)


def test_command_line_builds_an_image_of_real_programs(
    tmp_path: Path, gpg_key: GpgKey, serve: Serve, rpm_distro_tree: Path
) -> None:
    """The miniature with real programs (the host's shell, coreutils and rpm, packaged and signed) as AlmaLinux 9's
    BaseOS: `bootstrap build` makes the image; its own rpm lists exactly the set and verifies it clean."""
    include = ", ".join(f'"{n}"' for n in rpmdistro.REQUEST)
    path = write_recipe(tmp_path, gpg_key, f'[packages]\ninclude = [{include}]\n\n[rpm]\nrepos = ["baseos"]\n')
    common = ["--arch", "amd64", "--mirror", serve(rpm_distro_tree), "--cache-dir", str(tmp_path / "c")]
    out = tmp_path / "out"
    build = subprocess.run(
        [sys.executable, "-m", "bootstrap", "build", str(path), *common, "-o", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert build.returncode == 0, build.stderr
    (rootfs,) = out.glob("rootfs.tar*")
    tree = tmp_path / "image"
    tree.mkdir()
    # the file capabilities the layer carries (coreutils' ls-net), set back as a container runtime does
    subprocess.run(["tar", "-xf", str(rootfs), "-C", str(tree), "--xattrs", "--xattrs-include=security.*"], check=True)
    env = {"PATH": "/usr/bin", "LC_ALL": "C"}
    listed = Sandbox(tree).run(["/usr/bin/rpm", "-qa", "--qf", "%{NAME}\\n"], env)
    assert sorted(listed.stdout.split()) == sorted(rpmdistro.INSTALLED), listed.stdout
    verified = Sandbox(tree).run(["/usr/bin/rpm", "-V", "-a"], env)
    assert verified.returncode == 0, verified.stdout


@pytest.mark.parametrize(
    ("name", "suite", "dbpath"),
    [
        ("almalinux", "9", "/var/lib/rpm"),
        ("almalinux", "10", "/usr/lib/sysimage/rpm"),
        ("rockylinux", "9", "/var/lib/rpm"),
        ("centos-stream", "stream10", "/usr/lib/sysimage/rpm"),
        ("fedora", "previous", "/usr/lib/sysimage/rpm"),
    ],
)
def test_the_tree_gets_its_releases_database_path(name: str, suite: str, dbpath: str, tmp_path: Path) -> None:
    plan = make_plan(
        recipe.load(name), Options(suite=suite, arch="amd64", mirror="http://127.0.0.1:9", cache_dir=tmp_path)
    )
    family = families.family_for(plan)
    assert isinstance(family, RpmFamily)
    assert family.options("amd64").dbpath == dbpath


def test_a_set_resolved_before_is_taken_from_the_cache_for_the_same_states_and_request_only(
    built: Path, tmp_path: Path, gpg_key: GpgKey, serve: Serve
) -> None:
    """A second resolve of the same repository state and request takes the set the first kept (no listing read, no
    pool solved); another request, a new repository state, a kept set changed in the cache (not proven by the
    user's key), or a build that takes nothing derived resolves again, and gets what a fresh resolve gets."""
    repo = _copy(built, tmp_path, gpg_key)
    mirror = serve(tmp_path / "tree")
    plan = plan_for(tmp_path, mirror, gpg_key)

    def resolve(plan: Plan) -> tuple[object, bool]:
        family = families.family_for(plan)
        archive = family.open("amd64")
        selection = family.resolve(archive)
        read = [r.listing_read for _, r in archive.repositories]  # type: ignore[attr-defined]
        return selection, all(read)

    first, read = resolve(plan)
    assert read, "the first resolve reads the listing"
    (kept,) = (tmp_path / "c" / "parsed").glob("*.resolved")
    assert resolve(plan) == (first, False), "taken from the cache, no listing read"

    coreutils = plan_for(
        tmp_path, mirror, gpg_key, '[packages]\ninclude = ["coreutils"]\n\n[rpm]\nrepos = ["baseos"]\n'
    )
    other, read = resolve(coreutils)
    assert read and other != first and len(list((tmp_path / "c" / "parsed").glob("*.resolved"))) == 2
    assert resolve(coreutils) == (other, False)

    raw = bytearray(kept.read_bytes())
    raw[-20] ^= 0x01
    kept.write_bytes(bytes(raw))
    assert resolve(plan) == (first, True), "a kept set not proven is resolved again"
    assert resolve(plan) == (first, False), "and kept again"

    fresh = make_plan(
        recipe.load(str(tmp_path / "fixture.toml"), given=True),
        Options(arch="amd64", mirror=mirror, cache_dir=tmp_path / "c", derived_cache=False),
    )
    assert resolve(fresh) == (other, True), "a build that takes nothing derived resolves"

    repo.publish(revision=1700000500)
    assert resolve(plan) == (first, True), "a new repository state is resolved anew"
