"""The one reader of a table of structures: an id column, a ``cif`` column and optional properties.

Both the structure library in the database (``db.structure_library.read_library_upload``) and
:meth:`cosnet_core.sources.local_library.StructureLibrary.add_table` read such tables (CSV, optionally gzipped, or
JSON; e.g. the shared ``mp_structure_library.csv.gz``) through :func:`read_structure_table`, which checks the
columns and every row before anything is parsed: an empty id, an id that appears twice, an empty ``cif`` cell.
The CIFs are not parsed here. Pure: no torch, no streamlit, no database.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from cosnet_core.errors import InputError

TABLE_SUFFIXES = (".csv", ".csv.gz", ".json", ".json.gz")
ID_COLUMNS = ("material_id", "id", "external_id", "name", "filename")
FORMULA_COLUMNS = ("reduced_formula", "formula_pretty", "formula")


class StructureTableError(InputError):
    """A table of structures, or one of its rows, that cannot be used (item: the file or ``"<file> row <n> (<id>)"``)."""


@dataclass
class StructureTableRow:
    """One row of a table of structures, checked but not parsed.

    Attributes:
        item: how messages name the row, ``"<file> row <n> (<id>)"`` (the header is not counted).
        external_id: the id cell.
        cif: the CIF text.
        formula: the formula cell ("" without a formula column).
        nsites: the ``nsites`` cell as a whole number, or None.
        properties: ``spacegroup_number``, ``spacegroup_symbol``, ``energy_above_hull``, ``is_stable``,
            ``theoretical`` (None where absent or unreadable).
    """

    item: str
    external_id: str
    cif: str
    formula: str = ""
    nsites: int | None = None
    properties: dict[str, Any] = field(default_factory=dict)


def cell_text(value: Any) -> str:
    """A cell as stripped text ("" for an empty cell or NaN)."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    return str(value).strip()


def cell_int(value: Any) -> int | None:
    """A cell as a whole number (``"225"``, ``225.0``), or None when empty or not a number."""
    text = cell_text(value)
    try:
        return int(float(text)) if text else None
    except ValueError:
        return None


def cell_float(value: Any) -> float | None:
    """A cell as a number, or None when empty or not a number."""
    text = cell_text(value)
    try:
        return float(text) if text else None
    except ValueError:
        return None


def cell_flag(value: Any) -> bool | None:
    """A yes/no cell (``true``/``1``/``yes``, ``false``/``0``/``no``, or a bool), None otherwise."""
    if isinstance(value, bool):
        return value
    return {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}.get(cell_text(value).lower())


def _frame(table: bytes | str | Path | pd.DataFrame, label: str) -> pd.DataFrame:
    if isinstance(table, pd.DataFrame):
        return table
    lower = (label if isinstance(table, bytes) else Path(table).name).lower()
    source = io.BytesIO(table) if isinstance(table, bytes) else Path(table)
    compression = "gzip" if lower.endswith(".gz") else None
    try:
        if lower.endswith((".json", ".json.gz")):
            return pd.read_json(source, compression=compression)
        return pd.read_csv(source, dtype=str, keep_default_na=False, compression=compression)
    except (ValueError, OSError, UnicodeDecodeError, EOFError) as error:
        reason = str(error).replace(str(source), label) if not isinstance(table, bytes) else str(error)
        raise StructureTableError(label, f"cannot be read as a table ({reason})") from error


def read_structure_table(table: bytes | str | Path | pd.DataFrame, label: str) -> list[StructureTableRow]:
    """Read and check a table of structures.

    Args:
        table: the file's bytes (its format then comes from ``label``'s ending), a path (``.csv``, ``.csv.gz``,
            ``.json``, ``.json.gz``) or a DataFrame.
        label: the file name used in messages (and, for bytes, to choose the format).

    Returns:
        One checked row per table row, in order.

    Raises:
        StructureTableError: unreadable, no id column (one of :data:`ID_COLUMNS`) or no ``cif`` column, no rows,
            or a row with an empty id, an id seen before or an empty ``cif`` (named by row number and id).
    """
    frame = _frame(table, label)
    id_column = next((column for column in ID_COLUMNS if column in frame.columns), None)
    if id_column is None or "cif" not in frame.columns:
        raise StructureTableError(
            label,
            f"needs an id column (one of {', '.join(ID_COLUMNS)}) and a 'cif' column; "
            f"it has {', '.join(map(str, frame.columns))}",
        )
    formula_column = next((column for column in FORMULA_COLUMNS if column in frame.columns), None)
    rows: list[StructureTableRow] = []
    seen: set[str] = set()
    for row_number, row in enumerate(frame.to_dict("records"), start=1):
        item = f"{label} row {row_number}"
        external_id = cell_text(row.get(id_column))
        if not external_id:
            raise StructureTableError(item, f"the {id_column!r} value is empty")
        item = f"{item} ({external_id})"
        if external_id in seen:
            raise StructureTableError(item, "this id appears twice in the table")
        seen.add(external_id)
        cif = cell_text(row.get("cif"))
        if not cif:
            raise StructureTableError(item, "the 'cif' value is empty")
        rows.append(StructureTableRow(
            item=item,
            external_id=external_id,
            cif=cif,
            formula=cell_text(row.get(formula_column)) if formula_column else "",
            nsites=cell_int(row.get("nsites")),
            properties={
                "spacegroup_number": cell_int(row.get("spacegroup_number")),
                "spacegroup_symbol": cell_text(row.get("spacegroup_symbol")) or None,
                "energy_above_hull": cell_float(row.get("energy_above_hull")),
                "is_stable": cell_flag(row.get("is_stable")),
                "theoretical": cell_flag(row.get("theoretical")),
            },
        ))
    if not rows:
        raise StructureTableError(label, "the table has no rows")
    return rows


__all__ = [
    "FORMULA_COLUMNS",
    "ID_COLUMNS",
    "TABLE_SUFFIXES",
    "StructureTableError",
    "StructureTableRow",
    "cell_flag",
    "cell_float",
    "cell_int",
    "cell_text",
    "read_structure_table",
]
