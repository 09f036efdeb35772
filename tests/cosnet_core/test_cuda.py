"""Training and prediction on a CUDA GPU (issue 18, item 4): the subset ``bench/gpu_check.py`` runs with
``pytest -m cuda``. Every test here skips on a machine without CUDA (the CI and the development VMs)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cosnet_core.artifact import load_artifact, save_artifact
from cosnet_core.predict import predict_samples
from cosnet_core.train import fit, resolve_device
from tests.cosnet_core.test_train import tiny_config, toy_samples

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine"),
]


@pytest.mark.parametrize("mode", ["composition", "bimodal-aug"])
def test_a_fit_on_the_gpu_runs_there_and_learns(mode):
    rows = toy_samples(40)
    result = fit(rows[:30], rows[30:], tiny_config(device="cuda", mode=mode, epochs=6))
    assert result.device.startswith("cuda")
    assert next(result.model.parameters()).is_cuda
    assert result.history[-1].train_loss < result.history[0].train_loss


def test_a_gpu_trained_artifact_predicts_the_same_on_the_cpu(tmp_path):
    rows = toy_samples(40)
    result = fit(rows[:30], rows[30:], tiny_config(device="cuda", epochs=4))
    on_gpu = predict_samples(result, rows, device="cuda").prediction
    on_cpu = predict_samples(load_artifact(save_artifact(tmp_path / "gpu.pt", result)), rows, device="cpu").prediction
    spread = float(np.std([r.target for r in rows]))
    assert np.max(np.abs(on_gpu - on_cpu)) <= 1e-4 * spread


def test_auto_picks_the_gpu():
    assert resolve_device("auto").type == "cuda"
