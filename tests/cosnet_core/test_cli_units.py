"""Issue 16, item 3 on the command line: ``train --target-unit`` is recorded in metrics.json and ``predict`` writes
the unit of its predictions and, for a log10 target, the back-transformed value."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from cosnet_core.cli import main

SALTS = ["NaCl", "KCl", "LiF", "NaF", "KF", "LiCl", "RbCl", "CsCl", "NaBr", "KBr", "LiBr", "RbF", "CsF", "NaI"]
TINY = ["--epochs", "2", "--hidden-dim", "8", "--batch-size", "16", "--device", "cpu", "--quiet", "--seeds", "0",
        "--mode", "composition", "--init-from", "none", "--split", "random"]


def test_predict_writes_the_unit_and_the_back_transformed_value(tmp_path):
    data = tmp_path / "sigma.csv"
    pd.DataFrame({"formula": SALTS, "sigma": [10.0 ** -(3 + i % 5) for i in range(len(SALTS))]}).to_csv(data,
                                                                                                      index=False)
    out = tmp_path / "run"
    assert main(["train", "--data", str(data), "--formula-col", "formula", "--target-col", "sigma",
                 "--target-transform", "log10", "--target-unit", "S/cm", "--out", str(out), *TINY]) == 0
    assert json.loads((out / "metrics.json").read_text())["target"] == {
        "name": "sigma", "unit": "S/cm", "transform": "log10"}
    new = tmp_path / "new.csv"
    pd.DataFrame({"formula": ["LiI", "KI"]}).to_csv(new, index=False)
    predicted_path = tmp_path / "pred.csv"
    assert main(["predict", "--model", str(out), "--data", str(new), "--formula-col", "formula", "--out",
                 str(predicted_path), "--no-with-forest"]) == 0
    predicted = pd.read_csv(predicted_path)
    assert list(predicted.columns[3:6]) == ["prediction_std", "unit", "10^prediction (S/cm)"]
    assert (predicted["unit"] == "log10(σ / S cm⁻¹)").all()
    assert predicted["10^prediction (S/cm)"].to_numpy() == pytest.approx(10.0 ** predicted["prediction"].to_numpy())
