"""Placeholder until the RPM family's install steps land (payload unpack, rpm database, scriptlets, finish)."""

from collections.abc import Mapping
from pathlib import Path
from typing import NoReturn

from bootstrap.errors import BootstrapError
from bootstrap.family.interface import Runnable, Target
from bootstrap.family.model import Notice
from bootstrap.rpm.options import JobOptions
from bootstrap.rpm.selection import RpmSelection


def _not_yet() -> NoReturn:
    raise BootstrapError("not yet: the RPM family cannot install a tree", "RPM recipes resolve and fetch only so far")


class RpmJob:
    def __init__(self, selection: RpmSelection, files: Mapping[str, Path], target: Target, options: JobOptions) -> None:
        _not_yet()

    def unpack(self, final: bool) -> None:
        _not_yet()

    def native_tools(self, host: str) -> int:
        _not_yet()

    def configure(self, runnable: Runnable) -> None:
        _not_yet()

    def finish(self) -> None:
        _not_yet()

    def package_database(self) -> None:
        _not_yet()

    def notices(self) -> dict[str, Notice]:
        _not_yet()

    def script_env(self) -> dict[str, str]:
        _not_yet()
