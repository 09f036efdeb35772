"""Issue 14, item 10: no traceback and no silent NaN. An infinite amount in a formula, targets of ±1e308 with
'mean per composition', an empty table on Predict, a full disk at import and a tampered model file each get a
message naming the row or the file, and nothing stored changes."""

from __future__ import annotations

import io
import math
from pathlib import Path

import pandas as pd
import pytest
import torch
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from cosnet_core.artifact import ArtifactError, load_artifact
from cosnet_core.ingest import CleaningOptions, ColumnMapping, clean_table, read_table
from cosnet_core.tabular import read_table as read_cli_table
from db.engine import session_scope
from db.models import Base
from tests.pages.test_predict_page import trained_artifacts, trained_study  # noqa: F401  (module fixtures)

TABLE = b"formula,target\nH1e400,1.0\nNaCl,1e308\nNaCl,1e308\nKCl,-1e308\nLiF,2.5\nLiF,3.5\n"


def _counts() -> dict[str, int]:
    with session_scope() as session:
        return {t.name: session.scalar(select(func.count()).select_from(t)) for t in Base.metadata.sorted_tables}


def test_infinite_amounts_and_huge_targets_are_rejected_rows_with_their_reason():
    result = clean_table(read_table(TABLE, "t.csv"), ColumnMapping(formula="formula", target="target"),
                         CleaningOptions(duplicates="mean"))
    rows = result.rows
    assert rows.loc[2, "status"] == "rejected" and "the amount 1e400 is outside" in rows.loc[2, "reason"]
    for row in (3, 4, 5):
        assert rows.loc[row, "status"] == "rejected" and "beyond ±1e+15" in rows.loc[row, "reason"], row
    kept = rows[rows["status"] == "kept"]
    assert list(kept.index) == [6] and kept.loc[6, "target"] == pytest.approx(3.0)  # the mean of the LiF rows
    assert all(math.isfinite(v) for v in rows["target"].dropna())


def test_the_command_line_refuses_the_same_rows_by_line(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(TABLE)
    table = read_cli_table(path, formula_col="formula", target_col="target")
    assert [s.formula for s in table.samples] == ["LiF", "LiF"]
    assert list(table.errors["line"]) == [2, 3, 4, 5]
    assert "1e400" in table.errors["reason"][0] and "beyond" in table.errors["reason"][1]


def test_datasets_page_imports_the_good_rows_and_names_the_bad_ones(app_test, app_env):
    at = app_test()
    at.run()
    at.file_uploader[0].set_value(("t.csv", TABLE, "text/csv"))
    at.run()
    next(s for s in at.selectbox if s.label == "Rows with the same composition").set_value("mean").run()
    assert not at.exception, at.exception
    assert "**1 would be kept**, 4 rejected" in " ".join(m.value for m in at.markdown)
    next(b for b in at.button if b.key and b.key.startswith("import_")).click().run()
    assert not at.exception, at.exception
    assert _counts()["entries"] == 6


@pytest.mark.parametrize("failure", ["upload file", "database"])
def test_a_full_disk_at_import_is_a_message_and_stores_nothing(app_test, app_env, monkeypatch, failure):
    import db.datasets as store
    import ui.datasets_view as view

    if failure == "upload file":
        def full(*_args, **_kwargs):
            raise OSError(28, "No space left on device")
        monkeypatch.setattr(view, "save_upload", full)
    else:
        original = store._store_version

        def full(*args, **kwargs):
            original(*args, **kwargs)
            raise OperationalError("INSERT", {}, Exception("database or disk is full"))
        monkeypatch.setattr(store, "_store_version", full)
    at = app_test()
    at.run()
    at.file_uploader[0].set_value(("t.csv", b"formula,target\nNaCl,1\nKCl,2\n", "text/csv"))
    at.run()
    before = _counts()
    next(b for b in at.button if b.key and b.key.startswith("import_")).click().run()
    assert not at.exception, at.exception
    message = at.error[0].value
    assert message.startswith("Nothing was imported") and ("No space left" in message or "disk is full" in message)
    assert _counts() == before and before["datasets"] == 0


@pytest.mark.parametrize("content", [b"", b"\n", b"   \n\n"])
def test_an_empty_table_on_predict_is_a_message(trained_study, app_test, content):  # noqa: F811
    at = app_test(timeout=120)
    at.switch_page("pages/predict.py")
    at.run()
    at.tabs[1].get("file_uploader")[0].upload("empty.csv", content, "text/csv").run()
    assert not at.exception, at.exception
    assert at.error[0].value.startswith("The table 'empty.csv' is empty")


def _tamper(source, target, change) -> None:
    artifact = torch.load(source, map_location="cpu", weights_only=True)
    change(artifact)
    torch.save(artifact, target)


def test_tampered_model_files_are_refused_by_name(tmp_path, trained_artifacts):  # noqa: F811
    def nan_weight(artifact):
        name = next(k for k, v in artifact["state_dict"].items() if v.is_floating_point())
        artifact["state_dict"][name] = torch.full_like(artifact["state_dict"][name], float("nan"))

    def inf_scale(artifact):
        artifact["target_std"] = float("inf")

    def huge_scale(artifact):
        artifact["target_std"] = 1e308

    for change in (nan_weight, inf_scale, huge_scale):
        path = tmp_path / f"{change.__name__}.pt"
        _tamper(trained_artifacts[0], path, change)
        with pytest.raises(ArtifactError, match=f"^{path.name}: .*(NaN or infinite|not usable)") as caught:
            load_artifact(path)
        assert str(tmp_path) not in str(caught.value)


def _huge_bias(artifact) -> None:
    """Finite weights, but outputs that no model trained on targets within ±1e15 can give."""
    name = [k for k, v in artifact["state_dict"].items() if v.is_floating_point() and k.endswith("bias")][-1]
    artifact["state_dict"][name] = torch.full_like(artifact["state_dict"][name], 3e38)


def _tampered_copies(originals, folder, change) -> None:
    """Point the stored study at altered copies of its model files (the shared originals stay intact)."""
    from db.models import ModelArtifact

    with session_scope() as session:
        for artifact in session.scalars(select(ModelArtifact)):
            source = next(p for p in originals if str(p) == artifact.path or p.name == Path(artifact.path).name)
            copy = folder / source.name
            _tamper(source, copy, change)
            artifact.path = str(copy)


def test_predict_page_flags_non_finite_predictions(trained_study, app_test, downloads, tmp_path):  # noqa: F811
    _tampered_copies(trained_study, tmp_path, _huge_bias)
    at = app_test(timeout=120)
    at.switch_page("pages/predict.py")
    at.run()
    assert not at.exception, at.exception
    at.tabs[1].get("file_uploader")[0].upload("new.csv", b"formula\nNaCl\nKBr\n", "text/csv").run()
    at.tabs[1].selectbox[0].set_value("formula").run()
    next(b for b in at.button if b.label == "Predict the table").click().run()
    assert not at.exception, at.exception
    result = pd.read_csv(io.BytesIO(downloads(at.download_button[0])))
    assert result["prediction"].isna().all() and result["reason"].str.contains("no usable value").all()
    assert "2 row(s) could not be predicted" in at.warning[0].value


def test_predict_page_refuses_a_tampered_model_by_its_file_name(trained_study, app_test, tmp_path):  # noqa: F811
    _tampered_copies(trained_study, tmp_path, lambda a: a.__setitem__("target_mean", float("nan")))
    at = app_test(timeout=120)
    at.switch_page("pages/predict.py")
    at.run()
    assert not at.exception, at.exception
    assert at.error[0].value.startswith("This model cannot be used: seed")
    assert str(tmp_path) not in at.error[0].value


def test_the_command_line_leaves_unusable_predictions_empty_and_says_so(trained_artifacts, tmp_path,  # noqa: F811
                                                                         capsys):
    from cosnet_core.cli import main

    models = tmp_path / "models"
    models.mkdir()
    for source in trained_artifacts:
        _tamper(source, models / source.name, _huge_bias)
    table = tmp_path / "new.csv"
    table.write_text("id,formula\nx,NaCl\ny,KBr\n")
    out = tmp_path / "p.csv"
    assert main(["predict", "--model", str(models), "--data", str(table), "--formula-col", "formula",
                 "--id-col", "id", "--out", str(out)]) == 0
    assert pd.read_csv(out)["prediction"].isna().all()
    assert "2 row(s) got no usable prediction" in capsys.readouterr().err


def test_an_unreadable_model_file_is_named_without_its_server_folder(trained_study, app_test, tmp_path):  # noqa: F811
    from db.models import ModelArtifact

    with session_scope() as session:
        for artifact in session.scalars(select(ModelArtifact)):
            garbage = tmp_path / Path(artifact.path).name
            garbage.write_bytes(b"this is not a model")
            artifact.path = str(garbage)
    at = app_test(timeout=120)
    at.switch_page("pages/predict.py")
    at.run()
    assert not at.exception, at.exception
    message = at.error[0].value
    assert message.startswith("This model cannot be used: seed") and "cannot be read as a COSNet artifact" in message
    assert str(tmp_path) not in message
