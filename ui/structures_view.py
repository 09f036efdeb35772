"""Widgets of the Structures page: sources, bulk matching, the review list, one entry's candidates, history.

Every button acts through an ``on_click`` callback, so the database is written *before* the script run that
draws the page, and the coverage metric at the top always shows the state after the click. Callbacks leave one
message (success or error) in ``st.session_state`` for :func:`show_flash`.

The Materials Project key is read from ``MP_API_KEY`` in the environment, from Streamlit secrets, or from a
password field kept only in this browser session; it is never written to the database or a log.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from cosnet_core.settings import SETTINGS, materials_project_key
from db import structures as store
from db.access import AccessDenied
from ui.auth import current_actor
from ui.text import md_escape
from ui.uploads import too_large, upload_limit_mb

FLASH_KEY = "structures_flash"
MP_KEY_INPUT = "structures_mp_key"
LIBRARY_UPLOAD = "structures_library_upload"
ATTACH_UPLOAD = "structures_attach_upload"
FILTER_KEY = "structures_filter"
ENTRY_KEY = "structures_entry"
CANDIDATE_KEY = "structures_candidate"
AUTO_RULE_KEY = "structures_auto_rule"
BULK_RULE_KEY = "structures_bulk_rule"
REVERT_KEY = "structures_revert_choice"
REVERT_CONFIRM_KEY = "structures_revert_pending"  # the decision id awaiting "Yes, revert"
BULK_DISTANCE_KEY = "structures_bulk_distance"
LIBRARY_WATCH_KEY = "structures_library_jobs_watched"  # library-import jobs this session saw queued or running
INLINE_LIMIT_ENV = SETTINGS.match_inline_limit.variable
DEFAULT_INLINE_LIMIT = SETTINGS.match_inline_limit.default  # entries matched in the script run; more go to a job
INLINE_LIBRARY_BYTES_ENV = SETTINGS.library_inline_bytes.variable
DEFAULT_INLINE_LIBRARY_BYTES = SETTINGS.library_inline_bytes.default
AUTO_ACCEPT_LABELS = {
    "unambiguous": "Accept unambiguous exact matches",
    "unambiguous_experimental": "Accept unambiguous exact matches that are experimental (not theoretical)",
    "never": "Accept nothing automatically",
}


def reviewer() -> str:
    """The name recorded on decisions: the logged-in user (``local`` in single-user mode)."""
    try:
        from ui.auth import current_username
    except ImportError:  # authentication module absent: single-user provenance
        return store.default_reviewer()
    return current_username()


def _flash(kind: str, text: str) -> None:
    st.session_state[FLASH_KEY] = (kind, text)


def show_flash() -> None:
    """Show (once) the message left by the action that triggered this rerun."""
    kind, text = st.session_state.pop(FLASH_KEY, (None, None))
    if kind == "success":
        st.success(text)
    elif kind == "error":
        st.error(text)
    elif kind == "warning":
        st.warning(text)


def _guarded(action, success: str | None = None):
    """Run a store call; turn a refused input into an error message (nothing was written then)."""
    try:
        result = action()
    except (store.StructureStoreError, ValueError, AccessDenied) as error:
        _flash("error", f"Refused: {md_escape(error)}. Nothing was changed.")
        return None
    if success:  # user text in it is escaped by the caller; str.format would choke on braces in it
        _flash("success", success.replace("{result}", str(result)))
    return result


# ------------------------------------------------------------------------------------------------------- sources


def mp_api_key() -> tuple[str | None, str]:
    """The Materials Project key and where it came from (``"environment"``, ``"secrets"``, ``"typed"`` or
    ``"none"``); the key is never shown or stored."""
    key, origin = materials_project_key()  # environment, then .streamlit/secrets.toml
    if key:
        return key, origin
    typed = (st.session_state.get(MP_KEY_INPUT) or "").strip()
    if typed:
        return typed, "typed"
    return None, "none"


def coverage_metrics(url: str, version_id: int) -> None:
    """The version's structure coverage and review counts, always at the top of the page."""
    coverage = store.coverage(url, version_id)
    counts = store.state_counts(url, version_id)
    library_size = store.library_version_key(url)[0]
    columns = st.columns(4)
    columns[0].metric(
        "Structure coverage",
        f"{100 * coverage.fraction:.1f} %",
        help="Kept rows with an accepted structure out of all kept rows of this dataset version.",
    )
    columns[0].caption(f"{coverage.n_with_structure} of {coverage.n_kept} rows have an accepted structure")
    columns[1].metric("Pending review", counts.get("pending", 0))
    columns[2].metric("No candidate", counts.get("no_candidate", 0))
    columns[3].metric("Structures in the library", library_size)


def inline_library_bytes() -> int:
    """Largest upload (bytes, all files together) imported in the script run (``COSNET_LIBRARY_INLINE_BYTES``,
    default 300 kB, about a hundred CIFs); larger uploads are imported by a job."""
    return SETTINGS.library_inline_bytes.get()


def _library_job_available() -> bool:
    try:
        from jobs.registry import JOB_KINDS
    except ImportError:
        return False
    return "library_import" in JOB_KINDS


def _import_library(url: str) -> None:
    files = st.session_state.get(LIBRARY_UPLOAD) or []
    if not files:
        _flash("warning", "Choose CIF, zip, CSV or JSON files to add first.")
        return
    uploads = [(file.name, file.getvalue()) for file in files]
    refused = too_large(uploads)
    if refused:
        _flash("error", f"Refused: {md_escape(refused)}. The library is unchanged.")
        return
    if sum(len(data) for _, data in uploads) > inline_library_bytes() and _library_job_available():
        _submit_library_import(url, uploads)
        return
    report = _guarded(lambda: store.import_library(url, uploads, created_by=reviewer()))
    if report is not None:
        _flash("success", md_escape(report.summary()))


def _submit_library_import(url: str, uploads: list[tuple[str, bytes]]) -> None:
    """Save the uploads under the data directory and queue a library-import job (it deletes them when done)."""
    import re
    import uuid

    import jobs
    from db.config import data_dir

    folder = data_dir() / "uploads" / "library"
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for name, data in uploads:
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", name)[-100:]
        path = folder / f"{uuid.uuid4().hex}-{safe}"
        path.write_bytes(data)
        files.append({"path": str(path), "name": name})
    job_id = jobs.submit("library_import", {"files": files, "created_by": reviewer()}, created_by=reviewer(),
                         db_url=url, actor=current_actor())
    jobs.ensure_executor(db_url=url)
    _flash("success", f"Importing {len(files)} file(s) into the library in the background (job {job_id}).")


def library_import_notice(url: str) -> None:
    """Say that a library import this session watched has finished (or failed), once, at the top of the page.

    A background import's progress bar sits in the "Structure sources" expander, which is closed once the library
    has structures; without this the end of the import went unnoticed.
    """
    job = store.latest_job(url, "library_import")
    watched = st.session_state.setdefault(LIBRARY_WATCH_KEY, [])
    if job is None:
        return
    if job["status"] in ("queued", "running"):
        if job["job_id"] not in watched:
            watched.append(job["job_id"])
        return
    if job["job_id"] not in watched:
        return
    watched.remove(job["job_id"])
    if job["status"] == "succeeded":
        st.success(f"Library import job {job['job_id']} finished: {md_escape(job['message'] or 'done')}",
                   icon=":material/check_circle:")
    elif job["status"] == "failed":
        st.error(f"Library import job {job['job_id']} failed: {md_escape(job['error'])}. The library is unchanged.")
    else:
        st.warning(f"Library import job {job['job_id']} was {job['status']}.")


@st.fragment(run_every="2s")
def _library_job_progress(url: str) -> None:
    job = store.latest_job(url, "library_import")
    if job is None:
        return
    if job["status"] in ("queued", "running"):
        st.progress(job["progress"], text=f"Library import job {job['job_id']} {job['status']}: "
                    f"{job['message'] or 'waiting'}")
    else:
        st.rerun()


def sources_panel(url: str) -> None:
    """Where candidate structures come from: the Materials Project key and the local library."""
    with st.expander("Structure sources", expanded=store.library_version_key(url)[0] == 0):
        st.markdown("**Materials Project**")
        key, origin = mp_api_key()
        if origin in ("environment", "secrets"):
            st.caption(f"An API key was found in the {origin}. Matching jobs search the Materials Project too.")
        else:
            st.text_input(
                "Materials Project API key",
                type="password",
                key=MP_KEY_INPUT,
                help="Kept only in this browser session; never stored in the database or written to a log.",
            )
            if origin == "typed":
                st.caption(
                    "The typed key is used by “Search the Materials Project” for one entry. Background matching "
                    "jobs read the key only from MP_API_KEY or the app's secrets."
                )
            else:
                st.info(
                    "No Materials Project key: set MP_API_KEY, add it to .streamlit/secrets.toml, or type it "
                    "above. Matching uses the local library until then."
                )
        st.markdown("**Local structure library**")
        st.file_uploader(
            "Add CIF files, a zip of CIFs, or a CSV/JSON table with an id column and a 'cif' column",
            type=["cif", "mcif", "zip", "csv", "gz", "json"],
            accept_multiple_files=True,
            key=LIBRARY_UPLOAD,
            max_upload_size=upload_limit_mb(),
        )
        st.caption(
            f"Structures are deduplicated with pymatgen's StructureMatcher; cells above "
            f"{store.configured_max_sites()} sites are refused. A table such as the Materials Project library "
            "CSV (mp_structure_library.csv.gz) can be uploaded like any CSV."
        )
        st.button("Add to the library", key="structures_import", on_click=_import_library, args=(url,))
        job = store.latest_job(url, "library_import")
        if job and job["status"] in ("queued", "running"):
            _library_job_progress(url)
        elif job and job["status"] == "failed":
            st.error(f"Library import job {job['job_id']} was refused: {md_escape(job['error'])}. The library is unchanged.")
        elif job and job["status"] == "succeeded":
            st.caption(f"Last library import (job {job['job_id']}): {md_escape(job['message'])}")


# ------------------------------------------------------------------------------------------------------- matching


def inline_limit() -> int:
    """Most entries matched inside the script run (``COSNET_MATCH_INLINE_LIMIT``, default 200)."""
    return SETTINGS.match_inline_limit.get()


def _match_all(url: str, version_id: int) -> None:
    from jobs.matching import match_inline, mp_key_configured

    rule = st.session_state.get(AUTO_RULE_KEY, "unambiguous")
    payload = {"dataset_version_id": version_id, "auto_accept": rule, "created_by": reviewer()}
    n_todo = len(store.entries_to_match(url, version_id))
    if n_todo == 0:
        _flash("warning", "Every kept row has been reviewed or matched already; nothing to match.")
        return
    if n_todo <= inline_limit() and not mp_key_configured():
        summary = _guarded(lambda: match_inline(url, {**payload, "sources": ["library", "dataset"]}, actor=current_actor()))
        if summary is not None:
            _flash(
                "success",
                f"Matched {summary['n_entries']} rows; {summary['n_auto_accepted']} accepted automatically."
                + (f" Note: {'; '.join(summary['notes'])}." if summary.get("notes") else ""),
            )
        return
    import jobs

    job_id = _guarded(lambda: jobs.submit("match", payload, created_by=reviewer(), db_url=url, actor=current_actor()))
    if job_id is None:
        return
    jobs.ensure_executor(db_url=url)
    _flash("success", f"Matching {n_todo} rows in the background (job {job_id}).")


def _cancel_job(url: str, job_id: int) -> None:
    import jobs

    if _guarded(lambda: jobs.cancel(job_id, db_url=url, actor=current_actor()) or "gone") is None:
        return
    _flash("warning", f"Asked job {job_id} to stop; rows matched so far are kept.")


def matching_panel(url: str, version_id: int) -> None:
    """Match all rows (inline when small, else a job), the job's progress, and bulk accept by rule."""
    st.subheader("Match compositions to structures")
    left, right = st.columns([3, 2])
    with left:
        st.selectbox(
            "Auto-accept", list(AUTO_ACCEPT_LABELS), format_func=AUTO_ACCEPT_LABELS.__getitem__, key=AUTO_RULE_KEY,
            help="Only exact matches are ever accepted automatically; everything else waits for review.",
        )
        st.button("Match all", type="primary", key="structures_match_all", on_click=_match_all, args=(url, version_id))
        summary = store.matching_summary(url, version_id)
        if summary:
            states = ", ".join(f"{n} {state.replace('_', ' ')}" for state, n in sorted(summary["states"].items()))
            st.caption(f"Last matching: {summary['n_entries']} rows ({states}); sources: "
                       f"{', '.join(summary['sources']) or 'none'}.")
            for note in summary.get("notes") or []:
                st.caption(f"Note: {md_escape(note)}")
    with right:
        rule = st.selectbox("Bulk accept rule", list(store.BULK_RULES), format_func=store.BULK_RULES.__getitem__,
                            key=BULK_RULE_KEY)
        if rule == "approximate_within":
            st.number_input(
                "Largest composition distance", min_value=0.001, max_value=store.MAX_BULK_DISTANCE, value=0.02,
                step=0.005, format="%.3f", key=BULK_DISTANCE_KEY,
                help="The distance between the row's composition and the candidate's (0 = the same composition); "
                     "each row's closest candidate within it is accepted, one revertible decision per row.",
            )
        count = store.bulk_accept_count(url, version_id, rule, _bulk_distance(rule))
        st.caption(f"{count} row(s) would be accepted now.")
        st.button("Bulk accept", key="structures_bulk_accept", on_click=_bulk_accept, args=(url, version_id),
                  disabled=count == 0)
    job = store.latest_match_job(url, version_id)
    if job and job["status"] in ("queued", "running"):
        _job_progress(url, version_id)
    elif job and job["status"] == "failed":
        st.error(f"Matching job {job['job_id']} failed: {md_escape(job['error'])}")


@st.fragment(run_every="2s")
def _job_progress(url: str, version_id: int) -> None:
    job = store.latest_match_job(url, version_id)
    if job is None:
        return
    if job["status"] in ("queued", "running"):
        st.progress(job["progress"], text=f"Job {job['job_id']} {job['status']}: {job['message'] or 'waiting'}")
        st.button("Cancel matching", key="structures_cancel_job", on_click=_cancel_job, args=(url, job["job_id"]))
    else:
        st.rerun()


def _bulk_distance(rule: str) -> float | None:
    return float(st.session_state.get(BULK_DISTANCE_KEY, 0.02)) if rule == "approximate_within" else None


def _bulk_accept(url: str, version_id: int) -> None:
    rule = st.session_state.get(BULK_RULE_KEY, "unambiguous_exact")
    distance = _bulk_distance(rule)
    within = f" (composition distance ≤ {distance:g})" if distance is not None else ""
    _guarded(lambda: store.bulk_accept(url, version_id, rule, reviewer=reviewer(), actor=current_actor(),
                                       max_distance=distance),
             success="Accepted {result} rows by the rule" + within + ".")


# ------------------------------------------------------------------------------------------------------- review


def _entry_label(row: pd.Series) -> str:
    return f"row {row['row']} · {row['formula']} · {row['state'].replace('_', ' ')} ({row['candidates']} candidates)"


def review_list(url: str, version_id: int) -> int | None:
    """The filter, the filtered entry list with candidate counts, and the entry picker; returns the chosen id."""
    counts = store.state_counts(url, version_id)
    chosen_filter = st.radio(
        "Show", list(store.REVIEW_FILTERS), key=FILTER_KEY, horizontal=True,
        format_func=lambda name: f"{store.REVIEW_FILTERS[name]} ({counts.get(name, 0)})",
    )
    table = store.entry_table(url, version_id, chosen_filter)
    if table.empty:
        st.info("No row in this category.")
        return None
    st.dataframe(
        table.drop(columns=["entry_id"]), hide_index=True, width="stretch", height=min(35 * (len(table) + 1), 300),
        column_config={"candidates": "candidates", "exact": "exact candidates", "accepted": "accepted structure"},
    )
    labels = {int(row["entry_id"]): _entry_label(row) for _, row in table.iterrows()}
    ids = list(labels)
    if st.session_state.get(ENTRY_KEY) not in ids:
        st.session_state[ENTRY_KEY] = ids[0]
    return st.selectbox("Entry", ids, format_func=labels.__getitem__, key=ENTRY_KEY)


def _accept(url: str, candidate_id: int, what: str = "the structure") -> None:
    _guarded(lambda: store.accept_candidate(url, candidate_id, reviewer=reviewer(), actor=current_actor()),
             success=f"Accepted {md_escape(what)} (decision {{result}}); it is in the decision history below.")


def detail_label(detail: dict) -> str:
    """How a row is named in a message: its row number and formula."""
    return f"row {detail.get('row', '?')} ({detail.get('formula') or detail.get('composition') or '?'})"


def _reject_candidate(url: str, candidate_id: int) -> None:
    _guarded(lambda: store.reject_candidate(url, candidate_id, reviewer=reviewer(), actor=current_actor()),
             success="Rejected the candidate (decision {result}).")


def _reject_entry(url: str, entry_id: int) -> None:
    _guarded(lambda: store.reject_entry(url, entry_id, reviewer=reviewer(), actor=current_actor()),
             success="Rejected every candidate: this row stays composition-only (decision {result}).")


def _attach(url: str, entry_id: int) -> None:
    upload = st.session_state.get(ATTACH_UPLOAD)
    if upload is None:
        _flash("warning", "Choose a CIF file to attach first.")
        return
    refused = too_large([(upload.name, upload.getvalue())])
    if refused:
        _flash("error", f"Refused: {md_escape(refused)}. Nothing was changed.")
        return
    _guarded(lambda: store.attach_structure(url, entry_id, upload.name, upload.getvalue(), reviewer=reviewer(), actor=current_actor()),
             success=f"Attached {md_escape(upload.name)} and accepted it (decision {{result}}).")


def _ask_revert() -> None:
    st.session_state[REVERT_CONFIRM_KEY] = st.session_state.get(REVERT_KEY)


def _cancel_revert() -> None:
    st.session_state.pop(REVERT_CONFIRM_KEY, None)


def _revert(url: str, entry_id: int) -> None:
    """Revert the confirmed decision and keep its row selected (the filter widens to all rows if the row left it)."""
    decision_id = st.session_state.pop(REVERT_CONFIRM_KEY, None)
    if decision_id is None:
        return
    done = _guarded(lambda: store.revert_decision(url, int(decision_id), reviewer=reviewer(), actor=current_actor()),
                    success=f"Reverted decision {decision_id} (recorded as decision {{result}}).")
    if done is not None:
        st.session_state[ENTRY_KEY] = entry_id
        st.session_state[FILTER_KEY] = "all"  # the row's state changed: it may have left the shown category


def _search_materials_project(url: str, version_id: int, entry_id: int) -> None:
    from cosnet_core.matching import MatchingError, match_composition
    from cosnet_core.sources.base import SourceUnavailable
    from cosnet_core.sources.materials_project import MaterialsProjectSource

    key, _ = mp_api_key()
    detail = store.entry_detail(url, entry_id)
    try:
        source = MaterialsProjectSource(api_key=key)
        sources = [store.library_source(url), store.dataset_source(url, version_id), source]
        result = match_composition(detail["composition"] or detail["formula"], sources)
    except SourceUnavailable as error:
        _flash("error", f"The Materials Project is unavailable: {md_escape(error.reason)}. Nothing was changed.")
        return
    except MatchingError as error:
        _flash("error", f"Refused: {md_escape(error)}. Nothing was changed.")
        return
    stored = _guarded(lambda: store.store_match_results(url, [(entry_id, result)], auto_accept_rule="never",
                                                        reviewer=reviewer(), include_reviewed=True,
                                                        actor=current_actor()))
    if stored is not None:
        n_mp = sum(ranked.candidate.source == "materials_project" for ranked in result.candidates)
        _flash("success", f"Found {len(result.candidates)} candidates ({n_mp} from the Materials Project).")


def _match_text(candidate: dict[str, Any]) -> str:
    """"exact", or "approximate, distance 0.031" (the composition distance an approximate match is judged by)."""
    if candidate["match"] != "approximate" or candidate.get("composition_distance") is None:
        return candidate["match"]
    return f"approximate, distance {candidate['composition_distance']:.3f}"


def candidate_frame(candidates: list[dict[str, Any]]) -> pd.DataFrame:
    """The candidates of one entry as a table with readable columns."""
    frame = pd.DataFrame(candidates)
    if frame.empty:
        return frame
    frame["theoretical"] = frame["theoretical"].map({True: "yes", False: "no (experimental)"}).fillna("unknown")
    return frame[
        ["rank", "status", "source", "external_id", "formula", "spacegroup", "nsites", "energy_above_hull",
         "theoretical", "match", "composition_distance"]
    ].rename(columns={"external_id": "id", "energy_above_hull": "E above hull (eV/atom)",
                      "composition_distance": "composition distance"})


def _show_structure(url: str, structure_id: int, key: str) -> None:
    """Draw a stored structure in 3D, or say why it cannot be drawn here."""
    try:
        from ui.structure_viewer import structure_viewer
    except ImportError as error:
        st.info(f"The 3D viewer is not available in this installation ({error}).")
        return
    structure = store.load_structure_row(url, structure_id)
    structure_viewer(structure, key=key, height=380)


def entry_panel(url: str, version_id: int, entry_id: int) -> None:
    """One entry: its candidates with their properties, a 3D view, and the review buttons."""
    detail = store.entry_detail(url, entry_id)
    st.subheader(f"Row {detail['row']}: {md_escape(detail['formula'])}")
    st.caption(f"Normalised composition {md_escape(detail['composition'] or '—')} · state: "
               f"{detail['state'].replace('_', ' ')}")
    if detail["match_error"]:
        st.warning(f"This formula could not be matched: {md_escape(detail['match_error'])}")
    if detail["accepted_structure"]:
        accepted = detail["accepted_structure"]
        st.caption(f"Accepted structure: {md_escape(accepted['source'])}:{md_escape(accepted['external_id'])} "
                   f"({md_escape(accepted['formula'])}, {accepted['nsites']} sites)")
    candidates = detail["candidates"]
    left, right = st.columns([3, 2])
    with left:
        if candidates:
            st.dataframe(candidate_frame(candidates), hide_index=True, width="stretch")
            by_id = {c["candidate_id"]: c for c in candidates}
            if st.session_state.get(CANDIDATE_KEY) not in by_id:
                st.session_state[CANDIDATE_KEY] = candidates[0]["candidate_id"]
            chosen = by_id[st.selectbox(
                "Candidate", list(by_id), key=CANDIDATE_KEY,
                format_func=lambda i: f"#{by_id[i]['rank']} {by_id[i]['source']}:{by_id[i]['external_id']} "
                f"({by_id[i]['formula']}, {_match_text(by_id[i])}, {by_id[i]['status']})",
            )]
            other_accepted = detail["structure_id"] is not None and detail["structure_id"] != chosen["structure_id"]
            buttons = st.columns(3)
            buttons[0].button(
                "Choose this one instead" if other_accepted else "Accept", key="structures_accept", type="primary",
                disabled=chosen["status"] == "accepted", on_click=_accept,
                args=(url, chosen["candidate_id"],
                      f"{chosen['source']}:{chosen['external_id']} ({chosen['formula']}) for {detail_label(detail)}"),
            )
            buttons[1].button("Reject this candidate", key="structures_reject_candidate",
                              disabled=chosen["status"] == "rejected", on_click=_reject_candidate,
                              args=(url, chosen["candidate_id"]))
            buttons[2].button("No candidate fits", key="structures_reject_entry",
                              disabled=detail["state"] == "rejected", on_click=_reject_entry, args=(url, entry_id))
        elif detail["structure_id"] is not None:
            chosen = None
            st.info("This row has an accepted structure (shown on the right) and no other candidate. Attach "
                    "another CIF or search the Materials Project to replace it.")
        else:
            chosen = None
            st.info("No candidate structure for this row. Attach your own CIF, search the Materials Project, or "
                    "add structures to the library and match again.")
        st.file_uploader("Attach your own CIF", type=["cif", "mcif"], key=ATTACH_UPLOAD,
                         max_upload_size=upload_limit_mb())
        actions = st.columns(2)
        actions[0].button("Attach and accept", key="structures_attach", on_click=_attach, args=(url, entry_id))
        key, _ = mp_api_key()
        actions[1].button("Search the Materials Project", key="structures_search_mp", disabled=key is None,
                          on_click=_search_materials_project, args=(url, version_id, entry_id),
                          help=None if key else "Needs a Materials Project API key (see Structure sources).")
    with right:
        shown = chosen["structure_id"] if chosen else detail["structure_id"]
        if shown is not None:
            _show_structure(url, shown, key=f"structures_viewer_{shown}")


def history_panel(url: str, version_id: int, entry_id: int | None) -> None:
    """Decision history (of the entry, or the whole version) with revert."""
    st.subheader("Decision history")
    scope = st.toggle("Whole dataset version", key="structures_history_scope", value=entry_id is None)
    history = (
        store.decision_table(url, version_id=version_id)
        if scope or entry_id is None
        else store.decision_table(url, entry_id=entry_id)
    )
    if history.empty:
        st.caption("No decision yet.")
        return
    st.dataframe(history.drop(columns=["entry_id"]), hide_index=True, width="stretch")
    revertible = history[history["in_effect"]]
    if revertible.empty:
        return
    labels = {
        int(row["decision_id"]): f"{row['decision_id']}: {row['action']} row {row['row']} {row['structure']} "
        f"by {row['reviewer']}"
        for _, row in revertible.iterrows()
    }
    entries = {int(row["decision_id"]): int(row["entry_id"]) for _, row in revertible.iterrows()}
    st.selectbox("Decision to revert", list(labels), format_func=labels.__getitem__, key=REVERT_KEY)
    pending = st.session_state.get(REVERT_CONFIRM_KEY)
    if pending not in labels:
        st.button("Revert…", key="structures_revert", on_click=_ask_revert)
        return
    st.warning(f"Revert decision {md_escape(labels[pending])}? The row goes back to its state before it; the "
               "decision stays in the history.", icon=":material/undo:")
    confirm = st.columns(2)
    confirm[0].button("Yes, revert", key="structures_revert_confirm", type="primary", on_click=_revert,
                      args=(url, entries[pending]))
    confirm[1].button("Keep it", key="structures_revert_cancel", on_click=_cancel_revert)
