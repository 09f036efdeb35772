"""Issue 14, item 5 on the Predict page: a batch's structure column can only name CIFs of the uploaded zip; a
server path (absolute or ../) is refused for that row, and the message shows no server path."""

from __future__ import annotations

import io

import pandas as pd
from pymatgen.core import Lattice, Structure

from tests.cosnet_core.ingest_files import zip_archive
from tests.pages.test_predict_page import trained_artifacts, trained_study  # noqa: F401  (module fixtures)

NACL = Structure(Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]).to(fmt="cif")


def test_batch_structure_column_cannot_reach_server_files(trained_study, app_test, downloads, tmp_path):  # noqa: F811
    secret = tmp_path / "server-side.cif"  # a readable CIF on the server, outside the upload
    secret.write_text(NACL)
    table = (f"name,formula,cif\na,NaCl,nacl.cif\nb,NaCl,{secret}\nc,NaCl,../../../../../../{secret}\n"
             "d,NaCl,../table.csv\n").encode()  # the uploaded table lies one folder up
    at = app_test(timeout=120)
    at.switch_page("pages/predict.py")
    at.run()
    batch = at.tabs[1]
    batch.get("file_uploader")[0].upload("new.csv", table, "text/csv")
    batch.get("file_uploader")[1].upload("s.zip", zip_archive({"nacl.cif": NACL}), "application/zip").run()
    batch = at.tabs[1]
    batch.selectbox[0].set_value("formula")
    batch.selectbox[1].set_value("name")
    batch.selectbox[2].set_value("cif").run()
    next(b for b in at.button if b.label == "Predict the table").click().run()
    assert not at.exception, at.exception
    result = pd.read_csv(io.BytesIO(downloads(at.download_button[0]))).set_index("id")
    assert bool(result.loc["a", "has_structure"]) is True and pd.notna(result.loc["a", "prediction"])
    for row in ("b", "c", "d"):
        assert pd.isna(result.loc[row, "prediction"]), row
        assert "not a file name inside the structures folder" in result.loc[row, "reason"]
    shown = " ".join(str(v) for v in result["reason"].dropna()) + " ".join(w.value for w in at.warning)
    assert str(tmp_path) not in shown and "cosnet-predict-" not in shown
