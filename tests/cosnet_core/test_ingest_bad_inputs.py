"""A corpus of bad uploads: each must fail (or be flagged row by row) with a message a scientist can act on.

Every file is made here, in memory, and kept tiny; limits are lowered to keep the "too large" cases small.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable

import pytest

from cosnet_core.ingest import (
    CleaningOptions,
    ColumnMapping,
    IngestError,
    IngestLimits,
    clean_table,
    list_sheets,
    read_cif_zip,
    read_table,
)
from tests.cosnet_core.ingest_files import workbook, zip_archive

LIMITS = IngestLimits()
SMALL = IngestLimits(
    max_upload_bytes=4096,
    max_rows=5,
    zip_max_members=3,
    zip_max_unpacked_bytes=2 * 1024 * 1024,
    zip_max_member_bytes=1024 * 1024,
)
FEW_ROWS = IngestLimits(max_rows=5)
GOOD_CSV = "formula,target\nLi2O,1e-3\nNaCl,2e-4\n"


def _zip_with_understated_size() -> bytes:
    """A member of 300 kB whose central-directory entry claims 100 bytes (a lying header)."""
    data = bytearray(zip_archive({"big.cif": b"0" * 300_000}))
    central = data.index(b"PK\x01\x02")
    struct.pack_into("<I", data, central + 24, 100)  # uncompressed size field
    return bytes(data)


def _corrupt_member_zip() -> bytes:
    data = bytearray(zip_archive({"a.cif": b"data_a\n" * 200}))
    data[30 + len("a.cif") + 2] ^= 0xFF  # inside the compressed stream (after the local header)
    return bytes(data)




TWO_SHEETS = workbook(
    {"raw": [["formula", "target"], ["Li2O", 1]], "clean": [["formula", "target"], ["NaCl", 2]]}
)


def _read(
    text: str | bytes, filename: str = "t.csv", limits: IngestLimits = LIMITS, **kwargs
) -> Callable[[], object]:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return lambda: read_table(data, filename, limits=limits, **kwargs)


def _clean(text: str, mapping: ColumnMapping, options: CleaningOptions | None = None) -> Callable[[], object]:
    return lambda: clean_table(read_table(text.encode(), "t.csv", limits=LIMITS), mapping, options)


FAILING = [
    pytest.param(_read(b""), "the file 't.csv' is empty", id="empty-file"),
    pytest.param(_read(b"  \r\n\n "), "is empty", id="whitespace-only"),
    pytest.param(_read(",,,\n,,\n"), "is empty (it has no cells with content)", id="only-delimiters"),
    pytest.param(_read("formula,target\n"), "has a header but no data rows", id="header-only"),
    pytest.param(_read("Li2O,1e-3\nNaCl,2e-4\n"), "seems to have no header", id="no-header"),
    pytest.param(_read(bytes(range(256)) * 4), "binary content (NUL bytes)", id="binary-with-nul"),
    pytest.param(_read(bytes(range(1, 32)) * 40), "binary content (", id="binary-control-characters"),
    pytest.param(_read(b"%PDF-1.7\n..."), "is a PDF, not a table", id="pdf-renamed-csv"),
    pytest.param(_read(zip_archive({"a.cif": b"x"})), "is a zip archive or an Excel workbook", id="zip-renamed-csv"),
    pytest.param(_read(GOOD_CSV, "t.json"), "unsupported extension", id="unsupported-extension"),
    pytest.param(
        _read("formula;target\nLi2O;1\n", delimiter=","),
        "read as a single column with the delimiter ','; its lines seem separated by ';'",
        id="wrong-delimiter",
    ),
    pytest.param(
        _read("formula,target\n" + "Li2O,1\n" * 6, limits=SMALL),
        "has more than 5 data rows, the row limit",
        id="too-many-rows",
    ),
    pytest.param(
        _read("formula,target\n" + "\n\nLi2O,1\n" * 6, limits=SMALL),
        "has more than 5 data rows, the row limit",
        id="too-many-rows-between-blank-lines",
    ),
    pytest.param(
        lambda: read_table(
            workbook({"s": [["formula", "target"]] + [["Li2O", 1], [None, None]] * 6}),
            "t.xlsx",
            limits=FEW_ROWS,
        ),
        "has more than 5 data rows",
        id="xlsx-too-many-rows",
    ),
    pytest.param(
        _read("formula,target\n" + "Li2O,1\n" * 700, limits=SMALL),
        "is 4.8 kB, larger than the upload limit of 4.0 kB",
        id="oversize-upload",
    ),
    pytest.param(
        lambda: read_table(TWO_SHEETS, "t.xlsx", limits=LIMITS),
        "the workbook has 2 sheets ('raw', 'clean'); choose one sheet",
        id="xlsx-two-sheets-unchosen",
    ),
    pytest.param(
        lambda: read_table(TWO_SHEETS, "t.xlsx", sheet="Sheet1", limits=LIMITS),
        "no sheet named 'Sheet1'; its sheets are 'raw', 'clean'",
        id="xlsx-unknown-sheet",
    ),
    pytest.param(
        lambda: read_table(TWO_SHEETS[:300], "t.xlsx", limits=LIMITS),
        "cannot be read as an Excel workbook (.xlsx)",
        id="xlsx-corrupt",
    ),
    pytest.param(
        lambda: list_sheets(b"not a workbook"), "cannot be read as an Excel workbook", id="xlsx-not-zip"
    ),
    pytest.param(
        lambda: read_table(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100, "old.xls", limits=LIMITS),
        "old Excel .xls workbooks cannot be read",
        id="xls-old-format",
    ),
    pytest.param(
        _clean(GOOD_CSV, ColumnMapping(formula="Formula", target="target")),
        "the formula column 'Formula' is not in the file; its columns are: 'formula', 'target'",
        id="missing-formula-column",
    ),
    pytest.param(
        _clean(GOOD_CSV, ColumnMapping(formula="formula", target="conductivity")),
        "the target column 'conductivity' is not in the file",
        id="missing-target-column",
    ),
    pytest.param(
        _clean(GOOD_CSV, ColumnMapping(target="target")), "choose the formula column", id="no-formula"
    ),
    pytest.param(
        _clean(GOOD_CSV, ColumnMapping(formula="formula", target="formula")),
        "the column 'formula' is mapped twice",
        id="column-mapped-twice",
    ),
    pytest.param(
        _clean(
            "formula,target,family\nLi2O,high,oxide\nNaCl,low,halide\n", ColumnMapping("formula", "family")
        ),
        "no row of the target column 'family' holds a number (first values: 'oxide', 'halide')",
        id="target-all-text",
    ),
    pytest.param(
        _clean("name,target\nfoo,1\nbar,2\n", ColumnMapping("name", "target")),
        "no row of the formula column 'name' holds a formula that can be read",
        id="no-parseable-formula",
    ),
    pytest.param(
        _clean(GOOD_CSV, ColumnMapping("formula", "target"), CleaningOptions(temperature_window=(15, 35))),
        "a temperature window needs a temperature column",
        id="window-without-temperature",
    ),
    pytest.param(
        _clean(GOOD_CSV, ColumnMapping("formula", "target"), CleaningOptions(duplicates="most_recent")),
        "'most recent' needs a year or a reference column",
        id="most-recent-without-year",
    ),
    pytest.param(
        lambda: read_cif_zip(zip_archive({f"{i}.cif": b"x" for i in range(4)}), SMALL),
        "the zip has 4 members, more than the limit of 3",
        id="zip-too-many-members",
    ),
    pytest.param(
        lambda: read_cif_zip(zip_archive({f"{i}.cif": b"\0" * 900_000 for i in range(3)}), SMALL),
        "the zip unpacks to more than 2.0 MB",
        id="zip-bomb-total",
    ),
    pytest.param(
        lambda: read_cif_zip(zip_archive({"big.cif": b"\0" * 1_600_000}), SMALL),
        "the zip member 'big.cif' unpacks to 1.5 MB, more than the per-file limit",
        id="zip-member-too-large",
    ),
    pytest.param(
        lambda: read_cif_zip(_zip_with_understated_size(), SMALL),
        "the zip member 'big.cif' is damaged",
        id="zip-header-understates-size",
    ),
    pytest.param(
        lambda: read_cif_zip(zip_archive({"ok.cif": b"x", "../evil.cif": b"x"}), LIMITS),
        "the zip member '../evil.cif' escapes the archive's folder",
        id="zip-path-traversal",
    ),
    pytest.param(
        lambda: read_cif_zip(zip_archive({"cifs/../../evil.cif": b"x"}), LIMITS),
        "'cifs/../../evil.cif' escapes the archive's folder",
        id="zip-nested-traversal",
    ),
    pytest.param(
        lambda: read_cif_zip(zip_archive({"/etc/evil.cif": b"x"}), LIMITS),
        "the zip member '/etc/evil.cif' is an absolute path",
        id="zip-absolute-path",
    ),
    pytest.param(
        lambda: read_cif_zip(zip_archive({"C:\\evil.cif": b"x"}), LIMITS),
        "is an absolute path",
        id="zip-windows-absolute-path",
    ),
    pytest.param(
        lambda: read_cif_zip(b"PK\x03\x04garbage", LIMITS), "not a valid zip archive", id="zip-corrupt"
    ),
    pytest.param(lambda: read_cif_zip(b"", LIMITS), "the zip file is empty", id="zip-empty"),
    pytest.param(
        lambda: read_cif_zip(_corrupt_member_zip(), LIMITS),
        "the zip member 'a.cif' is damaged",
        id="zip-bad-member",
    ),
    pytest.param(
        lambda: read_cif_zip(b"\0" * 5000, SMALL),
        "the zip file is 4.9 kB, larger than the upload limit",
        id="zip-oversize",
    ),
]


@pytest.mark.parametrize(("action", "phrase"), FAILING)
def test_bad_input_is_refused_with_a_clear_message(action: Callable[[], object], phrase: str) -> None:
    with pytest.raises(IngestError) as caught:
        action()
    assert phrase in str(caught.value)


def test_corpus_is_large_enough() -> None:
    assert len(FAILING) >= 20


def test_limit_from_a_bad_environment_variable_names_it() -> None:
    with pytest.raises(ValueError, match="COSNET_MAX_ROWS='many' is not a number"):
        IngestLimits.from_env({"COSNET_MAX_ROWS": "many"})
    with pytest.raises(ValueError, match="COSNET_MAX_UPLOAD_MB='-1' must be positive"):
        IngestLimits.from_env({"COSNET_MAX_UPLOAD_MB": "-1"})


def test_limits_follow_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(os.environ, "COSNET_MAX_ROWS", "1")
    with pytest.raises(IngestError, match="more than 1 data rows"):
        read_table(GOOD_CSV.encode(), "t.csv")


# --- inputs that are read, with a warning -------------------------------------------------------------------------


def test_utf16_file_is_read_with_a_warning() -> None:
    raw = read_table("formula,target\nLi2O,1e-3\n".encode("utf-16"), "t.csv", limits=LIMITS)
    assert raw.frame.loc[2, "formula"] == "Li2O" and raw.encoding == "utf-16"
    assert any("encoded as UTF-16" in warning for warning in raw.warnings)


def test_latin1_file_is_read_as_cp1252_with_a_warning() -> None:
    raw = read_table("formula,target,T (°C)\nLi2O,1e-3,25\n".encode("latin-1"), "t.csv", limits=LIMITS)
    assert raw.columns == ["formula", "target", "T (°C)"] and raw.encoding == "cp1252"
    assert any(
        "is not valid UTF-8 (first bad byte at position 18); it was read as cp1252" in w for w in raw.warnings
    )


def test_xlsx_sheet_choice_reads_the_chosen_sheet() -> None:
    assert list_sheets(TWO_SHEETS) == ["raw", "clean"]
    assert read_table(TWO_SHEETS, "t.xlsx", sheet="clean", limits=LIMITS).frame.loc[2, "formula"] == "NaCl"


# --- inputs flagged row by row (row numbers as in a spreadsheet: header = row 1) ---------------------------------

ROW_CASES = [
    pytest.param(
        "formula,target\nLi2O,1\nXx2O,2\n", {}, 3, "rejected", "formula 'Xx2O': ", id="unknown-element"
    ),
    pytest.param(
        "formula,target\nLi2O,1\nna5,2\n", {}, 3, "rejected", "formula 'na5': cannot be parsed", id="na5"
    ),
    pytest.param(
        "formula,target\nLi2O,1\n,2\n", {}, 3, "rejected", "the formula is empty", id="empty-formula"
    ),
    pytest.param("formula,target\nLi2O,1\nLi0O2,2\n", {}, 3, "rejected", "zero amount", id="zero-amount"),
    pytest.param(
        "formula,target\nLi2O,1\nLi-2O,2\n", {}, 3, "rejected", "formula 'Li-2O'", id="negative-amount"
    ),
    pytest.param(
        "formula,target\nLi2O,1\nNaCl,n/a\n",
        {},
        3,
        "rejected",
        "the target 'n/a' is not a number",
        id="text-target",
    ),
    pytest.param(
        "formula,target\nLi2O,1\nNaCl,\n", {}, 3, "rejected", "the target is empty", id="empty-target"
    ),
    pytest.param(
        "formula,target\nLi2O,1\nNaCl,inf\n",
        {},
        3,
        "rejected",
        "the target 'inf' is not a number",
        id="inf-target",
    ),
    pytest.param(
        "formula,target\nLi2O,1\nNaCl,1e999\n",
        {},
        3,
        "rejected",
        "'1e999' is not a finite number",
        id="overflowing-target",
    ),
    pytest.param(
        "formula,target\nLi2O,1\nNaCl,-1e-5\n",
        {"log10": True},
        3,
        "rejected",
        "the target '-1e-5' is not positive, so log10 is undefined",
        id="negative-target-log10",
    ),
    pytest.param(
        "formula,target\nLi2O,1\n\nNaCl,<1E-10\n",
        {},
        4,
        "censored",
        "censored value '<1E-10'",
        id="censored-after-blank-line",
    ),
    pytest.param(
        "formula,target\nLi2O,1\nNaCl,≥ 5\n", {}, 3, "censored", "censored value '≥ 5'", id="censored-geq"
    ),
    pytest.param(
        "formula,target\nLi2O,1\nna5,<1e-8\n",
        {},
        3,
        "rejected",
        "formula 'na5'; censored",
        id="bad-formula-and-censored",
    ),
]


@pytest.mark.parametrize(("text", "options", "row", "status", "phrase"), ROW_CASES)
def test_bad_row_is_flagged_with_row_number_and_reason(
    text: str, options: dict[str, object], row: int, status: str, phrase: str
) -> None:
    raw = read_table(text.encode(), "t.csv", limits=LIMITS)
    result = clean_table(raw, ColumnMapping("formula", "target"), CleaningOptions(**options))
    assert list(result.rows.index) == list(raw.frame.index)  # nothing dropped
    assert result.rows.loc[row, "status"] == status
    assert phrase.replace("; censored", "") in result.rows.loc[row, "reason"]
    if "; censored" in phrase:
        assert "censored value '<1e-8'" in result.rows.loc[row, "reason"]
    assert result.rows.loc[2, "status"] == "kept"
    assert row in set(result.rejected.index)
    assert f"\n{row}," in result.rejected_csv().decode("utf-8-sig")
