"""Ray, the engine that executes jobs: connect (a local Ray by default, a cluster through ``RAY_ADDRESS``), ask for
resources, and run one job per Ray task.

Only the executor process (and tests) import this module; Streamlit pages never start Ray.

Environment:

* ``RAY_ADDRESS``: the address of an existing Ray cluster (``ray://head:10001`` or ``head:6379``). When set, the
  executor connects to it instead of starting a local Ray. The cluster's nodes must run the same code and see the
  same data directory and database (e.g. one shared file system and a PostgreSQL ``COSNET_DATABASE_URL``).
* ``COSNET_RAY_NUM_CPUS``: CPUs a local Ray may use (default: all).
* ``COSNET_JOBS_CPUS_PER_RUN``: CPUs one training run reserves (default 1; fractions allowed, e.g. 0.5 runs two
  trainings per core).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import ray

REPO_ROOT = Path(__file__).resolve().parents[1]
RAY_ADDRESS_ENV = "RAY_ADDRESS"
RAY_NUM_CPUS_ENV = "COSNET_RAY_NUM_CPUS"
CPUS_PER_RUN_ENV = "COSNET_JOBS_CPUS_PER_RUN"


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
        address = os.environ.get(RAY_ADDRESS_ENV)
        common = {"runtime_env": worker_runtime_env(), "log_to_driver": False, "configure_logging": False}
        if address:
            ray.init(address=address, **common)
        else:
            num_cpus = os.environ.get(RAY_NUM_CPUS_ENV)
            ray.init(
                address="local",
                num_cpus=int(num_cpus) if num_cpus else None,
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
    value = float(os.environ.get(CPUS_PER_RUN_ENV) or 1.0)
    if value <= 0:
        raise ValueError(f"{CPUS_PER_RUN_ENV} must be > 0, got {value}")
    return value


@ray.remote(max_retries=0)
def _execute_job_task(job_id: int, db_url: str, data_dir: str, device: str | None) -> str:
    from jobs.executor import execute_job

    return execute_job(job_id, db_url, Path(data_dir), device=device)


def submit_job(
    job_id: int, db_url: str, data_dir: Path, *, num_cpus: float, num_gpus: float, device: str | None
) -> ray.ObjectRef:
    """Start one job as a Ray task (never retried by Ray: recovery decides what a dead worker means).

    Args:
        job_id: the job.
        db_url: database URL (workers do not inherit the executor's environment on a cluster).
        data_dir: the data directory.
        num_cpus: CPUs to reserve.
        num_gpus: GPUs to reserve (0 or 1).
        device: "cuda" / "cpu" for training jobs, None for others.

    Returns:
        The task's result reference (its value is the job's final status).
    """
    options = {"num_cpus": num_cpus, "num_gpus": num_gpus, "name": f"cosnet-job-{job_id}"}
    return _execute_job_task.options(**options).remote(job_id, db_url, str(data_dir), device)
