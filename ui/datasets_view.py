"""The pieces of the Datasets page: upload → map → options → preview → import, and the versions list.

``pages/datasets.py`` reads top to bottom by calling :func:`upload_section` and :func:`versions_section`.
Parsing and cleaning are ``cosnet_core.ingest``'s; storing and querying are ``db.datasets``'; this module only
turns them into widgets, charts and messages. Any :class:`~cosnet_core.ingest.IngestError` is shown with
``st.error`` and nothing is stored.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping
from pathlib import PurePath
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from cosnet_core.ingest import (
    MB,
    CleaningOptions,
    ColumnMapping,
    IngestError,
    IngestLimits,
    IngestResult,
    RawTable,
    clean_table,
    list_sheets,
    read_cif_zip,
    read_table,
    suggest_mapping,
)
from cosnet_core.units import TEMPERATURE_UNITS, significant, suggest_log10, suggest_target_unit, target_label
from db.access import AccessDenied
from db.datasets import (
    DatasetInfo,
    DatasetStoreError,
    UploadedStructures,
    VersionInfo,
    add_version,
    create_dataset,
    delete_dataset,
    delete_version,
    dependents,
    list_datasets,
    load_entries,
    load_upload,
    save_upload,
    set_shared,
    unused_rows_csv,
)
from ui import background
from ui.auth import LOGOUT_COUNT_KEY, current_actor, current_username
from ui.background import CifReading
from ui.state import active_version_id, set_active_version, visibility
from ui.text import md_escape, md_quote

# st.session_state keys owned by this page.
TABLE_KEY = "datasets_upload_table"  # {"name", "data", "sha256", "file_id"} of the uploaded table
ZIP_KEY = "datasets_upload_zip"  # the same for the optional zip of CIFs
UPLOADER_ROUND_KEY = "datasets_uploader_round"  # bumped after an import to empty the upload widgets
FLASH_KEY = "datasets_flash"  # a success message to show after the rerun that follows an import/delete
RECLEAN_KEY = "datasets_reclean"  # {"dataset_id", "settings"} while re-cleaning a stored version

NONE = "(none)"
CIF_MAX_SITES = 500
CIF_TIMEOUT_S = 10.0
CIF_MEMORY_MB = 1024  # per CIF, on top of what the parsing process starts with
#: How long the run that uploads a zip waits for its CIFs before showing a progress bar instead (a few CIFs are
#: read by then and the page shows their outcome at once).
CIF_WAIT_S = 1.0

ROLE_LABELS: dict[str, str] = {
    "formula": "Formula (required)",
    "target": "Target property (required)",
    "id": "Sample ID",
    "structure_file": "Structure file (CIF name)",
    "mp_id": "Materials Project id",
    "temperature": "Temperature",
    "split": "Split (train/val/test)",
    "reference": "Reference / DOI",
    "year": "Year or date",
    "censored_flag": "Censored flag (yes = the value is an upper bound)",
}
CENSORED_LABELS = {
    "exclude": "Exclude them (kept in the version, flagged as censored)",
    "include_at_bound": "Keep them as upper bounds: a study drops them or trains with the censored loss; "
                        "never scored as measurements",
}
DUPLICATE_LABELS = {
    "keep_all": "Keep all rows",
    "mean": "Mean per composition",
    "median": "Median per composition",
    "most_recent": "Most recent (needs a year/date or reference column)",
}
#: The paper's conflict policies (Methods, "Datasets"): "the value from the most recent report is used for
#: conflicted entries" of Li conductivity; "we use the mean value" for band gaps (and for refractive index and
#: dielectric constant, "replaces the conflicted values by the mean value").
PAPER_DUPLICATE_POLICY = (
    "The paper used the value of the most recent report for conflicting Li-conductivity entries and the mean "
    "elsewhere (band gap, refractive index, dielectric constant)."
)


def current_user() -> str:
    """The name recorded as ``created_by`` / ``reviewer`` (``local`` in single-user mode)."""
    return current_username()


def may_change(owner: str) -> bool:
    """Whether the current user owns the dataset or administers the instance (buttons are hidden otherwise;
    the data layer refuses anyway)."""
    actor = current_actor()
    return bool(actor and (actor.is_admin or actor.username == owner))


def sha256(data: bytes) -> str:
    """Hex SHA-256 of an upload (recorded with the version for provenance)."""
    return hashlib.sha256(data).hexdigest()


# ----------------------------------------------------------------------------------------------------
# Cached pure steps (each rerun of the page re-reads widgets; the file is parsed once per choice)


def _limits_key(limits: IngestLimits) -> tuple[int, ...]:
    return (
        limits.max_upload_bytes,
        limits.max_rows,
        limits.zip_max_members,
        limits.zip_max_unpacked_bytes,
        limits.zip_max_member_bytes,
        limits.max_columns,
    )


def _limits_from_key(key: tuple[int, ...]) -> IngestLimits:
    return IngestLimits(*key)


@st.cache_data(max_entries=8, show_spinner=False)
def _read(data: bytes, filename: str, sheet: str | None, has_header: bool, limits: tuple[int, ...]) -> RawTable:
    return read_table(data, filename, sheet=sheet, has_header=has_header, limits=_limits_from_key(limits))


@st.cache_data(max_entries=8, show_spinner=False)
def _sheets(data: bytes) -> list[str]:
    return list_sheets(data)


@st.cache_data(max_entries=4, show_spinner=False)
def _unzip(data: bytes, limits: tuple[int, ...]) -> dict[str, bytes]:
    return read_cif_zip(data, _limits_from_key(limits))


@st.cache_data(max_entries=8, show_spinner=False)
def _clean(
    raw: RawTable, mapping: dict[str, Any], options: dict[str, Any], cifs: dict[str, bytes] | None
) -> IngestResult:
    return clean_table(raw, ColumnMapping(**mapping), CleaningOptions(**options), cifs=cifs)


def _cif_limits() -> dict[str, Any]:
    return {"max_sites": CIF_MAX_SITES, "timeout_s": CIF_TIMEOUT_S * 1.5, "memory_mb": CIF_MEMORY_MB}


def parse_uploaded_cifs(cifs: Mapping[str, bytes], members: Iterable[str]) -> UploadedStructures:
    """Parse the CIFs that rows refer to now, in a separate process bounded in time and memory per CIF (see
    :mod:`cosnet_core.bounded`) and in sites; failures get a reason, never a crash or a hung page. The page itself
    reads them in the background (:func:`ui.background.start_reading`) with the same limits.

    Args:
        cifs: ``{zip member: bytes}`` from ``read_cif_zip``.
        members: the members to parse (those some row matched).

    Returns:
        The parsed structures by member and, for the others, why they could not be read.
    """
    return background.read_cifs(cifs, members, **_cif_limits())


@st.fragment(run_every=1.0)
def _reading_progress(reading: CifReading) -> None:
    """``n of N CIFs read``, refreshed every second on its own; the whole page reruns once the reading is done."""
    if reading.finished:
        st.rerun()
    done, total = reading.n_done, reading.total
    st.progress(done / max(total, 1), text=f"Reading the CIF files in the background: {done} of {total} read.")
    st.caption("The form stays usable meanwhile; the preview's CIF messages and the Import button wait for it.")


# ----------------------------------------------------------------------------------------------------
# Charts


_LANTHANIDES = range(57, 72)
_ACTINIDES = range(89, 104)
PERIOD_ORDER = ["1", "2", "3", "4", "5", "6", "7", "La–Lu", "Ac–Lr"]


def periodic_table_frame(element_counts: Mapping[str, int]) -> pd.DataFrame:
    """One row per element H–Lr with its group, period (lanthanides and actinides in rows of their own) and count.

    Args:
        element_counts: ``{symbol: number of kept rows containing it}``.

    Returns:
        Columns ``symbol, group, period, count``.
    """
    from pymatgen.core.periodic_table import Element

    records = []
    for z in range(1, 104):
        element = Element.from_Z(z)
        if z in _LANTHANIDES:
            group, period = z - 57 + 3, "La–Lu"
        elif z in _ACTINIDES:
            group, period = z - 89 + 3, "Ac–Lr"
        else:
            group, period = element.group, str(element.row)
        records.append(
            {"symbol": element.symbol, "group": group, "period": period,
             "count": int(element_counts.get(element.symbol, 0))}
        )
    return pd.DataFrame.from_records(records)


def element_coverage_chart(element_counts: Mapping[str, int]) -> alt.Chart:
    """A periodic-table heatmap of how many kept rows contain each element.

    Args:
        element_counts: ``{symbol: count}``.

    Returns:
        An altair chart (group × period, coloured by count, symbols written in the cells).
    """
    frame = periodic_table_frame(element_counts)
    base = alt.Chart(frame, title="Element coverage of the kept rows").encode(
        x=alt.X("group:O", title="Group"),
        y=alt.Y("period:O", title="Period", sort=PERIOD_ORDER),
    )
    cells = base.mark_rect(stroke="white").encode(
        color=alt.condition(
            alt.datum.count > 0,
            alt.Color("count:Q", title="Rows", scale=alt.Scale(scheme="blues")),
            alt.value("#f2f2f2"),
        ),
        tooltip=[alt.Tooltip("symbol:N", title="Element"), alt.Tooltip("count:Q", title="Rows")],
    )
    labels = base.mark_text(fontSize=10).encode(text="symbol:N")
    return (cells + labels).properties(height=320)


def target_histogram(values: Iterable[float], axis_title: str) -> alt.Chart:
    """Histogram of the kept target values.

    Args:
        values: the targets (after the version's transform).
        axis_title: the x-axis title, with the unit.

    Returns:
        An altair bar chart.
    """
    frame = pd.DataFrame({"target": list(values)})
    return (
        alt.Chart(frame, title="Distribution of the target over the kept rows")
        .mark_bar()
        .encode(
            x=alt.X("target:Q", bin=alt.Bin(maxbins=40), title=axis_title),
            y=alt.Y("count():Q", title="Rows"),
        )
        .properties(height=260)
    )


def target_axis_title(version: VersionInfo) -> str:
    """``"log10(σ / S cm⁻¹)"``-style axis title for a version's target (:func:`cosnet_core.units.target_label`)."""
    return target_label(version.target_name, version.target_unit, version.target_transform)


# ----------------------------------------------------------------------------------------------------
# Upload → map → options → preview → import


def _remember(kind_key: str, uploaded) -> dict[str, Any] | None:
    """Keep the uploaded bytes in session state, so reruns and page switches do not lose them."""
    if uploaded is not None:
        stored = st.session_state.get(kind_key)
        if stored is None or stored.get("file_id") != uploaded.file_id:
            data = uploaded.getvalue()
            st.session_state[kind_key] = {
                "name": uploaded.name,
                "data": data,
                "sha256": sha256(data),
                "file_id": uploaded.file_id,
            }
    return st.session_state.get(kind_key)


def _forget_upload() -> None:
    st.session_state.pop(TABLE_KEY, None)
    st.session_state.pop(ZIP_KEY, None)
    st.session_state.pop(RECLEAN_KEY, None)
    st.session_state[UPLOADER_ROUND_KEY] = st.session_state.get(UPLOADER_ROUND_KEY, 0) + 1


def _mapping_widgets(raw: RawTable, token: str, preset: Mapping[str, Any] | None) -> ColumnMapping:
    st.subheader("2. Map the columns")
    st.caption("Prefilled from the column names; check them. Columns not given a role can be kept as metadata.")
    columns = raw.columns
    suggested = suggest_mapping(columns)
    if preset:  # re-cleaning: start from the mapping the version was imported with
        known = {k: v for k, v in preset.items() if k in ROLE_LABELS and (v is None or v in columns)}
        extra = tuple(c for c in preset.get("extra", ()) if c in columns)
        suggested = ColumnMapping(**known, extra=extra)
    chosen: dict[str, str | None] = {}
    grid = st.columns(3)
    for i, (role, label) in enumerate(ROLE_LABELS.items()):
        options = [NONE, *columns]
        default = getattr(suggested, role)
        choice = grid[i % 3].selectbox(
            label, options, index=options.index(default) if default in options else 0, key=f"map_{role}_{token}"
        )
        chosen[role] = None if choice == NONE else choice
    mapped = {c for c in chosen.values() if c}
    extra = st.multiselect(
        "Extra columns kept as metadata",
        columns,
        default=[c for c in suggested.extra if c not in mapped],
        key=f"map_extra_{token}",
    )
    return ColumnMapping(**chosen, extra=tuple(c for c in extra if c not in mapped))


def _options_widgets(mapping: ColumnMapping, token: str, preset: Mapping[str, Any] | None) -> CleaningOptions:
    st.subheader("3. Target and cleaning options")
    preset = preset or {}
    left, right = st.columns(2)
    unit = left.text_input(
        "Unit of the target (a label; values are not converted)",
        value=preset.get("unit", suggest_target_unit(mapping.target)[0]),
        key=f"opt_unit_{token}",
    )
    suggested_log10 = suggest_log10(mapping.target, unit)  # the same answer for the name and for the unit typed
    log10 = left.checkbox(
        "Store log10 of the target (conductivities); non-positive values are rejected",
        value=bool(preset.get("log10", suggested_log10)),
        key=f"opt_log10_{token}_{suggested_log10}",
    )
    censored = left.radio(
        "Censored values (such as <1E-10, or flagged in the censored-flag column)",
        list(CENSORED_LABELS),
        index=list(CENSORED_LABELS).index(preset.get("censored", "exclude")),
        format_func=CENSORED_LABELS.__getitem__,
        key=f"opt_censored_{token}",
    )
    duplicates = right.selectbox(
        "Rows with the same composition",
        list(DUPLICATE_LABELS),
        index=list(DUPLICATE_LABELS).index(preset.get("duplicates", "keep_all")),
        format_func=DUPLICATE_LABELS.__getitem__,
        key=f"opt_duplicates_{token}",
    )
    window = None
    missing = "filter"
    temperature_unit = "°C"
    if mapping.temperature:
        named_kelvin = re.sub(r"[^a-z]", "", mapping.temperature.lower()).endswith("k")  # temperature (K), T_K
        temperature_unit = right.radio(
            "Unit of the temperature column", list(TEMPERATURE_UNITS), horizontal=True,
            index=list(TEMPERATURE_UNITS).index(preset.get("temperature_unit", "K" if named_kelvin else "°C")),
            help="Stored with the dataset; the temperature window below is in this unit.",
            key=f"opt_tunit_{token}",
        )
    stored_window = preset.get("temperature_window") or (20.0, 30.0)
    use_window = right.checkbox(
        "Keep only a temperature window",
        value=bool(preset.get("temperature_window")),
        disabled=not mapping.temperature,
        help="Needs a temperature column; the window is in that column's unit.",
        key=f"opt_window_{token}",
    )
    if use_window and mapping.temperature:
        low = right.number_input("Lowest temperature", value=float(stored_window[0]), key=f"opt_low_{token}")
        high = right.number_input("Highest temperature", value=float(stored_window[1]), key=f"opt_high_{token}")
        window = (float(low), float(high))
        missing = right.radio(
            "Rows without a temperature",
            ["filter", "keep"],
            index=["filter", "keep"].index(preset.get("missing_temperature", "filter")),
            format_func={"filter": "Filter them out", "keep": "Keep them"}.__getitem__,
            key=f"opt_missing_{token}",
        )
    return CleaningOptions(
        unit=unit.strip(),
        log10=log10,
        censored=censored,
        temperature_window=window,
        missing_temperature=missing,
        duplicates=duplicates,
        temperature_unit=temperature_unit,
        kelvin_rows=st.session_state.get(f"opt_kelvin_{token}") or preset.get("kelvin_rows", "ask"),
    )


def _preview(result: IngestResult, uploaded: UploadedStructures, reading: CifReading | None = None) -> None:
    st.subheader("4. Preview (nothing is stored yet)")
    if reading is not None and not reading.finished:
        st.info(f"The CIF files are still being read ({reading.n_done} of {reading.total}): rows whose CIF cannot "
                "be read are named here when the reading is done.")
    s = result.summary
    st.write(
        f"Of {s.n_rows} rows, **{s.n_kept} would be kept**, {s.n_rejected} rejected, {s.n_censored} censored, "
        f"{s.n_filtered} outside the temperature window and {s.n_merged} merged as duplicates; "
        f"{s.n_distinct_compositions} distinct compositions, {s.n_with_structure} rows with a structure "
        "(CIF or Materials Project id)."
    )
    if s.n_duplicate_compositions:
        unit = f" {md_escape(s.unit)}" if s.unit else ""
        st.write(
            f"{s.n_duplicate_compositions} compositions appear in several usable rows; "
            f"{s.n_conflicting_compositions} of them disagree (mean spread {s.mean_spread:.3g}{unit}, "
            f"largest {s.max_spread:.3g}{unit}). The option 'Rows with the same composition' above decides "
            "what is kept. " + PAPER_DUPLICATE_POLICY
        )
        if not (result.mapping.year or result.mapping.reference):
            st.info(
                "'Most recent' is not available: no year/date or reference column is mapped, so there is no way "
                "to tell which report is newer. Map one in step 2 (a year, a date such as 2019-05-01, or a "
                "reference holding its year), or choose the mean."
            )
    for warning in result.warnings:
        st.warning(md_escape(warning))
    rows = result.rows
    for member, reason in sorted(uploaded.errors.items()):
        numbers = [int(n) for n in rows.index[rows["cif_member"] == member]]
        where = ", ".join(f"row {n}" for n in numbers)
        st.warning(
            f"{where.capitalize()}: the CIF {md_quote(member)} cannot be read ({md_escape(reason)}); "
            "kept composition-only."
        )
    unused = result.rejected
    if len(unused):
        st.markdown(f"**{len(unused)} rows will not be used**, each with its reason:")
        st.dataframe(
            unused[["status", "reason", "formula_raw", "target_raw"]].rename(
                columns={"formula_raw": "formula", "target_raw": "target (as given)"}
            ),
            width="stretch",
        )
        st.download_button(
            "Download these rows with their reasons (CSV)",
            result.rejected_csv(),
            file_name=f"{PurePath(result.raw.filename).stem}-unused-rows.csv",
            mime="text/csv",
            key="download_preview_unused",
        )
    st.markdown("The first cleaned rows:")
    shown = rows.head(20)[["status", "formula_raw", "reduced_formula", "target", "reason"]].copy()
    shown["target"] = shown["target"].map(significant)  # 4.4e-18 stays 4.4e-18, never 0.000000000000000004
    options = result.options
    label = target_label(result.mapping.target, options.unit, "log10" if options.log10 else "none")
    st.dataframe(shown.rename(columns={"target": label}), width="stretch")


def _destination(
    datasets: list[DatasetInfo], stem: str, token: str, preferred: int | None
) -> tuple[int | None, str]:
    st.subheader("5. Import")
    ids: list[int | None] = [None, *(d.id for d in datasets)]
    names = {d.id: d.name for d in datasets}
    same_name = preferred if preferred in names else next((d.id for d in datasets if d.name == stem), None)
    target = st.selectbox(
        "Import as",
        ids,
        index=ids.index(same_name) if same_name is not None else 0,
        format_func=lambda i: "a new dataset" if i is None else f"a new version of {names[i]!r}",
        key=f"import_into_{token}",
    )
    name = ""
    if target is None:
        name = st.text_input("Name of the new dataset", value=stem, key=f"import_name_{token}")
    return target, name


def upload_section(url: str, limits: IngestLimits) -> None:
    """Upload a table (and optionally a zip of CIFs), map it, choose options, preview it and import it.

    Args:
        url: database URL.
        limits: upload limits (from the environment).
    """
    st.subheader("1. Upload")
    round_ = f"{st.session_state.get(LOGOUT_COUNT_KEY, 0)}_{st.session_state.get(UPLOADER_ROUND_KEY, 0)}"
    max_mb = max(1, math.ceil(limits.max_upload_bytes / MB))  # the browser refuses larger files at once
    table_file = st.file_uploader(
        "Table of measurements (CSV, TSV or Excel .xlsx)",
        type=["csv", "tsv", "txt", "xlsx", "xls"],
        max_upload_size=max_mb,
        key=f"datasets_table_file_{round_}",
    )
    zip_file = st.file_uploader(
        "Optional: crystal structures as one .zip of CIF files (rows refer to them by file name or ID)",
        type=["zip"],
        max_upload_size=max_mb,
        key=f"datasets_cif_zip_{round_}",
    )
    st.caption(
        f"Limits: {limits.max_upload_bytes / MB:g} MB per file, {limits.max_rows:,} rows, "
        f"{limits.zip_max_members:,} files and {limits.zip_max_unpacked_bytes / MB:g} MB unpacked per zip."
    )
    table = _remember(TABLE_KEY, table_file)
    archive = _remember(ZIP_KEY, zip_file)
    if table is None:
        return
    name, data = table["name"], table["data"]
    if table_file is None:
        st.caption(f"Working on {md_quote(name)}, uploaded earlier.")
    if st.button("Discard this upload", key=f"discard_{round_}"):
        _forget_upload()
        st.rerun()

    limit_key = _limits_key(limits)
    sheet = None
    try:
        if name.lower().endswith((".xlsx", ".xlsm")):
            sheets = _sheets(data)
            if len(sheets) > 1:
                stored_sheet = (st.session_state.get(RECLEAN_KEY) or {}).get("settings", {}).get("sheet")
                sheet = st.selectbox(
                    "Sheet", sheets, index=sheets.index(stored_sheet) if stored_sheet in sheets else 0,
                    key=f"sheet_{table['sha256'][:12]}",
                )
        has_header = st.checkbox(
            "The first row holds the column names",
            value=bool((st.session_state.get(RECLEAN_KEY) or {}).get("settings", {}).get("has_header", True)),
            key=f"header_{table['sha256'][:12]}",
        )
        raw = _read(data, name, sheet, has_header, limit_key)
    except IngestError as error:
        st.error(f"Cannot read {md_quote(name)}: {md_escape(error)}")
        return
    st.caption(
        f"{raw.n_rows} data rows, {len(raw.columns)} columns"
        + (f", sheet {raw.sheet!r}" if raw.sheet else "")
        + (f", encoding {raw.encoding}" if raw.encoding != "xlsx" else "")
    )
    for warning in raw.warnings:
        st.warning(md_escape(warning))
    st.dataframe(raw.frame.head(10), width="stretch")

    reclean = st.session_state.get(RECLEAN_KEY) or {}
    preset = reclean.get("settings") or {}
    if reclean:
        st.info(
            f"Re-cleaning the file {md_quote(name)} of a stored version: change the mapping or the options below; "
            "the import makes a new version, the old one stays as it is."
        )
    token = f"{table['sha256'][:12]}_{sheet or ''}_{'reclean' if reclean else 'new'}"
    mapping = _mapping_widgets(raw, token, preset.get("mapping"))
    options = _options_widgets(mapping, token, preset.get("options"))

    cifs = None
    reading: CifReading | None = None
    if archive is not None:
        try:
            cifs = _unzip(archive["data"], limit_key)
        except IngestError as error:
            st.error(f"Cannot use the zip {md_quote(archive['name'])}: {md_escape(error)}")
            return
        st.caption(f"The zip {md_quote(archive['name'])} holds {len(cifs)} CIF file(s).")
        # Read once per zip, in the background, from the run that uploads it (issue 16, item 9).
        reading, started = background.start_reading(archive["sha256"], cifs, **_cif_limits())
        if not (started and reading.wait(CIF_WAIT_S)) and not reading.finished:
            _reading_progress(reading)
    try:
        result = _clean(raw, _mapping_dict(mapping), _options_dict(options), cifs)
    except IngestError as error:
        st.error(f"Cannot clean {md_quote(name)}: {md_escape(error)}")
        return
    members = tuple(sorted({m for m in result.rows["cif_member"] if isinstance(m, str)}))
    reading_cifs = reading is not None and bool(members) and not reading.finished
    uploaded = reading.outcome(members) if reading is not None and members and not reading_cifs \
        else UploadedStructures()
    _preview(result, uploaded, reading if reading_cifs else None)
    unanswered = _kelvin_question(result, token)

    datasets = [d for d in list_datasets(url, **visibility()) if may_change(d.owner)]
    target, dataset_name = _destination(datasets, PurePath(name).stem, token, reclean.get("dataset_id"))
    if reading_cifs:
        st.caption("Import waits until the CIF files are read (the progress bar above).")
    if not st.button("Import", type="primary", key=f"import_{token}", disabled=unanswered or reading_cifs):
        return
    settings: dict[str, Any] = {"table_filename": name}
    if archive is not None:
        settings["cif_zip"] = {"filename": archive["name"], "sha256": archive["sha256"]}
    try:  # the files first: a full disk stops the import before anything is stored
        save_upload(data, table["sha256"])  # kept for re-cleaning later
        if archive is not None:
            save_upload(archive["data"], archive["sha256"])
    except OSError as error:
        st.error(f"Nothing was imported: the upload cannot be kept on the server ({md_escape(error.strerror or error)}). "
                 "Ask an administrator to free disk space, then import again.")
        return
    try:
        if target is None:
            stored = create_dataset(
                url, result, name=dataset_name, source_sha256=table["sha256"], uploaded=uploaded,
                created_by=current_user(), settings=settings,
            )
        else:
            stored = add_version(
                url, target, result, source_sha256=table["sha256"], uploaded=uploaded,
                created_by=current_user(), settings=settings, actor=current_actor(),
            )
    except (DatasetStoreError, AccessDenied) as error:
        st.error(f"Nothing was imported: {md_escape(error)}")
        return
    set_active_version(stored.version_id)
    st.session_state[FLASH_KEY] = f"Imported {md_quote(name)} as version {stored.number}."
    _forget_upload()
    st.rerun()


def _mapping_dict(mapping: ColumnMapping) -> dict[str, Any]:
    return {
        "formula": mapping.formula, "target": mapping.target, "id": mapping.id,
        "structure_file": mapping.structure_file, "mp_id": mapping.mp_id, "temperature": mapping.temperature,
        "split": mapping.split, "reference": mapping.reference, "year": mapping.year,
        "censored_flag": mapping.censored_flag, "extra": mapping.extra,
    }


def _options_dict(options: CleaningOptions) -> dict[str, Any]:
    return {
        "unit": options.unit, "log10": options.log10, "censored": options.censored,
        "temperature_window": options.temperature_window, "missing_temperature": options.missing_temperature,
        "duplicates": options.duplicates, "temperature_unit": options.temperature_unit,
        "kelvin_rows": options.kelvin_rows,
    }


def _kelvin_question(result: IngestResult, token: str) -> bool:
    """Ask what to do with temperatures that look like the other unit (298 among 25s); True while unanswered."""
    if not result.temperature_suspects:
        return False
    unit = result.options.temperature_unit
    other = "K" if unit == "°C" else "°C"
    rows = ", ".join(map(str, result.temperature_suspects[:20])) + (" …" if len(result.temperature_suspects) > 20
                                                                     else "")
    st.radio(
        f"Row(s) {rows}: their temperature looks like {other} in a column of {unit}. What are they?",
        ["convert", "keep"], index=None, key=f"opt_kelvin_{token}",
        format_func={"convert": f"{other}: convert them to {unit}", "keep": f"{unit}: keep them as given"}.__getitem__,
    )
    if result.options.kelvin_rows == "ask":
        st.warning("Answer the temperature question above before importing: nothing is filtered or converted "
                   "silently.")
        return True
    return False


# ----------------------------------------------------------------------------------------------------
# Versions, summaries, deletion


def show_flash() -> None:
    """Show (once) the message left by the import or deletion that triggered this rerun."""
    message = st.session_state.pop(FLASH_KEY, None)
    if message:
        st.success(message)


def versions_table(datasets: list[DatasetInfo]) -> pd.DataFrame:
    """Every version of every dataset, newest dataset first, for the versions list."""
    records = [
        {
            "dataset": d.name,
            "version": v.number,
            "imported": v.created_at.strftime("%Y-%m-%d %H:%M"),
            "by": v.created_by,
            "file": v.source_filename,
            "rows": v.n_rows,
            "kept": v.n_kept,
            "rejected": v.n_rejected,
            "replaces": next((f"v{p.number}" for p in d.versions if p.id == v.parent_id), ""),
        }
        for d in datasets
        for v in reversed(d.versions)
    ]
    return pd.DataFrame.from_records(records)


def render_summary(url: str, version: VersionInfo) -> None:
    """The summary of a stored version: counts, conflicts, coverage, target histogram, unused rows.

    Args:
        url: database URL.
        version: the version to summarise.
    """
    s = version.summary
    st.subheader(f"Summary of {md_escape(version.dataset_name)} · v{version.number}")
    st.caption(
        f"Imported from {md_quote(version.source_filename)} by {md_escape(version.created_by)} on "
        f"{version.created_at:%Y-%m-%d %H:%M}; target column {md_quote(version.target_name)}"
        + (f", unit {md_escape(version.target_unit)}" if version.target_unit else "")
        + (", stored as log10" if version.target_transform == "log10" else "")
        + (f"; temperatures in {version.temperature_unit}" if version.temperature_unit else "")
        + "."
    )
    first = st.columns(4)
    first[0].metric("Rows kept", s.get("n_kept", version.n_kept))
    first[1].metric("Rows rejected", s.get("n_rejected", version.n_rejected))
    first[2].metric("Rows censored", s.get("n_censored", 0))
    first[3].metric("Rows filtered", s.get("n_filtered", 0))
    second = st.columns(4)
    second[0].metric("Distinct compositions", s.get("n_distinct_compositions", 0))
    second[1].metric("Rows with a structure", s.get("n_with_structure", 0))
    second[2].metric("Duplicates merged", s.get("n_merged", 0))
    second[3].metric("Conflicting compositions", s.get("n_conflicting_compositions", 0))
    st.caption(
        f"Structures: {s.get('n_with_cif', 0)} kept rows matched a CIF of the upload "
        f"({s.get('n_structures_attached', 0)} attached, {s.get('n_cif_failed', 0)} unreadable), "
        f"{s.get('n_with_mp_id', 0)} have a Materials Project id; "
        f"{s.get('n_structure_missing', 0)} rows name a CIF that the zip lacked."
    )

    unit = s.get("unit") or ""
    n_duplicates = s.get("n_duplicate_compositions", 0)
    if n_duplicates:
        st.markdown(
            f"**{n_duplicates} compositions appear in more than one row**; "
            f"{s.get('n_conflicting_compositions', 0)} of them with different values "
            f"(mean spread {s.get('mean_spread', 0.0):.3g}, largest {s.get('max_spread', 0.0):.3g} {unit})."
        )
        conflicts = pd.DataFrame(s.get("conflicts", []))
        if len(conflicts):
            st.dataframe(conflicts.sort_values("spread", ascending=False), width="stretch")

    kept = load_entries(url, version.id, statuses=["kept"])
    n_bounds = int(kept["censored"].fillna("").astype(str).str.strip().ne("").sum()) if "censored" in kept else 0
    if n_bounds:
        st.caption(
            f"{n_bounds} of the kept rows are bounds (censored values kept as bounds): they are never scored as "
            "measurements; a study drops them or trains on them with the censored loss (its choice on the Training "
            "page)."
        )
    st.altair_chart(element_coverage_chart(s.get("element_counts", {})), width="stretch")
    st.caption(
        "How many kept rows contain each element. Grey elements never occur: a model trained on this version "
        "knows nothing about them."
    )
    if len(kept):
        st.altair_chart(target_histogram(kept["target"].dropna(), target_axis_title(version)), width="stretch")
        st.caption("Look for outliers, a second mode or a cut-off (censored values excluded or at their bound).")

    unused = load_entries(url, version.id, statuses=["rejected", "censored", "filtered"])
    if len(unused):
        st.markdown(f"**{len(unused)} rows are not used** (rejected, censored or filtered), with the reason:")
        st.dataframe(
            unused[["row", "status", "reason", "raw_formula", "raw_target"]].rename(
                columns={"raw_formula": "formula", "raw_target": "target (as given)"}
            ),
            hide_index=True,
            width="stretch",
        )
        st.download_button(
            "Download the unused rows (CSV)",
            unused_rows_csv(url, version.id),
            file_name=f"{PurePath(version.source_filename or 'dataset').stem}-v{version.number}-unused-rows.csv",
            mime="text/csv",
            key=f"download_unused_{version.id}",
        )


def render_delete(url: str, version: VersionInfo) -> None:
    """Two-step deletion of a version or its whole dataset, naming everything that depends on it.

    Args:
        url: database URL.
        version: the version shown.
    """
    st.subheader("Delete")
    scope = st.radio(
        "What to delete",
        ["version", "dataset"],
        format_func={
            "version": f"only version {version.number}",
            "dataset": f"the whole dataset {md_quote(version.dataset_name)} (all its versions)",
        }.__getitem__,
        key=f"delete_scope_{version.id}",
        horizontal=True,
    )
    if scope == "version":
        found = dependents(url, version_id=version.id)
    else:
        found = dependents(url, dataset_id=version.dataset_id)
    confirmed = st.checkbox(
        "I understand; delete it", key=f"delete_confirm_{version.id}_{scope}"
    )
    if confirmed:
        st.warning(md_escape(found.describe()) + " This cannot be undone.")
    if not st.button("Delete permanently", disabled=not confirmed, key=f"delete_button_{version.id}_{scope}"):
        return
    try:
        if scope == "version":
            delete_version(url, version.id, actor=current_actor())
            what = f"version {version.number} of {md_quote(version.dataset_name)}"
        else:
            delete_dataset(url, version.dataset_id, actor=current_actor())
            what = f"the dataset {md_quote(version.dataset_name)}"
    except (DatasetStoreError, AccessDenied) as error:
        st.error(f"Nothing was deleted: {md_escape(error)}")
        return
    if active_version_id() is not None:
        set_active_version(None)
    st.session_state[FLASH_KEY] = f"Deleted {what}."
    st.rerun()


def versions_section(url: str) -> None:
    """The versions list, the summary of the chosen version, and deletion.

    Args:
        url: database URL.
    """
    datasets = list_datasets(url, **visibility())
    if not datasets:
        return
    st.header("Dataset versions")
    st.dataframe(versions_table(datasets), hide_index=True, width="stretch")
    versions = {v.id: v for d in datasets for v in reversed(d.versions)}
    ids = list(versions)
    current = active_version_id()
    chosen = st.selectbox(
        "Show the summary of",
        ids,
        index=ids.index(current) if current in ids else 0,
        format_func=lambda i: versions[i].label,
    )
    render_summary(url, versions[chosen])
    dataset = next(d for d in datasets if d.id == versions[chosen].dataset_id)
    if not may_change(dataset.owner):
        st.caption(
            f"This dataset belongs to {md_escape(dataset.owner)} and is shared with the lab: you can read it; only its owner "
            "or an administrator can change, share or delete it, review its structures or train on it."
        )
        return
    render_sharing(url, dataset)
    render_reclean(versions[chosen])
    render_delete(url, versions[chosen])


def render_sharing(url: str, dataset: DatasetInfo) -> None:
    """Share the dataset with the lab, or make it private again (owner and administrators only).

    Args:
        url: database URL.
        dataset: the dataset of the version shown.
    """
    st.subheader("Sharing")
    if dataset.shared:
        st.caption("Shared with the lab: every user sees this dataset and what was trained on it.")
        label, new_state, done = "Make private", False, "is private again"
    else:
        st.caption("Private: only you and the administrators see this dataset and what was trained on it.")
        label, new_state, done = "Share with the lab", True, "is shared with the lab"
    if not st.button(label, key=f"share_{dataset.id}_{new_state}"):
        return
    try:
        set_shared(url, dataset.id, new_state, actor=current_actor())
    except AccessDenied as error:
        st.error(f"Nothing was changed: {md_escape(error)}")
        return
    st.session_state[FLASH_KEY] = f"The dataset {md_quote(dataset.name)} {done}."
    st.rerun()


def render_reclean(version: VersionInfo) -> None:
    """Offer to clean the version's own uploaded file again with other options (→ a new version).

    Args:
        version: the version shown.
    """
    data = load_upload(version.source_sha256)
    if data is None:
        st.caption("The uploaded file of this version is not kept here, so it cannot be re-cleaned; upload it again.")
        return
    if not st.button("Re-clean this version with other options", key=f"reclean_{version.id}"):
        return
    _forget_upload()
    name = version.settings.get("table_filename") or version.source_filename or "dataset.csv"
    st.session_state[TABLE_KEY] = {"name": name, "data": data, "sha256": version.source_sha256, "file_id": None}
    cif_zip = version.settings.get("cif_zip") or {}
    zip_data = load_upload(cif_zip.get("sha256"))
    if zip_data is not None:
        st.session_state[ZIP_KEY] = {
            "name": cif_zip.get("filename"), "data": zip_data, "sha256": cif_zip["sha256"], "file_id": None,
        }
    st.session_state[RECLEAN_KEY] = {"dataset_id": version.dataset_id, "settings": version.settings}
    st.rerun()
