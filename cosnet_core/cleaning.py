"""Cleaning a mapped table into samples and targets, without losing a row silently.

The last step of :mod:`cosnet_core.ingest`: :func:`clean_table` parses formulas and targets (units, censored
values such as ``<1E-10``, log10), applies the temperature window and the duplicate policy, matches rows to the
CIFs of an uploaded zip, and gives every row of the file exactly once in :class:`IngestResult` with a status
(kept, rejected, censored, filtered, merged) and a reason. Pure: no torch, no streamlit, no database.
"""

from __future__ import annotations

import functools
import math
import re
import statistics
import unicodedata
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import pandas as pd

from cosnet_core.column_mapping import ColumnMapping
from cosnet_core.formula import FormulaError, composition_key, parse_formula
from cosnet_core.table_reading import NUMBER_PATTERN, RawTable
from cosnet_core.tabular import target_too_large
from cosnet_core.units import suspect_kelvin_rows, to_unit
from cosnet_core.upload_limits import IngestError

STATUS_KEPT = "kept"
STATUS_REJECTED = "rejected"
STATUS_CENSORED = "censored"
STATUS_FILTERED = "filtered"
STATUS_MERGED = "merged"

DuplicatePolicy = Literal["keep_all", "mean", "median", "most_recent"]
CensoredPolicy = Literal["exclude", "include_at_bound"]
MissingTemperaturePolicy = Literal["filter", "keep"]
KelvinPolicy = Literal["ask", "convert", "keep"]


@dataclass
class CleaningOptions:
    """How targets, temperatures and duplicates are treated.

    Attributes:
        unit: the target's unit label as the user states it (``"S/cm"``, ``"eV"``); stored, not converted.
        log10: store log10(target) (conductivities); non-positive values are rejected with a reason.
        censored: rows whose target is a bound (``<1E-10`` or flagged in the censored-flag column):
            ``"exclude"`` (default: status ``censored``, not used) or ``"include_at_bound"`` (status ``kept`` with
            the bound as target and its sign in the ``censored`` column: a study drops them or trains on them as
            bounds, ``TrainConfig.censored``; they are never scored as measurements).
        temperature_window: keep only rows with ``low <= temperature <= high`` (in the file's unit); ``None``
            keeps every temperature.
        missing_temperature: with a window, rows without a (numeric) temperature are ``"filter"``-ed (default)
            or ``"keep"``-t.
        duplicates: rows with the same composition: ``"keep_all"``, ``"mean"``, ``"median"`` (of the stored,
            possibly log10, values) or ``"most_recent"`` (largest year, from the year column or a year found
            in the reference text; ties go to the later row of the file).
        temperature_unit: the unit of the temperature column, ``"°C"`` (default) or ``"K"``; stored with the
            version. The temperature window is in this unit.
        kelvin_rows: rows whose temperature looks like the other unit (298 in a column of 25s,
            :func:`cosnet_core.units.suspect_kelvin_rows`): ``"ask"`` (default: kept as given and named in a warning;
            the Datasets page imports nothing until the user answers), ``"convert"`` them to ``temperature_unit``
            (each row's reason says so) or ``"keep"`` them as given.
    """

    unit: str = ""
    log10: bool = False
    censored: CensoredPolicy = "exclude"
    temperature_window: tuple[float, float] | None = None
    missing_temperature: MissingTemperaturePolicy = "filter"
    duplicates: DuplicatePolicy = "keep_all"
    temperature_unit: str = "°C"
    kelvin_rows: KelvinPolicy = "ask"

    def validate(self, mapping: ColumnMapping) -> None:
        """Check the options against each other and the mapping.

        Args:
            mapping: the column mapping they will be used with.

        Raises:
            IngestError: an unknown policy, an inverted window, a window without a temperature column, or
                ``most_recent`` without a year or reference column.
        """
        if self.censored not in ("exclude", "include_at_bound"):
            raise IngestError(f"unknown censored-value policy {self.censored!r}")
        if self.duplicates not in ("keep_all", "mean", "median", "most_recent"):
            raise IngestError(f"unknown duplicates policy {self.duplicates!r}")
        if self.temperature_unit not in ("°C", "K"):
            raise IngestError(f"unknown temperature unit {self.temperature_unit!r} (use °C or K)")
        if self.kelvin_rows not in ("ask", "convert", "keep"):
            raise IngestError(f"unknown policy for temperatures in the other unit {self.kelvin_rows!r}")
        if self.missing_temperature not in ("filter", "keep"):
            raise IngestError(f"unknown missing-temperature policy {self.missing_temperature!r}")
        if self.temperature_window is not None:
            low, high = self.temperature_window
            if not low <= high:
                raise IngestError(
                    f"the temperature window {low} to {high} is empty (low must not exceed high)"
                )
            if not mapping.temperature:
                raise IngestError(
                    "a temperature window needs a temperature column; map one or remove the window"
                )
        if self.duplicates == "most_recent" and not (mapping.year or mapping.reference):
            raise IngestError(
                "'most recent' needs a year or a reference column to tell which measurement is newer; "
                "map one, or choose keep all, mean or median"
            )


# A censored value: a comparison sign then a number, e.g. "<1E-10", "> 5", "≤ 1e-8".
_CENSORED = re.compile(r"^\s*(<=|>=|<|>|≤|≥)\s*(.+?)\s*$")
_YEAR = re.compile(r"(?<!\d)(19[5-9]\d|20\d\d)(?!\d)")
_ISO_DATE = re.compile(r"^\s*(19[5-9]\d|20\d\d)-(\d{1,2})(?:-(\d{1,2}))?")
_FLAG_YES = frozenset({"1", "true", "t", "yes", "y", "x", "censored", "upper bound", "upperbound", "<", "1.0"})
_FLAG_NO = frozenset({"", "0", "false", "f", "no", "n", "-", "0.0", "measured", "nan", "none"})


def parse_flag(text: object) -> bool | None:
    """Read a yes/no cell of a censored-flag column.

    Yes: ``1``, ``true``, ``yes``, ``y``, ``x``, ``censored``, ``upper bound``, ``<``; no: empty, ``0``, ``false``,
    ``no``, ``n``, ``-``, ``measured`` (case and surrounding spaces ignored).

    Args:
        text: the cell.

    Returns:
        True, False, or None when the cell is neither (the row is then rejected with the reason).
    """
    cell = str(text if text is not None else "").strip().lower()
    if cell in _FLAG_YES:
        return True
    if cell in _FLAG_NO:
        return False
    return None


def _clean_number_text(text: str) -> tuple[str, bool]:
    """Remove PDF artefacts (combining marks, Unicode minus, spaces); say whether the text changed."""
    cleaned = text
    if not text.isascii():
        cleaned = unicodedata.normalize("NFKC", text)
        cleaned = "".join(ch for ch in cleaned if not unicodedata.combining(ch))
        cleaned = cleaned.replace("\u2212", "-").replace("\u2013", "-").replace("\ufeff", "")
    cleaned = re.sub(r"\s", "", cleaned.strip().strip("\"'"))
    return cleaned, cleaned != re.sub(r"\s", "", text.strip().strip("\"'"))


def _parse_number(text: str) -> float | None:
    if not NUMBER_PATTERN.match(text):
        return None
    return float(text)


@functools.lru_cache(maxsize=65536)
def _parse_temperature(text: str) -> float | None:
    return _parse_number(_clean_number_text(text)[0])


@dataclass(frozen=True)
class _Target:
    value: float | None  # parsed number (before transform); None when absent or not a number
    censored: str | None  # the sign when the value is a bound
    problem: str | None  # why it cannot be used
    note: str | None  # what was cleaned


@functools.lru_cache(maxsize=65536)
def _parse_target(text: str) -> _Target:
    if not text.strip():
        return _Target(None, None, "the target is empty", None)
    cleaned, changed = _clean_number_text(text)
    note = f"stray characters removed from the target {text.strip()!r}" if changed else None
    sign = None
    match = _CENSORED.match(cleaned)
    if match:
        sign = {"≤": "<=", "≥": ">="}.get(match.group(1), match.group(1))
        cleaned = match.group(2)
    value = _parse_number(cleaned)
    if value is None:
        return _Target(None, sign, f"the target {text.strip()!r} is not a number", note)
    if not math.isfinite(value):
        return _Target(None, sign, f"the target {text.strip()!r} is not a finite number", note)
    return _Target(value, sign, None, note)


@dataclass(frozen=True)
class _Normalised:
    reduced_formula: str
    fractions: dict[str, float]
    composition_key: str


def _normalise_formula(text: str) -> _Normalised | str:
    """The normalised composition of a formula (via ``parse_formula``), or the reason it cannot be read."""
    try:
        composition = parse_formula(text)
    except FormulaError as error:
        return error.reason
    element_composition = composition.element_composition
    fractions = {
        str(element): round(amount, 6)
        for element, amount in element_composition.fractional_composition.get_el_amt_dict().items()
    }
    return _Normalised(element_composition.reduced_formula, fractions, composition_key(composition))


@dataclass
class IngestSummary:
    """Numbers for the page after cleaning.

    Attributes:
        n_rows: rows in the file (blank lines excepted).
        n_kept, n_rejected, n_censored, n_filtered, n_merged: rows per status.
        n_distinct_compositions: distinct compositions among kept rows.
        n_with_cif: kept rows matched to a CIF of the zip.
        n_with_mp_id: kept rows with a Materials Project id.
        n_with_structure: kept rows with a CIF or an MP id.
        n_structure_references: kept rows whose structure-file cell names a file (zip given or not).
        n_structure_missing: rows naming a CIF that the zip lacks.
        n_duplicate_compositions: compositions with more than one usable row (before merging).
        n_conflicting_compositions: those whose values differ.
        mean_spread, max_spread: over conflicting compositions, of max - min of the (transformed) values.
        element_counts: ``{symbol: number of kept rows containing it}`` (periodic-table coverage).
        target_values: the kept targets (after transform, after merging) for a histogram.
        unit: the target's unit label (``log10(unit)`` when transformed).
    """

    n_rows: int
    n_kept: int
    n_rejected: int
    n_censored: int
    n_filtered: int
    n_merged: int
    n_distinct_compositions: int
    n_with_cif: int
    n_with_mp_id: int
    n_with_structure: int
    n_structure_references: int
    n_structure_missing: int
    n_duplicate_compositions: int
    n_conflicting_compositions: int
    mean_spread: float
    max_spread: float
    element_counts: dict[str, int]
    target_values: list[float]
    unit: str


# The per-row columns of IngestResult.rows, before optional roles and extras.
ROW_COLUMNS = (
    "row",
    "formula_raw",
    "reduced_formula",
    "composition",
    "composition_key",
    "target",
    "target_raw",
    "censored",
    "status",
    "reason",
    "cif_member",
)


@dataclass
class IngestResult:
    """The cleaned table.

    Attributes:
        rows: one row per input row (index: spreadsheet row number) with ``ROW_COLUMNS``, then the mapped
            optional roles (``id``, ``structure_file``, ``mp_id``, ``temperature`` (float), ``split``,
            ``reference``, ``year``) and the extra columns (named as in the file; `` (extra)`` is appended
            when a name clashes). ``composition`` is the fractional dict ``{symbol: fraction}``.
        conflicts: compositions with several usable rows: ``composition_key, reduced_formula, n_rows, rows,
            min, max, spread``.
        summary: counts and chart data.
        warnings: table-level notes (from reading, matching CIFs).
        raw: the table that was cleaned (for the rejected-rows download).
        mapping, options: what was used.
    """

    rows: pd.DataFrame
    conflicts: pd.DataFrame
    summary: IngestSummary
    warnings: list[str]
    raw: RawTable
    mapping: ColumnMapping
    options: CleaningOptions
    temperature_suspects: list[int] = field(default_factory=list)

    @property
    def kept(self) -> pd.DataFrame:
        """The rows used as samples."""
        return self.rows[self.rows["status"] == STATUS_KEPT]

    @property
    def rejected(self) -> pd.DataFrame:
        """The unused rows (rejected, censored, filtered), each with its reason; merged rows are not here."""
        return self.rows[self.rows["status"].isin([STATUS_REJECTED, STATUS_CENSORED, STATUS_FILTERED])]

    def rejected_csv(self) -> bytes:
        """The unused rows as a CSV download: row number, status, reason, then the file's own cells.

        Returns:
            UTF-8 bytes with a BOM (so spreadsheet programs read accents correctly).
        """
        unused = self.rejected
        table = pd.DataFrame(
            {"row": unused.index, "status": unused["status"].values, "reason": unused["reason"].values}
        )
        original = self.raw.frame.loc[unused.index].reset_index(drop=True)
        original.columns = [c if c not in table.columns else f"{c} (file)" for c in original.columns]
        from cosnet_core.exports import safe_to_csv

        return safe_to_csv(pd.concat([table, original], axis=1), index=False).encode("utf-8-sig")


def _match_cif(
    row_values: Mapping[str, str], cif_index: Mapping[str, list[str]], mapping: ColumnMapping
) -> tuple[str | None, str | None]:
    """The zip member for a row, and a warning; by structure file name first, then by the id column."""

    def key(text: str) -> str:
        name = text.strip().replace("\\", "/").rsplit("/", 1)[-1].lower()
        return name[:-4] if name.endswith(".cif") else name

    if mapping.structure_file and row_values.get("structure_file", "").strip():
        wanted = row_values["structure_file"].strip()
        members = cif_index.get(key(wanted), [])
        if len(members) == 1:
            return members[0], None
        if len(members) > 1:
            return (
                None,
                f"warning: the CIF name {wanted!r} is ambiguous in the zip ({', '.join(members)}); "
                "no structure",
            )
        return None, f"warning: the CIF {wanted!r} is not in the zip; kept composition-only"
    if mapping.id and row_values.get("id", "").strip():
        members = cif_index.get(key(row_values["id"]), [])
        if len(members) == 1:
            return members[0], None
        if len(members) > 1:
            return (
                None,
                f"warning: the id {row_values['id']!r} matches several CIFs ({', '.join(members)}); "
                "no structure",
            )
    return None, None


def _recency(row_values: Mapping[str, str]) -> float:
    """When a row was reported, for the most-recent policy: the year column (a year, or an ISO date such as
    ``2019-05-01``, read as a fractional year so that months and days order rows of one year; any other text
    holding a year gives that year), else a year inside the reference; −inf when unknown."""
    for role in ("year", "reference"):
        text = row_values.get(role, "")
        if role == "year":
            value = _parse_number(text.strip())
            if value is not None and math.isfinite(value):
                return value
            date = _ISO_DATE.match(text)
            if date and 1 <= int(date.group(2)) <= 12:
                day = int(date.group(3) or 1)
                return int(date.group(1)) + (int(date.group(2)) - 1) / 12 + (min(day, 31) - 1) / 372
        match = _YEAR.search(text)
        if match:
            return float(match.group(1))
    return -math.inf


def clean_table(
    raw: RawTable,
    mapping: ColumnMapping,
    options: CleaningOptions | None = None,
    *,
    cifs: Mapping[str, bytes] | None = None,
) -> IngestResult:
    """Normalise formulas, parse targets, apply the options and match CIFs; every input row comes out once.

    Args:
        raw: the table from :func:`read_table`.
        mapping: which column holds what.
        options: target, temperature and duplicate handling (defaults when omitted).
        cifs: ``{zip member name: bytes}`` from :func:`read_cif_zip`; rows are matched by the structure-file
            column (file name with or without ``.cif``, case-insensitive, folders ignored) or else by the id.

    Returns:
        The per-row result with summary and conflicts.

    Raises:
        IngestError: the mapping does not fit the table, the options are inconsistent, no row has a parseable
            formula, or no row has a numeric target (e.g. a text column was chosen as the target).
    """
    options = CleaningOptions() if options is None else options
    mapping.validate(raw.columns)
    options.validate(mapping)
    frame = raw.frame
    optional = mapping.optional_fields()

    cif_index: dict[str, list[str]] = {}
    for member in cifs or {}:
        name = member.replace("\\", "/").rsplit("/", 1)[-1].lower()
        cif_index.setdefault(name[:-4] if name.endswith(".cif") else name, []).append(member)

    formula_cache: dict[str, _Normalised | str] = {}
    records: list[dict[str, object]] = []
    n_numeric_targets = 0
    n_formulas_ok = 0
    formula_cells = frame[mapping.formula].astype(str).tolist()
    target_cells = frame[mapping.target].astype(str).tolist()
    role_cells = {role: frame[column].astype(str).tolist() for role, column in optional.items()}
    extra_cells = {column: frame[column].tolist() for column in mapping.extra}
    temperature_suspects: set[int] = set()
    given_temperatures: dict[int, float | None] = {}
    if mapping.temperature:  # temperatures that look like the other unit (298 among 25s): the user decides
        given_temperatures = {int(n): _parse_temperature(c)
                              for n, c in zip(frame.index, role_cells["temperature"], strict=True)}
        temperature_suspects = set(suspect_kelvin_rows(given_temperatures, options.temperature_unit))
    other_unit = "K" if options.temperature_unit == "°C" else "°C"
    for position, number in enumerate(frame.index):
        role_values = {role: cells[position] for role, cells in role_cells.items()}
        formula_raw = formula_cells[position]
        target_raw = target_cells[position]
        problems: list[str] = []
        notes: list[str] = []
        status = STATUS_KEPT

        if formula_raw not in formula_cache:
            formula_cache[formula_raw] = _normalise_formula(formula_raw)
        normalised = formula_cache[formula_raw]
        reduced_formula = fractions = key = None
        if isinstance(normalised, str):
            if formula_raw.strip():
                problems.append(f"formula {formula_raw.strip()!r}: {normalised}")
            else:
                problems.append("the formula is empty")
        else:
            n_formulas_ok += 1
            reduced_formula, key = normalised.reduced_formula, normalised.composition_key
            fractions = dict(normalised.fractions)

        parsed = _parse_target(target_raw)
        if parsed.note:
            notes.append(parsed.note)
        target: float | None = None
        if parsed.problem:
            problems.append(parsed.problem)
        else:
            n_numeric_targets += 1
            value = parsed.value
            assert value is not None
            if options.log10:
                if value <= 0:
                    problems.append(
                        f"the target {target_raw.strip()!r} is not positive, so log10 is undefined"
                    )
                else:
                    target = math.log10(value)
            else:
                target = value
            too_large = target_too_large(target) if target is not None else None
            if too_large:
                problems.append(too_large)
                target = None
        censored_sign = parsed.censored
        if mapping.censored_flag:
            flag_text = role_values["censored_flag"]
            flag = parse_flag(flag_text)
            if flag is None:
                problems.append(
                    f"the censored flag {flag_text.strip()!r} (column {mapping.censored_flag!r}) is not yes or no "
                    "(yes/no, true/false, 1/0; empty means no)"
                )
            elif flag and not censored_sign:
                censored_sign = "<"
                notes.append(f"flagged as an upper bound in the column {mapping.censored_flag!r}")
        if censored_sign and not parsed.problem and target is not None:
            bound = f"{censored_sign}{parsed.value:g}"
            shown = target_raw.strip() if parsed.censored else bound
            if options.censored == "exclude":
                status = STATUS_CENSORED
                notes.append(f"censored value {shown!r} (a bound, not a measurement); excluded")
            else:
                notes.append(
                    f"censored value {shown!r} included at its bound {bound} (a bound: never scored as a measurement)"
                )

        temperature: float | None = None
        if mapping.temperature:
            temperature = _parse_temperature(role_values["temperature"])
            if int(number) in temperature_suspects and options.kelvin_rows == "convert":
                assert temperature is not None
                converted = round(to_unit(temperature, other_unit, options.temperature_unit), 6)
                notes.append(f"temperature {temperature:g} read as {other_unit}, converted to {converted:g} "
                             f"{options.temperature_unit}")
                temperature = converted
            if options.temperature_window is not None:
                low, high = options.temperature_window
                if temperature is None:
                    if options.missing_temperature == "filter":
                        shown = role_values["temperature"].strip()
                        status = STATUS_FILTERED if status == STATUS_KEPT else status
                        notes.append(
                            "no temperature given" if not shown else f"temperature {shown!r} is not a number"
                        )
                        notes[-1] += " (a temperature window is set)"
                elif not low <= temperature <= high:
                    status = STATUS_FILTERED if status == STATUS_KEPT else status
                    notes.append(f"temperature {temperature:g} is outside the window {low:g} to {high:g}")

        cif_member, cif_warning = (None, None)
        if cifs is not None:
            cif_member, cif_warning = _match_cif(role_values, cif_index, mapping)
            if cif_warning:
                notes.append(cif_warning)

        if problems:
            status = STATUS_REJECTED
        record: dict[str, object] = {
            "row": int(number),
            "formula_raw": formula_raw,
            "reduced_formula": reduced_formula,
            "composition": fractions,
            "composition_key": key,
            "target": target if not problems else None,
            "target_raw": target_raw,
            "censored": censored_sign,
            "status": status,
            "reason": "; ".join(problems + notes),
            "cif_member": cif_member,
        }
        for role in optional:
            record[role] = temperature if role == "temperature" else role_values[role]
        for column, cells in extra_cells.items():
            record[column if column not in record else f"{column} (extra)"] = cells[position]
        records.append(record)

    if n_formulas_ok == 0:
        examples = ", ".join(repr(str(v)) for v in frame[mapping.formula].head(3))
        raise IngestError(
            f"no row of the formula column {mapping.formula!r} holds a formula that can be read "
            f"(first values: {examples}); choose the column with the chemical formulas"
        )
    if n_numeric_targets == 0:
        examples = ", ".join(repr(str(v)) for v in frame[mapping.target].head(3))
        raise IngestError(
            f"no row of the target column {mapping.target!r} holds a number (first values: {examples}); "
            "choose the column with the measured values"
        )

    conflicts = _resolve_duplicates(records, options)
    rows = pd.DataFrame.from_records(records, index=pd.Index(list(frame.index), name="row"))
    rows["target"] = rows["target"].astype(float)
    summary = _summarise(rows, conflicts, options, raw)
    warnings = list(raw.warnings)
    if temperature_suspects:
        listed = sorted(temperature_suspects)
        values = ", ".join(f"{given_temperatures[n]:g}" for n in listed[:10])
        action = {"ask": "choose whether to convert them; nothing is imported until you do",
                  "convert": f"converted to {options.temperature_unit} as chosen",
                  "keep": "kept as given, as chosen"}[options.kelvin_rows]
        warnings.append(
            f"Row(s) {', '.join(map(str, listed[:20]))}{' …' if len(listed) > 20 else ''}: the temperature "
            f"({values}) looks like {other_unit} in a column of mostly {options.temperature_unit} values; {action}"
        )
    if cifs is not None and not (mapping.structure_file or mapping.id):
        warnings.append(
            "CIF files were given but neither a structure-file nor an id column is mapped; none is used"
        )
    return IngestResult(
        rows=rows,
        conflicts=conflicts,
        summary=summary,
        warnings=warnings,
        raw=raw,
        mapping=mapping,
        options=options,
        temperature_suspects=sorted(temperature_suspects),
    )


def _resolve_duplicates(records: list[dict[str, object]], options: CleaningOptions) -> pd.DataFrame:
    """Find compositions with several kept rows, record their spread, apply the duplicates policy in place.

    Args:
        records: the per-row records of :func:`clean_table` (changed in place: target, status, reason).
        options: the duplicates policy.

    Returns:
        One row per composition with several kept rows (see :class:`IngestResult` ``conflicts``).
    """
    groups: dict[str, list[dict[str, object]]] = {}
    for record in records:
        if record["status"] == STATUS_KEPT:
            groups.setdefault(str(record["composition_key"]), []).append(record)
    conflict_records = []
    for key in sorted(groups):
        group = groups[key]
        if len(group) < 2:
            continue
        values = [float(record["target"]) for record in group]  # type: ignore[arg-type]
        conflict_records.append(
            {
                "composition_key": key,
                "reduced_formula": group[0]["reduced_formula"],
                "n_rows": len(group),
                "rows": [record["row"] for record in group],
                "min": min(values),
                "max": max(values),
                "spread": max(values) - min(values),
            }
        )
        if options.duplicates == "keep_all":
            continue
        if options.duplicates in ("mean", "median"):
            best = 0
            aggregate = (
                statistics.fmean(values) if options.duplicates == "mean" else statistics.median(values)
            )
            how = f"{options.duplicates} of {len(values)} values"
        else:
            recency = [_recency(record) for record in group]  # type: ignore[arg-type]
            best = max(range(len(group)), key=lambda i: (recency[i], i))
            aggregate = values[best]
            year = recency[best]
            how = f"most recent of {len(values)} rows" + (f" ({math.floor(year)})" if math.isfinite(year) else "")
        keeper = group[best]
        keeper["target"] = aggregate
        keeper["reason"] = _join_reasons(keeper["reason"], f"duplicate composition: {how}")
        for index, record in enumerate(group):
            if index != best:
                record["status"] = STATUS_MERGED
                record["reason"] = _join_reasons(
                    record["reason"], f"duplicate composition merged into row {keeper['row']} ({how})"
                )
    columns = ["composition_key", "reduced_formula", "n_rows", "rows", "min", "max", "spread"]
    return pd.DataFrame(conflict_records, columns=columns)


def _join_reasons(*reasons: object) -> str:
    return "; ".join(str(reason) for reason in reasons if reason)


def _summarise(
    rows: pd.DataFrame, conflicts: pd.DataFrame, options: CleaningOptions, raw: RawTable
) -> IngestSummary:
    status_counts = rows["status"].value_counts()
    kept = rows[rows["status"] == STATUS_KEPT]
    element_counts: Counter[str] = Counter()
    for fractions in kept["composition"]:
        element_counts.update(fractions.keys())
    has_cif = kept["cif_member"].notna()
    has_reference = (
        kept["structure_file"].astype(str).str.strip().ne("")
        if "structure_file" in kept
        else pd.Series(False, index=kept.index)
    )
    has_mp = (
        kept["mp_id"].astype(str).str.strip().ne("")
        if "mp_id" in kept
        else pd.Series(False, index=kept.index)
    )
    spreads = conflicts.loc[conflicts["spread"] > 0, "spread"] if len(conflicts) else pd.Series(dtype=float)
    unit = (
        f"log10({options.unit})"
        if options.log10 and options.unit
        else ("log10" if options.log10 else options.unit)
    )
    return IngestSummary(
        n_rows=len(rows),
        n_kept=int(status_counts.get(STATUS_KEPT, 0)),
        n_rejected=int(status_counts.get(STATUS_REJECTED, 0)),
        n_censored=int(status_counts.get(STATUS_CENSORED, 0)),
        n_filtered=int(status_counts.get(STATUS_FILTERED, 0)),
        n_merged=int(status_counts.get(STATUS_MERGED, 0)),
        n_distinct_compositions=int(kept["composition_key"].nunique()),
        n_with_cif=int(has_cif.sum()),
        n_with_mp_id=int(has_mp.sum()),
        n_with_structure=int((has_cif | has_mp).sum()),
        n_structure_references=int(has_reference.sum()),
        n_structure_missing=int(rows["reason"].str.contains("is not in the zip", regex=False).sum()),
        n_duplicate_compositions=len(conflicts),
        n_conflicting_compositions=len(spreads),
        mean_spread=float(spreads.mean()) if len(spreads) else 0.0,
        max_spread=float(spreads.max()) if len(spreads) else 0.0,
        element_counts=dict(sorted(element_counts.items())),
        target_values=[float(v) for v in kept["target"]],
        unit=unit,
    )
