"""One Table 1 (issue 15, item 4): the command line's metrics.json and the app's Results page give the same numbers
for the same stored predictions."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from cosnet_core.cli import main
from cosnet_core.report import table1
from tests.cosnet_core.test_cli import table  # noqa: F401  (the CLI's toy table fixture)

TINY = ["--epochs", "2", "--hidden-dim", "8", "--batch-size", "16", "--device", "cpu", "--quiet"]


@pytest.mark.slow
def test_cli_and_results_page_give_the_same_table1(table, tmp_path) -> None:  # noqa: F811
    path, folder = table
    out = tmp_path / "run"
    assert main(["train", "--data", str(path), "--formula-col", "formula", "--target-col", "value", "--structure-col",
                 "cif", "--structures", str(folder), "--id-col", "name", "--mode", "bimodal-aug", "--seeds", "0", "1",
                 "--split", "grouped", "--init-from", "none", "--out", str(out), *TINY]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    # the app stores one prediction per (run, entry); the Results page builds its table from those rows
    stored = pd.read_csv(out / "predictions.csv", dtype={"id": str})
    stored = stored.rename(columns={"id": "entry_id"}).assign(run_id=lambda f: f["seed"] + 100,
                                                               mode="bimodal-aug")
    page = table1(stored).long.set_index(["subset", "mode"])
    for subset, expected in metrics["test"].items():
        row = page.loc[(subset, "bimodal-aug")]
        assert row["n"] == expected["n"] > 0
        for key in ("mae_mean", "mae_std", "rmse_mean", "r2_mean"):
            if expected[key] is None:  # NaN in metrics.json is written as null
                assert math.isnan(row[key]), (subset, key)
            else:
                assert row[key] == pytest.approx(expected[key], rel=1e-9, abs=1e-12), (subset, key)
        served = page.loc[(subset, "bimodal-aug:ensemble")]
        assert served["mae_mean"] == pytest.approx(metrics["ensemble"][subset]["mae"], rel=1e-9)
        assert served["n_seeds"] == metrics["ensemble"][subset]["members"] == 2
