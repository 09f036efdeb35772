"""Alembic migrations go up and down from empty on SQLite and PostgreSQL, and SQLite runs with WAL and foreign keys."""

import os

import pytest
import sqlalchemy as sa
from sqlalchemy import create_engine, inspect, text

from db.engine import dispose_engines, downgrade_database, get_engine, upgrade_database
from db.models import Base

EXPECTED_TABLES = {
    "users", "datasets", "dataset_versions", "entries", "structures", "match_candidates", "audit_events",
    "review_decisions", "jobs", "studies", "runs", "epoch_metrics", "predictions", "model_artifacts",
}


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


@pytest.mark.both_databases
def test_upgrade_downgrade_upgrade_from_empty(empty_db_url):
    url = empty_db_url
    assert _tables(url) == set()
    upgrade_database(url)
    assert _tables(url) == EXPECTED_TABLES | {"alembic_version"}
    downgrade_database(url, "base")
    assert _tables(url) == {"alembic_version"}
    upgrade_database(url)
    assert _tables(url) == EXPECTED_TABLES | {"alembic_version"}
    dispose_engines()


@pytest.mark.both_databases
def test_migrations_match_the_models(app_env):
    """The migrated schema has exactly the columns the ORM models declare (no forgotten migration), with the same
    nullability, kind of type and string length; on PostgreSQL every DateTime keeps its time zone (timestamptz)."""
    engine = create_engine(os.environ["COSNET_DATABASE_URL"])
    inspector = inspect(engine)
    for table in Base.metadata.sorted_tables:
        migrated = {c["name"]: c for c in inspector.get_columns(table.name)}
        assert set(migrated) == {c.name for c in table.columns}, table.name
        for column in table.columns:
            found, where = migrated[column.name], f"{table.name}.{column.name}"
            assert found["nullable"] == column.nullable, where
            assert found["type"]._type_affinity is column.type._type_affinity, (where, found["type"])
            assert getattr(found["type"], "length", None) == getattr(column.type, "length", None), where
            if isinstance(column.type, sa.DateTime) and engine.dialect.name == "postgresql":
                assert found["type"].timezone, where
    engine.dispose()


def test_sqlite_pragmas_are_on(app_env):
    engine = get_engine()
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert connection.execute(text("PRAGMA busy_timeout")).scalar() == 30_000


def test_database_url_and_data_dir_come_from_the_environment(tmp_path, monkeypatch):
    from db.config import data_dir, database_url

    monkeypatch.setenv("COSNET_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.delenv("COSNET_DATABASE_URL", raising=False)
    assert data_dir() == tmp_path / "d" and data_dir().is_dir()
    assert database_url() == f"sqlite:///{tmp_path / 'd' / 'cosnet.db'}"
    monkeypatch.setenv("COSNET_DATABASE_URL", "postgresql+psycopg://u:p@db/cosnet")
    assert database_url() == "postgresql+psycopg://u:p@db/cosnet"
