"""The long-lived executor: a process of the app (never a Streamlit script run) that owns the Ray connection.

Lifecycle:

* :func:`ensure_executor` (called by the pages after a submission) starts ``python -m jobs executor`` detached from
  the web server (``start_new_session=True``) unless one is already alive. Exactly one executor runs per data
  directory: it holds an exclusive lock on ``<data dir>/executor.lock`` for its whole life and writes its state
  (pid, Ray address, resources, heartbeat) to ``<data dir>/executor.json``.
* At start the executor connects to Ray (:func:`jobs.ray_backend.connect`) and runs recovery
  (:mod:`jobs.recovery`); then it loops: collect finished Ray tasks, submit queued jobs as Ray tasks (Ray holds
  them until resources free up), re-run recovery now and then, write its heartbeat.
* A job is executed by :func:`execute_job` inside a Ray worker on the executor's node (or in the caller's process
  by :func:`jobs.run_inline`): claim the row (queued -> running), call the kind's function with a
  :class:`~jobs.context.JobContext`, record the outcome. A training job (:data:`COMPUTE_KINDS`) reserves nothing
  itself: its fit runs as a compute task on any node with the run's resources (:mod:`jobs.ray_backend`), and only
  the job's task on the executor's node touches the database and the data directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from datetime import datetime
from pathlib import Path
from typing import Any

from cosnet_core.settings import SETTINGS, child_environment
from db.config import data_dir as configured_data_dir
from db.config import database_url
from jobs import registry, store
from jobs.context import JobCancelled, JobContext, WorkerLost, ray_node_id

HEARTBEAT_S = 5.0
LOCK_FILE = "executor.lock"
STATUS_FILE = "executor.json"
LOG_FILE = "executor.log"
SPAWN_FILE = "executor.spawn"
IDLE_EXIT_ENV = SETTINGS.executor_idle_exit_s.variable
IDLE_EXIT_S = SETTINGS.executor_idle_exit_s.default  # an executor started by the app stops (and frees Ray) after 30 idle minutes by default
SPAWN_GRACE_S = 60.0  # a spawned executor must take its lock within this time
REPO_ROOT = Path(__file__).resolve().parents[1]
#: Kinds whose heavy part is a compute task (:meth:`jobs.context.JobContext.compute_stream`) that may run on any
#: node; their job task only stores what it streams back.
COMPUTE_KINDS = ("train", "pretrain")


def job_log_path(data_dir: Path, job_id: int) -> Path:
    """The log file of a job.

    Args:
        data_dir: the data directory.
        job_id: the job.

    Returns:
        ``<data dir>/logs/job-<id>.log`` (the folder is created).
    """
    folder = Path(data_dir) / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"job-{job_id}.log"


class _Heartbeat(threading.Thread):
    """Refreshes ``Job.heartbeat_at`` every few seconds while a job runs, even inside a long epoch."""

    def __init__(self, db_url: str, job_id: int, interval_s: float = HEARTBEAT_S) -> None:
        super().__init__(name=f"heartbeat-job-{job_id}", daemon=True)
        self.db_url, self.job_id, self.interval_s = db_url, job_id, interval_s
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval_s):
            with contextlib.suppress(Exception):  # a missed beat is harmless; the next one retries
                store.heartbeat(self.db_url, self.job_id)


def execute_job(
    job_id: int,
    db_url: str,
    data_dir: Path,
    *,
    device: str | None = None,
    inline: bool = False,
    compute: dict[str, Any] | None = None,
) -> str:
    """Run one queued job to its end in this process.

    Args:
        job_id: the job.
        db_url: database URL.
        data_dir: the data directory.
        device: the torch device a training job must use ("cuda" when Ray gave it a GPU, "cpu"), or None to let
            the job decide.
        inline: the job runs in the caller's process (a study then trains its runs itself, one by one).
        compute: the Ray options of the job's compute task, or None to compute in this process.

    Returns:
        The job's final status ("succeeded", "failed", "cancelled"; "queued" when its compute worker was lost and
        it waits to resume), or its current status when it could not be claimed (it was not queued any more).
    """
    data_dir = Path(data_dir)
    if not inline:  # a Ray worker: make db.config point at the same data directory and database
        SETTINGS.data_dir.put(data_dir)
        SETTINGS.database_url.put(db_url)
    log_path = job_log_path(data_dir, job_id)
    claimed = store.claim_job(db_url, job_id, pid=os.getpid(), host=socket.gethostname(), log_path=str(log_path))
    if claimed is None:
        row = store.job_row(db_url, job_id)
        return row["status"] if row else "missing"
    ctx = JobContext(job_id=job_id, db_url=db_url, data_dir=data_dir, log_path=log_path, inline=inline, device=device,
                     compute=compute)
    node = ray_node_id()
    ctx.log(f"job {job_id} ({claimed['kind']}) started, attempt {claimed['attempts']}, pid {os.getpid()}"
            + (f", Ray node {node}" if node else ""))
    beat = _Heartbeat(db_url, job_id)
    beat.start()
    try:
        outcome = registry.job_function(claimed["kind"])(job_id, claimed["payload"], ctx)
    except JobCancelled as stop:
        ctx.log(f"cancelled: {stop}" if str(stop) else "cancelled")
        store.finish_job(db_url, job_id, "cancelled", message=str(stop) or "cancelled by the user")
        return "cancelled"
    except WorkerLost as lost:  # the compute task's node or worker died: resume like a dead job worker
        from jobs import recovery

        ctx.log(f"compute worker lost: {lost}")
        job = next((j for j in store.running_jobs(db_url) if j["id"] == job_id), None)
        if job is not None:
            recovery.recover_dead_job(db_url, job, f"its compute worker was lost ({lost})")
        row = store.job_row(db_url, job_id)
        return row["status"] if row else "missing"
    except Exception as error:  # the reason is shown on the page; the traceback goes to the log
        reason = f"{type(error).__name__}: {error}"
        ctx.log(f"failed: {reason}\n{traceback.format_exc()}")
        store.finish_job(db_url, job_id, "failed", error=reason)
        return "failed"
    finally:
        beat.stopped.set()
    ctx.log("succeeded")
    # a job function may return its last word (e.g. a library import's summary); else the message is "finished"
    store.finish_job(db_url, job_id, "succeeded", message=outcome if isinstance(outcome, str) else None)
    return "succeeded"


class Executor:
    """Polls the database for queued jobs and executes each as a Ray task.

    Args:
        db_url: database URL (default: the configured one).
        data_dir: data directory (default: the configured one).
        poll_s: seconds between two looks at the queue.
        recovery_every_s: seconds between two recovery passes (one also runs at start).
        stale_after_s: a running job on another host whose heartbeat is older than this is presumed dead.
    """

    def __init__(
        self,
        db_url: str | None = None,
        data_dir: Path | None = None,
        *,
        poll_s: float = 0.5,
        recovery_every_s: float = 5.0,
        stale_after_s: float = 120.0,
    ) -> None:
        self.db_url = db_url or database_url()
        self.data_dir = Path(data_dir) if data_dir is not None else configured_data_dir()
        self.poll_s = poll_s
        self.recovery_every_s = recovery_every_s
        self.stale_after_s = stale_after_s
        self.in_flight: dict[Any, int] = {}  # Ray ObjectRef -> job id
        self._attempts_at_submit: dict[Any, int] = {}  # Ray ObjectRef -> Job.attempts when submitted
        self.resources: dict[str, float] = {}
        self.ray_address = ""
        self._last_recovery = 0.0
        self._last_status = 0.0

    def start(self) -> None:
        """Connect to Ray and recover what a previous executor left running."""
        from jobs import ray_backend, recovery

        self.ray_address = ray_backend.connect()
        self.resources = ray_backend.cluster_resources()
        recovery.recover(self.db_url, stale_after_s=self.stale_after_s)
        self._last_recovery = time.monotonic()
        self.write_status()

    def write_status(self) -> None:
        """Write ``executor.json`` (read by the pages: alive? which resources?)."""
        status = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "ray_address": self.ray_address,
            "resources": self.resources,
            "db_url_is_sqlite": self.db_url.startswith("sqlite"),
            "heartbeat_at": datetime.now().astimezone().isoformat(),
            "in_flight": sorted(self.in_flight.values()),
        }
        temporary = self.data_dir / (STATUS_FILE + ".tmp")
        temporary.write_text(json.dumps(status, indent=1))
        os.replace(temporary, self.data_dir / STATUS_FILE)
        self._last_status = time.monotonic()

    def step(self) -> None:
        """One pass: collect finished tasks, recover dead workers now and then, submit queued jobs."""
        from jobs import recovery

        self.collect_finished()
        if time.monotonic() - self._last_recovery >= self.recovery_every_s:
            recovery.recover(self.db_url, stale_after_s=self.stale_after_s)
            self._last_recovery = time.monotonic()
        tracked = set(self.in_flight.values())
        for job in store.queued_jobs(self.db_url):
            if job["id"] not in tracked:
                self.submit(job)
        if time.monotonic() - self._last_status >= HEARTBEAT_S:
            self.write_status()

    def collect_finished(self) -> None:
        """Handle Ray tasks that ended; a task that died with its worker goes through recovery."""
        import ray

        from jobs import recovery

        if not self.in_flight:
            return
        ready, _ = ray.wait(list(self.in_flight), num_returns=len(self.in_flight), timeout=0)
        for ref in ready:
            job_id = self.in_flight.pop(ref)
            attempts = self._attempts_at_submit.pop(ref, 0)
            try:
                ray.get(ref)
            except Exception as error:  # worker crash, or an error outside the job function
                reason = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
                recovery.recover_job_after_task_error(self.db_url, job_id, reason, attempts)

    def submit(self, job: dict[str, Any]) -> None:
        """Start a queued job as a Ray task with the resources its kind needs.

        Args:
            job: ``{"id", "kind", "payload"}``.
        """
        from jobs import ray_backend

        try:
            kind = registry.job_kind(job["kind"])
        except ValueError as error:
            store.fail_dead_job(self.db_url, job["id"], str(error), from_statuses=("queued",))
            return
        num_cpus, num_gpus, device = (0.0, 0.0, None) if kind.coordinator else (ray_backend.cpus_per_run(), 0.0, None)
        compute = None
        if kind.uses_gpu:
            requested = _requested_device(self.db_url, job)
            has_gpu = self.resources.get("GPU", 0) >= 1
            if requested == "gpu" and not has_gpu:
                store.fail_dead_job(
                    self.db_url,
                    job["id"],
                    "GPU requested but the Ray cluster has no GPU; launch again with device CPU or auto",
                    from_statuses=("queued",),
                )
                return
            use_gpu = has_gpu and requested in ("gpu", "auto")
            num_gpus, device = (1.0, "cuda") if use_gpu else (0.0, "cpu")
        try:
            if job["kind"] in COMPUTE_KINDS:  # the compute task reserves the run's resources, the job task nothing
                compute = ray_backend.compute_options(num_cpus=num_cpus, num_gpus=num_gpus)
                num_cpus, num_gpus = 0.0, 0.0
            elif kind.coordinator:  # what a study's search trials ask for: what one run asks for, without GPU
                compute = ray_backend.compute_options(num_cpus=ray_backend.cpus_per_run(), num_gpus=0.0)
        except ValueError as error:
            store.fail_dead_job(self.db_url, job["id"], str(error), from_statuses=("queued",))
            return
        ref = ray_backend.submit_job(
            job["id"], self.db_url, self.data_dir, num_cpus=num_cpus, num_gpus=num_gpus, device=device,
            compute=compute,
        )
        self.in_flight[ref] = job["id"]
        self._attempts_at_submit[ref] = int(job.get("attempts", 0))

    def run_forever(self, stop: threading.Event, idle_exit_s: float | None = None) -> None:
        """Loop until ``stop`` is set, the data directory is deleted, or (with ``idle_exit_s``) nothing was queued
        or running for that long.

        Args:
            stop: set it to end the loop.
            idle_exit_s: exit after this many idle seconds (None: never).
        """
        idle_since = time.monotonic()
        while not stop.is_set():
            if not self.data_dir.is_dir():  # e.g. a test's temporary data directory was removed
                break
            self.step()
            if self.in_flight or store.queued_jobs(self.db_url):
                idle_since = time.monotonic()
            elif idle_exit_s is not None and time.monotonic() - idle_since > idle_exit_s:
                break
            stop.wait(self.poll_s)

    def shutdown(self) -> None:
        """Disconnect from Ray (a local Ray started here stops with it) and remove the status file."""
        import ray

        with contextlib.suppress(Exception):
            ray.shutdown()
        (self.data_dir / STATUS_FILE).unlink(missing_ok=True)


def _requested_device(db_url: str, job: dict[str, Any]) -> str:
    run_id = job["payload"].get("run_id")
    if run_id is None:
        return str(job["payload"].get("device", "auto"))
    try:
        return str(store.run_row(db_url, int(run_id))["requested_device"] or "auto")
    except LookupError:
        return "auto"


# ------------------------------------------------------------------------------------- process management


def _lock_path(data_dir: Path) -> Path:
    return Path(data_dir) / LOCK_FILE


def _try_lock(data_dir: Path) -> Any | None:
    """Take the executor lock without waiting; the open file holds it (None when another process has it)."""
    handle = open(_lock_path(data_dir), "a+")  # kept open: the open file holds the lock
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    return handle


def executor_status(data_dir: Path | None = None) -> dict[str, Any] | None:
    """The running executor's state, or None when no executor holds the lock.

    Args:
        data_dir: the data directory (default: the configured one).

    Returns:
        The content of ``executor.json`` (may be ``{}`` right after start), or None.
    """
    data_dir = Path(data_dir) if data_dir is not None else configured_data_dir()
    handle = _try_lock(data_dir)
    if handle is not None:
        handle.close()
        return None
    try:
        return json.loads((data_dir / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return {}


def ensure_executor(data_dir: Path | None = None, db_url: str | None = None) -> int | None:
    """Start the executor in the background unless one is alive (idempotent; returns at once).

    The process is detached from the caller (its own session), so it outlives a Streamlit script run and the web
    server itself; its output goes to ``<data dir>/logs/executor.log``. It exits after :data:`IDLE_EXIT_S` seconds
    (or ``COSNET_EXECUTOR_IDLE_EXIT_S``) with nothing queued or running (the pages start it again when needed, and
    it recovers what was left running), and at once when its data directory is deleted.

    Args:
        data_dir: the data directory (default: the configured one).
        db_url: database URL (default: the configured one).

    Returns:
        The pid of the executor that was started, or of the running one when known (None when unknown).
    """
    data_dir = Path(data_dir) if data_dir is not None else configured_data_dir()
    status = executor_status(data_dir)
    if status is not None:
        return status.get("pid")
    starting = _starting_pid(data_dir)
    if starting is not None:  # spawned a moment ago, not holding the lock yet
        return starting
    env = child_environment()
    SETTINGS.data_dir.put(data_dir, env)
    SETTINGS.database_url.put(db_url or database_url(), env)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    log_folder = data_dir / "logs"
    log_folder.mkdir(parents=True, exist_ok=True)
    with open(log_folder / LOG_FILE, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "jobs", "executor", "--idle-exit", str(SETTINGS.executor_idle_exit_s.get())],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    threading.Thread(target=process.wait, name="reap-executor", daemon=True).start()  # no zombie when it exits
    (data_dir / SPAWN_FILE).write_text(json.dumps({"pid": process.pid, "spawned_at": time.time()}))
    return process.pid


def _starting_pid(data_dir: Path) -> int | None:
    """The pid of an executor spawned less than :data:`SPAWN_GRACE_S` ago that is still alive, else None."""
    from jobs.recovery import process_alive

    try:
        spawn = json.loads((data_dir / SPAWN_FILE).read_text())
    except (OSError, ValueError):
        return None
    if time.time() - float(spawn.get("spawned_at", 0)) > SPAWN_GRACE_S or not process_alive(int(spawn["pid"])):
        return None
    return int(spawn["pid"])


def stop_executor(data_dir: Path | None = None, timeout_s: float = 30.0) -> bool:
    """Ask the running executor to stop (SIGTERM) and wait for it to release its lock.

    Args:
        data_dir: the data directory (default: the configured one).
        timeout_s: how long to wait.

    Returns:
        True when no executor is running any more.
    """
    data_dir = Path(data_dir) if data_dir is not None else configured_data_dir()
    status = executor_status(data_dir)
    if status is None:
        return True
    pid = status.get("pid")
    if pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if executor_status(data_dir) is None:
            return True
        time.sleep(0.2)
    return False


def main(argv: list[str] | None = None) -> int:
    """``python -m jobs executor``: run the executor in the foreground until SIGTERM/SIGINT.

    Args:
        argv: command-line arguments (``--idle-exit SECONDS``, ``--poll SECONDS``).

    Returns:
        The exit status.
    """
    import argparse

    parser = argparse.ArgumentParser(prog="python -m jobs executor", description=__doc__.splitlines()[0])
    parser.add_argument("--poll", type=float, default=0.5, help="seconds between two looks at the queue")
    parser.add_argument("--idle-exit", type=float, default=None, help="exit after this many idle seconds")
    args = parser.parse_args(argv)

    data_dir = configured_data_dir()
    lock = _try_lock(data_dir)
    if lock is None:
        print(f"another executor already runs for {data_dir}; nothing to do", flush=True)
        return 0
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    executor = Executor(poll_s=args.poll)
    print(f"executor pid {os.getpid()} for {data_dir} ({executor.db_url})", flush=True)
    try:
        executor.start()
        print(f"connected to Ray at {executor.ray_address} with {executor.resources}", flush=True)
        executor.run_forever(stop, idle_exit_s=args.idle_exit)
    finally:
        executor.shutdown()
        lock.close()
    print("executor stopped", flush=True)
    return 0
