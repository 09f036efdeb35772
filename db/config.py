"""Where COSNet Studio keeps its state: one data directory and one database URL.

Both come from one environment variable each, with defaults that work on a laptop:

* ``COSNET_DATA_DIR`` (default ``~/.cosnet-studio``): the database (when SQLite), model artifacts,
  featurization caches, logs and uploaded files.
* ``COSNET_DATABASE_URL`` (default ``sqlite:///<data dir>/cosnet.db``): any SQLAlchemy URL, e.g.
  ``postgresql+psycopg://user:pass@host/cosnet`` for a lab server.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "COSNET_DATA_DIR"
DATABASE_URL_ENV = "COSNET_DATABASE_URL"


def data_dir() -> Path:
    """The data directory, created on first use."""
    path = Path(os.environ.get(DATA_DIR_ENV) or Path.home() / ".cosnet-studio").expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def database_url() -> str:
    """The SQLAlchemy URL of the application database."""
    url = os.environ.get(DATABASE_URL_ENV)
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
