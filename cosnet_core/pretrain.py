"""Pretraining the composition encoder g_C on large computed tables (transfer learning; beyond the paper).

The paper trains g_C from scratch on each experimental table. A few hundred measured rows are too few to learn
chemistry from, so here g_C can first learn from 10^5 DFT compositions (band gaps, formation energies, volumes per
atom; ``../shared/data/pretraining/``) and is then fine-tuned on the experimental rows
(``TrainConfig.init_from``; ``python -m cosnet_core train --init-from NAME``).

Read top to bottom, :func:`pretrain` does:

1. read one or more ``formula, target`` tables (one task each), parse every formula, and average the target over
   rows of the same reduced composition (polymorphs), so each task has one value per composition;
2. join the tasks on the composition: a row is one composition with a value for some tasks (NaN for the others);
3. hold out a random share of compositions for validation (seeded), standardise each task on the training rows;
4. train g_C (the same :class:`~cosnet_core.models.roost.RoostEncoder` as COSNet) with one small head per task,
   L1 loss on the standardised targets averaged over the tasks each row has (AdamW, cosine learning-rate decay),
   keeping the epoch with the lowest mean validation MAE over tasks (in standardised units);
5. write the encoder's weights with its architecture, embedding, tasks and validation errors
   (:data:`ENCODER_FORMAT`), loadable with ``torch.load(weights_only=True)``.

Checkpoints shipped with the project live in ``cosnet_core/pretrained/`` beside ``manifest.json`` (data files with
their sha256, the command that rebuilt them, their validation errors); :func:`shipped_checkpoints` lists them and
:func:`load_encoder_into` starts a COSNet's g_C from one, refusing a checkpoint of another embedding or width.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from cosnet_core.pretrained import (  # noqa: F401 - re-exported: the manifest lives in a torch-free module
    MANIFEST,
    PRETRAINED_DIR,
    PretrainError,
    read_manifest,
    resolve_checkpoint,
    sha256_of,
    shipped_checkpoints,
)

ENCODER_FORMAT = "cosnet-encoder-2"
#: Checkpoints written before the encoder's MLPs became ``torch_geometric.nn.MLP`` (:mod:`cosnet_core.models.blocks`);
#: they load with their keys renamed (the shipped ``roost64-dft4.pt`` is one).
ENCODER_FORMAT_1 = "cosnet-encoder-1"
#: The shared folder's DFT tables, as the shipped checkpoint was built from them (``pretrain`` without ``--table``).
SHARED_PRETRAINING = Path(__file__).resolve().parents[2] / "shared" / "data" / "pretraining"
DEFAULT_TABLES: dict[str, Path] = {
    "mp_gap": SHARED_PRETRAINING / "mp_gap.csv.gz",
    "mp_e_form": SHARED_PRETRAINING / "mp_e_form.csv.gz",
    "oqmd_bandgap": SHARED_PRETRAINING / "oqmd_bandgap.csv.gz",
    "oqmd_volume_per_atom": SHARED_PRETRAINING / "oqmd_volume_per_atom.csv.gz",
}
#: The fields of a RoostEncoder that must match between a checkpoint and the model it initialises.
ENCODER_FIELDS = ("element_dim", "hidden_dim", "roost_layers", "roost_heads", "roost_mlp_hidden")


@dataclass
class PretrainConfig:
    """Everything that decides a pretraining run (saved in the checkpoint).

    Attributes:
        epochs: passes over the training compositions.
        batch_size: compositions per batch.
        lr: AdamW learning rate (cosine-decayed to 1 % of it over the epochs).
        weight_decay: AdamW weight decay.
        val_fraction: share of compositions held out for validation.
        max_rows_per_task: keep at most this many compositions per task (seeded sample; None = all).
        seed: seeds the split, the sample, the weights and the batches.
        embedding: element embedding (must equal the fine-tuned model's).
        hidden_dim, roost_layers, roost_heads, roost_mlp_hidden: g_C's architecture (must equal the model's).
        device: "auto", "cpu" or "cuda".
    """

    epochs: int = 10
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-5
    val_fraction: float = 0.05
    max_rows_per_task: int | None = None
    seed: int = 0
    embedding: str = "matscholar200"
    hidden_dim: int = 64
    roost_layers: int = 3
    roost_heads: int = 3
    roost_mlp_hidden: int | None = None
    device: str = "auto"


@dataclass
class TaskTable:
    """One pretraining task: a name and the ``formula, target`` table it is read from.

    Attributes:
        name: e.g. ``"mp_gap"``.
        path: a CSV (optionally gzipped) with columns ``formula`` and ``target``.
    """

    name: str
    path: Path


@dataclass
class PretrainResult:
    """What :func:`pretrain` returns (and writes).

    Attributes:
        path: the checkpoint written.
        tasks: per task ``{name, mean, std, n_train, n_val, val_mae}`` (val_mae in the task's unit).
        best_epoch: the epoch kept.
        history: per epoch ``{epoch, train_loss, val_loss, seconds}``.
    """

    path: Path
    tasks: list[dict[str, Any]]
    best_epoch: int
    history: list[dict[str, float]] = field(default_factory=list)


def read_task(table: TaskTable, *, max_rows: int | None = None, seed: int = 0) -> pd.Series:
    """One task's targets, one value per reduced composition (mean over repeated compositions).

    Args:
        table: the task.
        max_rows: keep at most this many formulas (those with the smallest seeded hash: the same formulas in
            every table that lists them).
        seed: the sample's seed.

    Returns:
        A Series indexed by the canonical composition key (a formula string of element fractions), named after
        the task. Unparseable formulas and non-finite targets are skipped.

    Raises:
        PretrainError: the file is missing or lacks the ``formula``/``target`` columns, or nothing is usable.
    """
    from cosnet_core.formula import FormulaError, composition_key, parse_formula

    if not Path(table.path).is_file():
        raise PretrainError(f"pretraining table {table.path} does not exist")
    frame = pd.read_csv(table.path)
    missing = {"formula", "target"} - set(frame.columns)
    if missing:
        raise PretrainError(f"{table.path} lacks the column(s) {', '.join(sorted(missing))}")
    frame = frame.assign(target=pd.to_numeric(frame["target"], errors="coerce"))
    frame = frame[np.isfinite(frame["target"])]
    formulas = pd.Series(frame["formula"].astype(str).unique())
    if max_rows is not None and len(formulas) > max_rows:
        # A stable hash, not a random draw: two tables over the same compositions (OQMD band gap and volume) keep
        # the same ones, so the tasks share rows.
        rank = formulas.map(lambda text: hashlib.sha1(f"{seed}:{text}".encode()).hexdigest())
        formulas = formulas[rank.argsort().to_numpy()[:max_rows]]
        frame = frame[frame["formula"].astype(str).isin(set(formulas))]
    keys: dict[str, str | None] = {}
    for formula in formulas:
        try:
            # the project's one definition of "same composition" (element fractions to 1e-6), readable as a formula
            keys[formula] = composition_key(parse_formula(formula))
        except (FormulaError, ValueError):
            keys[formula] = None
    frame = frame.assign(key=frame["formula"].astype(str).map(keys)).dropna(subset=["key"])
    series = frame.groupby("key")["target"].mean().astype(float)
    if series.empty:
        raise PretrainError(f"{table.path} has no usable row")
    return series.rename(table.name)


class PretrainNet(nn.Module):
    """g_C with one small regression head per task.

    Args:
        config: the pretraining configuration (architecture fields).
        element_dim: width of the element embedding.
        n_tasks: number of tasks.
    """

    def __init__(self, config: PretrainConfig, element_dim: int, n_tasks: int) -> None:
        super().__init__()
        from cosnet_core.models.blocks import mlp
        from cosnet_core.models.roost import RoostEncoder

        h = config.hidden_dim
        self.encoder = RoostEncoder(element_dim, h, config.roost_layers, config.roost_heads, config.roost_mlp_hidden)
        self.heads = nn.ModuleList(mlp(h, (h,), 1) for _ in range(n_tasks))

    def forward(self, composition) -> torch.Tensor:  # noqa: ANN001 - a torch_geometric Batch
        """``[B, n_tasks]`` predictions (standardised units)."""
        encoded = self.encoder(composition)
        return torch.cat([head(encoded) for head in self.heads], dim=1)


def masked_l1(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over the entries that have a target (NaN = no value for that task)."""
    known = ~torch.isnan(target)
    if not bool(known.any()):
        return prediction.sum() * 0.0
    return (prediction[known] - target[known]).abs().mean()


def _graphs(keys: Sequence[str], targets: np.ndarray, embedding: Any) -> list:
    from pymatgen.core import Composition

    from cosnet_core.composition import composition_graph

    graphs = []
    for key, row in zip(keys, targets, strict=True):
        graph = composition_graph(Composition(key), embedding)
        graph.y = torch.from_numpy(row.astype(np.float32)).reshape(1, -1)
        graphs.append(graph)
    return graphs


def _batches(graphs: list, batch_size: int, generator: torch.Generator | None) -> Any:
    from torch_geometric.data import Batch

    order = torch.randperm(len(graphs), generator=generator) if generator is not None else torch.arange(len(graphs))
    for start in range(0, len(graphs), batch_size):
        chosen = order[start : start + batch_size].tolist()
        if len(chosen) < 2:
            continue  # BatchNorm needs two rows
        yield Batch.from_data_list([graphs[i] for i in chosen])


def pretrain(
    tables: Sequence[TaskTable],
    out: str | Path,
    config: PretrainConfig | None = None,
    *,
    callback: Callable[[dict[str, float]], bool | None] | None = None,
    log: Callable[[str], None] | None = None,
) -> PretrainResult:
    """Pretrain g_C on computed tables and write its checkpoint.

    Args:
        tables: the tasks (at least one).
        out: checkpoint path to write (``.pt``).
        config: settings (defaults: :class:`PretrainConfig`).
        callback: called after each epoch with ``{epoch, train_loss, val_loss, seconds}``; returning True stops.
        log: optional progress printer.

    Returns:
        The :class:`PretrainResult`.

    Raises:
        PretrainError: no table, an unreadable table, or too few compositions.
    """
    from cosnet_core.embeddings import load_element_embedding
    from cosnet_core.train import resolve_device, seed_everything

    config = config or PretrainConfig()
    say = log or (lambda message: None)
    if not tables:
        raise PretrainError("pretraining needs at least one table")
    seed_everything(config.seed)
    embedding = load_element_embedding(config.embedding)
    columns = [read_task(t, max_rows=config.max_rows_per_task, seed=config.seed) for t in tables]
    joined = pd.concat(columns, axis=1)
    joined = joined[[all(symbol in embedding for symbol in _symbols(key)) for key in joined.index]]
    if len(joined) < 10:
        raise PretrainError(f"only {len(joined)} usable compositions; pretraining needs at least 10")
    say(f"{len(joined)} compositions, tasks: " + ", ".join(f"{c} ({joined[c].notna().sum()})" for c in joined))

    rng = np.random.default_rng(config.seed)
    is_val = rng.random(len(joined)) < config.val_fraction
    values = joined.to_numpy(dtype=np.float64)
    mean = np.nanmean(values[~is_val], axis=0)
    std = np.nanstd(values[~is_val], axis=0)
    std = np.where(std > 1e-8, std, 1.0)
    scaled = (values - mean) / std
    started = time.perf_counter()
    train_graphs = _graphs(list(joined.index[~is_val]), scaled[~is_val], embedding)
    val_graphs = _graphs(list(joined.index[is_val]), scaled[is_val], embedding)
    say(f"graphs built in {time.perf_counter() - started:.1f} s: {len(train_graphs)} train, {len(val_graphs)} val")

    device = resolve_device(config.device)
    model = PretrainNet(config, embedding.dim, len(tables)).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs, eta_min=config.lr / 100)
    generator = torch.Generator()
    best = (math.inf, 0, None)
    history = []
    for epoch in range(1, config.epochs + 1):
        epoch_started = time.perf_counter()
        model.train()
        generator.manual_seed(config.seed * 1_000_003 + epoch)
        losses = []
        for batch in _batches(train_graphs, config.batch_size, generator):
            batch = batch.to(device)
            optimizer.zero_grad()
            loss = masked_l1(model(batch), batch.y)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
        scheduler.step()
        val_mae = _validation_mae(model, val_graphs, config.batch_size, device)
        val_loss = float(np.nanmean(val_mae))
        report = {"epoch": epoch, "train_loss": float(np.mean(losses)) if losses else math.nan,
                  "val_loss": val_loss, "seconds": time.perf_counter() - epoch_started}
        history.append(report)
        say(f"epoch {epoch}: train {report['train_loss']:.4f}, val {val_loss:.4f} ({report['seconds']:.0f} s)")
        if val_loss < best[0]:
            state = {k: v.detach().to("cpu").clone() for k, v in model.encoder.state_dict().items()}
            best = (val_loss, epoch, (state, val_mae))
        if callback is not None and callback(report):
            break
    _, best_epoch, (state, val_mae) = best
    tasks = [
        {"name": t.name, "mean": float(mean[i]), "std": float(std[i]),
         "n_train": int(np.sum(~np.isnan(values[~is_val, i]))), "n_val": int(np.sum(~np.isnan(values[is_val, i]))),
         "val_mae": float(val_mae[i] * std[i])}
        for i, t in enumerate(tables)
    ]
    checkpoint = {
        "format": ENCODER_FORMAT,
        "encoder_state": state,
        "encoder_config": encoder_config(config, embedding.dim),
        "embedding": config.embedding,
        "embedding_version": embedding.version,
        "pretrain_config": {k: v for k, v in asdict(config).items()},
        "tasks": tasks,
        "best_epoch": best_epoch,
        "history": history,
    }
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, out)
    return PretrainResult(path=out, tasks=tasks, best_epoch=best_epoch, history=history)


def _symbols(key: str) -> list[str]:
    """Element symbols of a composition key written by :func:`read_task` ("Li0.5 O0.5" → ["Li", "O"])."""
    return [re.match(r"[A-Z][a-z]?", part).group(0) for part in key.split()]


@torch.no_grad()
def _validation_mae(model: PretrainNet, graphs: list, batch_size: int, device: torch.device) -> np.ndarray:
    """Per-task MAE in standardised units over the validation compositions that have the task."""
    model.eval()
    errors, counts = None, None
    for batch in _batches(graphs, batch_size, None):
        batch = batch.to(device)
        difference = (model(batch) - batch.y).abs()
        known = ~torch.isnan(batch.y)
        total = torch.where(known, difference, torch.zeros_like(difference)).sum(dim=0).cpu().numpy()
        count = known.sum(dim=0).cpu().numpy()
        errors = total if errors is None else errors + total
        counts = count if counts is None else counts + count
    if errors is None:
        return np.array([math.nan])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, errors / np.maximum(counts, 1), np.nan)


def encoder_config(config: Any, element_dim: int) -> dict[str, Any]:
    """The architecture fields of g_C (a PretrainConfig or a TrainConfig) that a checkpoint must match."""
    return {
        "element_dim": int(element_dim),
        "hidden_dim": int(config.hidden_dim),
        "roost_layers": int(config.roost_layers),
        "roost_heads": int(config.roost_heads),
        "roost_mlp_hidden": None if config.roost_mlp_hidden is None else int(config.roost_mlp_hidden),
    }


def register_shipped(result: PretrainResult, name: str, tables: Sequence[TaskTable], command: str) -> dict[str, Any]:
    """Add (or replace) a checkpoint in ``cosnet_core/pretrained/manifest.json``.

    The entry records the file and its sha256, every data file with its sha256, the command that rebuilds it and
    the validation MAE of each task, so that a reader can check what a shipped encoder learned from.

    Args:
        result: the pretraining result (its checkpoint must lie in ``cosnet_core/pretrained/``).
        name: the name users pass as ``init_from``.
        tables: the tables it was trained on.
        command: the command line that rebuilds it.

    Returns:
        The manifest entry written.
    """
    import datetime
    import platform

    path = Path(result.path).resolve()
    if path.parent != PRETRAINED_DIR:
        raise PretrainError(f"a shipped checkpoint must be written into {PRETRAINED_DIR}, not {path.parent}")
    checkpoint = load_checkpoint(path)
    entry = {
        "name": name,
        "file": path.name,
        "sha256": sha256_of(path),
        "data": [{"task": t.name, "file": f"pretraining/{Path(t.path).name}", "sha256": sha256_of(t.path)}
                 for t in tables],
        "command": command,
        "encoder_config": checkpoint["encoder_config"],
        "embedding": checkpoint["embedding"],
        "pretrain_config": checkpoint["pretrain_config"],
        "best_epoch": result.best_epoch,
        "validation_mae": {task["name"]: task["val_mae"] for task in result.tasks},
        "compositions": {task["name"]: {"train": task["n_train"], "val": task["n_val"]} for task in result.tasks},
        "seconds": round(sum(r["seconds"] for r in result.history)),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, device {checkpoint['pretrain_config']['device']}",
        "date": datetime.date.today().isoformat(),
    }
    manifest = read_manifest()
    manifest["checkpoints"] = [e for e in manifest["checkpoints"] if e["name"] != name] + [entry]
    MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n")
    return entry


def load_checkpoint(name_or_path: str | Path) -> dict[str, Any]:
    """Read an encoder checkpoint safely (``weights_only=True``) and check its format.

    Raises:
        PretrainError: not a file written by :func:`pretrain`.
    """
    path = resolve_checkpoint(name_or_path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise PretrainError(f"{path.name} is not a readable encoder checkpoint: {error}") from error
    if not isinstance(checkpoint, dict) or checkpoint.get("format") not in (ENCODER_FORMAT, ENCODER_FORMAT_1):
        raise PretrainError(f"{path.name} is not a COSNet encoder checkpoint ({ENCODER_FORMAT})")
    return checkpoint


def load_encoder_into(model: nn.Module, name_or_path: str | Path, *, embedding_name: str) -> dict[str, Any]:
    """Start a COSNet's g_C from a pretrained checkpoint (the rest of the model keeps its initialisation).

    Args:
        model: a :class:`~cosnet_core.models.cosnet.CosNet`.
        name_or_path: a shipped checkpoint name or a path.
        embedding_name: the model's element embedding (must equal the checkpoint's).

    Returns:
        The checkpoint's metadata (tasks, validation errors).

    Raises:
        PretrainError: another embedding or another architecture (the message names both).
    """
    checkpoint = load_checkpoint(name_or_path)
    if checkpoint["embedding"] != embedding_name:
        raise PretrainError(
            f"pretrained encoder {name_or_path} uses the element embedding {checkpoint['embedding']!r}, "
            f"this model uses {embedding_name!r}: choose the same embedding or another checkpoint"
        )
    wanted = encoder_config(model.config, model.config.element_dim)
    differing = [f"{k} {checkpoint['encoder_config'].get(k)} vs {wanted[k]}" for k in ENCODER_FIELDS
                 if checkpoint["encoder_config"].get(k) != wanted[k]]
    batchnorm = bool(getattr(model.config, "roost_mlp_batchnorm", False))
    if bool(checkpoint["encoder_config"].get("roost_mlp_batchnorm", False)) != batchnorm:  # pretrained without it
        differing.append(f"roost_mlp_batchnorm {not batchnorm} vs {batchnorm}")
    if differing:
        raise PretrainError(
            f"pretrained encoder {name_or_path} has another architecture than this model (checkpoint vs model: "
            + "; ".join(differing) + ")"
        )
    state = checkpoint["encoder_state"]
    if checkpoint["format"] == ENCODER_FORMAT_1:
        from cosnet_core.models.blocks import upgrade_state_dict

        state = upgrade_state_dict(model.composition_encoder, state)
    model.composition_encoder.load_state_dict(state)
    return {k: v for k, v in checkpoint.items() if k != "encoder_state"}
