"""Shared pytest fixtures: the real data folder (``OPTIQ_TEST_DATA``, default ``../shared/data``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent


def data_root() -> Path:
    return Path(os.environ.get("OPTIQ_TEST_DATA") or ROOT.parent / "shared" / "data")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real motion data folder. With CI set a missing folder fails the run; elsewhere the test skips."""
    root = data_root()
    if not root.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"OPTIQ_TEST_DATA folder {root} is missing (CI is set, so this is a failure)")
        pytest.skip(f"real data folder {root} not found; set OPTIQ_TEST_DATA")
    return root
