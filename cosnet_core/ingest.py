"""Turn an uploaded experimental table into clean rows, without losing a row silently.

The Datasets page calls these functions step by step::

    limits = IngestLimits.from_env()
    sheets = list_sheets(data)                        # only for .xlsx, to let the user choose
    raw = read_table(data, "my.csv", limits=limits)  # read → preview (raw.frame)
    mapping = suggest_mapping(raw.columns)            # map (the user edits it)
    cifs = read_cif_zip(zip_bytes, limits)            # optional zip of CIF files
    result = clean_table(raw, mapping, CleaningOptions(log10=True), cifs=cifs)   # clean
    result.summary, result.kept, result.rejected, result.rejected_csv()          # result

Every row of the file appears exactly once in ``result.rows`` with a ``status``:

* ``kept``: used as a sample;
* ``rejected``: the formula or the target could not be used (``reason`` says why);
* ``censored``: the target is a bound such as ``<1E-10`` (excluded unless asked to include it at the bound);
* ``filtered``: outside the temperature window (or without a temperature while a window is set);
* ``merged``: a duplicate composition whose value went into another row (``reason`` names that row).

Row numbers are the numbers a scientist sees in a spreadsheet: when the file has a header, the header is row 1
and the first data row is row 2; without a header the first data row is row 1. Fully blank lines are skipped
(their count is given in the warnings) but do not shift the numbering. A quoted CSV cell that spans several
lines is one row, as in a spreadsheet program.

Bad files raise :class:`IngestError` with a message meant for a scientist. Limits (upload size, rows, zip
sizes) come from :class:`IngestLimits`, which reads ``COSNET_MAX_UPLOAD_MB`` and ``COSNET_MAX_ROWS`` (and, for
zips, ``COSNET_MAX_ZIP_MEMBERS``, ``COSNET_MAX_ZIP_UNPACKED_MB``, ``COSNET_MAX_ZIP_MEMBER_MB``) from the
environment.

The steps live in modules named after them; this module re-exports their names so that a caller needs one
import:

* :mod:`cosnet_core.upload_limits`: :class:`IngestLimits`, :class:`IngestError`;
* :mod:`cosnet_core.table_reading`: ``list_sheets``, ``read_table``, :class:`RawTable`;
* :mod:`cosnet_core.column_mapping`: :class:`ColumnMapping`, ``suggest_mapping``;
* :mod:`cosnet_core.cleaning`: :class:`CleaningOptions`, ``clean_table``, :class:`IngestResult`, ``parse_flag``;
* :mod:`cosnet_core.cif_zip`: ``read_cif_zip``, the one reader of a zip of CIFs.

All of them are pure: they import neither torch, nor streamlit, nor the database.
"""

from __future__ import annotations

from cosnet_core.cif_zip import (
    CIF_SUFFIXES,
    CifZipError,
    read_cif_zip,
)
from cosnet_core.cleaning import (
    ROW_COLUMNS,
    STATUS_CENSORED,
    STATUS_FILTERED,
    STATUS_KEPT,
    STATUS_MERGED,
    STATUS_REJECTED,
    CensoredPolicy,
    CleaningOptions,
    DuplicatePolicy,
    IngestResult,
    IngestSummary,
    KelvinPolicy,
    MissingTemperaturePolicy,
    clean_table,
    parse_flag,
)
from cosnet_core.column_mapping import (
    ColumnMapping,
    suggest_mapping,
)
from cosnet_core.table_reading import (
    NUMBER_PATTERN,
    RawTable,
    list_sheets,
    read_table,
)
from cosnet_core.upload_limits import (
    MB,
    IngestError,
    IngestLimits,
    check_upload_size,
    megabytes,
)

__all__ = [
    "CIF_SUFFIXES",
    "CensoredPolicy",
    "CifZipError",
    "CleaningOptions",
    "ColumnMapping",
    "DuplicatePolicy",
    "IngestError",
    "IngestLimits",
    "IngestResult",
    "IngestSummary",
    "KelvinPolicy",
    "MB",
    "MissingTemperaturePolicy",
    "NUMBER_PATTERN",
    "ROW_COLUMNS",
    "RawTable",
    "STATUS_CENSORED",
    "STATUS_FILTERED",
    "STATUS_KEPT",
    "STATUS_MERGED",
    "STATUS_REJECTED",
    "check_upload_size",
    "clean_table",
    "list_sheets",
    "megabytes",
    "parse_flag",
    "read_cif_zip",
    "read_table",
    "suggest_mapping",
]
