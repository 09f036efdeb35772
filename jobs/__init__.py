"""Long work of COSNet Studio (training studies, bulk structure matching), recorded in the database and executed
by Ray. No Streamlit here.

Public API for the pages:

* :func:`submit` inserts a queued job (validating its payload first) and returns its id;
* :func:`ensure_executor` starts the long-lived executor process (which owns Ray) unless one runs;
* :func:`cancel` asks a job (and, for a study, its runs) to stop;
* :func:`run_inline` executes a queued job synchronously in this process (tests, command line).

Job functions receive a :class:`JobContext` and may raise :class:`JobCancelled`.
"""

from __future__ import annotations

from pathlib import Path

from db.access import Actor
from jobs.context import JobCancelled, JobContext

__all__ = [
    "JobCancelled",
    "JobContext",
    "cancel",
    "current_user",
    "ensure_executor",
    "executor_status",
    "run_inline",
    "submit",
]


def current_user() -> str:
    """The name recorded as ``created_by`` until authentication provides one (issue 9 replaces this).

    Returns:
        ``"local"``.
    """
    return "local"


def submit(
    kind: str, payload: dict, *, created_by: str | None = None, db_url: str | None = None, actor: Actor | None = None
) -> int:
    """Queue a job: validate the payload, insert the row; the executor picks it up within a second.

    Args:
        kind: a registered kind ("study", "train", "match").
        payload: the job function's arguments (JSON types).
        created_by: who asked (default :func:`current_user`).
        db_url: database URL (default: the configured one).
        actor: who asks (pages pass the logged-in user); work on a dataset they neither own nor administer is
            refused. None for trusted callers (command line, tests).

    Returns:
        The job id.

    Raises:
        ValueError: unknown kind or unusable payload (nothing is written).
        db.access.AccessDenied: the actor may not start work on that dataset (nothing is written).
    """
    from db.config import database_url
    from jobs import registry, store

    checked = registry.validate_payload(kind, payload)
    return store.create_job(db_url or database_url(), kind, checked, created_by or current_user(), actor=actor)


def cancel(job_id: int, *, db_url: str | None = None, actor: Actor | None = None) -> str | None:
    """Ask a job to stop: a queued job is cancelled at once, a running one at its next check (after an epoch).

    Args:
        job_id: the job (a study job cancels all of its runs).
        db_url: database URL (default: the configured one).
        actor: who asks (pages pass the logged-in user); None for trusted callers.

    Returns:
        The job's status after the request, None when there is no such job.

    Raises:
        db.access.AccessDenied: the actor may not cancel it.
    """
    from db.config import database_url
    from jobs import store

    return store.request_cancel(db_url or database_url(), job_id, actor=actor)


def ensure_executor(data_dir: Path | None = None, db_url: str | None = None) -> int | None:
    """Start the executor (``python -m jobs executor``, detached) unless one is alive; returns at once.

    Args:
        data_dir: the data directory (default: the configured one).
        db_url: database URL (default: the configured one).

    Returns:
        The executor's pid when known.
    """
    from jobs.executor import ensure_executor as _ensure

    return _ensure(data_dir, db_url)


def executor_status(data_dir: Path | None = None) -> dict | None:
    """The running executor's state (pid, Ray address, resources), or None when none runs.

    Args:
        data_dir: the data directory (default: the configured one).

    Returns:
        A dictionary or None.
    """
    from jobs.executor import executor_status as _status

    return _status(data_dir)


def run_inline(job_id: int, *, db_url: str | None = None, data_dir: Path | None = None) -> str:
    """Execute a queued job synchronously in this process (a study trains its runs one after another).

    Args:
        job_id: the job.
        db_url: database URL (default: the configured one).
        data_dir: data directory (default: the configured one).

    Returns:
        The job's final status.
    """
    from db.config import data_dir as configured_data_dir
    from db.config import database_url
    from jobs.executor import execute_job

    return execute_job(job_id, db_url or database_url(), data_dir or configured_data_dir(), inline=True)
