"""Censored values from a flag column, and the most-recent duplicate policy with dates (issue 15 item 7, 16 item 4)."""

from __future__ import annotations

import math

import pytest

from cosnet_core.ingest import (
    CleaningOptions,
    ColumnMapping,
    IngestLimits,
    clean_table,
    parse_flag,
    read_table,
    suggest_mapping,
)

FLAGGED = (
    "sample,formula,sigma,censored_upper_bound\n"
    "a,Li2O,1e-4,0\n"
    "b,LiCl,1e-10,1\n"  # a bound given as a plain number, flagged in its own column
    "c,NaCl,2e-9,yes\n"
    "d,KCl,3e-5,\n"
    "e,LiF,<1e-8,no\n"  # the '<' of the value itself still counts
    "f,LiBr,1e-6,maybe\n"  # neither yes nor no: rejected with the reason
)


def table(text: str):
    return read_table(text.encode("utf-8"), "t.csv", limits=IngestLimits())


def test_the_flag_column_is_suggested_and_flagged_rows_are_censored() -> None:
    raw = table(FLAGGED)
    mapping = suggest_mapping(raw.columns)
    assert mapping.censored_flag == "censored_upper_bound" and mapping.formula == "formula"
    mapping = ColumnMapping("formula", "sigma", id="sample", censored_flag="censored_upper_bound")
    result = clean_table(raw, mapping, CleaningOptions(log10=True))
    rows = result.rows
    assert rows["status"].tolist() == ["kept", "censored", "censored", "kept", "censored", "rejected"]
    assert rows["censored"].tolist() == [None, "<", "<", None, "<", None]
    assert "flagged as an upper bound in the column 'censored_upper_bound'" in rows.loc[3, "reason"]
    assert "censored value '<1e-10' (a bound, not a measurement); excluded" in rows.loc[3, "reason"]
    assert "the censored flag 'maybe' (column 'censored_upper_bound') is not yes or no" in rows.loc[7, "reason"]
    assert result.summary.n_censored == 3 and result.summary.n_kept == 2 and result.summary.n_rejected == 1
    # kept as bounds: in the version with their sign, the bound as the target
    kept = clean_table(raw, mapping, CleaningOptions(log10=True, censored="include_at_bound"))
    assert kept.rows["status"].tolist() == ["kept"] * 5 + ["rejected"]
    assert kept.rows.loc[3, "censored"] == "<" and kept.rows.loc[3, "target"] == pytest.approx(-10.0)
    assert kept.rows.loc[4, "target"] == pytest.approx(math.log10(2e-9))
    assert "never scored as a measurement" in kept.rows.loc[3, "reason"]


def test_flag_cells() -> None:
    for yes in ("1", "TRUE", " yes ", "Y", "x", "censored", "<"):
        assert parse_flag(yes) is True
    for no in ("", "0", "False", "no", "N", "-", None):
        assert parse_flag(no) is False
    assert parse_flag("2") is None and parse_flag("upper") is None


DATED = (
    "formula,target,date\n"
    "Li2O,1,2019-05-01\n"
    "Li2O,2,2019-11-20\n"  # the most recent report of Li2O
    "Li2O,3,2018-12-31\n"
    "NaCl,4,March 2020\n"  # a year inside free text
    "NaCl,5,2017\n"
    "KCl,6,\n"
    "KCl,7,\n"  # no date: the later row of the file
)


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("keep_all", {"Li2O": [1, 2, 3], "NaCl": [4, 5], "KCl": [6, 7]}),
        ("mean", {"Li2O": [2.0], "NaCl": [4.5], "KCl": [6.5]}),
        ("median", {"Li2O": [2.0], "NaCl": [4.5], "KCl": [6.5]}),
        ("most_recent", {"Li2O": [2.0], "NaCl": [4.0], "KCl": [7.0]}),
    ],
)
def test_each_duplicate_policy_on_a_small_table_with_dates(policy: str, expected: dict[str, list[float]]) -> None:
    raw = table(DATED)
    mapping = suggest_mapping(raw.columns)
    assert mapping.year == "date"
    result = clean_table(raw, mapping, CleaningOptions(duplicates=policy))
    kept = result.kept
    got = {formula: kept.loc[kept["reduced_formula"] == formula, "target"].tolist() for formula in expected}
    assert got == expected
    if policy == "most_recent":
        assert kept.index.tolist() == [3, 5, 8]
        assert "most recent of 3 rows (2019)" in kept.loc[3, "reason"]


def test_most_recent_without_a_date_column_is_refused_with_the_reason() -> None:
    from cosnet_core.ingest import IngestError

    raw = table("formula,target\nLi2O,1\nLi2O,2\n")
    with pytest.raises(IngestError, match="'most recent' needs a year or a reference column"):
        clean_table(raw, ColumnMapping("formula", "target"), CleaningOptions(duplicates="most_recent"))
