"""Mirror URLs: one check for both families and every origin, before anything is fetched or written; and no
redirect from https to plain http, against real servers on 127.0.0.1 (a TLS one with a throwaway CA)."""

import functools
import http.server
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bootstrap.build.recipe import load
from bootstrap.deb.distros import DISTROS as DEB_DISTROS
from bootstrap.deb.distros import Distro as DebDistro
from bootstrap.deb.mirrors import discover
from bootstrap.errors import MirrorError, NetworkError, RecipeError
from bootstrap.family.names import Distro
from bootstrap.host import http as bhttp
from bootstrap.host import mirror_url
from bootstrap.rpm import locate
from bootstrap.rpm.distros import DISTROS as RPM_DISTROS
from bootstrap.rpm.repofiles import repo_files
from tests.fixtures.certs import ca_and_server
from tests.fixtures.server import Server, in_thread

ALMA = RPM_DISTROS[Distro.ALMALINUX]
INJECTED = "http://127.0.0.1:8/m\n[evil]\nbaseurl=http://127.0.0.2/repo\ngpgcheck=0\n"


@pytest.mark.parametrize(
    ("url", "said"),
    [
        (INJECTED, r"the character '\\n'"),
        ("http://127.0.0.1:8/m\r\ngpgcheck=0", r"the character '\\r'"),
        ("http://127.0.0.1:8/m\tx", r"the character '\\t'"),
        ("http://127.0.0.1:8/a b", "the character ' '"),
        ("http://127.0.0.1:8/a\0b", r"the character '\\x00'"),
        ("http://127.0.0.1:8/$releasever/os", "a variable"),
        ("http://127.0.0.1:8/m?x=1", "a query"),
        ("file:///etc/shadow?", "a query"),
        ("http://127.0.0.1:8/m#x", "a fragment"),
        ("http://127.0.0.1:8/%zz/m", "not an escape"),
        ("http://127.0.0.1:8/m%2", "not an escape"),
        ("http://127.0.0.1:8/[x]", "brackets"),
        ("file://elsewhere/srv/m", "no local path"),
        ("file:srv/m", "no local path"),
        ("http:///m", "no host"),
        ("ftp://127.0.0.1/m", "not an http"),
        ("http://[::1", "Invalid IPv6 URL"),
        ("http://127.0.0.1:99999/m", "out of range"),
    ],
)
def test_what_would_not_be_one_plain_url_is_refused(url: str, said: str) -> None:
    with pytest.raises(MirrorError, match=said) as err:
        mirror_url.checked(url, "--mirror")
    assert "\n" not in err.value.message and "(from --mirror) is not valid" in err.value.message


def test_credentials_are_refused_without_being_shown() -> None:
    """A password would be written into the image and every record: refused, the error naming ~/.netrc, which
    the downloads read, and showing no password."""
    with pytest.raises(MirrorError, match="user name or password") as err:
        mirror_url.checked("https://builder:S3CRET@127.0.0.1:8/alma", "$BOOTSTRAP_ALMALINUX_MIRROR")
    assert "S3CRET" not in err.value.message and "builder" not in err.value.message
    assert "'https://***@127.0.0.1:8/alma'" in err.value.message
    assert "~/.netrc (machine 127.0.0.1 login USER password SECRET)" in err.value.hint


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/debian/",
        "https://mirror.example/pub/alma-linux~9/",
        "http://[::1]:8080/debian",
        "file:///srv/mirror%20copy/m",
        "file://localhost/srv/m",
        "https://mirror.example/a;b=c/@latest/(x)",
    ],
)
def test_plain_urls_are_kept_less_their_trailing_slash(url: str) -> None:
    assert mirror_url.checked(url, "--mirror") == url.rstrip("/")


def test_every_origin_of_both_families_is_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write_recipe: Callable[[str], Path]
) -> None:
    """--mirror and the environment for Debian and for the RPM family, the RPM recipe's mirror and metalink,
    and a recipe's extra repository: each refuses the injected line before anything is fetched."""
    debian = DEB_DISTROS[DebDistro.DEBIAN]
    monkeypatch.setenv("BOOTSTRAP_APT_DIR", str(tmp_path / "no-apt"))
    for name in (debian.mirror_env, debian.security_env, ALMA.mirror_env, ALMA.metalink_env):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(MirrorError, match=r"from --mirror\)"):
        discover(debian, INJECTED, None)
    with pytest.raises(MirrorError, match=r"from --security-mirror\)"):
        discover(debian, "http://127.0.0.1:8/debian", INJECTED)
    with pytest.raises(MirrorError, match=r"from --mirror\)"):
        locate.mirror(ALMA, INJECTED, "")
    with pytest.raises(MirrorError, match=r"from the recipe's rpm.mirror\)"):
        locate.mirror(ALMA, None, INJECTED)
    monkeypatch.setenv(ALMA.mirror_env, INJECTED)
    with pytest.raises(MirrorError, match=rf"from \${ALMA.mirror_env}\)"):
        locate.mirror(ALMA, None, "")
    with pytest.raises(MirrorError, match=r"from the recipe's rpm.metalink\)"):
        locate.metalink(RPM_DISTROS[Distro.FEDORA], "https://127.0.0.1:8/metalink?repo=x")
    key = tmp_path / "k.asc"
    key.write_text("")
    recipe = write_recipe(
        'distribution = "debian"\nsuite = "bookworm"\n\n[[repositories]]\n'
        'url = "http://127.0.0.1:8/extra\\nTrusted: yes"\nsuites = ["s"]\nkeyring = "k.asc"\n'
    )
    with pytest.raises(RecipeError, match=r"repositories\[0\].url\) is not valid: it holds the character"):
        load(str(recipe))


@pytest.fixture
def write_recipe(tmp_path: Path) -> Callable[[str], Path]:
    def write(text: str) -> Path:
        path = tmp_path / "recipe.toml"
        path.write_text(text)
        return path

    return write


def test_a_checked_mirror_writes_one_line_each_in_the_images_repository_files() -> None:
    """What the check lets through is written as the official files have it: one `baseurl=` line a
    repository, nothing more."""
    mirror = mirror_url.checked("https://127.0.0.1:8/alma/", "--mirror")
    files = repo_files(ALMA, "9", mirror)
    lines = [line for data in files.values() for line in data.decode().splitlines()]
    sections = [line for line in lines if line.startswith("[")]
    baseurls = [line for line in lines if line.startswith("baseurl=")]
    assert len(baseurls) == len(sections) and all(u.startswith(f"baseurl={mirror}/") for u in baseurls)


@pytest.mark.parametrize(
    ("where", "url"),
    [("rpm.mirror", "file:///etc"), ("rpm.metalink", "file:///etc/hostname"), ("repositories[0].url", "file:///srv")],
)
def test_a_recipes_file_urls_are_confined_to_its_directory(
    write_recipe: Callable[[str], Path], tmp_path: Path, where: str, url: str
) -> None:
    """A file:// URL is a local path a recipe names: inside its own directory or one the user allows, like its
    keyrings and files (a recipe naming file:///etc/shadow? would have it read as repomd.xml)."""
    (tmp_path / "k.asc").write_text("")
    if where.startswith("repositories"):
        text = f'distribution = "debian"\nsuite = "bookworm"\n\n[[repositories]]\nurl = "{url}"\n'
        text += 'suites = ["s"]\nkeyring = "k.asc"\n'
    else:
        text = f'distribution = "almalinux"\nsuite = "9"\n\n[rpm]\n{where.split(".")[1]} = "{url}"\n'
    with pytest.raises(RecipeError, match=rf"{where.replace('[', '.').replace(']', '.')} .* outside the recipe's"):
        load(str(write_recipe(text)))
    inside = tmp_path / "mirror"
    inside.mkdir()
    own = text.replace(url, f"file://{inside}")
    assert load(str(write_recipe(own))) is not None


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


class _Redirect(http.server.BaseHTTPRequestHandler):
    target = ""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:
        self.send_response(302)
        self.send_header("Location", self.target + self.path)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def tls_redirect(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], str]]:
    """`redirect(target)`: the base URL of an https server on 127.0.0.1 (its CA trusted by the downloads) that
    redirects every path to the same path under `target`; with no target, one serving `tmp_path/www`."""
    certs = ca_and_server(tmp_path / "certs")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certs.ca))
    bhttp._local.__dict__.clear()  # sessions are made afresh, with the CA above
    stops = []

    def redirect(target: str) -> str:
        handler: Any = type("Handler", (_Redirect,), {"target": target})
        if not target:
            handler = functools.partial(_Quiet, directory=str(tmp_path / "www"))
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(certs.cert, certs.key)
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
        stops.append(in_thread(httpd))
        return f"https://127.0.0.1:{httpd.server_address[1]}"

    yield redirect
    for stop in stops:
        stop()
    bhttp._local.__dict__.clear()


def test_a_redirect_from_https_to_plain_http_is_refused(tls_redirect: Callable[[str], str], tmp_path: Path) -> None:
    """As apt refuses them: what is asked for over TLS (a metalink, which vouches for metadata no one signs) is
    not taken from a plain http server an https one points at. https to https is followed."""
    (tmp_path / "www").mkdir()
    (tmp_path / "www/metalink").write_text("forged\n")
    with Server(tmp_path / "www") as plain:
        with pytest.raises(NetworkError, match="redirects to http://127.0.0.1:.*/metalink, off https") as err:
            bhttp.fetch_bytes(tls_redirect(plain.url) + "/metalink")
        assert "\n" not in err.value.message and plain.requests == []
        with pytest.raises(NetworkError, match="off https"):  # at any hop
            bhttp.fetch_bytes(tls_redirect(tls_redirect(plain.url)) + "/metalink")
        assert plain.requests == []
    assert bhttp.fetch_bytes(tls_redirect(tls_redirect("")) + "/metalink") == b"forged\n"
