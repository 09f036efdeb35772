"""The review state machine: decisions on match candidates, applied and replayed.

Accept, choose another, reject, attach own CIF, bulk accept by rule and the matcher's auto-accept are
``ReviewDecision`` rows with reviewer and time. Decisions are never deleted: a *revert* adds a decision pointing at
the one it reverts, and the entry's state is recomputed by replaying the decisions still in effect, in order, over
the state the matcher left. Every write validates first and runs in one transaction. Imports no torch.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from db.access import Actor, require_owner_of
from db.engine import session_scope
from db.models import (
    Entry,
    MatchCandidate,
    ReviewDecision,
    utcnow,
)
from db.structure_base import (
    ACCEPTING_ACTIONS,
    BULK_RULES,
    CIF_SUFFIXES,
    DECISION_ACTIONS,
    DEFAULT_REVIEWER,
    MAX_ATTACH_DISTANCE,
    MAX_BULK_DISTANCE,
    StructureStoreError,
    configured_max_sites,
)
from db.structure_library import _bounded_cif_candidate, _decode
from db.structure_rows import store_candidates


def _effective(decisions: Sequence[ReviewDecision]) -> list[ReviewDecision]:
    """The decisions still in effect, oldest first: newest first, a revert that is itself in effect cancels its
    target (so reverting a revert re-applies the original)."""
    cancelled: set[int] = set()
    effective: list[ReviewDecision] = []
    for decision in sorted(decisions, key=lambda d: d.id, reverse=True):
        if decision.id in cancelled:
            continue
        if decision.action == "revert":
            if decision.reverts_id is not None:
                cancelled.add(decision.reverts_id)
            continue
        effective.append(decision)
    return list(reversed(effective))


def _apply(entry: Entry, decision: ReviewDecision) -> None:
    """Apply one (non-revert) decision to an entry and its candidates."""
    candidates = entry.candidates
    if decision.action in ACCEPTING_ACTIONS:
        for candidate in candidates:
            if candidate.structure_id == decision.structure_id:
                candidate.status = "accepted"
            elif candidate.status == "accepted":
                candidate.status = "pending"
        entry.structure_id = decision.structure_id
    elif decision.action == "reject":
        if decision.structure_id is None:  # the entry as a whole: no candidate fits
            for candidate in candidates:
                candidate.status = "rejected"
            entry.structure_id = None
        else:
            for candidate in candidates:
                if candidate.structure_id == decision.structure_id:
                    candidate.status = "rejected"
            if entry.structure_id == decision.structure_id:
                entry.structure_id = None
    _refresh_state(entry, entry_rejected=decision.action == "reject" and decision.structure_id is None)


def _refresh_state(entry: Entry, *, entry_rejected: bool = False) -> None:
    """Entry.match_state from its structure and candidates: accepted, rejected, or the matcher's status."""
    base = (entry.extra or {}).get("match_status", "unmatched")
    if entry.structure_id is not None:
        entry.match_state = "accepted"
    elif entry_rejected or (entry.candidates and all(c.status == "rejected" for c in entry.candidates)):
        entry.match_state = "rejected"
    else:
        entry.match_state = base


def _replay(entry: Entry) -> None:
    """Recompute an entry's structure, candidate statuses and state from the matcher's result and the decisions
    still in effect."""
    extra = entry.extra or {}
    entry.structure_id = extra.get("initial_structure_id")
    for candidate in entry.candidates:
        candidate.status = "pending"
    _refresh_state(entry)
    if entry.structure_id is not None and not entry.candidates:
        entry.match_state = "accepted"
    for decision in _effective(entry.decisions):
        _apply(entry, decision)


def _remember_initial_state(entry: Entry) -> None:
    """Before the first decision on an entry, keep the structure it came with (e.g. from the dataset)."""
    extra = dict(entry.extra or {})
    if "initial_structure_id" not in extra:
        # Decisions recorded elsewhere (e.g. the dataset import's "attach") already explain the structure.
        extra["initial_structure_id"] = None if entry.decisions else entry.structure_id
        entry.extra = extra


def _require_owner(session: Session, actor: Actor | None, **ids: int) -> None:
    """Refuse a review write on a dataset the actor does not own (:func:`db.access.require_dataset_owner`)."""
    if actor is not None:
        require_owner_of(session, actor, **ids)


def _load_entry(session: Session, entry_id: int) -> Entry:
    entry = session.scalars(
        select(Entry)
        .where(Entry.id == entry_id)
        .options(selectinload(Entry.candidates), selectinload(Entry.decisions))
    ).one_or_none()
    if entry is None:
        raise StructureStoreError(f"entry {entry_id}", "does not exist")
    if entry.status != "kept":
        raise StructureStoreError(
            f"row {entry.row_number} ({entry.raw_formula})", f"is {entry.status}, not kept, so it takes no structure"
        )
    return entry


def _decide(
    session: Session,
    entry: Entry,
    *,
    action: str,
    status: str,
    reviewer: str,
    candidate: MatchCandidate | None = None,
    structure_id: int | None = None,
    note: str | None = None,
    reverts_id: int | None = None,
) -> ReviewDecision:
    if action not in DECISION_ACTIONS:
        raise StructureStoreError(f"action {action!r}", f"is not one of {', '.join(DECISION_ACTIONS)}")
    if not reviewer or not reviewer.strip():
        raise StructureStoreError(f"entry {entry.id}", "a decision needs a reviewer name")
    _remember_initial_state(entry)
    decision = ReviewDecision(
        entry_id=entry.id,
        candidate_id=candidate.id if candidate is not None else None,
        structure_id=structure_id if structure_id is not None else (candidate.structure_id if candidate else None),
        action=action,
        status=status,
        reviewer=reviewer.strip(),
        decided_at=utcnow(),
        note=note,
        reverts_id=reverts_id,
    )
    session.add(decision)
    entry.decisions.append(decision)
    return decision


def _candidate_of(session: Session, candidate_id: int) -> tuple[Entry, MatchCandidate]:
    candidate = session.get(MatchCandidate, candidate_id)
    if candidate is None:
        raise StructureStoreError(f"candidate {candidate_id}", "does not exist")
    entry = _load_entry(session, candidate.entry_id)
    return entry, candidate


def accept_candidate(
    url: str | None, candidate_id: int, *, reviewer: str = DEFAULT_REVIEWER, note: str | None = None,
    actor: Actor | None = None,
) -> int:
    """Accept a candidate as its entry's structure (``choose`` when another one was accepted before).

    Args:
        url: database URL.
        candidate_id: the ``MatchCandidate`` row.
        reviewer: who decided.
        note: optional free text.

    Returns:
        The id of the new ``ReviewDecision``.

    Raises:
        StructureStoreError: no such candidate, the entry is not kept, or the candidate is already accepted.
    """
    with session_scope(url) as session:
        _require_owner(session, actor, candidate_id=candidate_id)
        entry, candidate = _candidate_of(session, candidate_id)
        if candidate.status == "accepted" and entry.structure_id == candidate.structure_id:
            raise StructureStoreError(
                f"row {entry.row_number} ({entry.raw_formula})", "this candidate is already the accepted structure"
            )
        action = "choose" if entry.structure_id is not None else "accept"
        decision = _decide(session, entry, action=action, status="accepted", reviewer=reviewer,
                           candidate=candidate, note=note)
        _apply(entry, decision)
        session.flush()
        return decision.id


def reject_candidate(
    url: str | None, candidate_id: int, *, reviewer: str = DEFAULT_REVIEWER, note: str | None = None,
    actor: Actor | None = None,
) -> int:
    """Reject one candidate of an entry (if it was the accepted one, the entry loses its structure).

    Returns:
        The id of the new ``ReviewDecision``.

    Raises:
        StructureStoreError: no such candidate, entry not kept, or the candidate is already rejected.
    """
    with session_scope(url) as session:
        _require_owner(session, actor, candidate_id=candidate_id)
        entry, candidate = _candidate_of(session, candidate_id)
        if candidate.status == "rejected":
            raise StructureStoreError(
                f"row {entry.row_number} ({entry.raw_formula})", "this candidate is already rejected"
            )
        decision = _decide(session, entry, action="reject", status="rejected", reviewer=reviewer,
                           candidate=candidate, note=note)
        _apply(entry, decision)
        session.flush()
        return decision.id


def reject_entry(url: str | None, entry_id: int, *, reviewer: str = DEFAULT_REVIEWER, note: str | None = None,
                 actor: Actor | None = None) -> int:
    """Reject every candidate of an entry: it gets no structure (a composition-only row).

    Returns:
        The id of the new ``ReviewDecision``.

    Raises:
        StructureStoreError: no such entry, not kept, or already rejected.
    """
    with session_scope(url) as session:
        _require_owner(session, actor, entry_id=entry_id)
        entry = _load_entry(session, entry_id)
        if entry.match_state == "rejected" and entry.structure_id is None:
            raise StructureStoreError(f"row {entry.row_number} ({entry.raw_formula})", "is already rejected")
        decision = _decide(session, entry, action="reject", status="rejected", reviewer=reviewer, note=note)
        _apply(entry, decision)
        session.flush()
        return decision.id


def attach_structure(
    url: str | None,
    entry_id: int,
    filename: str,
    data: bytes,
    *,
    reviewer: str = DEFAULT_REVIEWER,
    max_sites: int | None = None,
    note: str | None = None,
    actor: Actor | None = None,
) -> int:
    """Attach the user's own CIF to an entry and accept it.

    The structure is stored (``source="upload"``, reused when its content hash is known), becomes a candidate of
    the entry (rank 0, composition distance to the entry's composition) and is accepted.

    Args:
        url: database URL.
        entry_id: the entry.
        filename: the CIF's file name (kept as the structure's external id).
        data: the CIF bytes.
        reviewer: who attached it.
        max_sites: largest accepted number of sites (default :func:`configured_max_sites`).
        note: optional free text.

    Returns:
        The id of the new ``ReviewDecision``.

    Raises:
        StructureStoreError: not a .cif file, a broken CIF, too many sites, or the entry is not kept; nothing is
            written then.
    """
    from cosnet_core.matching import composition_distance

    if not filename.lower().endswith(CIF_SUFFIXES):
        raise StructureStoreError(filename, "attach a .cif file")
    max_sites = configured_max_sites() if max_sites is None else max_sites
    candidate = _bounded_cif_candidate(_decode(data, filename), filename, filename, max_sites)
    candidate.source = "upload"
    with session_scope(url) as session:
        _require_owner(session, actor, entry_id=entry_id)
        entry = _load_entry(session, entry_id)
        distance = _entry_distance(entry, candidate.formula, composition_distance)
        if distance > MAX_ATTACH_DISTANCE:
            raise StructureStoreError(
                filename,
                f"its composition {candidate.formula} is not that of row {entry.row_number} "
                f"({entry.composition or entry.raw_formula}; {distance:.0%} of the atoms differ, at most "
                f"{MAX_ATTACH_DISTANCE:.0%} is accepted for a parent structure)",
            )
        (row,) = store_candidates(session, [candidate], created_by=reviewer)
        match = next((c for c in entry.candidates if c.structure_id == row.id), None)
        if match is None:
            match = MatchCandidate(
                entry_id=entry.id, structure_id=row.id, rank=0, score=distance, exact=distance < 1e-9,
                status="pending",
            )
            session.add(match)
            session.flush()
            entry.candidates.append(match)
        elif match.status == "accepted" and entry.structure_id == row.id:
            raise StructureStoreError(filename, f"is already the accepted structure of row {entry.row_number}")
        decision = _decide(session, entry, action="attach", status="accepted", reviewer=reviewer, candidate=match,
                           note=note or f"attached {filename}")
        _apply(entry, decision)
        session.flush()
        return decision.id


def _entry_distance(entry: Entry, structure_formula: str, distance_function) -> float:
    from pymatgen.core import Composition

    try:
        own = Composition(entry.composition or entry.raw_formula)
        return float(distance_function(own, Composition(structure_formula)))
    except Exception:  # an entry formula pymatgen cannot read: distance unknown, treat as far
        return 1.0


def revert_decision(url: str | None, decision_id: int, *, reviewer: str = DEFAULT_REVIEWER,
                    note: str | None = None, actor: Actor | None = None) -> int:
    """Revert a decision: the entry returns to the state it would have without it, and a ``revert`` decision
    pointing at it is recorded. Reverting a revert re-applies the original decision.

    Args:
        url: database URL.
        decision_id: the decision to revert.
        reviewer: who reverted.
        note: optional free text.

    Returns:
        The id of the new ``revert`` decision.

    Raises:
        StructureStoreError: no such decision, or it is not in effect (already reverted).
    """
    with session_scope(url) as session:
        _require_owner(session, actor, decision_id=decision_id)
        target = session.get(ReviewDecision, decision_id)
        if target is None:
            raise StructureStoreError(f"decision {decision_id}", "does not exist")
        entry = _load_entry(session, target.entry_id)
        in_effect = {d.id for d in _effective(entry.decisions)} | {
            d.id for d in entry.decisions if d.action == "revert" and _revert_in_effect(d, entry.decisions)
        }
        if decision_id not in in_effect:
            raise StructureStoreError(f"decision {decision_id}", "is already reverted")
        decision = _decide(session, entry, action="revert", status="pending", reviewer=reviewer,
                           structure_id=target.structure_id, note=note, reverts_id=target.id)
        decision.candidate_id = target.candidate_id
        session.flush()
        _replay(entry)
        affected = next((c for c in entry.candidates if c.structure_id == target.structure_id), None)
        decision.status = affected.status if affected is not None else entry.match_state
        return decision.id


def _revert_in_effect(revert: ReviewDecision, decisions: Sequence[ReviewDecision]) -> bool:
    """Whether a revert decision is itself still in effect (not cancelled by a later revert)."""
    later = [d for d in decisions if d.action == "revert" and d.reverts_id == revert.id]
    return not any(_revert_in_effect(d, decisions) for d in later)


def _bulk_choices(entries: list[Entry], rule: str, max_distance: float | None) -> list[tuple[Entry, MatchCandidate]]:
    """The candidate a bulk rule accepts for each entry it applies to (entries it skips are left out)."""
    chosen = []
    for entry in entries:
        pending = [c for c in entry.candidates if c.status == "pending"]
        if rule == "approximate_within":
            close = [c for c in pending if not c.exact and c.score is not None and c.score <= max_distance]
            if close:  # the closest composition, then the matcher's rank
                chosen.append((entry, min(close, key=lambda c: (c.score, c.rank))))
            continue
        exact = [c for c in pending if c.exact]
        if not exact or (rule == "unambiguous_exact" and len(exact) != 1):
            continue
        chosen.append((entry, min(exact, key=lambda c: c.rank)))
    return chosen


def _bulk_entries(session: Session, version_id: int, rule: str) -> list[Entry]:
    """The kept entries without a structure whose state a bulk rule looks at."""
    states = {"unambiguous_exact": ("unambiguous",), "top_exact": ("unambiguous", "ambiguous"),
              "approximate_within": ("approximate",)}[rule]
    return session.scalars(
        select(Entry)
        .where(
            Entry.dataset_version_id == version_id,
            Entry.status == "kept",
            Entry.match_state.in_(states),
            Entry.structure_id.is_(None),
        )
        .options(selectinload(Entry.candidates), selectinload(Entry.decisions))
    ).all()


def _check_bulk_rule(rule: str, max_distance: float | None) -> None:
    if rule not in BULK_RULES:
        raise StructureStoreError(f"rule {rule!r}", f"is not one of {', '.join(BULK_RULES)}")
    if rule == "approximate_within" and (
        max_distance is None or not 0 < float(max_distance) <= MAX_BULK_DISTANCE
    ):
        raise StructureStoreError(
            "composition distance", f"must be above 0 and at most {MAX_BULK_DISTANCE} (got {max_distance})"
        )


def bulk_accept_count(url: str | None, version_id: int, rule: str = "unambiguous_exact",
                      max_distance: float | None = None) -> int:
    """How many entries :func:`bulk_accept` would accept now with the same arguments (nothing is written)."""
    _check_bulk_rule(rule, max_distance)
    with session_scope(url) as session:
        return len(_bulk_choices(_bulk_entries(session, version_id, rule), rule, max_distance))


def bulk_accept(
    url: str | None, version_id: int, rule: str = "unambiguous_exact", *, reviewer: str = DEFAULT_REVIEWER,
    actor: Actor | None = None, max_distance: float | None = None,
) -> int:
    """Accept candidates of many pending entries by a rule (see :data:`BULK_RULES`). Approximate candidates are
    accepted in bulk only by ``approximate_within``, and only up to the composition distance the reviewer chose.
    Each acceptance is its own ``bulk_accept`` decision (revertible one by one).

    Args:
        url: database URL.
        version_id: the dataset version.
        rule: ``"unambiguous_exact"``, ``"top_exact"`` or ``"approximate_within"``.
        reviewer: who applied the rule.
        max_distance: for ``approximate_within``: the largest composition distance accepted (0 < d ≤
            :data:`MAX_BULK_DISTANCE`); the entry's closest pending candidate within it is accepted.

    Returns:
        The number of entries accepted.

    Raises:
        StructureStoreError: unknown rule, or a missing or out-of-range distance.
    """
    _check_bulk_rule(rule, max_distance)
    accepted = 0
    with session_scope(url) as session:
        _require_owner(session, actor, version_id=version_id)
        rule_text = BULK_RULES[rule] + (f" (distance ≤ {max_distance:g})" if rule == "approximate_within" else "")
        for entry, best in _bulk_choices(_bulk_entries(session, version_id, rule), rule, max_distance):
            decision = _decide(session, entry, action="bulk_accept", status="accepted", reviewer=reviewer,
                               candidate=best, note=f"bulk rule: {rule_text}")
            _apply(entry, decision)
            accepted += 1
    return accepted
