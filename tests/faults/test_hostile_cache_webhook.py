"""Hostile cases of the cache's growth and of webhooks, made for real.

Cache: scriptless builds (no root needed, seconds each) from a signed fixture archive on 127.0.0.1 fill a real
cache; `bootstrap cache info` and `bootstrap cache prune` run on it, once while another build is paused between
its download and its unpack; the cap after a build is set with --cache-max.

Webhooks: real receivers on 127.0.0.1 (raw sockets where the answer itself is the attack): one that drips its
answer a byte a second, redirects of every kind, an 800 MB answer, a URL holding a password, and a delivery
captured and played again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bootstrap.host import prune
from bootstrap.publish import webhook
from tests.e2e.conftest import ROOT
from tests.faults.conftest import Case, cli, env_for
from tests.fixtures.gpg import GpgKey
from tests.fixtures.peak import measured, peak
from tests.fixtures.repo import Repo, made_repo
from tests.fixtures.server import in_thread

pytestmark = [pytest.mark.faults]

EPOCH = 1_750_000_000
RECIPE = """\
scripts = false
[packages]
priorities = []
essential = false
include = [{include}]
[image]
tag = "fixture-cache:{{codename}}"
cmd = []
"""
BULKY = 3 << 20
"""Bytes of incompressible data in the package only the `bulky` recipe has."""
COMPARED = ("image.tar", "rootfs.tar.gz", "packages.txt")


# --- the cache -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scene:
    work: Path
    args: tuple[str, ...]
    bulky_sha256: str

    def recipe(self, name: str) -> str:
        return str(self.work / f"{name}.toml")

    def argv(self, name: str, out: Path, cache: Path, *extra: str) -> list[str]:
        return ["build", self.recipe(name), "-o", str(out), "-q", *self.args, "--cache-dir", str(cache), *extra]

    def build(
        self, name: str, out: Path, cache: Path, *extra: str, timeout: float = 120, **env: str
    ) -> subprocess.CompletedProcess[str]:
        scratch = out.parent / f"{out.name}-tmp"
        scratch.mkdir(parents=True, exist_ok=True)
        return cli(*self.argv(name, out, cache, *extra), env=env_for(scratch, **env), timeout=timeout)


def _fill_scene(repo: Repo) -> None:
    repo.debian_dists()
    repo.add_package(
        "fixture", "base-files", "13",
        files={"/usr/lib/os-release": "ID=debian\nVERSION_CODENAME=fixture\n"},
        symlinks={"/etc/os-release": "../usr/lib/os-release"},
    )  # fmt: skip
    repo.add_package("fixture", "bulky", "1", files={"/usr/share/bulky/data": os.urandom(BULKY)})


@pytest.fixture(scope="module")
def scene(gpg_key: GpgKey, serve_session: Callable[[Path], str], tmp_path_factory: pytest.TempPathFactory) -> Scene:
    """A fixture archive: base-files, and a package of 3 MiB of random bytes that only `bulky` installs."""
    work = tmp_path_factory.mktemp("cache-scene")
    repo = made_repo(tmp_path_factory, "cache-scene", gpg_key, _fill_scene)
    bulky = next((repo.root / "pool").rglob("bulky_*.deb"))
    url = serve_session(repo.root)
    (work / "small.toml").write_text(RECIPE.format(include='"base-files"'))
    (work / "bulky.toml").write_text(RECIPE.format(include='"base-files", "bulky"'))
    args = ("--mirror", url, "--security-mirror", url, "--keyring", str(repo.keyring), "--epoch", str(EPOCH))
    return Scene(work, args, hashlib.sha256(bulky.read_bytes()).hexdigest())


@pytest.fixture(scope="module")
def small_reference(scene: Scene, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `small` recipe built alone into a cache of its own."""
    root = tmp_path_factory.mktemp("small-reference")
    proc = scene.build("small", root / "out", root / "cache")
    assert proc.returncode == 0, proc.stderr
    return root / "out"


def cache_files(cache: Path) -> dict[Path, os.stat_result]:
    """Every file of the pruned areas."""
    return {p: p.stat() for area in prune.PRUNED for p in (cache / area).rglob("*") if p.is_file()}


def mark_time(where: Path) -> int:
    """The file system's clock now (ns), as the mtime of a new file (the clock cache entries are marked with)."""
    where.write_text("")
    return where.stat().st_mtime_ns


def bootstrap_cache(*args: str) -> subprocess.CompletedProcess[str]:
    return cli("cache", *args, env=env_for(Path("/tmp")), timeout=60)


def two_builds(scene: Scene, root: Path, *second: str) -> tuple[Path, int, dict[Path, os.stat_result]]:
    """`bulky` then `small` into one cache (the first with no cap); returns the cache, when the second began and
    the cache's files before it."""
    cache = root / "cache"
    first = scene.build("bulky", root / "out-bulky", cache, "--cache-max", "off")
    assert first.returncode == 0, first.stderr
    earlier = cache_files(cache)
    began = mark_time(root / "second-began")
    proc = scene.build("small", root / "out-small", cache, *second)
    assert proc.returncode == 0, proc.stderr
    return cache, began, earlier


def test_cache_info_and_prune_least_recently_used_first(case: Case, scene: Scene, tmp_path: Path) -> None:
    case.describe(
        "cache",
        "packages, expanded packages, parsed indexes and gzip members are never removed: a host that rebuilds "
        "on a schedule fills its disk",
        "`cache info` shows each area's size; `cache prune --max-size` removes the least recently used first, "
        "down to the size",
    )
    cache, began, _ = two_builds(scene, tmp_path, "--cache-max", "off")
    files = cache_files(cache)
    shown = bootstrap_cache("info", "--cache-dir", str(cache), "--json")
    assert shown.returncode == 0, shown.stderr
    areas = {a["area"]: a for a in json.loads(shown.stdout)["areas"]}
    for area in prune.PRUNED:
        on_disk = [st for p, st in files.items() if p.is_relative_to(cache / area)]
        assert (areas[area]["files"], areas[area]["bytes"]) == (len(on_disk), sum(st.st_size for st in on_disk))
    assert areas["sha256"]["bytes"] > BULKY and areas["expanded"]["bytes"] > BULKY and areas["gzip"]["bytes"] > BULKY
    text = bootstrap_cache("info", "--cache-dir", str(cache)).stdout
    assert all(line.split()[0] in areas or line.split()[0] in ("cache", "total") for line in text.splitlines())
    assert prune.show(areas["sha256"]["bytes"]) in text

    recent = {p for p, st in files.items() if st.st_mtime_ns >= began}
    size = sum(files[p].st_size for p in recent)
    done = bootstrap_cache("prune", "--cache-dir", str(cache), "--max-size", str(size))
    assert done.returncode == 0, done.stderr
    left = cache_files(cache)
    assert set(left) == recent, "exactly the entries only the earlier build used went"
    assert not (cache / "sha256" / scene.bulky_sha256).exists()
    assert sum(st.st_size for st in left.values()) <= size
    case.saw(f"info: {len(files)} files in {len(prune.PRUNED)} areas; prune: {done.stdout.strip()}")


def test_prune_while_a_build_uses_the_cache(case: Case, scene: Scene, small_reference: Path, tmp_path: Path) -> None:
    case.describe(
        "cache",
        "`cache prune --max-size 0` while another build has downloaded its packages and not yet unpacked them",
        "prune removes only what no running build took; the paused build goes on and gives the same bytes",
    )
    cache = tmp_path / "cache"
    first = scene.build("bulky", tmp_path / "out-bulky", cache, "--cache-max", "off")
    assert first.returncode == 0, first.stderr
    time.sleep(0.2)  # the file system's clock moves on: what the first build used is older than the second
    marker = tmp_path / "paused"
    out = tmp_path / "out"
    (tmp_path / "scratch").mkdir()
    env = env_for(tmp_path / "scratch", BOOTSTRAP_TEST_PAUSE=f"unpack:{marker}")
    argv = [sys.executable, "-m", "bootstrap", *scene.argv("small", out, cache, "--cache-max", "off")]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the build did not reach its unpack step"
            time.sleep(0.05)
        done = bootstrap_cache("prune", "--cache-dir", str(cache), "--max-size", "0")
        marker.unlink()
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert done.returncode == 0, done.stderr
    assert proc.returncode == 0, stderr
    assert all((out / n).read_bytes() == (small_reference / n).read_bytes() for n in COMPARED)
    assert not (cache / "sha256" / scene.bulky_sha256).exists(), "what no running build uses goes"
    assert "in use by running builds" in done.stdout
    assert list((cache / "tmp").iterdir()) == [], "the build's session marker is gone"
    case.saw(f"prune: {done.stdout.strip()}; the paused build finished, same bytes as the reference")


def test_size_cap_after_each_build(case: Case, scene: Scene, tmp_path: Path) -> None:
    case.describe(
        "cache",
        "a build with --cache-max 1M after a build that left 9 MiB in the cache",
        "after the build the cache holds at most 1 MiB: the least recently used went first, the earlier build's",
    )
    cache, _, earlier = two_builds(scene, tmp_path, "--cache-max", "1M")
    left = cache_files(cache)
    total = sum(st.st_size for st in left.values())
    assert total <= 1 << 20
    gone = [st.st_mtime_ns for p, st in earlier.items() if p not in left]
    assert sum(st.st_size for p, st in earlier.items() if p not in left) > 8 << 20, "the earlier build's entries went"
    assert min(st.st_mtime_ns for st in left.values()) >= max(gone), "the least recently used went first"
    assert any(p.parent.name == "sha256" for p in left) and any(p.parent.name == "gzip" for p in left)
    bad = scene.build("small", tmp_path / "bad", cache, "--cache-max", "lots")
    errors = [line for line in bad.stderr.splitlines() if line.startswith("error: ")]
    assert bad.returncode != 0 and errors == ["error: --cache-max 'lots' is not a size"], bad.stderr
    case.saw(f"{len(left)} entries, {prune.show(total)} left; --cache-max lots: {errors[0]}")


# --- webhooks --------------------------------------------------------------------------------------------------


@dataclass
class RawServer:
    """A TCP server on 127.0.0.1 whose every connection `answer(conn)` handles after the request was read."""

    answer: Callable[[socket.socket], None]
    connections: int = 0
    sock: socket.socket = field(init=False)

    def __post_init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            length = next(
                (
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                ),
                0,
            )
            while len(body) < length:
                body += conn.recv(65536)
            with contextlib.suppress(OSError):
                self.answer(conn)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def raw_server() -> Iterator[Callable[[Callable[[socket.socket], None]], RawServer]]:
    servers: list[RawServer] = []

    def make(answer: Callable[[socket.socket], None]) -> RawServer:
        servers.append(RawServer(answer))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


class Recorder(BaseHTTPRequestHandler):
    """Answers every POST with `status` (and a Location), recording what came."""

    status = 204
    location = ""
    seen: list[tuple[str, str, dict[str, str], bytes]]

    def _any(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).seen.append((self.command, self.path, dict(self.headers), body))
        self.send_response(self.status)
        if self.location:
            self.send_header("Location", self.location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_GET = _any  # noqa: N815

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[Callable[..., tuple[str, type[Recorder]]]]:
    stops: list[Callable[[], None]] = []

    def make(status: int = 204, location: str = "") -> tuple[str, type[Recorder]]:
        handler = type("R", (Recorder,), {"status": status, "location": location, "seen": []})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        stops.append(in_thread(server))
        return f"http://127.0.0.1:{server.server_address[1]}", handler

    yield make
    for stop in stops:
        stop()


SEND = """
import json, sys, time
from bootstrap.publish import webhook
from bootstrap.log import setup
setup(1, False)
started = time.monotonic()
ok = webhook.send(sys.argv[1], {"event": "build", "recipe": "fixture"}, sys.argv[2] or None)
took = time.monotonic() - started
print(json.dumps({"ok": ok, "took": took}))
"""


def send_apart(url: str, secret: str = "", timeout: float = 120, **env: str) -> tuple[dict[str, object], str]:
    """webhook.send in a process of its own: what it returned, how long it took, its peak memory (`peak`,
    bytes, measured through a fresh launcher: tests/fixtures/peak); its stderr."""
    with tempfile.TemporaryDirectory() as tmp:
        peak_file = Path(tmp) / "peak"
        proc = subprocess.run(
            measured([sys.executable, "-c", SEND, url, secret], peak_file),
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        )
        assert proc.returncode == 0, proc.stderr
        result: dict[str, object] = json.loads(proc.stdout)
        result["peak"] = peak(peak_file)
    return result, proc.stderr


def test_a_receiver_that_drips_its_answer(
    case: Case, scene: Scene, tmp_path: Path, raw_server: Callable[..., RawServer]
) -> None:
    case.describe(
        "webhook",
        "the receiver answers one byte a second, for ever (status line, then an endless header)",
        "with $BOOTSTRAP_WEBHOOK_TIMEOUT=2 the build command returns within the bound: a one-line warning, "
        "exit 0, the image written",
    )
    stop = threading.Event()

    def drip(conn: socket.socket) -> None:
        for byte in b"HTTP/1.1 200 OK\r\nX-Drip: " + b"a" * 100_000:
            if stop.wait(1):
                return
            conn.send(bytes([byte]))

    server = raw_server(drip)
    out = tmp_path / "out"
    started = time.monotonic()
    try:
        proc = scene.build(
            "small", out, tmp_path / "cache", "--webhook", server.url, BOOTSTRAP_WEBHOOK_TIMEOUT="2", timeout=90
        )
    finally:
        stop.set()
    took = time.monotonic() - started
    warnings = [line for line in proc.stderr.splitlines() if "webhook" in line]
    assert proc.returncode == 0, proc.stderr
    assert (out / "image.tar").is_file(), "the build is not undone"
    # The last attempt is cut at what is left of the 2 s: each byte comes within the read timeout, only the
    # bound on all the attempts stops a drip.
    assert any(re.search(r"no answer within [0-2] s", line) for line in warnings), proc.stderr
    assert took < 45
    case.saw(f"returned after {took:.1f} s (build included): {warnings[0]}")


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_receiver_that_redirects(
    case: Case, status: int, recorder: Callable[..., tuple[str, type[Recorder]]]
) -> None:
    case.describe(
        "webhook",
        f"the receiver answers {status} to another server",
        "not followed: the other server sees no request (no signed body, no GET); reported as failed",
    )
    target, elsewhere = recorder(204)
    url, first = recorder(status, f"{target}/stolen")
    result, stderr = send_apart(f"{url}/hook", "a-secret")
    assert result["ok"] is False
    assert elsewhere.seen == [], "the redirect was followed"
    assert len(first.seen) == 1, "a redirect is not retried"
    warning = next(line for line in stderr.splitlines() if line.startswith("warning: webhook"))
    assert f"HTTP {status}" in warning and "not followed" in warning
    case.saw(warning)


def test_a_huge_answer_is_not_read(case: Case, raw_server: Callable[..., RawServer]) -> None:
    case.describe(
        "webhook",
        "the receiver answers 200 with an 800 MB body",
        "delivered (the status decides); the body is not read: peak memory stays far below 800 MB",
    )
    sent = [0]

    def huge(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (800 << 20))
        block = bytes(1 << 20)
        for _ in range(800):
            conn.sendall(block)
            sent[0] += len(block)

    server = raw_server(huge)
    result, _ = send_apart(server.url)
    assert result["ok"] is True
    assert int(str(result["peak"])) < 200 << 20, "the body was read into memory"
    case.saw(f"delivered in {float(str(result['took'])):.2f} s, peak memory {int(str(result['peak'])) >> 20} MiB")


def test_a_password_in_the_url_is_not_printed(case: Case, recorder: Callable[..., tuple[str, type[Recorder]]]) -> None:
    case.describe(
        "webhook",
        "a webhook URL with user:password and a token in its query, whose receiver fails (HTTP 500)",
        "the warning names the host and path, never the password or the token",
    )
    url, handler = recorder(500)
    secret_url = url.replace("http://", "http://builder:pa55w0rd-XYZ@") + "/hook?token=t0ken-XYZ"
    result, stderr = send_apart(secret_url, BOOTSTRAP_WEBHOOK_TIMEOUT="2")
    assert result["ok"] is False and handler.seen, "the receiver was asked"
    assert "pa55w0rd" not in stderr and "t0ken" not in stderr, stderr
    warning = next(line for line in stderr.splitlines() if line.startswith("warning: webhook"))
    assert "127.0.0.1" in warning and "/hook" in warning
    case.saw(warning)


def test_a_replayed_or_stale_delivery_is_refused(
    case: Case, recorder: Callable[..., tuple[str, type[Recorder]]]
) -> None:
    case.describe(
        "webhook",
        "a signed delivery captured on the way and played again: at once, after 10 minutes, with its body changed",
        "verify_delivery accepts the delivery once; refuses the replay, the stale copy and the changed body",
    )
    url, handler = recorder(204)
    secret = "whsec_" + "c2VjcmV0LWtleS1vZi10aGUtcmVjZWl2ZXI="
    result, _ = send_apart(f"{url}/hook", secret)
    assert result["ok"] is True
    _, _, headers, body = handler.seen[0]
    assert "X-Bootstrap-Signature-256" not in headers, "the replayable body-only signature is gone"
    seen: set[str] = set()
    delivery_id = webhook.verify_delivery(secret, headers, body, seen=seen)
    refused = []
    with pytest.raises(webhook.DeliveryRefused) as replay:
        webhook.verify_delivery(secret, headers, body, seen=seen)
    refused.append(replay.value.message)
    later = int(headers["webhook-timestamp"]) + 600
    with pytest.raises(webhook.DeliveryRefused) as stale:
        webhook.verify_delivery(secret, headers, body, now=later)
    refused.append(stale.value.message)
    with pytest.raises(webhook.DeliveryRefused) as changed:
        webhook.verify_delivery(secret, headers, body.replace(b"fixture", b"evil-fixture"))
    refused.append(changed.value.message)
    with pytest.raises(webhook.DeliveryRefused):
        webhook.verify_delivery("another-secret", headers, body)
    assert "received before" in refused[0] and "beyond the 300 s" in refused[1] and "does not match" in refused[2]
    case.saw(f"{delivery_id} accepted once; refused: " + "; ".join(refused))
