"""Deleting a study (issue 14, item 2): only its dataset's owner or an administrator may, checked by
:func:`db.access.require_owner_of` like every other write.

A study is deleted with everything trained in it: its runs, their per-epoch metrics, predictions, model-file rows,
and the model, representation and checkpoint files on disk. The jobs that train it are stopped first: queued ones
are cancelled at once, running ones are asked to stop; while any of them is still running nothing is deleted
(a worker writing into deleted rows would leave model files behind), and :class:`StudyBusy` says so. The
dataset, its rows and the job records (the history of what ran) stay. Every deletion is in the audit log.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from db import audit
from db.access import AccessDenied, Actor, require_owner_of
from db.config import data_dir
from db.datasets import _remove_artifact_files
from db.engine import session_scope
from db.models import EpochMetric, Job, ModelArtifact, Prediction, Run, Study, utcnow

ACTIVE_JOB = ("queued", "running")


class StudyStoreError(ValueError):
    """A study cannot be deleted (it does not exist); nothing was changed."""


class StudyBusy(StudyStoreError):
    """Some of the study's jobs are still running: they were asked to stop, nothing was deleted yet."""


@dataclass(frozen=True)
class StudyContents:
    """What a study holds: shown before deleting it, returned after."""

    study_id: int
    name: str
    n_runs: int
    n_active: int
    n_models: int
    n_predictions: int

    def describe(self) -> str:
        """One sentence for the confirmation (plain text: the caller escapes it for markdown)."""
        active = f", {self.n_active} of them queued or running (they are stopped first)" if self.n_active else ""
        return (f"Study #{self.study_id} '{self.name}': {self.n_runs} run(s){active}, {self.n_models} model "
                f"file(s) and {self.n_predictions} stored prediction(s) will be deleted.")


def _contents(session: Session, study: Study) -> StudyContents:
    run_ids = select(Run.id).where(Run.study_id == study.id)

    def count(model, column) -> int:
        return int(session.scalar(select(func.count()).select_from(model).where(column.in_(run_ids))) or 0)

    n_active = int(session.scalar(
        select(func.count()).select_from(Run).where(Run.study_id == study.id, Run.status.in_(ACTIVE_JOB))) or 0)
    return StudyContents(study.id, study.name, count(Run, Run.id), n_active, count(ModelArtifact, ModelArtifact.run_id),
                         count(Prediction, Prediction.run_id))


def _study_for(session: Session, study_id: int, actor: Actor | None) -> Study:
    """The study, once the actor is allowed to change it (the one check of :mod:`db.access`).

    Raises:
        StudyStoreError: no such study (for a trusted caller).
        AccessDenied: the actor is neither the owner of the study's dataset nor an administrator (a study the
            actor cannot even see is reported as absent).
    """
    study = session.get(Study, study_id)
    if study is None:
        if actor is not None:
            raise AccessDenied("that study does not exist (it may have been deleted)")
        raise StudyStoreError(f"there is no study with id {study_id}")
    require_owner_of(session, actor, study_id=study_id)
    return study


def study_contents(url: str | None, study_id: int, *, actor: Actor | None = None) -> StudyContents:
    """What :func:`delete_study` would delete (only for an actor who may delete it).

    Raises:
        StudyStoreError, AccessDenied: as :func:`delete_study`.
    """
    with session_scope(url) as session:
        return _contents(session, _study_for(session, study_id, actor))


def _stop_jobs(session: Session, job_ids: list[int]) -> int:
    """Cancel the queued jobs among ``job_ids`` (and their runs) and ask the running ones to stop.

    The same states as :func:`jobs.store.request_cancel` leaves (the data layer cannot import the jobs layer).

    Returns:
        How many of them are still running.
    """
    if not job_ids:
        return 0
    now = utcnow()
    queued = list(session.scalars(select(Job.id).where(Job.id.in_(job_ids), Job.status == "queued")))
    session.execute(update(Job).where(Job.id.in_(queued)).values(
        status="cancelled", cancel_requested=True, finished_at=now, message="cancelled: its study is being deleted"))
    session.execute(update(Job).where(Job.id.in_(job_ids), Job.status == "running").values(cancel_requested=True))
    session.execute(update(Run).where(Run.job_id.in_(job_ids)).values(cancel_requested=True))
    session.execute(update(Run).where(Run.job_id.in_(queued), Run.status.in_(ACTIVE_JOB))
                    .values(status="cancelled", finished_at=now))
    return int(session.scalar(
        select(func.count()).select_from(Job).where(Job.id.in_(job_ids), Job.status == "running")) or 0)


def delete_study(url: str | None, study_id: int, *, actor: Actor | None = None) -> StudyContents:
    """Stop a study's jobs, then delete it with its runs, predictions, curves and model files.

    Args:
        url: database URL (the configured one when None).
        study_id: the study.
        actor: who asks: the owner of the study's dataset or an administrator; None for trusted callers.

    Returns:
        What was deleted.

    Raises:
        AccessDenied: the actor may not change the study's dataset (nothing changes).
        StudyBusy: some of its jobs were still running; they were asked to stop and nothing was deleted yet
            (delete again once they have stopped: a running job stops at its next epoch).
        StudyStoreError: there is no such study.
    """
    with session_scope(url) as session:
        study = _study_for(session, study_id, actor)
        runs = session.execute(select(Run.id, Run.job_id).where(Run.study_id == study_id)).all()
        run_ids = [run_id for run_id, _ in runs]
        job_ids = [j for j in [study.job_id, *(job_id for _, job_id in runs)] if j is not None]
        contents = _contents(session, study)  # before stopping: n_active counts the runs it stops
        running = _stop_jobs(session, job_ids)
        paths: list[str] = []
        if not running:
            for path, representations in session.execute(
                select(ModelArtifact.path, ModelArtifact.representations_path)
                .where(ModelArtifact.run_id.in_(run_ids))
            ):
                paths += [p for p in (path, representations) if p]
            for model in (ModelArtifact, Prediction, EpochMetric):
                session.execute(delete(model).where(model.run_id.in_(run_ids)))
            session.execute(delete(Run).where(Run.id.in_(run_ids)))
            session.execute(delete(Study).where(Study.id == study_id))
            audit.record(session, "delete_study", actor.username if actor else None,
                         f"study {study_id} {contents.name!r}", runs=contents.n_runs, models=contents.n_models,
                         predictions=contents.n_predictions)
    if running:
        raise StudyBusy(f"{running} job(s) of this study are still running; they were asked to stop. Nothing was "
                        "deleted yet: delete it again once they have stopped (a run stops after its current "
                        "epoch).")
    _remove_artifact_files(paths)
    checkpoints = data_dir() / "checkpoints"
    for run_id in run_ids:
        (checkpoints / f"run-{int(run_id)}.pt").unlink(missing_ok=True)
    return contents


__all__ = ["StudyBusy", "StudyContents", "StudyStoreError", "delete_study", "study_contents"]
