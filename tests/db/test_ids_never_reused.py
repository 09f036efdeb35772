"""Issue 14, item 3: ids are never reused after a delete (migration 0002, SQLite AUTOINCREMENT), and the
migration keeps every row of a database made at 0001 (foreign keys off while tables are rebuilt)."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, delete, text

from db.access import Actor
from db.datasets import delete_dataset
from db.engine import dispose_engines, session_scope, upgrade_database
from db.models import Dataset, Structure, Study
from tests.pages.results_fixtures import store_study


@pytest.mark.both_databases  # also on PostgreSQL (tests/conftest.py)
def test_deleting_the_newest_study_and_dataset_never_hands_their_ids_to_the_next(app_env):
    old_study = store_study(n_entries=6)
    with session_scope() as session:
        study = session.get(Study, old_study)
        old_dataset, old_version = study.dataset_version.dataset_id, study.dataset_version_id
        old_runs = sorted(r.id for r in study.runs)
        study.dataset_version.dataset.owner = "alice"
    delete_dataset(None, old_dataset, actor=Actor("alice"))
    with session_scope() as session:  # structures outlive datasets; the fixture makes the same one again
        session.execute(delete(Structure))

    new_study = store_study(n_entries=6)  # bob's, made right after: without AUTOINCREMENT it got the same ids
    with session_scope() as session:
        study = session.get(Study, new_study)
        assert new_study > old_study
        assert study.dataset_version.dataset_id > old_dataset and study.dataset_version_id > old_version
        assert min(r.id for r in study.runs) > max(old_runs)
        assert session.get(Dataset, old_dataset) is None


def test_migration_0002_keeps_the_rows_of_a_0001_database(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade_database(url, "0001")
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO datasets (id, name, owner, shared, created_at) VALUES (1, 'a', 'alice', 0, '2026-01-01'),"
            " (2, 'b', 'bob', 1, '2026-01-01')"))
        connection.execute(text(
            "INSERT INTO dataset_versions (id, dataset_id, number, created_at, created_by, target_transform, "
            "settings, summary, n_rows, n_kept, n_rejected) VALUES (5, 2, 1, '2026-01-01', 'bob', 'none', '{}', "
            "'{}', 1, 1, 0)"))
        connection.execute(text(
            "INSERT INTO entries (id, dataset_version_id, row_number, raw_formula, status, extra, match_state) "
            "VALUES (9, 5, 2, 'NaCl', 'kept', '{}', 'unmatched')"))
    engine.dispose()

    upgrade_database(url)
    engine = create_engine(url)
    with engine.begin() as connection:
        rows = lambda sql: connection.execute(text(sql)).all()  # noqa: E731
        assert rows("SELECT id, owner FROM datasets ORDER BY id") == [(1, "alice"), (2, "bob")]
        assert rows("SELECT id, dataset_id FROM dataset_versions") == [(5, 2)]  # not cascaded away
        assert rows("SELECT id, raw_formula FROM entries") == [(9, "NaCl")]
        assert "AUTOINCREMENT" in connection.execute(
            text("SELECT sql FROM sqlite_master WHERE name = 'studies'")).scalar()
        assert rows("PRAGMA foreign_key_check") == []
        connection.execute(text("DELETE FROM datasets WHERE id = 1"))
        connection.execute(text(
            "INSERT INTO datasets (name, owner, shared, created_at) VALUES ('c', 'carol', 0, '2026-01-02')"))
        assert rows("SELECT max(id) FROM datasets") == [(3,)]
        connection.execute(text("DELETE FROM datasets WHERE id = 3"))
        connection.execute(text(
            "INSERT INTO datasets (name, owner, shared, created_at) VALUES ('d', 'dan', 0, '2026-01-02')"))
        assert rows("SELECT max(id) FROM datasets") == [(4,)]  # 3 is not handed out again
    engine.dispose()
    dispose_engines()
