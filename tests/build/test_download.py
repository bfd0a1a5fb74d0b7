"""Package downloads into the cache: fetched once, hashed again on every build, fetched anew when damaged."""

import dataclasses
from pathlib import Path

import pytest

from bootstrap.build import download
from bootstrap.errors import BootstrapError
from bootstrap.family.model import Package
from bootstrap.host.cache import Cache, sha256_file
from tests.fixtures.debs import build_deb
from tests.fixtures.records import package
from tests.fixtures.server import Server


@pytest.fixture
def pool(tmp_path: Path) -> Path:
    pool = tmp_path / "pool"
    build_deb(pool, "one", "1.0", files={"/usr/share/one/data": b"1" * 5000})
    build_deb(pool, "two", "2.0", files={"/usr/share/two/data": b"2" * 7000})
    return pool


def records(pool: Path, url: str) -> list[Package]:
    return [
        dataclasses.replace(
            package(deb.name.split("_")[0]),
            filename=deb.name,
            size=deb.stat().st_size,
            sha256=sha256_file(deb),
            mirror=url,
        ).neutral()
        for deb in sorted(pool.glob("*.deb"))
    ]


def test_a_warm_cache_downloads_nothing(pool: Path, cache: Cache) -> None:
    with Server(pool) as server:
        packages = records(pool, server.url)
        paths = download.fetch_all(packages, cache)
        assert sorted(server.requests) == ["/one_1.0_amd64.deb", "/two_2.0_amd64.deb"]
        assert download.fetch_all(packages, cache) == paths
        assert len(server.requests) == 2
    assert {p.name: sha256_file(paths[p.name]) for p in packages} == {p.name: p.sha256 for p in packages}


@pytest.mark.parametrize("damage", ["same-size", "truncated", "emptied"])
def test_a_damaged_cached_deb_is_fetched_again(damage: str, pool: Path, cache: Cache) -> None:
    with Server(pool) as server:
        packages = records(pool, server.url)
        paths = download.fetch_all(packages, cache)
        blob = paths["two"]
        data = blob.read_bytes()
        if damage == "same-size":
            blob.write_bytes(data[:100] + bytes([data[100] ^ 0xFF]) + data[101:])
        elif damage == "truncated":  # as a crash in the middle of a copy leaves it
            blob.write_bytes(data[: len(data) // 2])
        else:
            blob.write_bytes(b"")
        assert download.fetch_all(packages, cache) == paths
        assert server.requests[2:] == ["/two_2.0_amd64.deb"]
    assert blob.read_bytes() == data


def test_offline_refuses_a_damaged_deb(pool: Path, cache: Cache) -> None:
    with Server(pool) as server:
        packages = records(pool, server.url)
        paths = download.fetch_all(packages, cache)
    paths["one"].write_bytes(b"!<arch>\n")
    with pytest.raises(BootstrapError, match=r"--offline: 1 package\(s\) are not in the cache \(one\)"):
        download.fetch_all(packages, cache, offline=True)
    assert not paths["one"].exists()
