"""The audit log (:class:`~db.models.AuditEvent`): one function writes an event inside the caller's transaction,
two read it back (recent events for the Admin page, recent failed logins for the lockout of ``db.users``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.engine import session_scope
from db.models import AUDIT_ACTIONS, AuditEvent, utcnow


def record(session: Session, action: str, username: str | None, target: str | None = None,
           **detail: Any) -> None:
    """Add an audit event to the open transaction (it is stored exactly when the change it records is).

    Args:
        session: the session of the change.
        action: one of :data:`db.models.AUDIT_ACTIONS`.
        username: who acted ("system" for trusted callers without a user).
        target: what it was done to, in words (e.g. ``"dataset 3 'li'"``).
        **detail: JSON-able details.
    """
    if action not in AUDIT_ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    session.add(AuditEvent(at=utcnow(), username=(username or "system")[:200], action=action,
                           target=target[:500] if target else None, detail=detail))


def count_since(session: Session, username: str, action: str, since: datetime) -> int:
    """How many ``action`` events ``username`` has had since ``since``."""
    return int(session.scalar(
        select(func.count()).select_from(AuditEvent)
        .where(AuditEvent.username == username, AuditEvent.action == action, AuditEvent.at >= since)
    ) or 0)


def last_time(session: Session, username: str, actions: tuple[str, ...]) -> datetime | None:
    """When ``username`` last had one of ``actions`` (None: never)."""
    return session.scalar(
        select(func.max(AuditEvent.at)).where(AuditEvent.username == username, AuditEvent.action.in_(actions))
    )


def recent_events(url: str | None = None, limit: int = 200) -> pd.DataFrame:
    """The latest events, newest first: ``at, user, action, target``."""
    with session_scope(url) as session:
        rows = session.execute(
            select(AuditEvent.at, AuditEvent.username, AuditEvent.action, AuditEvent.target)
            .order_by(AuditEvent.id.desc()).limit(limit)
        ).all()
    return pd.DataFrame(rows, columns=["at", "user", "action", "target"])
