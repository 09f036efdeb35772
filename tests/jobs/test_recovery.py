"""Recovery decisions on rows made in the test (no Ray): which dead jobs are resumed, failed or left alone."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import timedelta

import pytest
from sqlalchemy import select

from db.engine import session_scope
from db.models import Job, Run, utcnow
from jobs import recovery, store

pytestmark = pytest.mark.both_databases  # each test also runs on PostgreSQL (tests/conftest.py)


def dead_pid() -> int:
    """The pid of a process that has just exited (and was reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def add_job(db_url: str, kind: str, status: str, *, pid: int | None, attempts: int = 1, host: str | None = None,
            beat_age_s: float = 0.0, with_run: bool = False) -> int:
    with session_scope(db_url) as session:
        job = Job(kind=kind, status=status, worker_pid=pid, worker_host=host or socket.gethostname(),
                  attempts=attempts, heartbeat_at=utcnow() - timedelta(seconds=beat_age_s), payload={})
        session.add(job)
        session.flush()
        if with_run:
            session.add(Run(dataset_version_id=1, job_id=job.id, mode="bimodal", status=status))
        return job.id


def statuses(db_url: str) -> dict[int, tuple[str, str | None]]:
    with session_scope(db_url) as session:
        return {j.id: (j.status, j.error) for j in session.scalars(select(Job))}


def test_dead_jobs_are_resumed_or_failed_and_nothing_else_is_touched(db_url, toy_version):
    gone = dead_pid()
    resumable = add_job(db_url, "train", "running", pid=gone, attempts=1, with_run=True)
    exhausted = add_job(db_url, "train", "running", pid=gone, attempts=recovery.MAX_ATTEMPTS, with_run=True)
    matching = add_job(db_url, "match", "running", pid=gone)
    study = add_job(db_url, "study", "running", pid=gone)
    alive = add_job(db_url, "train", "running", pid=os.getpid(), with_run=True)
    remote_fresh = add_job(db_url, "train", "running", pid=12345, host="gpu-node-7", beat_age_s=5)
    remote_stale = add_job(db_url, "match", "running", pid=12345, host="gpu-node-7", beat_age_s=600)
    queued = add_job(db_url, "train", "queued", pid=None)
    done = add_job(db_url, "train", "succeeded", pid=gone)

    actions = {job_id: action for job_id, action, _ in recovery.recover(db_url, stale_after_s=120)}

    assert actions == {resumable: "requeued", exhausted: "failed", matching: "failed", study: "requeued",
                       remote_stale: "failed"}
    after = statuses(db_url)
    assert after[resumable][0] == "queued"
    assert after[exhausted][0] == "failed" and f"process {gone}" in after[exhausted][1]
    assert "gave up after 3 attempts" in after[exhausted][1]
    assert after[matching][0] == "failed" and "not resumed" in after[matching][1]
    assert after[remote_stale][0] == "failed" and "no heartbeat for" in after[remote_stale][1]
    for untouched in (alive, remote_fresh):
        assert after[untouched] == ("running", None)
    assert after[queued] == ("queued", None) and after[done] == ("succeeded", None)
    with session_scope(db_url) as session:
        runs = {r.job_id: (r.status, r.error) for r in session.scalars(select(Run))}
    assert runs[resumable] == ("queued", None)  # its run waits to resume
    assert runs[exhausted][0] == "failed" and "gave up" in runs[exhausted][1]
    assert runs[alive] == ("running", None)
    assert "resuming from its last checkpoint" in store.job_row(db_url, resumable)["message"]


def test_a_task_error_before_the_job_started_fails_it_but_a_requeued_job_is_left_for_the_next_attempt(
    db_url, toy_version
):
    never_started = add_job(db_url, "train", "queued", pid=None, attempts=0)
    assert recovery.recover_job_after_task_error(db_url, never_started, "ImportError: x", 0) == "failed"
    assert store.job_row(db_url, never_started)["error"].startswith("its Ray task failed before starting")

    requeued_by_recovery = add_job(db_url, "train", "queued", pid=None, attempts=1)
    assert recovery.recover_job_after_task_error(db_url, requeued_by_recovery, "WorkerCrashedError", 0) == "untouched"
    assert store.job_row(db_url, requeued_by_recovery)["status"] == "queued"

    crashed = add_job(db_url, "train", "running", pid=dead_pid(), attempts=1)
    assert recovery.recover_job_after_task_error(db_url, crashed, "WorkerCrashedError", 0) == "requeued"
    running_again = add_job(db_url, "train", "running", pid=os.getpid(), attempts=2)
    assert recovery.recover_job_after_task_error(db_url, running_again, "WorkerCrashedError", 1) == "untouched"
