"""The ``authors`` preset (issue 15, item 3): the authors' published choices side by side with the project's."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from pymatgen.core import Lattice, Structure

from cosnet_core.cli import main
from cosnet_core.embeddings import load_element_embedding
from cosnet_core.hparams import AUTHORS_PRESET_DEPARTURES, PRESETS, preset_train_settings
from cosnet_core.models.cosnet import AuthorsHead, cell_feature_names, select_cell_features
from cosnet_core.structure import CELL_DESCRIPTOR_NAMES, crystal_graph
from cosnet_core.train import TrainConfig, build_model
from tests.cosnet_core.test_cli import table  # noqa: F401  (the CLI's toy table fixture)

TINY = ["--epochs", "2", "--hidden-dim", "8", "--batch-size", "16", "--device", "cpu", "--quiet"]


def test_the_authors_preset_is_their_train_py() -> None:
    config = TrainConfig(**preset_train_settings("authors"))
    # train.py @ 2c472c7: get_loss returns the MSE; Adamax lr 1e-2, weight decay 0.1, decay 0.96, batch 128
    assert config.loss == "mse"
    assert (config.lr, config.weight_decay, config.lr_decay, config.batch_size) == (1e-2, 0.1, 0.96, 128)
    assert (config.roost_mlp_hidden, config.roost_mlp_batchnorm, config.roost_power_init) == (128, True, "normal")
    assert (config.head, config.cell_features, config.embedding) == ("authors", "authors", "matscholar200")
    assert (config.init_from, config.descriptors, PRESETS["authors"]["serve_with_forest"]) == (None, "none", False)
    # the project's defaults keep their own choices
    defaults = TrainConfig(**preset_train_settings("defaults"))
    assert (defaults.loss, defaults.weight_decay, defaults.head, defaults.cell_features) == ("l1", 1e-4, "mlp", "all")
    with pytest.raises(ValueError, match="unknown preset"):
        preset_train_settings("paper")


def test_the_authors_architecture() -> None:
    torch.manual_seed(0)
    model = build_model(TrainConfig(**preset_train_settings("authors")), 200)
    layer = model.composition_encoder.layers[0]
    # SimpleNetwork(2·64 → [128] → 1) with BatchNorm: Linear(128, 128) → BatchNorm(128) → SiLU → Linear(128, 1)
    gate = layer.gates[0]
    assert gate.channel_list == [128, 128, 1] and gate.plain_last and not gate.act_first  # norm, then SiLU
    assert isinstance(gate.act, torch.nn.SiLU) and [type(norm).__name__ for norm in gate.norms] == ["BatchNorm"]
    assert model.composition_encoder.readout.messages[0].norms[0].allow_single_element
    assert not torch.allclose(layer.powers.detach(), torch.ones(3))  # drawn from a normal, not 1
    assert model.config.cell_dim == 8 and model.structure_encoder.hybrid[0].in_features == 64 + 8

    head = model.head
    assert isinstance(head, AuthorsHead)
    # with every block's Linear at zero, BN(0) = 0 and SiLU(0) = 0: only the skips remain, identity (64 → 64)
    # then a bias-free Linear (64 → 32), so the head is output(skip_2(update(M)))
    head.eval()
    for block in head.blocks:
        torch.nn.init.zeros_(block.lins[0].weight)
        torch.nn.init.zeros_(block.lins[0].bias)
    fused = torch.randn(5, 64)
    expected = head.output(head.skips[1](head.update(fused)))
    assert torch.allclose(head(fused), expected, atol=1e-6)
    assert isinstance(head.skips[0], torch.nn.Identity) and head.skips[1].bias is None


def test_cell_feature_sets_on_a_real_cell() -> None:
    cell = Structure(Lattice.cubic(4.2), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    raw = crystal_graph(cell, load_element_embedding("matscholar200")).cell
    authors = select_cell_features(raw, "authors")
    # a, b, c, α, β, γ of the primitive cell, cubic = 7 (the authors' crystal_system_to_int), Pm-3m = 221
    assert torch.allclose(authors, torch.tensor([[4.2, 4.2, 4.2, 90.0, 90.0, 90.0, 7.0, 221.0]]), atol=1e-4)
    no_volume = select_cell_features(raw, "no-volume")
    names = cell_feature_names("no-volume")
    assert len(names) == 16 and "volume_per_atom" not in names and "density" not in names
    kept = [CELL_DESCRIPTOR_NAMES.index(name) for name in names]
    assert torch.equal(no_volume, raw[:, kept])
    assert float(raw[0, CELL_DESCRIPTOR_NAMES.index("volume_per_atom")]) == pytest.approx(4.2**3 / 2, rel=1e-5)


@pytest.mark.slow
def test_cli_train_with_the_authors_preset_records_it(table, tmp_path) -> None:  # noqa: F811
    path, folder = table
    common = ["train", "--data", str(path), "--formula-col", "formula", "--target-col", "value", "--structure-col",
              "cif", "--structures", str(folder), "--id-col", "name", "--seeds", "0", "--split", "grouped", *TINY]
    out = tmp_path / "authors"
    assert main([*common, "--preset", "authors", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["preset"] == "authors"
    assert metrics["preset_departures"] == list(AUTHORS_PRESET_DEPARTURES)
    config = metrics["train_config"]
    assert (config["loss"], config["weight_decay"], config["lr_decay"], config["init_from"]) == ("mse", 0.1, 0.96, None)
    assert (config["head"], config["cell_features"], config["roost_mlp_batchnorm"]) == ("authors", "authors", True)
    assert config["hidden_dim"] == 8 and config["epochs"] == 2  # explicit options override the preset
    # the authors serve COSNet alone: predict does not blend with the forest unless asked
    predicted = tmp_path / "predicted.csv"
    assert main(["predict", "--model", str(out), "--data", str(path), "--formula-col", "formula",
                 "--out", str(predicted)]) == 0
    assert "prediction_forest" not in pd.read_csv(predicted).columns

    out = tmp_path / "override"
    assert main([*common, "--preset", "authors", "--loss", "l1", "--cell-features", "no-volume", "--out", str(out)]) == 0
    config = json.loads((out / "metrics.json").read_text())["train_config"]
    assert (config["loss"], config["cell_features"], config["weight_decay"]) == ("l1", "no-volume", 0.1)


def test_a_study_payload_takes_its_preset_and_keeps_explicit_settings() -> None:
    from jobs.training import validate_study_payload

    payload = validate_study_payload({"dataset_version_id": 1, "preset": "authors", "train": {"loss": "l1"}})
    assert payload["preset"] == "authors"
    assert (payload["train"]["loss"], payload["train"]["weight_decay"], payload["train"]["head"]) == ("l1", 0.1, "authors")
    bare = validate_study_payload({"dataset_version_id": 1, "train": {"epochs": 3}})
    assert bare["preset"] is None and bare["train"] == {"epochs": 3}  # no preset: a bare TrainConfig plus train
    with pytest.raises(ValueError, match="preset must be one of defaults, authors"):
        validate_study_payload({"dataset_version_id": 1, "preset": "paper"})
