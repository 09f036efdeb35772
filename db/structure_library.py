"""The user's structure library in the database: reading uploads, importing them, and the sources built from it.

:func:`read_library_upload` parses and validates one uploaded file (CIF, zip of CIFs through
:func:`cosnet_core.cif_zip.read_cif_zip`, CSV/JSON table with a ``cif`` column) in a bounded process;
:func:`import_library` deduplicates with pymatgen's ``StructureMatcher`` and writes in one transaction;
:func:`library_source` and :func:`dataset_source` rebuild a
:class:`~cosnet_core.sources.local_library.StructureLibrary` from the rows (cached by a version key).
Imports no torch at import time (the CIF parsing of :mod:`cosnet_core` is imported on first use).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, or_, select

from db.access import visible_datasets
from db.engine import session_scope
from db.models import (
    Dataset,
    DatasetVersion,
    Entry,
    MatchCandidate,
    Structure,
)
from db.structure_base import (
    CIF_SUFFIXES,
    DEFAULT_REVIEWER,
    TABLE_SUFFIXES,
    ZIP_SUFFIXES,
    Progress,
    StructureStoreError,
    configured_max_sites,
)
from db.structure_rows import _existing_by_hash, store_candidates

if TYPE_CHECKING:
    from cosnet_core.sources.base import StructureCandidate
    from cosnet_core.sources.local_library import StructureLibrary


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


def _table_candidates(name: str, data: bytes, max_sites: int, progress: Progress | None = None) -> list[StructureCandidate]:
    """The rows of an uploaded table of structures, read and checked by
    :func:`cosnet_core.structure_table.read_structure_table`, then each CIF parsed (bounded)."""
    from cosnet_core.structure_table import StructureTableError, read_structure_table

    try:
        rows = read_structure_table(data, name)
    except StructureTableError as error:
        raise StructureStoreError(error.item or name, error.reason) from error
    if progress is not None:
        progress(0.0, f"{name}: reading {len(rows)} rows")
    return _bounded_cif_candidates([(row.cif, row.external_id, row.item, max_sites, row.properties) for row in rows])


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
