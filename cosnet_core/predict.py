"""Running a trained COSNet on rows: predictions, w_C (Figure 3) and the representations C and S.

Works for a fresh :class:`cosnet_core.train.FitResult` and for a model loaded from disk
(:class:`cosnet_core.artifact.TrainedModel`): both carry ``model``, ``config`` and ``normalizer``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

if TYPE_CHECKING:
    from cosnet_core.data import Sample
    from cosnet_core.structure import GraphCache


@dataclass
class Predictions:
    """Per-row outputs of a model, in the order of the input rows.

    Attributes:
        ids: row ids.
        prediction: predicted target (in target units).
        composition_weight: w_C of eq. (9) per row; in "vector" weight mode, the mean of the vector over its
            features. Exactly 1 for rows the model saw without a structure.
        has_structure: whether the row came with a structure (in the data, whatever the mode).
        presence: p_S the model used (0 everywhere for a "composition" model).
        composition_repr: C = g_C(c), ``[n, h]`` (Table 2's input).
        structure_repr: S = g_S(s), ``[n, h]`` (zeros where p_S = 0).
    """

    ids: list[str]
    prediction: np.ndarray
    composition_weight: np.ndarray
    has_structure: np.ndarray
    presence: np.ndarray
    composition_repr: np.ndarray
    structure_repr: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    def to_frame(self) -> pd.DataFrame:
        """A table ``id, prediction, has_structure, w_c``.

        Returns:
            One row per input row.
        """
        return pd.DataFrame(
            {
                "id": self.ids,
                "prediction": self.prediction,
                "has_structure": self.has_structure,
                "w_c": self.composition_weight,
            }
        )


@torch.no_grad()
def predict_samples(
    fitted: Any,
    samples: Sequence[Sample],
    *,
    cache: GraphCache | None = None,
    batch_size: int | None = None,
    device: str | None = None,
) -> Predictions:
    """Predict rows with a trained model (targets are not needed).

    The rows are prepared as the model's mode requires (a "composition" model ignores structures); no augmentation.

    Args:
        fitted: a ``FitResult`` or ``TrainedModel`` (anything with ``model``, ``config``, ``normalizer``).
        samples: the rows.
        cache: optional crystal-graph cache.
        batch_size: rows per batch (default: the training batch size).
        device: where to run (default: the model's current device).

    Returns:
        The :class:`Predictions`.

    Raises:
        FormulaError / StructureError: a row cannot be featurized (the message names the row).
    """
    from cosnet_core.data import BimodalDataset, make_loader
    from cosnet_core.embeddings import load_element_embedding
    from cosnet_core.train import prepare_for_mode

    config = fitted.config
    model = fitted.model
    run_on = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(run_on)
    model.eval()
    has_structure = np.array([s.structure is not None for s in samples], dtype=bool)
    rows = prepare_for_mode(samples, config.mode, training=False)
    embedding = load_element_embedding(config.embedding)
    dataset = BimodalDataset(
        rows, embedding, cache=cache, radius=config.radius, max_neighbors=config.max_neighbors,
        descriptors=config.descriptors == "magpie",
        structure_features=config.structure_features == "chgnet",
    )
    loader = make_loader(dataset, batch_size=batch_size or config.batch_size, shuffle=False)
    predictions, weights, presences, c_reprs, s_reprs = [], [], [], [], []
    for batch in loader:
        batch = batch.to(run_on)
        output = model(batch)
        predictions.append(fitted.normalizer.denormalize(output.prediction.reshape(-1).double()).cpu())
        weight = output.composition_weight
        if weight.dim() > 1:  # vector weights: one number per row for Figure 3
            weight = weight.mean(dim=-1)
        weights.append(weight.reshape(-1).cpu())
        presences.append(batch.presence.cpu())
        c_reprs.append(output.composition_repr.cpu())
        s_reprs.append(output.structure_repr.cpu())
    hidden = config.hidden_dim

    def _cat(parts: list[torch.Tensor], width: int | None = None) -> np.ndarray:
        if parts:
            return torch.cat(parts).numpy()
        return np.zeros((0, width) if width else (0,))

    return Predictions(
        ids=[s.id for s in samples],
        prediction=_cat(predictions).astype(np.float64),
        composition_weight=_cat(weights).astype(np.float64),
        has_structure=has_structure,
        presence=_cat(presences).astype(np.float64),
        composition_repr=_cat(c_reprs, hidden),
        structure_repr=_cat(s_reprs, hidden),
    )
