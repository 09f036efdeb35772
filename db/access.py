"""Who may see and who may change a dataset, and everything derived from it.

The rule is simple and lives here only:

* a dataset is **private by default**: visible to its owner and to administrators until the owner shares it
  with the lab (``Dataset.shared``); a shared dataset is visible to every user;
* only the **owner or an administrator** may change it: add a version, re-clean, share or unshare, delete it,
  review its structures, match it, launch or cancel its studies and runs;
* everything derived from a dataset (versions, entries, review decisions, studies, runs, jobs, models,
  predictions, structures that came with it) follows the dataset.

Every write function of ``db`` and ``jobs`` that acts on a dataset calls :func:`require_dataset_owner` with the
:class:`Actor` the page passes in. ``actor=None`` means a trusted caller inside the system (the job executor,
the command line, tests), never a page: pages always pass :func:`ui.auth.current_actor`.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, false, or_, select, true
from sqlalchemy.orm import Session

from db.models import Dataset, DatasetVersion, Entry, Job, MatchCandidate, ReviewDecision, Run, Study


class AccessDenied(PermissionError):
    """The user may not do this to that dataset (or it does not exist for them); nothing was written."""


@dataclass(frozen=True)
class Actor:
    """The person a page acts for: their user name and whether they administer the instance."""

    username: str
    is_admin: bool = False


def visible_datasets(username: str | None, is_admin: bool) -> ColumnElement[bool]:
    """SQL condition on :class:`Dataset` for the datasets a user may see: their own and the lab's shared ones.

    Args:
        username: the user asking; None means a trusted caller (single-user mode, command line): every dataset.
        is_admin: administrators see every dataset.

    Returns:
        A condition for ``select(...).where(...)`` over a query that joins :class:`Dataset`.
    """
    if is_admin or username is None:
        return true()
    if not username:
        return false()
    return or_(Dataset.owner == username, Dataset.shared.is_(True))


def dataset_id_of(
    session: Session,
    *,
    version_id: int | None = None,
    entry_id: int | None = None,
    candidate_id: int | None = None,
    decision_id: int | None = None,
    study_id: int | None = None,
    run_id: int | None = None,
    job_id: int | None = None,
) -> int | None:
    """The dataset a version, entry, candidate, decision, study, run or job belongs to (exactly one id given).

    Returns:
        The dataset id, or None when the object does not exist or (a job) belongs to no dataset.
    """
    given = {k: v for k, v in locals().items() if k != "session" and v is not None}
    if len(given) != 1:
        raise ValueError(f"give exactly one id, not {sorted(given) or 'none'}")
    if job_id is not None:
        version = session.scalar(select(Study.dataset_version_id).where(Study.job_id == job_id).limit(1))
        version = version or session.scalar(select(Run.dataset_version_id).where(Run.job_id == job_id).limit(1))
        if version is None:
            job = session.get(Job, job_id)
            payload_version = (job.payload or {}).get("dataset_version_id") if job is not None else None
            version = int(payload_version) if str(payload_version or "").isdigit() else None
        return dataset_id_of(session, version_id=version) if version is not None else None
    if study_id is not None:
        version_id = session.scalar(select(Study.dataset_version_id).where(Study.id == study_id))
    elif run_id is not None:
        version_id = session.scalar(select(Run.dataset_version_id).where(Run.id == run_id))
    elif decision_id is not None:
        entry_id = session.scalar(select(ReviewDecision.entry_id).where(ReviewDecision.id == decision_id))
    elif candidate_id is not None:
        entry_id = session.scalar(select(MatchCandidate.entry_id).where(MatchCandidate.id == candidate_id))
    if entry_id is not None:
        version_id = session.scalar(select(Entry.dataset_version_id).where(Entry.id == entry_id))
    if version_id is None:
        return None
    return session.scalar(select(DatasetVersion.dataset_id).where(DatasetVersion.id == version_id))


def can_see_dataset(session: Session, dataset_id: int | None, actor: Actor | None) -> bool:
    """Whether ``actor`` may see the dataset (None: a trusted caller sees everything that exists)."""
    if dataset_id is None:
        return False
    dataset = session.get(Dataset, dataset_id)
    if dataset is None:
        return False
    return actor is None or actor.is_admin or dataset.shared or dataset.owner == actor.username


def require_dataset_owner(session: Session, dataset_id: int | None, actor: Actor | None) -> None:
    """Refuse unless ``actor`` owns the dataset or administers the instance (the one check of every write).

    Args:
        session: the open session of the write about to happen.
        dataset_id: the dataset the write acts on (None: an object that does not exist).
        actor: who asks; None is a trusted caller inside the system (executor, command line).

    Raises:
        AccessDenied: the dataset does not exist, or the actor is neither its owner nor an administrator.
            A dataset the actor may not even see is reported as absent, so its existence does not leak.
    """
    dataset = session.get(Dataset, dataset_id) if dataset_id is not None else None
    if dataset is None:
        raise AccessDenied("that dataset does not exist (it may have been deleted)")
    if actor is None or actor.is_admin or dataset.owner == actor.username:
        return
    if not dataset.shared:
        raise AccessDenied("that dataset does not exist (it may have been deleted)")
    raise AccessDenied(
        f"only the dataset's owner ({dataset.owner}) or an administrator may change it; you can read it"
    )


def require_owner_of(session: Session, actor: Actor | None, **ids: int | None) -> int:
    """:func:`require_dataset_owner` for the dataset behind one id (``version_id=``, ``entry_id=``, ...).

    Returns:
        The dataset id.

    Raises:
        AccessDenied: as :func:`require_dataset_owner`.
    """
    dataset_id = dataset_id_of(session, **ids)
    require_dataset_owner(session, dataset_id, actor)
    return dataset_id  # type: ignore[return-value]


def check_owner(url: str | None, actor: Actor | None, **ids: int | None) -> int:
    """:func:`require_owner_of` in a session of its own, for a caller about to start work outside one.

    Raises:
        AccessDenied: as :func:`require_dataset_owner`.
    """
    from db.engine import session_scope

    with session_scope(url) as session:
        return require_owner_of(session, actor, **ids)


def may_change(url: str | None, actor: Actor | None, **ids: int | None) -> bool:
    """Whether :func:`check_owner` would let ``actor`` change the dataset behind one id (to hide controls; the
    writes check again)."""
    try:
        check_owner(url, actor, **ids)
    except AccessDenied:
        return False
    return True


__all__ = [
    "AccessDenied",
    "Actor",
    "can_see_dataset",
    "check_owner",
    "dataset_id_of",
    "may_change",
    "require_dataset_owner",
    "require_owner_of",
    "visible_datasets",
]
