"""The Table 3 search ranks trials by their best validation epoch, as the final fit selects (issue 15, item 6)."""

from __future__ import annotations

import json

import pytest

from cosnet_core.train import EpochReport
from cosnet_core.tune import EpochReporter, search
from tests.ray_fixture import ray_session  # noqa: F401  (the shared session fixture)

#: Validation MAE per epoch of three synthetic trials, keyed by learning rate. lr 1e-2 has the best epoch (0.10 at
#: epoch 2) but a bad last epoch (0.90); lr 5e-3 has the best *last* epoch (0.30), so a search that ranked trials
#: by their last epoch would pick it.
CURVES = {1e-2: [0.50, 0.10, 0.90], 5e-3: [0.40, 0.30, 0.30], 1e-3: [0.60, 0.55, 0.50]}


def synthetic_trial(point, train, val, base) -> None:
    """A trial that reports a fixed validation curve through the search's own reporter."""
    report = EpochReporter()
    for epoch, val_mae in enumerate(CURVES[point["lr"]][: base["epochs"]], start=1):
        report(EpochReport(epoch=epoch, train_loss=0.0, val_mae=val_mae, seconds=0.0, lr=point["lr"]))


@pytest.mark.slow
def test_the_search_picks_the_best_validation_epoch_not_the_last(ray_session, tmp_path) -> None:  # noqa: F811
    found = search([], [], {}, num_samples=1, epochs=3, grace_period=3, full_grid=True, storage_path=tmp_path,
                   name="synthetic", trial=synthetic_trial, space={"lr": tuple(CURVES)})
    assert found["trials"] == 3 and found["epochs_per_trial"] == [3, 3, 3]
    assert found["best_config"] == {"lr": 1e-2}
    assert (found["best_val_mae"], found["best_epoch"]) == (pytest.approx(0.10), 2)
    # the old rule (the last reported epoch) would have chosen lr 5e-3
    by_last = min(found["trial_results"], key=lambda trial: trial["last_val_mae"])
    assert by_last["config"] == {"lr": 5e-3}


@pytest.mark.slow
def test_cli_tune_runs_the_same_search_and_writes_the_choice(ray_session, tmp_path) -> None:  # noqa: F811
    from cosnet_core.cli import main
    from cosnet_core.hparams import SEARCH_SPACE
    from tests.cosnet_core.test_train import toy_samples

    path = tmp_path / "data.csv"
    path.write_text("formula,value\n" + "".join(f"{s.formula},{s.target}\n" for s in toy_samples(30)))
    out = tmp_path / "search"
    status = main(["tune", "--data", str(path), "--formula-col", "formula", "--target-col", "value",
                   "--mode", "composition", "--trials", "2", "--trial-epochs", "2", "--grace-period", "2",
                   "--hidden-dim", "8", "--batch-size", "16", "--device", "cpu", "--quiet", "--out", str(out)])
    assert status == 0
    found = json.loads((out / "tune.json").read_text())
    assert found["trials"] == 2 and found["epochs"] == 2 and found["rank_metric"] == "best_val_mae"
    assert all(found["best_config"][name] in values for name, values in SEARCH_SPACE.items())
    best = min(found["trial_results"], key=lambda trial: trial["best_val_mae"])
    assert found["best_config"] == best["config"] and found["best_val_mae"] == best["best_val_mae"]
    assert found["train_config"]["hidden_dim"] == 8 and found["preset"] == "defaults"
    assert "--lr" in found["train_command"]  # the command that trains the chosen configuration
