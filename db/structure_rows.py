"""Structure rows: stored once per content hash, loaded back, and the coverage of a dataset version.

:func:`store_candidates` writes validated candidates (one row per :func:`cosnet_core.structure_io.structure_hash`),
:func:`load_structure_row` reads one back, :func:`coverage` and :func:`state_counts` count a version's entries by
structure and review state. Imports no torch.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.engine import session_scope
from db.models import (
    Entry,
    Structure,
)
from db.structure_base import DEFAULT_REVIEWER, PENDING_STATES, StructureStoreError

if TYPE_CHECKING:
    from cosnet_core.sources.base import StructureCandidate


@dataclass(frozen=True)
class Coverage:
    """Structure coverage of a dataset version.

    Attributes:
        n_with_structure: kept entries with an accepted structure.
        n_kept: all kept entries.
    """

    n_with_structure: int
    n_kept: int

    @property
    def fraction(self) -> float:
        """``n_with_structure / n_kept`` (0 for an empty version)."""
        return self.n_with_structure / self.n_kept if self.n_kept else 0.0

    def label(self) -> str:
        """E.g. ``"12 / 40 (30.0 %)"``."""
        return f"{self.n_with_structure} / {self.n_kept} ({100 * self.fraction:.1f} %)"


def coverage(url: str | None, version_id: int) -> Coverage:
    """Kept entries of a version with an accepted structure, out of all its kept entries.

    Args:
        url: database URL (None: the configured one).
        version_id: the dataset version.

    Returns:
        The coverage counts.
    """
    with session_scope(url) as session:
        n_kept, n_with = session.execute(
            select(func.count(Entry.id), func.count(Entry.structure_id)).where(
                Entry.dataset_version_id == version_id, Entry.status == "kept"
            )
        ).one()
    return Coverage(int(n_with), int(n_kept))


def state_counts(url: str | None, version_id: int) -> dict[str, int]:
    """Number of kept entries per match state (``Entry.match_state``), plus ``"pending"`` (their sum over
    ``unambiguous``, ``ambiguous`` and ``approximate``) and ``"all"``."""
    with session_scope(url) as session:
        rows = session.execute(
            select(Entry.match_state, func.count(Entry.id))
            .where(Entry.dataset_version_id == version_id, Entry.status == "kept")
            .group_by(Entry.match_state)
        ).all()
    counts = {state: int(n) for state, n in rows}
    counts["pending"] = sum(counts.get(state, 0) for state in PENDING_STATES)
    counts["all"] = sum(int(n) for _, n in rows)
    return counts


def _structure_fields(candidate: StructureCandidate) -> dict[str, Any]:
    """Column values of a ``Structure`` row for a candidate (parses its CIF if needed)."""
    from cosnet_core.structure_io import summarize_structure

    structure = candidate.get_structure()
    summary = summarize_structure(structure, with_space_group=False)  # the candidate carries its space group
    return {
        "source": candidate.source,
        "external_id": candidate.external_id[:200],
        "formula": summary.formula,
        "chemsys": summary.chemsys,
        "spacegroup_symbol": candidate.spacegroup_symbol,
        "spacegroup_number": candidate.spacegroup_number,
        "nsites": summary.nsites,
        "volume_per_atom": summary.volume_per_atom,
        "density": summary.density,
        "is_ordered": summary.is_ordered,
        "theoretical": candidate.theoretical,
        "energy_above_hull": candidate.energy_above_hull,
        "cif": candidate.get_cif(),
        "pymatgen_json": json.dumps(structure.as_dict()),
        "content_hash": candidate.get_content_hash(),
    }


def _existing_by_hash(session: Session, hashes: Iterable[str]) -> dict[str, Structure]:
    """Stored structures by content hash (queried in chunks to stay under SQL parameter limits)."""
    found: dict[str, Structure] = {}
    unique = sorted(set(hashes))
    for start in range(0, len(unique), 500):
        chunk = unique[start : start + 500]
        for row in session.scalars(select(Structure).where(Structure.content_hash.in_(chunk))):
            found[row.content_hash] = row
    return found


def store_candidates(
    session: Session,
    candidates: Sequence[StructureCandidate],
    *,
    in_library: bool = False,
    created_by: str = DEFAULT_REVIEWER,
) -> list[Structure]:
    """The ``Structure`` row of each candidate, inserting those whose content hash is new.

    A row that already exists is reused; with ``in_library`` it joins the library, and a row stored earlier without
    Materials Project properties gets the candidate's energy above hull and theoretical flag.

    Args:
        session: an open session (the caller's transaction).
        candidates: the structures (their CIFs are parsed when no structure or hash is attached).
        in_library: mark the rows as members of the local library.
        created_by: who stored them.

    Returns:
        One row per candidate, in order (flushed, so ids are set).
    """
    hashes = [candidate.get_content_hash() for candidate in candidates]
    existing = _existing_by_hash(session, hashes)
    rows: list[Structure] = []
    for candidate, content_hash in zip(candidates, hashes, strict=True):
        row = existing.get(content_hash)
        if row is None:
            row = Structure(**_structure_fields(candidate), in_library=in_library, created_by=created_by)
            session.add(row)
            existing[content_hash] = row
        else:
            if in_library and not row.in_library:
                row.in_library = True
            if row.energy_above_hull is None and candidate.energy_above_hull is not None:
                row.energy_above_hull = candidate.energy_above_hull
            if row.theoretical is None and candidate.theoretical is not None:
                row.theoretical = candidate.theoretical
        rows.append(row)
    session.flush()
    return rows


def load_structure_row(url: str | None, structure_id: int):
    """The pymatgen ``Structure`` of a stored row (from its pymatgen JSON, else its CIF).

    Args:
        url: database URL.
        structure_id: the row id.

    Returns:
        The structure.

    Raises:
        StructureStoreError: no such row.
    """
    from pymatgen.core import Structure as PymatgenStructure

    with session_scope(url) as session:
        row = session.get(Structure, structure_id)
        if row is None:
            raise StructureStoreError(f"structure {structure_id}", "does not exist")
        pymatgen_json, cif = row.pymatgen_json, row.cif
    if pymatgen_json:
        return PymatgenStructure.from_dict(json.loads(pymatgen_json))
    from cosnet_core.structure_io import load_structure

    return load_structure(cif)
