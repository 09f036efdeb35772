"""Pretraining g_C as a job (kind "pretrain", issue 18 item 5): :func:`cosnet_core.pretrain.pretrain` on computed
``formula, target`` tables, with progress, cancel and a Ray worker on any node, like a training run.

* :func:`validate_pretrain_payload` checks a submission: the tables (files the executor's machine can read, by
  default the shared folder's DFT tables, :data:`cosnet_core.pretrain.DEFAULT_TABLES`) and the
  :class:`~cosnet_core.pretrain.PretrainConfig` settings.
* :func:`run_pretrain_job` (on the executor's node) reads the tables' bytes and hands them, with the settings, to
  :func:`compute_pretrain` (a compute task, :meth:`jobs.context.JobContext.compute_stream`), which streams back one
  event per epoch (progress, log line; a cancel stops it after that epoch) and at the end the checkpoint's bytes.
  The job writes them to ``<data dir>/pretrained/<name>-job-<id>.pt``: a file the Training page's and the command
  line's ``init_from`` accept as a path.

A pretraining whose worker dies is not resumed (:func:`cosnet_core.pretrain.pretrain` keeps no checkpoint between
epochs): it fails with the reason, launch it again.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from jobs.context import JobCancelled, JobContext, thread_events

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,80}$")


def validate_pretrain_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """Check and normalise a pretraining submission (called by ``jobs.submit("pretrain", ...)`` before any write).

    Args:
        payload: optional ``name`` (letters, digits, ``._-``; default "encoder"), ``tables`` (``{task name: path
            of a CSV or .csv.gz with columns formula, target}``; default the shared folder's tables), ``config``
            (:class:`~cosnet_core.pretrain.PretrainConfig` fields, e.g. ``{"epochs": 10, "hidden_dim": 64}``) and
            ``device`` ("auto", "cpu", "gpu").

    Returns:
        The payload with every default filled in (paths made absolute).

    Raises:
        ValueError: the message names every problem.
    """
    from cosnet_core.pretrain import DEFAULT_TABLES, PretrainConfig

    problems: list[str] = []
    name = str(payload.get("name") or "encoder")
    if not NAME_PATTERN.match(name):
        problems.append(f"name may hold letters, digits, '.', '_' and '-' only (got {name!r})")
    tables = {str(task): str(Path(path).expanduser().resolve())
              for task, path in (payload.get("tables") or DEFAULT_TABLES).items()}
    if not tables:
        problems.append("pretraining needs at least one table")
    problems += [f"table {task}: {path} is not a readable file" for task, path in tables.items()
                 if not Path(path).is_file()]
    config = dict(payload.get("config") or {})
    fields = {f.name for f in dataclasses.fields(PretrainConfig)} - {"device"}
    unknown = sorted(set(config) - fields)
    if unknown:
        problems.append(f"unknown pretraining settings {unknown} (known: {', '.join(sorted(fields))})")
    elif int(config.get("epochs", 1)) < 1:
        problems.append(f"epochs must be ≥ 1 (got {config['epochs']})")
    device = str(payload.get("device") or "auto").lower()
    if device not in ("auto", "cpu", "gpu"):
        problems.append(f"device must be one of auto, cpu, gpu (got {device!r})")
    if problems:
        raise ValueError("invalid pretraining: " + "; ".join(problems))
    return {"name": name, "tables": tables, "config": config, "device": device}


def run_pretrain_job(job_id: int, payload: dict[str, Any], ctx: JobContext) -> str:
    """Pretrain g_C (kind "pretrain"): ship the tables to :func:`compute_pretrain`, record its epochs as progress,
    stop it when the user cancels, store the checkpoint in the data directory.

    Args:
        job_id: the job.
        payload: see :func:`validate_pretrain_payload`.
        ctx: the job context.

    Returns:
        The job's message: where the checkpoint lies and its validation error per task.
    """
    payload = validate_pretrain_payload(payload)
    epochs = int(payload["config"].get("epochs") or 10)
    inputs = {
        "tables": {task: (Path(path).name, Path(path).read_bytes()) for task, path in payload["tables"].items()},
        "config": {**payload["config"], "device": ctx.device or {"gpu": "cuda"}.get(payload["device"],
                                                                                    payload["device"])},
    }
    ctx.progress(0.0, f"pretraining g_C on {', '.join(payload['tables'])}")
    stream = ctx.compute_stream("jobs.pretraining:compute_pretrain", inputs)
    try:
        for event in stream.events():
            if event is None:
                if ctx.should_cancel():
                    raise JobCancelled("cancelled by the user during an epoch")
            elif event["kind"] == "log":
                ctx.log(event["message"])
            elif event["kind"] == "epoch":
                report = event["report"]
                ctx.progress(0.95 * report["epoch"] / epochs,
                             f"epoch {report['epoch']}/{epochs} · validation loss {report['val_loss']:.4g}")
                if ctx.should_cancel():
                    raise JobCancelled(f"cancelled by the user after epoch {report['epoch']}")
            elif event["kind"] == "checkpoint":
                out = Path(ctx.data_dir) / "pretrained" / f"{payload['name']}-job-{job_id}.pt"
                out.parent.mkdir(parents=True, exist_ok=True)
                temporary = out.with_name(out.name + ".tmp")
                temporary.write_bytes(event["checkpoint"])
                temporary.replace(out)
                scores = ", ".join(f"{t['name']} {t['val_mae']:.4g}" for t in event["tasks"])
                message = f"encoder written to {out} (best epoch {event['best_epoch']}; validation MAE {scores})"
                ctx.log(message)
                return message
    finally:
        stream.close()
    raise RuntimeError("the pretraining ended without a checkpoint")


def compute_pretrain(inputs: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The compute function of a "pretrain" job (no database, no data directory): the tables' bytes are written to
    a temporary folder, :func:`cosnet_core.pretrain.pretrain` runs in a thread and its epochs are yielded.

    Args:
        inputs: ``{"tables": {task: (file name, bytes)}, "config": PretrainConfig fields}``.

    Yields:
        ``{"kind": "log", "message"}``, ``{"kind": "epoch", "report": {epoch, train_loss, val_loss, seconds}}``,
        and last ``{"kind": "checkpoint", "checkpoint": bytes, "tasks", "best_epoch"}``. Closing the generator (a
        cancel) stops the pretraining after its current epoch.
    """
    import tempfile

    from cosnet_core.pretrain import PretrainConfig, TaskTable, pretrain

    with tempfile.TemporaryDirectory(prefix="cosnet-pretrain-") as folder:
        tables = []
        for task, (file_name, data) in inputs["tables"].items():
            path = Path(folder) / f"{task}-{file_name}"
            path.write_bytes(data)
            tables.append(TaskTable(task, path))
        out = Path(folder) / "encoder.pt"

        def work(emit: Any, stop: Any) -> Any:
            def epoch_done(report: dict[str, float]) -> bool:
                emit({"kind": "epoch", "report": dict(report)})
                return stop.is_set()  # a cancel: end after this epoch

            return pretrain(tables, out, PretrainConfig(**inputs["config"]), callback=epoch_done,
                            log=lambda message: emit({"kind": "log", "message": message}))

        result = yield from thread_events(work, "pretrain")
        yield {"kind": "checkpoint", "checkpoint": out.read_bytes(), "tasks": result.tasks,
               "best_epoch": result.best_epoch}
