"""Every database read and write the jobs need, each in one short transaction.

Workers in several processes write progress into the same SQLite file, so no function here keeps a transaction
open while computing: read what is needed, close, compute, then write in a new short transaction (the busy timeout
set in :mod:`db.engine` makes a writer wait for another instead of failing).

Links between rows: a study job (``Job.kind == "study"``) owns one :class:`~db.models.Study` (``Study.job_id``);
each :class:`~db.models.Run` of the study has its own training job (``Run.job_id``, ``Job.kind == "train"``,
payload ``{"run_id": ..., "study_job_id": ...}``).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select, update

from db.access import AccessDenied, Actor, dataset_id_of, require_dataset_owner, require_owner_of
from db.engine import session_scope
from db.models import Entry as EntryRow
from db.models import (
    EpochMetric,
    Job,
    ModelArtifact,
    Prediction,
    Run,
    Study,
    utcnow,
)
from db.models import Structure as StructureRow

TERMINAL = ("succeeded", "failed", "cancelled")
ACTIVE = ("queued", "running")


def as_utc(moment: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes; every time in the schema is UTC.

    Args:
        moment: a datetime or None.

    Returns:
        The same moment, timezone-aware in UTC.
    """
    if moment is None:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def json_safe(value: Any) -> Any:
    """Replace NaN/inf floats by None (JSON columns must hold valid JSON), recursively.

    Args:
        value: numbers, strings, lists and dicts.

    Returns:
        The same structure with non-finite floats as None.
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return json_safe(value.item())
    return value


# ---------------------------------------------------------------------------------------------------- jobs


def create_job(
    db_url: str, kind: str, payload: dict[str, Any], created_by: str = "local", *, actor: Actor | None = None
) -> int:
    """Insert a queued job.

    Args:
        db_url: database URL.
        kind: a kind registered in :mod:`jobs.registry`.
        payload: JSON-serialisable arguments of the job function.
        created_by: who asked for it (provenance).
        actor: who asks; work on a dataset version (``dataset_version_id``) or a run (``run_id``) is refused
            unless the actor owns that dataset or is an administrator. None for trusted callers.

    Returns:
        The new job id.

    Raises:
        AccessDenied: the actor may not start work on that dataset (nothing is written).
    """
    with session_scope(db_url) as session:
        if actor is not None:
            if payload.get("dataset_version_id") is not None:
                require_owner_of(session, actor, version_id=int(payload["dataset_version_id"]))
            if payload.get("run_id") is not None:
                require_owner_of(session, actor, run_id=int(payload["run_id"]))
        job = Job(kind=kind, payload=json_safe(payload), created_by=created_by, status="queued", progress=0.0)
        session.add(job)
        session.flush()
        return job.id


def job_row(db_url: str, job_id: int) -> dict[str, Any] | None:
    """One job as a plain dictionary (None when it does not exist).

    Args:
        db_url: database URL.
        job_id: the job.

    Returns:
        The job's columns.
    """
    with session_scope(db_url) as session:
        job = session.get(Job, job_id)
        if job is None:
            return None
        return {c.name: getattr(job, c.name) for c in Job.__table__.columns}


def claim_job(db_url: str, job_id: int, *, pid: int, host: str, log_path: str) -> dict[str, Any] | None:
    """Move a queued job to running, atomically (two processes never both run it).

    Args:
        db_url: database URL.
        job_id: the job.
        pid: process id of the worker that runs it.
        host: host name of that worker.
        log_path: the job's log file.

    Returns:
        ``{"kind", "payload", "attempts"}`` of the claimed job, or None when it was not queued any more
        (cancelled meanwhile, or claimed by someone else) or must never start: a training job whose run or study
        was cancelled is marked cancelled here, at claim time, so it never trains (see :func:`_cancelled_at_claim`).
    """
    now = utcnow()
    with session_scope(db_url) as session:
        reason = _cancelled_at_claim(session, job_id)
        if reason is not None:
            _cancel_queued(session, job_id, reason, now)
            return None
        claimed = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == "queued")
            .values(
                status="running",
                worker_pid=pid,
                worker_host=host,
                log_path=log_path,
                heartbeat_at=now,
                attempts=Job.attempts + 1,
                error=None,
            )
        ).rowcount
        if not claimed:
            return None
        job = session.get(Job, job_id)
        if job.started_at is None:
            job.started_at = now
        return {"kind": job.kind, "payload": dict(job.payload or {}), "attempts": job.attempts}


def _cancelled_at_claim(session: Any, job_id: int) -> str | None:
    """Why a queued job must not start although it is still queued, or None when it may.

    A study's training jobs can be created just after the study was cancelled (the study job was between its
    last check and :func:`create_runs`), and a job put back in the queue by recovery keeps its cancel request:
    checking the job, its run, its study and the study's job when a worker claims it closes every such gap.
    """
    job = session.get(Job, job_id)
    if job is None or job.status != "queued":
        return None
    if job.cancel_requested:
        return "cancelled before it started"
    run = session.scalar(select(Run).where(Run.job_id == job_id).limit(1))
    if run is None:
        return None
    if run.cancel_requested:
        return "cancelled before it started"
    study = run.study
    if study is None:
        return None
    parent = session.get(Job, study.job_id) if study.job_id is not None else None
    if study.status == "cancelled" or (parent is not None and (parent.cancel_requested or parent.status == "cancelled")):
        return f"never started: study {study.id} was cancelled"
    return None


def _cancel_queued(session: Any, job_id: int, message: str, now: datetime) -> None:
    """Mark a queued job and its run cancelled (nothing else changes; a job that left the queue is untouched)."""
    changed = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == "queued")
        .values(status="cancelled", cancel_requested=True, finished_at=now, message=message)
    ).rowcount
    if changed:
        session.execute(
            update(Run)
            .where(Run.job_id == job_id, Run.status.in_(ACTIVE))
            .values(status="cancelled", cancel_requested=True, finished_at=now)
        )


def finish_job(db_url: str, job_id: int, status: str, *, error: str | None = None, message: str | None = None) -> None:
    """Record the end of a job.

    Args:
        db_url: database URL.
        job_id: the job.
        status: "succeeded", "failed" or "cancelled".
        error: the reason of a failure.
        message: a last message for the page.
    """
    if status not in TERMINAL:
        raise ValueError(f"finish_job: {status!r} is not one of {TERMINAL}")
    with session_scope(db_url) as session:
        job = session.get(Job, job_id)
        if job is None:
            return
        job.status = status
        job.error = error
        job.finished_at = utcnow()
        job.heartbeat_at = job.finished_at
        if status == "succeeded":
            job.progress = 1.0
            job.message = "finished"
        if message is not None:
            job.message = message


def set_job_progress(db_url: str, job_id: int, fraction: float, message: str | None) -> None:
    """Write progress and heartbeat of a running job.

    Args:
        db_url: database URL.
        job_id: the job.
        fraction: 0..1.
        message: shown on the page (None keeps the previous one).
    """
    values: dict[str, Any] = {"progress": fraction, "heartbeat_at": utcnow()}
    if message is not None:
        values["message"] = message
    with session_scope(db_url) as session:
        session.execute(update(Job).where(Job.id == job_id).values(**values))


def heartbeat(db_url: str, job_id: int) -> None:
    """Refresh the heartbeat of a running job (a worker that stops doing this is presumed dead).

    Args:
        db_url: database URL.
        job_id: the job.
    """
    with session_scope(db_url) as session:
        session.execute(update(Job).where(Job.id == job_id, Job.status == "running").values(heartbeat_at=utcnow()))


def job_cancel_requested(db_url: str, job_id: int) -> bool:
    """Whether cancellation was asked for.

    Args:
        db_url: database URL.
        job_id: the job.

    Returns:
        ``Job.cancel_requested``.
    """
    with session_scope(db_url) as session:
        return bool(session.scalar(select(Job.cancel_requested).where(Job.id == job_id)))


def queued_jobs(db_url: str) -> list[dict[str, Any]]:
    """Queued jobs, oldest first.

    Args:
        db_url: database URL.

    Returns:
        ``[{"id", "kind", "payload", "attempts"}]``.
    """
    with session_scope(db_url) as session:
        rows = session.execute(
            select(Job.id, Job.kind, Job.payload, Job.attempts).where(Job.status == "queued").order_by(Job.id)
        )
        return [{"id": i, "kind": k, "payload": dict(p or {}), "attempts": a or 0} for i, k, p, a in rows]


def running_jobs(db_url: str) -> list[dict[str, Any]]:
    """Jobs marked running, with what recovery needs to judge whether their worker is alive.

    Args:
        db_url: database URL.

    Returns:
        ``[{"id", "kind", "payload", "attempts", "worker_pid", "worker_host", "heartbeat_at"}]``.
    """
    with session_scope(db_url) as session:
        rows = session.execute(
            select(Job.id, Job.kind, Job.payload, Job.attempts, Job.worker_pid, Job.worker_host, Job.heartbeat_at)
            .where(Job.status == "running")
            .order_by(Job.id)
        )
        return [
            {
                "id": r[0],
                "kind": r[1],
                "payload": dict(r[2] or {}),
                "attempts": r[3],
                "worker_pid": r[4],
                "worker_host": r[5],
                "heartbeat_at": as_utc(r[6]),
            }
            for r in rows
        ]


def requeue_job(db_url: str, job_id: int, message: str) -> bool:
    """Put a running job whose worker died back in the queue (its run, if any, too).

    Args:
        db_url: database URL.
        job_id: the job.
        message: why (shown on the page and kept in the job's message).

    Returns:
        True when the job was running and is now queued.
    """
    with session_scope(db_url) as session:
        changed = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == "running")
            .values(status="queued", worker_pid=None, message=message)
        ).rowcount
        if changed:
            session.execute(
                update(Run).where(Run.job_id == job_id, Run.status == "running").values(status="queued")
            )
        return bool(changed)


def fail_dead_job(db_url: str, job_id: int, reason: str, *, from_statuses: tuple[str, ...] = ("running",)) -> bool:
    """Mark a job (and its run) failed because its worker died; only touches it in ``from_statuses``.

    Args:
        db_url: database URL.
        job_id: the job.
        reason: the failure reason.
        from_statuses: statuses the job may be in for this to apply.

    Returns:
        True when the job was changed.
    """
    now = utcnow()
    with session_scope(db_url) as session:
        changed = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status.in_(from_statuses))
            .values(status="failed", error=reason, finished_at=now)
        ).rowcount
        if changed:
            session.execute(
                update(Run)
                .where(Run.job_id == job_id, Run.status.in_(ACTIVE))
                .values(status="failed", error=reason, finished_at=now)
            )
        return bool(changed)


def request_cancel(db_url: str, job_id: int, *, actor: Actor | None = None) -> str | None:
    """Ask a job to stop. A queued job is cancelled at once; a running one stops at its next check.

    For a study job, every run of the study is cancelled too; for a training job, its run.

    Args:
        db_url: database URL.
        job_id: the job.
        actor: who asks: the owner of the job's dataset or an administrator (a job on no dataset: whoever
            submitted it); None for trusted callers.

    Returns:
        The job's status after the request (None when there is no such job).

    Raises:
        AccessDenied: the actor may not cancel it (nothing changes).
    """
    now = utcnow()
    with session_scope(db_url) as session:
        job = session.get(Job, job_id)
        if job is None:
            return None
        if actor is not None:
            dataset_id = dataset_id_of(session, job_id=job_id)
            if dataset_id is not None:
                require_dataset_owner(session, dataset_id, actor)
            elif not (actor.is_admin or job.created_by == actor.username):
                raise AccessDenied(f"only {job.created_by} or an administrator may cancel job {job_id}")
        child_jobs: list[int] = []
        if job.kind == "study":
            study = session.scalar(select(Study).where(Study.job_id == job_id))
            if study is not None:
                child_jobs = [r.job_id for r in study.runs if r.job_id is not None]
                if study.status in ACTIVE:
                    study.status = "cancelled" if job.status == "queued" else study.status
        for target_id in [job_id, *child_jobs]:
            target = session.get(Job, target_id)
            if target is None or target.status in TERMINAL:
                continue
            target.cancel_requested = True
            session.execute(update(Run).where(Run.job_id == target_id).values(cancel_requested=True))
            if target.status == "queued":
                session.flush()
                _cancel_queued(session, target_id, "cancelled before it started", now)
                session.refresh(target)
        session.refresh(job)
        return job.status


# --------------------------------------------------------------------------------------- training data


def version_rows(db_url: str, version_id: int) -> list[dict[str, Any]]:
    """The trainable rows of a dataset version: kept entries with a target, with their accepted structure.

    Args:
        db_url: database URL.
        version_id: the dataset version.

    Returns:
        One dictionary per entry (``entry_id, row_number, raw_formula, composition, target, split,
        structure_id, cif, volume_per_atom, censored``), in file order; ``censored`` is the sign of a target that
        is a bound (a version imported with "include at the bound"), else None.
    """
    with session_scope(db_url) as session:
        rows = session.execute(
            select(
                EntryRow.id,
                EntryRow.row_number,
                EntryRow.raw_formula,
                EntryRow.composition,
                EntryRow.target,
                EntryRow.split,
                EntryRow.structure_id,
                StructureRow.cif,
                StructureRow.volume_per_atom,
                EntryRow.extra,
            )
            .outerjoin(StructureRow, EntryRow.structure_id == StructureRow.id)
            .where(
                EntryRow.dataset_version_id == version_id,
                EntryRow.status == "kept",
                EntryRow.target.is_not(None),
            )
            .order_by(EntryRow.row_number, EntryRow.id)
        ).all()
    names = (
        "entry_id", "row_number", "raw_formula", "composition", "target", "split", "structure_id", "cif",
        "volume_per_atom",
    )
    return [{**dict(zip(names, row[:-1], strict=True)), "censored": (row[-1] or {}).get("censored") or None}
            for row in rows]


def version_counts(db_url: str, version_id: int) -> dict[str, int]:
    """How many rows a study on this version would train on.

    Args:
        db_url: database URL.
        version_id: the dataset version.

    Returns:
        ``{"rows", "with_structure", "with_split", "compositions"}``: kept entries with a target, those with an
        accepted structure, those with a user-given split label, and their distinct (reduced) compositions.
    """
    from sqlalchemy import func

    with session_scope(db_url) as session:
        base = (
            EntryRow.dataset_version_id == version_id,
            EntryRow.status == "kept",
            EntryRow.target.is_not(None),
        )
        rows = session.scalar(select(func.count()).select_from(EntryRow).where(*base)) or 0
        with_structure = (
            session.scalar(select(func.count()).select_from(EntryRow).where(*base, EntryRow.structure_id.is_not(None)))
            or 0
        )
        with_split = (
            session.scalar(
                select(func.count()).select_from(EntryRow).where(*base, EntryRow.split.is_not(None), EntryRow.split != "")
            )
            or 0
        )
        compositions = (
            session.scalar(select(func.count(func.distinct(EntryRow.composition))).where(*base)) or 0
        )
    return {
        "rows": int(rows), "with_structure": int(with_structure), "with_split": int(with_split),
        "compositions": int(compositions),
    }


# ------------------------------------------------------------------------------------- studies and runs


def ensure_study(db_url: str, job_id: int, payload: dict[str, Any], created_by: str = "local") -> int:
    """The study of a study job, created on the first call (a resumed study job finds its own).

    Args:
        db_url: database URL.
        job_id: the study job.
        payload: the validated study payload (see :func:`jobs.training.validate_study_payload`).
        created_by: who launched it.

    Returns:
        The study id.
    """
    with session_scope(db_url) as session:
        study = session.scalar(select(Study).where(Study.job_id == job_id))
        if study is None:
            study = Study(
                name=payload.get("name") or f"Study of job {job_id}",
                dataset_version_id=int(payload["dataset_version_id"]),
                job_id=job_id,
                modes=list(payload["modes"]),
                seeds=list(payload["seeds"]),
                config=json_safe(payload),
                status="running",
                created_by=created_by,
            )
            session.add(study)
            session.flush()
        else:
            study.status = "running"
        return study.id


def update_study(db_url: str, study_id: int, **values: Any) -> None:
    """Set columns of a study (``status``, ``results``, ``config``, ``finished_at``).

    Args:
        db_url: database URL.
        study_id: the study.
        **values: column values.
    """
    if "results" in values:
        values["results"] = json_safe(values["results"])
    if "config" in values:
        values["config"] = json_safe(values["config"])
    with session_scope(db_url) as session:
        session.execute(update(Study).where(Study.id == study_id).values(**values))


def study_row(db_url: str, study_id: int) -> dict[str, Any]:
    """One study as a plain dictionary.

    Args:
        db_url: database URL.
        study_id: the study.

    Returns:
        The study's columns.
    """
    with session_scope(db_url) as session:
        study = session.get(Study, study_id)
        return {c.name: getattr(study, c.name) for c in Study.__table__.columns}


def create_runs(db_url: str, study_id: int, study_job_id: int, specs: list[dict[str, Any]]) -> list[int]:
    """One queued run and its training job per spec, unless the study already has runs (resumed study job).

    Args:
        db_url: database URL.
        study_id: the study.
        study_job_id: the study's job (the child jobs point back to it in their payload).
        specs: ``{"mode", "seed", "structure_fraction", "config", "requested_device"}`` per run.

    Returns:
        The run ids of the study, in creation order.
    """
    with session_scope(db_url) as session:
        study = session.get(Study, study_id)
        existing = [run.id for run in study.runs]
        if existing:
            return existing
        created_by = study.created_by
        run_ids = []
        for spec in specs:
            run = Run(
                study_id=study_id,
                dataset_version_id=study.dataset_version_id,
                mode=spec["mode"],
                seed=int(spec["seed"]),
                structure_fraction=spec.get("structure_fraction"),
                config=json_safe(spec["config"]),
                requested_device=spec.get("requested_device", "auto"),
                n_epochs=int(spec["config"]["epochs"]),
                status="queued",
            )
            session.add(run)
            session.flush()
            job = Job(
                kind="train",
                payload={"run_id": run.id, "study_job_id": study_job_id},
                created_by=created_by,
                status="queued",
            )
            session.add(job)
            session.flush()
            run.job_id = job.id
            run_ids.append(run.id)
        return run_ids


def run_row(db_url: str, run_id: int) -> dict[str, Any]:
    """One run as a plain dictionary, with its study's split settings.

    Args:
        db_url: database URL.
        run_id: the run.

    Returns:
        The run's columns plus ``study_config``.

    Raises:
        LookupError: no such run.
    """
    with session_scope(db_url) as session:
        run = session.get(Run, run_id)
        if run is None:
            raise LookupError(f"run {run_id} does not exist (deleted while queued?)")
        row = {c.name: getattr(run, c.name) for c in Run.__table__.columns}
        row["study_config"] = dict(run.study.config) if run.study is not None else {}
        return row


def runs_of_study(db_url: str, study_id: int) -> list[dict[str, Any]]:
    """The runs of a study with their job's progress (for the coordinator and the page).

    Args:
        db_url: database URL.
        study_id: the study.

    Returns:
        One dictionary per run (``id, mode, seed, structure_fraction, status, epochs_done, n_epochs, job_id,
        job_status, error, best_val_mae, device, duration_s, message, cancel_requested``) plus ``state``, what it
        is doing now (:func:`run_state`).
    """
    with session_scope(db_url) as session:
        rows = session.execute(
            select(
                Run.id, Run.mode, Run.seed, Run.structure_fraction, Run.status, Run.epochs_done, Run.n_epochs,
                Run.job_id, Job.status, Run.error, Run.best_val_mae, Run.device, Run.duration_s, Job.message,
                Run.cancel_requested,
            )
            .outerjoin(Job, Run.job_id == Job.id)
            .where(Run.study_id == study_id)
            .order_by(Run.id)
        ).all()
    names = (
        "id", "mode", "seed", "structure_fraction", "status", "epochs_done", "n_epochs", "job_id", "job_status",
        "error", "best_val_mae", "device", "duration_s", "message", "cancel_requested",
    )
    runs = [dict(zip(names, row, strict=True)) for row in rows]
    for run in runs:
        run["cancel_requested"] = bool(run["cancel_requested"])
        run["state"] = run_state(run)
    return runs


RUN_STATES = ("queued", "running", "stopping", "succeeded", "failed", "cancelled")


def run_state(run: dict[str, Any]) -> str:
    """What a run is doing now, from its own status and its training job's.

    ``queued``: waiting for a worker (its job is not claimed yet); ``running``: a worker holds its job (also while
    it loads data before the first epoch, when the run row still says queued); ``stopping``: running but asked to
    cancel (it stops after the current epoch); otherwise the run's end, or its job's end when the job ended
    without updating the run (a worker that died).

    Args:
        run: a row of :func:`runs_of_study`.

    Returns:
        One of :data:`RUN_STATES`.
    """
    status, job_status = run["status"], run.get("job_status")
    if status in TERMINAL:
        return status
    if job_status in TERMINAL:
        return job_status
    if "running" in (status, job_status):
        return "stopping" if run.get("cancel_requested") else "running"
    return "queued"


def run_counts(runs: list[dict[str, Any]]) -> dict[str, int]:
    """How many runs are in each of :data:`RUN_STATES` (every state present, zero included).

    Args:
        runs: rows of :func:`runs_of_study`.

    Returns:
        ``{state: count}``; the counts add up to ``len(runs)``.
    """
    counts = dict.fromkeys(RUN_STATES, 0)
    for run in runs:
        counts[run.get("state") or run_state(run)] += 1
    return counts


def mark_run_started(
    db_url: str,
    run_id: int,
    *,
    device: str,
    checkpoint_path: str,
    structure_decisions: dict[str, Any],
    code_version: str,
) -> None:
    """Record that a run's training began (or resumed) in a worker.

    Args:
        db_url: database URL.
        run_id: the run.
        device: the torch device it trains on.
        checkpoint_path: where its checkpoint is written after every epoch.
        structure_decisions: entry id -> structure id each row carried (provenance).
        code_version: cosnet_core version.
    """
    with session_scope(db_url) as session:
        run = session.get(Run, run_id)
        run.status = "running"
        run.device = device
        run.checkpoint_path = checkpoint_path
        run.structure_decisions = json_safe(structure_decisions)
        run.code_version = code_version
        run.error = None
        if run.started_at is None:
            run.started_at = utcnow()


def write_epoch(
    db_url: str,
    run_id: int,
    *,
    epoch: int,
    train_loss: float,
    val_mae: float,
    seconds: float,
    lr: float,
) -> bool:
    """Store one epoch's metrics (replacing a row of the same epoch written before a crash) and update the run.

    Args:
        db_url: database URL.
        run_id: the run.
        epoch: 1-based epoch.
        train_loss: mean training loss.
        val_mae: validation MAE.
        seconds: epoch wall time.
        lr: learning rate of the epoch.

    Returns:
        Whether the run has been asked to stop (``Run.cancel_requested``).
    """
    with session_scope(db_url) as session:
        session.execute(delete(EpochMetric).where(EpochMetric.run_id == run_id, EpochMetric.epoch >= epoch))
        session.add(
            EpochMetric(
                run_id=run_id,
                epoch=epoch,
                # no batch of ≥ 2 rows ran (NaN cannot be stored in a NOT NULL column): +inf says "no loss"
                train_loss=float(train_loss) if math.isfinite(train_loss) else float("inf"),
                val_mae=json_safe(float(val_mae)),
                seconds=float(seconds),
                lr=float(lr),
            )
        )
        run = session.get(Run, run_id)
        run.epochs_done = epoch
        best = session.execute(
            select(EpochMetric.epoch, EpochMetric.val_mae)
            .where(EpochMetric.run_id == run_id, EpochMetric.val_mae.is_not(None))
            .order_by(EpochMetric.val_mae, EpochMetric.epoch)
            .limit(1)
        ).first()
        if best is not None:
            run.best_epoch, run.best_val_mae = best
        return bool(run.cancel_requested)


def epoch_metrics(db_url: str, run_ids: list[int]) -> list[dict[str, Any]]:
    """Per-epoch rows of some runs (for the loss curves).

    Args:
        db_url: database URL.
        run_ids: the runs.

    Returns:
        ``[{"run_id", "epoch", "train_loss", "val_mae", "seconds", "lr"}]``.
    """
    if not run_ids:
        return []
    with session_scope(db_url) as session:
        rows = session.execute(
            select(
                EpochMetric.run_id, EpochMetric.epoch, EpochMetric.train_loss, EpochMetric.val_mae,
                EpochMetric.seconds, EpochMetric.lr,
            )
            .where(EpochMetric.run_id.in_(run_ids))
            .order_by(EpochMetric.run_id, EpochMetric.epoch)
        ).all()
    names = ("run_id", "epoch", "train_loss", "val_mae", "seconds", "lr")
    return [dict(zip(names, row, strict=True)) for row in rows]


def write_run_outputs(
    db_url: str,
    run_id: int,
    *,
    predictions: list[dict[str, Any]],
    artifact: dict[str, Any],
    test_metrics: dict[str, Any],
    best_epoch: int,
    best_val_mae: float,
    duration_s: float,
) -> None:
    """Store a finished run's predictions, artifact and metrics and mark it succeeded, in one transaction.

    Args:
        db_url: database URL.
        run_id: the run.
        predictions: ``{"entry_id", "split", "target", "value", "composition_weight", "has_structure",
            "structure_id"}`` per kept entry.
        artifact: ``{"path", "sha256", "size_bytes", "featurizer_version", "embedding", "representations_path"}``.
        test_metrics: Table 1 subsets on the test split (and the split sizes).
        best_epoch: epoch of the kept weights.
        best_val_mae: its validation MAE.
        duration_s: wall time of the run (all attempts).
    """
    with session_scope(db_url) as session:
        session.execute(delete(Prediction).where(Prediction.run_id == run_id))
        session.execute(delete(ModelArtifact).where(ModelArtifact.run_id == run_id))
        session.add_all(Prediction(run_id=run_id, **json_safe(row)) for row in predictions)
        session.add(ModelArtifact(run_id=run_id, **artifact))
        run = session.get(Run, run_id)
        run.test_metrics = json_safe(test_metrics)
        run.best_epoch = best_epoch
        run.best_val_mae = json_safe(float(best_val_mae))
        run.status = "succeeded"
        run.finished_at = utcnow()
        run.duration_s = duration_s
        run.error = None


def set_run_status(db_url: str, run_id: int, status: str, *, error: str | None = None) -> None:
    """Set a run's status (and the end time for a final status).

    Args:
        db_url: database URL.
        run_id: the run.
        status: one of the job statuses.
        error: the reason of a failure.
    """
    values: dict[str, Any] = {"status": status, "error": error}
    if status in TERMINAL:
        values["finished_at"] = utcnow()
    with session_scope(db_url) as session:
        session.execute(update(Run).where(Run.id == run_id).values(**values))


def run_predictions(db_url: str, run_ids: list[int]) -> list[dict[str, Any]]:
    """Prediction rows of some runs.

    Args:
        db_url: database URL.
        run_ids: the runs.

    Returns:
        ``[{"run_id", "entry_id", "split", "target", "value", "composition_weight", "has_structure",
        "structure_id", "censored"}]``; ``censored`` is the entry's censored sign (its target is a bound, never
        scored as a measurement) or None.
    """
    if not run_ids:
        return []
    with session_scope(db_url) as session:
        rows = session.execute(
            select(
                Prediction.run_id, Prediction.entry_id, Prediction.split, Prediction.target, Prediction.value,
                Prediction.composition_weight, Prediction.has_structure, Prediction.structure_id, EntryRow.extra,
            ).join(EntryRow, Prediction.entry_id == EntryRow.id).where(Prediction.run_id.in_(run_ids))
        ).all()
    names = ("run_id", "entry_id", "split", "target", "value", "composition_weight", "has_structure", "structure_id")
    return [{**dict(zip(names, row[:-1], strict=True)), "censored": (row[-1] or {}).get("censored") or None}
            for row in rows]


def representation_paths(db_url: str, run_ids: list[int]) -> dict[int, str]:
    """Where each run's C/S export lies.

    Args:
        db_url: database URL.
        run_ids: the runs.

    Returns:
        run id -> representations file path (runs without an artifact are absent).
    """
    with session_scope(db_url) as session:
        rows = session.execute(
            select(ModelArtifact.run_id, ModelArtifact.representations_path).where(ModelArtifact.run_id.in_(run_ids))
        ).all()
    return {run_id: path for run_id, path in rows if path}


def structure_volumes(db_url: str, structure_ids: list[int]) -> dict[int, float | None]:
    """Volume per atom of stored structures (Table 2's V_a), from the column or, when empty, from the CIF.

    Args:
        db_url: database URL.
        structure_ids: the structures.

    Returns:
        structure id -> V_a in Å³ (None when unknown).
    """
    if not structure_ids:
        return {}
    with session_scope(db_url) as session:
        rows = session.execute(
            select(StructureRow.id, StructureRow.volume_per_atom, StructureRow.cif).where(
                StructureRow.id.in_(structure_ids)
            )
        ).all()
    volumes: dict[int, float | None] = {}
    for structure_id, volume, cif in rows:
        if volume is None and cif:
            from cosnet_core.structure_io import load_structure, volume_per_atom

            volume = volume_per_atom(load_structure(cif))
        volumes[structure_id] = volume
    return volumes


def studies_of_version(db_url: str, version_id: int, limit: int = 20) -> list[dict[str, Any]]:
    """The latest studies of a dataset version with their job's state (for the page's queue).

    Args:
        db_url: database URL.
        version_id: the dataset version.
        limit: how many, newest first.

    Returns:
        ``[{"id", "name", "status", "job_id", "job_status", "progress", "message", "error", "created_at",
        "finished_at", "modes", "seeds", "config", "log_path", "cancel_requested"}]``.
    """
    with session_scope(db_url) as session:
        rows = session.execute(
            select(
                Study.id, Study.name, Study.status, Study.job_id, Job.status, Job.progress, Job.message, Job.error,
                Study.created_at, Study.finished_at, Study.modes, Study.seeds, Study.config, Job.log_path,
                Job.cancel_requested,
            )
            .outerjoin(Job, Study.job_id == Job.id)
            .where(Study.dataset_version_id == version_id)
            .order_by(Study.id.desc())
            .limit(limit)
        ).all()
    names = (
        "id", "name", "status", "job_id", "job_status", "progress", "message", "error", "created_at",
        "finished_at", "modes", "seeds", "config", "log_path", "cancel_requested",
    )
    return [dict(zip(names, row, strict=True)) for row in rows]


def pending_study_jobs(db_url: str, version_id: int) -> list[dict[str, Any]]:
    """Study jobs of a version that have no study row yet (queued, or failed before expanding).

    Args:
        db_url: database URL.
        version_id: the dataset version.

    Returns:
        ``[{"id", "status", "progress", "message", "error", "payload", "created_at"}]``, newest first.
    """
    with session_scope(db_url) as session:
        with_study = select(Study.job_id).where(Study.job_id.is_not(None))
        rows = session.execute(
            select(Job.id, Job.status, Job.progress, Job.message, Job.error, Job.payload, Job.created_at)
            .where(Job.kind == "study", Job.id.not_in(with_study))
            .order_by(Job.id.desc())
        ).all()
    names = ("id", "status", "progress", "message", "error", "payload", "created_at")
    return [
        dict(zip(names, row, strict=True))
        for row in rows
        if int((row[5] or {}).get("dataset_version_id", -1)) == version_id
    ]


def median_epoch_seconds_per_row(db_url: str, hidden_dim: int | None = None) -> float | None:
    """Measured training speed on this installation: median over finished runs of epoch seconds per data row.

    Args:
        db_url: database URL.
        hidden_dim: only count runs of this encoder width (speed depends on it); None counts all.

    Returns:
        Seconds per (epoch x row), or None when no such run has finished yet.
    """
    from sqlalchemy import func

    from db.models import DatasetVersion

    with session_scope(db_url) as session:
        rows = session.execute(
            select(func.avg(EpochMetric.seconds), DatasetVersion.n_kept, Run.config)
            .join(Run, EpochMetric.run_id == Run.id)
            .join(DatasetVersion, Run.dataset_version_id == DatasetVersion.id)
            .where(Run.status == "succeeded", EpochMetric.epoch > 1)
            .group_by(Run.id, DatasetVersion.id)  # PostgreSQL: n_kept must come from a grouped key
            .order_by(Run.id.desc())
            .limit(200)
        ).all()
    rates = sorted(
        seconds / n
        for seconds, n, config in rows
        if seconds and n and (hidden_dim is None or (config or {}).get("hidden_dim") == hidden_dim)
    )
    if not rates:
        return None
    return rates[len(rates) // 2]


def target_unit(db_url: str, version_id: int) -> str | None:
    """The unit of a dataset version's target (for axis labels).

    Args:
        db_url: database URL.
        version_id: the dataset version.

    Returns:
        The unit text (with "log10" when the target is stored as its logarithm), or None.
    """
    from db.models import DatasetVersion

    with session_scope(db_url) as session:
        version = session.get(DatasetVersion, version_id)
        if version is None:
            return None
        unit = version.target_unit
        if version.target_transform == "log10":
            return f"log10 {unit}" if unit else "log10 units"
        return unit
