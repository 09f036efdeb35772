"""The training rows a served model's forest is re-fitted from (db.results.training_sets)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sqlalchemy import select

from cosnet_core.baselines import add_forest_blend
from cosnet_core.composition import parse_formula
from db.engine import session_scope
from db.models import Entry, ModelArtifact, Prediction, Run
from db.results import model_choices, training_sets
from tests.pages.results_fixtures import store_study


def _stored(seeds: tuple[int, ...]) -> None:
    """store_study's runs, each with an artifact row so that the Predict page lists them."""
    store_study(n_entries=12, seeds=seeds, modes=("composition",))
    with session_scope() as session:
        for run in session.scalars(select(Run)).all():
            session.add(ModelArtifact(run_id=run.id, path=f"/models/{run.id}.pt", sha256="0" * 64, size_bytes=1))


def test_each_runs_training_rows_in_file_order_with_their_targets(app_env):
    _stored((0, 1))
    (served,) = [c for c in model_choices() if c.served]
    assert len(served.run_ids) == 2
    sets = training_sets(served.run_ids)
    with session_scope() as session:
        entries = session.scalars(select(Entry).order_by(Entry.row_number)).all()
        expected = [(e.composition, e.target) for e in entries
                    if session.scalar(select(Prediction.split).where(Prediction.entry_id == e.id,
                                                                     Prediction.run_id == served.run_ids[0])) == "train"]
    assert len(sets) == 2 and sets[0] == sets[1]  # store_study gives both seeds the same rows
    assert sets[0] == ([c for c, _ in expected], [t for _, t in expected]) and len(expected) == 6
    single = [c for c in model_choices() if not c.served][0]
    assert len(single.run_ids) == 1 and training_sets(single.run_ids) == sets[:1]
    assert training_sets([]) == [] and training_sets([9999]) == []


def test_the_blend_is_the_fixed_half_half_mean_with_the_forest(app_env):
    _stored((0,))
    sets = training_sets([c for c in model_choices() if c.served][0].run_ids)
    table = pd.DataFrame({"prediction": [1.0, 3.0], "prediction_std": [0.1, 0.2]})
    compositions = [parse_formula("NaCl"), parse_formula("MgO")]
    blended = add_forest_blend(table, sets, compositions)
    assert table["prediction"].tolist() == [1.0, 3.0]  # the input is not changed
    np.testing.assert_allclose(blended["prediction_ensemble"], [1.0, 3.0])
    np.testing.assert_allclose(blended["prediction"], 0.5 * np.array([1.0, 3.0]) + 0.5 * blended["prediction_forest"])
    assert blended["prediction_std"].tolist() == [0.1, 0.2]
