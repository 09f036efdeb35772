"""Datasets and their versions: storing a cleaned upload, listing, loading, dependents and deletion.

An import is one transaction: the :class:`~db.models.Dataset` (for a new dataset), one
:class:`~db.models.DatasetVersion`, one :class:`~db.models.Entry` per row of the file (every status, so
nothing is lost silently), the crystal structures that came with the upload (one
:class:`~db.models.Structure` per content hash, shared between datasets) and, for each row whose own CIF came
with the upload, an accepted link plus a :class:`~db.models.ReviewDecision` saying so. Either all of it is
stored or none of it.

Versions are immutable: re-uploading or re-cleaning adds version ``n + 1`` whose ``parent_id`` points at the
version it replaces; older versions and everything trained on them stay readable.

CIF parsing is not done here (it needs pymatgen and the crystal-graph module, which imports torch): the caller
parses the CIFs (see ``ui.datasets_view.parse_uploaded_cifs``) and hands over :class:`UploadedStructure` rows
and per-file errors. This module imports neither streamlit nor torch.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pandas as pd
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from cosnet_core.errors import InputError
from db import audit
from db.access import Actor, require_dataset_owner, visible_datasets
from db.config import artifacts_dir, data_dir
from db.engine import session_scope
from db.models import (
    Dataset,
    DatasetVersion,
    Entry,
    EpochMetric,
    MatchCandidate,
    ModelArtifact,
    Prediction,
    ReviewDecision,
    Run,
    Structure,
    Study,
)

if TYPE_CHECKING:  # the ingest module pulls in pymatgen; only its types are needed here
    from cosnet_core.ingest import IngestResult

UPLOAD_NOTE = "uploaded with the dataset"
# Entry columns with a length limit in the schema (PostgreSQL enforces them; SQLite does not).
_LIMITS = {"external_id": 200, "composition": 200, "raw_target": 200, "split": 20, "mp_id": 100,
           "structure_file": 500, "target_name": 200, "target_unit": 100}
#: Attempts of an import that a concurrent import beat to a unique row (see :func:`_retry_on_conflict`).
CONFLICT_ATTEMPTS = 4
_T = TypeVar("_T")


class DatasetStoreError(InputError):
    """A request the store refuses (unknown dataset or version, nothing to import)."""


@dataclass(frozen=True)
class UploadedStructure:
    """A crystal structure parsed from a CIF of the upload, ready to be stored.

    Attributes:
        member: the zip member name it came from.
        cif: the CIF text.
        content_hash: ``cosnet_core.structure.structure_hash`` (64 hex characters).
        formula: reduced formula.
        chemsys: sorted element symbols joined by ``-``.
        nsites: number of sites in the cell as written.
        fractions: ``{element: atomic fraction}`` of the structure's composition.
        spacegroup_symbol: Hermann-Mauguin symbol, if symmetry analysis worked.
        spacegroup_number: international number, if symmetry analysis worked.
        volume_per_atom: V_a, the cell volume divided by the occupancy-weighted number of atoms (Å³;
            :func:`cosnet_core.structure.volume_per_atom`).
        density: g/cm³.
        is_ordered: whether every site holds one species at full occupancy.
        pymatgen_json: ``Structure.to_json()``.
    """

    member: str
    cif: str
    content_hash: str
    formula: str
    chemsys: str
    nsites: int
    fractions: dict[str, float] = field(default_factory=dict)
    spacegroup_symbol: str | None = None
    spacegroup_number: int | None = None
    volume_per_atom: float | None = None
    density: float | None = None
    is_ordered: bool = True
    pymatgen_json: str | None = None


@dataclass(frozen=True)
class UploadedStructures:
    """The CIFs of an upload after parsing: the structures that worked and, per member, why others failed."""

    structures: dict[str, UploadedStructure] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StoredVersion:
    """Where an import went."""

    dataset_id: int
    version_id: int
    number: int


@dataclass(frozen=True)
class VersionInfo:
    """One dataset version as listed on the page."""

    id: int
    dataset_id: int
    dataset_name: str
    number: int
    parent_id: int | None
    created_at: datetime
    created_by: str
    source_filename: str | None
    source_sha256: str | None
    target_name: str | None
    target_unit: str | None
    target_transform: str
    n_rows: int
    n_kept: int
    n_rejected: int
    settings: dict[str, Any]
    summary: dict[str, Any]
    note: str | None
    temperature_unit: str | None = None  # "°C" or "K"; None: no temperature column, or imported before it was asked

    @property
    def label(self) -> str:
        """``name · v2 (120 rows kept)``."""
        return f"{self.dataset_name} · v{self.number} ({self.n_kept} rows kept)"


@dataclass(frozen=True)
class DatasetInfo:
    """One dataset with its versions (oldest first)."""

    id: int
    name: str
    description: str | None
    owner: str
    created_at: datetime
    versions: list[VersionInfo]
    shared: bool = False

    @property
    def latest(self) -> VersionInfo | None:
        """The newest version, if any."""
        return self.versions[-1] if self.versions else None


@dataclass(frozen=True)
class Dependents:
    """What would be lost with a dataset or a version (shown before deleting).

    Attributes:
        versions: labels of the versions concerned.
        studies: names of the studies on them.
        n_runs: training runs (with their epochs and predictions).
        n_models: trained model artifacts.
        n_predictions: stored predictions.
        n_review_decisions: structure decisions recorded on their entries.
        n_match_candidates: candidate structures proposed for their entries.
        n_entries: rows stored.
    """

    versions: list[str]
    studies: list[str]
    n_runs: int
    n_models: int
    n_predictions: int
    n_review_decisions: int
    n_match_candidates: int
    n_entries: int

    @property
    def has_work(self) -> bool:
        """Whether anything beyond the rows themselves depends on it (studies, runs, models, decisions)."""
        return bool(self.studies or self.n_runs or self.n_models or self.n_review_decisions)

    def describe(self) -> str:
        """A sentence listing what depends on it, for the confirmation message."""
        parts = [f"{len(self.versions)} version(s) ({', '.join(self.versions)})", f"{self.n_entries} rows"]
        if self.studies:
            parts.append(f"{len(self.studies)} study(ies) ({', '.join(self.studies)})")
        else:
            parts.append("no study")
        parts.append(f"{self.n_runs} training run(s)")
        parts.append(f"{self.n_models} trained model(s)")
        parts.append(f"{self.n_predictions} prediction(s)")
        parts.append(f"{self.n_review_decisions} structure decision(s)")
        return "Deleting removes " + ", ".join(parts) + "."


# ----------------------------------------------------------------------------------------------------
# Storing an import


def _text(value: object, limit: int | None = None) -> str | None:
    """A cell as stored text: None for missing or blank values, truncated to ``limit``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip()
    if not text:
        return None
    return text[:limit] if limit else text


def _number(value: object) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _fractions_differ(a: Mapping[str, float], b: Mapping[str, float], tolerance: float = 2e-3) -> bool:
    if set(a) != set(b):
        return True
    return any(abs(a[el] - b[el]) > tolerance for el in a)


def _version_settings(result: IngestResult, extra_settings: Mapping[str, Any] | None) -> dict[str, Any]:
    raw = result.raw
    settings: dict[str, Any] = {
        "mapping": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(result.mapping).items()},
        "options": {
            k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(result.options).items()
        },
        "sheet": raw.sheet,
        "has_header": raw.has_header,
        "encoding": raw.encoding,
        "delimiter": raw.delimiter,
        "warnings": list(result.warnings),
    }
    settings.update(extra_settings or {})
    return settings


def _version_summary(result: IngestResult, n_attached: int, n_cif_failed: int) -> dict[str, Any]:
    summary = asdict(result.summary)
    summary.pop("target_values", None)  # recomputed from the stored entries when needed
    conflicts = result.conflicts
    summary["conflicts"] = [
        {
            "composition": str(row["reduced_formula"]),
            "n_rows": int(row["n_rows"]),
            "rows": [int(r) for r in row["rows"]],
            "min": float(row["min"]),
            "max": float(row["max"]),
            "spread": float(row["spread"]),
        }
        for _, row in conflicts.iterrows()
    ]
    summary["n_structures_attached"] = n_attached
    summary["n_cif_failed"] = n_cif_failed
    return summary


def _structure_rows(
    session: Session, uploaded: UploadedStructures, created_by: str
) -> dict[str, Structure]:
    """Structure rows for the parsed CIFs, reusing stored ones with the same content hash."""
    by_hash: dict[str, Structure] = {}
    hashes = {s.content_hash for s in uploaded.structures.values()}
    if hashes:
        for stored in session.scalars(select(Structure).where(Structure.content_hash.in_(hashes))):
            by_hash[stored.content_hash] = stored
    by_member: dict[str, Structure] = {}
    for member, parsed in uploaded.structures.items():
        row = by_hash.get(parsed.content_hash)
        if row is None:
            row = Structure(
                source="dataset",
                external_id=member[:200],
                formula=parsed.formula[:200],
                chemsys=parsed.chemsys[:200],
                spacegroup_symbol=parsed.spacegroup_symbol,
                spacegroup_number=parsed.spacegroup_number,
                nsites=parsed.nsites,
                volume_per_atom=parsed.volume_per_atom,
                density=parsed.density,
                is_ordered=parsed.is_ordered,
                cif=parsed.cif,
                pymatgen_json=parsed.pymatgen_json,
                content_hash=parsed.content_hash,
                created_by=created_by,
            )
            session.add(row)
            by_hash[parsed.content_hash] = row
        by_member[member] = row
    return by_member


def _entry_rows(
    result: IngestResult,
    uploaded: UploadedStructures,
    structures: Mapping[str, Structure],
    created_by: str,
) -> tuple[list[Entry], int, int]:
    """One Entry per row of the file; returns them with the counts of attached and failed CIFs."""
    rows = result.rows
    mapping = result.mapping
    # clean_table names an extra column "<name> (extra)" when its name clashes with a column of its own.
    extra_names = {
        column: (f"{column} (extra)" if f"{column} (extra)" in rows.columns else column)
        for column in mapping.extra
    }
    entries: list[Entry] = []
    n_attached = 0
    n_failed = 0
    for number, record in zip(rows.index, rows.to_dict("records"), strict=True):
        reasons = [record["reason"]] if _text(record.get("reason")) else []
        member = _text(record.get("cif_member"))
        structure: Structure | None = None
        decision_note = UPLOAD_NOTE
        if member is not None:
            if member in uploaded.errors:
                n_failed += 1
                reasons.append(
                    f"the CIF {member!r} cannot be read ({uploaded.errors[member]}); kept composition-only"
                )
            elif member in structures and record["status"] != "rejected":
                structure = structures[member]
                parsed = uploaded.structures[member]
                fractions = record.get("composition") or {}
                if fractions and _fractions_differ(fractions, parsed.fractions):
                    note = (
                        f"note: the uploaded CIF {member!r} has the composition {parsed.formula}, "
                        f"not exactly that of the formula"
                    )
                    reasons.append(note)
                    decision_note = f"{UPLOAD_NOTE}; {note}"
        extra: dict[str, Any] = {
            "metadata": {
                column: _text(record.get(name)) for column, name in extra_names.items()
            },
            "composition_key": _text(record.get("composition_key")),
        }
        if _text(record.get("censored")):
            extra["censored"] = record["censored"]
        if mapping.year:
            extra["year"] = _text(record.get("year"))
        fractions = record.get("composition")
        entry = Entry(
            row_number=int(number),
            external_id=_text(record.get("id"), _LIMITS["external_id"]),
            raw_formula=str(record.get("formula_raw") or ""),
            composition=_text(record.get("reduced_formula"), _LIMITS["composition"]),
            composition_amounts=dict(fractions) if isinstance(fractions, dict) else None,
            target=_number(record.get("target")),
            raw_target=_text(record.get("target_raw"), _LIMITS["raw_target"]),
            status=str(record["status"]),
            reason="; ".join(reasons) or None,
            temperature=_number(record.get("temperature")),
            split=_text(record.get("split"), _LIMITS["split"]),
            reference=_text(record.get("reference")),
            mp_id=_text(record.get("mp_id"), _LIMITS["mp_id"]),
            structure_file=(member or _text(record.get("structure_file")) or "")[: _LIMITS["structure_file"]]
            or None,
            extra=extra,
            structure=structure,
            match_state="accepted" if structure is not None else "unmatched",
        )
        if structure is not None:
            n_attached += 1
            entry.decisions.append(
                ReviewDecision(
                    action="attach",
                    status="accepted",
                    reviewer=created_by,
                    note=decision_note,
                )
            )
        entries.append(entry)
    return entries, n_attached, n_failed


def _store_version(
    session: Session,
    dataset: Dataset,
    result: IngestResult,
    *,
    source_sha256: str | None,
    parent_id: int | None,
    uploaded: UploadedStructures | None,
    created_by: str,
    settings: Mapping[str, Any] | None,
    note: str | None,
) -> DatasetVersion:
    if result.summary.n_kept == 0:
        raise DatasetStoreError(
            f"no row of {result.raw.filename!r} was kept ({result.summary.n_rejected} rejected, "
            f"{result.summary.n_censored} censored, {result.summary.n_filtered} filtered); nothing to import"
        )
    uploaded = uploaded or UploadedStructures()
    structures = _structure_rows(session, uploaded, created_by)
    entries, n_attached, n_failed = _entry_rows(result, uploaded, structures, created_by)
    number = (
        session.scalar(select(func.max(DatasetVersion.number)).where(DatasetVersion.dataset_id == dataset.id))
        if dataset.id is not None
        else None
    )
    summary = result.summary
    version = DatasetVersion(
        dataset=dataset,
        number=(number or 0) + 1,
        parent_id=parent_id,
        created_by=created_by,
        source_filename=result.raw.filename[:500],
        source_sha256=source_sha256,
        target_name=_text(result.mapping.target, _LIMITS["target_name"]),  # PostgreSQL refuses longer text
        target_unit=_text(result.options.unit, _LIMITS["target_unit"]),
        target_transform="log10" if result.options.log10 else "none",
        temperature_unit=result.options.temperature_unit if result.mapping.temperature else None,
        settings=_version_settings(result, settings),
        summary=_version_summary(result, n_attached, n_failed),
        n_rows=summary.n_rows,
        n_kept=summary.n_kept,
        n_rejected=summary.n_rejected,
        note=note,
    )
    version.entries = entries
    session.add(version)
    session.flush()
    # ReviewDecision carries structure_id but no relationship to Structure: fill it in after the flush.
    for entry in entries:
        for decision in entry.decisions:
            decision.structure_id = entry.structure_id
    return version


@contextmanager
def _storage_errors() -> Iterator[None]:
    """Turn the database's 'disk full' and similar failures of an import into a :class:`DatasetStoreError` (the
    transaction is rolled back, so nothing is stored)."""
    try:
        yield
    except OperationalError as error:
        text = str(error.orig or error).lower()
        reason = "the server's disk is full" if "full" in text or "space" in text else "the database refused the write"
        raise DatasetStoreError(f"{reason}; nothing was stored (ask an administrator)") from error


def _retry_on_conflict(store: Callable[[], _T]) -> _T:
    """Run an import's transaction again when a concurrent import committed a row it also wrote.

    Two sessions importing at once may both find a structure absent (or the same last version number) before
    either writes; the unique constraints (``structures.content_hash``, ``dataset_versions (dataset_id, number)``)
    then refuse the second writer's whole transaction, on SQLite and PostgreSQL alike. Its next attempt, a new
    transaction, sees the committed rows: it reuses the structures and takes the next number.
    """
    for attempt in range(1, CONFLICT_ATTEMPTS + 1):
        try:
            return store()
        except IntegrityError:
            if attempt == CONFLICT_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


def create_dataset(
    url: str | None,
    result: IngestResult,
    *,
    name: str,
    source_sha256: str | None = None,
    uploaded: UploadedStructures | None = None,
    created_by: str = "local",
    description: str | None = None,
    settings: Mapping[str, Any] | None = None,
    note: str | None = None,
) -> StoredVersion:
    """Store a cleaned upload as a new dataset with its version 1, in one transaction.

    Args:
        url: database URL (the configured one when None).
        result: the cleaned table from ``cosnet_core.ingest.clean_table``.
        name: the dataset's name as the user knows it.
        source_sha256: SHA-256 of the uploaded file's bytes.
        uploaded: the parsed CIFs of the upload (rows whose ``cif_member`` parsed get that structure attached).
        created_by: who imported it (provenance).
        description: optional free text.
        settings: further settings to record with the mapping and options (e.g. the CIF zip's name and hash).
        note: optional note on the version.

    Returns:
        The new dataset's and version's ids and the version number (1).

    Raises:
        DatasetStoreError: the name is empty or no row was kept. Nothing is stored then.
    """
    name = name.strip()
    if not name:
        raise DatasetStoreError("give the dataset a name")

    def store() -> StoredVersion:
        with _storage_errors(), session_scope(url) as session:
            dataset = Dataset(name=name[:200], description=description, owner=created_by)
            session.add(dataset)
            version = _store_version(
                session,
                dataset,
                result,
                source_sha256=source_sha256,
                parent_id=None,
                uploaded=uploaded,
                created_by=created_by,
                settings=settings,
                note=note,
            )
            return StoredVersion(dataset.id, version.id, version.number)

    return _retry_on_conflict(store)


def add_version(
    url: str | None,
    dataset_id: int,
    result: IngestResult,
    *,
    source_sha256: str | None = None,
    parent_id: int | None = None,
    uploaded: UploadedStructures | None = None,
    created_by: str = "local",
    settings: Mapping[str, Any] | None = None,
    note: str | None = None,
    actor: Actor | None = None,
) -> StoredVersion:
    """Store a re-upload or a re-cleaning as the next version of an existing dataset, in one transaction.

    Args:
        url: database URL (the configured one when None).
        dataset_id: the dataset that gets a new version.
        result: the cleaned table.
        source_sha256: SHA-256 of the uploaded file's bytes.
        parent_id: the version this one replaces (default: the dataset's latest version).
        uploaded: the parsed CIFs of the upload.
        created_by: who imported it.
        settings: further settings to record.
        note: optional note on the version (e.g. "re-cleaned with log10").
        actor: who asks (only the owner or an administrator may); None for trusted callers.

    Returns:
        The dataset id, the new version's id and its number (previous highest + 1).

    Raises:
        DatasetStoreError: unknown dataset, a parent from another dataset, or no row kept.
        AccessDenied: the actor may not change this dataset. Nothing is stored then.
    """

    def store(parent_id: int | None = parent_id) -> StoredVersion:
        with _storage_errors(), session_scope(url) as session:
            if actor is not None:
                require_dataset_owner(session, dataset_id, actor)
            dataset = session.get(Dataset, dataset_id)
            if dataset is None:
                raise DatasetStoreError(f"there is no dataset with id {dataset_id}")
            if parent_id is None:
                parent_id = session.scalar(
                    select(DatasetVersion.id)
                    .where(DatasetVersion.dataset_id == dataset_id)
                    .order_by(DatasetVersion.number.desc())
                    .limit(1)
                )
            else:
                parent = session.get(DatasetVersion, parent_id)
                if parent is None or parent.dataset_id != dataset_id:
                    raise DatasetStoreError(f"version {parent_id} is not a version of dataset {dataset.name!r}")
            version = _store_version(
                session,
                dataset,
                result,
                source_sha256=source_sha256,
                parent_id=parent_id,
                uploaded=uploaded,
                created_by=created_by,
                settings=settings,
                note=note,
            )
            return StoredVersion(dataset.id, version.id, version.number)

    return _retry_on_conflict(store)


# ----------------------------------------------------------------------------------------------------
# The uploaded files themselves (kept so that a version can be re-cleaned with other options)

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _upload_path(sha256: str) -> Path:
    if not _SHA256.match(sha256):
        raise ValueError(f"not a SHA-256 hex digest: {sha256!r}")
    return data_dir() / "uploads" / sha256


def save_upload(data: bytes, sha256: str) -> Path:
    """Keep an uploaded file in the data directory under its content hash (idempotent).

    Args:
        data: the file's bytes.
        sha256: their SHA-256 (as recorded in ``DatasetVersion.source_sha256``).

    Returns:
        The stored file's path.
    """
    path = _upload_path(sha256)
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        partial.write_bytes(data)
        partial.replace(path)
    return path


def load_upload(sha256: str | None) -> bytes | None:
    """The bytes of a kept upload, or None when it is not kept (older import, other machine, cleaned up).

    Args:
        sha256: the file's SHA-256.

    Returns:
        The bytes, or None.
    """
    if not sha256 or not _SHA256.match(sha256):
        return None
    path = _upload_path(sha256)
    return path.read_bytes() if path.is_file() else None


# ----------------------------------------------------------------------------------------------------
# Reading


def _version_info(version: DatasetVersion, dataset_name: str) -> VersionInfo:
    return VersionInfo(
        id=version.id,
        dataset_id=version.dataset_id,
        dataset_name=dataset_name,
        number=version.number,
        parent_id=version.parent_id,
        created_at=version.created_at,
        created_by=version.created_by,
        source_filename=version.source_filename,
        source_sha256=version.source_sha256,
        target_name=version.target_name,
        target_unit=version.target_unit,
        target_transform=version.target_transform,
        temperature_unit=version.temperature_unit,
        n_rows=version.n_rows,
        n_kept=version.n_kept,
        n_rejected=version.n_rejected,
        settings=dict(version.settings or {}),
        summary=dict(version.summary or {}),
        note=version.note,
    )


visible_to = visible_datasets  # the one visibility rule (db.access); kept under its old name for callers


def list_datasets(url: str | None = None, *, username: str | None = None, is_admin: bool = True) -> list[DatasetInfo]:
    """The datasets a user may see, with their versions, newest dataset first.

    Args:
        url: database URL (the configured one when None).
        username: the user asking (None: every dataset, as in single-user mode).
        is_admin: administrators see every dataset.

    Returns:
        The datasets; each lists its versions oldest first.
    """
    with session_scope(url) as session:
        datasets = session.scalars(
            select(Dataset).where(visible_to(username, is_admin)).order_by(Dataset.id.desc())
        ).all()
        return [
            DatasetInfo(
                id=d.id,
                name=d.name,
                description=d.description,
                owner=d.owner,
                created_at=d.created_at,
                versions=[_version_info(v, d.name) for v in d.versions],
                shared=bool(d.shared),
            )
            for d in datasets
        ]


def visible_versions(
    url: str | None, *, username: str | None = None, is_admin: bool = True
) -> list[tuple[str, int, int, int]]:
    """``(dataset name, version id, version number, rows kept)`` of every version the user may see, newest
    dataset first, newest version first."""
    with session_scope(url) as session:
        rows = session.execute(
            select(Dataset.name, DatasetVersion.id, DatasetVersion.number, DatasetVersion.n_kept)
            .join(DatasetVersion, DatasetVersion.dataset_id == Dataset.id)
            .where(visible_to(username, is_admin))
            .order_by(Dataset.id.desc(), DatasetVersion.number.desc())
        ).all()
    return [tuple(row) for row in rows]  # type: ignore[misc]


def get_version(url: str | None, version_id: int) -> VersionInfo | None:
    """One version, or None when it does not exist (e.g. deleted meanwhile).

    Args:
        url: database URL (the configured one when None).
        version_id: the version's id.

    Returns:
        Its description, or None.
    """
    with session_scope(url) as session:
        version = session.get(DatasetVersion, version_id)
        if version is None:
            return None
        return _version_info(version, version.dataset.name)


ENTRY_FRAME_COLUMNS = (
    "entry_id",
    "row",
    "external_id",
    "raw_formula",
    "composition",
    "composition_amounts",
    "target",
    "raw_target",
    "status",
    "reason",
    "temperature",
    "split",
    "reference",
    "mp_id",
    "structure_file",
    "structure_id",
    "match_state",
    "censored",
)


def load_entries(
    url: str | None, version_id: int, *, statuses: Sequence[str] | None = None
) -> pd.DataFrame:
    """A version's rows as a table, in file order.

    Args:
        url: database URL (the configured one when None).
        version_id: the version.
        statuses: only rows with these statuses (e.g. ``["kept"]``); all rows when None.

    Returns:
        One row per entry with :data:`ENTRY_FRAME_COLUMNS`, then the metadata columns kept from the file
        (named as in the file, or ``"<name> (metadata)"`` where a name clashes).
    """
    query = select(Entry).where(Entry.dataset_version_id == version_id).order_by(Entry.row_number)
    if statuses is not None:
        query = query.where(Entry.status.in_(list(statuses)))
    with session_scope(url) as session:
        records = []
        for entry in session.scalars(query):
            extra = entry.extra or {}
            record: dict[str, Any] = {
                "entry_id": entry.id,
                "row": entry.row_number,
                "external_id": entry.external_id,
                "raw_formula": entry.raw_formula,
                "composition": entry.composition,
                "composition_amounts": entry.composition_amounts,
                "target": entry.target,
                "raw_target": entry.raw_target,
                "status": entry.status,
                "reason": entry.reason,
                "temperature": entry.temperature,
                "split": entry.split,
                "reference": entry.reference,
                "mp_id": entry.mp_id,
                "structure_file": entry.structure_file,
                "structure_id": entry.structure_id,
                "match_state": entry.match_state,
                "censored": extra.get("censored"),
            }
            for column, value in (extra.get("metadata") or {}).items():
                record[column if column not in record else f"{column} (metadata)"] = value
            records.append(record)
    frame = pd.DataFrame.from_records(records)
    if frame.empty:
        frame = pd.DataFrame(columns=list(ENTRY_FRAME_COLUMNS))
    frame["target"] = frame["target"].astype(float)
    frame["temperature"] = frame["temperature"].astype(float)
    return frame


def unused_rows_csv(url: str | None, version_id: int) -> bytes:
    """The rejected, censored and filtered rows of a stored version as a CSV download.

    Args:
        url: database URL (the configured one when None).
        version_id: the version.

    Returns:
        UTF-8 bytes with a BOM: row number, status, reason, the formula and target as given, then the id and
        metadata columns.
    """
    frame = load_entries(url, version_id, statuses=["rejected", "censored", "filtered"])
    first = ["row", "status", "reason", "raw_formula", "raw_target", "external_id"]
    dropped = {"entry_id", "composition_amounts", "structure_id", "match_state"}
    rest = [c for c in frame.columns if c not in first and c not in dropped]
    table = frame[first + rest].rename(columns={"raw_formula": "formula", "raw_target": "target (as given)"})
    from cosnet_core.exports import safe_to_csv

    return safe_to_csv(table, index=False).encode("utf-8-sig")


def set_shared(url: str | None, dataset_id: int, shared: bool, *, actor: Actor | None = None) -> None:
    """Share a dataset with the lab (every user sees it, and what was trained on it) or make it private again.

    Args:
        url: database URL (the configured one when None).
        dataset_id: the dataset.
        shared: True to share, False to make it visible to its owner and administrators only.
        actor: who asks (only the owner or an administrator may); None for trusted callers.

    Raises:
        AccessDenied: the dataset does not exist for the actor or the actor may not change it.
    """
    with session_scope(url) as session:
        require_dataset_owner(session, dataset_id, actor)
        dataset = session.get(Dataset, dataset_id)
        dataset.shared = bool(shared)  # type: ignore[union-attr]
        audit.record(session, "share" if shared else "unshare", actor.username if actor else None,
               f"dataset {dataset_id} {dataset.name!r}")  # type: ignore[union-attr]


# ----------------------------------------------------------------------------------------------------
# Dependents and deletion


def _dependents(session: Session, version_ids: Sequence[int]) -> Dependents:
    versions = session.scalars(
        select(DatasetVersion).where(DatasetVersion.id.in_(version_ids)).order_by(DatasetVersion.number)
    ).all()
    labels = [f"v{v.number}" for v in versions]
    studies = session.scalars(
        select(Study.name).where(Study.dataset_version_id.in_(version_ids)).order_by(Study.id)
    ).all()
    run_ids = select(Run.id).where(Run.dataset_version_id.in_(version_ids))
    entry_ids = select(Entry.id).where(Entry.dataset_version_id.in_(version_ids))

    def count(query) -> int:
        return int(session.scalar(query) or 0)

    return Dependents(
        versions=labels,
        studies=list(studies),
        n_runs=count(select(func.count()).select_from(Run).where(Run.id.in_(run_ids))),
        n_models=count(select(func.count()).select_from(ModelArtifact).where(ModelArtifact.run_id.in_(run_ids))),
        n_predictions=count(select(func.count()).select_from(Prediction).where(Prediction.run_id.in_(run_ids))),
        n_review_decisions=count(
            select(func.count()).select_from(ReviewDecision).where(ReviewDecision.entry_id.in_(entry_ids))
        ),
        n_match_candidates=count(
            select(func.count()).select_from(MatchCandidate).where(MatchCandidate.entry_id.in_(entry_ids))
        ),
        n_entries=count(select(func.count()).select_from(Entry).where(Entry.id.in_(entry_ids))),
    )


def _version_ids(session: Session, dataset_id: int | None, version_id: int | None) -> list[int]:
    if (dataset_id is None) == (version_id is None):
        raise ValueError("give exactly one of dataset_id and version_id")
    if dataset_id is not None:
        if session.get(Dataset, dataset_id) is None:
            raise DatasetStoreError(f"there is no dataset with id {dataset_id}")
        return list(session.scalars(select(DatasetVersion.id).where(DatasetVersion.dataset_id == dataset_id)))
    if session.get(DatasetVersion, version_id) is None:
        raise DatasetStoreError(f"there is no dataset version with id {version_id}")
    return [int(version_id)]  # type: ignore[arg-type]


def dependents(url: str | None, *, dataset_id: int | None = None, version_id: int | None = None) -> Dependents:
    """What depends on a dataset (all its versions) or on one version: studies, runs, models, decisions.

    Args:
        url: database URL (the configured one when None).
        dataset_id: a whole dataset, or
        version_id: a single version.

    Returns:
        The counts and names to show before deleting.

    Raises:
        DatasetStoreError: the dataset or version does not exist.
    """
    with session_scope(url) as session:
        return _dependents(session, _version_ids(session, dataset_id, version_id))


def _upload_hashes(session: Session, version_ids: Sequence[int] | None) -> set[str]:
    """SHA-256 of the kept uploads (table and CIF zip) of some versions, or of all versions when None."""
    query = select(DatasetVersion.source_sha256, DatasetVersion.settings)
    if version_ids is not None:
        query = query.where(DatasetVersion.id.in_(version_ids))
    hashes: set[str] = set()
    for table_sha, settings in session.execute(query):
        zip_sha = ((settings or {}).get("cif_zip") or {}).get("sha256")
        hashes.update(h for h in (table_sha, zip_sha) if h)
    return hashes


def _remove_uploads(hashes: set[str]) -> None:
    """Delete kept upload files that no remaining version refers to."""
    for sha in hashes:
        if _SHA256.match(sha):
            _upload_path(sha).unlink(missing_ok=True)


def _remove_artifact_files(paths: Sequence[str]) -> None:
    """Delete model files of deleted runs, only inside the artifacts folder."""
    root = artifacts_dir().resolve()
    for text in paths:
        path = Path(text)
        path = (path if path.is_absolute() else root / path).resolve()
        if path.is_relative_to(root) and path.is_file():
            path.unlink(missing_ok=True)


def delete_dataset(url: str | None, dataset_id: int, *, actor: Actor | None = None) -> Dependents:
    """Delete a dataset with all its versions, rows, studies, runs, predictions and model files.

    Structures stay (they are shared by content hash); entries' links to them go with the entries.

    Args:
        url: database URL (the configured one when None).
        dataset_id: the dataset.
        actor: who asks (only the owner or an administrator may); None for trusted callers.

    Returns:
        What was deleted.

    Raises:
        DatasetStoreError: the dataset does not exist.
        AccessDenied: the actor may not change this dataset (nothing is deleted).
    """
    with session_scope(url) as session:
        if actor is not None:
            require_dataset_owner(session, dataset_id, actor)
        version_ids = _version_ids(session, dataset_id, None)
        removed = _dependents(session, version_ids)
        target = f"dataset {dataset_id} {session.get(Dataset, dataset_id).name!r}"  # type: ignore[union-attr]
        hashes = _upload_hashes(session, version_ids)
        paths = _delete_versions(session, version_ids)
        audit.record(session, "delete_dataset", actor.username if actor else None, target, versions=removed.versions,
                     studies=removed.studies, runs=removed.n_runs, models=removed.n_models)
        session.execute(delete(Dataset).where(Dataset.id == dataset_id))
        unreferenced = hashes - _upload_hashes(session, None)
    _remove_artifact_files(paths)
    _remove_uploads(unreferenced)
    return removed


def delete_version(url: str | None, version_id: int, *, actor: Actor | None = None) -> Dependents:
    """Delete one version (and what was trained on it); a dataset left without versions is deleted too.

    Args:
        url: database URL (the configured one when None).
        version_id: the version.
        actor: who asks (only the owner or an administrator may); None for trusted callers.

    Returns:
        What was deleted.

    Raises:
        DatasetStoreError: the version does not exist.
        AccessDenied: the actor may not change this dataset (nothing is deleted).
    """
    with session_scope(url) as session:
        if actor is not None:
            version = session.get(DatasetVersion, version_id)
            require_dataset_owner(session, version.dataset_id if version else None, actor)
        version_ids = _version_ids(session, None, version_id)
        dataset_id = session.get(DatasetVersion, version_id).dataset_id  # type: ignore[union-attr]
        removed = _dependents(session, version_ids)
        target = f"dataset {dataset_id} {session.get(Dataset, dataset_id).name!r} {removed.versions[0]}"  # type: ignore[union-attr]
        hashes = _upload_hashes(session, version_ids)
        paths = _delete_versions(session, version_ids)
        audit.record(session, "delete_version", actor.username if actor else None, target,
                     studies=removed.studies, runs=removed.n_runs, models=removed.n_models)
        remaining = session.scalar(
            select(func.count()).select_from(DatasetVersion).where(DatasetVersion.dataset_id == dataset_id)
        )
        if not remaining:
            session.execute(delete(Dataset).where(Dataset.id == dataset_id))
        unreferenced = hashes - _upload_hashes(session, None)
    _remove_artifact_files(paths)
    _remove_uploads(unreferenced)
    return removed


def _delete_versions(session: Session, version_ids: Sequence[int]) -> list[str]:
    """Delete versions and their dependents explicitly (so it works with or without foreign-key cascades).

    Returns:
        The model artifact paths of the deleted runs (files are removed after the commit).
    """
    run_ids = select(Run.id).where(Run.dataset_version_id.in_(version_ids))
    entry_ids = select(Entry.id).where(Entry.dataset_version_id.in_(version_ids))
    paths = list(session.scalars(select(ModelArtifact.path).where(ModelArtifact.run_id.in_(run_ids))))
    session.execute(delete(ModelArtifact).where(ModelArtifact.run_id.in_(run_ids)))
    session.execute(delete(Prediction).where(Prediction.run_id.in_(run_ids)))
    session.execute(delete(Prediction).where(Prediction.entry_id.in_(entry_ids)))
    session.execute(delete(EpochMetric).where(EpochMetric.run_id.in_(run_ids)))
    session.execute(delete(Run).where(Run.id.in_(run_ids)))
    session.execute(delete(Study).where(Study.dataset_version_id.in_(version_ids)))
    session.execute(delete(ReviewDecision).where(ReviewDecision.entry_id.in_(entry_ids)))
    session.execute(delete(MatchCandidate).where(MatchCandidate.entry_id.in_(entry_ids)))
    session.execute(delete(Entry).where(Entry.dataset_version_id.in_(version_ids)))
    session.execute(
        DatasetVersion.__table__.update()
        .where(DatasetVersion.parent_id.in_(version_ids))
        .values(parent_id=None)
    )
    session.execute(delete(DatasetVersion).where(DatasetVersion.id.in_(version_ids)))
    session.expunge_all()
    return paths
