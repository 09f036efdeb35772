"""Command line: train → predict on a temporary CSV and CIF folder, with bad rows reported per row."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from cosnet_core.applicability import nearest_columns
from cosnet_core.cli import PREDICT_COLUMNS, PREDICTION_COLUMNS, main
from cosnet_core.tabular import read_table
from tests.cosnet_core.test_train import toy_samples

TINY = ["--epochs", "2", "--hidden-dim", "8", "--batch-size", "16", "--device", "cpu", "--quiet"]

pytestmark = pytest.mark.slow  # trains small models (seconds each)


@pytest.fixture()
def table(tmp_path):
    """A CSV of 36 toy rows (half with a CIF), one bad formula, one censored target and one missing CIF."""
    folder = tmp_path / "cifs"
    folder.mkdir()
    records = []
    for sample in toy_samples(36):
        cif = ""
        if sample.structure is not None:
            cif = f"{sample.id}.cif"
            sample.structure.to(filename=str(folder / cif))
        records.append({"name": sample.id, "formula": sample.formula, "value": sample.target, "cif": cif})
    records.append({"name": "bad1", "formula": "Xx2O", "value": 1.0, "cif": ""})
    records.append({"name": "bad2", "formula": "LiCl", "value": "<1E-10", "cif": ""})
    records.append({"name": "bad3", "formula": "NaBr", "value": 2.0, "cif": "missing.cif"})
    path = tmp_path / "data.csv"
    pd.DataFrame(records).to_csv(path, index=False)
    return path, folder


def test_read_table_reports_each_bad_row(table) -> None:
    path, folder = table
    result = read_table(path, formula_col="formula", target_col="value", structure_col="cif",
                        structures_dir=folder, id_col="name")
    assert len(result.samples) == 36
    assert sum(s.structure is not None for s in result.samples) == 18
    errors = result.errors.set_index("id")
    assert errors.loc["bad1", "line"] == 38 and errors.loc["bad1", "column"] == "formula"
    assert "bound" in errors.loc["bad2", "reason"]
    assert errors.loc["bad3", "column"] == "cif" and "no such file" in errors.loc["bad3", "reason"]
    assert "line 38 (id bad1)" in result.error_message()


def test_train_then_predict(table, tmp_path, capsys) -> None:
    path, folder = table
    out = tmp_path / "run"
    status = main(["train", "--data", str(path), "--formula-col", "formula", "--target-col", "value",
                   "--structure-col", "cif", "--structures", str(folder), "--id-col", "name",
                   "--mode", "bimodal-aug", "--seeds", "0", "1", "--split", "grouped", "--out", str(out), *TINY])
    assert status == 0
    assert "line 38 (id bad1)" in capsys.readouterr().err
    assert set(pd.read_csv(out / "input_errors.csv")["id"]) == {"bad1", "bad2", "bad3"}

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["mode"] == "bimodal-aug" and metrics["seeds"] == [0, 1]
    assert set(metrics["test"]) == {"all", "without_structure", "with_structure"}
    assert set(metrics["baselines"]) == {"mean", "rf_magpie"}
    for subsets in (metrics["test"], *metrics["baselines"].values()):
        assert set(subsets) == {"all", "without_structure", "with_structure"}
        for subset in subsets.values():
            assert {"mae_mean", "mae_std", "rmse_mean", "r2_mean", "n"} <= set(subset)
        assert subsets["all"]["n"] == metrics["test"]["all"]["n"]
    assert metrics["train_config"]["mode"] == "bimodal-aug"
    # every training target is >= 0: predictions are bounded at 0 (the authors' ReLU), decided and recorded
    assert metrics["train_config"]["nonnegative"] == "auto" and metrics["target_lower_bound"] == 0.0
    assert metrics["seed_protocol"] == "fixed-test" and metrics["split_seed"] == 0
    assert metrics["seed_protocol_text"] == "Seeds share one test split; each seed draws its own validation rows"
    assert metrics["test"]["all"]["n"] == metrics["test"]["with_structure"]["n"] + metrics["test"][
        "without_structure"]["n"]
    assert "alignment_r2" in metrics

    predictions = pd.read_csv(out / "predictions.csv")
    assert tuple(predictions.columns) == PREDICTION_COLUMNS
    assert len(predictions) == 36 * 2  # every row, every seed (no augmented copies)
    assert set(predictions["split"]) == {"train", "val", "test"}
    assert predictions.loc[~predictions["has_structure"], "w_c"].eq(1.0).all()
    # the baselines are scored on exactly the model's test rows of each seed, and the mean baseline predicts the
    # mean target of exactly its training rows
    baselines = pd.read_csv(out / "baseline_predictions.csv")
    for seed in (0, 1):
        model_rows = predictions[predictions["seed"] == seed]
        for name in ("mean", "rf_magpie"):
            rows = baselines[(baselines["seed"] == seed) & (baselines["baseline"] == name)]
            assert sorted(rows["id"]) == sorted(model_rows.loc[model_rows["split"] == "test", "id"])
        train_mean = model_rows.loc[model_rows["split"] == "train", "target"].mean()
        mean_rows = baselines[(baselines["seed"] == seed) & (baselines["baseline"] == "mean")]
        assert mean_rows["prediction"].to_numpy() == pytest.approx(train_mean)
        by_hand = (mean_rows["target"] - train_mean).abs().mean()
        assert metrics["per_seed"][seed]["baselines"]["mean"]["all"]["mae"] == pytest.approx(by_hand)
    # fixed-test: both seeds scored the same test rows, each with its own validation rows
    ids = {(seed, part): set(predictions.loc[(predictions["seed"] == seed) & (predictions["split"] == part), "id"])
           for seed in (0, 1) for part in ("val", "test")}
    assert ids[(0, "test")] == ids[(1, "test")] and ids[(0, "val")] != ids[(1, "val")]
    # the seed ensemble (served) and its 50/50 blend with the forest, by hand from the two files
    test_rows = predictions[predictions["split"] == "test"]
    ensemble = test_rows.groupby("id").agg(target=("target", "first"), prediction=("prediction", "mean"))
    assert metrics["ensemble"]["all"]["mae"] == pytest.approx((ensemble["prediction"] - ensemble["target"]).abs().mean())
    assert metrics["ensemble"]["all"]["n"] == len(ensemble) and metrics["ensemble"]["all"]["members"] == 2
    forest = baselines[baselines["baseline"] == "rf_magpie"].groupby("id")["prediction"].mean()
    blend = 0.5 * ensemble["prediction"] + 0.5 * forest.loc[ensemble.index]
    assert metrics["ensemble_with_forest"]["all"]["mae"] == pytest.approx((blend - ensemble["target"]).abs().mean())
    for key in ("ensemble", "ensemble_with_forest"):
        assert set(metrics[key]) == {"all", "without_structure", "with_structure"}
        assert all(set(entry) == {"mae", "rmse", "r2", "n", "members", "n_censored_excluded"} for entry in metrics[key].values())
    assert "not tuned" in metrics["ensemble_method"]
    assert sorted((out / "models").iterdir()) == [out / "models" / "seed_0.pt", out / "models" / "seed_1.pt"]

    new = tmp_path / "new.csv"
    pd.DataFrame({"formula": ["KCl", "Qq", "NaF"], "cif": ["", "", "LiF.cif"]}).to_csv(new, index=False)
    predicted_path = tmp_path / "pred.csv"
    status = main(["predict", "--model", str(out), "--data", str(new), "--formula-col", "formula",
                   "--structure-col", "cif", "--structures", str(folder), "--out", str(predicted_path),
                   "--no-with-forest"])
    assert status == 0
    err = capsys.readouterr().err
    assert "line 3 (id row3)" in err and "from the ensemble of 2 model(s) (prediction_std is their spread)" in err
    predicted = pd.read_csv(predicted_path)
    assert tuple(predicted.columns) == (*PREDICT_COLUMNS, "warning", "applicability", "structure_mismatch",
                                        "unseen_elements", *nearest_columns())  # issue 16: applicability columns
    assert predicted["id"].tolist() == ["row2", "row4"]
    assert predicted["has_structure"].tolist() == [False, True]
    assert (predicted["prediction_std"] > 0).all()  # two seeds disagree a little

    # By default (DEFAULTS["serve_with_forest"], as --with-forest) on the test rows: the forest part is the mean over
    # seeds of the study's own forest baselines (re-fitted on each seed's training rows from predictions.csv), the
    # prediction the fixed 50/50 blend
    test_rows = predictions[(predictions["seed"] == 0) & (predictions["split"] == "test")]
    tested = tmp_path / "tested.csv"
    test_rows[["id", "composition"]].to_csv(tested, index=False)
    blended_path = tmp_path / "blend.csv"
    status = main(["predict", "--model", str(out), "--data", str(tested), "--formula-col", "composition",
                   "--id-col", "id", "--out", str(blended_path)])
    assert status == 0 and "averaged 50/50 with the random forest" in capsys.readouterr().err
    blended = pd.read_csv(blended_path).set_index("id")
    assert list(blended.columns[6:8]) == ["prediction_ensemble", "prediction_forest"]  # after w_c, warning (id is the index)
    forest = baselines[baselines["baseline"] == "rf_magpie"].groupby("id")["prediction"].mean()
    assert blended["prediction_forest"].to_numpy() == pytest.approx(forest.loc[blended.index].to_numpy())
    assert blended["prediction"].to_numpy() == pytest.approx(
        0.5 * blended["prediction_ensemble"].to_numpy() + 0.5 * blended["prediction_forest"].to_numpy())
    status = main(["predict", "--model", str(out / "models" / "seed_0.pt"), "--data", str(tested), "--formula-col",
                   "composition", "--out", str(tmp_path / "one.csv"), "--with-forest"])
    assert status == 0  # one seed's artifact: its folder's predictions.csv is found one level up


def test_fatal_errors_exit_with_one_line(tmp_path, table, capsys) -> None:
    path, _ = table
    status = main(["train", "--data", str(path), "--formula-col", "nope", "--target-col", "value",
                   "--mode", "composition", "--out", str(tmp_path / "x"), *TINY])
    assert status == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error:") and "'nope'" in error and "\n" not in error
    status = main(["predict", "--model", str(tmp_path / "none"), "--data", str(path), "--formula-col", "formula",
                   "--out", str(tmp_path / "p.csv")])
    assert status == 2 and "no such model" in capsys.readouterr().err


def test_with_forest_needs_the_training_rows(tmp_path, capsys) -> None:
    from cosnet_core.cli import _training_sets

    with pytest.raises(Exception, match="--with-forest needs the folder written by 'train'"):
        _training_sets(tmp_path)
    pd.DataFrame({"id": ["a", "b", "c"], "composition": ["NaN", "LiF", "KCl"], "split": ["train", "train", "test"],
                  "seed": [1, 0, 0], "target": [1.0, 2.0, 3.0]}).to_csv(tmp_path / "predictions.csv", index=False)
    assert _training_sets(tmp_path) == [(["LiF"], [2.0]), (["NaN"], [1.0])]  # per seed; NaN is sodium nitride


def test_reproduce_writes_tables_and_figure_2(table, tmp_path) -> None:
    path, folder = table
    out = tmp_path / "report"
    status = main(["reproduce", "--data", str(path), "--formula-col", "formula", "--target-col", "value",
                   "--structure-col", "cif", "--structures", str(folder), "--id-col", "name", "--seeds", "0",
                   "--modes", "composition", "bimodal-aug", "--fractions", "0", "1", "--out", str(out), *TINY])
    assert status == 0
    table1 = pd.read_csv(out / "table1.csv")
    assert len(table1) == 4 * 3 + 2 * 2 * 3 and set(table1["mode"]) == {"composition", "bimodal-aug", "mean", "rf_magpie"}
    kinds = table1.groupby("kind")["mode"].agg(lambda m: sorted(set(m)))
    assert kinds["ensemble"] == kinds["ensemble_with_forest"] == kinds["model"] == ["bimodal-aug", "composition"]
    assert (table1.loc[table1["kind"] == "ensemble", "members"] == 1).all()
    mode_metrics = json.loads((out / "composition" / "metrics.json").read_text())
    row = table1[(table1["kind"] == "ensemble_with_forest") & (table1["mode"] == "composition")
                 & (table1["subset"] == "all")]
    assert row["mae_mean"].item() == pytest.approx(mode_metrics["ensemble_with_forest"]["all"]["mae"])
    assert {"mae_mean", "rmse_mean", "r2_mean", "n"} <= set(table1.columns)
    assert "significant_vs_composition" in table1.columns
    assert pd.read_csv(out / "table2.csv")["mode"].tolist() == ["composition", "bimodal-aug"]
    figure = pd.read_csv(out / "figure2.csv")
    assert figure["hidden_fraction"].tolist() == [0.0, 1.0] and set(figure["mode"]) == {"bimodal-aug"}
    # the x-axis is the share of structures kept, as in the app's Figure 2 (issue 15, item 4)
    assert figure["structure_fraction"].tolist() == [1.0, 0.0]
    assert pd.read_csv(out / "figure2_summary.csv")["structure_fraction"].tolist() == [0.0, 1.0]
    assert (out / "bimodal-aug" / "metrics.json").exists()


def test_read_table_split_column_and_log10_target(tmp_path) -> None:
    from cosnet_core.splits import column_split

    path = tmp_path / "t.tsv"
    rows = ["formula\tsigma\tpart", *(f"{s.formula}\t1e-{i + 3}\t{'test' if i < 6 else 'train'}"
                                      for i, s in enumerate(toy_samples(30)))]
    path.write_text("\n".join(rows) + "\n")
    result = read_table(path, formula_col="formula", target_col="sigma", split_col="part", target_transform="log10")
    assert result.errors.empty
    assert [s.target for s in result.samples[:3]] == pytest.approx([-3.0, -4.0, -5.0])
    split = column_split(result.samples, val_fraction=0.25)
    assert split.sizes() == (18, 6, 6)


def test_repeated_compositions_default_to_the_grouped_split_and_say_why(tmp_path, capsys) -> None:
    rows = [{"formula": s.formula, "value": s.target + 0.01 * k} for s in toy_samples(12) for k in range(3)]
    path = tmp_path / "repeats.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    out = tmp_path / "run"
    status = main(["train", "--data", str(path), "--formula-col", "formula", "--target-col", "value",
                   "--mode", "composition", "--seeds", "0", "--out", str(out), *TINY])
    assert status == 0
    assert "split: grouped: compositions repeat (36 rows, 12 distinct compositions)" in capsys.readouterr().err
    assert json.loads((out / "metrics.json").read_text())["split"] == "grouped"
    predictions = pd.read_csv(out / "predictions.csv")
    parts = predictions.groupby("composition")["split"].nunique()
    assert (parts == 1).all()  # no composition in two splits

    status = main(["train", "--data", str(path), "--formula-col", "formula", "--target-col", "value",
                   "--mode", "composition", "--seeds", "0", "--split", "random", "--out", str(out), *TINY])
    assert status == 0 and "split:" not in capsys.readouterr().err  # an explicit choice is kept silently
    assert json.loads((out / "metrics.json").read_text())["split"] == "random"


def test_resplit_draws_each_seeds_whole_split_and_says_so(tmp_path) -> None:
    rows = [{"formula": s.formula, "value": s.target} for s in toy_samples(30)]
    path = tmp_path / "rows.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    out = tmp_path / "run"
    status = main(["train", "--data", str(path), "--formula-col", "formula", "--target-col", "value",
                   "--mode", "composition", "--seeds", "0", "1", "--seed-protocol", "resplit", "--out", str(out),
                   "--epochs", "1", *TINY[2:]])
    assert status == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["seed_protocol"] == "resplit" and metrics["split_seed"] is None
    assert metrics["seed_protocol_text"].startswith("Each seed draws its own split")
    predictions = pd.read_csv(out / "predictions.csv")
    tests = [set(predictions.loc[(predictions["seed"] == seed) & (predictions["split"] == "test"), "id"])
             for seed in (0, 1)]
    assert tests[0] != tests[1]
    assert metrics["ensemble"] is None and metrics["ensemble_with_forest"] is None  # no common test rows
