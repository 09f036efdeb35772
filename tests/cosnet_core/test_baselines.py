"""Baselines: the training-set mean (checked by hand) and the Magpie random forest, on the rows they are given."""

from __future__ import annotations

import math
import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import pytest
from pymatgen.core import Composition

from cosnet_core.baselines import BASELINES, BaselineCache, fit_baselines, summarize_baselines


@dataclass
class Row:
    id: str
    composition: Composition
    target: float
    structure: object | None = None


def _rows(items: list[tuple[str, str, float, bool]]) -> list[Row]:
    return [Row(i, Composition(f), t, object() if s else None) for i, f, t, s in items]


TRAIN = _rows([("a", "NaCl", 1.0, False), ("b", "KBr", 2.0, True), ("c", "LiF", 3.0, False),
               ("d", "MgO", 6.0, False)])
TEST = _rows([("e", "CsI", 2.0, True), ("f", "CaS", 5.0, False), ("g", "SrO", 3.0, False)])


def test_mean_baseline_matches_a_hand_computation() -> None:
    run = fit_baselines(TRAIN, TEST, n_estimators=10)
    assert run.train_ids == ["a", "b", "c", "d"] and run.test_ids == ["e", "f", "g"]
    np.testing.assert_allclose(run.predictions["mean"], [3.0, 3.0, 3.0])  # (1 + 2 + 3 + 6) / 4
    metrics = run.metrics()["mean"]
    # errors 1, 2, 0: MAE 1, RMSE sqrt(5/3); R² = 1 - 5 / SS_tot with SS_tot = 42/9 about the test mean 10/3
    assert metrics["all"]["mae"] == pytest.approx(1.0)
    assert metrics["all"]["rmse"] == pytest.approx(math.sqrt(5 / 3))
    assert metrics["all"]["r2"] == pytest.approx(1 - 5 / (42 / 9))
    assert metrics["with_structure"] == {"mae": pytest.approx(1.0), "rmse": pytest.approx(1.0),
                                         "r2": pytest.approx(float("nan"), nan_ok=True), "n": 1, "n_censored_excluded": 0}
    assert metrics["without_structure"]["mae"] == pytest.approx(1.0) and metrics["without_structure"]["n"] == 2


def test_forest_is_sklearns_forest_on_the_training_rows_magpie_features() -> None:
    from sklearn.ensemble import RandomForestRegressor

    from cosnet_core.descriptors import magpie_features

    run = fit_baselines(TRAIN, TEST, n_estimators=25, random_state=3)
    forest = RandomForestRegressor(n_estimators=25, random_state=3, n_jobs=1)
    forest.fit(magpie_features([r.composition for r in TRAIN]), [r.target for r in TRAIN])
    expected = forest.predict(magpie_features([r.composition for r in TEST]))
    np.testing.assert_allclose(run.predictions["rf_magpie"], expected)
    assert run.predictions["rf_magpie"].min() >= 1.0 and run.predictions["rf_magpie"].max() <= 6.0
    frame = run.to_frame()
    assert sorted(set(frame["baseline"])) == sorted(BASELINES) and frame["id"].tolist() == ["e", "f", "g"] * 2


def test_cache_fits_a_split_once_and_summary_has_the_models_keys() -> None:
    cache = BaselineCache()
    first = fit_baselines(TRAIN, TEST, cache=cache, n_estimators=5)
    assert fit_baselines(TRAIN, TEST, cache=cache, n_estimators=5) is first
    other = fit_baselines(TRAIN[:3], TEST, cache=cache, n_estimators=5)
    assert other is not first and other.train_ids == ["a", "b", "c"]
    summary = summarize_baselines([first, other])
    assert set(summary) == set(BASELINES)
    for subsets in summary.values():
        assert set(subsets) == {"all", "without_structure", "with_structure"}
        for entry in subsets.values():
            assert {"mae_mean", "mae_std", "rmse_mean", "r2_mean", "n"} <= set(entry)
    # mean baseline: MAE 1 on the full split; with the first three training rows the mean is 2: errors 0, 3, 1
    assert summary["mean"]["all"]["mae_mean"] == pytest.approx((1.0 + 4 / 3) / 2)
    assert summary["mean"]["all"]["n"] == 3
    assert summarize_baselines([]) == {}
    with pytest.raises(ValueError, match="at least one training row"):
        fit_baselines([], TEST)


def test_baselines_module_imports_no_torch() -> None:
    code = "import sys, cosnet_core.baselines; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_forest_for_new_rows_is_refitted_from_training_rows_deterministic_and_cached() -> None:
    from cosnet_core import baselines
    from cosnet_core.baselines import blend_with_forest, forest_predictions

    formulas = ["NaCl", "KBr", "LiF", "MgO"]
    sets = [(formulas, [1.0, 2.0, 3.0, 6.0]), (formulas[:3], [1.0, 2.0, 3.0])]
    new = [r.composition for r in TEST]
    baselines._FORESTS.clear()
    first = forest_predictions(sets, new)
    assert len(baselines._FORESTS) == 2  # one forest per training set, kept for the next call
    cached = dict(baselines._FORESTS)
    again = forest_predictions(sets, new)
    assert all(baselines._FORESTS[key] is forest for key, forest in cached.items())
    np.testing.assert_array_equal(first, again)
    baselines._FORESTS.clear()
    np.testing.assert_array_equal(first, forest_predictions(sets, new))  # re-fitted: the same forest (random_state)
    # the mean over seeds of the study's own forest baseline on those rows (fit_baselines, 500 trees)
    by_seed = [fit_baselines(TRAIN, TEST).predictions["rf_magpie"], fit_baselines(TRAIN[:3], TEST).predictions["rf_magpie"]]
    np.testing.assert_allclose(first, np.mean(by_seed, axis=0))
    np.testing.assert_allclose(blend_with_forest([2.0, 4.0, 6.0], [4.0, 4.0, 4.0]), [3.0, 4.0, 5.0])
    with pytest.raises(ValueError, match="training rows of at least one seed"):
        forest_predictions([], new)
