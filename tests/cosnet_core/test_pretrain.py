"""Pretraining g_C on computed tables and starting COSNet from it (``init_from``), on small tables made here."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import torch

from cosnet_core.composition import element_fractions, parse_formula
from cosnet_core.data import Sample
from cosnet_core.embeddings import load_element_embedding
from cosnet_core.pretrain import (
    ENCODER_FORMAT,
    ENCODER_FORMAT_1,
    MANIFEST,
    PRETRAINED_DIR,
    PretrainConfig,
    PretrainError,
    TaskTable,
    load_checkpoint,
    load_encoder_into,
    pretrain,
    read_manifest,
    read_task,
    sha256_of,
)
from cosnet_core.train import TrainConfig, build_model, fit

HIDDEN = 16
ELEMENTS = ["Li", "Na", "K", "Mg", "Ca", "Fe", "Ni", "Cu", "Zn", "Al"]
ANIONS = ["O", "S", "F", "Cl", "N"]


def _formulas() -> list[str]:
    return [f"{m}{i}{x}{j}" for m in ELEMENTS for x in ANIONS for i, j in ((1, 1), (2, 1), (1, 2))]


def _electronegativity_mean(formula: str) -> float:
    from pymatgen.core import Element

    return sum(Element(symbol).X * fraction for symbol, fraction in element_fractions(parse_formula(formula)))


@pytest.fixture()
def tables(tmp_path) -> list[TaskTable]:
    formulas = _formulas()
    first = pd.DataFrame({"formula": formulas, "target": [_electronegativity_mean(f) for f in formulas]})
    # Polymorphs: the same composition twice (as K4O4 and KO) with two values, averaged by read_task.
    first = pd.concat([first, pd.DataFrame({"formula": ["K2O2"], "target": [first.target[first.formula == "K1O1"].iloc[0] + 1.0]})])
    second = pd.DataFrame({"formula": formulas[::2], "target": [len(parse_formula(f)) * 1.5 for f in formulas[::2]]})
    second = pd.concat([second, pd.DataFrame({"formula": ["Xx2O", "Li2O"], "target": [1.0, float("nan")]})])
    paths = []
    for name, frame in (("en", first), ("count", second)):
        path = tmp_path / f"{name}.csv.gz"
        frame.to_csv(path, index=False)
        paths.append(TaskTable(name, path))
    return paths


def test_read_task_averages_polymorphs_and_skips_unusable_rows(tables) -> None:
    first = read_task(tables[0])
    assert len(first) == len(_formulas())  # K2O2 is the composition of K1O1
    key = [k for k in first.index if k.startswith("K") and "O0.5" in k and len(k.split()) == 2]
    assert len(key) == 1
    assert first[key[0]] == pytest.approx(_electronegativity_mean("KO") + 0.5)
    second = read_task(tables[1])
    assert len(second) == len(_formulas()[::2])  # "Xx2O" does not parse and the NaN target is dropped
    assert read_task(tables[1], max_rows=10).size == 10


def test_pretraining_a_tiny_table_end_to_end(tables, tmp_path) -> None:
    config = PretrainConfig(epochs=6, batch_size=32, hidden_dim=HIDDEN, val_fraction=0.2, device="cpu")
    result = pretrain(tables, tmp_path / "enc.pt", config)
    assert [report["epoch"] for report in result.history] == [1, 2, 3, 4, 5, 6]
    assert 1 <= result.best_epoch <= 6
    assert [task["name"] for task in result.tasks] == ["en", "count"]
    assert result.tasks[0]["n_train"] + result.tasks[0]["n_val"] == len(_formulas())
    assert all(np.isfinite(task["val_mae"]) and task["val_mae"] > 0 for task in result.tasks)
    checkpoint = torch.load(result.path, weights_only=True)
    assert checkpoint["format"] == ENCODER_FORMAT
    assert checkpoint["encoder_config"]["hidden_dim"] == HIDDEN
    # The heads and g_C learn: the training loss of the last epoch is clearly below the first one's.
    assert result.history[-1]["train_loss"] < 0.8 * result.history[0]["train_loss"]


def test_pretraining_refuses_a_missing_table_and_a_table_without_columns(tmp_path) -> None:
    with pytest.raises(PretrainError, match="does not exist"):
        pretrain([TaskTable("x", tmp_path / "missing.csv")], tmp_path / "out.pt")
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"composition": ["NaCl"], "value": [1.0]}).to_csv(bad, index=False)
    with pytest.raises(PretrainError, match="lacks the column"):
        pretrain([TaskTable("x", bad)], tmp_path / "out.pt")


@pytest.fixture()
def encoder_checkpoint(tables, tmp_path):
    config = PretrainConfig(epochs=1, batch_size=32, hidden_dim=HIDDEN, device="cpu")
    return pretrain(tables, tmp_path / "enc.pt", config).path


def _samples(n: int = 24) -> list[Sample]:
    formulas = _formulas()[:n]
    return [Sample(f"r{i}", parse_formula(f), _electronegativity_mean(f), formula=f) for i, f in enumerate(formulas)]


def test_init_from_loads_the_encoder_weights_exactly(encoder_checkpoint) -> None:
    config = TrainConfig(mode="composition", hidden_dim=HIDDEN, head_hidden=(8,), weight_hidden=(8,),
                         init_from=str(encoder_checkpoint), device="cpu")
    model = build_model(config, load_element_embedding("matscholar200").dim)
    saved = torch.load(encoder_checkpoint, weights_only=True)["encoder_state"]
    assert not all(torch.equal(v, model.composition_encoder.state_dict()[k]) for k, v in saved.items())
    load_encoder_into(model, encoder_checkpoint, embedding_name="matscholar200")
    for name, tensor in model.composition_encoder.state_dict().items():
        assert torch.equal(tensor, saved[name]), name
    # fit() starts from it: with a learning rate of ~0 the fitted encoder still equals the checkpoint.
    frozen = dataclasses.replace(config, lr=1e-30, weight_decay=0.0, epochs=1, batch_size=8)
    samples = _samples()
    result = fit(samples[:16], samples[16:], frozen)
    for name, tensor in result.model.composition_encoder.state_dict().items():
        if tensor.dtype.is_floating_point:
            assert torch.allclose(tensor, saved[name], atol=1e-6), name
    assert result.config.init_from == str(encoder_checkpoint)


def test_init_from_refuses_another_width_or_embedding_with_a_clear_message(encoder_checkpoint) -> None:
    wide = TrainConfig(mode="composition", hidden_dim=2 * HIDDEN, init_from=str(encoder_checkpoint))
    model = build_model(wide, 200)
    with pytest.raises(PretrainError, match=rf"hidden_dim {HIDDEN} vs {2 * HIDDEN}"):
        load_encoder_into(model, encoder_checkpoint, embedding_name="matscholar200")
    with pytest.raises(PretrainError, match="element embedding 'matscholar200'.*'cgcnn92'"):
        load_encoder_into(build_model(TrainConfig(hidden_dim=HIDDEN), 92), encoder_checkpoint,
                          embedding_name="cgcnn92")
    samples = _samples()
    with pytest.raises(PretrainError, match="another architecture"):
        fit(samples[:16], samples[16:], dataclasses.replace(wide, epochs=1))
    with pytest.raises(PretrainError, match="neither a shipped checkpoint"):
        load_checkpoint("no-such-encoder")


def test_a_file_that_is_not_an_encoder_checkpoint_is_refused(tmp_path) -> None:
    other = tmp_path / "other.pt"
    torch.save({"format": "cosnet-checkpoint-1"}, other)
    with pytest.raises(PretrainError, match="not a COSNet encoder checkpoint"):
        load_checkpoint(other)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(PretrainError, match="not a readable encoder checkpoint"):
        load_checkpoint(garbage)


def test_shipped_checkpoints_match_their_manifest_and_load_safely() -> None:
    manifest = read_manifest()
    assert MANIFEST.is_file() and manifest["checkpoints"], "the project ships at least one pretrained encoder"
    default = TrainConfig()
    for entry in manifest["checkpoints"]:
        path = PRETRAINED_DIR / entry["file"]
        assert sha256_of(path) == entry["sha256"], entry["file"]
        assert path.stat().st_size < 5_000_000
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        assert checkpoint["format"] in (ENCODER_FORMAT, ENCODER_FORMAT_1)  # format 1: written before blocks.py
        assert {t["name"]: t["val_mae"] for t in checkpoint["tasks"]} == pytest.approx(entry["validation_mae"])
        assert entry["command"].startswith("python -m cosnet_core pretrain")
        assert all(len(item["sha256"]) == 64 for item in entry["data"])
        # It fits the default architecture, so a default model can start from it.
        model = build_model(dataclasses.replace(default, init_from=entry["name"]), 200)
        load_encoder_into(model, entry["name"], embedding_name=default.embedding)
    assert json.loads(MANIFEST.read_text()) == manifest
