"""How the format-1 files beside this script were made (run once, at commit a0f9116, before format 2).

    OMP_NUM_THREADS=1 python -m tests.cosnet_core.artifacts_v1.make

All from the generated toy rows of ``tests/cosnet_core/test_train.py`` (no real data):

* ``plain.pt`` and ``authors.pt``: artifacts (format 1) of two tiny models trained for two epochs, the first with
  the project's head, ROOST MLPs without BatchNorm, concat fusion, vector weights and Magpie descriptors, the second
  with BatchNorm in the ROOST MLPs, the authors' head and their cell features. ``<name>.json``: what that code
  predicted from the file for the held-out rows (prediction, w_C, C and S per row).
* ``resume.pt``: a training checkpoint (``cosnet-checkpoint-1``) of the ``authors`` model written after epoch 1 of
  3, and ``resume.json``: the predictions of the same run left to finish its 3 epochs uninterrupted.
* ``pretrained.json``: C of the held-out compositions from the shipped encoder ``roost64-dft4``
  (``cosnet-encoder-1``) loaded into a default model.

``test_artifact_upgrade.py`` compares these numbers with what the current code computes from the same files.
Running this script with the current code would write the current formats instead; it is the record of how the
files were made.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import torch

from cosnet_core.artifact import load_artifact, save_artifact
from cosnet_core.train import TrainConfig, build_model, fit
from tests.cosnet_core.test_train import tiny_config, toy_samples

HERE = Path(__file__).resolve().parent
CONFIGS = {
    "plain": {"weight": "vector", "fusion": "concat", "descriptors": "magpie"},
    "authors": {"roost_mlp_batchnorm": True, "roost_power_init": "normal", "head": "authors",
                "cell_features": "authors", "head_hidden": (8, 4)},
}


def split():
    """Training, validation and held-out rows (half of them with a structure)."""
    rows = toy_samples(40)
    return rows[:28], rows[28:34], rows[34:]


def predictions_json(predictions) -> str:  # noqa: ANN001 - cosnet_core.predict.Predictions
    """The numbers the test compares, as JSON."""
    return json.dumps({
        "prediction": predictions.prediction.tolist(),
        "composition_weight": predictions.composition_weight.tolist(),
        "composition_repr": predictions.composition_repr.tolist(),
        "structure_repr": predictions.structure_repr.tolist(),
    }) + "\n"


def main() -> None:
    train, val, held_out = split()
    for name, overrides in CONFIGS.items():
        result = fit(train, val, tiny_config(epochs=2, mode="bimodal-aug", **overrides))
        path = save_artifact(HERE / f"{name}.pt", result)
        (HERE / f"{name}.json").write_text(predictions_json(load_artifact(path).predict(held_out)))

    config = tiny_config(epochs=3, mode="bimodal-aug", **CONFIGS["authors"])
    running = HERE / "running.pt"

    def keep_epoch_one(report) -> None:  # noqa: ANN001 - EpochReport; at epoch 2 the file still holds epoch 1
        if report.epoch == 2:
            shutil.copyfile(running, HERE / "resume.pt")

    finished = fit(train, val, config, callback=keep_epoch_one, checkpoint_path=running)
    running.unlink()
    # the same dict in torch's older single-file container (163 kB instead of 221 kB; torch.load reads both)
    checkpoint = torch.load(HERE / "resume.pt", weights_only=True)
    torch.save(checkpoint, HERE / "resume.pt", _use_new_zipfile_serialization=False)
    (HERE / "resume.json").write_text(predictions_json(finished.predict(held_out)))

    model = build_model(dataclasses.replace(TrainConfig(), init_from="roost64-dft4"), 200)
    from cosnet_core.pretrain import load_encoder_into

    load_encoder_into(model, "roost64-dft4", embedding_name="matscholar200")
    from cosnet_core.data import BimodalDataset, collate_bimodal
    from cosnet_core.embeddings import load_element_embedding

    batch = collate_bimodal(BimodalDataset(held_out, load_element_embedding("matscholar200")).items)
    model.eval()
    with torch.no_grad():
        encoded = model.composition_encoder(batch.composition)
    (HERE / "pretrained.json").write_text(json.dumps({"composition_repr": encoded.tolist()}) + "\n")


if __name__ == "__main__":
    main()
