"""Crystal structures, match candidates and review decisions in the database.

What lives here (the page and the matching job call these; nothing here imports streamlit or torch at import
time, the CIF parsing of :mod:`cosnet_core` is imported on first use):

* **Structures** are stored once per content hash (:func:`cosnet_core.structure.structure_hash`); a row that
  belongs to the user's local library has ``in_library`` set. :func:`import_library` reads uploaded CIFs, zips of
  CIFs and CSV/JSON tables of structures, validates *everything* first (a broken CIF, a cell with more sites than
  allowed, a zip member whose path leaves the archive: the whole upload is refused, naming the file/row and the
  reason), deduplicates with pymatgen's ``StructureMatcher`` against the library already stored, then writes in one
  transaction. :func:`library_source` rebuilds the :class:`~cosnet_core.sources.local_library.StructureLibrary`
  from the rows, cached by a version key that changes whenever the library does.
* **Match results** (:class:`cosnet_core.matching.MatchResult`) become ``MatchCandidate`` rows (rank,
  ``score`` = composition distance, 0 for an exact match, ``exact``, ``status``) and ``Entry.match_state``; the
  matcher's own status is kept in ``Entry.extra["match_status"]`` as the state to return to.
* **Review decisions** (accept, choose another, reject, attach own CIF, bulk accept by rule, the matcher's
  auto-accept) are ``ReviewDecision`` rows with reviewer and time. Decisions are never deleted: a *revert* adds a
  decision pointing at the one it reverts (``reverts_id``), and the entry's state is recomputed by replaying the
  entry's decisions that are still in effect, in order, over the state the matcher left. So reverting restores
  the state before the reverted decision, and reverting a revert re-applies it.
* **Coverage** of a dataset version: kept entries with an accepted structure (``Entry.structure_id``) out of all
  kept entries.

Every write validates first and runs in one transaction (:func:`db.engine.session_scope`), so a refused input
leaves the database as it was.
"""

from __future__ import annotations

import io
import json
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, selectinload

from cosnet_core.errors import InputError
from db.access import Actor, require_owner_of, visible_datasets
from db.engine import session_scope
from db.models import (
    Dataset,
    DatasetVersion,
    Entry,
    MatchCandidate,
    ReviewDecision,
    Structure,
    utcnow,
)

if TYPE_CHECKING:
    from cosnet_core.matching import MatchResult
    from cosnet_core.sources.base import StructureCandidate
    from cosnet_core.sources.local_library import StructureLibrary

DEFAULT_REVIEWER = "local"
MAX_SITES_ENV = "COSNET_MAX_STRUCTURE_SITES"  # cosnet_core.settings.SETTINGS.max_structure_sites
DEFAULT_MAX_SITES = 2000  # the same default as cosnet_core.structure.DEFAULT_MAX_SITES and the setting's

ACCEPTING_ACTIONS = ("accept", "choose", "attach", "auto_accept", "bulk_accept")
DECISION_ACTIONS = (*ACCEPTING_ACTIONS, "reject", "revert")
REVIEW_FILTERS: dict[str, str] = {
    "all": "All entries",
    "pending": "Pending review",
    "ambiguous": "Ambiguous (several exact candidates)",
    "approximate": "Approximate (parent structures only)",
    "no_candidate": "No candidate",
    "accepted": "Accepted",
    "rejected": "Rejected",
    "unmatched": "Not matched yet",
}
PENDING_STATES = ("unambiguous", "ambiguous", "approximate")
BULK_RULES: dict[str, str] = {
    "unambiguous_exact": "every pending entry with exactly one exact candidate: accept it",
    "top_exact": "every pending entry with at least one exact candidate: accept the top-ranked exact one",
    "approximate_within": "every approximate entry whose closest candidate lies within a composition distance: "
    "accept that candidate",
}
#: Largest threshold of the ``approximate_within`` rule: the matcher's own limit for approximate candidates.
MAX_BULK_DISTANCE = 0.10
TABLE_SUFFIXES = (".csv", ".csv.gz", ".json", ".json.gz")
CIF_SUFFIXES = (".cif", ".mcif")
ZIP_SUFFIXES = (".zip",)
TABLE_ID_COLUMNS = ("material_id", "id", "external_id", "name", "filename")


Progress = Callable[[float, str], None]


MAX_ATTACH_DISTANCE = 0.10  # an attached CIF may be a parent structure of a doped row, not another compound


class StructureStoreError(InputError):
    """Input the structure store refuses, naming the item (file, row, entry, decision) and the reason.

    Attributes:
        item: what was refused, e.g. ``"cifs.zip: ../evil.cif"`` or ``"decision 12"``.
        reason: why, in words for the user.
    """


def default_reviewer() -> str:
    """The reviewer name recorded when none is given (single-user mode; pages pass the logged-in user)."""
    return DEFAULT_REVIEWER


def configured_max_sites() -> int:
    """Largest number of sites accepted in a stored structure (``COSNET_MAX_STRUCTURE_SITES``, default 2000)."""
    from cosnet_core.settings import SETTINGS, SettingError

    try:
        return SETTINGS.max_structure_sites.get()
    except SettingError as error:
        raise StructureStoreError(MAX_SITES_ENV, error.reason) from error


# ----------------------------------------------------------------------------------------------------------------
# Coverage and counts
# ----------------------------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------------------------
# Structures
# ----------------------------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------------------------
# Library import
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class LibraryImportReport:
    """What :func:`import_library` did.

    Attributes:
        n_read: structures read from the upload(s).
        n_added: new library rows.
        n_joined: structures already stored (e.g. from the Materials Project) that joined the library.
        n_duplicates: structures merged into a library entry by ``StructureMatcher`` or an identical content hash.
        duplicates: ``{name in the upload: library entry it duplicates}``.
        added_ids: external ids of the new library rows.
    """

    n_read: int = 0
    n_added: int = 0
    n_joined: int = 0
    n_duplicates: int = 0
    duplicates: dict[str, str] = field(default_factory=dict)
    added_ids: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One sentence for the page."""
        return (
            f"Read {self.n_read} structure(s): {self.n_added} added to the library, "
            f"{self.n_joined} already stored and now in the library, {self.n_duplicates} duplicate(s) skipped."
        )


def _parse_cif_candidate(text: str, external_id: str, item: str, max_sites: int, **properties: Any):
    """A library candidate for one CIF text, validated (parsing, sites, volume); spacegroup computed if absent."""
    from cosnet_core.sources.local_library import candidate_from_structure
    from cosnet_core.structure_io import StructureError, load_structure

    try:
        structure = load_structure(text, max_sites=max_sites)
    except StructureError as error:
        raise StructureStoreError(item, error.reason) from error
    return candidate_from_structure(structure, external_id, source="library", cif=text, **properties)


CIF_PARSE_TIMEOUT_S, CIF_PARSE_MEMORY_MB = 15.0, 1024


def _bounded_cif_candidates(entries: Sequence[tuple[str, str, str, int, dict[str, Any]]]) -> list:
    """:func:`_parse_cif_candidate` for each ``(text, external_id, item, max_sites, properties)``, in a separate
    process with a hard time and memory limit per CIF (pages' script threads cannot stop pymatgen otherwise).

    Raises:
        StructureStoreError: the first CIF that cannot be used, named (nothing is imported then).
    """
    from cosnet_core.bounded import map_bounded

    outcomes = map_bounded(_parse_cif_candidate_with, list(entries), timeout_s=CIF_PARSE_TIMEOUT_S,
                           memory_mb=CIF_PARSE_MEMORY_MB)
    for (_, _, item, _, _), (status, value) in zip(entries, outcomes, strict=True):
        if status != "ok":
            raise StructureStoreError(item, value if status == "error" else f"reading it {value}")
    return [value for _, value in outcomes]


def _parse_cif_candidate_with(text: str, external_id: str, item: str, max_sites: int, properties: dict[str, Any]):
    return _parse_cif_candidate(text, external_id, item, max_sites, **properties)


def _bounded_cif_candidate(text: str, external_id: str, item: str, max_sites: int):
    """One CIF through :func:`_bounded_cif_candidates`."""
    return _bounded_cif_candidates([(text, external_id, item, max_sites, {})])[0]


def _decode(data: bytes, item: str) -> str:
    text = data.decode("utf-8-sig", errors="replace")
    if not text.strip():
        raise StructureStoreError(item, "the file is empty")
    return text


def _zip_members(name: str, data: bytes) -> list[tuple[str, bytes]]:
    """CIF members of an uploaded zip as ``(file name, bytes)``, read by :func:`cosnet_core.cif_zip.read_cif_zip`
    (upload limits, zip slip, zip bombs); any refusal refuses the whole archive, naming the member."""
    from cosnet_core.cif_zip import CifZipError, member_base_name, read_cif_zip

    try:
        members = read_cif_zip(data)
    except CifZipError as error:
        raise StructureStoreError(f"{name}: {error.item}" if error.item else name, error.reason) from error
    if not members:
        raise StructureStoreError(name, "the archive holds no .cif file")
    return [(member_base_name(member), member_data) for member, member_data in members.items()]


def _table_frame(name: str, data: bytes) -> pd.DataFrame:
    lower = name.lower()
    try:
        if lower.endswith((".json", ".json.gz")):
            return pd.read_json(io.BytesIO(data), compression="gzip" if lower.endswith(".gz") else None)
        return pd.read_csv(
            io.BytesIO(data), dtype=str, keep_default_na=False, compression="gzip" if lower.endswith(".gz") else None
        )
    except (ValueError, OSError, UnicodeDecodeError, EOFError) as error:
        raise StructureStoreError(name, f"cannot be read as a table ({error})") from error


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    return str(value).strip()


def _optional_int(value: Any) -> int | None:
    text = _cell(value)
    try:
        return int(float(text)) if text else None
    except ValueError:
        return None


def _optional_float(value: Any) -> float | None:
    text = _cell(value)
    try:
        return float(text) if text else None
    except ValueError:
        return None


def _optional_flag(value: Any) -> bool | None:
    text = _cell(value).lower()
    return {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}.get(text)


def _table_candidates(name: str, data: bytes, max_sites: int, progress: Progress | None = None) -> list[StructureCandidate]:
    frame = _table_frame(name, data)
    id_column = next((column for column in TABLE_ID_COLUMNS if column in frame.columns), None)
    if id_column is None or "cif" not in frame.columns:
        raise StructureStoreError(
            name,
            f"needs an id column (one of {', '.join(TABLE_ID_COLUMNS)}) and a 'cif' column; "
            f"it has {', '.join(map(str, frame.columns))}",
        )
    entries: list[tuple[str, str, str, int, dict[str, Any]]] = []
    seen: set[str] = set()
    n_rows = len(frame)
    for row_number, row in enumerate(frame.to_dict("records"), start=1):
        if progress is not None and row_number % 100 == 0:
            progress(row_number / n_rows, f"{name}: read {row_number} of {n_rows} rows")
        item = f"{name} row {row_number}"
        external_id = _cell(row.get(id_column))
        if not external_id:
            raise StructureStoreError(item, f"the {id_column!r} value is empty")
        if external_id in seen:
            raise StructureStoreError(f"{item} ({external_id})", "this id appears twice in the table")
        seen.add(external_id)
        cif = _cell(row.get("cif"))
        if not cif:
            raise StructureStoreError(f"{item} ({external_id})", "the 'cif' value is empty")
        number = _optional_int(row.get("spacegroup_number"))
        entries.append((
            cif,
            external_id,
            f"{item} ({external_id})",
            max_sites,
            {
                "spacegroup_number": number,
                "spacegroup_symbol": _cell(row.get("spacegroup_symbol")) or None,
                "energy_above_hull": _optional_float(row.get("energy_above_hull")),
                "is_stable": _optional_flag(row.get("is_stable")),
                "theoretical": _optional_flag(row.get("theoretical")),
            },
        ))
    if not entries:
        raise StructureStoreError(name, "the table has no rows")
    return _bounded_cif_candidates(entries)


def read_library_upload(
    name: str, data: bytes, *, max_sites: int | None = None, progress: Progress | None = None
) -> list[StructureCandidate]:
    """Parse and validate one uploaded file of structures (nothing is written).

    Args:
        name: the file name; its ending decides the format: ``.cif``/``.mcif``, ``.zip`` (of CIFs), ``.csv``,
            ``.csv.gz``, ``.json``, ``.json.gz`` (a table with an id column and a ``cif`` column).
        data: the file's bytes.
        max_sites: largest accepted number of sites (default :func:`configured_max_sites`).
        progress: called as ``progress(fraction, message)`` while a long file is read.

    Returns:
        One validated library candidate per structure (parsed, content hash computed).

    Raises:
        StructureStoreError: unknown format, unreadable file, a broken CIF, too many sites, a zip member leaving
            the archive, a table without id/cif columns; the message names the file (and member or row).
    """
    max_sites = configured_max_sites() if max_sites is None else max_sites
    lower = name.lower()
    if lower.endswith(CIF_SUFFIXES):
        return [_bounded_cif_candidate(_decode(data, name), name, name, max_sites)]
    if lower.endswith(ZIP_SUFFIXES):
        members = _zip_members(name, data)
        if progress is not None:
            progress(0.0, f"{name}: reading {len(members)} CIFs")
        return _bounded_cif_candidates([
            (_decode(member_data, f"{name}: {member}"), member, f"{name}: {member}", max_sites, {})
            for member, member_data in members
        ])
    if lower.endswith(TABLE_SUFFIXES):
        return _table_candidates(name, data, max_sites, progress)
    raise StructureStoreError(
        name, "unknown file type: upload .cif files, a .zip of CIFs, or a .csv/.csv.gz/.json table with a 'cif' column"
    )


def import_library(
    url: str | None,
    uploads: Sequence[tuple[str, bytes]],
    *,
    max_sites: int | None = None,
    created_by: str = DEFAULT_REVIEWER,
    progress: Progress | None = None,
) -> LibraryImportReport:
    """Add uploaded structures to the local library: validate all, deduplicate, write in one transaction.

    Deduplication: a structure whose content hash is already in the library is skipped; the rest are compared with
    the library's structures of the same reduced formula (and with each other) by pymatgen's ``StructureMatcher``,
    and only the first of each group of equal structures is kept.

    Args:
        url: database URL.
        uploads: ``(file name, bytes)`` pairs (see :func:`read_library_upload` for the formats).
        max_sites: largest accepted number of sites (default :func:`configured_max_sites`).
        created_by: who imported them.
        progress: called as ``progress(fraction, message)`` (reading takes the first 60 %, deduplication the next
            30 %); it may raise to abandon the import before anything is written.

    Returns:
        What was added and what was skipped.

    Raises:
        StructureStoreError: any file, member or row is refused (named); nothing is written then.
    """
    from cosnet_core.sources.local_library import StructureLibrary

    if not uploads:
        raise StructureStoreError("upload", "no file was given")
    def report_progress(fraction: float, message: str) -> None:
        if progress is not None:
            progress(fraction, message)

    candidates: list[StructureCandidate] = []
    for position, (name, data) in enumerate(uploads):
        def file_progress(fraction: float, message: str, position: int = position) -> None:
            report_progress(0.6 * (position + fraction) / len(uploads), message)

        candidates.extend(read_library_upload(name, data, max_sites=max_sites, progress=file_progress))
    report_progress(0.6, f"read {len(candidates)} structures; deduplicating")

    report = LibraryImportReport(n_read=len(candidates))
    existing = library_source(url)
    hashes_in_library = {entry.content_hash: entry.external_id for entry in existing}
    fresh: list[StructureCandidate] = []
    fresh_hashes: dict[str, str] = {}
    for candidate in candidates:
        content_hash = candidate.get_content_hash()
        kept = hashes_in_library.get(content_hash) or fresh_hashes.get(content_hash)
        if kept is not None:
            report.duplicates[candidate.external_id] = kept
            continue
        fresh_hashes[content_hash] = candidate.external_id
        fresh.append(candidate)

    # StructureMatcher deduplication against a working copy of the stored library (ids made unique first).
    working = StructureLibrary.from_records(existing.to_records())
    taken = {entry.external_id for entry in working}
    for candidate in fresh:
        base, number = candidate.external_id, 1
        while candidate.external_id in taken:
            number += 1
            candidate.external_id = f"{base} ({number})"
        taken.add(candidate.external_id)
    working.extend(fresh, deduplicate=True)
    kept_fresh = [
        candidate
        for candidate in fresh
        if candidate.external_id in working and working.get(candidate.external_id) is candidate
    ]
    for dropped, keeper in working.duplicates.items():
        if dropped in {candidate.external_id for candidate in fresh}:
            report.duplicates[dropped] = keeper
    report.n_duplicates = len(report.duplicates)
    report_progress(0.9, f"writing {len(kept_fresh)} new structures")

    with session_scope(url) as session:
        before = _existing_by_hash(session, [candidate.get_content_hash() for candidate in kept_fresh])
        store_candidates(session, kept_fresh, in_library=True, created_by=created_by)
    for candidate in kept_fresh:
        if candidate.get_content_hash() in before:
            report.n_joined += 1
        else:
            report.n_added += 1
            report.added_ids.append(candidate.external_id)
    return report


def import_library_file(
    url: str | None, path: str | Path, *, max_sites: int | None = None, created_by: str = DEFAULT_REVIEWER
) -> LibraryImportReport:
    """:func:`import_library` for a file on disk (e.g. ``mp_structure_library.csv.gz``)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise StructureStoreError(path.name, f"cannot be read ({error})") from error
    return import_library(url, [(path.name, data)], max_sites=max_sites, created_by=created_by)


_library_cache: dict[str, tuple[tuple[int, int, int], StructureLibrary]] = {}
_library_lock = threading.Lock()


def library_version_key(url: str | None) -> tuple[int, int, int]:
    """A key that changes whenever the library changes: (number of rows, largest id, sum of ids)."""
    with session_scope(url) as session:
        count, largest, total = session.execute(
            select(func.count(Structure.id), func.max(Structure.id), func.sum(Structure.id)).where(
                Structure.in_library.is_(True)
            )
        ).one()
    return int(count or 0), int(largest or 0), int(total or 0)


def library_source(url: str | None) -> StructureLibrary:
    """The local library as a :class:`~cosnet_core.sources.local_library.StructureLibrary` built from the rows.

    Built once per library version (see :func:`library_version_key`) and shared; treat it as read-only. Entry ids
    are the rows' external ids (suffixed ``#<row id>`` when two rows share one); each entry carries its row's content
    hash, so a match candidate maps back to its row.

    Args:
        url: database URL.

    Returns:
        The library.
    """
    from cosnet_core.sources.local_library import StructureLibrary

    key = library_version_key(url)
    cache_key = url or "<default>"
    with _library_lock:
        cached = _library_cache.get(cache_key)
        if cached is not None and cached[0] == key:
            return cached[1]
    with session_scope(url) as session:
        rows = session.execute(
            select(
                Structure.id,
                Structure.external_id,
                Structure.formula,
                Structure.cif,
                Structure.energy_above_hull,
                Structure.theoretical,
                Structure.spacegroup_symbol,
                Structure.spacegroup_number,
                Structure.nsites,
                Structure.content_hash,
            )
            .where(Structure.in_library.is_(True))
            .order_by(Structure.id)
        ).all()
    records = []
    seen: set[str] = set()
    for row in rows:
        external_id = row.external_id or f"structure {row.id}"
        if external_id in seen:
            external_id = f"{external_id}#{row.id}"
        seen.add(external_id)
        records.append(
            {
                "source": "library",
                "external_id": external_id,
                "formula": row.formula,
                "cif": row.cif,
                "energy_above_hull": row.energy_above_hull,
                "theoretical": row.theoretical,
                "spacegroup_symbol": row.spacegroup_symbol,
                "spacegroup_number": row.spacegroup_number,
                "nsites": row.nsites,
                "content_hash": row.content_hash,
            }
        )
    library = StructureLibrary.from_records(records, name="library", source="library")
    with _library_lock:
        _library_cache[cache_key] = (key, library)
    return library


def structures_of_formula(
    url: str | None, reduced_formula: str, *, username: str | None = None, is_admin: bool = True
) -> list[dict[str, Any]]:
    """The stored structures of one reduced formula that a user may use: the lab's library and the Materials
    Project's for everyone, a structure that came with a dataset (or was attached by a reviewer) only when a
    dataset the user may see uses it (:func:`db.access.visible_datasets`). Smallest cells first.

    Args:
        url: database URL.
        reduced_formula: e.g. ``"NaCl"``.
        username: the user asking (None: a trusted caller, every structure).
        is_admin: administrators see every structure.

    Returns:
        ``[{"id", "external_id", "spacegroup_symbol", "cif"}]``.
    """
    used_by_visible = (
        select(Entry.id)
        .join(DatasetVersion, Entry.dataset_version_id == DatasetVersion.id)
        .join(Dataset, DatasetVersion.dataset_id == Dataset.id)
        .where(visible_datasets(username, is_admin))
    )
    public = or_(Structure.in_library.is_(True), Structure.source.in_(("materials_project", "library")))
    visible = or_(
        public,
        select(Entry.id).where(Entry.structure_id == Structure.id, Entry.id.in_(used_by_visible)).exists(),
        select(MatchCandidate.id)
        .where(MatchCandidate.structure_id == Structure.id, MatchCandidate.entry_id.in_(used_by_visible))
        .exists(),
    )
    with session_scope(url) as session:
        rows = session.execute(
            select(Structure.id, Structure.external_id, Structure.spacegroup_symbol, Structure.cif)
            .where(Structure.formula == reduced_formula, visible)
            .order_by(Structure.nsites, Structure.id)
        ).all()
    return [dict(row._mapping) for row in rows]


def dataset_source(url: str | None, version_id: int) -> StructureLibrary:
    """The structures that came with a dataset version (rows with ``source="dataset"`` its entries point at), as a
    ``StructureSource`` with ``source="dataset"``."""
    from cosnet_core.sources.local_library import StructureLibrary

    with session_scope(url) as session:
        rows = session.execute(
            select(Structure)
            .join(Entry, Entry.structure_id == Structure.id)
            .where(Entry.dataset_version_id == version_id, Structure.source == "dataset")
            .distinct()
        ).scalars().all()
        records = [
            {
                "source": "dataset",
                "external_id": f"{row.external_id or 'structure'}#{row.id}",
                "formula": row.formula,
                "cif": row.cif,
                "spacegroup_symbol": row.spacegroup_symbol,
                "spacegroup_number": row.spacegroup_number,
                "nsites": row.nsites,
                "content_hash": row.content_hash,
            }
            for row in rows
        ]
    return StructureLibrary.from_records(records, name="dataset", source="dataset")


# ----------------------------------------------------------------------------------------------------------------
# Decisions: applying and replaying
# ----------------------------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------------------------
# Match results
# ----------------------------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------------------------
# Queries for the review page
# ----------------------------------------------------------------------------------------------------------------


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
