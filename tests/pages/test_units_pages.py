"""Issue 16, item 3 on the pages: the Datasets page asks about temperatures in the other unit (never filtering or
converting silently), records the temperature unit, keeps significant digits in its preview and suggests log10 for
S/cm; Predict labels its numbers with the unit and the back-transformed value of a log10 target."""

from __future__ import annotations

import io

import pytest

from db import datasets as store
from db.engine import session_scope
from db.models import Entry
from tests.pages.test_datasets_page import _import_button, _open, _upload, _url
from tests.pages.test_predict_page import _page, store_as_study, trained_artifacts  # noqa: F401 (fixture)

TABLE = (b"formula,sigma (S/cm),temperature\nLi3PS4,1e-4,25\nLi7La3Zr2O12,3e-4,298\nLiF,4.4e-18,27\n"
         b"LiCl,1e-8,30\nLiBr,2e-8,26\n")


def _question(at):
    return next((r for r in at.radio if "their temperature looks like K" in r.label), None)


def test_datasets_page_asks_about_kelvin_rows_and_records_the_temperature_unit(app_test, app_env):
    at = _upload(_open(app_test), "t.csv", TABLE)
    assert next(t for t in at.text_input if t.key.startswith("opt_unit_")).value == "S/cm"
    assert next(c for c in at.checkbox if c.key.startswith("opt_log10_")).value is True  # S/cm → log10
    assert next(r for r in at.radio if r.label == "Unit of the temperature column").value == "°C"
    question = _question(at)
    assert question is not None and question.label.startswith("Row(s) 3:") and question.value is None
    assert _import_button(at).disabled  # nothing is imported until the user answers
    assert any("looks like K in a column of mostly °C values" in w.value for w in at.warning)
    preview = next(d.value for d in at.dataframe if "log10(σ / S cm⁻¹)" in d.value.columns)
    assert preview.loc[4, "log10(σ / S cm⁻¹)"] == "-17.3565"  # log10(4.4e-18), six significant digits

    question.set_value("convert").run()
    assert not at.exception, at.exception
    assert not _import_button(at).disabled
    _import_button(at).click().run()
    assert not at.exception, at.exception
    version = store.list_datasets(_url(app_env))[0].versions[0]
    assert version.temperature_unit == "°C" and version.target_unit == "S/cm"
    assert "temperatures in °C" in " ".join(c.value for c in at.caption)
    with session_scope(_url(app_env)) as session:
        converted = session.query(Entry).filter(Entry.row_number == 3).one()
        assert converted.temperature == pytest.approx(24.85)


def test_datasets_preview_keeps_significant_digits_of_small_raw_values(app_test, app_env):
    at = _upload(_open(app_test), "t.csv", b"formula,target\nLiF,4.4e-18\nLiCl,1.5e-8\nLiBr,2\n")
    preview = next(d.value for d in at.dataframe if "target" in d.value.columns and "status" in d.value.columns)
    assert preview["target"].tolist() == ["4.4e-18", "1.5e-08", "2"]


@pytest.fixture()
def conductivity_study(app_env, trained_artifacts):  # noqa: F811
    """The tiny trained artifacts, stored as a study of a log10 conductivity dataset."""
    store_as_study(trained_artifacts, "li", target_name="Ionic conductivity (S cm-1)", target_unit="S/cm",
                   target_transform="log10")
    return trained_artifacts


def test_predict_shows_the_unit_and_the_back_transformed_value(conductivity_study, app_test, downloads):
    import pandas as pd

    from cosnet_core.units import back_transformed

    at = _page(app_test)
    at.text_input[0].input("NaI").run()
    next(b for b in at.button if b.label == "Predict").click().run()
    assert not at.exception, at.exception
    value = float(next(m.value for m in at.metric if m.label == "Prediction, log10(σ / S cm⁻¹)"))
    shown = " ".join(m.value for m in at.markdown)
    linear = back_transformed(value, "Ionic conductivity (S cm-1)", "S/cm", "log10")
    assert linear.startswith("σ ≈ ") and linear.endswith(" S/cm") and f"**{linear}**" in shown

    batch = at.tabs[1]
    batch.get("file_uploader")[0].upload("new.csv", b"formula\nNaI\nKBr\n", "text/csv").run()
    next(b for b in at.button if b.label == "Predict the table").click().run()
    result = pd.read_csv(io.BytesIO(downloads(at.download_button[0])))
    assert (result["unit"] == "log10(σ / S cm⁻¹)").all()
    assert result["10^prediction (S/cm)"].to_numpy() == pytest.approx(10.0 ** result["prediction"].to_numpy())
    shown = at.dataframe[0].proto.columns  # the page shows it as 5.0e-08, not 0.00000005
    assert '"10^prediction (S/cm)"' in shown and '"%.2e"' in shown


def test_results_download_carries_the_unit(app_test, downloads):
    import pandas as pd

    from tests.pages.results_fixtures import store_study

    store_study(n_entries=12)
    at = app_test()
    at.switch_page("pages/results.py")
    at.run()
    assert not at.exception, at.exception
    rows = pd.read_csv(io.BytesIO(downloads(at.download_button[0])))
    assert len(rows) and (rows["unit"] == "Band gap (eV)").all()
