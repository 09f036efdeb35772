"""The latest job of a kind (and of a dataset version), as the Structures page shows it. Imports no torch."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from db.engine import session_scope


def latest_job(url: str | None, kind: str, version_id: int | None = None) -> dict[str, Any] | None:
    """The newest job of a kind (for ``"match"``: of this dataset version), as a plain dict, or None.

    Args:
        url: database URL.
        kind: ``"match"`` or ``"library_import"``.
        version_id: for match jobs, the dataset version in the payload.

    Returns:
        ``{"job_id", "status", "progress", "message", "error", "created_at"}``.
    """
    from db.models import Job

    with session_scope(url) as session:
        jobs = session.scalars(select(Job).where(Job.kind == kind).order_by(Job.id.desc()).limit(200)).all()
        for job in jobs:
            if version_id is None or (job.payload or {}).get("dataset_version_id") == version_id:
                return {
                    "job_id": job.id,
                    "status": job.status,
                    "progress": float(job.progress or 0.0),
                    "message": job.message,
                    "error": job.error,
                    "created_at": job.created_at,
                }
    return None


def latest_match_job(url: str | None, version_id: int) -> dict[str, Any] | None:
    """The newest bulk-matching job of a dataset version (see :func:`latest_job`)."""
    return latest_job(url, "match", version_id)
