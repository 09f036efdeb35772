"""Recovery: find jobs marked running whose worker is dead, and resume or fail them. Nothing else is touched.

A running job's worker is judged by what its row says: on this host, by whether its process id still exists;
on another host (a Ray cluster), by whether its heartbeat is older than ``stale_after_s``. A dead job is then

* a training job ("train") with attempts left: put back in the queue; it resumes from the checkpoint its run
  wrote after the last finished epoch (``cosnet_core.train.fit(resume_from=...)``);
* a study job: put back in the queue (it only coordinates; it finds its study and runs again);
* anything else, or a job out of attempts: marked failed with the reason (which worker died, when).

A training job's fit runs in a separate compute task (:mod:`jobs.ray_backend`), possibly on another node; when that
task's worker or node dies, the job's own task (alive on the executor's node) resumes or fails the job in the same
way at once (:func:`recover_dead_job`, called by :func:`jobs.executor.execute_job`), from the last checkpoint the
job's task received and stored.
"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime
from typing import Any

from jobs import store

MAX_ATTEMPTS = 3
RESUMABLE_KINDS = ("train", "study")


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine and is not a zombie.

    Args:
        pid: the process id.

    Returns:
        True when alive.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def worker_dead(job: dict[str, Any], *, stale_after_s: float, now: datetime | None = None) -> str | None:
    """Why a running job's worker is presumed dead, or None when it looks alive.

    Args:
        job: a row of :func:`jobs.store.running_jobs`.
        stale_after_s: heartbeat age beyond which a worker on another host is presumed dead.
        now: the current time (UTC).

    Returns:
        The reason, or None.
    """
    now = now or datetime.now(UTC)
    pid, host = job.get("worker_pid"), job.get("worker_host")
    if pid and host == socket.gethostname():
        return None if process_alive(int(pid)) else f"its worker process {pid} on {host} is gone"
    beat = job.get("heartbeat_at")
    if beat is None:
        return "it has no worker and no heartbeat"
    age = (now - beat).total_seconds()
    if age > stale_after_s:
        return f"its worker {pid} on {host} sent no heartbeat for {age:.0f} s"
    return None


def recover_dead_job(db_url: str, job: dict[str, Any], reason: str) -> str:
    """Resume (re-queue) or fail one running job whose worker is dead.

    Args:
        db_url: database URL.
        job: a row of :func:`jobs.store.running_jobs`.
        reason: why the worker is presumed dead.

    Returns:
        "requeued", "failed", or "untouched" when the row changed meanwhile.
    """
    attempts = int(job.get("attempts") or 0)
    if job["kind"] in RESUMABLE_KINDS and attempts < MAX_ATTEMPTS:
        what = "resuming from its last checkpoint" if job["kind"] == "train" else "restarting its coordination"
        message = f"recovered: {reason}; {what} (attempt {attempts + 1} of {MAX_ATTEMPTS})"
        return "requeued" if store.requeue_job(db_url, job["id"], message) else "untouched"
    if job["kind"] in RESUMABLE_KINDS:
        failure = f"{reason}; gave up after {attempts} attempts"
    else:
        failure = f"{reason}; a {job['kind']!r} job is not resumed, launch it again"
    return "failed" if store.fail_dead_job(db_url, job["id"], failure) else "untouched"


def recover(db_url: str, *, stale_after_s: float = 120.0) -> list[tuple[int, str, str]]:
    """One recovery pass over every running job.

    Args:
        db_url: database URL.
        stale_after_s: heartbeat age beyond which a worker on another host is presumed dead.

    Returns:
        ``(job id, action, reason)`` for each job acted on.
    """
    actions = []
    for job in store.running_jobs(db_url):
        reason = worker_dead(job, stale_after_s=stale_after_s)
        if reason is not None:
            actions.append((job["id"], recover_dead_job(db_url, job, reason), reason))
    return actions


def recover_job_after_task_error(db_url: str, job_id: int, error: str, attempts_at_submit: int) -> str:
    """The executor's Ray task for a job ended with an error (e.g. its worker was killed).

    A job still marked running whose worker is gone is resumed or failed like in :func:`recover`; a job that
    never started (still queued with the attempt count it had when the task was submitted) is failed with the
    error, so it is not retried forever; a job that already ended, was already re-queued by a recovery pass, or
    runs again in a live worker, is left alone.

    Args:
        db_url: database URL.
        job_id: the job.
        error: the task's error.
        attempts_at_submit: ``Job.attempts`` when the task was submitted.

    Returns:
        What was done: "requeued", "failed" or "untouched".
    """
    row = store.job_row(db_url, job_id)
    if row is None:
        return "untouched"
    if row["status"] == "queued" and int(row["attempts"] or 0) <= attempts_at_submit:
        failed = store.fail_dead_job(db_url, job_id, f"its Ray task failed before starting: {error}", from_statuses=("queued",))
        return "failed" if failed else "untouched"
    if row["status"] != "running":
        return "untouched"
    job = next((j for j in store.running_jobs(db_url) if j["id"] == job_id), None)
    if job is None:
        return "untouched"
    reason = worker_dead(job, stale_after_s=0.0)
    if reason is None:
        return "untouched"
    return recover_dead_job(db_url, job, f"{reason} ({error})")
