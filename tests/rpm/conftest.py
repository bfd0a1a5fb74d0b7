"""Shared by the RPM family's tests."""

import os
import shutil

import pytest


def need_tools(*tools: str) -> None:
    """Skip (fail on CI) when a tool of the fixture is missing: `make test-deps` installs them."""
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"missing {', '.join(missing)}: run make test-deps")
        pytest.skip(f"missing {', '.join(missing)}")
