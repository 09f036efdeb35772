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

The code lives in modules named after what they hold; this module re-exports their public names (same objects),
so callers keep one import (``from db import structures as store``):

* :mod:`db.structure_base`: :class:`StructureStoreError`, the review vocabulary, :func:`configured_max_sites`;
* :mod:`db.structure_rows`: structure rows (store, load) and coverage counts;
* :mod:`db.structure_library`: reading uploads, importing the library, the sources built from it;
* :mod:`db.review_decisions`: the review state machine (decisions applied and replayed, bulk rules);
* :mod:`db.match_results`: entries to match, candidates stored, the matching summary;
* :mod:`db.review_queries`: the Structures page's read-only queries;
* :mod:`db.job_lookup`: the latest job of a kind.

Patch a setting (``CIF_PARSE_TIMEOUT_S``) on the module that holds it, not here.
"""

from __future__ import annotations

from db.job_lookup import (
    latest_job,
    latest_match_job,
)
from db.match_results import (
    StoredMatches,
    entries_to_match,
    matching_summary,
    record_matching_summary,
    store_match_results,
)
from db.review_decisions import (
    accept_candidate,
    attach_structure,
    bulk_accept,
    bulk_accept_count,
    reject_candidate,
    reject_entry,
    revert_decision,
)
from db.review_queries import (
    decision_table,
    entry_detail,
    entry_table,
)
from db.structure_base import (
    ACCEPTING_ACTIONS,
    BULK_RULES,
    CIF_SUFFIXES,
    DECISION_ACTIONS,
    DEFAULT_MAX_SITES,
    DEFAULT_REVIEWER,
    MAX_ATTACH_DISTANCE,
    MAX_BULK_DISTANCE,
    MAX_SITES_ENV,
    PENDING_STATES,
    REVIEW_FILTERS,
    TABLE_ID_COLUMNS,
    TABLE_SUFFIXES,
    ZIP_SUFFIXES,
    Progress,
    StructureStoreError,
    configured_max_sites,
    default_reviewer,
)
from db.structure_library import (
    CIF_PARSE_MEMORY_MB,
    CIF_PARSE_TIMEOUT_S,
    LibraryImportReport,
    dataset_source,
    import_library,
    import_library_file,
    library_source,
    library_version_key,
    read_library_upload,
    structures_of_formula,
)
from db.structure_rows import (
    Coverage,
    coverage,
    load_structure_row,
    state_counts,
    store_candidates,
)

__all__ = [
    "ACCEPTING_ACTIONS",
    "BULK_RULES",
    "CIF_PARSE_MEMORY_MB",
    "CIF_PARSE_TIMEOUT_S",
    "CIF_SUFFIXES",
    "Coverage",
    "DECISION_ACTIONS",
    "DEFAULT_MAX_SITES",
    "DEFAULT_REVIEWER",
    "LibraryImportReport",
    "MAX_ATTACH_DISTANCE",
    "MAX_BULK_DISTANCE",
    "MAX_SITES_ENV",
    "PENDING_STATES",
    "Progress",
    "REVIEW_FILTERS",
    "StoredMatches",
    "StructureStoreError",
    "TABLE_ID_COLUMNS",
    "TABLE_SUFFIXES",
    "ZIP_SUFFIXES",
    "accept_candidate",
    "attach_structure",
    "bulk_accept",
    "bulk_accept_count",
    "configured_max_sites",
    "coverage",
    "dataset_source",
    "decision_table",
    "default_reviewer",
    "entries_to_match",
    "entry_detail",
    "entry_table",
    "import_library",
    "import_library_file",
    "latest_job",
    "latest_match_job",
    "library_source",
    "library_version_key",
    "load_structure_row",
    "matching_summary",
    "read_library_upload",
    "record_matching_summary",
    "reject_candidate",
    "reject_entry",
    "revert_decision",
    "state_counts",
    "store_candidates",
    "store_match_results",
    "structures_of_formula",
]
