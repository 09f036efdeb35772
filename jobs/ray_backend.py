"""Ray, the engine that executes jobs: connect (a local Ray by default, a cluster through ``RAY_ADDRESS``), ask for
resources, run one job per Ray task, and stream a job's self-contained computation from any node.

Only the executor process (and tests) import this module; Streamlit pages never start Ray.

Two kinds of Ray task (see README, "Run on a Ray cluster"):

* the **job task** (:func:`submit_job`) runs :func:`jobs.executor.execute_job`: it claims the job, reads its
  inputs from the database, writes its outputs to the database and the data directory. It is pinned to the
  executor's node (:func:`executor_node`), the only node that sees the data directory and, with SQLite, the
  database.
* the **compute task** (:class:`ComputeStream`, e.g. one training run's fit) receives everything through Ray (the
  samples with their structures, the configuration, the checkpoint to resume from) and sends everything back
  through Ray as a stream of events (epoch metrics, log lines, checkpoints, artifact bytes, predictions,
  representations) that the job task stores. It may run on any node that has the resources it asks for; the node
  needs this code and its Python packages, but no data directory, no database URL and no shared file system.

A compute task that dies with its worker or node ends its job task's stream with :class:`WorkerLost`; the job is
then resumed (re-queued) from the last checkpoint the job task stored, like a dead job worker (:mod:`jobs.recovery`).

Environment (read by the executor):

* ``RAY_ADDRESS``: the address of an existing Ray cluster (``head:6379``). When set, the executor connects to it
  instead of starting a local Ray.
* ``COSNET_RAY_NUM_CPUS``: CPUs a local Ray may use (default: all).
* ``COSNET_JOBS_CPUS_PER_RUN``: CPUs one training run reserves (default 1; fractions allowed, e.g. 0.5 runs two
  trainings per core).
* ``COSNET_RAY_RESOURCES``: custom Ray resources every training run's compute task asks for, as JSON, e.g.
  ``{"gpu_node": 1}`` to train only on nodes started with ``ray start --resources='{"gpu_node": 4}'`` (default:
  none; any node with free CPUs).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ray

from cosnet_core.settings import SETTINGS

REPO_ROOT = Path(__file__).resolve().parents[1]
RAY_ADDRESS_ENV = SETTINGS.ray_address.variable
RAY_NUM_CPUS_ENV = SETTINGS.ray_num_cpus.variable
CPUS_PER_RUN_ENV = SETTINGS.jobs_cpus_per_run.variable
RESOURCES_ENV = SETTINGS.ray_resources.variable


def worker_runtime_env() -> dict[str, Any]:
    """The runtime environment of every worker: this checkout importable (``jobs``, ``db``, ``cosnet_core``).

    Returns:
        A Ray ``runtime_env`` dictionary.
    """
    paths = [str(REPO_ROOT)]
    for path in os.environ.get("PYTHONPATH", "").split(os.pathsep):
        if path and path not in paths:
            paths.append(path)
    return {"env_vars": {"PYTHONPATH": os.pathsep.join(paths)}}


def connect() -> str:
    """Connect this process to Ray: reuse a running connection, join ``RAY_ADDRESS``, or start a local Ray.

    Returns:
        The GCS address of the Ray cluster.
    """
    if not ray.is_initialized():
        address = SETTINGS.ray_address.get()
        common = {"runtime_env": worker_runtime_env(), "log_to_driver": False, "configure_logging": False}
        if address:
            ray.init(address=address, **common)
        else:
            num_cpus = SETTINGS.ray_num_cpus.get()
            ray.init(
                address="local",
                num_cpus=num_cpus,
                include_dashboard=False,
                **common,
            )
    return ray.get_runtime_context().gcs_address


def cluster_resources() -> dict[str, float]:
    """CPUs and GPUs of the connected cluster.

    Returns:
        ``{"CPU": n, "GPU": m}``.
    """
    resources = ray.cluster_resources()
    return {"CPU": float(resources.get("CPU", 0)), "GPU": float(resources.get("GPU", 0))}


def cpus_per_run() -> float:
    """CPUs one training run reserves (``COSNET_JOBS_CPUS_PER_RUN``, default 1).

    Returns:
        A positive number.
    """
    return SETTINGS.jobs_cpus_per_run.get()


def custom_resources() -> dict[str, float]:
    """The custom Ray resources a training run's compute task asks for (``COSNET_RAY_RESOURCES``, default none).

    Returns:
        e.g. ``{"gpu_node": 1.0}``.

    Raises:
        ValueError: not a JSON object of positive numbers, or it names CPU/GPU (set those with
            ``COSNET_JOBS_CPUS_PER_RUN`` and the run's device).
    """
    return SETTINGS.ray_resources.get()


def compute_options(*, num_cpus: float, num_gpus: float) -> dict[str, Any]:
    """The Ray options of a training run's compute task: its CPUs, its GPU and ``COSNET_RAY_RESOURCES``.

    Args:
        num_cpus: CPUs to reserve.
        num_gpus: GPUs to reserve (0 or 1).

    Returns:
        Keyword arguments of ``.options()``.
    """
    options: dict[str, Any] = {"num_cpus": num_cpus, "num_gpus": num_gpus}
    resources = custom_resources()
    if resources:
        options["resources"] = resources
    return options


def executor_node() -> Any:
    """A scheduling strategy that keeps a task on the node of the calling process (the executor's node).

    Returns:
        A hard ``NodeAffinitySchedulingStrategy``.
    """
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=False)


@ray.remote(max_retries=0)
def _execute_job_task(
    job_id: int, db_url: str, data_dir: str, device: str | None, compute: dict[str, Any] | None
) -> str:
    from jobs.executor import execute_job

    return execute_job(job_id, db_url, Path(data_dir), device=device, compute=compute)


def submit_job(
    job_id: int,
    db_url: str,
    data_dir: Path,
    *,
    num_cpus: float,
    num_gpus: float,
    device: str | None,
    compute: dict[str, Any] | None = None,
) -> ray.ObjectRef:
    """Start one job as a Ray task on the executor's node (never retried by Ray: recovery decides what a dead
    worker means).

    Args:
        job_id: the job.
        db_url: database URL (workers do not inherit the executor's environment on a cluster).
        data_dir: the data directory.
        num_cpus: CPUs the job task reserves.
        num_gpus: GPUs the job task reserves (0 or 1).
        device: "cuda" / "cpu" for training jobs, None for others.
        compute: Ray options of the job's compute task (:func:`compute_options`; the job task then reserves
            nothing itself), or None when the job computes in its own task.

    Returns:
        The task's result reference (its value is the job's final status).
    """
    options = {"num_cpus": num_cpus, "num_gpus": num_gpus, "name": f"cosnet-job-{job_id}",
               "scheduling_strategy": executor_node()}
    return _execute_job_task.options(**options).remote(job_id, db_url, str(data_dir), device, compute)


@ray.remote(max_retries=0)
def _compute_task(reference: str, inputs: Any) -> Iterator[Any]:
    from jobs.registry import resolve

    yield from resolve(reference)(inputs)


def stream_compute(reference: str, inputs: Any, options: dict[str, Any], name: str) -> Any:
    """Start a compute task: the generator function ``reference`` ("module:function") called with ``inputs`` in a
    Ray worker wherever ``options`` fit; its events stream back as they are yielded.

    Args:
        reference: the generator function.
        inputs: its one argument (sent through Ray's object store).
        options: Ray options (:func:`compute_options`).
        name: the task's name (shown by ``ray list tasks``).

    Returns:
        A Ray ``ObjectRefGenerator``.
    """
    return _compute_task.options(num_returns="streaming", name=name, **options).remote(reference, inputs)
