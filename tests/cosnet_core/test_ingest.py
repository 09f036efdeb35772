"""Reading, mapping and cleaning uploaded tables (cosnet_core.ingest), on small made-up tables and the real files."""

from __future__ import annotations

import ast
import io
import math
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from cosnet_core.ingest import (
    CleaningOptions,
    ColumnMapping,
    IngestLimits,
    IngestResult,
    list_sheets,
    read_cif_zip,
    read_table,
    suggest_mapping,
)
from cosnet_core.ingest import clean_table as _clean_table
from tests.cosnet_core.ingest_files import workbook, zip_archive

LIMITS = IngestLimits()


def clean_table(raw, mapping, options=None, **kwargs) -> IngestResult:
    """clean_table, checking on every call that each input row comes out exactly once."""
    result = _clean_table(raw, mapping, options, **kwargs)
    assert list(result.rows.index) == list(raw.frame.index)
    assert result.rows["row"].tolist() == list(raw.frame.index)
    summary = result.summary
    assert summary.n_rows == raw.n_rows
    counted = summary.n_kept + summary.n_rejected + summary.n_censored + summary.n_filtered + summary.n_merged
    assert counted == raw.n_rows
    unused = result.rows["status"].isin(["rejected", "censored", "filtered", "merged"])
    assert (result.rows.loc[unused, "reason"].str.len() > 0).all(), "every row not kept must say why"
    return result


def table(text: str, filename: str = "t.csv", **kwargs):
    return read_table(text.encode("utf-8"), filename, limits=LIMITS, **kwargs)


# ---------------------------------------------------------------------------------------------------------
# The module stays pure


def test_ingest_imports_no_ui_or_database() -> None:
    source = Path(__file__).resolve().parents[2] / "cosnet_core" / "ingest.py"
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert imported.isdisjoint({"streamlit", "sqlalchemy", "db", "pages", "ui"})
    assert "cosnet_core" in imported  # formulas go through cosnet_core.composition.parse_formula


# ---------------------------------------------------------------------------------------------------------
# Reading


def test_read_csv_numbers_rows_as_a_spreadsheet_does() -> None:
    raw = table("formula,target\nLi2O,1\n\nNaCl,2\n")
    assert raw.columns == ["formula", "target"]
    assert list(raw.frame.index) == [2, 4]  # header is row 1; the blank line 3 still counts
    assert raw.frame.loc[4, "formula"] == "NaCl"
    assert any("1 blank line" in w for w in raw.warnings)


def test_read_without_header_names_columns_from_one() -> None:
    raw = table("Li2O,1e-3\nNaCl,2\n", has_header=False)
    assert raw.columns == ["column 1", "column 2"]
    assert list(raw.frame.index) == [1, 2]


def test_read_strips_bom_and_sniffs_semicolons_and_tabs() -> None:
    raw = read_table("\ufeffformula;target\nLi2O;1,5\n".encode(), "t.csv", limits=LIMITS)
    assert raw.columns == ["formula", "target"] and raw.delimiter == ";" and raw.encoding == "utf-8-sig"
    raw = table("formula\ttarget\nLi2O\t1\n", "t.tsv")
    assert raw.delimiter == "\t" and raw.frame.loc[2, "target"] == "1"


def test_read_duplicate_and_empty_header_names() -> None:
    raw = table("formula,x,x,,target\nLi2O,1,2,3,4\n")
    assert raw.columns == ["formula", "x", "x (2)", "column 4", "target"]
    assert any("repeated column names" in w for w in raw.warnings)


def test_read_ragged_rows_keep_extra_cells() -> None:
    raw = table("formula,target\nLi2O,1,surplus\n")
    assert raw.columns == ["formula", "target", "column 3"]
    assert raw.frame.loc[2, "column 3"] == "surplus"
    assert any("more cells than the header" in w for w in raw.warnings)




def test_read_xlsx_chosen_sheet() -> None:
    data = workbook(
        {
            "notes": [["just text"]],
            "data": [["formula", "gap expt"], ["GaAs", 1.42], ["Si", 1.12], [None, None], ["ZnO", 3]],
        }
    )
    assert list_sheets(data) == ["notes", "data"]
    raw = read_table(data, "gaps.xlsx", sheet="data", limits=LIMITS)
    assert raw.sheet == "data" and raw.columns == ["formula", "gap expt"]
    assert list(raw.frame.index) == [2, 3, 5]
    result = clean_table(raw, suggest_mapping(raw.columns))
    assert result.rows["target"].tolist() == [1.42, 1.12, 3.0]


def test_read_xlsx_single_sheet_needs_no_choice() -> None:
    data = workbook({"only": [["composition", "target"], ["Li2O", "<1e-10"], ["NaCl", 0.5]]})
    raw = read_table(data, "one.XLSX", limits=LIMITS)
    assert raw.sheet == "only" and raw.frame["target"].tolist() == ["<1e-10", "0.5"]


def test_limits_from_environment() -> None:
    limits = IngestLimits.from_env({"COSNET_MAX_UPLOAD_MB": "2", "COSNET_MAX_ROWS": "10"})
    assert limits.max_upload_bytes == 2 * 1024 * 1024 and limits.max_rows == 10
    assert limits.zip_max_members == 5000 and limits.zip_max_unpacked_bytes == 500 * 1024 * 1024
    assert IngestLimits.from_env({}) == IngestLimits()
    assert IngestLimits().max_upload_bytes == 50 * 1024 * 1024 and IngestLimits().max_rows == 200_000


# ---------------------------------------------------------------------------------------------------------
# Mapping


@pytest.mark.parametrize(
    ("columns", "expected"),
    [
        (
            ["ID", "composition", "source", "temperature", "target", "log_target"],
            {
                "formula": "composition",
                "target": "target",
                "id": "ID",
                "reference": "source",
                "temperature": "temperature",
            },
        ),
        (
            ["ID", "Reduced Composition", "Ionic conductivity (S cm-1)", "IC (Total)", "DOI"],
            {
                "formula": "Reduced Composition",
                "target": "Ionic conductivity (S cm-1)",
                "id": "ID",
                "reference": "DOI",
            },
        ),
        (["composition", "gap expt"], {"formula": "composition", "target": "gap expt"}),
        (
            ["likely_mpid", "expt_gap", "formula"],
            {"formula": "formula", "target": "expt_gap", "mp_id": "likely_mpid"},
        ),
        (
            ["Formula", "Target", "cif_file", "Split", "Year"],
            {
                "formula": "Formula",
                "target": "Target",
                "structure_file": "cif_file",
                "split": "Split",
                "year": "Year",
            },
        ),
    ],
)
def test_suggest_mapping(columns: list[str], expected: dict[str, str]) -> None:
    mapping = suggest_mapping(columns)
    for role in (
        "formula",
        "target",
        "id",
        "structure_file",
        "mp_id",
        "temperature",
        "split",
        "reference",
        "year",
    ):
        assert getattr(mapping, role) == expected.get(role), role
    assert set(mapping.extra) == set(columns) - set(expected.values())


def test_suggest_mapping_leaves_unknown_roles_empty() -> None:
    mapping = suggest_mapping(["column 1", "column 2"])
    assert mapping.formula is None and mapping.target is None
    assert mapping.extra == ("column 1", "column 2")


# ---------------------------------------------------------------------------------------------------------
# Cleaning


def test_clean_keeps_optional_fields_and_extras() -> None:
    raw = table(
        "ID,formula,target,T,family,mp\n"
        'a1," ""Li2O"" ",2.5,25,oxide,mp-1960\n'
        "a2,(Li2S)0.75 (P2S5)0.25,1e-3,,sulfide,\n"
    )
    mapping = ColumnMapping(
        formula="formula", target="target", id="ID", temperature="T", mp_id="mp", extra=("family",)
    )
    result = clean_table(raw, mapping, CleaningOptions(unit="S/cm"))
    rows = result.rows
    assert rows.loc[2, "reduced_formula"] == "Li2O"
    assert rows.loc[2, "composition"] == pytest.approx({"Li": 2 / 3, "O": 1 / 3}, abs=1e-6)
    assert rows.loc[3, "composition"] == {"Li": 0.375, "P": 0.125, "S": 0.5}
    assert rows.loc[2, "temperature"] == 25.0 and math.isnan(rows.loc[3, "temperature"])
    assert rows.loc[3, "family"] == "sulfide" and rows.loc[2, "id"] == "a1"
    assert result.summary.n_with_mp_id == 1 and result.summary.n_with_structure == 1
    assert result.summary.element_counts == {"Li": 2, "O": 1, "P": 1, "S": 1}
    assert result.summary.target_values == [2.5, 1e-3] and result.summary.unit == "S/cm"


def test_log10_and_non_positive_targets() -> None:
    raw = table("formula,target\nLi2O,1e-4\nNaCl,0\nKCl,-2\nLiF,100\n")
    result = clean_table(raw, ColumnMapping("formula", "target"), CleaningOptions(log10=True, unit="S/cm"))
    rows = result.rows
    assert rows.loc[2, "target"] == pytest.approx(-4.0) and rows.loc[5, "target"] == pytest.approx(2.0)
    assert (
        rows.loc[3, "status"] == "rejected"
        and "'0' is not positive, so log10 is undefined" in rows.loc[3, "reason"]
    )
    assert rows.loc[4, "status"] == "rejected" and "'-2' is not positive" in rows.loc[4, "reason"]
    assert result.summary.unit == "log10(S/cm)" and result.summary.n_rejected == 2


def test_censored_excluded_by_default_or_included_at_bound() -> None:
    raw = table("formula,target\nLi2O,<1E-10\nNaCl,> 5\nKCl,<1e-8\nLiF,1e-3\n")
    mapping = ColumnMapping("formula", "target")
    result = clean_table(raw, mapping, CleaningOptions(log10=True))
    assert result.rows["status"].tolist() == ["censored", "censored", "censored", "kept"]
    assert result.rows["censored"].tolist() == ["<", ">", "<", None]
    assert "censored value '<1E-10'" in result.rows.loc[2, "reason"]
    assert result.summary.n_censored == 3 and result.summary.n_kept == 1
    included = clean_table(raw, mapping, CleaningOptions(log10=True, censored="include_at_bound"))
    assert included.rows["status"].tolist() == ["kept"] * 4
    assert included.rows["target"].tolist() == pytest.approx([-10.0, math.log10(5), -8.0, -3.0])
    assert "included at its bound" in included.rows.loc[3, "reason"]


def test_temperature_window_and_rows_without_temperature() -> None:
    raw = table("formula,target,T\nLi2O,1,25\nNaCl,2,300\nKCl,3,\nLiF,4,room\nLiCl,5,15\n")
    mapping = ColumnMapping("formula", "target", temperature="T")
    result = clean_table(raw, mapping, CleaningOptions(temperature_window=(15, 35)))
    assert result.rows["status"].tolist() == ["kept", "filtered", "filtered", "filtered", "kept"]
    assert "temperature 300 is outside the window 15 to 35" in result.rows.loc[3, "reason"]
    assert "no temperature given" in result.rows.loc[4, "reason"]
    assert "temperature 'room' is not a number" in result.rows.loc[5, "reason"]
    keep_missing = clean_table(
        raw, mapping, CleaningOptions(temperature_window=(15, 35), missing_temperature="keep")
    )
    assert keep_missing.rows["status"].tolist() == ["kept", "filtered", "kept", "kept", "kept"]


DUPLICATES = (
    "formula,target,year,doi\n"
    "Li2O,1,2001,10.1/a\n"
    "Li4O2,3,2010,10.1/b\n"  # same composition as Li2O
    "NaCl,5,,10.1016/j.ssi.2015.01.001\n"
    "NaCl,5,,10.1016/j.ssi.2019.01.001\n"
    "KCl,7,,x\n"
    "Li2O,8,1999,10.1/c\n"
)


def test_conflict_statistics_with_keep_all() -> None:
    result = clean_table(table(DUPLICATES), ColumnMapping("formula", "target"))
    assert result.summary.n_kept == 6 and result.summary.n_distinct_compositions == 3
    conflicts = result.conflicts.set_index("reduced_formula")
    assert conflicts.loc["Li2O", "rows"] == [2, 3, 7] and conflicts.loc["Li2O", "spread"] == 7.0
    assert conflicts.loc["NaCl", "spread"] == 0.0
    assert result.summary.n_duplicate_compositions == 2
    assert result.summary.n_conflicting_compositions == 1  # NaCl's two values agree
    assert result.summary.mean_spread == 7.0 and result.summary.max_spread == 7.0


@pytest.mark.parametrize(
    ("policy", "kept_rows", "li2o_target", "year_column"),
    [
        ("mean", [2, 4, 6], 4.0, "year"),
        ("median", [2, 4, 6], 3.0, "year"),
        # Li2O: year 2010 (row 3); NaCl has no year, so the year in its DOI decides (2019, row 5)
        ("most_recent", [3, 5, 6], 3.0, "year"),
        # without a year column the DOIs of Li2O hold no year: the later row of the file wins (row 7)
        ("most_recent", [5, 6, 7], 8.0, None),
    ],
)
def test_duplicate_policies(
    policy: str, kept_rows: list[int], li2o_target: float, year_column: str | None
) -> None:
    mapping = ColumnMapping("formula", "target", year=year_column, reference="doi")
    result = clean_table(table(DUPLICATES), mapping, CleaningOptions(duplicates=policy))
    kept = result.kept
    assert list(kept.index) == kept_rows
    assert kept.loc[kept["reduced_formula"] == "Li2O", "target"].item() == li2o_target
    merged = result.rows[result.rows["status"] == "merged"]
    assert len(merged) == 3
    li2o_keeper = kept.index[kept["reduced_formula"] == "Li2O"][0]
    assert all(
        f"merged into row {li2o_keeper}" in r
        for r in merged.loc[merged["reduced_formula"] == "Li2O", "reason"]
    )
    assert result.summary.n_merged == 3 and result.summary.n_conflicting_compositions == 1


def test_rejected_csv_lists_unused_rows_with_reasons() -> None:
    raw = table("formula,target,note\nLi2O,1,ok\nXx9,2,bad formula\nNaCl,abc,bad target\nKCl,<1e-9,bound\n")
    result = clean_table(raw, ColumnMapping("formula", "target", extra=("note",)))
    data = result.rejected_csv()
    assert data.startswith(b"\xef\xbb\xbf")
    frame = pd.read_csv(io.BytesIO(data), encoding="utf-8-sig")
    assert frame["row"].tolist() == [3, 4, 5]
    assert frame["status"].tolist() == ["rejected", "rejected", "censored"]
    assert frame["note"].tolist() == ["bad formula", "bad target", "bound"]
    assert "formula 'Xx9'" in frame.loc[0, "reason"]
    assert "the target 'abc' is not a number" in frame.loc[1, "reason"]


def test_target_artefacts_from_pdf_extraction_are_cleaned_and_noted() -> None:
    raw = table("formula,target\nLi2O,1.30E-10\u0305\nNaCl,1.2E\u22124\n")
    result = clean_table(raw, ColumnMapping("formula", "target"))
    assert result.rows["target"].tolist() == pytest.approx([1.3e-10, 1.2e-4])
    assert all("stray characters removed" in r for r in result.rows["reason"])


# ---------------------------------------------------------------------------------------------------------
# CIFs in a zip


def test_read_cif_zip_keeps_only_cifs() -> None:
    data = zip_archive(
        {
            "cifs/a.cif": b"data_a",
            "cifs/B.CIF": b"data_b",
            "readme.txt": b"x",
            "__MACOSX/._a.cif": b"junk",
            "cifs/": b"",
        }
    )
    assert read_cif_zip(data, LIMITS) == {"cifs/a.cif": b"data_a", "cifs/B.CIF": b"data_b"}


def test_rows_match_cifs_by_file_name_or_id() -> None:
    cifs = read_cif_zip(zip_archive({"x/a.cif": b"data_a", "x/B.CIF": b"data_b", "x/c1.cif": b"data_c"}), LIMITS)
    raw = table("sid,formula,target,file\nc1,Li2O,1,A.cif\nc2,NaCl,2,b\nc1,KCl,3,\nc9,LiF,4,missing.cif\n")
    mapping = ColumnMapping("formula", "target", id="sid", structure_file="file")
    result = clean_table(raw, mapping, cifs=cifs)
    assert result.rows["cif_member"].tolist() == ["x/a.cif", "x/B.CIF", "x/c1.cif", None]
    assert result.rows.loc[5, "status"] == "kept"
    assert "the CIF 'missing.cif' is not in the zip; kept composition-only" in result.rows.loc[5, "reason"]
    assert result.summary.n_with_cif == 3 and result.summary.n_structure_missing == 1
    assert result.summary.n_structure_references == 3  # rows 2, 3 and 5 name a file; row 4 matched by its id
    without_zip = clean_table(raw, mapping)
    assert without_zip.rows["cif_member"].isna().all() and without_zip.summary.n_structure_references == 3


def test_ambiguous_cif_names_give_no_structure_and_say_why() -> None:
    cifs = read_cif_zip(zip_archive({"one/a.cif": b"data_1", "two/A.cif": b"data_2"}), LIMITS)
    raw = table("formula,target,file\nLi2O,1,a\n")
    result = clean_table(raw, ColumnMapping("formula", "target", structure_file="file"), cifs=cifs)
    assert result.rows.loc[2, "cif_member"] is None and result.rows.loc[2, "status"] == "kept"
    assert "ambiguous in the zip (one/a.cif, two/A.cif)" in result.rows.loc[2, "reason"]


# ---------------------------------------------------------------------------------------------------------
# Real files (skipped when ../shared/data is absent)


def test_liverpool_table(shared_data: Path) -> None:
    data = (shared_data / "li_conductivity" / "LiIonDatabase.csv").read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    raw = read_table(data, "LiIonDatabase.csv", limits=LIMITS)
    assert raw.columns[0] == "ID" and raw.n_rows == 820 and raw.frame.index[0] == 2
    mapping = suggest_mapping(raw.columns)
    assert (mapping.formula, mapping.target, mapping.temperature) == ("composition", "target", "temperature")

    everything = clean_table(raw, mapping, CleaningOptions(log10=True, unit="S/cm"))
    # all 820 formulas parse once quotes and spaces are stripped
    assert everything.summary.n_kept == 820 and everything.summary.n_rejected == 0
    # log10 agrees with the file's own log_target column (which was computed from less rounded values: 64 rows
    # differ in the third decimal)
    file_log = raw.frame["log_target"].astype(float).to_numpy()
    assert everything.rows["target"].to_numpy() == pytest.approx(file_log, abs=2e-3)
    # 489 distinct composition strings in the README; 455 distinct compositions once equal ones (up to scale,
    # spaces and quotes) are merged
    assert raw.frame["composition"].nunique() == 489
    assert everything.summary.n_distinct_compositions == 455
    assert everything.summary.n_conflicting_compositions == 144

    room = clean_table(raw, mapping, CleaningOptions(log10=True, temperature_window=(15, 35)))
    assert room.summary.n_kept == 465 and room.summary.n_filtered == 355  # README: 465 rows at 15-35 °C
    assert room.summary.n_distinct_compositions == 403 and room.summary.n_conflicting_compositions == 36

    merged = clean_table(
        raw, mapping, CleaningOptions(log10=True, temperature_window=(15, 35), duplicates="mean")
    )
    assert merged.summary.n_kept == 403 and merged.summary.n_merged == 62


def test_obelix_train_with_zipped_cifs(shared_data: Path, tmp_path: Path) -> None:
    folder = shared_data / "li_conductivity"
    raw = read_table((folder / "train.csv").read_bytes(), "train.csv", limits=LIMITS)
    assert raw.n_rows == 478
    mapping = suggest_mapping(raw.columns)
    assert (mapping.formula, mapping.target, mapping.id) == (
        "Reduced Composition",
        "Ionic conductivity (S cm-1)",
        "ID",
    )

    zip_path = tmp_path / "cifs.zip"
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as archive:
        for cif in sorted((folder / "cifs").glob("*.cif")):
            archive.write(cif, f"all_randomized_cifs/{cif.name}")
    cifs = read_cif_zip(zip_path.read_bytes(), LIMITS)
    assert len(cifs) == 254

    result = clean_table(raw, mapping, CleaningOptions(log10=True, unit="S/cm"), cifs=cifs)
    rows = result.rows
    censored = rows[rows["status"] == "censored"]
    assert censored["target_raw"].value_counts().to_dict() == {"<1E-10": 28, "<1E-8": 1}
    summary = result.summary
    # every formula of the train split parses (the unparseable `na5` of the README is in the test split)
    assert (summary.n_kept, summary.n_rejected, summary.n_censored) == (449, 0, 29)
    assert rows["cif_member"].notna().sum() == 254  # every CIF matched a row through the ID column
    assert summary.n_with_cif == 226  # 28 of the rows with a CIF are censored
    first = rows.iloc[0]
    assert first["id"] == "jqc" and first["target"] == pytest.approx(math.log10(1.58489e-06))
    assert first["cif_member"] == "all_randomized_cifs/jqc.cif"
    assert min(summary.target_values) == pytest.approx(math.log10(4.2e-18), abs=0.01)

    included = clean_table(raw, mapping, CleaningOptions(log10=True, censored="include_at_bound"), cifs=cifs)
    assert included.summary.n_kept == 478 and included.summary.n_with_cif == 254


def test_laskowski_table_without_header(shared_data: Path) -> None:
    data = (shared_data / "li_conductivity" / "laskowski_semi-fromatted.csv").read_bytes()
    with pytest.raises(ValueError, match="seems to have no header"):
        read_table(data, "laskowski.csv", limits=LIMITS)
    raw = read_table(data, "laskowski.csv", has_header=False, limits=LIMITS)
    assert raw.n_rows == 1927 and raw.frame.index[0] == 1  # 1,928 lines, one of them blank
    result = clean_table(
        raw, ColumnMapping(formula="column 1", target="column 2"), CleaningOptions(log10=True)
    )
    rows = result.rows
    summary = result.summary
    assert (summary.n_kept, summary.n_rejected, summary.n_censored) == (836, 1039, 52)
    rejected = rows[rows["status"] == "rejected"]
    assert rejected["reason"].str.contains("the formula is empty").sum() == 295
    assert rejected["reason"].str.contains("cannot be parsed").sum() == 681
    assert rejected["reason"].str.contains("the target is empty").sum() == 582
    assert rows.loc[1, "status"] == "kept" and rows.loc[1, "target"] == pytest.approx(math.log10(1.3e-10))
    assert "stray characters removed from the target" in rows.loc[1, "reason"]
    assert rows.loc[11, "status"] == "censored" and rows.loc[11, "formula_raw"] == "Li4P2O7"
    assert rows.loc[13, "reason"] == "the formula is empty; the target is empty"
