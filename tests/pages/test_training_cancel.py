"""The Training page cancels one run or a whole study and counts queued, running and stopping runs apart (issue 16,
item 6). Real SQLite rows made by the jobs' own store functions; the executor lock is held by the test so the page
believes an executor runs and starts none."""

from __future__ import annotations

import os

import pytest

import jobs
from jobs import store
from jobs.executor import _try_lock
from jobs.training import run_specs, validate_study_payload
from tests.jobs.conftest import TINY_TRAIN, make_dataset

PAGE = "pages/training.py"


@pytest.fixture()
def study_with_three_runs(app_env):
    """A running study: run 1 held by a worker, run 2 queued, run 3 already cancelled."""
    db_url = os.environ["COSNET_DATABASE_URL"]
    version_id = make_dataset(db_url)
    payload = validate_study_payload(
        {"dataset_version_id": version_id, "modes": ["composition"], "seeds": [0, 1, 2], "train": dict(TINY_TRAIN)}
    )
    study_job = jobs.submit("study", payload, db_url=db_url)
    store.claim_job(db_url, study_job, pid=os.getpid(), host="test", log_path="study.log")
    study_id = store.ensure_study(db_url, study_job, payload)
    store.create_runs(db_url, study_id, study_job, run_specs(payload))
    first, _, third = store.runs_of_study(db_url, study_id)
    store.claim_job(db_url, first["job_id"], pid=os.getpid(), host="test", log_path="run.log")
    jobs.cancel(third["job_id"], db_url=db_url)
    lock = _try_lock(app_env)  # "an executor runs": the page must not spawn one
    assert lock is not None
    yield db_url, version_id, study_job, study_id
    lock.close()


def _page(app_test, version_id):
    at = app_test()
    at.switch_page(PAGE)
    at.session_state["active_dataset_version_id"] = version_id
    at.run()
    assert not at.exception, at.exception
    return at


def _runs_caption(at) -> str:
    (caption,) = [c.value for c in at.caption if c.value.startswith("Runs: ")]
    return caption


def test_cancel_one_run_then_the_study_with_true_counters(app_test, study_with_three_runs):
    db_url, version_id, study_job, study_id = study_with_three_runs
    at = _page(app_test, version_id)
    assert _runs_caption(at) == "Runs: 1 queued · 1 running · 1 cancelled"

    choice = next(s for s in at.selectbox if s.label == "Cancel one run")
    first, second, _ = store.runs_of_study(db_url, study_id)
    assert list(choice.options) == [
        f"Run {first['id']} (composition, seed 0, running)", f"Run {second['id']} (composition, seed 1, queued)"
    ]
    choice.select_index(1)
    next(b for b in at.button if b.label == "Cancel run").click()
    at.run()
    assert not at.exception, at.exception
    assert [r["state"] for r in store.runs_of_study(db_url, study_id)] == ["running", "cancelled", "cancelled"]
    assert store.job_row(db_url, study_job)["status"] == "running"  # only that run
    assert _runs_caption(at) == "Runs: 0 queued · 1 running · 2 cancelled"

    next(b for b in at.button if b.label == "Cancel study").click()
    at.run()
    assert not at.exception, at.exception
    assert _runs_caption(at) == "Runs: 0 queued · 0 running · 1 stopping · 2 cancelled"
    assert any(f"Study {study_id}** · cancelling" in m.value for m in at.markdown)
    assert not [b for b in at.button if b.label in ("Cancel study", "Cancel run")]  # already asked to stop
