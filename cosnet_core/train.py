"""Fitting COSNet with the paper's protocol (Methods; Table 3; DESIGN.md "Reference choices").

Read top to bottom, :func:`fit` does:

1. prepare the rows for the mode: ``composition`` strips every structure (p_S = 0 everywhere), ``bimodal-aug``
   adds the eq. (13) composition-only copies to the **training split only**
   (:func:`cosnet_core.data.augment_single_structure_rows`), ``bimodal`` uses the rows as they are;
2. normalise the target with the mean and standard deviation of the training split (:class:`TargetNormalizer`);
3. set the cell-descriptor normalisation of de-CGCNN from the training rows that have a structure;
4. train with Adamax (lr 1e-2, weight decay 1e-4), an exponential learning-rate decay (0.99 per epoch), L1 loss,
   optional gradient clipping, for 200 epochs, and keep the weights of the epoch with the lowest validation MAE
   (the authors' code uses weight decay 0.1, decay 0.96 and the MSE loss; see :data:`cosnet_core.hparams.DEFAULTS`
   and ``docs/departures.md`` for why these differ);
5. report every epoch to an optional callback (which may stop the fit) and to an optional checkpoint file from
   which a killed run resumes with identical numbers.

On CPU the same seed gives bit-identical results: torch, numpy and ``random`` are seeded and the training loader of
epoch e is shuffled by a generator seeded with (seed, e), so a resumed run draws the same batches.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from cosnet_core import __version__ as CODE_VERSION
from cosnet_core.hparams import (
    CENSORED_TRAINING_DEFAULT,
    DEFAULTS,
    MODES,  # the one list of modes (re-exported here)
    Mode,  # the modes' one definition lives in hparams
)

if TYPE_CHECKING:
    from cosnet_core.data import Sample
    from cosnet_core.models.cosnet import CosNet, CosNetConfig
    from cosnet_core.predict import Predictions
    from cosnet_core.structure import GraphCache

CHECKPOINT_FORMAT = "cosnet-checkpoint-2"
#: Written before the MLPs became torch-geometric's (:mod:`cosnet_core.models.blocks`); resumed with renamed weights.
CHECKPOINT_FORMAT_1 = "cosnet-checkpoint-1"


@dataclass
class TrainConfig:
    """Everything that decides a fit (saved in every artifact).

    Defaults are :data:`cosnet_core.hparams.DEFAULTS` (the authors' choices, with weight decay 1e-4 and decay 0.99
    from Table 3 and the L1 loss; ``docs/departures.md`` lists every departure); ``lr``, ``weight_decay``,
    ``lr_decay``, ``fusion`` and ``weight`` are the hyper-parameters of Table 3
    (:data:`cosnet_core.hparams.SEARCH_SPACE`).

    Attributes:
        mode: a :class:`~cosnet_core.hparams.Mode` text: "composition", "bimodal-aug" or "bimodal".
        lr: Adamax learning rate.
        weight_decay: Adamax weight decay.
        lr_decay: gamma of the exponential learning-rate decay (per epoch).
        epochs: maximum number of epochs.
        batch_size: rows per batch.
        loss: "l1" (default) or "mse" (the authors' ``train.py``), on the normalised target.
        grad_clip: maximum global gradient norm, or None for no clipping.
        early_stopping_patience: stop after this many epochs without a better validation MAE (None = never).
        device: "auto" (CUDA when available, else CPU), "cpu" or "cuda".
        seed: seeds weights, batches and every random choice of the fit.
        embedding: element embedding name or JSON path (see ``load_element_embedding``).
        hidden_dim, roost_layers, roost_heads, roost_mlp_hidden, cgcnn_layers, fusion, weight, head_hidden,
            weight_hidden: the model (``CosNetConfig`` fields).
        roost_mlp_batchnorm, roost_power_init, head, cell_features: architecture options whose non-default values
            are the authors' code (BatchNorm in ROOST's gate and message MLPs, attention powers drawn from a
            standard normal, their update block + residual head, their 8 cell features) or, for
            ``cell_features="no-volume"``, g_S without volume per atom and density (``CosNetConfig`` fields; the
            ``authors`` preset of :mod:`cosnet_core.hparams` sets them).
        radius, max_neighbors: crystal-graph construction.
        descriptors: "none" (the paper) or "magpie": standardised Magpie statistics of the composition
            (:mod:`cosnet_core.descriptors`) are fed into the composition side next to g_C's C (see
            :class:`cosnet_core.models.cosnet.CosNet`); w_C keeps its meaning and is exactly 1 without a structure.
        init_from: None, or a composition-encoder checkpoint written by ``python -m cosnet_core pretrain`` (a path,
            or the name of a checkpoint shipped in ``cosnet_core/pretrained/``); g_C starts from it and is
            fine-tuned.
        structure_features: "none" (the paper) or "chgnet": the crystal features of the pretrained CHGNet
            potential (:mod:`cosnet_core.universal`) are fed into the structure side next to g_S's S.
        nonnegative: bound the predictions below at 0, as the authors' final ReLU does ("make band gap
            non-negative", ``model/model.py`` @ 2c472c7): "auto" (default) when every training target is ≥ 0,
            "on" (refused when a training target is negative) or "off". The decision is taken from the training
            rows only and kept in :attr:`TargetNormalizer.lower_bound` (artifact, ``metrics.json``). How the bound
            is applied, and why not as a ReLU inside the network: :class:`TargetNormalizer`.
        censored: how training rows whose target is a bound (``Sample.censored``, e.g. ``<1E-10``) are used:
            "drop" them, or "bound": the censored loss of :func:`censored_loss` (an upper bound is penalised only
            when the prediction is above it). Validation rows that are bounds never count in the validation MAE,
            whatever this says.
    """

    # Every default that hparams.DEFAULTS also holds is read from it (one place); init_from stays None (see DEFAULTS).
    mode: str = Mode.BIMODAL_AUG.value
    lr: float = DEFAULTS["lr"]
    weight_decay: float = DEFAULTS["weight_decay"]
    lr_decay: float = DEFAULTS["lr_decay"]
    epochs: int = DEFAULTS["epochs"]
    batch_size: int = DEFAULTS["batch_size"]
    loss: Literal["l1", "mse"] = DEFAULTS["loss"]
    grad_clip: float | None = None
    early_stopping_patience: int | None = None
    device: str = "auto"
    seed: int = 0
    embedding: str = DEFAULTS["embedding"]
    hidden_dim: int = DEFAULTS["hidden_dim"]
    roost_layers: int = DEFAULTS["roost_layers"]
    roost_heads: int = DEFAULTS["roost_heads"]
    roost_mlp_hidden: int | None = DEFAULTS["roost_mlp_hidden"]
    roost_mlp_batchnorm: bool = DEFAULTS["roost_mlp_batchnorm"]
    roost_power_init: Literal["one", "normal"] = DEFAULTS["roost_power_init"]
    cgcnn_layers: int = DEFAULTS["cgcnn_layers"]
    head: Literal["mlp", "authors"] = DEFAULTS["head"]
    cell_features: Literal["all", "no-volume", "authors"] = DEFAULTS["cell_features"]
    fusion: Literal["sum", "concat"] = DEFAULTS["fusion"]
    weight: Literal["scalar", "vector"] = DEFAULTS["weight"]
    head_hidden: tuple[int, ...] = (64, 32)
    weight_hidden: tuple[int, ...] = (64, 32)
    radius: float = 8.0
    max_neighbors: int = 12
    descriptors: Literal["none", "magpie"] = DEFAULTS["descriptors"]
    init_from: str | None = None
    structure_features: Literal["none", "chgnet"] = DEFAULTS["structure_features"]
    nonnegative: Literal["auto", "on", "off"] = "auto"
    censored: Literal["drop", "bound"] = CENSORED_TRAINING_DEFAULT

    def __post_init__(self) -> None:
        self.head_hidden = tuple(int(v) for v in self.head_hidden)
        self.weight_hidden = tuple(int(v) for v in self.weight_hidden)
        problems = []
        if self.mode not in MODES:
            problems.append(f"mode {self.mode!r} is not one of {', '.join(MODES)}")
        if self.loss not in ("l1", "mse"):
            problems.append(f"loss {self.loss!r} is not 'l1' or 'mse'")
        if self.fusion not in ("sum", "concat"):
            problems.append(f"fusion {self.fusion!r} is not 'sum' or 'concat'")
        if self.weight not in ("scalar", "vector"):
            problems.append(f"weight {self.weight!r} is not 'scalar' or 'vector'")
        if self.device not in ("auto", "cpu", "cuda") and not str(self.device).startswith("cuda:"):
            problems.append(f"device {self.device!r} is not 'auto', 'cpu' or 'cuda'")
        if self.descriptors not in ("none", "magpie"):
            problems.append(f"descriptors {self.descriptors!r} is not 'none' or 'magpie'")
        if self.structure_features not in ("none", "chgnet"):
            problems.append(f"structure_features {self.structure_features!r} is not 'none' or 'chgnet'")
        if self.nonnegative not in ("auto", "on", "off"):
            problems.append(f"nonnegative {self.nonnegative!r} is not 'auto', 'on' or 'off'")
        if self.censored not in ("drop", "bound"):
            problems.append(f"censored {self.censored!r} is not 'drop' or 'bound'")
        for name, value, allowed in (
            ("roost_power_init", self.roost_power_init, ("one", "normal")), ("head", self.head, ("mlp", "authors")),
            ("cell_features", self.cell_features, ("all", "no-volume", "authors")),
        ):
            if value not in allowed:
                problems.append(f"{name} {value!r} is not one of {', '.join(map(repr, allowed))}")
        if self.epochs < 1 or self.batch_size < 2:
            problems.append("epochs must be ≥ 1 and batch_size ≥ 2")
        if not self.lr > 0 or self.weight_decay < 0 or not 0 < self.lr_decay <= 1:
            problems.append("lr must be > 0, weight_decay ≥ 0 and 0 < lr_decay ≤ 1")
        if problems:
            raise ValueError("invalid TrainConfig: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        """Plain types only (tuples become lists), for JSON and ``torch.load(weights_only=True)``.

        Returns:
            The fields as a dictionary.
        """
        data = dataclasses.asdict(self)
        data["head_hidden"] = list(self.head_hidden)
        data["weight_hidden"] = list(self.weight_hidden)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict` (unknown keys are refused, missing keys take defaults).

        Args:
            data: as written by :meth:`to_dict`.

        Returns:
            The configuration.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown TrainConfig fields: {sorted(unknown)}")
        return cls(**data)


@dataclass(frozen=True)
class EpochReport:
    """What the callback receives after every epoch.

    Attributes:
        epoch: 1-based epoch number.
        train_loss: mean training loss (normalised units) over the epoch's batches.
        val_mae: validation MAE in target units.
        seconds: wall time of the epoch (training + validation).
        lr: learning rate used during the epoch.
    """

    epoch: int
    train_loss: float
    val_mae: float
    seconds: float
    lr: float


EpochCallback = Callable[[EpochReport], "bool | None"]


@dataclass(frozen=True)
class TargetNormalizer:
    """z-scoring of the target with the training split's mean and standard deviation, and an optional lower bound.

    The bound (``TrainConfig.nonnegative``) is applied where the network's output becomes a prediction in target
    units, :meth:`denormalize`: ``max(z · std + mean, lower_bound)``, i.e. a ReLU in target units. It is applied there
    and not as a ReLU inside the network, for two reasons:

    * the training target is z-scored (centred), so a ReLU on the network's output would bound it at the training
      mean, not at 0; the authors' ReLU bounds at 0 because their target is divided by its std but not centred
      (``docs/departures.md`` row 15), and ``max(z · std + mean, 0)`` is the same function of the output;
    * a ReLU in the training graph has zero gradient wherever the output is below the bound, so a row with a positive
      target that the network predicts below 0 would stop learning ("dead" rows). The loss here is taken on the
      unbounded output, whose gradient always points towards the target.

    Bounding never raises the error of a row whose target respects it: for t ≥ b, |max(p, b) − t| ≤ |p − t|. The
    validation MAE that picks the best epoch (:func:`fit`), Table 1, the served ensemble and the Predict page all
    read predictions through :meth:`denormalize`, so they all see the bounded value.

    Attributes:
        mean: training-split mean.
        std: training-split standard deviation (population; 1.0 when the targets are constant).
        lower_bound: None (no bound), or the smallest value a prediction may take (0.0 for non-negative targets).
    """

    mean: float
    std: float
    lower_bound: float | None = None

    @classmethod
    def fit(cls, targets: Sequence[float]) -> TargetNormalizer:
        """Statistics of the training targets.

        Args:
            targets: training targets (finite).

        Returns:
            The normaliser.
        """
        values = np.asarray(targets, dtype=np.float64)
        std = float(values.std())
        return cls(mean=float(values.mean()), std=std if std > 1e-12 else 1.0)

    def normalize(self, value: torch.Tensor) -> torch.Tensor:
        """(value − mean) / std."""
        return (value - self.mean) / self.std

    def denormalize(self, value: torch.Tensor) -> torch.Tensor:
        """value · std + mean, then at least ``lower_bound`` when one is set (a prediction in target units)."""
        prediction = value * self.std + self.mean
        return prediction if self.lower_bound is None else prediction.clamp(min=self.lower_bound)


def decide_lower_bound(setting: str, train: Sequence[Sample]) -> float | None:
    """The lower bound of the predictions (``TrainConfig.nonnegative``), decided from the training rows only.

    Args:
        setting: "auto" (0 when every training target is ≥ 0; a lower-bound row (``>``) counts only if its bound is
            ≥ 0, which is what it says), "on" or "off".
        train: the training rows.

    Returns:
        0.0 or None.

    Raises:
        ValueError: "on" while a training target is negative (the message names the first such row).
    """
    if setting == "off":
        return None
    negative = next((s for s in train if s.target is not None and float(s.target) < 0), None)
    if negative is None:
        return 0.0
    if setting == "on":
        raise ValueError(
            f"non-negative predictions were asked for, but training row {negative.id!r} ({negative.formula or ''}) "
            f"has the target {float(negative.target):g} < 0; choose nonnegative 'auto' or 'off'"
        )
    return None


def censored_loss(
    prediction: torch.Tensor, target: torch.Tensor, bound: torch.Tensor | None, kind: str = "l1"
) -> torch.Tensor:
    """The training loss with censored rows (a Tobit-style hinge; not in the paper, whose data has no bounds).

    For a measured row (``bound`` 0) the residual is r = p − t. For an upper bound (``bound`` +1, e.g. σ < 1E-10)
    the true value may be anywhere below t, so r = max(p − t, 0): a prediction at or below the bound costs nothing
    and one above it is penalised like a measurement. A lower bound (−1) is the mirror, r = max(t − p, 0). The loss
    is the mean over the batch of |r| ("l1") or r² ("mse"), so without bounds it equals ``l1_loss``/``mse_loss``.

    Args:
        prediction: the network's outputs ``[B]`` (normalised units).
        target: the normalised targets or bounds ``[B]``.
        bound: long ``[B]`` of 0/+1/−1 (:func:`cosnet_core.data.bound_direction`), or None (all measured).
        kind: "l1" or "mse".

    Returns:
        The scalar loss.
    """
    residual = prediction - target
    if bound is not None:
        residual = torch.where(bound > 0, residual.clamp(min=0), residual)
        residual = torch.where(bound < 0, residual.clamp(max=0), residual)
    return residual.abs().mean() if kind == "l1" else (residual**2).mean()


@dataclass
class FitResult:
    """The outcome of :func:`fit`: the model holds the best-validation weights.

    Attributes:
        model: COSNet with the weights of ``best_epoch``, in eval mode.
        config: the configuration used.
        normalizer: target normaliser of the training split.
        history: one :class:`EpochReport` per epoch run.
        best_epoch: epoch (1-based) with the lowest validation MAE.
        best_val_mae: that MAE.
        device: the device trained on ("cpu", "cuda", ...).
        stopped_by: None (all epochs ran), "early_stopping" or "callback".
        embedding_version: version string of the element embedding used.
        featurizer_version: crystal-graph featurizer version used.
        n_train: training rows after the mode's preparation (augmentation included).
        training_formulas / training_targets: the training rows as given (before the mode's preparation), kept in
            the artifact so predictions can name the nearest training compositions (``cosnet_core.applicability``).
        censored_rows: rows whose target is a bound: ``train_bounds`` (trained with :func:`censored_loss`),
            ``train_dropped`` (left out, ``TrainConfig.censored == "drop"``), ``val_excluded`` (never in the
            validation MAE).
    """

    model: CosNet
    config: TrainConfig
    normalizer: TargetNormalizer
    history: list[EpochReport] = field(default_factory=list)
    best_epoch: int = 0
    best_val_mae: float = float("inf")
    device: str = "cpu"
    stopped_by: str | None = None
    embedding_version: str = ""
    featurizer_version: str = ""
    n_train: int = 0
    code_version: str = CODE_VERSION
    training_formulas: list[str] = field(default_factory=list)
    training_targets: list[float] = field(default_factory=list)
    censored_rows: dict[str, int] = field(default_factory=dict)

    def predict(self, samples: Sequence[Sample], *, cache: GraphCache | None = None) -> Predictions:
        """Predict new rows with the best-validation model (see :func:`cosnet_core.predict.predict_samples`).

        Args:
            samples: rows (targets not needed).
            cache: optional crystal-graph cache.

        Returns:
            The predictions.
        """
        from cosnet_core.predict import predict_samples

        return predict_samples(self, samples, cache=cache)


def resolve_device(device: str = "auto") -> torch.device:
    """"auto" → CUDA when available, else CPU.

    Args:
        device: "auto", "cpu", "cuda" or "cuda:N".

    Returns:
        The torch device.

    Raises:
        ValueError: CUDA requested but not available.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available on this machine")
    return torch.device(device)


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), numpy and ``random``.

    Args:
        seed: the seed.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def prepare_for_mode(samples: Sequence[Sample], mode: str, *, training: bool) -> list[Sample]:
    """The rows a mode sees.

    * ``composition``: copies with no structure (p_S = 0 for every row).
    * ``bimodal-aug``: on the training split, eq. (13): the rows plus a composition-only copy of each row whose
      composition has exactly one structure among them; other splits unchanged.
    * ``bimodal``: unchanged.

    Args:
        samples: rows of one split.
        mode: the training mode.
        training: whether these rows are the training split (augmentation applies only there).

    Returns:
        A new list (input samples are not modified).
    """
    if mode not in MODES:
        raise ValueError(f"mode {mode!r} is not one of {', '.join(MODES)}")
    if mode == "composition":
        return [dataclasses.replace(s, structure=None, structure_id=None) for s in samples]
    if mode == "bimodal-aug" and training:
        from cosnet_core.data import augment_single_structure_rows

        return augment_single_structure_rows(list(samples))
    return list(samples)


def build_model(config: TrainConfig, element_dim: int) -> CosNet:
    """A fresh COSNet for the configuration.

    Args:
        config: the training configuration (its model fields).
        element_dim: width of the element embedding.

    Returns:
        The (randomly initialised) model.
    """
    from cosnet_core.models.cosnet import CosNet

    return CosNet(cosnet_config(config, element_dim))


def cosnet_config(config: TrainConfig, element_dim: int) -> CosNetConfig:
    """The ``CosNetConfig`` a training configuration implies.

    Args:
        config: the training configuration.
        element_dim: width of the element embedding.

    Returns:
        The model configuration.
    """
    from cosnet_core.descriptors import MAGPIE_FEATURE_COUNT
    from cosnet_core.models.cosnet import CosNetConfig
    from cosnet_core.universal import CHGNET_FEATURE_COUNT

    return CosNetConfig(
        element_dim=element_dim,
        hidden_dim=config.hidden_dim,
        roost_layers=config.roost_layers,
        roost_heads=config.roost_heads,
        roost_mlp_hidden=config.roost_mlp_hidden,
        roost_mlp_batchnorm=config.roost_mlp_batchnorm,
        roost_power_init=config.roost_power_init,
        cgcnn_layers=config.cgcnn_layers,
        head=config.head,
        cell_features=config.cell_features,
        fusion=config.fusion,
        weight=config.weight,
        head_hidden=tuple(config.head_hidden),
        weight_hidden=tuple(config.weight_hidden),
        descriptor_dim=MAGPIE_FEATURE_COUNT if config.descriptors == "magpie" else 0,
        universal_dim=CHGNET_FEATURE_COUNT if config.structure_features == "chgnet" else 0,
    )


def _check_targets(samples: Sequence[Sample], split_name: str) -> None:
    for row, sample in enumerate(samples, start=1):
        if sample.target is None or not math.isfinite(float(sample.target)):
            raise ValueError(f"{split_name} row {row} (id {sample.id!r}): target is missing or not finite")


def _epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch) % 2**62


@torch.no_grad()
def _validation_mae(model: CosNet, loader: Any, normalizer: TargetNormalizer, device: torch.device) -> float:
    model.eval()
    total, count = 0.0, 0
    for batch in loader:
        batch = batch.to(device)
        prediction = normalizer.denormalize(model(batch).prediction.reshape(-1).double())
        total += float((prediction - batch.target.double()).abs().sum())
        count += len(batch)
    return total / max(count, 1)


def _rng_state() -> dict[str, Any]:
    numpy_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "numpy": [numpy_state[0], torch.from_numpy(numpy_state[1].astype(np.int64)), *map(float, numpy_state[2:])],
        "random": [list(v) if isinstance(v, tuple) else v for v in random.getstate()],
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), int(pos), int(has_gauss), float(cached)))
    version, internal, gauss = state["random"]
    random.setstate((version, tuple(internal), gauss))


def _state_on_cpu(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}


def fit(
    train: Sequence[Sample],
    val: Sequence[Sample],
    config: TrainConfig | None = None,
    *,
    callback: EpochCallback | None = None,
    cache: GraphCache | None = None,
    checkpoint_path: str | Path | None = None,
    resume_from: str | Path | None = None,
) -> FitResult:
    """Train COSNet on the training split, selecting the epoch with the lowest validation MAE.

    Args:
        train: training rows (all with a finite target).
        val: validation rows (all with a finite target); the mode's preparation applies, never augmentation.
        config: the settings (defaults: :class:`TrainConfig`).
        callback: called with an :class:`EpochReport` after each epoch; returning True stops the fit (the best
            state so far is the result).
        cache: optional on-disk crystal-graph cache.
        checkpoint_path: when given, the full training state (model, optimizer, scheduler, epoch, best state, RNG
            states, history) is written there after every epoch.
        resume_from: a checkpoint written by an earlier call with the same data and configuration; training
            continues after its last epoch.

    Returns:
        A :class:`FitResult` whose model holds the best-validation weights.

    Raises:
        ValueError: empty splits, missing targets, or a checkpoint from another configuration.
    """
    from cosnet_core.data import BimodalDataset, make_loader
    from cosnet_core.embeddings import load_element_embedding
    from cosnet_core.structure import FEATURIZER_VERSION

    config = config or TrainConfig()
    censored_rows = {
        "train_bounds": sum(1 for s in train if s.censored) if config.censored == "bound" else 0,
        "train_dropped": sum(1 for s in train if s.censored) if config.censored == "drop" else 0,
        "val_excluded": sum(1 for s in val if s.censored),
    }
    if config.censored == "drop":  # bounds are not measurements: they leave the training rows
        train = [s for s in train if not s.censored]
    val = [s for s in val if not s.censored]  # and never count in the validation MAE that picks the epoch
    if len(train) < 2 or len(val) < 1:
        raise ValueError(
            f"need at least 2 training rows and 1 validation row, got {len(train)} and {len(val)}"
            + (" once the rows whose target is a bound are set aside" if any(censored_rows.values()) else "")
        )
    _check_targets(train, "training")
    _check_targets(val, "validation")

    seed_everything(config.seed)
    device = resolve_device(config.device)
    embedding = load_element_embedding(config.embedding)

    train_rows = prepare_for_mode(train, config.mode, training=True)
    val_rows = prepare_for_mode(val, config.mode, training=False)
    measured = [s.target for s in train_rows if not s.censored]
    normalizer = dataclasses.replace(
        TargetNormalizer.fit(measured or [s.target for s in train_rows]),
        lower_bound=decide_lower_bound(config.nonnegative, train),
    )
    graph_options = {"cache": cache, "radius": config.radius, "max_neighbors": config.max_neighbors}
    graph_options["descriptors"] = config.descriptors == "magpie"
    graph_options["structure_features"] = config.structure_features == "chgnet"
    train_set = BimodalDataset(train_rows, embedding, **graph_options)
    val_set = BimodalDataset(val_rows, embedding, **graph_options)
    val_loader = make_loader(val_set, batch_size=config.batch_size, shuffle=False, seed=config.seed)

    model = build_model(config, embedding.dim)
    if any(s.structure is not None for s in train_rows):
        cell_mean, cell_std = train_set.cell_descriptor_stats(config.cell_features)
        model.set_cell_normalization(cell_mean, cell_std)
    if config.descriptors == "magpie":
        model.set_descriptor_normalization(*train_set.descriptor_stats())
    if config.structure_features == "chgnet":
        model.set_universal_normalization(*train_set.universal_feature_stats())
    if config.init_from:
        from cosnet_core.pretrain import load_encoder_into

        load_encoder_into(model, config.init_from, embedding_name=config.embedding)
    model.to(device)
    optimizer = torch.optim.Adamax(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=config.lr_decay)

    result = FitResult(
        model=model,
        config=config,
        normalizer=normalizer,
        device=str(device),
        embedding_version=embedding.version,
        featurizer_version=FEATURIZER_VERSION,
        n_train=len(train_rows),
        training_formulas=[s.formula.strip() or s.composition.formula for s in train],
        training_targets=[float(s.target) for s in train],
        censored_rows=censored_rows,
    )
    best_state = _state_on_cpu(model)
    start_epoch = 1
    if resume_from is not None and Path(resume_from).exists():
        checkpoint = torch.load(resume_from, map_location="cpu", weights_only=True)
        if checkpoint.get("format") not in (CHECKPOINT_FORMAT, CHECKPOINT_FORMAT_1):
            raise ValueError(f"{resume_from} is not a COSNet training checkpoint")
        if checkpoint["config"] != config.to_dict():
            raise ValueError(f"{resume_from} was written with another TrainConfig; refusing to resume")
        if checkpoint["format"] == CHECKPOINT_FORMAT_1:
            from cosnet_core.models.blocks import upgrade_optimizer_state, upgrade_state_dict

            checkpoint["optimizer"] = upgrade_optimizer_state(model, checkpoint["model"], checkpoint["optimizer"])
            for key in ("model", "best_state"):
                checkpoint[key] = upgrade_state_dict(model, checkpoint[key])
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        best_state = checkpoint["best_state"]
        result.best_epoch = int(checkpoint["best_epoch"])
        result.best_val_mae = float(checkpoint["best_val_mae"])
        result.history = [EpochReport(**report) for report in checkpoint["history"]]
        result.normalizer = normalizer = TargetNormalizer(**checkpoint["normalizer"])
        _set_rng_state(checkpoint["rng"])
        start_epoch = int(checkpoint["epoch"]) + 1
        if checkpoint.get("stopped_by"):
            start_epoch = config.epochs + 1  # that run had finished; nothing left to do

    for epoch in range(start_epoch, config.epochs + 1):
        started = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        model.train()
        loader = make_loader(train_set, batch_size=config.batch_size, shuffle=True, seed=_epoch_seed(config.seed, epoch))
        losses, sizes = [], []
        for batch in loader:
            if len(batch) < 2:  # BatchNorm cannot train on a single row
                continue
            batch = batch.to(device)
            optimizer.zero_grad()
            prediction = model(batch).prediction.reshape(-1)
            loss = censored_loss(
                prediction, normalizer.normalize(batch.target.to(prediction.dtype)), batch.bound, config.loss
            )
            loss.backward()
            if config.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            losses.append(float(loss.detach()))
            sizes.append(len(batch))
        scheduler.step()
        train_loss = float(np.average(losses, weights=sizes)) if losses else float("nan")
        val_mae = _validation_mae(model, val_loader, normalizer, device)
        report = EpochReport(epoch, train_loss, val_mae, time.perf_counter() - started, lr)
        result.history.append(report)
        if val_mae < result.best_val_mae:
            result.best_val_mae, result.best_epoch = val_mae, epoch
            best_state = _state_on_cpu(model)

        stop = bool(callback(report)) if callback is not None else False
        if stop:
            result.stopped_by = "callback"
        patience = config.early_stopping_patience
        if not stop and patience is not None and epoch - result.best_epoch >= patience:
            result.stopped_by = "early_stopping"
        if checkpoint_path is not None:
            _write_checkpoint(
                checkpoint_path, model, optimizer, scheduler, epoch, best_state, result, config, normalizer
            )
        if result.stopped_by is not None:
            break

    model.load_state_dict(best_state)
    model.eval()
    return result


def _write_checkpoint(
    path: str | Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    epoch: int,
    best_state: dict[str, torch.Tensor],
    result: FitResult,
    config: TrainConfig,
    normalizer: TargetNormalizer,
) -> None:
    """Write the full training state atomically (a temporary file, then a rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "format": CHECKPOINT_FORMAT,
        "config": config.to_dict(),
        "epoch": epoch,
        "model": _state_on_cpu(model),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "best_state": best_state,
        "best_epoch": result.best_epoch,
        "best_val_mae": result.best_val_mae,
        "history": [dataclasses.asdict(report) for report in result.history],
        "normalizer": dataclasses.asdict(normalizer),
        "rng": _rng_state(),
        "stopped_by": result.stopped_by or "",
    }
    temporary = path.with_name(path.name + ".tmp")
    torch.save(state, temporary)
    os.replace(temporary, path)


def copy_result(result: FitResult) -> FitResult:
    """A deep copy (model included), e.g. to keep one seed's model while training the next.

    Args:
        result: a fit result.

    Returns:
        An independent copy.
    """
    return copy.deepcopy(result)
