"""Where COSNet Studio keeps its state: one data directory and one database URL.

Both come from one environment variable each (:data:`cosnet_core.settings.SETTINGS`), with defaults that work on a
laptop:

* ``COSNET_DATA_DIR`` (default ``~/.cosnet-studio``): the database (when SQLite), model artifacts,
  featurization caches, logs and uploaded files.
* ``COSNET_DATABASE_URL`` (default ``sqlite:///<data dir>/cosnet.db``): any SQLAlchemy URL, e.g.
  ``postgresql+psycopg://user:pass@host/cosnet`` for a lab server.
"""

from __future__ import annotations

from pathlib import Path

from cosnet_core.settings import SETTINGS

DATA_DIR_ENV = SETTINGS.data_dir.variable
DATABASE_URL_ENV = SETTINGS.database_url.variable


def data_dir() -> Path:
    """The data directory, created on first use."""
    path = SETTINGS.data_dir.get()
    path.mkdir(parents=True, exist_ok=True)
    return path


def database_url() -> str:
    """The SQLAlchemy URL of the application database."""
    url = SETTINGS.database_url.get()
    if url:
        return url
    return f"sqlite:///{data_dir() / 'cosnet.db'}"


def artifacts_dir() -> Path:
    """Folder of trained model artifacts (one file per run)."""
    path = data_dir() / "artifacts"
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir() -> Path:
    """Folder of featurization caches (crystal graphs keyed by content hash)."""
    path = data_dir() / "cache"
    path.mkdir(parents=True, exist_ok=True)
    return path


def logs_dir() -> Path:
    """Folder of job logs."""
    path = data_dir() / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path
