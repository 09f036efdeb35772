"""Issue 16, item 2: a model file written before artifacts kept their training rows still serves predictions; the
Predict page then takes the nearest training compositions from the runs' stored training rows, each row once."""

from __future__ import annotations

import pytest
import torch

from cosnet_core.applicability import TrainingDomain, distinct_rows
from tests.pages.test_predict_forest import study_with_training_rows  # noqa: F401 (fixture)
from tests.pages.test_predict_page import _page, trained_artifacts, trained_study  # noqa: F401 (fixtures)


@pytest.fixture()
def old_study(study_with_training_rows):  # noqa: F811
    """The study's two model files without their training rows, as written before 2026-12-03."""
    for path in study_with_training_rows:
        artifact = torch.load(path, map_location="cpu", weights_only=True)
        artifact.pop("training_formulas", None), artifact.pop("training_targets", None)
        torch.save(artifact, path)
    return study_with_training_rows


def test_seeds_sharing_their_training_rows_count_each_row_once():
    formulas, targets = distinct_rows([(["NaCl", "KCl"], [0.0, 1.0]), (["NaCl", "LiF"], [0.0, 2.0])])
    assert (formulas, targets) == (["NaCl", "KCl", "LiF"], [0.0, 1.0, 2.0])
    domain = TrainingDomain(["NaCl", "Na2Cl2", "KCl"], [0.0, 1.0, 3.0])  # one composition measured twice
    nearest = domain.nearest(parse("NaCl"), k=2)
    assert (nearest[0].formula, nearest[0].target, nearest[0].n_rows) == ("NaCl", 0.5, 2)


def parse(formula: str):
    from cosnet_core.composition import parse_formula

    return parse_formula(formula)


def test_an_old_model_file_gets_its_neighbours_from_the_stored_training_rows(old_study, app_test):
    at = _page(app_test)
    at.radio[0].set_value("none").run()
    at.text_input[0].input("NaCl").run()
    next(b for b in at.button if b.label == "Predict").click().run()
    assert not at.exception, at.exception
    nearest = next(c.value for c in at.caption if c.value.startswith("Nearest training compositions"))
    assert "NaCl (0; distance 0.000)" in nearest  # both seeds trained on it: one row, not a "mean of 2 rows"
