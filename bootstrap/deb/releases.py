"""A distribution's releases as the host's distro-info-data lists them (/usr/share/distro-info/<name>.csv):
which codenames exist, and which release a suite alias such as `lts` names today."""

import csv
import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from bootstrap.errors import BootstrapError

ALIASES = {
    "lts": "the newest long-term support release",
    "rolling": "the newest release",
}


@dataclass(frozen=True)
class Release:
    version: str
    codename: str
    released: dt.date

    @property
    def lts(self) -> bool:
        return "LTS" in self.version.split()


def data_dir() -> Path:
    """Where distro-info-data keeps its tables (BOOTSTRAP_DISTRO_INFO_DIR overrides, for tests)."""
    return Path(os.environ.get("BOOTSTRAP_DISTRO_INFO_DIR", "/usr/share/distro-info"))


def table(name: str) -> list[Release]:
    """Every release in the table, oldest first; empty when the table is missing or unreadable."""
    try:
        text = (data_dir() / name).read_text()
    except OSError:
        return []
    out = []
    for row in csv.DictReader(text.splitlines()):
        try:
            out.append(Release(row["version"], row["series"], dt.date.fromisoformat(row["release"])))
        except (KeyError, TypeError, ValueError):
            continue
    return out


def codenames(name: str) -> frozenset[str]:
    return frozenset(r.codename for r in table(name))


def resolve(name: str, suite: str, today: dt.date | None = None) -> str:
    """The codename an alias stands for (`lts`, `rolling`), among the releases out by `today`; any other suite
    as it is."""
    if not name or suite not in ALIASES:
        return suite
    day = today or dt.datetime.now(dt.UTC).date()
    out = [r for r in table(name) if r.released <= day and (suite != "lts" or r.lts)]
    if not out:
        raise BootstrapError(
            f"cannot tell which release is {ALIASES[suite]}: {data_dir() / name} is missing or lists none",
            "apt-get install distro-info-data, or pass --suite CODENAME (for example --suite noble)",
        )
    return max(out, key=lambda r: r.released).codename
