"""The HTTP module against a real server on 127.0.0.1 that misbehaves the way broken or hostile mirrors do:
bodies labelled with a Content-Encoding, bodies longer than the signed index says, bodies that never end."""

from __future__ import annotations

import dataclasses
import gzip
import http.server
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bootstrap.build.download import fetch_all
from bootstrap.deb import index, release
from bootstrap.host import http as bhttp
from bootstrap.host.cache import Cache
from tests.fixtures.gpg import GpgKey
from tests.fixtures.leftovers import temp_files
from tests.fixtures.records import package
from tests.fixtures.repo import Repo
from tests.fixtures.server import Server

MiB = 1 << 20
BLOCK = 64 << 10


@dataclass
class Route:
    """What the server answers for one path: `total` bytes of `body` repeated, framed by Content-Length,
    chunked transfer encoding, or the end of the connection."""

    body: bytes
    total: int
    framing: str = "length"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Served:
    sent: int = 0
    done: threading.Event = field(default_factory=threading.Event)


class Mirror:
    """A server on 127.0.0.1 answering each path as its Route says; records what it sent and was asked."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.served: dict[str, Served] = {}
        self.request_headers: list[dict[str, str]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def do_GET(self) -> None:
                outer.request_headers.append(dict(self.headers))
                outer.answer(self)

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def answer(self, h: http.server.BaseHTTPRequestHandler) -> None:
        route = self.routes[h.path]
        served = self.served[h.path] = Served()
        h.send_response(200)
        for k, v in route.headers.items():
            h.send_header(k, v)
        if route.framing == "length":
            h.send_header("Content-Length", str(route.total))
        elif route.framing == "chunked":
            h.send_header("Transfer-Encoding", "chunked")
        else:
            h.send_header("Connection", "close")
            h.close_connection = True
        h.end_headers()
        data = (route.body * (BLOCK // len(route.body) + 1))[:BLOCK] if len(route.body) < route.total else route.body
        try:
            while served.sent < route.total:
                piece = data[: route.total - served.sent]
                if route.framing == "chunked":
                    h.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                else:
                    h.wfile.write(piece)
                served.sent += len(piece)
            if route.framing == "chunked":
                h.wfile.write(b"0\r\n\r\n")
            h.wfile.flush()
        except OSError:
            h.close_connection = True
        finally:
            served.done.set()

    def sent(self, path: str) -> int:
        """Bytes the last answer for `path` got out before the client hung up (or all of them)."""
        served = self.served[path]
        assert served.done.wait(30), f"the server is still sending {path}"
        return served.sent

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def mirror() -> Iterator[Mirror]:
    m = Mirror()
    yield m
    m.stop()


def _leftovers(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())


@pytest.mark.parametrize("encode", [gzip.compress, zlib.compress], ids=["gzip", "deflate"])
def test_bodies_are_stored_as_sent_whatever_their_content_encoding(
    mirror: Mirror, tmp_path: Path, encode: Callable[[bytes], bytes]
) -> None:
    packed = encode(b"Package: hello\nVersion: 1.0\n\n" * 50)
    label = "gzip" if encode is gzip.compress else "deflate"
    mirror.routes["/dists/x/main/binary-amd64/Packages.gz"] = Route(
        packed, len(packed), headers={"Content-Encoding": label, "Content-Type": "application/gzip"}
    )
    url = f"{mirror.url}/dists/x/main/binary-amd64/Packages.gz"
    assert bhttp.fetch_bytes(url) == packed
    dest = tmp_path / "Packages.gz"
    bhttp.download(url, dest, size=len(packed))
    assert dest.read_bytes() == packed
    assert all(h.get("Accept-Encoding") == "identity" for h in mirror.request_headers)


@pytest.mark.parametrize("framing", ["length", "chunked", "close"])
def test_a_body_longer_than_the_index_says_is_cut_off(mirror: Mirror, tmp_path: Path, framing: str) -> None:
    total = 64 * MiB
    mirror.routes["/pool/big.deb"] = Route(b"\0", total, framing)
    dest = tmp_path / "out" / "big.deb"
    dest.parent.mkdir()
    with pytest.raises(bhttp.TooLarge) as info:
        bhttp.download(f"{mirror.url}/pool/big.deb", dest, size=MiB)
    assert f"{mirror.url}/pool/big.deb" in info.value.message and "\n" not in info.value.message
    assert "1048576 bytes its signed index gives" in info.value.message and info.value.hint
    assert _leftovers(tmp_path / "out") == []
    assert mirror.sent("/pool/big.deb") < total


def test_files_of_unknown_size_are_capped(mirror: Mirror, tmp_path: Path) -> None:
    total = bhttp.MAX_UNSIZED + 48 * MiB
    mirror.routes["/dists/x/InRelease"] = Route(b"Origin: endless\n", total, "chunked")
    with pytest.raises(bhttp.TooLarge, match=f"more than {bhttp.MAX_UNSIZED} bytes"):
        bhttp.download(f"{mirror.url}/dists/x/InRelease", tmp_path / "InRelease")
    assert _leftovers(tmp_path) == []
    assert mirror.sent("/dists/x/InRelease") < total
    mirror.routes["/dists/y/InRelease"] = Route(b"Origin: endless\n", total, "close")
    with pytest.raises(bhttp.TooLarge):
        bhttp.fetch_bytes(f"{mirror.url}/dists/y/InRelease")
    assert mirror.sent("/dists/y/InRelease") < total


def test_an_oversized_package_leaves_nothing_in_the_cache(mirror: Mirror, cache: Cache) -> None:
    total = 64 * MiB
    mirror.routes["/pool/hello.deb"] = Route(b"!", total, "chunked")
    pkg = dataclasses.replace(package("hello"), mirror=mirror.url, filename="pool/hello.deb", size=4096)
    with pytest.raises(bhttp.TooLarge, match="hello.deb"):
        fetch_all([pkg.neutral()], cache)
    assert temp_files(cache.root) == [] and _leftovers(cache.root / "sha256") == []
    assert mirror.sent("/pool/hello.deb") < total


def test_an_index_file_longer_than_the_release_says_is_cut_off(tmp_path: Path, gpg_key: GpgKey, cache: Cache) -> None:
    repo = Repo(tmp_path / "repo", gpg_key)
    repo.add_dist("fixture", "stable", by_hash=False)
    repo.add_package("fixture", "hello", "1.0")
    repo.publish()
    packages = repo.dist_dir("fixture") / "main" / "binary-amd64" / "Packages.gz"
    with open(packages, "ab") as f:
        f.write(b"\0" * (4 * MiB))
    with Server(repo.root) as server:
        rel = release.fetch(server.url, "fixture", (repo.keyring,))
        with pytest.raises(bhttp.TooLarge, match="Packages.gz"):
            index.load(cache, rel, "main", "amd64")
    assert temp_files(cache.root) == [] and _leftovers(cache.root / "sha256") == []


def test_a_local_file_larger_than_announced_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "big.deb"
    source.write_bytes(b"x" * 2000)
    with pytest.raises(bhttp.TooLarge):
        bhttp.download(source.as_uri(), tmp_path / "copy.deb", size=1000)
    assert not (tmp_path / "copy.deb").exists()
    bhttp.download(source.as_uri(), tmp_path / "copy.deb", size=2000)
    assert (tmp_path / "copy.deb").read_bytes() == source.read_bytes()
