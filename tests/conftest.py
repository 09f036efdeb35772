"""Fixtures shared by the whole test suite.

The real public datasets live in ``../shared/data`` beside the checkout (or wherever
``COSNET_SHARED_DATA`` points). Tests that need them use the ``shared_data`` fixture, which
skips with a clear reason when the folder is absent; tests that must always run make their
own small data.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """Where the shared datasets are expected (may not exist)."""
    env = os.environ.get("COSNET_SHARED_DATA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared real-data folder; skips the test when it is absent."""
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"shared data folder {path} is absent (set COSNET_SHARED_DATA to point at it)")
    return path
