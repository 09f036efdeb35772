"""Issue 16, item 9: while a study runs, the Training page shows the time left computed from the epochs that study
has already timed (jobs.estimate), and says so before its first epoch."""

from __future__ import annotations

from jobs import store
from tests.pages.test_training_cancel import _page, study_with_three_runs  # noqa: F401  (module fixture)


def _time_left(at) -> str:
    (caption,) = [c.value for c in at.caption if c.value.startswith("Time left")]
    return caption


def test_time_left_comes_from_the_epochs_the_study_has_timed(app_test, study_with_three_runs, monkeypatch):  # noqa: F811
    db_url, version_id, _, study_id = study_with_three_runs
    monkeypatch.setenv("COSNET_JOBS_CPUS_PER_RUN", "1000")  # one run at a time, whatever this machine has
    at = _page(app_test, version_id)
    assert _time_left(at) == "Time left: known after the first epoch of this study."

    running, queued, _ = store.runs_of_study(db_url, study_id)  # run 1 running, run 2 queued (2 epochs each)
    assert (running["state"], queued["state"], running["n_epochs"]) == ("running", "queued", 2)
    store.write_epoch(db_url, running["id"], epoch=1, train_loss=1.0, val_mae=0.5, seconds=7.5, lr=1e-3)
    at.run()
    assert not at.exception, at.exception
    # 1 epoch left of run 1 and 2 of the queued run, 7.5 s each, plus the queued run's 10 s set-up: 32.5 s
    assert _time_left(at) == (
        "Time left: about 32 s at most (3 epochs to go; from the 1 epochs this study has timed, median per epoch: "
        "composition 7.5 s; early stopping may end runs sooner)."
    )
