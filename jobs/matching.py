"""Bulk structure matching of a dataset version, as a job (kind ``"match"``).

:func:`run_match_job` matches every kept entry of a dataset version that nobody has reviewed yet against the local
library, the structures that came with the dataset and (when an API key is configured) the Materials Project,
stores the ranked candidates (:func:`db.structures.store_match_results`) chunk by chunk, one transaction per chunk,
and accepts unambiguous exact matches when the payload's auto-accept rule says so. Progress is reported after each
chunk and cancellation is checked between chunks, so a cancelled job leaves whole chunks stored.

Payload::

    {"dataset_version_id": 3,                 # required
     "sources": ["library", "dataset", "materials_project"],   # default: all three
     "auto_accept": "unambiguous",           # a cosnet_core.matching.AUTO_ACCEPT_RULES name, or "never"
     "max_candidates": 10,
     "include_reviewed": false,              # also rematch entries that already have decisions
     "created_by": "local"}                  # reviewer recorded on auto-accept decisions

The Materials Project key is never part of the payload (payloads are stored in the database): the job reads it
from ``MP_API_KEY`` / ``PMG_MAPI_KEY`` in its environment, or ``MP_API_KEY`` in ``.streamlit/secrets.toml``. Without a
key (or when the Materials Project cannot be reached) the job goes on with the local sources and says so.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Protocol

from cosnet_core.settings import materials_project_key
from db import structures as store
from db.access import Actor, check_owner
from db.models import utcnow
from jobs.payloads import MatchJobError, validate_match

CHUNK_SIZE = 250


class MatchJobContext(Protocol):
    """What the job needs from :class:`jobs.context.JobContext`."""

    db_url: str

    def progress(self, fraction: float, message: str = "") -> None: ...

    def should_cancel(self) -> bool: ...

    def log(self, message: str) -> None: ...


def validate_match_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """Check a match job's payload and fill in the defaults (the validator :func:`jobs.submit` calls):
    :func:`jobs.payloads.validate_match`.

    Raises:
        MatchJobError: a field is missing or unusable (the message names it).
    """
    return validate_match(payload).model_dump()


def build_sources(url: str, version_id: int, names: list[str], log) -> tuple[list[Any], list[str]]:
    """The structure sources named in the payload, in order, and notes on the ones left out.

    Args:
        url: database URL.
        version_id: the dataset version (for its own structures).
        names: source names (see :data:`jobs.payloads.SOURCE_NAMES`).
        log: a ``log(message)`` callable.

    Returns:
        ``(sources, notes)``.
    """
    from cosnet_core.sources.base import SourceUnavailable

    sources: list[Any] = []
    notes: list[str] = []
    for name in names:
        if name == "library":
            library = store.library_source(url)
            if len(library):
                sources.append(library)
            else:
                notes.append("the local library is empty")
        elif name == "dataset":
            own = store.dataset_source(url, version_id)
            if len(own):
                sources.append(own)
        else:
            from cosnet_core.sources.materials_project import MaterialsProjectSource, resolve_api_key

            key = resolve_api_key(None)  # the environment, then .streamlit/secrets.toml
            try:
                sources.append(MaterialsProjectSource(api_key=key))
            except SourceUnavailable as error:
                notes.append(f"Materials Project skipped: {error.reason}")
    for note in notes:
        log(note)
    return sources, notes


def run_match_job(job_id: int, payload: dict[str, Any], ctx: MatchJobContext) -> None:
    """Match the unreviewed kept entries of a dataset version and store their candidates (job kind ``"match"``).

    Args:
        job_id: the job's row id (used in the log).
        payload: see the module docstring.
        ctx: the job context (``progress``, ``should_cancel``, ``log``, ``db_url``).

    Raises:
        MatchJobError: a bad payload (the job fails with the reason).
        jobs.context.JobCancelled: the user cancelled; the chunks already stored stay stored.
    """
    from cosnet_core.matching import MatchingError, match_composition
    from cosnet_core.sources.base import SourceUnavailable
    from jobs.context import JobCancelled

    options = validate_match_payload(payload)
    url = ctx.db_url
    version_id = options["dataset_version_id"]
    started = time.perf_counter()
    entries = store.entries_to_match(url, version_id, include_reviewed=options["include_reviewed"])
    ctx.log(f"match job {job_id}: {len(entries)} entries of dataset version {version_id}")
    sources, notes = build_sources(url, version_id, options["sources"], ctx.log)
    if not sources:
        notes.append("no structure source has any structure: import a library or configure a Materials Project key")
    total = len(entries)
    ctx.progress(0.0, f"matching {total} entries")

    results_by_formula: dict[str, Any] = {}
    fraction_cache: dict[str, dict[str, float]] = {}
    totals = store.StoredMatches()

    def match(formula: str):
        nonlocal sources
        if formula in results_by_formula:
            return results_by_formula[formula]
        while True:
            try:
                result = match_composition(
                    formula, sources, max_candidates=options["max_candidates"], _fraction_cache=fraction_cache
                )
                break
            except SourceUnavailable as error:  # go on without the source that cannot answer
                note = f"{error.source} left out: {error.reason}"
                ctx.log(note)
                notes.append(note)
                sources = [source for source in sources if source.name != error.source]
                results_by_formula.clear()
        results_by_formula[formula] = result
        return result

    for start in range(0, total, CHUNK_SIZE):
        if ctx.should_cancel():
            raise JobCancelled(f"cancelled after {start} of {total} entries")
        chunk = entries[start : start + CHUNK_SIZE]
        results = []
        errors: dict[int, str] = {}
        for entry_id, formula in chunk:
            try:
                results.append((entry_id, match(formula)))
            except MatchingError as error:
                errors[entry_id] = error.reason
                results.append((entry_id, None))
        stored = store.store_match_results(
            url,
            results,
            auto_accept_rule=options["auto_accept"],
            reviewer=options["created_by"],
            include_reviewed=options["include_reviewed"],
            errors=errors,
        )
        totals.add(stored)
        done = start + len(chunk)
        ctx.progress(done / total, f"{done} of {total} entries matched, {totals.n_auto_accepted} auto-accepted")

    summary = {
        "job_id": job_id,
        "finished_at": utcnow().isoformat(),
        "n_entries": totals.n_entries,
        "n_candidates": totals.n_candidates,
        "n_auto_accepted": totals.n_auto_accepted,
        "n_skipped_reviewed": totals.n_skipped_reviewed,
        "states": dict(totals.states),
        "sources": [source.name for source in sources],
        "auto_accept": options["auto_accept"],
        "notes": notes,
        "seconds": round(time.perf_counter() - started, 3),
    }
    store.record_matching_summary(url, version_id, summary)
    message = (
        f"{totals.n_entries} entries matched ({', '.join(f'{n} {s}' for s, n in sorted(totals.states.items()))}); "
        f"{totals.n_auto_accepted} auto-accepted"
    )
    if notes:
        message += "; " + "; ".join(notes)
    ctx.progress(1.0, message)
    ctx.log(message)


def match_inline(url: str, payload: dict[str, Any], *, actor: Actor | None = None) -> dict[str, Any]:
    """Run the match job's work synchronously in this process (small datasets, tests, the command line).

    Args:
        url: database URL.
        payload: as for :func:`run_match_job`.
        actor: who asks (pages pass the logged-in user): only the dataset's owner or an administrator may.

    Returns:
        The summary stored in ``DatasetVersion.summary["structure_matching"]``.

    Raises:
        db.access.AccessDenied: the actor may not change that dataset (nothing is written).
    """
    if actor is not None:
        check_owner(url, actor, version_id=int(payload["dataset_version_id"]))

    class _InlineContext:
        db_url = url

        def progress(self, fraction: float, message: str = "") -> None:
            return None

        def should_cancel(self) -> bool:
            return False

        def log(self, message: str) -> None:
            return None

    run_match_job(0, payload, _InlineContext())
    return store.matching_summary(url, payload["dataset_version_id"]) or {}


def mp_key_configured() -> bool:
    """Whether a job would find a Materials Project key (environment or secrets file); the key itself is not
    returned."""
    return materials_project_key()[0] is not None


# ------------------------------------------------------------------------------------------------------------------
# Library import as a job (kind "library_import"): large uploads such as the 2,433-structure MP library CSV
# ------------------------------------------------------------------------------------------------------------------


def validate_library_import_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """Check a library-import job's payload: ``{"files": [{"path": ..., "name": ...}], "max_sites": int | None,
    "created_by": str}``; every file must exist (the page saves uploads under the data directory first).

    Args:
        payload: the job's arguments.

    Returns:
        The normalised payload.

    Raises:
        MatchJobError: a field is missing or a file does not exist (named).
    """
    files = payload.get("files")
    if not isinstance(files, list) or not files:
        raise MatchJobError("payload field 'files' must be a non-empty list of {'path', 'name'}")
    checked = []
    for item in files:
        if not isinstance(item, dict) or not item.get("path") or not item.get("name"):
            raise MatchJobError(f"payload field 'files': {item!r} needs a 'path' and a 'name'")
        if not Path(item["path"]).is_file():
            raise MatchJobError(f"payload field 'files': {item['name']!r} is not at {item['path']}")
        checked.append({"path": str(item["path"]), "name": str(item["name"])})
    max_sites = payload.get("max_sites")
    if max_sites is not None and (not isinstance(max_sites, int) or max_sites < 1):
        raise MatchJobError(f"payload field 'max_sites' must be a positive integer, got {max_sites!r}")
    return {"files": checked, "max_sites": max_sites, "created_by": str(payload.get("created_by") or "local")}


def run_library_import_job(job_id: int, payload: dict[str, Any], ctx: MatchJobContext) -> str:
    """Import uploaded structure files into the local library (job kind ``"library_import"``).

    Everything is validated before the single write transaction, so a refused file or a cancellation leaves the
    library as it was; the saved upload files are deleted at the end either way.

    Args:
        job_id: the job's row id.
        payload: see :func:`validate_library_import_payload`.
        ctx: the job context.

    Returns:
        The import's summary (what was read, added, merged), kept as the finished job's message.

    Raises:
        db.structures.StructureStoreError: a file, member or row is refused (the job fails with the reason).
        jobs.context.JobCancelled: the user cancelled before the write.
    """
    from jobs.context import JobCancelled

    options = validate_library_import_payload(payload)

    def progress(fraction: float, message: str) -> None:
        if ctx.should_cancel():
            raise JobCancelled("cancelled before anything was written")
        ctx.progress(fraction, message)

    try:
        uploads = [(item["name"], Path(item["path"]).read_bytes()) for item in options["files"]]
        report = store.import_library(
            ctx.db_url, uploads, max_sites=options["max_sites"], created_by=options["created_by"], progress=progress
        )
    finally:
        for item in options["files"]:
            Path(item["path"]).unlink(missing_ok=True)
    ctx.log(f"library import job {job_id}: {report.summary()}")
    ctx.progress(1.0, report.summary())
    return report.summary()
