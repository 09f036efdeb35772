"""Reading an uploaded experimental table (CSV, TSV, text or .xlsx) into a :class:`RawTable` of strings.

The first step of :mod:`cosnet_core.ingest`: ``list_sheets`` (for a workbook) and ``read_table`` (the encoding,
delimiter, header and spreadsheet row numbers; fully blank lines skipped and counted), within the upload limits
of :class:`cosnet_core.upload_limits.IngestLimits`. Bad files raise :class:`~cosnet_core.upload_limits.IngestError`
with a message meant for a scientist. Pure: no torch, no streamlit, no database.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

import pandas as pd

from cosnet_core.upload_limits import (
    IngestError,
    IngestLimits,
    check_upload_size,
)


@dataclass
class RawTable:
    """A table as read from the file, every cell a string (empty string for an empty cell).

    Attributes:
        frame: the cells; the index (named ``row``) holds spreadsheet row numbers (see the module docstring).
        filename: the uploaded file's name.
        has_header: whether the first row was read as column names.
        sheet: the worksheet read (``.xlsx`` only).
        encoding: the text encoding used (``"xlsx"`` for workbooks).
        delimiter: the column separator (text files only).
        warnings: things the reader fixed or guessed, to show to the user.
    """

    frame: pd.DataFrame
    filename: str
    has_header: bool = True
    sheet: str | None = None
    encoding: str = "utf-8"
    delimiter: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def columns(self) -> list[str]:
        """The column names (``column 1``, ``column 2``… when the file has no header)."""
        return [str(c) for c in self.frame.columns]

    @property
    def n_rows(self) -> int:
        """Number of data rows."""
        return len(self.frame)


_TEXT_SUFFIXES = (".csv", ".tsv", ".tab", ".txt")
_CANDIDATE_DELIMITERS = ",;\t|"
#: A plain decimal number (the cleaning step reads targets with it).
NUMBER_PATTERN = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def _suffix(filename: str) -> str:
    name = filename.lower().strip()
    return name[name.rfind(".") :] if "." in name else ""


def list_sheets(data: bytes) -> list[str]:
    """The worksheet names of an ``.xlsx`` workbook, in order.

    Args:
        data: the workbook bytes.

    Returns:
        The sheet names.

    Raises:
        IngestError: the bytes are not a readable ``.xlsx`` workbook.
    """
    workbook = _open_workbook(data)
    try:
        return list(workbook.sheetnames)
    finally:
        workbook.close()


def _open_workbook(data: bytes):  # -> openpyxl.Workbook
    import openpyxl

    if data[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":
        raise IngestError(
            "this is an old Excel .xls workbook, which cannot be read; "
            "save it as .xlsx or CSV and upload again"
        )
    try:
        return openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as error:  # openpyxl raises zipfile, KeyError, XML and its own errors on broken files
        raise IngestError(
            f"the file cannot be read as an Excel workbook (.xlsx): it is damaged or not a workbook ({error})"
        ) from error


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def _read_xlsx_rows(data: bytes, sheet: str | None, limits: IngestLimits) -> tuple[list[list[str]], str]:
    workbook = _open_workbook(data)
    try:
        names = list(workbook.sheetnames)
        if sheet is None:
            if len(names) > 1:
                raise IngestError(
                    f"the workbook has {len(names)} sheets ({', '.join(repr(n) for n in names)}); "
                    "choose one sheet"
                )
            sheet = names[0]
        if sheet not in names:
            raise IngestError(
                f"the workbook has no sheet named {sheet!r}; "
                f"its sheets are {', '.join(repr(n) for n in names)}"
            )
        rows: list[list[str]] = []
        n_filled = 0
        try:
            for values in workbook[sheet].iter_rows(values_only=True):
                rows.append([_cell_text(v) for v in values])
                n_filled += bool("".join(rows[-1]).strip())
                if n_filled > limits.max_rows + 1:  # header + one row over the limit: enough to refuse
                    break
        except IngestError:
            raise
        except Exception as error:
            raise IngestError(
                f"the sheet {sheet!r} of the workbook is damaged and cannot be read ({error})"
            ) from error
        return rows, sheet
    finally:
        workbook.close()


def _decode(data: bytes) -> tuple[str, str, list[str]]:
    """Bytes → text, with the encoding used and warnings; refuses binary content."""
    warnings: list[str] = []
    if data.startswith(b"PK\x03\x04"):
        raise IngestError(
            "the file is a zip archive or an Excel workbook, not a text table; "
            "upload workbooks with the .xlsx extension and CIF archives in the structures field"
        )
    if data.startswith(b"%PDF"):
        raise IngestError("the file is a PDF, not a table; export the table as CSV or .xlsx first")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError as error:
            raise IngestError(
                f"the file claims to be UTF-16 but cannot be decoded ({error.reason})"
            ) from error
        warnings.append("the file is encoded as UTF-16; it was read as such (UTF-8 is preferred)")
        return text, "utf-16", warnings
    if b"\x00" in data[:65536]:
        raise IngestError(
            "the file contains binary content (NUL bytes), not text: it does not look like a CSV/TSV table"
        )
    try:
        return (
            data.decode("utf-8-sig"),
            "utf-8-sig" if data.startswith(b"\xef\xbb\xbf") else "utf-8",
            warnings,
        )
    except UnicodeDecodeError as error:
        position = error.start
    for encoding in ("cp1252", "latin-1"):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        warnings.append(
            f"the file is not valid UTF-8 (first bad byte at position {position}); "
            f"it was read as {encoding} — "
            "check accented characters and symbols such as ° or µ in the preview"
        )
        return text, encoding, warnings
    raise AssertionError("latin-1 decodes every byte")  # pragma: no cover


def _refuse_binary_text(text: str) -> None:
    sample = text[:65536]
    if not sample:
        return
    control = sum(1 for ch in sample if unicodedata.category(ch) == "Cc" and ch not in "\t\r\n\f\v")
    if control / len(sample) > 0.01:
        raise IngestError(
            f"the file contains binary content ({control} control characters in its first {len(sample)}), "
            "not text: it does not look like a CSV/TSV table"
        )


def _sniff_delimiter(text: str, suffix: str) -> str:
    if suffix in (".tsv", ".tab"):
        return "\t"
    sample = "\n".join(text[:65536].splitlines()[:50])
    try:
        return csv.Sniffer().sniff(sample, delimiters=_CANDIDATE_DELIMITERS).delimiter
    except csv.Error:
        first_line = sample.split("\n", 1)[0]
        counts = {d: first_line.count(d) for d in _CANDIDATE_DELIMITERS}
        best = max(counts, key=lambda d: counts[d])
        return best if counts[best] > 0 else ","


def _read_text_rows(text: str, delimiter: str, limits: IngestLimits) -> list[list[str]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows: list[list[str]] = []
    n_filled = 0
    try:
        for record in reader:
            rows.append(record)
            n_filled += bool("".join(record).strip())
            if n_filled > limits.max_rows + 1:  # header + one row over the limit: enough to refuse
                break
    except csv.Error as error:
        raise IngestError(
            f"the file cannot be read as a table near line {reader.line_num}: {error}"
        ) from error
    return rows


def _looks_like_data(cells: Sequence[str]) -> bool:
    """Whether a first row holds data rather than column names.

    Heuristic: column names are words, so a first row in which some cell is a plain number (``2``,
    ``1.3E-10``; ``<1E-10`` counts too) is taken as data. A header such as ``2019`` is therefore refused; the
    user can then tick "the file has no header" or rename that column.
    """
    for cell in cells:
        text = cell.strip().lstrip("<>≤≥=").strip()
        if text and NUMBER_PATTERN.match(text):
            return True
    return False


def _header_names(cells: Sequence[str], width: int, warnings: list[str]) -> list[str]:
    names: list[str] = []
    seen: Counter[str] = Counter()
    renamed: list[str] = []
    for index in range(width):
        name = cells[index].replace("\ufeff", "").strip() if index < len(cells) else ""
        if not name:
            name = f"column {index + 1}"
        seen[name] += 1
        if seen[name] > 1:
            renamed.append(name)
            name = f"{name} ({seen[name]})"
        names.append(name)
    if renamed:
        warnings.append(f"repeated column names were numbered: {', '.join(sorted(set(renamed)))}")
    return names


def _refuse_wide_header(text: str, filename: str, max_columns: int) -> None:
    """Refuse a table whose first line already holds more than ``max_columns`` cells for any usual delimiter."""
    first_line = text.lstrip("\r\n").split("\n", 1)[0]
    cells = 1 + max(first_line.count(d) for d in _CANDIDATE_DELIMITERS)
    if cells > max_columns:
        raise IngestError(
            f"the file {filename!r} has about {cells:,} columns in its first line, more than the limit of "
            f"{max_columns:,} (an administrator can raise it with COSNET_MAX_COLUMNS)"
        )


def read_table(
    data: bytes,
    filename: str,
    *,
    sheet: str | None = None,
    has_header: bool = True,
    delimiter: str | None = None,
    limits: IngestLimits | None = None,
) -> RawTable:
    """Read an uploaded CSV, TSV or XLSX file into a table of strings.

    Text files may start with a UTF-8 BOM; files that are not valid UTF-8 are read as cp1252 (or latin-1) with
    a warning; UTF-16 files with a BOM are read with a warning. The delimiter is ``tab`` for ``.tsv`` and
    sniffed among ``, ; tab |`` otherwise.

    Args:
        data: the file's bytes.
        filename: its name (the extension chooses the reader).
        sheet: the worksheet of an ``.xlsx`` workbook (required when it has several; see :func:`list_sheets`).
        has_header: whether the first row holds column names; without a header the columns are named
            ``column 1``, ``column 2``, ….
        delimiter: force a column separator for text files instead of sniffing it.
        limits: size and row limits (from the environment when omitted).

    Returns:
        The raw table with spreadsheet row numbers as index.

    Raises:
        IngestError: empty file, too large, binary content, no header, header only, too many rows, a damaged
            workbook, an unknown extension or a delimiter giving a single column.
    """
    limits = IngestLimits.from_env() if limits is None else limits
    check_upload_size(data, f"the file {filename!r}", limits)
    if not data or not data.strip():
        raise IngestError(f"the file {filename!r} is empty")
    suffix = _suffix(filename)
    warnings: list[str] = []
    used_sheet: str | None = None
    encoding = "xlsx"
    if suffix in (".xlsx", ".xlsm"):
        rows, used_sheet = _read_xlsx_rows(data, sheet, limits)
    elif suffix == ".xls":
        raise IngestError(
            "old Excel .xls workbooks cannot be read; save the sheet as .xlsx or CSV and upload again"
        )
    elif suffix in _TEXT_SUFFIXES or suffix == "":
        text, encoding, warnings = _decode(data)
        _refuse_binary_text(text)
        if not text.strip():
            raise IngestError(f"the file {filename!r} is empty")
        _refuse_wide_header(text, filename, limits.max_columns)  # before any parsing: width costs memory
        if delimiter is None:
            delimiter = _sniff_delimiter(text, suffix)
        rows = _read_text_rows(text, delimiter, limits)
    else:
        raise IngestError(
            f"the file {filename!r} has an unsupported extension; upload a .csv, .tsv or .xlsx file"
        )

    numbered = [(number, row) for number, row in enumerate(rows, start=1) if "".join(row).strip()]
    n_blank = len(rows) - len(numbered)
    if not numbered:
        raise IngestError(f"the file {filename!r} is empty (it has no cells with content)")
    if has_header:
        header = numbered[0][1]
        data_rows = numbered[1:]
        if _looks_like_data(header):
            raise IngestError(
                f"the file {filename!r} seems to have no header: its first row ({', '.join(header[:4])}…) "
                "holds numbers, not column names; tick 'the file has no header' or add a header row"
            )
        if not data_rows:
            raise IngestError(f"the file {filename!r} has a header but no data rows")
    else:
        header = []
        data_rows = numbered
    if len(data_rows) > limits.max_rows:
        raise IngestError(
            f"the file {filename!r} has more than {limits.max_rows:,} data rows, the row limit "
            "(an administrator can raise it with COSNET_MAX_ROWS)"
        )
    width = max(max(len(row) for _, row in data_rows), len(header))
    if width > limits.max_columns:
        raise IngestError(
            f"the file {filename!r} has {width:,} columns, more than the limit of {limits.max_columns:,} "
            "(an administrator can raise it with COSNET_MAX_COLUMNS)"
        )
    if has_header:
        ragged = [
            number
            for number, row in data_rows
            if len(row) > len(header) and any(c.strip() for c in row[len(header) :])
        ]
        if ragged:
            warnings.append(
                f"{len(ragged)} row(s) have more cells than the header (first: row {ragged[0]}); "
                "the extra cells were put in unnamed columns"
            )
    names = (
        _header_names(header, width, warnings) if has_header else [f"column {i + 1}" for i in range(width)]
    )
    if len(names) == 1 and delimiter is not None:
        first_cell = numbered[0][1][0]
        others = [d for d in _CANDIDATE_DELIMITERS if d != delimiter and d in first_cell]
        if others:
            shown = "tab" if others[0] == "\t" else repr(others[0])
            raise IngestError(
                f"the file {filename!r} read as a single column with the delimiter "
                f"{'tab' if delimiter == chr(9) else repr(delimiter)}; "
                f"its lines seem separated by {shown} instead"
            )
    frame = pd.DataFrame(
        [row + [""] * (width - len(row)) for _, row in data_rows],
        columns=names,
        index=pd.Index([number for number, _ in data_rows], name="row"),
        dtype=object,
    )
    if n_blank:
        warnings.append(f"{n_blank} blank line(s) were skipped (row numbers still count them)")
    return RawTable(
        frame=frame,
        filename=filename,
        has_header=has_header,
        sheet=used_sheet,
        encoding=encoding,
        delimiter=delimiter if encoding != "xlsx" else None,
        warnings=warnings,
    )
