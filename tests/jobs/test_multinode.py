"""A real two-node Ray cluster with no shared disk between the nodes (issue 18, items 1 and 2).

The README's recipe ("Run on a Ray cluster"), followed with ``ray.cluster_utils.Cluster`` on one machine:

* the head node runs with the app's environment (``COSNET_DATA_DIR``, the SQLite ``COSNET_DATABASE_URL``), and
  the executor connects to it through ``RAY_ADDRESS`` with ``COSNET_RAY_RESOURCES='{"gpu_node": 1}'``;
* the worker node is started with its own EMPTY ``COSNET_DATA_DIR``, no database URL and the custom resource
  ``{"gpu_node": 1}``, so runs train there only.

A study searches Table 3 with one Ray Tune trial (which asks for the same custom resource, so it trains on the
worker node too), then trains its one run on the worker node; after a checkpoint of it reached the head, the worker node is killed
(``kill -9`` of all its processes) and a new node (again with an empty data directory) joins; the run resumes there
from that checkpoint. At the end its epoch metrics (each epoch once), predictions, artifact and representations
are complete in the app's database and data directory, written by the job's task on the head node while the fit
ran on the worker nodes, whose data directories stay empty. (Before issue 18 the whole job ran on the worker node
and wrote to the database and the data directory from there: the test fails on that code.)

Two Rays in one process conflict (the session's shared Ray of ``tests/ray_fixture.py`` may be running in the
pytest process), so the cluster lives in a subprocess: ``python -m tests.jobs.test_multinode FACTS.json``, which
writes what it saw to a JSON file; the test checks it with the database and the files.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from sqlalchemy import select

from cosnet_core.artifact import load_artifact
from db.engine import session_scope
from db.models import EpochMetric, ModelArtifact, Study
from jobs import store
from tests.jobs.conftest import TINY_TRAIN, make_dataset, wait_until

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
SCENARIO_TIMEOUT_S = 300
EPOCHS = 30
RESOURCE = {"gpu_node": 1}


def study_payload(version_id: int) -> dict:
    """One bimodal run of EPOCHS epochs, after a one-trial Table 3 search (the trial trains on a worker node too)."""
    return {"dataset_version_id": version_id, "modes": ["bimodal"], "seeds": [0],
            "train": {**TINY_TRAIN, "epochs": EPOCHS},
            "search": {"enabled": True, "num_samples": 1, "epochs": 1, "grace_period": 1}}


def the_run(db_url: str, study_job: int) -> dict | None:
    """The study's one run once the study made it."""
    with session_scope(db_url) as session:
        study = session.scalar(select(Study).where(Study.job_id == study_job))
        study_id = None if study is None else study.id
    runs = [] if study_id is None else store.runs_of_study(db_url, study_id)
    return runs[0] if runs else None


def _ended(db_url: str, job_id: int) -> bool:
    return store.job_row(db_url, job_id)["status"] in ("succeeded", "failed", "cancelled")


def _add_worker_node(cluster, data_dir: Path):
    """A node whose processes see only their own data directory and no database URL."""
    saved = {name: os.environ.get(name) for name in ("COSNET_DATA_DIR", "COSNET_DATABASE_URL")}
    os.environ["COSNET_DATA_DIR"] = str(data_dir)
    os.environ.pop("COSNET_DATABASE_URL")
    try:
        return cluster.add_node(num_cpus=1, resources=RESOURCE)
    finally:
        for name, value in saved.items():
            os.environ[name] = value


def scenario(facts_path: Path) -> None:
    """The cluster's side of the test (run in a subprocess): see the module docstring."""
    import psutil
    import ray
    from ray._private import ray_constants
    from ray.cluster_utils import Cluster

    from jobs.executor import Executor

    head_dir = Path(os.environ["COSNET_DATA_DIR"])
    db_url = os.environ["COSNET_DATABASE_URL"]
    version_id = int(os.environ["MULTINODE_VERSION"])
    worker_dirs = [Path(p) for p in os.environ["MULTINODE_WORKER_DIRS"].split(os.pathsep)]
    facts: dict = {"timings": {}}
    started = time.monotonic()
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 1,  # free for runs, but they ask for {"gpu_node": 1}, which only the worker nodes have
            "include_dashboard": False,
            "_system_config": {"health_check_period_ms": 500, "health_check_failure_threshold": 4,
                               "health_check_initial_delay_ms": 0},
        },
    )
    worker = _add_worker_node(cluster, worker_dirs[0])
    facts["head_node"], facts["workers"] = cluster.head_node.node_id, [worker.node_id]
    head_raylet = cluster.head_node.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid
    os.environ.update({"RAY_ADDRESS": cluster.address, "COSNET_RAY_RESOURCES": json.dumps(RESOURCE),
                       "COSNET_JOBS_CPUS_PER_RUN": "1"})
    executor = Executor(db_url, head_dir, poll_s=0.2, recovery_every_s=1.0)
    executor.start()
    stop = threading.Event()
    loop = threading.Thread(target=executor.run_forever, args=(stop,), daemon=True)
    loop.start()
    try:
        @ray.remote(num_cpus=0, resources=RESOURCE)
        def probe() -> dict:
            return {"node": ray.get_runtime_context().get_node_id(), "data_dir": os.environ.get("COSNET_DATA_DIR"),
                    "db_url": os.environ.get("COSNET_DATABASE_URL")}

        facts["worker_env"] = ray.get(probe.remote(), timeout=120)
        facts["timings"]["cluster_up_s"] = time.monotonic() - started

        import jobs

        study_job = jobs.submit("study", study_payload(version_id), db_url=db_url)
        run = wait_until(lambda: the_run(db_url, study_job), 180, "the study's run (after its search)")
        run_id, job_id = run["id"], run["job_id"]
        facts["timings"]["search_s"] = time.monotonic() - started
        checkpoint = head_dir / "checkpoints" / f"run-{run_id}.pt"
        on_head: dict[int, bool] = {}  # pid of the job's process (the one writing to the database) -> on the head?

        def watch(until) -> bool:
            row = store.job_row(db_url, job_id)
            pid = int(row["worker_pid"] or 0)
            if row["status"] == "running" and pid and pid not in on_head:
                try:
                    on_head[pid] = psutil.Process(pid).ppid() == head_raylet  # Ray workers are their raylet's children
                except psutil.NoSuchProcess:
                    on_head[pid] = False
            return until()

        def checkpoint_on_head() -> bool:
            return checkpoint.is_file() and store.run_row(db_url, run_id)["epochs_done"] >= 2

        wait_until(lambda: watch(checkpoint_on_head), 180, "a checkpoint on the head")
        facts["timings"]["first_checkpoint_s"] = time.monotonic() - started
        cluster.remove_node(worker, allow_graceful=False)  # kill -9 of every process of the worker node
        held = torch.load(checkpoint, map_location="cpu", weights_only=True)["epoch"]
        facts["kill"] = {"checkpoint_epoch": int(held), "epochs_done": int(store.run_row(db_url, run_id)["epochs_done"])}
        replacement = _add_worker_node(cluster, worker_dirs[1])
        facts["workers"].append(replacement.node_id)
        wait_until(lambda: watch(lambda: _ended(db_url, job_id)), 180, "the run after the kill")
        wait_until(lambda: _ended(db_url, study_job), 60, "the study's end")
        facts["run"] = {"run": run_id, "job": job_id, "job_processes_on_head": on_head, "study_job": study_job}
        facts["timings"]["total_s"] = time.monotonic() - started
    finally:
        stop.set()
        loop.join(timeout=30)
        executor.shutdown()
        cluster.shutdown()
        facts_path.write_text(json.dumps(facts))


def _log_lines(db_url: str, job_id: int) -> list[str]:
    return Path(store.job_row(db_url, job_id)["log_path"]).read_text().splitlines()


def _epochs(db_url: str, run_id: int) -> list[int]:
    with session_scope(db_url) as session:
        return sorted(session.scalars(select(EpochMetric.epoch).where(EpochMetric.run_id == run_id)).all())


def test_a_run_on_a_worker_node_without_data_dir_or_database_is_stored_on_the_head_and_survives_kill_9(
    app_env, db_url, tmp_path
):
    version_id = make_dataset(db_url)
    worker_dirs = [tmp_path / "worker-data-1", tmp_path / "worker-data-2"]
    for folder in worker_dirs:
        folder.mkdir()
    facts_path = tmp_path / "facts.json"
    env = {**os.environ, "MULTINODE_VERSION": str(version_id), "OMP_NUM_THREADS": "1",
           "MULTINODE_WORKER_DIRS": os.pathsep.join(map(str, worker_dirs)),
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    for name in ("RAY_ADDRESS", "COSNET_RAY_RESOURCES", "COSNET_JOBS_CPUS_PER_RUN"):
        env.pop(name, None)  # the session's shared Ray must not be joined
    done = subprocess.run([sys.executable, "-m", "tests.jobs.test_multinode", str(facts_path)], cwd=REPO_ROOT,
                          env=env, capture_output=True, text=True, timeout=SCENARIO_TIMEOUT_S)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    facts = json.loads(facts_path.read_text())
    print("multinode timings:", facts["timings"])
    head, first_worker, second_worker = facts["head_node"], *facts["workers"]

    # the worker node really had no data directory of the app and no database
    assert facts["worker_env"] == {"node": first_worker, "data_dir": str(worker_dirs[0]), "db_url": None}

    run_id, job_id = facts["run"]["run"], facts["run"]["job"]
    run, job = store.run_row(db_url, run_id), store.job_row(db_url, job_id)
    assert (job["status"], run["status"]) == ("succeeded", "succeeded"), (job["error"], run["error"])

    # complete in the app's database and data directory ...
    assert _epochs(db_url, run_id) == list(range(1, EPOCHS + 1))  # none lost, none doubled by the resume
    predictions = store.run_predictions(db_url, [run_id])
    assert len(predictions) == 30 and {p["split"] for p in predictions} == {"train", "val", "test"}
    assert sum(p["has_structure"] for p in predictions) == 10  # the structures travelled with the samples
    with session_scope(db_url) as session:
        artifact = session.scalars(select(ModelArtifact).where(ModelArtifact.run_id == run_id)).one()
        artifact_path, sha256, size = Path(artifact.path), artifact.sha256, artifact.size_bytes
        representations = Path(artifact.representations_path)
    assert artifact_path == app_env / "artifacts" / f"run-{run_id}.pt"
    assert artifact_path.stat().st_size == size and hashlib.sha256(artifact_path.read_bytes()).hexdigest() == sha256
    assert load_artifact(artifact_path).config.epochs == EPOCHS
    assert representations == app_env / "artifacts" / f"run-{run_id}-representations.npz"
    with np.load(representations) as export:
        assert sorted(int(i) for i in export["entry_id"]) == sorted(p["entry_id"] for p in predictions)
        assert export["composition_repr"].shape == (30, TINY_TRAIN["hidden_dim"])
        by_entry = {p["entry_id"]: p["value"] for p in predictions}
        assert np.allclose(export["prediction"], [by_entry[int(i)] for i in export["entry_id"]], atol=1e-5)
    assert not (app_env / "checkpoints" / f"run-{run_id}.pt").exists()  # the artifact replaced it

    # ... written by the job's task on the head node (both attempts), while the fit ran on the worker nodes
    assert facts["run"]["job_processes_on_head"] and all(facts["run"]["job_processes_on_head"].values()), facts
    log = _log_lines(db_url, job_id)
    starts = [line for line in log if "(train) started" in line]
    assert len(starts) == 2 and all(f"Ray node {head}" in line for line in starts), starts
    fits = [line for line in log if "train/val/test rows" in line]
    assert len(fits) == 2 and f"Ray node {first_worker}" in fits[0] and f"Ray node {second_worker}" in fits[1], fits
    # the worker nodes' data directories hold nothing the app needs (nothing at all)
    assert [p for folder in worker_dirs for p in folder.rglob("*")] == []

    # the study: its search trial (asking for {"gpu_node": 1} like the run) ended with a result, Tables 1-2 (which
    # read the predictions and the representations) were computed on the head
    assert store.job_row(db_url, facts["run"]["study_job"])["status"] == "succeeded"
    with session_scope(db_url) as session:
        study = session.scalar(select(Study).where(Study.job_id == facts["run"]["study_job"]))
        config, results = study.config, study.results
    (trial,) = config["search_results"]["bimodal"]["trial_results"]
    assert trial["epochs"] == 1 and np.isfinite(trial["best_val_mae"])
    assert set(results["table1"]) == {"bimodal"} and set(results["table2"]) == {"bimodal"}

    # kill -9 of the worker node after a checkpoint reached the head: resumed from that checkpoint on the new node
    assert job["attempts"] == 2 and any("compute worker lost: NodeDiedError" in line for line in log), log
    held = facts["kill"]["checkpoint_epoch"]
    assert 1 <= held <= facts["kill"]["epochs_done"] < EPOCHS
    resumed = next(i for i, line in enumerate(log) if "resuming from" in line)
    first_epoch_after = next(line for line in log[resumed:] if ": train loss" in line)
    assert f"epoch {held + 1}: train loss" in first_epoch_after  # training went on from the held checkpoint


def _log_text(db_url: str, job_id: int) -> str:
    return "\n".join(_log_lines(db_url, job_id))


if __name__ == "__main__":
    scenario(Path(sys.argv[1]))
