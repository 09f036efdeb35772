"""Read-only queries for the Structures page: the entry table, one entry's detail, the decision history.

Imports no torch.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pandas as pd
from sqlalchemy import func, select

from db.engine import session_scope
from db.models import (
    Entry,
    MatchCandidate,
    ReviewDecision,
    Structure,
)
from db.review_decisions import _effective, _revert_in_effect
from db.structure_base import PENDING_STATES, REVIEW_FILTERS, StructureStoreError


def entry_table(url: str | None, version_id: int, review_filter: str = "all", limit: int = 5000) -> pd.DataFrame:
    """Kept entries of a version for the review list, filtered.

    Args:
        url: database URL.
        version_id: the dataset version.
        review_filter: a key of :data:`REVIEW_FILTERS`.
        limit: most rows returned.

    Returns:
        Columns ``entry_id, row, formula, composition, state, candidates, exact, accepted`` (the accepted
        structure's source id), ordered by row number.

    Raises:
        StructureStoreError: unknown filter.
    """
    if review_filter not in REVIEW_FILTERS:
        raise StructureStoreError(f"filter {review_filter!r}", f"is not one of {', '.join(REVIEW_FILTERS)}")
    n_candidates = (
        select(func.count(MatchCandidate.id)).where(MatchCandidate.entry_id == Entry.id).scalar_subquery()
    )
    n_exact = (
        select(func.count(MatchCandidate.id))
        .where(MatchCandidate.entry_id == Entry.id, MatchCandidate.exact.is_(True))
        .scalar_subquery()
    )
    query = (
        select(
            Entry.id, Entry.row_number, Entry.raw_formula, Entry.composition, Entry.match_state,
            n_candidates, n_exact, Structure.source, Structure.external_id,
        )
        .outerjoin(Structure, Structure.id == Entry.structure_id)
        .where(Entry.dataset_version_id == version_id, Entry.status == "kept")
    )
    if review_filter == "pending":
        query = query.where(Entry.match_state.in_(PENDING_STATES))
    elif review_filter != "all":
        query = query.where(Entry.match_state == review_filter)
    with session_scope(url) as session:
        rows = session.execute(query.order_by(Entry.row_number, Entry.id).limit(limit)).all()
    return pd.DataFrame(
        [
            {
                "entry_id": r[0], "row": r[1], "formula": r[2], "composition": r[3], "state": r[4],
                "candidates": int(r[5]), "exact": int(r[6]),
                "accepted": f"{r[7]}:{r[8]}" if r[7] else "",
            }
            for r in rows
        ],
        columns=["entry_id", "row", "formula", "composition", "state", "candidates", "exact", "accepted"],
    )


def entry_detail(url: str | None, entry_id: int) -> dict[str, Any]:
    """One entry for the review pane: its fields and its candidates with their structures' properties.

    Returns:
        ``{"entry_id", "row", "formula", "composition", "state", "structure_id", "match_error", "candidates"}``
        where ``candidates`` is a list of dicts with ``candidate_id, structure_id, rank, source, external_id,
        formula, spacegroup, nsites, energy_above_hull, theoretical, match ("exact"/"approximate"),
        composition_distance, status``, best rank first.

    Raises:
        StructureStoreError: no such entry.
    """
    with session_scope(url) as session:
        entry = session.get(Entry, entry_id)
        if entry is None:
            raise StructureStoreError(f"entry {entry_id}", "does not exist")
        rows = session.execute(
            select(MatchCandidate, Structure)
            .join(Structure, Structure.id == MatchCandidate.structure_id)
            .where(MatchCandidate.entry_id == entry_id)
            .order_by(MatchCandidate.rank, MatchCandidate.id)
        ).all()
        candidates = [
            {
                "candidate_id": c.id,
                "structure_id": s.id,
                "rank": c.rank,
                "source": s.source,
                "external_id": s.external_id,
                "formula": s.formula,
                "spacegroup": (
                    f"{s.spacegroup_symbol} ({s.spacegroup_number})" if s.spacegroup_number else (s.spacegroup_symbol or "")
                ),
                "nsites": s.nsites,
                "energy_above_hull": s.energy_above_hull,
                "theoretical": s.theoretical,
                "match": "exact" if c.exact else "approximate",
                "composition_distance": c.score,
                "status": c.status,
            }
            for c, s in rows
        ]
        accepted = None
        if entry.structure_id is not None and all(c["structure_id"] != entry.structure_id for c in candidates):
            row = session.get(Structure, entry.structure_id)
            accepted = {
                "structure_id": row.id, "source": row.source, "external_id": row.external_id,
                "formula": row.formula, "nsites": row.nsites,
            }
        return {
            "accepted_structure": accepted,
            "entry_id": entry.id,
            "row": entry.row_number,
            "formula": entry.raw_formula,
            "composition": entry.composition,
            "state": entry.match_state,
            "structure_id": entry.structure_id,
            "match_error": (entry.extra or {}).get("match_error"),
            "candidates": candidates,
        }


def decision_table(url: str | None, *, entry_id: int | None = None, version_id: int | None = None,
                   limit: int = 200) -> pd.DataFrame:
    """Review decisions, newest first, of one entry or a whole version.

    Returns:
        Columns ``decision_id, entry_id, row, formula, action, status, structure, reviewer, decided_at,
        reverts, in_effect, note``.

    Raises:
        StructureStoreError: neither ``entry_id`` nor ``version_id`` given.
    """
    if entry_id is None and version_id is None:
        raise StructureStoreError("decision history", "give an entry or a dataset version")
    query = (
        select(ReviewDecision, Entry.row_number, Entry.raw_formula, Structure.source, Structure.external_id)
        .join(Entry, Entry.id == ReviewDecision.entry_id)
        .outerjoin(Structure, Structure.id == ReviewDecision.structure_id)
    )
    query = query.where(ReviewDecision.entry_id == entry_id) if entry_id is not None else query.where(
        Entry.dataset_version_id == version_id
    )
    with session_scope(url) as session:
        rows = session.execute(query.order_by(ReviewDecision.id.desc()).limit(limit)).all()
        by_entry: dict[int, list[ReviewDecision]] = defaultdict(list)
        if rows:
            entry_ids = {d.entry_id for d, *_ in rows}
            for decision in session.scalars(select(ReviewDecision).where(ReviewDecision.entry_id.in_(entry_ids))):
                by_entry[decision.entry_id].append(decision)
        in_effect: set[int] = set()
        for decisions in by_entry.values():
            in_effect |= {d.id for d in _effective(decisions)}
            in_effect |= {d.id for d in decisions if d.action == "revert" and _revert_in_effect(d, decisions)}
        records = [
            {
                "decision_id": d.id,
                "entry_id": d.entry_id,
                "row": row_number,
                "formula": formula,
                "action": d.action,
                "status": d.status,
                "structure": f"{source}:{external_id}" if source else "",
                "reviewer": d.reviewer,
                "decided_at": d.decided_at,
                "reverts": d.reverts_id,
                "in_effect": d.id in in_effect,
                "note": d.note or "",
            }
            for d, row_number, formula, source, external_id in rows
        ]
    return pd.DataFrame(
        records,
        columns=["decision_id", "entry_id", "row", "formula", "action", "status", "structure", "reviewer",
                 "decided_at", "reverts", "in_effect", "note"],
    )
