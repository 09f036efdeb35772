"""The Training page's non-negative and censored-row choices reach the study and its runs (issue 15 item 7)."""

from __future__ import annotations

import os

from jobs import store
from tests.pages.test_training_page import _page_on_a_new_dataset, _selectbox, texts


def test_nonnegative_and_censored_choices_reach_the_runs(app_test, app_env, monkeypatch):
    import jobs
    from cosnet_core.hparams import CENSORED_TRAINING_DEFAULT
    from jobs.training import run_specs, validate_study_payload

    monkeypatch.setattr(jobs, "ensure_executor", lambda *a, **k: None)  # the job is only queued, not run
    at, version_id = _page_on_a_new_dataset(app_test)
    nonnegative = _selectbox(at, "Non-negative predictions")
    censored = _selectbox(at, "Rows whose value is a bound (e.g. <1E-10, kept as bounds on the Datasets page)")
    assert nonnegative.value == "auto" and censored.value == CENSORED_TRAINING_DEFAULT == "bound"
    nonnegative.set_value("off").run()
    _selectbox(at, "Rows whose value is a bound (e.g. <1E-10, kept as bounds on the Datasets page)").set_value(
        "drop").run()
    next(b for b in at.button if b.label == "Launch study").click().run()
    assert not at.exception, at.exception
    assert "Study queued" in texts(at)
    db_url = os.environ["COSNET_DATABASE_URL"]
    (job,) = store.pending_study_jobs(db_url, version_id)
    payload = validate_study_payload(store.job_row(db_url, job["id"])["payload"])
    config = run_specs(payload)[0]["config"]
    assert config["nonnegative"] == "off" and config["censored"] == "drop"
