"""Concurrent writers keep every row, on SQLite and on PostgreSQL (issue 18, item 3).

The app writes from several places at once: Streamlit sessions (threads of the server process) submit and cancel
jobs and log logins; the executor's Ray workers (other processes) claim jobs and write progress, heartbeats and
epochs; the executor itself runs recovery passes. Here two worker processes, three session threads and an
executor thread do exactly that through the real store functions (:mod:`jobs.store`, :mod:`db.audit`,
:mod:`jobs.recovery`) at the same time, then every row is counted: each job exists once with its payload intact,
was claimed by at most one worker, ended as asked (cancelled or succeeded), and each run holds its epochs exactly
once.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import threading
import time
import traceback

import pytest
from sqlalchemy import func, select

from db.audit import record
from db.engine import session_scope
from db.models import AuditEvent, Dataset, DatasetVersion, EpochMetric, Job, Run
from jobs import recovery, store

pytestmark = pytest.mark.both_databases

SESSIONS = 3
TRAIN_JOBS_EACH = 4
MATCH_JOBS_EACH = 2
LOGINS_EACH = 6
EPOCHS = 3


def _payload(session: int, index: int) -> dict:
    """A payload with every JSON type, to check it comes back as written."""
    return {"session": session, "index": index, "flag": index % 2 == 0, "ratio": 0.25 * index, "none": None,
            "nested": {"seeds": [session, index], "name": f"s{session}-{index} é"}}


def _work(url: str, job_id: int, claimed: dict) -> None:
    """What a worker does with a claimed job: progress, epochs (training) and the end, stopping when asked."""
    if claimed["kind"] == "train":
        run_id = int(claimed["payload"]["run_id"])
        store.mark_run_started(url, run_id, device="cpu", checkpoint_path=f"run-{run_id}.pt",
                               structure_decisions={}, code_version="test")
        for epoch in range(1, EPOCHS + 1):
            store.set_job_progress(url, job_id, epoch / EPOCHS, f"epoch {epoch}")
            store.heartbeat(url, job_id)
            if store.write_epoch(url, run_id, epoch=epoch, train_loss=1.0 / epoch, val_mae=2.0 / epoch,
                                 seconds=0.01, lr=1e-3):
                store.set_run_status(url, run_id, "cancelled")
                store.finish_job(url, job_id, "cancelled")
                return
        store.set_run_status(url, run_id, "succeeded")
    elif store.job_cancel_requested(url, job_id):
        store.finish_job(url, job_id, "cancelled")
        return
    store.finish_job(url, job_id, "succeeded")


def _worker(url: str, name: str, ready, go, sessions_done, results) -> None:
    """A worker process: claim whatever is queued until the sessions are done and the queue is empty."""
    claimed_ids: list[int] = []
    error = None
    try:
        ready.set()
        go.wait(60)
        while True:
            queued = store.queued_jobs(url)
            if not queued:
                if sessions_done.is_set() and not store.queued_jobs(url):
                    break
                time.sleep(0.005)
                continue
            for job in queued:
                claimed = store.claim_job(url, job["id"], pid=os.getpid(), host=socket.gethostname(),
                                          log_path=f"{name}-{job['id']}.log")
                if claimed is not None:
                    claimed_ids.append(job["id"])
                    _work(url, job["id"], claimed)
    except BaseException:  # reported to the test, which fails with it
        error = traceback.format_exc()
    results.put((name, claimed_ids, error))


def _session(url: str, number: int, version_id: int, made: dict, errors: list) -> None:
    """A user's session: submit training and matching jobs, cancel every third, log in now and then."""
    try:
        jobs_made, cancelled = [], []
        for index in range(TRAIN_JOBS_EACH + MATCH_JOBS_EACH):
            payload = _payload(number, index)
            if index < TRAIN_JOBS_EACH:  # a run and its training job in one transaction, as store.create_runs does
                with session_scope(url) as session:
                    run = Run(dataset_version_id=version_id, mode="composition", seed=index, n_epochs=EPOCHS,
                              config=payload, status="queued")
                    session.add(run)
                    session.flush()
                    job = Job(kind="train", payload={**payload, "run_id": run.id}, created_by=f"user{number}",
                              status="queued")
                    session.add(job)
                    session.flush()
                    run.job_id = job.id
                    job_id = job.id
            else:
                job_id = store.create_job(url, "match", payload, created_by=f"user{number}")
            jobs_made.append(job_id)
            if index % 3 == 1:
                store.request_cancel(url, job_id)
                cancelled.append(job_id)
            if index < LOGINS_EACH:
                with session_scope(url) as session:
                    record(session, "login", f"user{number}", attempt=index)
        made[number] = (jobs_made, cancelled)
    except BaseException:
        errors.append(traceback.format_exc())


def _executor(url: str, stop: threading.Event, actions: list, errors: list) -> None:
    """The executor's recovery passes, over and over while everyone writes: no live worker's job is touched."""
    try:
        while not stop.is_set():
            actions.extend(recovery.recover(url, stale_after_s=120))
            time.sleep(0.02)
    except BaseException:
        errors.append(traceback.format_exc())


def _in_threads(work, count: int) -> list[str]:
    """Run ``work(i)`` in ``count`` threads at once; returns the tracebacks of those that raised."""
    errors: list[str] = []

    def guarded(index: int) -> None:
        try:
            work(index)
        except BaseException:
            errors.append(traceback.format_exc())

    threads = [threading.Thread(target=guarded, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return errors


def _version(url: str) -> int:
    with session_scope(url) as session:
        version = DatasetVersion(dataset=Dataset(name="concurrent"), number=1, n_rows=1, n_kept=1, n_rejected=0)
        session.add(version)
        session.flush()
        return version.id


def test_two_workers_three_sessions_and_the_executor_keep_every_row(app_env):
    url = os.environ["COSNET_DATABASE_URL"]
    version_id = _version(url)
    context = multiprocessing.get_context("spawn")
    ready = [context.Event() for _ in range(2)]
    go, sessions_done, results = context.Event(), context.Event(), context.Queue()
    workers = [
        context.Process(target=_worker, args=(url, f"worker{i}", ready[i], go, sessions_done, results), daemon=True)
        for i in range(2)
    ]
    for process in workers:
        process.start()
    for event in ready:
        assert event.wait(120), "a worker process did not start"

    made: dict[int, tuple[list[int], list[int]]] = {}
    errors: list[str] = []
    actions: list = []
    stop = threading.Event()
    threads = [threading.Thread(target=_session, args=(url, n, version_id, made, errors)) for n in range(SESSIONS)]
    executor = threading.Thread(target=_executor, args=(url, stop, actions, errors))
    go.set()
    executor.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    sessions_done.set()
    reports = [results.get(timeout=120) for _ in workers]
    for process in workers:
        process.join(30)
    stop.set()
    executor.join(30)

    assert errors == [], "\n".join(errors)
    assert [error for _, _, error in reports if error] == []
    assert actions == []  # recovery never mistook a live worker's job for a dead one
    claimed = {name: set(ids) for name, ids, _ in reports}
    assert not claimed["worker0"] & claimed["worker1"], "a job was claimed by both workers"

    all_made = sorted(job_id for jobs_made, _ in made.values() for job_id in jobs_made)
    asked_to_cancel = {job_id for _, cancelled in made.values() for job_id in cancelled}
    n_jobs = SESSIONS * (TRAIN_JOBS_EACH + MATCH_JOBS_EACH)
    assert len(all_made) == len(set(all_made)) == n_jobs
    with session_scope(url) as session:
        jobs = {job.id: job for job in session.scalars(select(Job))}
        runs = {run.job_id: run for run in session.scalars(select(Run))}
        epochs = {}
        for run_id, epoch in session.execute(select(EpochMetric.run_id, EpochMetric.epoch)):
            epochs.setdefault(run_id, []).append(epoch)
        logins = session.execute(select(AuditEvent.username, AuditEvent.detail)).all()

        assert sorted(jobs) == all_made  # every job, once
        assert len(runs) == SESSIONS * TRAIN_JOBS_EACH
        for number, (jobs_made, _) in made.items():
            for index, job_id in enumerate(jobs_made):
                job = jobs[job_id]
                expected = _payload(number, index)
                if job.kind == "train":
                    expected["run_id"] = runs[job_id].id
                    assert runs[job_id].config == _payload(number, index)
                assert job.payload == expected  # JSON: booleans, floats, None, nesting and text come back
                assert job.created_by == f"user{number}"
        claimed_once = claimed["worker0"] | claimed["worker1"]
        for job_id, job in jobs.items():
            if job_id in asked_to_cancel:
                assert job.status == "cancelled" and job.cancel_requested, (job_id, job.status)
            else:
                assert job.status == "succeeded", (job_id, job.status, job.error)
            if job_id in claimed_once:
                assert job.attempts == 1 and job.started_at is not None
            else:  # cancelled before any worker claimed it
                assert job_id in asked_to_cancel and job.attempts == 0 and job.started_at is None
        for job_id, run in runs.items():
            assert run.status == jobs[job_id].status
            assert sorted(epochs.get(run.id, [])) == list(range(1, run.epochs_done + 1))  # each epoch once
            if run.status == "succeeded":
                assert run.epochs_done == EPOCHS and run.best_epoch == EPOCHS
        assert session.scalar(select(func.count()).select_from(EpochMetric)) == sum(
            run.epochs_done for run in runs.values())
        assert sorted((name, detail["attempt"]) for name, detail in logins) == sorted(
            (f"user{n}", i) for n in range(SESSIONS) for i in range(LOGINS_EACH))


def test_only_one_of_many_simultaneous_claims_of_a_job_wins(app_env):
    """Eight threads claim the same queued job at the same instant: exactly one gets it, the job is claimed once."""
    url = os.environ["COSNET_DATABASE_URL"]
    winners: list[int] = []
    for _ in range(3):
        job_id = store.create_job(url, "match", {"dataset_version_id": None})
        barrier = threading.Barrier(8)
        outcomes: list = []

        def claim(thread: int, job_id: int = job_id, barrier: threading.Barrier = barrier,
                  outcomes: list = outcomes) -> None:
            barrier.wait(30)
            outcomes.append((thread, store.claim_job(url, job_id, pid=os.getpid(), host="test",
                                                     log_path=f"claim-{thread}.log")))

        errors = _in_threads(claim, 8)
        assert errors == [], "\n".join(errors)
        won = [thread for thread, claimed in outcomes if claimed is not None]
        assert len(outcomes) == 8 and len(won) == 1, outcomes
        winners.append(won[0])
        job = store.job_row(url, job_id)
        assert job["status"] == "running" and job["attempts"] == 1
        assert job["log_path"] == f"claim-{won[0]}.log"


def test_three_sessions_adding_versions_with_the_same_new_cifs_at_once_all_succeed(app_env, monkeypatch):
    """Three users add a version to one dataset at the same moment, each upload carrying the same two new CIFs.
    Each import looked for the structures (none stored yet) and the dataset's last version number before any of
    them wrote; without a retry the unique constraints (structure content hash, version number) refused the
    second and third imports, which failed whole."""
    from db import datasets as dataset_store
    from tests.db.test_datasets_store import _ingest

    url = os.environ["COSNET_DATABASE_URL"]
    plain, _ = _ingest(with_cifs=False)
    dataset_id = dataset_store.create_dataset(url, plain, name="li").dataset_id
    result, uploaded = _ingest()
    assert len({s.content_hash for s in uploaded.structures.values()}) == 2  # NaCl (twice) and LiCl

    barrier, waited = threading.Barrier(3, timeout=60), threading.local()
    entry_rows = dataset_store._entry_rows

    def after_everyone_looked(*args, **kwargs):
        if not getattr(waited, "done", False):  # only the first attempt of each import waits
            waited.done = True
            barrier.wait()
        return entry_rows(*args, **kwargs)

    monkeypatch.setattr(dataset_store, "_entry_rows", after_everyone_looked)
    stored = []

    def add(user: int) -> None:
        stored.append(dataset_store.add_version(url, dataset_id, result, uploaded=uploaded,
                                                created_by=f"user{user}"))

    errors = _in_threads(add, 3)
    assert errors == [], "\n".join(errors)
    assert sorted(version.number for version in stored) == [2, 3, 4]
    from db.models import Entry, Structure

    with session_scope(url) as session:
        numbers = session.scalars(select(DatasetVersion.number).where(DatasetVersion.dataset_id == dataset_id))
        assert sorted(numbers) == [1, 2, 3, 4]
        assert session.scalar(select(func.count()).select_from(Structure)) == 2  # stored once, shared
        for version in stored:
            attached = session.scalar(select(func.count()).select_from(Entry).where(
                Entry.dataset_version_id == version.version_id, Entry.structure_id.is_not(None)))
            assert attached == 3  # rows 2, 3 (NaCl) and 5 (LiCl, censored); row 6's CIF does not parse
