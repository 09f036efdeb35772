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


def pytest_configure(config) -> None:
    """Keep everything the tests write out of the user's home: a session-wide data directory by default."""
    if "COSNET_DATA_DIR" not in os.environ:
        import tempfile

        os.environ["COSNET_DATA_DIR"] = tempfile.mkdtemp(prefix="cosnet-tests-")
    # The test models are tiny: intra-op threads gain nothing, and on a busy 2-core machine (or beside Ray
    # workers) spinning OpenMP threads make each small op far slower. One thread keeps tests fast and deterministic.
    import torch

    torch.set_num_threads(1)


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


@pytest.fixture()
def app_env(tmp_path, monkeypatch) -> Path:
    """A fresh data directory and SQLite database for one test, migrated to the latest schema.

    Returns the data directory; ``COSNET_DATABASE_URL`` points at ``<data dir>/cosnet.db``.
    """
    from db.engine import dispose_engines, upgrade_database

    data = tmp_path / "cosnet-data"
    data.mkdir()
    url = f"sqlite:///{data / 'cosnet.db'}"
    monkeypatch.setenv("COSNET_DATA_DIR", str(data))
    monkeypatch.setenv("COSNET_DATABASE_URL", url)
    upgrade_database(url)
    yield data
    dispose_engines()


@pytest.fixture()
def app_test(app_env):
    """A factory of Streamlit ``AppTest`` objects for ``app.py`` over a fresh data directory.

    Usage: ``at = app_test(); at.run(); at.switch_page("pages/datasets.py"); at.run()``.
    """
    from streamlit.testing.v1 import AppTest

    def make(timeout: float = 60):
        return AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=timeout)

    return make


@pytest.fixture()
def downloads(monkeypatch):
    """Capture what ``st.download_button`` offers in AppTest runs.

    Returns a function ``read(button) -> bytes`` giving the file behind an AppTest download button.
    """
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    captured: dict[str, bytes] = {}
    original = MemoryMediaFileStorage.load_and_get_id

    def recording(self, path_or_data, mimetype, kind, filename=None):
        file_id = original(self, path_or_data, mimetype, kind, filename)
        captured[file_id] = self._files_by_id[file_id].content
        return file_id

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", recording)

    def read(button) -> bytes:
        file_id = os.path.splitext(os.path.basename(button.proto.url))[0]
        return captured[file_id]

    return read
