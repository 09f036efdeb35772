"""The Predict page on a model trained in the test: one formula, and a batch with one bad row."""

import io

import pandas as pd
import pytest
from pymatgen.core import Lattice, Structure

from cosnet_core.artifact import load_ensemble, save_artifact
from cosnet_core.composition import parse_formula
from cosnet_core.data import Sample
from cosnet_core.train import TrainConfig, fit
from db.engine import session_scope
from db.models import Dataset, DatasetVersion, ModelArtifact, Run, Study

SALTS = ["NaCl", "KCl", "LiF", "NaF", "KF", "LiCl", "RbCl", "CsCl", "NaBr", "KBr", "LiBr", "RbF"]


def _samples() -> list[Sample]:
    rows = []
    for i, formula in enumerate(SALTS):
        composition = parse_formula(formula)
        structure = None
        if i % 3 == 0:
            a, b = (str(e) for e in composition.elements)
            structure = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.0 + 0.1 * i), [a, b],
                                                  [[0, 0, 0], [0.5, 0.5, 0.5]])
        rows.append(Sample(id=f"s{i}", composition=composition, target=float(i % 4), structure=structure,
                           formula=formula))
    return rows


@pytest.fixture(scope="module")
def trained_artifacts(tmp_path_factory) -> list:
    """Two seeds of a tiny bimodal model, trained once for this module."""
    samples = _samples()
    folder = tmp_path_factory.mktemp("artifacts")
    paths = []
    for seed in (0, 1):
        config = TrainConfig(mode="bimodal-aug", epochs=2, batch_size=8, hidden_dim=16, seed=seed, device="cpu",
                             head_hidden=(16,), weight_hidden=(16,), roost_layers=1, cgcnn_layers=1)
        paths.append(save_artifact(folder / f"seed{seed}.pt", fit(samples[:9], samples[9:], config)))
    return paths


def store_as_study(paths, name: str = "salts", **version_fields) -> None:
    """Store the two artifacts ``paths`` as a finished bimodal-aug study of a new dataset version."""
    with session_scope() as session:
        version = DatasetVersion(dataset=Dataset(name=name), number=1, **version_fields)
        study = Study(name=name, dataset_version=version, modes=["bimodal-aug"], seeds=[0, 1], status="succeeded")
        session.add(study)
        session.flush()
        for seed, path in zip((0, 1), paths, strict=True):
            run = Run(study=study, dataset_version_id=version.id, mode="bimodal-aug", seed=seed, status="succeeded")
            session.add(run)
            session.flush()
            session.add(ModelArtifact(run_id=run.id, path=str(path), sha256="0" * 64, size_bytes=path.stat().st_size))


@pytest.fixture()
def trained_study(app_env, trained_artifacts):
    """The trained artifacts stored as a finished study."""
    store_as_study(trained_artifacts, target_name="gap", target_unit="eV")
    return trained_artifacts


def _page(app_test):
    at = app_test(timeout=120)
    at.switch_page("pages/predict.py")
    at.run()
    assert not at.exception, at.exception
    return at


def test_single_formula_prediction_with_ensemble_spread(trained_study, app_test):
    at = _page(app_test)
    assert "ensemble of 2 seeds" in at.selectbox[0].value
    at.text_input[0].input("NaI").run()
    next(b for b in at.button if b.label == "Predict").click().run()
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert "Prediction, gap (eV)" in metrics  # the unit of the model's dataset (issue 16, item 3)
    metrics["Prediction"] = metrics["Prediction, gap (eV)"]
    expected = load_ensemble(trained_study[0].parent).predict(
        [Sample(id="x", composition=parse_formula("NaI"), target=None)]
    ).iloc[0]
    assert float(metrics["Prediction"]) == pytest.approx(expected["prediction"], abs=5e-4)
    assert float(metrics["Ensemble std"]) == pytest.approx(expected["prediction_std"], abs=5e-4)
    assert float(metrics["Composition weight w_C"]) == 1.0  # no structure given: w_C is exactly 1


def test_unknown_element_gets_a_reason(trained_study, app_test):
    at = _page(app_test)
    at.text_input[0].input("Xx2O").run()
    next(b for b in at.button if b.label == "Predict").click().run()
    assert "Cannot predict" in at.error[0].value and "Xx2O" in at.error[0].value


def test_batch_with_one_bad_formula_predicts_the_others(trained_study, app_test, downloads):
    at = _page(app_test)
    table = b"name,formula\na,NaCl\nb,Qz3\nc,KBr\nd,LiI\n"
    uploader = at.tabs[1].get("file_uploader")[0]
    uploader.upload("new.csv", table, "text/csv").run()
    at.tabs[1].selectbox[0].set_value("formula")
    at.tabs[1].selectbox[1].set_value("name").run()
    next(b for b in at.button if b.label == "Predict the table").click().run()
    assert not at.exception, at.exception
    assert "1 row(s) could not be predicted" in at.warning[0].value
    result = pd.read_csv(io.BytesIO(downloads(at.download_button[0])))
    assert sorted(result["id"]) == ["a", "b", "c", "d"]
    good = result[result["reason"].isna()]
    assert sorted(good["id"]) == ["a", "c", "d"] and good["prediction"].notna().all()
    bad = result.set_index("id").loc["b"]
    assert "Qz3" in bad["composition"] and "formula" in bad["reason"]


def test_each_study_serves_its_seed_ensemble_best_mode_by_validation_first(app_env):
    from db.results import model_choices

    with session_scope() as session:
        version = DatasetVersion(dataset=Dataset(name="salts"), number=1, target_name="gap")
        older = Study(name="older", dataset_version=version, modes=["composition", "bimodal-aug"], seeds=[0, 1])
        newer = Study(name="newer", dataset_version=version, modes=["composition"], seeds=[0])
        session.add_all([older, newer])
        session.flush()
        # composition has the lower test error but the higher validation error: validation decides
        for study, mode, seed, val_mae in [(older, "composition", 0, 0.5), (older, "composition", 1, 0.7),
                                           (older, "bimodal-aug", 0, 0.3), (older, "bimodal-aug", 1, 0.4),
                                           (newer, "composition", 0, 0.9)]:
            run = Run(study=study, dataset_version_id=version.id, mode=mode, seed=seed, status="succeeded",
                      best_val_mae=val_mae, test_metrics={"all": {"mae": 0.1 if mode == "composition" else 0.9}})
            session.add(run)
            session.flush()
            session.add(ModelArtifact(run_id=run.id, path=f"/models/{study.name}-{mode}-{seed}.pt", sha256="0" * 64,
                                      size_bytes=1))
    choices = model_choices()
    served = [c for c in choices if c.served]
    assert [c.label for c in served] == [
        "study 2 'newer': composition, 1 seed, validation MAE 0.9",
        "study 1 'older': bimodal-aug, ensemble of 2 seeds, validation MAE 0.35",
        "study 1 'older': composition, ensemble of 2 seeds, validation MAE 0.6",
    ]
    assert served[1].paths == ("/models/older-bimodal-aug-0.pt", "/models/older-bimodal-aug-1.pt")
    assert choices[: len(served)] == served and len(choices) == len(served) + 5  # then every single run
