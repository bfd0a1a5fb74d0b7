"""Suite aliases resolved from a distro-info-data table, written in the format of the host's."""

import datetime as dt
from pathlib import Path

import pytest

from bootstrap.deb import releases
from bootstrap.errors import BootstrapError

TABLE = """\
version,codename,series,created,release,eol,eol-server,eol-esm
22.04 LTS,Jammy Jellyfish,jammy,2021-10-14,2022-04-21,2027-06-01,2027-06-01,2032-04-21
24.04 LTS,Noble Numbat,noble,2023-10-12,2024-04-25,2029-05-31,2029-05-31,2034-04-25
25.10,Questing Quokka,questing,2025-04-17,2025-10-09,2026-07-09
26.04 LTS,Resolute Raccoon,resolute,2025-10-09,2026-04-23,2031-05-29,2031-05-29,2036-04-23
26.10,Stonking Stingray,stonking,2026-04-23,2026-10-15,2027-07-15
broken,row
"""


@pytest.fixture
def table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "ubuntu.csv").write_text(TABLE)
    monkeypatch.setenv("BOOTSTRAP_DISTRO_INFO_DIR", str(tmp_path))
    return "ubuntu.csv"


@pytest.mark.parametrize(
    ("suite", "today", "expected"),
    [
        ("lts", dt.date(2026, 4, 22), "noble"),
        ("lts", dt.date(2026, 4, 23), "resolute"),
        ("lts", dt.date(2030, 1, 1), "resolute"),
        ("rolling", dt.date(2026, 1, 1), "questing"),
        ("rolling", dt.date(2026, 11, 1), "stonking"),
        ("noble", dt.date(2020, 1, 1), "noble"),
        ("devel", dt.date(2026, 1, 1), "devel"),
    ],
)
def test_aliases_name_the_release_out_that_day(table: str, suite: str, today: dt.date, expected: str) -> None:
    assert releases.resolve(table, suite, today) == expected


def test_codenames_of_the_table(table: str) -> None:
    assert releases.codenames(table) == {"jammy", "noble", "questing", "resolute", "stonking"}


def test_without_a_table_an_alias_fails_with_a_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOOTSTRAP_DISTRO_INFO_DIR", str(tmp_path))
    with pytest.raises(BootstrapError) as err:
        releases.resolve("ubuntu.csv", "lts", dt.date(2026, 5, 1))
    assert "distro-info-data" in err.value.hint and "--suite" in err.value.hint
    assert releases.resolve("ubuntu.csv", "noble") == "noble", "a codename needs no table"
    assert releases.resolve("", "lts") == "lts", "a distribution without a table leaves aliases to the archive"
