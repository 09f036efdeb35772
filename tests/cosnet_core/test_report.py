"""Table 1, per-sample ensembles and Figure 2 from a hand-made prediction table with known answers."""

import numpy as np
import pandas as pd
import pytest

from cosnet_core.report import figure2, per_sample, table1


def _table() -> pd.DataFrame:
    # entries 1,2 have a structure, 3,4 do not; entry 5 is in the training split and must be ignored.
    targets = {1: 1.0, 2: 2.0, 3: 3.0, 4: 4.0, 5: 9.0}
    errors = {  # (mode, seed) -> absolute error per entry (sign alternates)
        ("composition", 0): [0.4, 0.4, 0.2, 0.2, 5.0],
        ("composition", 1): [0.6, 0.6, 0.4, 0.4, 5.0],
        ("bimodal-aug", 0): [0.1, 0.1, 0.2, 0.2, 5.0],
        ("bimodal-aug", 1): [0.1, 0.1, 0.2, 0.2, 5.0],
    }
    rows = []
    for run_id, ((mode, seed), errs) in enumerate(errors.items(), start=1):
        for (entry, target), err in zip(targets.items(), errs, strict=True):
            sign = 1 if entry % 2 else -1
            rows.append({
                "run_id": run_id, "mode": mode, "seed": seed, "entry_id": entry,
                "split": "train" if entry == 5 else "test", "target": target, "prediction": target + sign * err,
                "w_c": 1.0 if entry in (3, 4, 5) else 0.25 * (seed + 1), "has_structure": entry in (1, 2),
                "formula": f"X{entry}", "structure_fraction": np.nan,
            })
    return pd.DataFrame(rows)


def test_table1_mean_std_best_and_significance():
    long = table1(_table()).long.set_index(["subset", "mode"])
    # composition: seed MAEs over all test rows 0.3 and 0.5 -> mean 0.4, sample std 0.1414
    assert long.loc[("all", "composition"), "mae_mean"] == pytest.approx(0.4)
    assert long.loc[("all", "composition"), "mae_std"] == pytest.approx(np.std([0.3, 0.5], ddof=1))
    assert long.loc[("with_structure", "composition"), "mae_mean"] == pytest.approx(0.5)
    assert long.loc[("without_structure", "composition"), "mae_mean"] == pytest.approx(0.3)
    assert long.loc[("all", "bimodal-aug"), "mae_mean"] == pytest.approx(0.15)
    assert long.loc[("all", "bimodal-aug"), "mae_std"] == pytest.approx(0.0)
    assert long.loc[("with_structure", "bimodal-aug"), "n"] == 2
    assert long.loc[("all", "bimodal-aug"), "best"] and not long.loc[("all", "composition"), "best"]
    # 0.4 - 0.15 = 0.25 > 0.1414 + 0 -> significant; without structure: 0.3±0.1414 vs 0.2±0 -> not
    assert long.loc[("all", "bimodal-aug"), "significant_vs_composition"] is True
    assert long.loc[("without_structure", "bimodal-aug"), "significant_vs_composition"] is False
    shown = table1(_table()).display()
    assert shown.loc["complete", "bimodal with augmentation"] == "0.150 ± 0.000 ★ †"
    assert shown.loc["complete", "test rows"] == 4


def test_per_sample_ensemble_mean_std_and_weights():
    table = per_sample(_table(), "composition").set_index("entry_id")
    assert list(table.index) == [1, 2, 3, 4, 5]
    # entry 1: predictions 1.4 and 1.6 -> mean 1.5, population std 0.1
    assert table.loc[1, "prediction"] == pytest.approx(1.5)
    assert table.loc[1, "prediction_std"] == pytest.approx(0.1)
    assert table.loc[1, "error"] == pytest.approx(0.5)
    assert table.loc[2, "abs_error"] == pytest.approx(0.5)
    assert table.loc[1, "w_c"] == pytest.approx(0.375) and table.loc[3, "w_c"] == 1.0
    assert table.loc[1, "formula"] == "X1" and table.loc[1, "n_seeds"] == 2


def test_figure2_groups_by_fraction_and_ignores_protocol_runs():
    base = _table()
    assert figure2(base).empty
    extra = base[base["mode"] == "composition"].copy()
    extra["structure_fraction"] = 0.5
    extra["run_id"] += 10
    frame = figure2(pd.concat([base, extra]))
    assert frame[["mode", "structure_fraction"]].values.tolist() == [["composition", 0.5]]
    assert frame["mae_mean"].iloc[0] == pytest.approx(0.4)
    # the experiment's runs do not leak into Table 1
    assert table1(pd.concat([base, extra])).long.set_index(["subset", "mode"]).loc[
        ("all", "composition"), "n_seeds"] == 2


BASELINES = {  # as stored with a study: one split, so std 0
    "mean": {s: {"mae_mean": 1.0, "mae_std": 0.0, "rmse_mean": 1.2, "r2_mean": -0.1, "n": n}
             for s, n in (("all", 4), ("without_structure", 2), ("with_structure", 2))},
    "rf_magpie": {s: {"mae_mean": 0.3, "mae_std": 0.0, "rmse_mean": 0.35, "r2_mean": 0.9, "n": n}
                  for s, n in (("all", 4), ("without_structure", 2), ("with_structure", 2))},
}


def test_table1_rmse_r2_and_baselines_beside_the_modes():
    result = table1(_table(), baselines=BASELINES)
    long = result.long.set_index(["subset", "mode"])
    # composition, all test rows: RMSE sqrt(0.1) and sqrt(0.26) per seed; R² 1 - 0.4/5 and 1 - 1.04/5
    assert long.loc[("all", "composition"), "rmse_mean"] == pytest.approx((np.sqrt(0.1) + np.sqrt(0.26)) / 2)
    assert long.loc[("all", "composition"), "r2_mean"] == pytest.approx((0.92 + 0.792) / 2)
    assert long.loc[("all", "rf_magpie"), "kind"] == "baseline" and long.loc[("all", "bimodal-aug"), "kind"] == "model"
    assert long.loc[("all", "rf_magpie"), "significant_vs_composition"] is None
    assert long.loc[("all", "bimodal-aug"), "best"]  # 0.15 beats the forest's 0.3
    shown = result.display()
    assert shown.loc["complete", "random forest on Magpie"] == "0.300 ± 0.000"
    assert list(shown.columns) == ["test rows", "composition only", "composition only, ensemble of 2 seeds (served)",
                                   "bimodal with augmentation", "bimodal with augmentation, ensemble of 2 seeds (served)",
                                   "training-set mean", "random forest on Magpie"]
    metrics = result.metrics()
    assert metrics.loc["random forest on Magpie", "R² · complete"] == "0.900"
    assert metrics.loc["composition only", "RMSE · complete"] == f"{(np.sqrt(0.1) + np.sqrt(0.26)) / 2:.3f}"
    assert metrics.loc["training-set mean", "model"] == "baseline"
    # composition only's served ensemble (0.4) is not better than the forest (0.3); bimodal-aug's (0.15) is
    (warning,) = result.warnings()
    assert warning.startswith("composition only, ensemble of 2 seeds (served) is not better than the random forest on "
                              "Magpie: test MAE 0.4 against 0.3 (one seed: 0.4 on average).")


def test_table1_warns_about_negative_r2():
    frame = _table()
    frame["prediction"] = frame["target"] + 10 * (frame["prediction"] - frame["target"])  # errors x 10
    found = table1(frame).warnings()  # no baselines stored: only the R² check
    assert len(found) == 2 and all("below 0" in w for w in found)
    assert found[0].startswith("composition only, ensemble of 2 seeds (served) has a test R² of -")


FOREST_ROWS = [  # as stored with a fixed-test study: one entry per seed, the same test rows
    {"seed": 0, "train_entry_ids": [5], "test_entry_ids": [1, 2, 3, 4], "predictions": {
        "mean": [9.0] * 4, "rf_magpie": [1.0, 2.0, 3.0, 4.0]}},
    {"seed": 1, "train_entry_ids": [5], "test_entry_ids": [4, 3, 2, 1], "predictions": {
        "mean": [9.0] * 4, "rf_magpie": [5.0, 3.0, 2.0, 2.0]}},
]


def test_table1_has_each_modes_served_ensemble_and_its_blend_with_the_forest():
    result = table1(_table(), baselines=BASELINES, baseline_rows=FOREST_ROWS)
    long = result.long.set_index(["subset", "mode"])
    # composition: seed predictions 1.4/1.6, 1.6/1.4, 3.2/3.4, 3.8/3.6 -> ensemble 1.5, 1.5, 3.3, 3.7: MAE 0.4
    ensemble = long.loc[("all", "composition:ensemble")]
    assert ensemble["kind"] == "ensemble" and ensemble["of_mode"] == "composition" and ensemble["n_seeds"] == 2
    assert ensemble["mae_mean"] == pytest.approx(0.4) and np.isnan(ensemble["mae_std"])
    # forest mean over seeds 1.5, 2, 3, 4.5; blend (1.5, 1.75, 3.15, 4.1): errors 0.5, 0.25, 0.15, 0.1
    blend = long.loc[("all", "composition:ensemble+forest")]
    assert blend["kind"] == "ensemble_with_forest" and blend["mae_mean"] == pytest.approx(0.25)
    assert long.loc[("with_structure", "composition:ensemble+forest"), "mae_mean"] == pytest.approx(0.375)
    assert long.loc[("without_structure", "composition:ensemble+forest"), "mae_mean"] == pytest.approx(0.125)
    # bimodal-aug: ensemble 1.1, 1.9, 3.2, 3.8; blend 1.3, 1.95, 3.1, 4.15: MAE 0.15
    assert long.loc[("all", "bimodal-aug:ensemble+forest"), "mae_mean"] == pytest.approx(0.15)
    assert long.loc[("all", "bimodal-aug:ensemble+forest"), "significant_vs_composition"] is None
    shown = result.display()
    assert shown.loc["complete", "composition only, ensemble of 2 seeds (served)"] == "0.400"
    assert shown.loc["complete", "composition only ensemble + forest (50/50)"] == "0.250"
    assert list(shown.columns)[1:4] == ["composition only", "composition only, ensemble of 2 seeds (served)",
                                        "composition only ensemble + forest (50/50)"]
    metrics = result.metrics()
    assert metrics.loc["composition only ensemble + forest (50/50)", "model"] == "COSNet + forest"
    assert metrics.loc["bimodal with augmentation, ensemble of 2 seeds (served)", "model"] == "COSNet (served)"
    # a study stored before the seed protocols: one dictionary for its single split
    single = table1(_table(), baselines=BASELINES, baseline_rows=FOREST_ROWS[0]).long.set_index(["subset", "mode"])
    # forest 1, 2, 3, 4 (exact): blend of composition's ensemble = (1.25, 1.75, 3.15, 3.85): MAE 0.2
    assert single.loc[("all", "composition:ensemble+forest"), "mae_mean"] == pytest.approx(0.2)


def test_no_ensemble_rows_when_the_seeds_scored_different_test_rows():
    frame = _table()
    resplit = (frame["run_id"] == 2) & (frame["entry_id"] == 1)
    frame.loc[resplit, "split"] = "val"  # seed 1 of composition did not test entry 1
    long = table1(frame, baseline_rows=FOREST_ROWS).long
    assert set(long.loc[long["of_mode"] == "composition", "kind"]) == {"model"}
    assert {"ensemble", "ensemble_with_forest"} <= set(long.loc[long["of_mode"] == "bimodal-aug", "kind"])
