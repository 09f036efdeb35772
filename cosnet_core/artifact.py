"""Trained models on disk: one file per model, loadable with ``torch.load(path, weights_only=True)``.

An artifact holds only plain tensors, dicts, lists, strings and numbers:

* ``state_dict``: the weights (cell-descriptor normalisation ``cell_mean``/``cell_std`` included);
* ``cosnet_config`` and ``train_config``: the architecture and the training settings (mode, embedding, ...);
* ``target_mean`` / ``target_std``: the target normaliser of the training split; ``target_lower_bound``: the
  bound of its predictions (``TrainConfig.nonnegative``; absent or None: unbounded);
* ``featurizer_version``, ``embedding_name``, ``embedding_version``, ``code_version``;
* ``cell_mean`` / ``cell_std`` (also as lists, for reading without torch), ``best_epoch``, ``best_val_mae``,
  ``history``;
* ``training_formulas`` / ``training_targets``: the training rows (formula as given, target in the model's units),
  for the applicability warnings of a prediction (:mod:`cosnet_core.applicability`). Artifacts written before
  2026-12-03 lack them; they still load, and their predictions name no nearest training composition.

Predicting needs nothing but the artifact and the embedding files shipped in the matminer wheel. A directory of
artifacts (one per seed) is an ensemble: :func:`load_ensemble` averages them per row.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cosnet_core import __version__ as CODE_VERSION
from cosnet_core.errors import InputError

if TYPE_CHECKING:
    from cosnet_core.data import Sample
    from cosnet_core.models.cosnet import CosNet
    from cosnet_core.predict import Predictions
    from cosnet_core.structure import GraphCache
    from cosnet_core.train import FitResult, TargetNormalizer, TrainConfig

ARTIFACT_FORMAT = "cosnet-artifact"
#: 2: the MLPs and BatchNorms are torch-geometric's ``MLP`` and ``BatchNorm`` (:mod:`cosnet_core.models.blocks`).
#: 1 (before 2026-12-03): ``nn.Sequential`` MLPs; such files load with their weights renamed, same predictions.
ARTIFACT_FORMAT_VERSION = 2
ARTIFACT_SUFFIX = ".pt"


class ArtifactError(InputError):
    """A file that is not a usable COSNet artifact (the message names the file and the reason)."""


def save_artifact(path: str | Path, result: FitResult) -> Path:
    """Write a fitted model as one artifact file.

    Args:
        path: destination file (parents are created); ``.pt`` is conventional.
        result: the outcome of :func:`cosnet_core.train.fit`.

    Returns:
        The path written.
    """
    import torch  # imported here: reading a model's metadata or its errors needs no torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").clone() for k, v in result.model.state_dict().items()}
    artifact = {
        "format": ARTIFACT_FORMAT,
        "format_version": ARTIFACT_FORMAT_VERSION,
        "state_dict": state,
        "cosnet_config": result.model.config.to_dict(),
        "train_config": result.config.to_dict(),
        "target_mean": float(result.normalizer.mean),
        "target_std": float(result.normalizer.std),
        # the bound of TrainConfig.nonnegative as decided on the training rows; None: unbounded (and older files)
        "target_lower_bound": None if result.normalizer.lower_bound is None else float(result.normalizer.lower_bound),
        "featurizer_version": result.featurizer_version,
        "embedding_name": result.config.embedding,
        "embedding_version": result.embedding_version,
        "cell_mean": state["cell_mean"].tolist() if "cell_mean" in state else [],
        "cell_std": state["cell_std"].tolist() if "cell_std" in state else [],
        "code_version": CODE_VERSION,
        "best_epoch": int(result.best_epoch),
        "best_val_mae": float(result.best_val_mae) if math.isfinite(result.best_val_mae) else -1.0,
        "history": [dataclasses.asdict(report) for report in result.history],
        "training_formulas": [str(f) for f in getattr(result, "training_formulas", [])],
        "training_targets": [float(t) for t in getattr(result, "training_targets", [])],
    }
    temporary = path.with_name(path.name + ".tmp")
    torch.save(artifact, temporary)
    temporary.replace(path)
    return path


@dataclass
class TrainedModel:
    """A model loaded from an artifact, ready to predict.

    Attributes:
        model: COSNet in eval mode, on CPU.
        config: the training configuration (``mode`` decides whether structures are used).
        normalizer: the target normaliser.
        path: the artifact file.
        metadata: the artifact's other entries (versions, best epoch, history).
    """

    model: CosNet
    config: TrainConfig
    normalizer: TargetNormalizer
    path: Path
    metadata: dict[str, Any]

    @property
    def mode(self) -> str:
        """The training mode ("composition", "bimodal-aug" or "bimodal")."""
        return self.config.mode

    def predict(
        self, samples: Sequence[Sample], *, cache: GraphCache | None = None, device: str | None = None
    ) -> Predictions:
        """Predict rows (see :func:`cosnet_core.predict.predict_samples`).

        Args:
            samples: the rows; structures are used unless the model is a "composition" model.
            cache: optional crystal-graph cache.
            device: where to run (default CPU).

        Returns:
            Per-row prediction, w_C, has_structure, C and S.
        """
        from cosnet_core.predict import predict_samples

        return predict_samples(self, samples, cache=cache, device=device)


def _require_finite(path: Path, artifact: dict) -> None:
    """Refuse an artifact whose weights or target scaling hold NaN or infinity (a damaged or altered file would
    otherwise give NaN or infinite predictions without a word). Names the file, not its folder."""
    import torch

    state = artifact.get("state_dict") or {}
    bad = [name for name, tensor in state.items()
           if torch.is_tensor(tensor) and tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())]
    if bad:
        raise ArtifactError(f"{path.name}: the weights {bad[0]!r} hold NaN or infinite values; the file is damaged "
                            "or was altered")
    try:
        mean, std = float(artifact["target_mean"]), float(artifact["target_std"])
    except (KeyError, TypeError, ValueError) as error:
        raise ArtifactError(f"{path.name}: the target scaling is missing or not a number") from error
    from cosnet_core.tabular import MAX_ABS_TARGET

    if not (math.isfinite(mean) and math.isfinite(std) and 0 < std <= MAX_ABS_TARGET and abs(mean) <= MAX_ABS_TARGET):
        raise ArtifactError(f"{path.name}: the target scaling (mean {mean}, std {std}) is not usable; the file is "
                            "damaged or was altered")


def load_artifact(path: str | Path) -> TrainedModel:
    """Read an artifact with ``torch.load(weights_only=True)`` and rebuild the model.

    A different embedding or featurizer version than the installed one gives a warning (predictions may differ
    from those at training time), not an error.

    Args:
        path: the artifact file.

    Returns:
        The :class:`TrainedModel`.

    Raises:
        ArtifactError: missing file, not an artifact, or weights that do not fit the configuration.
    """
    import torch

    from cosnet_core.embeddings import load_element_embedding
    from cosnet_core.models.cosnet import CosNet, CosNetConfig
    from cosnet_core.structure import FEATURIZER_VERSION
    from cosnet_core.train import TargetNormalizer, TrainConfig

    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path.name}: no such model file")
    try:
        artifact = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        reason = str(error).replace(str(path), path.name)  # the file, never the server's folders
        raise ArtifactError(f"{path.name}: cannot be read as a COSNet artifact ({type(error).__name__}: {reason})") from error
    if not isinstance(artifact, dict) or artifact.get("format") != ARTIFACT_FORMAT:
        raise ArtifactError(f"{path.name}: not a COSNet artifact")
    if artifact.get("format_version", 0) > ARTIFACT_FORMAT_VERSION:
        raise ArtifactError(f"{path.name}: written by a newer COSNet Studio (format {artifact['format_version']})")
    _require_finite(path, artifact)
    config = TrainConfig.from_dict(artifact["train_config"])
    model = CosNet(CosNetConfig.from_dict(artifact["cosnet_config"]))
    state = artifact["state_dict"]
    if artifact.get("format_version", 0) < 2:
        from cosnet_core.models.blocks import upgrade_state_dict

        state = upgrade_state_dict(model, state)
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise ArtifactError(f"{path.name}: the weights do not fit the stored configuration ({error})") from error
    model.eval()
    embedding = load_element_embedding(artifact["embedding_name"])
    if embedding.version != artifact["embedding_version"]:
        warnings.warn(
            f"{path.name}: trained with embedding {artifact['embedding_version']}, installed is {embedding.version}",
            stacklevel=2,
        )
    if artifact["featurizer_version"] != FEATURIZER_VERSION:
        warnings.warn(
            f"{path.name}: trained with featurizer {artifact['featurizer_version']}, installed is "
            f"{FEATURIZER_VERSION}",
            stacklevel=2,
        )
    metadata = {k: v for k, v in artifact.items() if k not in ("state_dict",)}
    bound = artifact.get("target_lower_bound")
    if bound is not None and not (isinstance(bound, int | float) and math.isfinite(bound)):
        raise ArtifactError(f"{path.name}: the prediction bound {bound!r} is not a finite number")
    normalizer = TargetNormalizer(mean=artifact["target_mean"], std=artifact["target_std"],
                                  lower_bound=None if bound is None else float(bound))
    return TrainedModel(model=model, config=config, normalizer=normalizer, path=path, metadata=metadata)


def artifact_paths(path: str | Path) -> list[Path]:
    """The artifact files of a model path: the file itself, or every ``*.pt`` in a directory (and its
    ``models/`` subfolder, as written by the command line), sorted by name.

    Args:
        path: an artifact file or a directory.

    Returns:
        The files.

    Raises:
        ArtifactError: nothing found.
    """
    path = Path(path)
    if path.is_file():
        return [path]
    if path.is_dir():
        found = sorted(path.glob(f"*{ARTIFACT_SUFFIX}")) or sorted((path / "models").glob(f"*{ARTIFACT_SUFFIX}"))
        if found:
            return found
        raise ArtifactError(f"{path}: no *{ARTIFACT_SUFFIX} model files in this folder or its models/ folder")
    raise ArtifactError(f"{path}: no such model file or folder")


@dataclass
class Ensemble:
    """Several trained models (e.g. one per seed) predicting together."""

    members: list[TrainedModel]

    def training_rows(self) -> tuple[list[str], list[float]] | None:
        """The training rows of all members (formulas and targets, each distinct pair once), or None when a
        member's artifact predates their storage (then no nearest-neighbour columns can be given)."""
        from cosnet_core.applicability import distinct_rows

        sets = []
        for member in self.members:
            member_formulas = member.metadata.get("training_formulas")
            member_targets = member.metadata.get("training_targets")
            if not member_formulas or member_targets is None or len(member_formulas) != len(member_targets):
                return None
            sets.append((member_formulas, member_targets))
        return distinct_rows(sets)

    def predict(self, samples: Sequence[Sample], *, cache: GraphCache | None = None) -> pd.DataFrame:
        """Mean and standard deviation per row over the members.

        Args:
            samples: the rows.
            cache: optional crystal-graph cache.

        Returns:
            A table ``id, prediction, prediction_std, has_structure, w_c`` (w_C averaged over members; the std is
            the population std, 0 for one member).
        """
        from cosnet_core.evaluate import ensemble_predictions

        runs = [member.predict(samples, cache=cache) for member in self.members]
        mean, std = ensemble_predictions([run.prediction for run in runs])
        return pd.DataFrame(
            {
                "id": runs[0].ids,
                "prediction": mean,
                "prediction_std": std,
                "has_structure": runs[0].has_structure,
                "w_c": np.mean([run.composition_weight for run in runs], axis=0),
            }
        )


def load_ensemble(path: str | Path) -> Ensemble:
    """Load one artifact or a directory of artifacts as an :class:`Ensemble`.

    Args:
        path: an artifact file or a directory of them.

    Returns:
        The ensemble.
    """
    return Ensemble([load_artifact(p) for p in artifact_paths(path)])
