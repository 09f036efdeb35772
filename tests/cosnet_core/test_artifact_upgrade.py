"""Issue 17, item 5: the MLPs and BatchNorms are torch-geometric's, and what the former code wrote still works.

The files in ``artifacts_v1/`` were written by the code before the change (``artifacts_v1/make.py``, commit a0f9116)
together with what that code computed from them; the current code must compute the same numbers (to 1e-6).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch_geometric.nn import MLP, BatchNorm

from cosnet_core.artifact import ARTIFACT_FORMAT_VERSION, load_artifact
from cosnet_core.models import CosNet, CosNetConfig
from cosnet_core.models.blocks import mlp, upgrade_state_dict
from cosnet_core.pretrain import ENCODER_FORMAT_1, load_checkpoint, load_encoder_into
from cosnet_core.train import CHECKPOINT_FORMAT_1, TrainConfig, build_model, fit
from tests.cosnet_core.artifacts_v1.make import CONFIGS, split
from tests.cosnet_core.test_train import tiny_config

V1 = Path(__file__).resolve().parent / "artifacts_v1"


def _expected(name: str) -> dict[str, np.ndarray]:
    return {key: np.asarray(value) for key, value in json.loads((V1 / f"{name}.json").read_text()).items()}


def _assert_same(predictions, expected: dict[str, np.ndarray]) -> None:  # noqa: ANN001 - Predictions
    for key, values in expected.items():
        np.testing.assert_allclose(getattr(predictions, key), values, rtol=0, atol=1e-6, err_msg=key)


@pytest.mark.parametrize("name", ["plain", "authors"])
def test_a_format_1_artifact_predicts_what_it_predicted_before(name: str) -> None:
    raw = torch.load(V1 / f"{name}.pt", weights_only=True)
    assert raw["format_version"] == 1 < ARTIFACT_FORMAT_VERSION
    assert "head.0.weight" in raw["state_dict"] or "head.update.0.weight" in raw["state_dict"]  # nn.Sequential keys
    loaded = load_artifact(V1 / f"{name}.pt")
    state = loaded.model.state_dict()
    assert not any(key.startswith("head.0.") for key in state)  # the model has the new modules …
    for key, tensor in upgrade_state_dict(loaded.model, raw["state_dict"]).items():
        assert torch.equal(state[key], tensor), key  # … holding the file's weights, every one of them
    _assert_same(loaded.predict(split()[2]), _expected(name))


def test_a_format_1_training_checkpoint_resumes_to_the_run_it_would_have_finished(tmp_path) -> None:
    checkpoint = torch.load(V1 / "resume.pt", weights_only=True)
    assert checkpoint["format"] == CHECKPOINT_FORMAT_1 and checkpoint["epoch"] == 1
    train, val, held_out = split()
    config = tiny_config(epochs=3, mode="bimodal-aug", **CONFIGS["authors"])
    resumed = fit(train, val, config, resume_from=V1 / "resume.pt", checkpoint_path=tmp_path / "next.pt")
    assert [report.epoch for report in resumed.history] == [1, 2, 3]
    # Adamax's running moments were stored per parameter position: wrongly ordered, epochs 2-3 would differ
    _assert_same(resumed.predict(held_out), _expected("resume"))


def test_the_shipped_format_1_encoder_still_starts_a_model_with_the_same_numbers() -> None:
    assert load_checkpoint("roost64-dft4")["format"] == ENCODER_FORMAT_1
    model = build_model(dataclasses.replace(TrainConfig(), init_from="roost64-dft4"), 200)
    load_encoder_into(model, "roost64-dft4", embedding_name="matscholar200")
    from cosnet_core.data import BimodalDataset, collate_bimodal
    from cosnet_core.embeddings import load_element_embedding

    batch = collate_bimodal(BimodalDataset(split()[2], load_element_embedding("matscholar200")).items)
    model.eval()
    with torch.no_grad():
        encoded = model.composition_encoder(batch.composition).numpy()
    expected = np.asarray(json.loads((V1 / "pretrained.json").read_text())["composition_repr"])
    np.testing.assert_allclose(encoded, expected, rtol=0, atol=1e-6)


def test_the_blocks_are_the_librarys_and_a_seed_draws_what_nn_linear_draws() -> None:
    config = CosNetConfig(element_dim=200, hidden_dim=8, roost_layers=1, roost_heads=1, roost_mlp_batchnorm=True,
                          head="authors", head_hidden=(8, 4))
    model = CosNet(config)
    kinds = {type(module) for module in model.modules()}
    assert MLP in kinds and BatchNorm in kinds and torch.nn.BatchNorm1d in kinds  # BatchNorm1d inside BatchNorm only
    assert all(norm.allow_single_element for norm in model.modules() if isinstance(norm, BatchNorm))
    assert len(model.head.blocks) == 2 and all(isinstance(block, MLP) for block in model.head.blocks)
    # one draw per weight, in torch.nn.Linear's order, and the generator left where those Linears leave it
    torch.manual_seed(5)
    network = mlp(6, (4,), 2)
    after = torch.rand(3)
    torch.manual_seed(5)
    first, second = torch.nn.Linear(6, 4), torch.nn.Linear(4, 2)
    assert torch.equal(network.lins[0].weight, first.weight) and torch.equal(network.lins[1].bias, second.bias)
    assert torch.equal(torch.rand(3), after)


def test_a_single_row_trains_through_running_statistics_without_changing_them() -> None:
    network = mlp(3, (4,), 1)
    network.train()
    norm = network.norms[0]
    before = norm.module.running_mean.clone()
    row = torch.randn(1, 3)
    out = network(row)
    assert torch.equal(norm.module.running_mean, before)
    network.eval()
    assert torch.allclose(out, network(row))  # exactly what eval mode computes
