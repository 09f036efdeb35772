"""Issue 16, items 1 and 2: a batch's columns are chosen by name, a row whose CIF is not in the zip is predicted from
its composition with a warning, and every prediction (page and command line) carries applicability warnings."""

from __future__ import annotations

import io

import pandas as pd
import pytest
import torch
from pymatgen.core import Lattice, Structure

from cosnet_core.artifact import load_ensemble
from cosnet_core.cli import main
from tests.cosnet_core.ingest_files import zip_archive
from tests.pages.test_predict_page import SALTS, _page, trained_artifacts, trained_study  # noqa: F401 (fixtures)

NACL = Structure(Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]).to(fmt="cif")


def _predict_batch(at, table: bytes, archive: bytes | None = None):
    batch = at.tabs[1]
    batch.get("file_uploader")[0].upload("new.csv", table, "text/csv")
    if archive is not None:
        batch.get("file_uploader")[1].upload("s.zip", archive, "application/zip")
    at.run()
    return at


def test_batch_columns_by_name_and_a_missing_cif_predicted_from_the_composition(trained_study, app_test,  # noqa: F811
                                                                                 downloads):
    at = _predict_batch(_page(app_test), b"sample,formula,cif\ns1,NaCl,nacl.cif\ns2,KCl,missing.cif\ns3,LiF,\n",
                        zip_archive({"nacl.cif": NACL}))
    batch = at.tabs[1]
    assert [box.value for box in batch.selectbox[:3]] == ["formula", "sample", "cif"]  # nothing set by hand
    next(b for b in at.button if b.label == "Predict the table").click().run()
    assert not at.exception, at.exception
    result = pd.read_csv(io.BytesIO(downloads(at.download_button[0])))
    assert result["id"].tolist() == ["s1", "s2", "s3"]
    assert result["composition"].tolist() == ["NaCl", "KCl", "LiF"]  # never the CIF name
    assert result["line"].tolist() == [2, 3, 4] and str(result["line"].dtype) == "int64"
    assert result["prediction"].notna().all() and result["reason"].isna().all()
    assert result["has_structure"].tolist() == [True, False, False]
    assert pd.isna(result.loc[0, "warning"]) and pd.isna(result.loc[2, "warning"])
    assert "missing.cif" in result.loc[1, "warning"] and "composition alone" in result.loc[1, "warning"]
    shown = " ".join(w.value for w in at.warning)
    assert "1 row(s) predicted from the composition alone" in shown and "line(s) 3" in shown
    assert "cosnet-predict-" not in shown + result.to_csv()  # no server folder in a message or the file


def test_refused_rows_keep_their_formula_and_an_integer_line(trained_study, app_test, downloads):  # noqa: F811
    at = _predict_batch(_page(app_test), b"name,formula\na,NaCl\nb,Qz3\na,KBr\n")
    next(b for b in at.button if b.label == "Predict the table").click().run()
    result = pd.read_csv(io.BytesIO(downloads(at.download_button[0])))
    assert result["line"].tolist() == [2, 3, 4]
    assert str(result["line"].dtype) == "int64"
    by_line = result.set_index("line")
    assert by_line.loc[3, "composition"] == "Qz3" and by_line.loc[4, "composition"] == "KBr"  # the duplicate id row
    assert "earlier line" in by_line.loc[4, "reason"]


def test_batch_applicability_structure_mismatch_unseen_elements_and_nearest(trained_study, app_test,  # noqa: F811
                                                                            downloads):
    at = _predict_batch(_page(app_test), b"id,formula,cif\nx,LiCoO2,nacl.cif\ny,NaCl,nacl.cif\nz,LiI,\n",
                        zip_archive({"nacl.cif": NACL}))
    next(b for b in at.button if b.label == "Predict the table").click().run()
    assert not at.exception, at.exception
    result = pd.read_csv(io.BytesIO(downloads(at.download_button[0])), keep_default_na=False).set_index("id")
    assert "structure's composition NaCl differs from the formula LiCoO2" in result.loc["x", "applicability"]
    assert str(result.loc["x", "structure_mismatch"]) == "True" and str(result.loc["y", "structure_mismatch"]) == "False"
    assert result.loc["x", "unseen_elements"] == "Co, O" and result.loc["z", "unseen_elements"] == "I"
    assert result.loc["y", "applicability"] == ""
    # the training rows are the first 9 salts, target i % 4: NaCl itself (0.0) at distance 0, then the chlorides
    assert result.loc["y", "nearest_1_composition"] == "NaCl"
    assert float(result.loc["y", "nearest_1_target"]) == 0.0 and float(result.loc["y", "nearest_1_distance"]) == 0.0
    assert result.loc["y", "nearest_2_composition"] == "KCl" and float(result.loc["y", "nearest_2_target"]) == 1.0
    assert float(result.loc["y", "nearest_2_distance"]) == pytest.approx(0.5)
    assert result.loc["z", "nearest_1_composition"] in {"LiF", "LiCl"}
    assert "2 row(s) with an applicability warning" in " ".join(w.value for w in at.warning)


def test_one_formula_names_unseen_elements_and_its_nearest_training_compositions(trained_study, app_test):  # noqa: F811
    at = _page(app_test)
    at.radio[0].set_value("none").run()
    at.text_input[0].input("LiI").run()
    next(b for b in at.button if b.label == "Predict").click().run()
    assert not at.exception, at.exception
    assert any("element(s) I appear in no training row" in w.value for w in at.warning)
    nearest = next(c.value for c in at.caption if c.value.startswith("Nearest training compositions"))
    assert "LiF (2; distance 0.500)" in nearest and "LiCl (1; distance 0.500)" in nearest


def test_command_line_predict_writes_the_applicability_columns(trained_artifacts, tmp_path, capsys):  # noqa: F811
    structures = tmp_path / "cifs"
    structures.mkdir()
    (structures / "nacl.cif").write_text(NACL)
    table = tmp_path / "new.csv"
    table.write_text("sample,formula,cif\na,LiCoO2,nacl.cif\nb,KCl,missing.cif\n")
    out = tmp_path / "out.csv"
    assert main(["predict", "--model", str(trained_artifacts[0].parent), "--data", str(table), "--formula-col",
                 "formula", "--id-col", "sample", "--structure-col", "cif", "--structures", str(structures),
                 "--out", str(out), "--no-with-forest"]) == 0
    result = pd.read_csv(out, keep_default_na=False).set_index("id")
    assert "differs from the formula LiCoO2" in result.loc["a", "applicability"]
    assert result.loc["a", "unseen_elements"] == "Co, O"
    assert "missing.cif" in result.loc["b", "warning"] and str(result.loc["b", "has_structure"]) == "False"
    assert result.loc["b", "nearest_1_composition"] == "KCl" and float(result.loc["b", "nearest_1_distance"]) == 0.0
    assert "1 row(s) have an applicability warning" in capsys.readouterr().err


def test_an_artifact_without_training_rows_still_predicts_without_nearest_columns(trained_artifacts, tmp_path,  # noqa: F811
                                                                                  capsys):
    old = tmp_path / "old.pt"
    artifact = torch.load(trained_artifacts[0], map_location="cpu", weights_only=True)
    assert artifact["training_formulas"] == SALTS[:9]  # what the artifact now keeps
    assert artifact["training_targets"] == [float(i % 4) for i in range(9)]
    del artifact["training_formulas"], artifact["training_targets"]
    torch.save(artifact, old)
    assert load_ensemble(old).training_rows() is None
    table = tmp_path / "new.csv"
    table.write_text("formula\nNaCl\n")
    out = tmp_path / "out.csv"
    assert main(["predict", "--model", str(old), "--data", str(table), "--formula-col", "formula", "--out", str(out),
                 "--no-with-forest"]) == 0
    result = pd.read_csv(out)
    assert result["prediction"].notna().all() and "applicability" in result.columns
    assert not any(c.startswith("nearest_") for c in result.columns)
    assert "predates the storage of its training rows" in capsys.readouterr().err


def test_a_table_error_names_the_uploaded_file(trained_study, app_test, monkeypatch):  # noqa: F811
    monkeypatch.setenv("COSNET_MAX_COLUMNS", "2")
    at = _predict_batch(_page(app_test), b"sample,formula,note\ns1,NaCl,x\n")
    next(b for b in at.button if b.label == "Predict the table").click().run()
    assert not at.exception, at.exception
    message = at.error[0].value
    assert "new.csv: more than 2 columns" in message and "table.csv" not in message
