"""The Predict page's 'Average with a random forest' checkbox serves the ensemble + forest (50/50) blend."""

import pytest
from sqlalchemy import select

from cosnet_core.artifact import load_ensemble
from cosnet_core.baselines import forest_predictions
from cosnet_core.composition import parse_formula
from cosnet_core.data import Sample
from db.engine import session_scope
from db.models import Entry, Prediction, Run
from tests.pages.test_predict_page import SALTS, _page, trained_artifacts, trained_study  # noqa: F401 (fixtures)


@pytest.fixture()
def study_with_training_rows(trained_study):  # noqa: F811
    """test_predict_page's study of two trained seeds, whose runs list their training rows (the first 9 salts)."""
    with session_scope() as session:
        runs = session.scalars(select(Run)).all()
        entries = [Entry(dataset_version_id=runs[0].dataset_version_id, row_number=i + 2, raw_formula=f,
                         composition=f, target=float(i % 4), status="kept") for i, f in enumerate(SALTS)]
        session.add_all(entries)
        session.flush()
        session.add_all([Prediction(run_id=run.id, entry_id=entry.id, split="train" if i < 9 else "test",
                                    target=entry.target, value=0.0, has_structure=False)
                         for run in runs for i, entry in enumerate(entries)])
    return trained_study


def test_the_checkbox_serves_the_ensemble_averaged_with_the_forest(study_with_training_rows, app_test):
    at = _page(app_test)
    at.checkbox[0].check().run()
    at.radio[0].set_value("none").run()  # a bimodal model: no structure given
    at.text_input[0].input("NaI").run()
    next(b for b in at.button if b.label == "Predict").click().run()
    assert not at.exception, at.exception
    composition = parse_formula("NaI")
    ensemble = load_ensemble(study_with_training_rows[0].parent).predict(
        [Sample(id="x", composition=composition, target=None)]).iloc[0]["prediction"]
    rows = (SALTS[:9], [float(i % 4) for i in range(9)])
    forest = forest_predictions([rows, rows], [composition])[0]  # both seeds trained on the same rows here
    shown = float(next(m.value for m in at.metric if m.label.startswith("Prediction")))
    assert shown == pytest.approx(0.5 * ensemble + 0.5 * forest, abs=5e-4)
    assert any(c.value.startswith("Ensemble + forest (50/50)") for c in at.caption)
