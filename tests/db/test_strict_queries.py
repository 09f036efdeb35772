"""Queries and values that PostgreSQL checks more strictly than SQLite, run on both (issue 18, item 3).

SQLite accepts a selected column that is neither grouped nor aggregated (it takes any row's value); PostgreSQL
refuses it unless the column depends on a grouped primary key. ``median_epoch_seconds_per_row`` grouped epochs by
run only and selected the dataset version's row count: the training page's time estimate failed on PostgreSQL.
SQLite also stores text longer than a ``VARCHAR(n)``; PostgreSQL refuses the whole transaction: an upload whose
target column has a long header failed there.
"""

from __future__ import annotations

import os

import pytest

from cosnet_core.ingest import CleaningOptions, ColumnMapping, clean_table, read_table
from db.datasets import create_dataset
from db.engine import session_scope
from db.models import Dataset, DatasetVersion, EpochMetric, Run
from jobs import store

pytestmark = pytest.mark.both_databases


def _run(session, version: DatasetVersion, seconds: list[float], *, hidden_dim: int, status: str = "succeeded"):
    run = Run(dataset_version_id=version.id, mode="composition", seed=0, n_epochs=len(seconds), status=status,
              config={"hidden_dim": hidden_dim})
    session.add(run)
    session.flush()
    session.add_all(EpochMetric(run_id=run.id, epoch=epoch, train_loss=1.0, val_mae=1.0, seconds=s)
                    for epoch, s in enumerate(seconds, start=1))


def test_median_epoch_seconds_per_row_groups_by_run_and_version(app_env):
    url = os.environ["COSNET_DATABASE_URL"]
    assert store.median_epoch_seconds_per_row(url) is None  # nothing finished yet
    with session_scope(url) as session:
        small = DatasetVersion(dataset=Dataset(name="small"), number=1, n_rows=10, n_kept=10, n_rejected=0)
        large = DatasetVersion(dataset=Dataset(name="large"), number=1, n_rows=100, n_kept=100, n_rejected=0)
        session.add_all([small, large])
        session.flush()
        # epoch 1 (warm-up) is left out: mean of the later epochs / rows kept
        _run(session, small, [9.0, 1.0, 3.0], hidden_dim=64)  # 2.0 s / 10 rows = 0.2
        _run(session, large, [9.0, 30.0, 50.0], hidden_dim=64)  # 40 s / 100 rows = 0.4
        _run(session, large, [9.0, 10.0], hidden_dim=64)  # 0.1
        _run(session, small, [9.0, 8.0], hidden_dim=32)  # 0.8, another width
        _run(session, small, [9.0, 100.0], hidden_dim=64, status="failed")  # not finished: ignored
    assert store.median_epoch_seconds_per_row(url, hidden_dim=64) == pytest.approx(0.2)
    assert store.median_epoch_seconds_per_row(url, hidden_dim=32) == pytest.approx(0.8)
    assert store.median_epoch_seconds_per_row(url) == pytest.approx(0.4)  # of 0.1, 0.2, 0.4, 0.8: the upper middle
    assert store.median_epoch_seconds_per_row(url, hidden_dim=16) is None


def test_a_long_target_header_and_unit_are_stored_cut_to_their_columns(app_env):
    url = os.environ["COSNET_DATABASE_URL"]
    header = " ".join(["conductivity measured at room temperature"] * 6)  # 251 characters
    unit = " ".join(["S/cm"] * 30)  # 149
    raw = read_table(f"formula,{header}\nNaCl,1.5\nLiCl,2.5\n".encode(), "long.csv")
    result = clean_table(raw, ColumnMapping(formula="formula", target=header), CleaningOptions(unit=unit))
    stored = create_dataset(url, result, name="long header")
    with session_scope(url) as session:
        version = session.get(DatasetVersion, stored.version_id)
        assert (version.target_name, version.target_unit) == (header[:200], unit[:100])
        assert version.n_kept == 2
