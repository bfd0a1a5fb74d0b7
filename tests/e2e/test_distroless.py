"""Distroless-style images built from the real mirror by an ordinary user, made by the test without
subordinate ids (so no user namespace is possible): they load into Docker and hold what they promise; a
program built here runs in debian-base and speaks TLS to a local server through the image's CA bundle; the
user's build is the root build, byte for byte, and `bootstrap verify` agrees."""

import io
import json
import shutil
import socket
import ssl
import stat
import subprocess
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import bootstrap, need_tool, run, unique_tag
from tests.e2e.users import User, as_user, make_user, remove_user
from tests.fixtures import trivy
from tests.fixtures.certs import ServerCerts, ca_and_server
from tests.fixtures.tars import extract

pytestmark = pytest.mark.e2e

SUITE = "trixie"
TLS_CLIENT = r"""
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int greet(void);

/* GET / over TLS from HOST:PORT, trusting the system's CA store; prints the answer and the verdict. */
int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: tlsget HOST PORT\n"); return 2; }
    printf("greet %d\n", greet());
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL || SSL_CTX_set_default_verify_paths(ctx) != 1) { ERR_print_errors_fp(stderr); return 3; }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    struct addrinfo hints = {0}, *res;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(argv[1], argv[2], &hints, &res) != 0) { fprintf(stderr, "cannot resolve %s\n", argv[1]); return 4; }
    int fd = socket(res->ai_family, res->ai_socktype, res->ai_protocol);
    if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) != 0) { perror("connect"); return 5; }
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    SSL_set_tlsext_host_name(ssl, argv[1]);
    SSL_set1_host(ssl, argv[1]);
    if (SSL_connect(ssl) != 1) {
        printf("verify: %s\n", X509_verify_cert_error_string(SSL_get_verify_result(ssl)));
        return 6;
    }
    const char *request = "GET / HTTP/1.0\r\n\r\n";
    SSL_write(ssl, request, (int)strlen(request));
    char buf[4096];
    int n;
    while ((n = SSL_read(ssl, buf, sizeof buf)) > 0) fwrite(buf, 1, (size_t)n, stdout);
    printf("\nverify: %s\n", X509_verify_cert_error_string(SSL_get_verify_result(ssl)));
    return 0;
}
"""
GREET = "int greet(void) { return 42; }\n"


@pytest.fixture(scope="module")
def plain_user(as_root: None) -> Iterator[User]:
    """An ordinary user with no subordinate ids: a user namespace build is impossible for it."""
    user = make_user("bsdl", subids=False)
    yield user
    remove_user(user)


@pytest.fixture(scope="module")
def user_build(plain_user: User, runtime: tuple[str, Path]) -> Callable[..., Path]:
    """`user_build(recipe, *args)`: the recipe built by the plain user into its home (once per argument list)."""
    built: dict[tuple[str, ...], Path] = {}

    def get(recipe: str, *args: str) -> Path:
        key = (recipe, *args)
        if key not in built:
            out = plain_user.home / f"out-{len(built)}-{Path(recipe).stem}"
            started = time.monotonic()
            proc = as_user(plain_user, runtime, recipe, "--suite", SUITE, "-o", str(out), "-q", *args)
            assert proc.returncode == 0, proc.stderr
            assert proc.stderr == "", "a scriptless build has nothing to warn about"
            print(f"{recipe}: built by {plain_user.name} in {time.monotonic() - started:.1f}s")
            built[key] = out
        return built[key]

    return get


def load(docker: Callable[..., subprocess.CompletedProcess[str]], out: Path, name: str) -> str:
    """Load an image tar under a fresh tag; the docker fixture removes it at the end."""
    loaded = docker("load", "-i", str(out / "image.tar")).stdout
    original = loaded.split("Loaded image:")[-1].strip()
    tag = unique_tag(name)
    docker("tag", original, tag)
    docker.created.extend([tag, original])  # type: ignore[attr-defined]
    return tag


def exported(docker: Callable[..., subprocess.CompletedProcess[str]], image: str) -> tarfile.TarFile:
    """The file system of a container of `image`, as Docker has it."""
    container = docker("create", image, "/nothing").stdout.strip()
    try:
        data = subprocess.run(["docker", "export", container], capture_output=True, check=True).stdout
    finally:
        docker("rm", "-f", container)
    return tarfile.open(fileobj=io.BytesIO(data))


def file_of(tar: tarfile.TarFile, name: str) -> bytes:
    f = tar.extractfile(name)
    assert f is not None, f"{name} is not a file in the image"
    return f.read()


def test_an_ordinary_user_builds_debian_static_and_docker_runs_it(
    user_build: Callable[..., Path], docker: Callable[..., subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    out = user_build("debian-static")
    info = json.loads((out / "build.json").read_text())
    assert info["image"]["tar_size"] <= 3_000_000, f"uncompressed layer {info['image']['tar_size']} bytes"
    image = load(docker, out, "debian-static")
    no_shell = docker("run", "--rm", image, "/bin/sh", "-c", "true", check=False)
    assert no_shell.returncode != 0 and "no such file or directory" in no_shell.stderr.lower(), no_shell.stderr
    tar = exported(docker, image)
    names = set(tar.getnames())
    assert not {"bin/sh", "usr/bin/sh", "bin/bash", "usr/bin/dash", "usr/bin/apt", "usr/bin/dpkg"} & names
    assert not any(n.startswith(("usr/lib/x86_64-linux-gnu/libc.so", "lib/x86_64-linux-gnu/libc.so")) for n in names)
    passwd = file_of(tar, "etc/passwd").decode()
    assert "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin" in passwd.splitlines()
    assert passwd.splitlines()[0] == "root:x:0:0:root:/root:/sbin/nologin"
    assert stat.S_IMODE(tar.getmember("tmp").mode) == 0o1777 and tar.getmember("tmp").isdir()
    home = tar.getmember("home/nonroot")
    assert (home.uid, home.gid, stat.S_IMODE(home.mode)) == (65532, 65532, 0o700)
    utc = "usr/share/zoneinfo/UTC"
    assert utc in names and file_of(tar, "usr/share/zoneinfo/Etc/UTC").startswith(b"TZif")
    bundle = file_of(tar, "etc/ssl/certs/ca-certificates.crt")
    (tmp_path / "bundle.pem").write_bytes(bundle)
    store = ssl.create_default_context(cafile=str(tmp_path / "bundle.pem")).cert_store_stats()
    assert store["x509_ca"] == bundle.count(b"-----BEGIN CERTIFICATE-----") > 100
    packages = [line.split("\t")[0] for line in (out / "packages.txt").read_text().splitlines()]
    assert packages == ["base-files", "ca-certificates", "media-types", "netbase", "tzdata"]
    status = {n.rsplit("/", 1)[1] for n in names if n.startswith("var/lib/dpkg/status.d/")}
    assert status == {*packages, *(f"{p}.md5sums" for p in packages)}
    for p in packages:
        assert file_of(tar, f"var/lib/dpkg/status.d/{p}").startswith(f"Package: {p}\n".encode())
    assert "etc/ld.so.cache" not in names and "etc/localtime" in names
    config = json.loads(docker("image", "inspect", image).stdout)[0]["Config"]
    assert config["User"] == "0" and "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt" in config["Env"]


def test_the_sbom_lists_every_package_with_purl_and_licence(user_build: Callable[..., Path]) -> None:
    out = user_build("debian-static")
    sbom = json.loads((out / "sbom.spdx.json").read_text())
    debs = [p for p in sbom["packages"] if p["SPDXID"].startswith("SPDXRef-Package-deb")]
    packages = (out / "packages.txt").read_text().splitlines()
    assert sorted(p["name"] for p in debs) == [line.split("\t")[0] for line in packages]
    for p in debs:
        purl = p["externalRefs"][0]["referenceLocator"]
        assert purl.startswith(f"pkg:deb/debian/{p['name']}@") and "?arch=" in purl and "&distro=" in purl
        assert p["licenseDeclared"] != "NOASSERTION", f"{p['name']}: no licence found in its copyright file"
    lock = json.loads((out / "lock.json").read_text())
    assert sorted(p["name"] for p in lock["packages"]) == sorted(p["name"] for p in debs)


def test_the_nonroot_variant(
    user_build: Callable[..., Path], docker: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    out = user_build("debian-static-nonroot")
    assert json.loads((out / "build.json").read_text())["build"]["tag"] == f"debian-static:{SUITE}-nonroot"
    config = json.loads(docker("image", "inspect", load(docker, out, "static-nonroot")).stdout)[0]["Config"]
    assert config["User"] == "65532" and config["WorkingDir"] == "/home/nonroot"


def test_the_user_build_is_the_root_build_and_verifies(
    user_build: Callable[..., Path], plain_user: User, runtime: tuple[str, Path], tmp_path: Path
) -> None:
    out = user_build("debian-static")
    again = tmp_path / "root"
    epoch = str(json.loads((out / "lock.json").read_text())["epoch"])
    bootstrap("debian-static", "--suite", SUITE, "-o", str(again), "-q", "--epoch", epoch)
    for name in ("image.tar", "rootfs.tar.gz", "lock.json", "sbom.spdx.json", "packages.txt"):
        assert (again / name).read_bytes() == (out / name).read_bytes(), f"{name} differs from the root build"
    verified = as_user(plain_user, runtime, "verify", str(out))
    assert verified.returncode == 0 and "verified" in verified.stdout, verified.stderr


@pytest.fixture(scope="module")
def tls_files(plain_user: User) -> ServerCerts:
    """A test CA, a server certificate for localhost, and a program (with a library of its own) built here."""
    gcc = need_tool("gcc")
    src = plain_user.home / "src"
    src.mkdir()
    certs = ca_and_server(src / "certs")
    (src / "greet.c").write_text(GREET)
    (src / "tlsget.c").write_text(TLS_CLIENT)
    library, program = str(src / "libgreet.so.1.0"), str(src / "tlsget")
    run([gcc, "-shared", "-fPIC", "-Wl,-soname,libgreet.so.1", "-o", library, str(src / "greet.c")])
    run([gcc, "-O2", "-o", program, str(src / "tlsget.c"), library, "-lssl", "-lcrypto"])
    (plain_user.home / "tls.toml").write_text(
        'extends = "debian-base"\n'
        "[[files]]\n"
        f'source = "{src}/certs/test-ca.crt"\ndest = "/usr/local/share/ca-certificates/test-ca.crt"\n'
        "[[files]]\n"
        f'source = "{src}/tlsget"\ndest = "/usr/local/bin/tlsget"\n'
        "[[files]]\n"
        f'source = "{src}/libgreet.so.1.0"\ndest = "/usr/local/lib/x86_64-linux-gnu/libgreet.so.1.0"\n'
        '[image]\nentrypoint = ["/usr/local/bin/tlsget"]\n'
    )
    for path in [src, *src.rglob("*"), plain_user.home / "tls.toml"]:
        shutil.chown(path, plain_user.uid, plain_user.gid)
    return certs


@pytest.fixture
def tls_server(tls_files: ServerCerts) -> Iterator[int]:
    """openssl s_server on 127.0.0.1 with the test CA's certificate, answering GET / with a status page."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        ["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert", str(tls_files.cert), "-key",
         str(tls_files.key), "-www", "-quiet"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(100):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_debian_base_runs_a_dynamic_program_that_trusts_the_recipe_s_ca(
    user_build: Callable[..., Path],
    plain_user: User,
    tls_server: int,
    docker: Callable[..., subprocess.CompletedProcess[str]],
    tmp_path: Path,
) -> None:
    out = user_build(str(plain_user.home / "tls.toml"))
    image = load(docker, out, "debian-base-tls")
    ok = docker("run", "--rm", "--network", "host", image, "localhost", str(tls_server), check=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "greet 42" in ok.stdout, "libgreet was found through /etc/ld.so.cache"
    assert "HTTP/1.0 200 ok" in ok.stdout and "verify: ok" in ok.stdout
    without = docker(
        "run", "--rm", "--network", "host", "-e", "SSL_CERT_FILE=/usr/share/ca-certificates/mozilla/ISRG_Root_X1.crt",
        image, "localhost", str(tls_server), check=False,
    )  # fmt: skip
    assert without.returncode == 6 and "unable to get local issuer certificate" in without.stdout, without.stdout

    tar = exported(docker, image)
    bundle = file_of(tar, "etc/ssl/certs/ca-certificates.crt")
    assert bundle.endswith((plain_user.home / "src/certs/test-ca.crt").read_bytes()), "local CAs come last"
    root = tmp_path / "tree"
    root.mkdir()
    wanted = [m for m in tar.getmembers() if m.name.startswith(("etc/", "usr/", "lib"))]
    extract(tar, root, wanted, "fully_trusted")
    ours = ldconfig_p(root / "etc/ld.so.cache")
    assert "libgreet.so.1 (libc6,x86-64) => /usr/local/lib/x86_64-linux-gnu/libgreet.so.1" in ours
    assert any(line.startswith("libssl.so.3 ") for line in ours)
    (root / "etc/ld.so.conf").write_text("include /etc/ld.so.conf.d/*.conf\n")
    run(["ldconfig", "-r", str(root), "-X", "-C", "/etc/ld.so.cache.host"])
    assert ours == ldconfig_p(root / "etc/ld.so.cache.host"), "the cache says what ldconfig says"


def ldconfig_p(cache: Path) -> list[str]:
    lines = run(["ldconfig", "-p", "-C", str(cache)]).stdout.splitlines()[1:]
    return [line.strip() for line in lines if not line.startswith("Cache generated by")]


@pytest.mark.parametrize("recipe", ["debian-base", "debian-cc", "debian-base-nonroot", "debian-cc-nonroot"])
def test_the_other_images_build_without_root(
    recipe: str, user_build: Callable[..., Path], docker: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    out = user_build(recipe)
    packages = {line.split("\t")[0] for line in (out / "packages.txt").read_text().splitlines()}
    assert {"libc6", "libssl3t64", "base-files", "tzdata"} <= packages and "debconf" not in packages
    assert ("libstdc++6" in packages) == recipe.startswith("debian-cc")
    tar = exported(docker, load(docker, out, recipe))
    names = set(tar.getnames())
    assert "etc/ld.so.cache" in names and "usr/bin/sh" not in names
    info = json.loads((out / "build.json").read_text())
    print(f"{recipe}: layer {info['image']['layer_size']} bytes gzip, {info['image']['tar_size']} bytes tar")


def test_trivy_reads_every_package_of_the_sboms(user_build: Callable[..., Path], tmp_path: Path) -> None:
    """debian-static has no dpkg, but its SBOMs name the operating system its os-release names."""
    found = trivy.check_build(user_build("debian-static"), tmp_path / "trivy-cache", "debian", "13")
    print(f"trivy {trivy.version()}: debian-static {SUITE}: {found} packages")
