"""Experimental target semantics (issue 15 item 7, issue 16 item 4): non-negative predictions, censored rows."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from cosnet_core.artifact import load_artifact, save_artifact
from cosnet_core.data import Sample, bound_direction
from cosnet_core.train import TrainConfig, censored_loss, decide_lower_bound, fit
from tests.cosnet_core.test_train import tiny_config, toy_samples

pytestmark = pytest.mark.slow  # trains small models (seconds each)


def band_gap_like(rows: list[Sample]) -> list[Sample]:
    """The toy target shifted down and cut at 0, like band gaps (about half the rows are 0, the 'metals')."""
    median = float(np.median([s.target for s in rows]))
    return [dataclasses.replace(s, target=max(float(s.target) - median, 0.0)) for s in rows]


def test_censored_loss_is_zero_below_an_upper_bound_and_positive_above() -> None:
    target = torch.tensor([1.0, 1.0, 1.0, 1.0, 1.0])
    prediction = torch.tensor([0.2, 1.5, 0.2, 1.5, 0.4])
    bound = torch.tensor([1, 1, -1, -1, 0])  # upper, upper, lower, lower, measured
    per_row = [float(censored_loss(prediction[i : i + 1], target[i : i + 1], bound[i : i + 1])) for i in range(5)]
    assert per_row[0] == 0.0  # below its upper bound: nothing to learn
    assert per_row[1] == pytest.approx(0.5)  # above it: penalised like a measurement
    assert per_row[2] == pytest.approx(0.8)  # below a lower bound
    assert per_row[3] == 0.0  # above a lower bound
    assert per_row[4] == pytest.approx(0.6)  # a measurement: |p - t| on either side
    assert float(censored_loss(prediction, target, bound)) == pytest.approx(sum(per_row) / 5)
    assert float(censored_loss(prediction, target, bound, "mse")) == pytest.approx((0.25 + 0.64 + 0.36) / 5)
    # without bounds it is the plain L1 / MSE
    assert float(censored_loss(prediction, target, None)) == pytest.approx(
        float(torch.nn.functional.l1_loss(prediction, target)))
    # the gradient of a row below its upper bound is zero, above it is not
    p = prediction.clone().requires_grad_(True)
    censored_loss(p, target, bound).backward()
    assert p.grad[0] == 0.0 and p.grad[1] > 0 and p.grad[4] < 0
    assert [bound_direction(s) for s in (None, "<", "<=", "≤", ">", ">=")] == [0, 1, 1, 1, -1, -1]
    with pytest.raises(ValueError, match="not <"):
        bound_direction("=")


def test_nonnegative_targets_give_no_negative_prediction(tmp_path) -> None:
    rows = band_gap_like(toy_samples(54))
    train, val = rows[:40], rows[40:]
    assert sum(s.target == 0 for s in rows) >= 20
    unbounded = fit(train, val, tiny_config(nonnegative="off", epochs=40, mode="composition"))
    raw = unbounded.predict(rows).prediction
    assert unbounded.normalizer.lower_bound is None
    assert (raw < 0).sum() >= 3, "the toy model must predict negatives for the test to mean anything"

    bounded = fit(train, val, tiny_config(epochs=40, mode="composition"))  # "auto": every training target ≥ 0
    assert bounded.config.nonnegative == "auto" and bounded.normalizer.lower_bound == 0.0
    predicted = bounded.predict(rows).prediction
    assert predicted.min() >= 0.0
    # the bound is applied to the output, not in the training graph: the same seed trains the same network
    assert [r.train_loss for r in bounded.history] == [r.train_loss for r in unbounded.history]
    if bounded.best_epoch == unbounded.best_epoch:
        np.testing.assert_allclose(predicted, np.maximum(raw, 0.0), rtol=0, atol=1e-6)
    # a bound never raises a row's error when its target respects the bound
    assert bounded.best_val_mae <= min(r.val_mae for r in unbounded.history) + 1e-9

    # the served model (an artifact read back) keeps the bound
    loaded = load_artifact(save_artifact(tmp_path / "run.pt", bounded))
    assert loaded.normalizer.lower_bound == 0.0
    assert loaded.predict(rows).prediction.min() >= 0.0


def test_a_negative_training_target_turns_the_bound_off() -> None:
    rows = band_gap_like(toy_samples(54))
    rows[3] = dataclasses.replace(rows[3], target=-0.5)
    assert decide_lower_bound("auto", rows[:40]) is None
    assert decide_lower_bound("auto", rows[4:40]) == 0.0  # decided on the training rows only
    assert decide_lower_bound("off", rows[4:40]) is None
    result = fit(rows[:40], rows[40:], tiny_config(epochs=2, mode="composition"))
    assert result.normalizer.lower_bound is None
    with pytest.raises(ValueError, match=r"training row 'LiI'.*-0.5 < 0"):
        fit(rows[:40], rows[40:], tiny_config(epochs=2, mode="composition", nonnegative="on"))
    with pytest.raises(ValueError, match="nonnegative"):
        TrainConfig(nonnegative="yes")


def test_censored_rows_are_dropped_or_trained_as_bounds_and_never_validate() -> None:
    rows = toy_samples(54)
    # rows 0-5 are upper bounds far below their value: dropping them or using them as bounds must differ
    censored = [dataclasses.replace(s, target=float(s.target) - 3.0, censored="<") for s in rows[:6]]
    val_bound = dataclasses.replace(rows[40], target=-50.0, censored="<")  # would dominate any MAE
    train, val = censored + rows[6:40], [val_bound, *rows[41:]]
    dropped = fit(train, val, tiny_config(epochs=3, mode="composition", censored="drop"))
    assert dropped.censored_rows == {"train_bounds": 0, "train_dropped": 6, "val_excluded": 1}
    assert dropped.n_train == 34
    bounded = fit(train, val, tiny_config(epochs=3, mode="composition", censored="bound"))
    assert bounded.censored_rows == {"train_bounds": 6, "train_dropped": 0, "val_excluded": 1}
    assert bounded.n_train == 40
    # the validation MAE is over the 13 measured rows only (the -50 bound would add > 3 on average)
    assert all(r.val_mae < 10 for r in bounded.history)
    # the normaliser is fitted on measured training rows only, in both cases
    assert bounded.normalizer.mean == pytest.approx(dropped.normalizer.mean)
    assert [r.train_loss for r in bounded.history] != [r.train_loss for r in dropped.history]
