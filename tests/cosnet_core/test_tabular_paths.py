"""Issue 14, item 5: a structure column can only name files inside the structures folder (no ../, no absolute
path, no symbolic link out), in the library function the app and the command line share; messages name the cell,
never a server path."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from pymatgen.core import Lattice, Structure

from cosnet_core.structure import StructureError
from cosnet_core.tabular import read_table, structure_file_in
from tests.pages.test_predict_page import trained_artifacts  # noqa: F401  (a module fixture: two tiny models)

NACL = Structure(Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]).to(fmt="cif")


@pytest.fixture()
def folders(tmp_path) -> tuple[Path, Path]:
    """``cifs/`` with ``inside.cif`` and a link to ``../secret.cif``; the secret (a valid CIF) lies beside it."""
    cifs = tmp_path / "upload" / "cifs"
    cifs.mkdir(parents=True)
    (cifs / "inside.cif").write_text(NACL)
    secret = tmp_path / "secret.cif"
    secret.write_text(NACL)
    (cifs / "link.cif").symlink_to(secret)
    return cifs, secret


def test_names_leading_out_of_the_folder_are_refused_without_naming_a_path(folders, tmp_path):
    cifs, secret = folders
    assert structure_file_in(cifs, "inside.cif") == (cifs / "inside.cif").resolve()
    assert structure_file_in(cifs, "inside") == (cifs / "inside.cif").resolve()  # .cif may be left out
    for name in ["../../secret.cif", "../../secret", str(secret), "link.cif", "/etc/passwd", ".", ".."]:
        with pytest.raises(StructureError, match="not a file name inside the structures folder") as caught:
            structure_file_in(cifs, name)
        assert str(tmp_path) not in caught.value.reason
    with pytest.raises(StructureError, match="no such file in the structures folder$"):
        structure_file_in(cifs, "missing.cif")


def test_read_table_loads_only_files_inside_the_folder(folders, tmp_path):
    cifs, secret = folders
    table = tmp_path / "t.csv"
    table.write_text(f"formula,cif\nNaCl,inside.cif\nNaCl,../../secret.cif\nNaCl,{secret}\nNaCl,link.cif\nKCl,\n")
    result = read_table(table, formula_col="formula", structure_col="cif", structures_dir=cifs)
    assert [s.structure is not None for s in result.samples] == [True, False]  # inside.cif, and KCl without
    assert list(result.errors["line"]) == [3, 4, 5]
    assert all("not a file name inside" in reason for reason in result.errors["reason"])
    assert not result.errors["reason"].str.contains(str(tmp_path), regex=False).any()


def test_the_command_line_predicts_the_row_inside_and_refuses_the_one_outside(folders, tmp_path,
                                                                             trained_artifacts):  # noqa: F811
    from cosnet_core.cli import main

    cifs, _ = folders
    table = tmp_path / "new.csv"
    table.write_text("formula,cif\nNaCl,inside.cif\nKCl,../../secret.cif\n")
    out = tmp_path / "out" / "predictions.csv"
    code = main(["predict", "--model", str(trained_artifacts[0].parent), "--data", str(table), "--formula-col",
                 "formula", "--structure-col", "cif", "--structures", str(cifs), "--out", str(out)])
    assert code == 0
    predicted = pd.read_csv(out)
    assert len(predicted) == 1 and bool(predicted["has_structure"].iloc[0]) is True
    refused = pd.read_csv(next(out.parent.glob("*error*.csv")))
    assert list(refused["line"]) == [3] and "not a file name inside" in refused["reason"][0]
    assert str(tmp_path) not in refused["reason"][0]
