"""Evaluation: metrics per subset, seeds, alignment R² (Table 2), significance, ensembles, Figure 2 helper."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Lattice, Structure

from cosnet_core.evaluate import (
    alignment_r2,
    composition_weights,
    ensemble_metrics,
    ensemble_predictions,
    hide_structures,
    is_significant_difference,
    mean_std,
    seed_ensemble,
    structure_fraction_experiment,
    subset_metrics,
    summarize_over_seeds,
    volume_per_atom,
)
from tests.cosnet_core.test_train import tiny_config, toy_samples


def test_metrics_per_subset_match_hand_computed_values() -> None:
    target = [1.0, 2.0, 3.0, 4.0]
    prediction = [1.5, 2.0, 2.0, 4.0]
    has_structure = [True, False, True, False]
    metrics = subset_metrics(target, prediction, has_structure)
    assert metrics["all"]["mae"] == pytest.approx(1.5 / 4)
    assert metrics["all"]["rmse"] == pytest.approx(math.sqrt((0.25 + 1.0) / 4))
    assert metrics["all"]["r2"] == pytest.approx(1 - 1.25 / 5.0)
    assert metrics["with_structure"]["mae"] == pytest.approx((0.5 + 1.0) / 2)
    assert metrics["with_structure"]["n"] == 2
    assert metrics["without_structure"]["mae"] == 0.0
    assert metrics["without_structure"]["r2"] == 1.0
    empty = subset_metrics(target, prediction, [True] * 4)["without_structure"]
    assert empty["n"] == 0 and math.isnan(empty["mae"])


def test_mean_std_over_seeds() -> None:
    assert mean_std([1.0, 3.0]) == (2.0, pytest.approx(math.sqrt(2.0)))
    assert mean_std([5.0]) == (5.0, 0.0)
    assert mean_std([1.0, float("nan"), 3.0])[0] == 2.0
    summary = summarize_over_seeds(
        [subset_metrics([0, 1], [0, 2], [True, False]), subset_metrics([0, 1], [0, 4], [True, False])]
    )
    assert summary["all"]["mae_mean"] == pytest.approx((0.5 + 1.5) / 2)
    assert summary["without_structure"]["mae_mean"] == 2.0
    assert summary["without_structure"]["mae_std"] == pytest.approx(math.sqrt(2.0))
    assert summary["with_structure"]["n"] == 1


def test_significance_is_difference_larger_than_sum_of_stds() -> None:
    assert is_significant_difference(1.0, 0.1, 1.5, 0.2)
    assert not is_significant_difference(1.0, 0.3, 1.5, 0.2)


def test_alignment_r2_is_near_one_for_a_linear_representation_and_low_for_noise() -> None:
    rng = np.random.default_rng(0)
    representation = rng.normal(size=(60, 16))
    volume = representation @ rng.normal(size=16) + 12.0
    assert alignment_r2(representation, volume) > 0.99
    assert alignment_r2(representation, rng.normal(size=60)) < 0.2
    assert math.isnan(alignment_r2(representation[:4], volume[:4]))  # too few rows
    assert math.isnan(alignment_r2(representation, np.ones(60)))


def test_volume_per_atom_counts_partial_occupancy() -> None:
    ordered = Structure(Lattice.cubic(4.0), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    assert volume_per_atom(ordered) == pytest.approx(32.0)
    disordered = Structure(Lattice.cubic(4.0), [{"Na": 0.5}, "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    assert volume_per_atom(disordered) == pytest.approx(64.0 / 1.5)


def test_ensemble_mean_and_std_per_row() -> None:
    mean, std = ensemble_predictions([[1.0, 2.0], [3.0, 2.0]])
    assert mean.tolist() == [2.0, 2.0] and std.tolist() == [1.0, 0.0]


def _seed_frame(ids: list[str], predictions: list[float]) -> pd.DataFrame:
    targets = {"a": 1.0, "b": 2.0, "c": 4.0}
    return pd.DataFrame({"id": ids, "target": [targets[i] for i in ids], "prediction": predictions,
                         "has_structure": [i == "a" for i in ids]})


def test_seed_ensemble_metrics_match_a_hand_computation() -> None:
    # two seeds scored the same rows (in different orders): ensemble a = (1.5 + 0.5) / 2 = 1, b = 2.5, c = 3.5
    seeds = [_seed_frame(["a", "b", "c"], [1.5, 2.0, 3.0]), _seed_frame(["c", "a", "b"], [4.0, 0.5, 3.0])]
    ensemble = seed_ensemble(seeds)
    assert ensemble["id"].tolist() == ["a", "b", "c"] and ensemble["prediction"].tolist() == [1.0, 2.5, 3.5]
    found = ensemble_metrics(seeds)
    # errors 0, 0.5, -0.5: MAE 1/3, RMSE sqrt(0.5/3); R² = 1 - 0.5 / SS_tot, SS_tot = 42/9 about the mean 7/3
    assert found["all"] == {"mae": pytest.approx(1 / 3), "rmse": pytest.approx(math.sqrt(0.5 / 3)),
                            "r2": pytest.approx(1 - 0.5 / (42 / 9)), "n": 3, "members": 2, "n_censored_excluded": 0}
    assert found["with_structure"]["mae"] == pytest.approx(0.0) and found["with_structure"]["n"] == 1
    assert found["without_structure"]["mae"] == pytest.approx(0.5) and found["without_structure"]["n"] == 2


def test_ensemble_with_forest_is_the_fixed_half_half_blend() -> None:
    seeds = [_seed_frame(["a", "b", "c"], [1.5, 2.0, 3.0]), _seed_frame(["a", "b", "c"], [0.5, 3.0, 4.0])]
    forest = [pd.DataFrame({"id": ["a", "b", "c"], "prediction": [2.0, 2.0, 2.0]}),
              pd.DataFrame({"id": ["b", "a", "c"], "prediction": [2.0, 0.0, 3.0]})]
    # forest mean over seeds a 1, b 2, c 2.5; blend 0.5 * (1, 2.5, 3.5) + 0.5 * (1, 2, 2.5) = (1, 2.25, 3)
    found = ensemble_metrics(seeds, forest=forest)
    assert found["all"]["mae"] == pytest.approx((0 + 0.25 + 1.0) / 3)
    assert found["all"]["rmse"] == pytest.approx(math.sqrt((0.0625 + 1.0) / 3))
    assert found["all"]["members"] == 2 and found["without_structure"]["mae"] == pytest.approx(0.625)


def test_no_ensemble_when_the_seeds_scored_different_rows() -> None:
    resplit = [_seed_frame(["a", "b"], [1.0, 2.0]), _seed_frame(["b", "c"], [2.0, 4.0])]
    assert seed_ensemble(resplit) is None and ensemble_metrics(resplit) is None
    assert ensemble_metrics([]) is None
    seeds = [_seed_frame(["a", "b"], [1.0, 2.0])]
    assert ensemble_metrics(seeds, forest=[pd.DataFrame({"id": ["a"], "prediction": [1.0]})]) is None
    assert ensemble_metrics(seeds, forest=[]) is None


def test_composition_weights_keep_structured_rows_sorted() -> None:
    table = pd.DataFrame({"id": ["a", "b", "c"], "has_structure": [True, False, True], "w_c": [0.7, 1.0, 0.2]})
    assert composition_weights(table)["id"].tolist() == ["c", "a"]


def test_hide_structures_removes_the_requested_share_without_touching_inputs() -> None:
    rows = toy_samples(20)  # 10 with a structure
    for fraction, expected in ((0.0, 10), (0.4, 6), (1.0, 0)):
        stripped = hide_structures(rows, fraction, seed=1)
        assert sum(s.structure is not None for s in stripped) == expected
    assert sum(s.structure is not None for s in rows) == 10
    assert [s.id for s in hide_structures(rows, 0.4, seed=1)] == [s.id for s in rows]
    with pytest.raises(ValueError):
        hide_structures(rows, 1.5)


@pytest.mark.slow
def test_structure_fraction_experiment_reports_each_fraction_and_mode() -> None:
    rows = toy_samples(30)
    table = structure_fraction_experiment(
        rows[:18], rows[18:24], rows[24:], tiny_config(epochs=1), fractions=(0.0, 1.0), modes=("bimodal",)
    )
    assert table[["hidden_fraction", "mode"]].values.tolist() == [[0.0, "bimodal"], [1.0, "bimodal"]]
    assert table["n_test_with_structure"].tolist() == [3, 0]
    assert table["test_mae"].notna().all()
