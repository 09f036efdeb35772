"""Pretraining g_C as a job (issue 18, item 5): validated before any row, progress per epoch, the encoder in the
data directory usable as ``init_from``; on the executor's Ray, its compute task is cancelled mid-run.

Real SQLite, real torch, the real job runner and (second test) the real executor over the session's Ray.
"""

from __future__ import annotations

import pandas as pd
import pytest
import torch

import jobs
from cosnet_core.embeddings import load_element_embedding
from cosnet_core.pretrain import ENCODER_FORMAT, load_encoder_into
from cosnet_core.train import TrainConfig, build_model
from jobs import store
from tests.cosnet_core.test_pretrain import _electronegativity_mean, _formulas
from tests.jobs.conftest import wait_until

HIDDEN = 16


@pytest.fixture()
def table(tmp_path) -> str:
    """150 binary compositions with their mean electronegativity as the target."""
    formulas = _formulas()
    path = tmp_path / "en.csv.gz"
    pd.DataFrame({"formula": formulas, "target": [_electronegativity_mean(f) for f in formulas]}).to_csv(path, index=False)
    return str(path)


def _payload(table: str, epochs: int) -> dict:
    return {"name": "tiny", "tables": {"en": table}, "device": "cpu",
            "config": {"epochs": epochs, "batch_size": 32, "hidden_dim": HIDDEN, "val_fraction": 0.2}}


def test_bad_pretraining_input_is_refused_with_every_reason_before_any_row(db_url, tmp_path):
    with pytest.raises(ValueError) as refused:
        jobs.submit("pretrain", {"name": "a b", "tables": {"x": str(tmp_path / "none.csv")}, "config": {"lr2": 1},
                                 "device": "tpu"}, db_url=db_url)
    message = str(refused.value)
    for part in ("name may hold", "none.csv is not a readable file", "unknown pretraining settings ['lr2']",
                 "device must be one of"):
        assert part in message, message
    assert store.queued_jobs(db_url) == []


def test_a_pretraining_job_writes_an_encoder_that_init_from_loads(db_url, app_env, table):
    job_id = jobs.submit("pretrain", _payload(table, epochs=3), db_url=db_url)
    assert jobs.run_inline(job_id, db_url=db_url, data_dir=app_env) == "succeeded"
    job = store.job_row(db_url, job_id)
    out = app_env / "pretrained" / f"tiny-job-{job_id}.pt"
    assert job["message"].startswith(f"encoder written to {out} (best epoch ")
    assert "validation MAE en " in job["message"]
    assert job["status"] == "succeeded" and job["progress"] == 1.0
    log = open(job["log_path"]).read()
    assert "150 compositions, tasks: en (150)" in log and "epoch 3: train" in log
    checkpoint = torch.load(out, weights_only=True)
    assert checkpoint["format"] == ENCODER_FORMAT and [r["epoch"] for r in checkpoint["history"]] == [1, 2, 3]
    assert checkpoint["encoder_config"]["hidden_dim"] == HIDDEN
    config = TrainConfig(mode="composition", hidden_dim=HIDDEN, init_from=str(out))
    model = build_model(config, load_element_embedding("matscholar200").dim)
    load_encoder_into(model, out, embedding_name="matscholar200")
    for name, tensor in model.composition_encoder.state_dict().items():
        assert torch.equal(tensor, checkpoint["encoder_state"][name]), name


@pytest.mark.slow
def test_a_pretraining_job_on_ray_reports_progress_and_is_cancelled_mid_run(executor_thread, db_url, app_env, table):
    job_id = jobs.submit("pretrain", _payload(table, epochs=400), db_url=db_url)
    wait_until(lambda: "epoch 2/400" in (store.job_row(db_url, job_id)["message"] or "")
               or (store.job_row(db_url, job_id)["progress"] or 0) > 0.95 * 2 / 400, 120, "two epochs")
    assert jobs.cancel(job_id, db_url=db_url) == "running"
    wait_until(lambda: store.job_row(db_url, job_id)["status"] in store.TERMINAL, 60, "the cancel")
    job = store.job_row(db_url, job_id)
    assert job["status"] == "cancelled" and job["message"].startswith("cancelled by the user")
    assert 0 < job["progress"] < 0.95 * 100 / 400  # stopped long before the end
    assert not (app_env / "pretrained").exists()  # no encoder from a cancelled pretraining
