"""The command line with targets that are bounds: refused by default, or read as bounds (never scored) with
``--censored drop|bound``, from ``<`` cells or a ``--censored-col`` flag column (issue 15 item 7, issue 16 item 4)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from cosnet_core.cli import main
from cosnet_core.tabular import read_table
from tests.cosnet_core.test_train import toy_samples

TINY = ["--epochs", "2", "--hidden-dim", "8", "--batch-size", "16", "--device", "cpu", "--quiet",
        "--mode", "composition", "--seeds", "0", "--split", "random"]

pytestmark = pytest.mark.slow  # trains small models (seconds each)


@pytest.fixture()
def bounded_table(tmp_path):
    """36 toy rows; every 6th is a bound: rows 0, 12, 24 as '<value' cells, rows 6, 18, 30 flagged 'yes'."""
    records = []
    for index, sample in enumerate(toy_samples(36)):
        value, flag = f"{sample.target}", "no"
        if index % 12 == 0:
            value = f"<{sample.target}"
        elif index % 6 == 0:
            flag = "yes"
        records.append({"name": sample.id, "formula": sample.formula, "value": value, "upper": flag})
    path = tmp_path / "bounded.csv"
    pd.DataFrame(records).to_csv(path, index=False)
    return path


def test_bounds_are_read_with_their_sign_or_refused(bounded_table) -> None:
    read = read_table(bounded_table, formula_col="formula", target_col="value", id_col="name", bounds=True,
                      censored_col="upper")
    signs = {s.id: s.censored for s in read.samples if s.censored}
    assert len(read.samples) == 36 and len(signs) == 6 and set(signs.values()) == {"<"}
    refused = read_table(bounded_table, formula_col="formula", target_col="value", id_col="name",
                         censored_col="upper")
    assert len(refused.samples) == 30
    reasons = refused.errors.set_index("id")["reason"]
    assert "a bound, not a measured value" in reasons[toy_samples(36)[0].id]
    assert "flagged as an upper bound" in reasons[toy_samples(36)[6].id]


def test_train_scores_no_bound_and_records_how_many_were_left_out(bounded_table, tmp_path) -> None:
    out = tmp_path / "run"
    status = main(["train", "--data", str(bounded_table), "--formula-col", "formula", "--target-col", "value",
                   "--id-col", "name", "--censored", "bound", "--censored-col", "upper", "--out", str(out), *TINY])
    assert status == 0
    metrics = json.loads((out / "metrics.json").read_text())
    predictions = pd.read_csv(out / "predictions.csv")
    bounds = {s.id for i, s in enumerate(toy_samples(36)) if i % 6 == 0}
    test = predictions[predictions["split"] == "test"]
    n_bounds_in_test = int(test["id"].isin(bounds).sum())
    assert n_bounds_in_test >= 1, "the split must put a bound in the test rows for the test to mean anything"
    assert metrics["censored"] == "bound" and metrics["train_config"]["censored"] == "bound"
    assert metrics["test"]["all"]["n"] == len(test) - n_bounds_in_test
    assert metrics["test"]["all"]["n_censored_excluded"] == n_bounds_in_test
    seed_rows = metrics["censored_rows_per_seed"][0]
    train = predictions[predictions["split"] == "train"]
    val = predictions[predictions["split"] == "val"]
    assert seed_rows["train_bounds"] == int(train["id"].isin(bounds).sum())
    assert seed_rows["val_excluded"] == int(val["id"].isin(bounds).sum())
    assert metrics["baselines"]["rf_magpie"]["all"]["n"] == metrics["test"]["all"]["n"]
