"""Cancel what you mean (issue 16, item 6): one run or a whole study; a queued run of a cancelled study never
starts (checked when a worker claims it); the counters tell queued, running and stopping runs apart.

Real SQLite, the real job runner (:func:`jobs.executor.execute_job`) and, in the slow test, the real executor
over Ray.
"""

from __future__ import annotations

import os

import pytest
from sqlalchemy import func, select

import jobs
from db.engine import session_scope
from db.models import EpochMetric
from jobs import store
from jobs.executor import execute_job
from jobs.training import progress_message, run_specs, validate_study_payload
from tests.jobs.conftest import TINY_TRAIN, wait_until

pytestmark = pytest.mark.both_databases  # each test also runs on PostgreSQL (tests/conftest.py)


def _payload(version_id: int, seeds=(0,)) -> dict:
    return validate_study_payload(
        {"dataset_version_id": version_id, "modes": ["composition"], "seeds": list(seeds), "train": dict(TINY_TRAIN)}
    )


def _study_in_flight(db_url: str, version_id: int, seeds=(0,)) -> tuple[int, int, dict]:
    """A study job claimed by a worker that has made its study row (as run_study_job does first)."""
    payload = _payload(version_id, seeds)
    study_job = jobs.submit("study", payload, db_url=db_url)
    assert store.claim_job(db_url, study_job, pid=os.getpid(), host="test", log_path="study.log") is not None
    return study_job, store.ensure_study(db_url, study_job, payload), payload


def _epochs(db_url: str) -> int:
    with session_scope(db_url) as session:
        return session.scalar(select(func.count()).select_from(EpochMetric))


def test_runs_made_after_their_study_was_cancelled_never_start(db_url, toy_version, app_env):
    """The study job passed its last check, then the user cancelled, then it created its runs: the race the
    claim-time check closes (before, the run trained to the end)."""
    study_job, study_id, payload = _study_in_flight(db_url, toy_version)
    assert jobs.cancel(study_job, db_url=db_url) == "running"  # no runs yet: nothing else to cancel now
    store.create_runs(db_url, study_id, study_job, run_specs(payload))
    (run,) = store.runs_of_study(db_url, study_id)
    assert run["state"] == "queued" and not run["cancel_requested"]

    assert execute_job(run["job_id"], db_url, app_env, inline=True) == "cancelled"
    (run,) = store.runs_of_study(db_url, study_id)
    job = store.job_row(db_url, run["job_id"])
    assert (run["status"], run["state"], job["status"]) == ("cancelled", "cancelled", "cancelled")
    assert job["started_at"] is None and job["attempts"] == 0  # never claimed
    assert job["message"] == f"never started: study {study_id} was cancelled"
    assert run["epochs_done"] == 0 and _epochs(db_url) == 0


def test_a_requeued_run_whose_study_was_cancelled_does_not_resume(db_url, toy_version, app_env):
    """Recovery puts a dead worker's run back in the queue; the study was cancelled meanwhile."""
    study_job, study_id, payload = _study_in_flight(db_url, toy_version)
    store.create_runs(db_url, study_id, study_job, run_specs(payload))
    (run,) = store.runs_of_study(db_url, study_id)
    assert store.claim_job(db_url, run["job_id"], pid=os.getpid(), host="test", log_path="run.log") is not None
    assert jobs.cancel(study_job, db_url=db_url) == "running"
    assert store.requeue_job(db_url, run["job_id"], "worker died")
    assert store.runs_of_study(db_url, study_id)[0]["state"] == "queued"
    assert execute_job(run["job_id"], db_url, app_env, inline=True) == "cancelled"
    (run,) = store.runs_of_study(db_url, study_id)
    assert run["state"] == "cancelled" and _epochs(db_url) == 0


def test_cancelling_one_run_leaves_the_others_and_the_study_summarises_the_rest(db_url, toy_version, app_env):
    study_job, study_id, payload = _study_in_flight(db_url, toy_version, seeds=(0, 1))
    store.create_runs(db_url, study_id, study_job, run_specs(payload))
    first, second = store.runs_of_study(db_url, study_id)
    assert jobs.cancel(second["job_id"], db_url=db_url) == "cancelled"
    assert [r["state"] for r in store.runs_of_study(db_url, study_id)] == ["queued", "cancelled"]
    assert store.job_row(db_url, study_job)["cancel_requested"] is False  # the study itself goes on

    # the study job resumes (as after a restart): it trains the queued run and summarises
    assert store.requeue_job(db_url, study_job, "resumed by the test")
    assert jobs.run_inline(study_job, db_url=db_url, data_dir=app_env) == "succeeded"
    runs = store.runs_of_study(db_url, study_id)
    assert [(r["seed"], r["state"]) for r in runs] == [(0, "succeeded"), (1, "cancelled")]
    assert runs[1]["epochs_done"] == 0
    assert store.study_row(db_url, study_id)["status"] == "succeeded"
    assert store.job_row(db_url, study_job)["message"] == "finished"
    results = store.study_row(db_url, study_id)["results"]
    assert results["table1"]["composition"]["seeds"] == [0], results["table1"]


def test_a_study_whose_runs_were_all_cancelled_one_by_one_is_cancelled_not_failed(db_url, toy_version, app_env):
    study_job, study_id, payload = _study_in_flight(db_url, toy_version, seeds=(0, 1))
    store.create_runs(db_url, study_id, study_job, run_specs(payload))
    for run in store.runs_of_study(db_url, study_id):
        jobs.cancel(run["job_id"], db_url=db_url)
    assert store.requeue_job(db_url, study_job, "resumed by the test")
    assert jobs.run_inline(study_job, db_url=db_url, data_dir=app_env) == "cancelled"
    assert store.study_row(db_url, study_id)["status"] == "cancelled"
    assert store.job_row(db_url, study_job)["error"] is None


def _row(status, job_status, cancel_requested=False):
    return {"status": status, "job_status": job_status, "cancel_requested": cancel_requested}


@pytest.mark.parametrize(
    ("row", "state"),
    [
        (_row("queued", "queued"), "queued"),
        (_row("queued", "running"), "running"),  # claimed, loading data before its first epoch
        (_row("running", "running"), "running"),
        (_row("running", "running", True), "stopping"),
        (_row("running", "failed"), "failed"),  # the worker died and recovery failed the job
        (_row("cancelled", "cancelled"), "cancelled"),
        (_row("succeeded", "succeeded"), "succeeded"),
        (_row("queued", None), "queued"),
    ],
)
def test_run_state_tells_queued_running_and_stopping_apart(row, state):
    assert store.run_state(row) == state


def test_progress_message_counts_queued_and_running_separately():
    runs = [
        _row("succeeded", "succeeded"), _row("cancelled", "cancelled"), _row("queued", "running"),
        _row("running", "running", True), _row("queued", "queued"), _row("queued", "queued"),
    ]
    for run in runs:
        run["state"] = store.run_state(run)
    assert store.run_counts(runs) == {
        "queued": 2, "running": 1, "stopping": 1, "succeeded": 1, "failed": 0, "cancelled": 1,
    }
    assert progress_message(runs) == "2/6 runs finished (1 cancelled), 1 running, 1 stopping, 2 queued"


@pytest.mark.slow
def test_the_executor_never_starts_a_queued_run_of_a_cancelled_study(executor_thread, db_url, toy_version):
    study_job, study_id, payload = _study_in_flight(db_url, toy_version, seeds=(0, 1))
    assert jobs.cancel(study_job, db_url=db_url) == "running"
    store.create_runs(db_url, study_id, study_job, run_specs(payload))  # the executor picks these up
    wait_until(lambda: all(r["state"] in store.TERMINAL for r in store.runs_of_study(db_url, study_id)), 60,
               "the executor to take the queued runs")
    runs = store.runs_of_study(db_url, study_id)
    assert [r["state"] for r in runs] == ["cancelled", "cancelled"]
    assert all(store.job_row(db_url, r["job_id"])["started_at"] is None for r in runs)
    assert _epochs(db_url) == 0
