"""Reading a user's table (CSV/TSV) and a folder of structure files into samples, with per-row errors.

A bad row never stops the reading: it is left out and reported in ``errors`` (the CSV line number, the id, the
column, the value and the reason), so the command line and the pages can show every problem at once. Only
problems with the file itself (missing file, missing column) raise :class:`TableError`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pandas as pd

from cosnet_core.errors import InputError

if TYPE_CHECKING:
    from pymatgen.core import Structure

    from cosnet_core.embeddings import ElementEmbedding
    from cosnet_core.sample import Sample

ERROR_COLUMNS = ("line", "id", "column", "value", "reason")
NO_SUCH_STRUCTURE_FILE = "no such file in the structures folder"
TargetTransform = Literal["none", "log10"]


class TableError(InputError):
    """The table as a whole cannot be used (file missing or unreadable, a named column absent)."""


@dataclass
class TableReadResult:
    """Samples of the good rows and one error record per bad row.

    Attributes:
        samples: the rows that were read, in file order.
        errors: a table with columns ``line`` (line in the file, header = 1), ``id``, ``column``, ``value``,
            ``reason``.
        lines: the file line of each sample (header = 1), parallel to ``samples``.
        warnings: rows that were kept but not as given (same columns as ``errors``), e.g. a structure file that is
            not in the folder with ``missing_structure="composition"``.
        formulas: the formula cell of every data line, ``{line: text}`` (refused lines included).
    """

    samples: list[Sample] = field(default_factory=list)
    errors: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(ERROR_COLUMNS)))
    lines: list[int] = field(default_factory=list)
    warnings: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(ERROR_COLUMNS)))
    formulas: dict[int, str] = field(default_factory=dict)

    def error_message(self, limit: int = 10) -> str:
        """A short human-readable summary of the errors.

        Args:
            limit: how many rows to list.

        Returns:
            "" when there is no error, else one line per listed row.
        """
        if self.errors.empty:
            return ""
        lines = [f"{len(self.errors)} row(s) could not be used:"]
        for record in self.errors.head(limit).itertuples(index=False):
            lines.append(f"  line {record.line} (id {record.id}): {record.column} {record.value!r}: {record.reason}")
        if len(self.errors) > limit:
            lines.append(f"  ... and {len(self.errors) - limit} more")
        return "\n".join(lines)


def _read_frame(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise TableError(f"{path.name}: no such file")
    separator = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    max_columns = _max_columns()
    with path.open("rb") as handle:  # the header alone says whether the table is absurdly wide
        first_line = handle.readline(64 * (max_columns + 1) + 1024)
    if first_line.count(separator.encode()) + 1 > max_columns or (len(first_line) > 64 * (max_columns + 1)):
        raise TableError(f"{path.name}: more than {max_columns:,} columns (set COSNET_MAX_COLUMNS to allow more)")
    try:
        frame = pd.read_csv(path, sep=separator, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except Exception as error:
        reason = str(error).replace(str(path), path.name)  # the file, never the server's folders
        raise TableError(f"{path.name}: cannot be read as a table ({type(error).__name__}: {reason})") from error
    return frame


def _max_columns() -> int:
    """Most columns a table may have (``COSNET_MAX_COLUMNS``, default 1,000, as for uploads in the app).

    Raises:
        ValueError: the variable is set to something other than a positive number (the message names it).
    """
    from cosnet_core.settings import SETTINGS

    return max(1, int(SETTINGS.max_columns.get()))


def _require_columns(frame: pd.DataFrame, path: Path, **columns: str | None) -> None:
    for role, name in columns.items():
        if name is not None and name not in frame.columns:
            available = ", ".join(map(str, frame.columns[:30]))
            raise TableError(f"{path.name}: no column {name!r} (given as {role}); columns are: {available}")


# Largest |target| (after the transform) accepted. A model cannot learn from larger values (1e308 overflows any
# mean, loss or prediction into inf/NaN); a property that large needs another unit or its log10.
MAX_ABS_TARGET = 1e15


def target_too_large(value: float) -> str | None:
    """Why a (transformed) target cannot be learned from, or None when it can."""
    if abs(value) > MAX_ABS_TARGET:
        return (f"the target {value:g} is beyond ±{MAX_ABS_TARGET:g}: too large to learn from (check the unit, "
                "or store log10 of it)")
    return None


def parse_target(text: str, transform: TargetTransform = "none") -> float:
    """A target cell as a float.

    Args:
        text: the cell text.
        transform: "log10" takes the decimal logarithm (for conductivities in S/cm).

    Returns:
        The value.

    Raises:
        ValueError: empty, not a number (censored values such as ``<1E-10`` included), not finite, ≤ 0 for log10,
            or beyond ±``MAX_ABS_TARGET`` after the transform.
    """
    cleaned = text.strip().replace("\u2212", "-")
    if not cleaned:
        raise ValueError("the target is empty")
    if cleaned[0] in "<>≤≥~":
        raise ValueError("the target is a bound, not a measured value (censored rows are not used)")
    try:
        value = float(cleaned)
    except ValueError:
        raise ValueError("the target is not a number") from None
    if not math.isfinite(value):
        raise ValueError("the target is not finite")
    if transform == "log10":
        if value <= 0:
            raise ValueError("the target must be positive to take log10")
        value = math.log10(value)
    problem = target_too_large(value)
    if problem:
        raise ValueError(problem)
    return value


def parse_bounded_target(text: str, transform: TargetTransform = "none") -> tuple[float, str | None]:
    """A target cell that may be a bound: ``<1E-10`` gives (the bound, ``"<"``), a number (it, None).

    Args:
        text: the cell text.
        transform: as :func:`parse_target` (applied to the bound's number).

    Returns:
        ``(value, sign)`` with ``sign`` ``"<"`` or ``">"`` for a bound (``<=``/``≤`` count as ``<``), else None.

    Raises:
        ValueError: as :func:`parse_target`.
    """
    cleaned = text.strip()
    sign = None
    if cleaned[:1] in ("<", ">", "≤", "≥"):
        sign = "<" if cleaned[0] in "<≤" else ">"
        cleaned = cleaned[1:].lstrip("=").strip()
    return parse_target(cleaned, transform), sign


def structure_file_in(folder: Path, name: str) -> Path:
    """The file ``name`` (or ``name.cif``) inside ``folder``, refusing any path that leads out of it.

    The name comes from a table cell, so ``../../etc/x.cif``, an absolute path or a symbolic link pointing
    elsewhere must never reach a file outside the folder. Messages name the cell's value, never a server path.

    Args:
        folder: the structures folder.
        name: the cell's value.

    Returns:
        The resolved path of an existing file inside the folder.

    Raises:
        StructureError: the name leads outside the folder, or no such file is in it.
    """
    from cosnet_core.structure_io import StructureError

    root = folder.resolve()
    for candidate in (name, f"{name}.cif"):
        file = (root / candidate).resolve()
        if not file.is_relative_to(root) or file == root:
            raise StructureError(name, "is not a file name inside the structures folder (paths leading out of it "
                                       "are refused)")
        if file.is_file():
            return file
    raise StructureError(name, NO_SUCH_STRUCTURE_FILE)


def read_table(
    path: str | Path,
    *,
    formula_col: str,
    target_col: str | None = None,
    structure_col: str | None = None,
    structures_dir: str | Path | None = None,
    split_col: str | None = None,
    id_col: str | None = None,
    target_transform: TargetTransform = "none",
    embedding: ElementEmbedding | None = None,
    missing_structure: Literal["refuse", "composition"] = "refuse",
    bounds: bool = False,
    censored_col: str | None = None,
) -> TableReadResult:
    """Read a table into :class:`cosnet_core.data.Sample` rows.

    Args:
        path: CSV (or .tsv) file, UTF-8 (a BOM is accepted).
        formula_col: column with the formula.
        target_col: column with the target; when given, every row needs a numeric target.
        structure_col: column holding a structure file name inside ``structures_dir`` (empty cell = no structure).
        structures_dir: folder of CIF (or other pymatgen-readable) files.
        split_col: column with ``train``/``val``/``test`` labels (checked later by the split).
        id_col: column with row ids (default: ``row<line>``); ids must be unique.
        target_transform: "none" or "log10".
        embedding: when given, formulas with elements it lacks are refused here, per row.
        missing_structure: a structure file name that is not in the folder: ``"refuse"`` the row (training), or
            keep it without a structure (``"composition"``, for prediction) and list it in ``warnings``. Names
            leading out of the folder are refused either way.
        bounds: read target cells such as ``<1E-10`` as bounds (``Sample.censored``) instead of refusing the row.
        censored_col: a yes/no column (:func:`cosnet_core.ingest.parse_flag`): yes = the target is an upper bound;
            without ``bounds`` such a row is refused (a bound is not a measurement), with it the row is kept as a
            bound. A cell that is neither yes nor no refuses the row.

    Returns:
        The samples and the per-row errors.

    Raises:
        TableError: the file cannot be read, a named column is missing, or ``structure_col`` without a folder.
    """
    from cosnet_core.formula import FormulaError, parse_formula
    from cosnet_core.sample import Sample
    from cosnet_core.structure_io import StructureError, load_structure

    path = Path(path)
    frame = _read_frame(path)
    _require_columns(
        frame, path, formula_col=formula_col, target_col=target_col, structure_col=structure_col,
        split_col=split_col, id_col=id_col, censored_col=censored_col,
    )
    folder = Path(structures_dir) if structures_dir is not None else None
    if structure_col is not None and (folder is None or not folder.is_dir()):
        raise TableError(f"--structure-col {structure_col!r} needs an existing structures folder, got {structures_dir!r}")

    result = TableReadResult()
    errors: list[dict[str, object]] = []
    warnings: list[dict[str, object]] = []
    structures: dict[str, Structure | StructureError] = {}
    seen_ids: set[str] = set()
    for position, record in enumerate(frame.to_dict("records")):
        line = position + 2  # the header is line 1
        row_id = str(record[id_col]).strip() if id_col else f"row{line}"
        result.formulas[line] = str(record[formula_col])

        def fail(column: str, value: object, reason: str, line: int = line, row_id: str = row_id) -> None:
            errors.append({"line": line, "id": row_id, "column": column, "value": value, "reason": reason})

        if not row_id:
            fail(id_col or "id", "", "the id is empty")
            continue
        if row_id in seen_ids:
            fail(id_col or "id", row_id, "this id appears on an earlier line")
            continue
        formula = str(record[formula_col])
        try:
            composition = parse_formula(formula)
        except FormulaError as error:
            fail(formula_col, formula, error.reason)
            continue
        if embedding is not None:
            missing = [el.symbol for el in composition.elements if el.symbol not in embedding]
            if missing:
                fail(formula_col, formula, f"element(s) {', '.join(missing)} have no vector in {embedding.name}")
                continue
        target, censored = None, None
        if target_col is not None:
            try:
                if bounds:
                    target, censored = parse_bounded_target(str(record[target_col]), target_transform)
                else:
                    target = parse_target(str(record[target_col]), target_transform)
            except ValueError as error:
                fail(target_col, record[target_col], str(error))
                continue
        if target_col is not None and censored_col is not None:
            from cosnet_core.ingest import parse_flag

            flag = parse_flag(record[censored_col])
            if flag is None:
                fail(censored_col, record[censored_col], "the censored flag is not yes or no (yes/no, true/false, 1/0)")
                continue
            if flag and not bounds:
                fail(censored_col, record[censored_col],
                     "the target is flagged as an upper bound, not a measured value (censored rows are not used)")
                continue
            censored = censored or ("<" if flag else None)
        structure, structure_id = None, None
        if structure_col is not None and str(record[structure_col]).strip():
            assert folder is not None
            name = str(record[structure_col]).strip()
            if name not in structures:
                try:
                    structures[name] = load_structure(structure_file_in(folder, name))
                except StructureError as error:
                    structures[name] = error
            loaded = structures[name]
            if isinstance(loaded, StructureError) and missing_structure == "composition" and (
                    loaded.reason == NO_SUCH_STRUCTURE_FILE):
                warnings.append({"line": line, "id": row_id, "column": structure_col, "value": name,
                                 "reason": f"{NO_SUCH_STRUCTURE_FILE}: predicted from the composition alone"})
            elif isinstance(loaded, StructureError):
                fail(structure_col, name, loaded.reason)
                continue
            else:
                structure, structure_id = loaded, name
        split = str(record[split_col]).strip() if split_col is not None else None
        seen_ids.add(row_id)
        result.lines.append(line)
        result.samples.append(
            Sample(
                id=row_id,
                composition=composition,
                target=target,
                structure=structure,
                structure_id=structure_id,
                split=split,
                formula=formula,
                censored=censored,
            )
        )
    result.errors = pd.DataFrame(errors, columns=list(ERROR_COLUMNS))
    result.warnings = pd.DataFrame(warnings, columns=list(ERROR_COLUMNS))
    return result
