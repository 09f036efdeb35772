"""Fixtures shared by the whole test suite.

The real public datasets live in ``../shared/data`` beside the checkout (or wherever
``COSNET_SHARED_DATA`` points). Tests that need them use the ``shared_data`` fixture, which
skips with a clear reason when the folder is absent; tests that must always run make their
own small data.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
#: The database backends a ``both_databases`` test runs on (``--databases`` narrows them).
DATABASES = ("sqlite", "postgresql")


def pytest_addoption(parser) -> None:
    parser.addoption(
        "--databases", default=",".join(DATABASES),
        help="comma-separated backends for the tests marked both_databases (default: sqlite,postgresql; "
             "the postgresql instances skip when no PostgreSQL server binaries are installed)",
    )


def pytest_generate_tests(metafunc) -> None:
    """Run each ``both_databases`` test once per backend: ``test_x[sqlite]`` and ``test_x[postgresql]``.

    The PostgreSQL instance carries the ``postgres`` marker (``-m postgres`` selects them, ``-m "not postgres"``
    leaves them out). Every other test keeps the embedded SQLite default.
    """
    if "db_backend" not in metafunc.fixturenames or metafunc.definition.get_closest_marker("both_databases") is None:
        return
    chosen = [name.strip() for name in metafunc.config.getoption("databases").split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(DATABASES))
    if unknown:
        raise pytest.UsageError(f"--databases: unknown backend(s) {unknown}; choose among {list(DATABASES)}")
    params = [
        pytest.param(name, marks=[pytest.mark.postgres] if name == "postgresql" else [], id=name)
        for name in DATABASES if name in chosen
    ]
    metafunc.parametrize("db_backend", params, indirect=True)


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


@pytest.fixture(scope="session")
def postgres_server():
    """The session's throwaway PostgreSQL server (:mod:`tests.postgres_server`), started on first use.

    Skips the test when no PostgreSQL server binaries or no psycopg driver are installed.
    """
    from tests.postgres_server import PostgresServer, find_postgres_bin

    bin_dir = find_postgres_bin()
    if bin_dir is None:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl on PATH or under /usr/lib/postgresql/*/bin): "
                    "install Debian's postgresql package, as .ci/run does")
    pytest.importorskip("psycopg", reason="the PostgreSQL driver is not installed (pip install -r "
                        "requirements-postgres.txt)")
    server = PostgresServer(bin_dir)
    yield server
    server.stop()


@pytest.fixture()
def db_backend(request) -> str:
    """``sqlite`` (the default), or the backend a ``both_databases`` test was parametrised with."""
    return getattr(request, "param", "sqlite")


def _database(request, db_backend: str, sqlite_path: Path, *, migrated: bool) -> Iterator[str]:
    """A fresh database on ``db_backend`` (SQLite file at ``sqlite_path``, or a new PostgreSQL database)."""
    from db.engine import dispose_engines, upgrade_database

    if db_backend == "sqlite":
        url = f"sqlite:///{sqlite_path}"
        if migrated:
            upgrade_database(url)
        yield url
        dispose_engines()
        return
    server = request.getfixturevalue("postgres_server")
    url = server.create_database(migrated=migrated)
    yield url
    dispose_engines()
    server.drop_database(url)


@pytest.fixture()
def empty_db_url(request, db_backend: str, tmp_path) -> Iterator[str]:
    """The URL of an empty database (no tables, not migrated) on the test's backend."""
    yield from _database(request, db_backend, tmp_path / "empty.db", migrated=False)


@pytest.fixture()
def app_env(request, db_backend: str, tmp_path, monkeypatch) -> Iterator[Path]:
    """A fresh data directory and database for one test, migrated to the latest schema.

    Returns the data directory; ``COSNET_DATABASE_URL`` points at ``<data dir>/cosnet.db`` (SQLite), or at a new
    database of the session's PostgreSQL server for the ``postgresql`` instance of a ``both_databases`` test.
    """
    data = tmp_path / "cosnet-data"
    data.mkdir()
    monkeypatch.setenv("COSNET_DATA_DIR", str(data))
    databases = _database(request, db_backend, data / "cosnet.db", migrated=True)
    monkeypatch.setenv("COSNET_DATABASE_URL", next(databases))
    yield data
    next(databases, None)


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
