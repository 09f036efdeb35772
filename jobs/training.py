"""Training jobs: a study (the paper's protocol: modes x seeds, optional search) and its runs (one fit each).

Read top to bottom:

1. :func:`validate_study_payload` checks what the Training page submits (before any row is written).
2. :func:`run_study_job` (kind "study") creates the :class:`~db.models.Study`, optionally searches Table 3's space
   with Ray Tune and an ASHA scheduler (:func:`search_hyperparameters`), creates one run + one "train" job per
   (mode, seed) (and per structure fraction for Figure 2), waits for them, and stores Table 1, Table 2 and
   Figure 2 in ``Study.results`` (:func:`compute_study_results`), beside the baselines it fits on each seed's
   split while the runs train (:func:`study_baselines`: the training-set mean and a Magpie random forest).
3. :func:`run_train_job` (kind "train") trains one run: the dataset version's kept rows with their accepted
   structures (:func:`training_samples`), its seed's split (:func:`split_for_run`), :func:`cosnet_core.train.fit`
   with a per-epoch callback that writes metrics and checks cancellation, and a checkpoint per epoch to resume
   from after a crash; then predictions for every kept row, the artifact, the C/S export and the test metrics.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from cosnet_core.hparams import MODES  # the one list of modes (torch-free)
from jobs import store
from jobs.context import JobCancelled, JobContext, WorkerLost, ray_node_id, thread_events
from jobs.payloads import validate_study

FIGURE2_MODES = ("bimodal-aug", "bimodal")
#: Entries of ``Study.results`` written when the study starts (:func:`study_baselines`), kept at its end.
BASELINE_KEYS = ("baselines", "baseline_rows", "baselines_error", "seed_protocol")
POLL_S = 1.0


# ------------------------------------------------------------------------------------------- the payload


def validate_study_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """Check and normalise a study submission (called by ``jobs.submit("study", ...)`` before any write).

    Args:
        payload: ``dataset_version_id`` (required); optional ``name``, ``modes`` (default the three),
            ``seeds`` (default 0-4), ``train`` (TrainConfig fields, e.g. ``{"epochs": 200, "lr": 0.01}``),
            ``device`` ("auto", "cpu", "gpu"), ``split`` (``{"method": "random"|"grouped"|"column",
            "fractions": [0.6, 0.2, 0.2], "seed": 0, "protocol": "fixed-test"|"resplit"}``: ``seed`` draws the
            test rows under the default ``"fixed-test"``, and each run's seed its validation rows; ``"resplit"``
            draws each run's whole split with its seed; see :func:`cosnet_core.splits.split_for_seed`), ``structure_fractions`` (shares of structures kept
            for Figure 2, each in [0, 1)), ``search`` (``{"enabled": bool, "num_samples": 8, "epochs": 20,
            "grace_period": 2, "full_grid": False}``: random Table 3 points per mode, the epochs of each trial, or
            with ``full_grid`` all 720 points), ``preset`` ("defaults" or "authors", :data:`cosnet_core.hparams.PRESETS`; its
            settings are filled in under ``train`` wherever ``train`` does not set them, and its name is kept in the
            study's config; absent: a bare ``TrainConfig`` plus ``train``).

    Returns:
        The payload with every default filled in.

    Raises:
        ValueError: the message names every problem.
    """
    return validate_study(payload).model_dump()


def run_specs(payload: dict[str, Any], overrides: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The runs of a study: every mode x seed, plus Figure 2's runs (bimodal modes x seeds x fractions).

    Args:
        payload: a validated study payload.
        overrides: per mode, the hyper-parameters a search picked (Table 3 names).

    Returns:
        ``{"mode", "seed", "structure_fraction", "config", "requested_device"}`` per run.
    """
    from cosnet_core.train import TrainConfig

    overrides = overrides or {}
    specs = []
    kept_shares: list[float | None] = [None, *payload["structure_fractions"]]
    for share in kept_shares:
        for mode in payload["modes"]:
            if share is not None and mode not in FIGURE2_MODES:
                continue
            for seed in payload["seeds"]:
                settings = {**payload["train"], **overrides.get(mode, {}), "mode": mode, "seed": seed}
                specs.append(
                    {
                        "mode": mode,
                        "seed": seed,
                        "structure_fraction": share,
                        "config": TrainConfig(**settings).to_dict(),
                        "requested_device": payload["device"],
                    }
                )
    return specs


# ------------------------------------------------------------------------------------------- the data


def training_samples(db_url: str, version_id: int) -> list[Any]:
    """The rows a run trains on: kept entries with a target, each with its accepted structure (if any).

    Args:
        db_url: database URL.
        version_id: the dataset version.

    Returns:
        :class:`cosnet_core.data.Sample` objects with ``id`` = entry id, ``structure_id`` = structure id (as
        strings) and ``split`` = the user's split label.

    Raises:
        ValueError: a row's formula or structure cannot be read (the message names the row).
    """
    from cosnet_core.formula import FormulaError, parse_formula
    from cosnet_core.sample import Sample
    from cosnet_core.structure_io import StructureError, load_structure

    samples = []
    for row in store.version_rows(db_url, version_id):
        formula = row["composition"] or row["raw_formula"]
        try:
            composition = parse_formula(formula)
        except FormulaError as error:
            raise ValueError(f"row {row['row_number']} (entry {row['entry_id']}): {error}") from error
        structure = None
        if row["structure_id"] is not None:
            try:
                structure = load_structure(row["cif"])
            except StructureError as error:
                raise ValueError(
                    f"row {row['row_number']} (entry {row['entry_id']}): accepted structure {row['structure_id']} "
                    f"cannot be read: {error}"
                ) from error
        samples.append(
            Sample(
                id=str(row["entry_id"]),
                composition=composition,
                target=float(row["target"]),
                structure=structure,
                structure_id=str(row["structure_id"]) if structure is not None else None,
                split=row["split"],
                formula=row["raw_formula"],
                censored=row.get("censored"),
            )
        )
    return samples


def split_for_run(samples: list[Any], split_settings: dict[str, Any], seed: int) -> Any:
    """The split of one run of a study: :func:`cosnet_core.splits.split_for_seed`, the command line's definition.

    Args:
        samples: the rows.
        split_settings: ``{"method", "fractions", "seed", "protocol"}`` (the study payload's ``split``); a study
            stored before ``protocol`` existed keeps its single split for every seed.
        seed: the run's seed.

    Returns:
        A :class:`cosnet_core.splits.Split`.

    Raises:
        ValueError: a part too small to train, validate or test on.
    """
    from cosnet_core.splits import split_for_seed, split_samples

    method, fractions = split_settings["method"], split_settings["fractions"]
    if split_settings.get("protocol") is None:  # a study launched before the choice: one split for all seeds
        split = split_samples(samples, method, seed=int(split_settings["seed"]), fractions=fractions)
    else:
        split = split_for_seed(
            samples, method, split_seed=int(split_settings["seed"]), seed=int(seed), fractions=fractions,
            protocol=split_settings["protocol"],
        )
    n_train, n_val, n_test = split.sizes()
    if n_train < 2 or n_val < 1 or n_test < 1:
        raise ValueError(
            f"the {method} split of {len(samples)} rows gives {n_train} train, {n_val} validation "
            f"and {n_test} test rows; need at least 2, 1 and 1"
        )
    return split


# ------------------------------------------------------------------------------------------- one run


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def run_train_job(job_id: int, payload: dict[str, Any], ctx: JobContext) -> None:
    """Train one run (kind "train"): fit, then store predictions, artifact, C/S export and test metrics.

    The fit itself is :func:`compute_run`, started through :meth:`~jobs.context.JobContext.compute_stream` (in a
    Ray worker on any node when the executor runs the job); this function alone reads the database and writes the
    database and the data directory. Resumes from the run's checkpoint when an earlier attempt died. Cancellation
    is checked after every epoch (and every second while a remote epoch runs).

    Args:
        job_id: the training job.
        payload: ``{"run_id": ...}``.
        ctx: the job context.
    """
    run_id = int(payload["run_id"])
    try:
        _train_run(run_id, ctx)
    except (JobCancelled, WorkerLost) as stop:
        if isinstance(stop, JobCancelled):
            store.set_run_status(ctx.db_url, run_id, "cancelled")
        raise  # a lost compute worker: the executor re-queues the job (its run too) to resume
    except Exception as error:
        store.set_run_status(ctx.db_url, run_id, "failed", error=f"{type(error).__name__}: {error}")
        raise


def _run_inputs(run_id: int, ctx: JobContext) -> dict[str, Any]:
    """Everything :func:`compute_run` needs, read from the database and the data directory: the split's samples
    (with their pymatgen structures), the configuration, the device asked for and the checkpoint's bytes."""
    from cosnet_core.evaluate import hide_structures

    run = store.run_row(ctx.db_url, run_id)
    if run["cancel_requested"]:
        raise JobCancelled("cancelled before training started")
    study_config = run["study_config"] or {}
    split_settings = study_config.get("split") or {"method": "random", "fractions": [0.6, 0.2, 0.2], "seed": 0}
    samples = training_samples(ctx.db_url, run["dataset_version_id"])
    if run["structure_fraction"] is not None:  # Figure 2: hide the structures of (1 - kept share) of the rows
        samples = hide_structures(samples, 1.0 - float(run["structure_fraction"]), seed=int(run["seed"]))
    checkpoint = _checkpoint_path(ctx, run_id)
    return {
        "run_id": run_id,
        "split": split_for_run(samples, split_settings, int(run["seed"])),
        "n_with_structure": sum(s.structure is not None for s in samples),
        "decisions": {s.id: (int(s.structure_id) if s.structure is not None else None) for s in samples},
        "config": dict(run["config"]),
        "device": ctx.device or {"gpu": "cuda", "cpu": "cpu"}.get(run["requested_device"], "auto"),
        "checkpoint": checkpoint.read_bytes() if checkpoint.is_file() else None,
        # inline, the graphs are cached in the data directory as before; a remote worker keeps its own cache
        "graph_cache": None if ctx.compute is not None else str(Path(ctx.data_dir) / "cache" / "graphs"),
    }


def _checkpoint_path(ctx: JobContext, run_id: int) -> Path:
    return Path(ctx.data_dir) / "checkpoints" / f"run-{run_id}.pt"


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(data)
    temporary.replace(path)


def _train_run(run_id: int, ctx: JobContext) -> None:
    """Drive one run: send :func:`_run_inputs` to :func:`compute_run` and store each event it streams back."""
    from cosnet_core import __version__ as code_version

    started = time.perf_counter()
    db_url = ctx.db_url
    inputs = _run_inputs(run_id, ctx)
    checkpoint = _checkpoint_path(ctx, run_id)
    n_epochs = int(inputs["config"].get("epochs") or 1)
    stream = ctx.compute_stream("jobs.training:compute_run", inputs)
    try:
        for event in stream.events():
            if event is None:  # a remote epoch still runs: a cancel does not wait for its end
                if ctx.should_cancel():
                    raise JobCancelled("cancelled by the user during an epoch")
                continue
            kind = event["kind"]
            if kind == "started":
                store.mark_run_started(db_url, run_id, device=event["device"], checkpoint_path=str(checkpoint),
                                       structure_decisions=inputs["decisions"], code_version=code_version)
            elif kind == "log":
                ctx.log(event["message"])
            elif kind == "progress":
                ctx.progress(event["fraction"], event["message"])
            elif kind == "discard_checkpoint":
                checkpoint.unlink(missing_ok=True)
            elif kind == "epoch":
                if event["checkpoint"] is not None:  # the state after the previous epoch
                    _write_atomically(checkpoint, event["checkpoint"])
                report = event["report"]
                stop = store.write_epoch(db_url, run_id, **report)
                ctx.progress(0.95 * report["epoch"] / n_epochs,
                             f"epoch {report['epoch']}/{n_epochs} · validation MAE {report['val_mae']:.4g}")
                ctx.log(
                    f"epoch {report['epoch']}: train loss {report['train_loss']:.4g}, val MAE "
                    f"{report['val_mae']:.4g}, {report['seconds']:.2f} s, lr {report['lr']:.3g}"
                )
                if stop or ctx.should_cancel():
                    raise JobCancelled(f"cancelled by the user after epoch {report['epoch']}")
            elif kind == "outputs":
                _store_run_outputs(ctx, run_id, event, started)
                checkpoint.unlink(missing_ok=True)  # the artifact replaces it
    finally:
        stream.close()


def _store_run_outputs(ctx: JobContext, run_id: int, outputs: dict[str, Any], started: float) -> None:
    """Write the artifact and the C/S export into the data directory and the predictions and metrics into the
    database."""
    artifacts = Path(ctx.data_dir) / "artifacts"
    artifact_path = artifacts / f"run-{run_id}.pt"
    representations_path = artifacts / f"run-{run_id}-representations.npz"
    _write_atomically(artifact_path, outputs["artifact"])
    _write_atomically(representations_path, outputs["representations"])
    test_metrics = outputs["test_metrics"]
    store.write_run_outputs(
        ctx.db_url,
        run_id,
        predictions=outputs["predictions"],
        artifact={
            "path": str(artifact_path),
            "sha256": _file_sha256(artifact_path),
            "size_bytes": artifact_path.stat().st_size,
            "featurizer_version": outputs["featurizer_version"],
            "embedding": outputs["embedding"],
            "representations_path": str(representations_path),
        },
        test_metrics=test_metrics,
        best_epoch=outputs["best_epoch"],
        best_val_mae=outputs["best_val_mae"],
        duration_s=max(outputs["trained_s"], time.perf_counter() - started),
    )
    ctx.log(
        f"run {run_id} done: best epoch {outputs['best_epoch']}, val MAE {outputs['best_val_mae']:.4g}, "
        f"test MAE {test_metrics['all']['mae']:.4g}"
    )


def _worker_graph_cache() -> Path:
    """A remote worker's own graph cache (in its temporary folder, never the app's data directory)."""
    import tempfile

    return Path(tempfile.gettempdir()) / f"cosnet-graph-cache-{os.getuid()}"


def compute_run(inputs: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """One run's fit and predictions, self-contained (the compute function of a "train" job; it touches neither the
    database nor the data directory): :func:`cosnet_core.train.fit` on the split it receives, resuming from the
    checkpoint bytes it receives, then predictions for every row and the artifact.

    Args:
        inputs: see :func:`_run_inputs`.

    Yields:
        Events, in this order: ``{"kind": "started", "device"}``; per epoch ``{"kind": "epoch", "report": {epoch,
        train_loss, val_mae, seconds, lr}, "checkpoint": bytes of the state after the previous epoch, or None}``
        (with ``"log"``, ``"progress"`` and ``"discard_checkpoint"`` events between); finally ``{"kind":
        "outputs", "predictions", "test_metrics", "artifact": bytes, "representations": bytes of the .npz export,
        "featurizer_version", "embedding", "best_epoch", "best_val_mae", "trained_s"}``. Closing the generator (a
        cancel) stops the fit after its current epoch.
    """
    import tempfile

    from cosnet_core.structure import GraphCache
    from cosnet_core.train import TrainConfig, fit, resolve_device

    device = str(resolve_device(inputs["device"]))
    config = TrainConfig.from_dict({**inputs["config"], "device": device})
    split = inputs["split"]
    run_id = inputs["run_id"]
    yield {"kind": "started", "device": device}
    cache = GraphCache(inputs["graph_cache"] or _worker_graph_cache())
    with tempfile.TemporaryDirectory(prefix=f"cosnet-run-{run_id}-") as folder:
        checkpoint, resume = Path(folder) / "checkpoint.pt", None
        if inputs["checkpoint"] is not None:
            resume = Path(folder) / "resume.pt"
            resume.write_bytes(inputs["checkpoint"])
        yield {"kind": "log", "message": (
            f"run {run_id}: mode {config.mode}, seed {config.seed}, {len(split.train)}/{len(split.val)}/"
            f"{len(split.test)} train/val/test rows, {inputs['n_with_structure']} with a structure, device {device}"
            + (f", resuming from run-{run_id}.pt" if resume else "") + f", on {socket.gethostname()}"
            + (f", Ray node {node}" if (node := ray_node_id()) else "")
        )}

        def train(emit: Any, stop: Any) -> Any:
            sent: dict[str, Any] = {"version": None}

            def on_epoch(report: Any) -> bool:
                state = None
                if checkpoint.is_file():  # fit rewrites it (a new file, renamed) after each epoch's callback
                    version = (checkpoint.stat().st_ino, checkpoint.stat().st_mtime_ns)
                    if version != sent["version"]:
                        sent["version"], state = version, checkpoint.read_bytes()
                fields = ("epoch", "train_loss", "val_mae", "seconds", "lr")
                emit({"kind": "epoch", "report": {f: getattr(report, f) for f in fields}, "checkpoint": state})
                return stop.is_set()  # a cancel: end after this epoch

            try:
                return fit(split.train, split.val, config, callback=on_epoch, cache=cache,
                           checkpoint_path=checkpoint, resume_from=resume)
            except ValueError as error:
                if resume is None or "refusing to resume" not in str(error):
                    raise
                emit({"kind": "log", "message": f"checkpoint not usable ({error}); training from the first epoch"})
            emit({"kind": "discard_checkpoint"})
            return fit(split.train, split.val, config, callback=on_epoch, cache=cache, checkpoint_path=checkpoint)

        result = yield from thread_events(train, f"fit-run-{run_id}")
    yield {"kind": "progress", "fraction": 0.96, "message": "predicting every row"}
    yield {"kind": "outputs", **_run_outputs(result, split, cache)}


def _run_outputs(result: Any, split: Any, cache: Any) -> dict[str, Any]:
    """Predictions for every row, the test metrics, the artifact's and the C/S export's bytes of a fitted run."""
    import io
    import tempfile

    from cosnet_core.artifact import save_artifact
    from cosnet_core.evaluate import subset_metrics

    ordered = [("train", s) for s in split.train] + [("val", s) for s in split.val] + [("test", s) for s in split.test]
    predicted = result.predict([s for _, s in ordered], cache=cache)
    predictions = [
        {
            "entry_id": int(sample.id),
            "split": part,
            "target": float(sample.target),
            "value": float(predicted.prediction[i]),
            "composition_weight": float(predicted.composition_weight[i]),
            "has_structure": bool(predicted.has_structure[i]),
            "structure_id": int(sample.structure_id) if sample.structure is not None else None,
        }
        for i, (part, sample) in enumerate(ordered)
    ]
    test_rows = [i for i, (part, _) in enumerate(ordered) if part == "test"]
    test_metrics = subset_metrics(
        [predictions[i]["target"] for i in test_rows],
        [predictions[i]["value"] for i in test_rows],
        [predictions[i]["has_structure"] for i in test_rows],
        [ordered[i][1].censored for i in test_rows],
    )
    test_metrics["censored_rows"] = {**result.censored_rows,
                                     "test_excluded": test_metrics["all"]["n_censored_excluded"]}
    test_metrics["target_lower_bound"] = result.normalizer.lower_bound
    test_metrics["sizes"] = {
        "train": len(split.train), "val": len(split.val), "test": len(split.test), "train_after_mode": result.n_train,
    }
    test_metrics["stopped_by"] = result.stopped_by
    with tempfile.TemporaryDirectory(prefix="cosnet-artifact-") as folder:
        artifact = save_artifact(Path(folder) / "run.pt", result).read_bytes()
    export = io.BytesIO()
    np.savez_compressed(
        export,
        entry_id=np.array([int(s.id) for _, s in ordered], dtype=np.int64),
        split=np.array([part for part, _ in ordered]),
        composition_repr=predicted.composition_repr.astype(np.float32),
        structure_repr=predicted.structure_repr.astype(np.float32),
        composition_weight=predicted.composition_weight,
        has_structure=predicted.has_structure,
        prediction=predicted.prediction,
        target=np.array([float(s.target) for _, s in ordered]),
    )
    return {
        "predictions": predictions,
        "test_metrics": test_metrics,
        "artifact": artifact,
        "representations": export.getvalue(),
        "featurizer_version": result.featurizer_version,
        "embedding": result.embedding_version,
        "best_epoch": result.best_epoch,
        "best_val_mae": result.best_val_mae,
        "trained_s": sum(r.seconds for r in result.history),
    }


# ------------------------------------------------------------------------------------------- a study


def run_study_job(job_id: int, payload: dict[str, Any], ctx: JobContext) -> None:
    """Run the paper's protocol (kind "study"): search (optional), runs over modes x seeds, Tables 1-2, Figure 2.

    Safe to run again after a crash: it finds its study and its runs and only waits for what is left.

    Args:
        job_id: the study job.
        payload: see :func:`validate_study_payload`.
        ctx: the job context.
    """
    payload = validate_study_payload(payload)
    db_url = ctx.db_url
    creator = (store.job_row(db_url, job_id) or {}).get("created_by", "local")
    study_id = store.ensure_study(db_url, job_id, payload, created_by=creator)
    runs = store.runs_of_study(db_url, study_id)
    if not runs:
        overrides: dict[str, dict[str, Any]] = {}
        if payload["search"]["enabled"]:
            search = search_hyperparameters(ctx, study_id, payload)
            overrides = {mode: found["best_config"] for mode, found in search.items()}
            store.update_study(db_url, study_id, config={**payload, "search_results": search})
        if ctx.should_cancel():
            _end_study(ctx, study_id, "cancelled")
            raise JobCancelled("cancelled before the runs started")
        store.create_runs(db_url, study_id, job_id, run_specs(payload, overrides))
        ctx.log(f"study {study_id}: {len(store.runs_of_study(db_url, study_id))} runs queued")
    if "baselines" not in (store.study_row(db_url, study_id)["results"] or {}):
        _store_baselines(ctx, study_id, payload)

    if ctx.inline:
        _run_children_inline(ctx, study_id)
    cancelled = _wait_for_runs(ctx, study_id)
    runs = store.runs_of_study(db_url, study_id)
    if cancelled:
        _end_study(ctx, study_id, "cancelled")
        raise JobCancelled("study cancelled by the user")
    succeeded = [r for r in runs if r["status"] == "succeeded"]
    if runs and all(r["state"] == "cancelled" for r in runs):  # each run was cancelled one by one
        _end_study(ctx, study_id, "cancelled")
        raise JobCancelled("every run of the study was cancelled")
    if not succeeded:
        first_error = next((r["error"] for r in runs if r["error"]), "no run succeeded")
        _end_study(ctx, study_id, "failed")
        raise RuntimeError(f"all {len(runs)} runs ended without success; first error: {first_error}")
    _end_study(ctx, study_id, "succeeded")


def study_baselines(db_url: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The baselines of a study (:mod:`cosnet_core.baselines`), fitted per seed on that seed's split: the same
    training rows as the runs of that seed (every mode), scored on the same test rows. Identical splits are fitted
    once (:class:`cosnet_core.baselines.BaselineCache`).

    Args:
        db_url: database URL.
        payload: the validated study payload.

    Returns:
        ``{"baselines": {"mean"|"rf_magpie": {subset: {"mae_mean", "mae_std", "rmse_mean", "rmse_std", "r2_mean",
        "r2_std", "n"}}}`` (mean ± std over the seeds), ``"baseline_rows": [{"seed", "train_entry_ids",
        "test_entry_ids", "predictions": {name: [...]}}]`` (one per seed, the test predictions in the order of
        ``test_entry_ids``) and ``"seed_protocol"``.
    """
    from cosnet_core.baselines import BaselineCache, fit_baselines, summarize_baselines

    samples = training_samples(db_url, payload["dataset_version_id"])
    cache = BaselineCache()
    fitted = {}
    for seed in payload["seeds"]:
        split = split_for_run(samples, payload["split"], seed)
        fitted[seed] = fit_baselines(split.train, split.test, cache=cache)
    return {
        "baselines": summarize_baselines(list(fitted.values())),
        "baseline_rows": [
            {
                "seed": int(seed),
                "train_entry_ids": [int(i) for i in run.train_ids],
                "test_entry_ids": [int(i) for i in run.test_ids],
                "predictions": {name: [float(v) for v in values] for name, values in run.predictions.items()},
            }
            for seed, run in fitted.items()
        ],
        "seed_protocol": payload["split"].get("protocol"),
    }


def _store_baselines(ctx: JobContext, study_id: int, payload: dict[str, Any]) -> None:
    """Fit the study's baselines while its runs train, and keep them in ``Study.results`` (a failure is logged and
    recorded, never fatal to the study)."""
    ctx.log(f"study {study_id}: fitting the baselines (training-set mean, random forest on Magpie features)")
    try:
        found = study_baselines(ctx.db_url, payload)
    except Exception as error:
        ctx.log(f"the baselines could not be fitted: {type(error).__name__}: {error}")
        found = {"baselines": {}, "baselines_error": f"{type(error).__name__}: {error}"}
    else:
        forest = found["baselines"]["rf_magpie"]["all"]
        ctx.log(f"study {study_id}: random forest on Magpie test MAE {forest['mae_mean']:.4g}, R² {forest['r2_mean']:.3g}")
    results = store.study_row(ctx.db_url, study_id)["results"] or {}
    store.update_study(ctx.db_url, study_id, results={**results, **found})


def _run_children_inline(ctx: JobContext, study_id: int) -> None:
    from jobs.executor import execute_job

    for run in store.runs_of_study(ctx.db_url, study_id):
        if ctx.should_cancel():
            return
        if run["job_id"] is not None and run["job_status"] == "queued":
            execute_job(run["job_id"], ctx.db_url, ctx.data_dir, device=ctx.device, inline=True)


def _wait_for_runs(ctx: JobContext, study_id: int) -> bool:
    """Poll the study's runs until all have ended; report progress. Returns True when the study was cancelled."""
    cancelled = False
    while True:
        runs = store.runs_of_study(ctx.db_url, study_id)
        total_epochs = sum(r["n_epochs"] for r in runs) or 1
        epochs = sum(r["n_epochs"] if r["state"] in store.TERMINAL else min(r["epochs_done"], r["n_epochs"])
                     for r in runs)
        ctx.progress(0.98 * epochs / total_epochs, progress_message(runs))
        finished = sum(r["state"] in store.TERMINAL for r in runs)
        if finished == len(runs):
            return cancelled or ctx.should_cancel()
        if not cancelled and ctx.should_cancel():
            cancelled = True
            for run in runs:
                if run["job_id"] is not None:
                    store.request_cancel(ctx.db_url, run["job_id"])
        time.sleep(POLL_S)


def progress_message(runs: list[dict[str, Any]]) -> str:
    """The study's progress line: finished runs, then queued and running ones counted apart.

    Args:
        runs: rows of :func:`jobs.store.runs_of_study`.

    Returns:
        e.g. ``"2/6 runs finished (1 cancelled), 1 running, 3 queued"``.
    """
    counts = store.run_counts(runs)
    finished = sum(counts[s] for s in store.TERMINAL)
    ends = ", ".join(f"{counts[s]} {s}" for s in ("failed", "cancelled") if counts[s])
    message = f"{finished}/{len(runs)} runs finished" + (f" ({ends})" if ends else "")
    message += f", {counts['running']} running"
    if counts["stopping"]:
        message += f", {counts['stopping']} stopping"
    return message + f", {counts['queued']} queued"


def _end_study(ctx: JobContext, study_id: int, status: str) -> None:
    from db.models import utcnow

    try:
        results = compute_study_results(ctx.db_url, study_id)
    except Exception as error:  # results are a summary; a failure there must not hide the runs' outcome
        ctx.log(f"results could not be computed: {type(error).__name__}: {error}")
        results = {"error": f"{type(error).__name__}: {error}"}
    previous = store.study_row(ctx.db_url, study_id)["results"] or {}
    results = {**{k: v for k, v in previous.items() if k in BASELINE_KEYS}, **results}
    store.update_study(ctx.db_url, study_id, status=status, results=results, finished_at=utcnow())
    ctx.log(f"study {study_id} {status}")


# ------------------------------------------------------------------------------------------- results


def compute_study_results(db_url: str, study_id: int) -> dict[str, Any]:
    """Table 1 (test MAE/RMSE/R² mean ± std over seeds per mode for all / without / with structure; each mode's seed
    ensemble and its 50/50 blend with the forest, :func:`cosnet_core.evaluate.ensemble_metrics`, None where the
    seeds scored different test rows), Table 2 (alignment R² of C with the volume per atom, mean ± std per mode)
    and Figure 2 (test MAE per share of structures kept), from the succeeded runs' stored predictions and C
    exports.

    Args:
        db_url: database URL.
        study_id: the study.

    Returns:
        ``{"table1": {mode: {subset: {...}, "seeds": [...]}}, "ensemble": {mode: {subset: {"mae", "rmse", "r2",
        "n", "members"}} or None}, "ensemble_with_forest": {the same}, "table2": {mode: {"r2_mean", "r2_std",
        "n_runs"}}, "figure2": [{"structure_fraction", "mode", "test_mae_mean", "test_mae_std", "n_runs"}],
        "seed_protocol": "fixed-test"|"resplit"|None (a study launched before the choice: one split for every
        seed), "runs": {status: count}, "failed_runs": [{"id", "mode", "seed", "error"}]}``.
    """
    import pandas as pd

    from cosnet_core.baselines import stored_prediction_frames
    from cosnet_core.evaluate import alignment_r2, mean_std, subset_metrics, table1_of_runs

    runs = store.runs_of_study(db_url, study_id)
    done = [r for r in runs if r["status"] == "succeeded"]
    by_run: dict[int, list[dict[str, Any]]] = {}
    for row in store.run_predictions(db_url, [r["id"] for r in done]):
        if row["split"] == "test":
            by_run.setdefault(row["run_id"], []).append(row)
    per_run_metrics = {
        run_id: subset_metrics([r["target"] for r in rows], [r["value"] for r in rows], [r["has_structure"] for r in rows],
                               [r["censored"] for r in rows])
        for run_id, rows in by_run.items()
    }  # Figure 2's runs

    table1: dict[str, Any] = {}
    ensembles: dict[str, Any] = {"ensemble": {}, "ensemble_with_forest": {}}
    study = store.study_row(db_url, study_id)
    forest = stored_prediction_frames((study["results"] or {}).get("baseline_rows"))
    main_runs = [r for r in done if r["structure_fraction"] is None]
    ordered = [r for mode in MODES for r in main_runs if r["mode"] == mode and r["id"] in by_run]
    test_rows = pd.DataFrame(
        [{"mode": r["mode"], "run": r["id"], "id": str(row["entry_id"]), "target": row["target"],
          "prediction": row["value"], "has_structure": bool(row["has_structure"]), "censored": row["censored"]}
         for r in ordered for row in by_run[r["id"]]],
        columns=["mode", "run", "id", "target", "prediction", "has_structure", "censored"],
    )
    seeds = {r["id"]: r["seed"] for r in ordered}
    # the one Table 1 computation (the command line's metrics.json and the Results page use it too)
    for mode, found in table1_of_runs(test_rows, forest=forest or None).items():
        table1[mode] = {**found["test"], "seeds": [seeds[run] for run in found["runs"]]}
        ensembles["ensemble"][mode] = found["ensemble"]
        ensembles["ensemble_with_forest"][mode] = found["ensemble_with_forest"]

    table2: dict[str, Any] = {}
    paths = store.representation_paths(db_url, [r["id"] for r in main_runs])
    structure_ids = sorted({row["structure_id"] for rows in by_run.values() for row in rows if row["structure_id"]})
    volumes = store.structure_volumes(db_url, structure_ids)
    for mode in MODES:
        scores = []
        for run in (r for r in main_runs if r["mode"] == mode and r["id"] in paths):
            rows = {row["entry_id"]: row for row in by_run.get(run["id"], [])}
            with np.load(paths[run["id"]]) as export:
                keep = [
                    i for i, (entry_id, part) in enumerate(zip(export["entry_id"], export["split"], strict=True))
                    if part == "test" and (rows.get(int(entry_id)) or {}).get("structure_id") is not None
                    and volumes.get(rows[int(entry_id)]["structure_id"]) is not None
                ]
                c = export["composition_repr"][keep]
                v = [volumes[rows[int(export["entry_id"][i])]["structure_id"]] for i in keep]
            scores.append(alignment_r2(c, v, seed=int(run["seed"])) if keep else float("nan"))
        if scores:
            r2_mean, r2_std = mean_std(scores)
            table2[mode] = {"r2_mean": r2_mean, "r2_std": r2_std, "n_runs": len(scores)}

    figure2 = []
    fractions = sorted({r["structure_fraction"] for r in done if r["structure_fraction"] is not None})
    if fractions:
        for share in [*fractions, 1.0]:
            for mode in FIGURE2_MODES:
                group = [
                    r for r in done
                    if r["mode"] == mode and r["id"] in per_run_metrics
                    and (r["structure_fraction"] == share if share < 1.0 else r["structure_fraction"] is None)
                ]
                if group:
                    mae_mean, mae_std = mean_std([per_run_metrics[r["id"]]["all"]["mae"] for r in group])
                    figure2.append(
                        {"structure_fraction": share, "mode": mode, "test_mae_mean": mae_mean,
                         "test_mae_std": mae_std, "n_runs": len(group)}
                    )

    split_settings = (study["config"] or {}).get("split") or {}
    counts: dict[str, int] = {}
    for run in runs:
        counts[run["status"]] = counts.get(run["status"], 0) + 1
    return {
        "table1": table1,
        **ensembles,
        "table2": table2,
        "figure2": figure2,
        "seed_protocol": split_settings.get("protocol"),
        "runs": counts,
        "failed_runs": [
            {"id": r["id"], "mode": r["mode"], "seed": r["seed"], "error": r["error"]}
            for r in runs if r["status"] == "failed"
        ],
    }


# ------------------------------------------------------------------------------------------- search


def search_hyperparameters(ctx: JobContext, study_id: int, payload: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Search Table 3's space per mode with Ray Tune (:func:`cosnet_core.tune.search`, the command line's ``tune``
    too); an ASHA scheduler stops bad trials early.

    Each trial trains with the first seed on the study's split for ``search.epochs`` epochs and reports its
    validation MAE after every epoch (its rows reach it through Ray's object store, its reports come back through
    Tune; a trial saves no checkpoint, so it needs no disk shared with the head, and it asks for the CPUs and the
    ``COSNET_RAY_RESOURCES`` of a run); the configuration whose **best** validation epoch is lowest wins (the runs
    keep their best validation epoch too). ``search.full_grid`` runs all 720 points of Table 3.

    Args:
        ctx: the study job's context (cancellation stops every trial).
        study_id: the study.
        payload: the validated study payload (``search`` settings).

    Returns:
        Per mode :func:`cosnet_core.tune.search`'s summary (``best_config``, ``best_val_mae``, ``best_epoch``,
        ``trials``, ``epochs_per_trial``, ``trial_results``, ...).
    """
    from cosnet_core.train import TrainConfig
    from cosnet_core.tune import search
    from jobs.ray_backend import connect, cpus_per_run

    connect()
    # on a cluster the executor hands over what a trial asks for (this worker does not share its environment)
    options = ctx.compute or {"num_cpus": cpus_per_run()}
    _CancelStopper = _make_cancel_stopper()
    settings = payload["search"]
    samples = training_samples(ctx.db_url, payload["dataset_version_id"])
    split = split_for_run(samples, payload["split"], payload["seeds"][0])
    found: dict[str, dict[str, Any]] = {}

    for index, mode in enumerate(payload["modes"]):
        ctx.progress(0.0, f"hyper-parameter search for {mode} ({index + 1}/{len(payload['modes'])})")
        base = TrainConfig(
            **{**payload["train"], "epochs": settings["epochs"], "mode": mode, "seed": payload["seeds"][0],
               "device": "cpu"}
        ).to_dict()
        found[mode] = search(
            split.train, split.val, base, num_samples=settings["num_samples"], epochs=settings["epochs"],
            grace_period=settings["grace_period"], full_grid=settings["full_grid"],
            storage_path=Path(ctx.data_dir) / "tune", name=f"study-{study_id}-{mode}",
            stop=_CancelStopper(ctx.db_url, ctx.job_id), cpus_per_trial=options["num_cpus"],
            resources=options.get("resources"),
        )
        if ctx.should_cancel():
            raise JobCancelled("cancelled during the hyper-parameter search")
        ctx.log(f"search {mode}: best {found[mode]['best_config']} (val MAE {found[mode]['best_val_mae']:.4g})")
    return found


def _make_cancel_stopper() -> type:
    from ray import tune

    class CancelStopper(tune.Stopper):
        """Stops every trial once the study job is asked to cancel (picklable: holds only the URL and the id)."""

        def __init__(self, db_url: str, job_id: int) -> None:
            self.db_url, self.job_id = db_url, job_id

        def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
            return False

        def stop_all(self) -> bool:
            return store.job_cancel_requested(self.db_url, self.job_id)

    return CancelStopper


__all__ = [
    "compute_study_results",
    "run_specs",
    "run_study_job",
    "run_train_job",
    "search_hyperparameters",
    "study_baselines",
    "training_samples",
    "validate_study_payload",
]
