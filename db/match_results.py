"""Match results in the database: the entries to match, the ranked candidates stored, the job's summary.

A :class:`cosnet_core.matching.MatchResult` becomes ``MatchCandidate`` rows (rank, ``score`` = composition
distance, ``exact``, ``status``) and ``Entry.match_state``; the matcher's own status is kept in
``Entry.extra["match_status"]`` as the state to return to. Imports no torch.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from db.access import Actor
from db.engine import session_scope
from db.models import (
    DatasetVersion,
    Entry,
    MatchCandidate,
    ReviewDecision,
    Structure,
    utcnow,
)
from db.review_decisions import _apply, _decide, _refresh_state, _replay, _require_owner
from db.structure_base import DEFAULT_REVIEWER, StructureStoreError
from db.structure_rows import store_candidates

if TYPE_CHECKING:
    from cosnet_core.matching import MatchResult
    from cosnet_core.sources.base import StructureCandidate


@dataclass
class StoredMatches:
    """Counts of one :func:`store_match_results` call.

    Attributes:
        n_entries: entries whose candidates were stored.
        n_candidates: candidate rows written.
        n_auto_accepted: entries accepted by the auto-accept rule.
        n_skipped_reviewed: entries left alone because a reviewer already decided on them.
        states: number of entries per matcher status (``own_structure`` instead of ``no_candidate`` for a row
            that has a structure of its own, e.g. the dataset's CIF).
    """

    n_entries: int = 0
    n_candidates: int = 0
    n_auto_accepted: int = 0
    n_skipped_reviewed: int = 0
    states: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, other: StoredMatches) -> None:
        """Accumulate another call's counts."""
        self.n_entries += other.n_entries
        self.n_candidates += other.n_candidates
        self.n_auto_accepted += other.n_auto_accepted
        self.n_skipped_reviewed += other.n_skipped_reviewed
        for state, n in other.states.items():
            self.states[state] += n


def entries_to_match(url: str | None, version_id: int, *, include_reviewed: bool = False) -> list[tuple[int, str]]:
    """Kept entries of a version to (re)match, as ``(entry id, formula)``; reviewed entries (with a decision) are
    left out unless ``include_reviewed``.

    Raises:
        StructureStoreError: no such dataset version.
    """
    with session_scope(url) as session:
        if session.get(DatasetVersion, version_id) is None:
            raise StructureStoreError(f"dataset version {version_id}", "does not exist")
        query = select(Entry.id, Entry.composition, Entry.raw_formula).where(
            Entry.dataset_version_id == version_id, Entry.status == "kept"
        )
        if not include_reviewed:
            reviewed = select(ReviewDecision.entry_id).distinct()
            query = query.where(Entry.id.not_in(reviewed))
        rows = session.execute(query.order_by(Entry.row_number, Entry.id)).all()
    return [(entry_id, composition or raw) for entry_id, composition, raw in rows]


def store_match_results(
    url: str | None,
    results: Sequence[tuple[int, MatchResult | None]],
    *,
    auto_accept_rule: str | None = "unambiguous",
    reviewer: str = DEFAULT_REVIEWER,
    include_reviewed: bool = False,
    errors: dict[int, str] | None = None,
    actor: Actor | None = None,
) -> StoredMatches:
    """Store match results as candidates of their entries, in one transaction.

    For an entry nobody has decided on, its candidates are replaced by the new ones and ``match_state`` becomes the
    matcher's status; with ``auto_accept_rule`` (a name of :data:`cosnet_core.matching.AUTO_ACCEPT_RULES`), an exact
    candidate the rule allows is accepted as an ``auto_accept`` decision by ``reviewer``. An entry with decisions is
    skipped unless ``include_reviewed``; then candidates are updated in place (those a decision refers to are kept)
    and its decisions are replayed.

    Args:
        url: database URL.
        results: ``(entry id, result)`` pairs; a None result (a formula the matcher could not read) stores no
            candidate, state ``no_candidate``, and the reason from ``errors`` in ``Entry.extra["match_error"]``.
        auto_accept_rule: rule name, or None / ``"never"`` for no auto-accept.
        reviewer: recorded on auto-accept decisions.
        include_reviewed: also update entries that already have decisions.
        errors: ``{entry id: reason}`` for the None results.

    Returns:
        Counts of what was stored.
    """
    from cosnet_core.matching import AUTO_ACCEPT_RULES, auto_accept

    if auto_accept_rule not in (None, "never") and auto_accept_rule not in AUTO_ACCEPT_RULES:
        raise StructureStoreError(f"auto-accept rule {auto_accept_rule!r}", f"is not one of {', '.join(AUTO_ACCEPT_RULES)}")
    errors = errors or {}
    counts = StoredMatches()
    with session_scope(url) as session:
        ids = [entry_id for entry_id, _ in results]
        entries = {
            entry.id: entry
            for start in range(0, len(ids), 500)
            for entry in session.scalars(
                select(Entry)
                .where(Entry.id.in_(ids[start : start + 500]))
                .options(selectinload(Entry.candidates), selectinload(Entry.decisions))
            )
        }
        missing = [entry_id for entry_id in ids if entry_id not in entries]
        if missing:
            raise StructureStoreError(f"entry {missing[0]}", "does not exist")
        for version_id in {entry.dataset_version_id for entry in entries.values()}:
            _require_owner(session, actor, version_id=version_id)
        todo = [(entries[i], r) for i, r in results if include_reviewed or not entries[i].decisions]
        counts.n_skipped_reviewed = len(results) - len(todo)
        all_candidates = [ranked.candidate for _, result in todo if result for ranked in result.candidates]
        rows_by_key: dict[int, Structure] = {}
        if all_candidates:
            unique: dict[int, StructureCandidate] = {id(c): c for c in all_candidates}
            stored = store_candidates(session, list(unique.values()), created_by=reviewer)
            rows_by_key = dict(zip(unique.keys(), stored, strict=True))
        to_replay: list[Entry] = []
        to_accept: list[tuple[Entry, int]] = []
        for entry, result in todo:
            extra = dict(entry.extra or {})
            extra["match_status"] = result.status if result is not None else "no_candidate"
            extra.pop("match_error", None)
            if result is None:
                extra["match_error"] = errors.get(entry.id, "the formula could not be matched")
            extra["matched_at"] = utcnow().isoformat()
            entry.extra = extra
            wanted: dict[int, tuple[int, float, bool]] = {}
            for ranked in result.candidates if result is not None else []:
                row = rows_by_key[id(ranked.candidate)]
                if row.id not in wanted:
                    wanted[row.id] = (ranked.rank, float(ranked.composition_distance), bool(ranked.exact))
            referenced = {d.structure_id for d in entry.decisions if d.structure_id is not None}
            for candidate in list(entry.candidates):
                if candidate.structure_id in wanted:
                    rank, distance, exact = wanted.pop(candidate.structure_id)
                    candidate.rank, candidate.score, candidate.exact = rank, distance, exact
                elif candidate.structure_id not in referenced:
                    entry.candidates.remove(candidate)
                    session.delete(candidate)
            for structure_id, (rank, distance, exact) in wanted.items():
                entry.candidates.append(
                    MatchCandidate(structure_id=structure_id, rank=rank, score=distance, exact=exact, status="pending")
                )
                counts.n_candidates += 1
            counts.n_entries += 1
            # a row that came with its own structure (the dataset's CIF) is not "without a candidate" to anyone
            own = extra["match_status"] == "no_candidate" and entry.structure_id is not None
            counts.states["own_structure" if own else extra["match_status"]] += 1
            if entry.decisions:
                to_replay.append(entry)
                continue
            _refresh_state(entry)
            if entry.structure_id is not None:
                entry.match_state = "accepted"
            if result is None or auto_accept_rule in (None, "never") or entry.structure_id is not None:
                continue
            chosen = auto_accept(result, auto_accept_rule)
            if chosen is not None:
                to_accept.append((entry, rows_by_key[id(chosen.candidate)].id))
        session.flush()  # one flush for the whole chunk: candidate ids for the decisions below
        for entry in to_replay:
            _replay(entry)
        for entry, structure_id in to_accept:
            match = next(c for c in entry.candidates if c.structure_id == structure_id)
            decision = _decide(session, entry, action="auto_accept", status="accepted", reviewer=reviewer,
                               candidate=match, note=f"auto-accept rule {auto_accept_rule!r}")
            _apply(entry, decision)
            counts.n_auto_accepted += 1
    return counts


def record_matching_summary(url: str | None, version_id: int, summary: dict[str, Any]) -> None:
    """Keep the last bulk matching's summary in ``DatasetVersion.summary["structure_matching"]``."""
    with session_scope(url) as session:
        version = session.get(DatasetVersion, version_id)
        if version is None:
            raise StructureStoreError(f"dataset version {version_id}", "does not exist")
        merged = dict(version.summary or {})
        merged["structure_matching"] = summary
        version.summary = merged


def matching_summary(url: str | None, version_id: int) -> dict[str, Any] | None:
    """The summary of the last bulk matching of a version, if any."""
    with session_scope(url) as session:
        version = session.get(DatasetVersion, version_id)
        return None if version is None else (version.summary or {}).get("structure_matching")
