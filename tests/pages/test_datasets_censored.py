"""The Datasets page: a censored-flag column mapped as "this value is an upper bound", and the paper's duplicate
policies where duplicates are found (issue 15 item 7, issue 16 item 4), driven with AppTest."""

from __future__ import annotations

from db import datasets as store
from tests.pages.test_datasets_page import _import_button, _metrics, _open, _upload, _url

# Rows 2..6: measured, flagged (a bound), measured, flagged, measured twice for one composition (no date column).
FLAGGED = (
    b"sample,formula,conductivity,upper_bound\n"
    b"S1,Li7La3Zr2O12,1e-4,no\n"
    b"S2,Li3PS4,1e-10,yes\n"
    b"S3,Li6PS5Cl,2e-3,\n"
    b"S4,LiCl,1e-9,1\n"
    b"S5,Li6PS5Cl,3e-3,0\n"
)


def _select(at, label: str):
    return next(s for s in at.selectbox if s.label == label)


def test_mapping_the_flag_column_censors_its_rows(app_test, app_env):
    url = _url(app_env)
    at = _open(app_test)
    _upload(at, "flags.csv", FLAGGED)
    flag = _select(at, "Censored flag (yes = the value is an upper bound)")
    assert flag.value == "upper_bound"  # suggested from the column name
    preview = " ".join(m.value for m in at.markdown)
    assert "**3 would be kept**, 0 rejected, 2 censored" in preview
    # duplicates are found: the paper's policies are named, and 'most recent' is said to need a date column
    text = " ".join(m.value for m in at.markdown)
    assert "most recent report for conflicting Li-conductivity entries and the mean elsewhere" in text
    assert any("'Most recent' is not available: no year/date or reference column is mapped" in i.value
               for i in at.info)

    # unmapped, the flag column means nothing: every row is a measurement
    flag.set_value("(none)").run()
    assert "**5 would be kept**, 0 rejected, 0 censored" in " ".join(m.value for m in at.markdown)

    # mapped again, and kept as upper bounds: imported with their sign, the bound as the target
    _select(at, "Censored flag (yes = the value is an upper bound)").set_value("upper_bound").run()
    radio = next(r for r in at.radio if r.key.startswith("opt_censored_"))
    radio.set_value("include_at_bound").run()
    assert not at.exception, at.exception
    assert "**5 would be kept**, 0 rejected, 0 censored" in " ".join(m.value for m in at.markdown)
    _import_button(at).click().run()
    assert not at.exception, at.exception
    assert _metrics(at)["Rows kept"] == "5"
    assert any("2 of the kept rows are bounds" in c.value for c in at.caption)
    version = store.list_datasets(url)[0].versions[0]
    entries = store.load_entries(url, version.id).set_index("row")
    assert entries.loc[3, "censored"] == "<" and entries.loc[5, "censored"] == "<"
    assert entries.loc[3, "target"] == -10.0
    assert not entries.loc[2, "censored"] and not entries.loc[4, "censored"]


def test_most_recent_with_a_date_column_keeps_the_newest_report(app_test, app_env):
    at = _open(app_test)
    _upload(at, "dated.csv", b"formula,conductivity,date\nLi3PS4,1e-4,2019-05-01\nLi3PS4,1e-3,2020-01-02\n"
                             b"LiCl,1e-8,2001\n")
    assert _select(at, "Year or date").value == "date"
    assert not any("'Most recent' is not available" in i.value for i in at.info)
    _select(at, "Rows with the same composition").set_value("most_recent").run()
    assert not at.exception, at.exception
    preview = " ".join(m.value for m in at.markdown)
    assert "**2 would be kept**" in preview and "1 merged as duplicates" in preview
    shown = at.dataframe[-1].value
    li3ps4 = shown[(shown["reduced_formula"] == "Li3PS4") & (shown["status"] == "kept")]
    target = next(c for c in shown.columns if c not in ("status", "formula_raw", "reduced_formula", "reason"))
    assert [float(v) for v in li3ps4[target]] == [-3.0]  # log10 of the 2020 report's 1e-3
    assert "most recent of 2 rows (2020)" in li3ps4["reason"].iloc[0]
