"""Artifacts: one file per model, weights_only loading, identical predictions, ensembles."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cosnet_core.artifact import ArtifactError, artifact_paths, load_artifact, load_ensemble, save_artifact
from cosnet_core.train import fit
from tests.cosnet_core.test_train import tiny_config, toy_samples

pytestmark = pytest.mark.slow  # trains small models (seconds each)


@pytest.fixture(scope="module")
def fitted():
    rows = toy_samples(40)
    result = fit(rows[:28], rows[28:34], tiny_config(epochs=2, mode="bimodal-aug", weight="vector", fusion="concat"))
    return result, rows[34:]


def test_round_trip_with_weights_only_gives_identical_predictions(fitted, tmp_path) -> None:
    result, test = fitted
    path = save_artifact(tmp_path / "model.pt", result)
    raw = torch.load(path, weights_only=True)  # plain types only
    assert raw["train_config"]["mode"] == "bimodal-aug"
    assert raw["cosnet_config"]["fusion"] == "concat"
    assert raw["target_mean"] == result.normalizer.mean and raw["target_std"] == result.normalizer.std
    assert raw["embedding_version"].startswith("matscholar200")
    assert raw["featurizer_version"] and raw["code_version"]
    assert raw["cell_std"] == result.model.cell_std.tolist()
    assert raw["best_epoch"] == result.best_epoch and len(raw["history"]) == 2

    loaded = load_artifact(path)
    before, after = result.predict(test), loaded.predict(test)
    assert np.array_equal(before.prediction, after.prediction)
    assert np.array_equal(before.composition_weight, after.composition_weight)
    assert np.array_equal(before.composition_repr, after.composition_repr)
    assert after.structure_repr.shape == (len(test), 8)
    assert after.has_structure.tolist() == [s.structure is not None for s in test]
    assert loaded.mode == "bimodal-aug"


def test_prediction_needs_no_target(fitted, tmp_path) -> None:
    result, test = fitted
    loaded = load_artifact(save_artifact(tmp_path / "model.pt", result))
    import dataclasses

    unlabelled = [dataclasses.replace(s, target=None) for s in test]
    assert np.array_equal(loaded.predict(unlabelled).prediction, result.predict(test).prediction)


def test_ensemble_of_a_folder_gives_mean_and_std(fitted, tmp_path) -> None:
    result, test = fitted
    rows = toy_samples(40)
    other = fit(rows[:28], rows[28:34], tiny_config(epochs=2, seed=1, weight="vector", fusion="concat"))
    save_artifact(tmp_path / "models" / "seed_0.pt", result)
    save_artifact(tmp_path / "models" / "seed_1.pt", other)
    assert [p.name for p in artifact_paths(tmp_path)] == ["seed_0.pt", "seed_1.pt"]
    table = load_ensemble(tmp_path).predict(test)
    first, second = result.predict(test).prediction, other.predict(test).prediction
    assert np.allclose(table["prediction"], (first + second) / 2)
    assert np.allclose(table["prediction_std"], np.abs(first - second) / 2)
    assert list(table.columns) == ["id", "prediction", "prediction_std", "has_structure", "w_c"]


def test_bad_artifacts_are_refused_with_the_file_name(tmp_path) -> None:
    with pytest.raises(ArtifactError, match="no such model file"):
        load_artifact(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    with pytest.raises(ArtifactError, match="junk.pt"):
        load_artifact(junk)
    torch.save({"format": "something-else"}, tmp_path / "other.pt")
    with pytest.raises(ArtifactError, match="not a COSNet artifact"):
        load_artifact(tmp_path / "other.pt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArtifactError, match="no \\*.pt model files"):
        artifact_paths(tmp_path / "empty")
