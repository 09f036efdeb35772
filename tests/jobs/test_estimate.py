"""Issue 16, item 9: the training time estimate comes from measured epochs and, once a study runs, from the epochs
it has timed itself (jobs.estimate)."""

from __future__ import annotations

import os
import time

import pytest

from jobs.estimate import RUN_OVERHEAD_S, estimate_study_seconds, measured_rates, remaining_study_seconds
from tests.cosnet_core.test_train import tiny_config, toy_samples


def _run(run_id: int, mode: str, state: str, done: int, n_epochs: int = 10) -> dict:
    return {"id": run_id, "mode": mode, "state": state, "epochs_done": done, "n_epochs": n_epochs}


def test_remaining_time_comes_from_the_studys_own_epochs():
    runs = [_run(1, "composition", "running", 3), _run(2, "bimodal", "running", 1), _run(3, "bimodal", "queued", 0),
            _run(4, "composition", "succeeded", 10), _run(5, "bimodal", "cancelled", 2)]
    epochs = [{"run_id": 1, "epoch": e, "seconds": s} for e, s in ((1, 2.0), (2, 2.0), (3, 4.0))]
    epochs += [{"run_id": 2, "epoch": 1, "seconds": 6.0}, {"run_id": 99, "epoch": 1, "seconds": 500.0}]  # not ours
    left = remaining_study_seconds(runs, epochs, parallel=2)
    # composition: median 2 s x 7 epochs left; bimodal: 6 s x (9 + 10) epochs; the queued run's set-up; 2 at a time
    assert left.seconds == pytest.approx((7 * 2.0 + 19 * 6.0 + RUN_OVERHEAD_S) / 2)
    assert left.epochs_left == 26 and left.epochs_timed == 4
    assert left.seconds_per_epoch == {"composition": 2.0, "bimodal": 6.0, "all": 3.0}
    # a mode not timed yet takes the median of every timed epoch; one lane when one run is left
    alone = remaining_study_seconds([_run(1, "composition", "succeeded", 10), _run(6, "bimodal-aug", "queued", 0, 4)],
                                    epochs, parallel=4)
    assert alone.seconds == pytest.approx(4 * 2.0 + RUN_OVERHEAD_S)  # median of 2, 2, 4 (run 2 is not in the study)
    assert remaining_study_seconds(runs, [], parallel=2) is None  # nothing timed yet: no number is made up


def test_the_launch_estimate_uses_the_measured_rate_of_each_mode():
    rates = {"composition": 1e-3, "bimodal": 4e-3, "all": 2e-3}
    seconds = estimate_study_seconds(100, {"composition": 2, "bimodal": 1, "bimodal-aug": 1}, 10, rates=rates,
                                     parallel=2)
    expected = 2 * (10 * 100 * 1e-3 + RUN_OVERHEAD_S) + (10 * 100 * 4e-3 + RUN_OVERHEAD_S) \
        + (10 * 100 * 2e-3 + RUN_OVERHEAD_S)  # bimodal-aug has no finished run: the rate of all modes
    assert seconds == pytest.approx(expected / 2)


def test_the_remaining_time_after_two_epochs_of_a_real_run_matches_the_rest_of_it():
    """A real tiny fit: the estimate made from its first two epochs against the time its other epochs took."""
    from cosnet_core.train import fit

    rows = toy_samples(54)
    timed: list[tuple[int, float]] = []
    marks: dict[int, float] = {}

    def callback(report) -> bool:
        timed.append((report.epoch, report.seconds))
        marks[report.epoch] = time.perf_counter()
        return False

    fit(rows[:40], rows[40:], tiny_config(epochs=8, mode="composition"), callback=callback)
    after_two = remaining_study_seconds([_run(1, "composition", "running", 2, n_epochs=8)],
                                        [{"run_id": 1, "epoch": e, "seconds": s} for e, s in timed[:2]])
    actual = marks[8] - marks[2]
    assert after_two.epochs_left == 6
    assert actual / 3 < after_two.seconds < actual * 3, (after_two.seconds, actual, timed)


@pytest.mark.both_databases
def test_measured_rates_per_mode_from_finished_runs(app_env):
    from db.engine import session_scope
    from db.models import Dataset, DatasetVersion, EpochMetric, Run

    url = os.environ["COSNET_DATABASE_URL"]
    assert measured_rates(url) == {}  # nothing finished: the page falls back to the reference speed
    with session_scope(url) as session:
        version = DatasetVersion(dataset=Dataset(name="d"), number=1, n_rows=10, n_kept=10, n_rejected=0)
        session.add(version)
        session.flush()
        for mode, seconds, status in (("composition", [9.0, 1.0, 3.0], "succeeded"),  # epoch 1 left out: 0.2
                                      ("composition", [9.0, 4.0], "succeeded"),  # 0.4
                                      ("bimodal", [9.0, 10.0], "succeeded"),  # 1.0
                                      ("bimodal", [9.0, 90.0], "failed")):  # not finished: ignored
            run = Run(dataset_version_id=version.id, mode=mode, seed=0, n_epochs=len(seconds), status=status,
                      config={"hidden_dim": 64})
            session.add(run)
            session.flush()
            session.add_all(EpochMetric(run_id=run.id, epoch=e, train_loss=1.0, val_mae=1.0, seconds=s)
                            for e, s in enumerate(seconds, start=1))
    rates = measured_rates(url, hidden_dim=64)
    assert rates == pytest.approx({"composition": 0.3, "bimodal": 1.0, "all": 0.4})
    assert measured_rates(url, hidden_dim=32) == {}
