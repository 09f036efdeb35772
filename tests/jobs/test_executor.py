"""Jobs on a real local Ray (one per test session): studies complete, cancel, worker kill, executor restart,
two runs at once."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

import jobs
from db.engine import session_scope
from db.models import EpochMetric, Job, ModelArtifact, Prediction, Run, Study
from jobs import store
from tests.jobs.conftest import TINY_TRAIN, wait_until

pytestmark = pytest.mark.slow


def study_payload(version_id: int, **overrides) -> dict:
    payload = {"dataset_version_id": version_id, "modes": ["bimodal-aug"], "seeds": [0], "train": dict(TINY_TRAIN)}
    payload.update(overrides)
    return payload


def job_status(db_url: str, job_id: int) -> str:
    return store.job_row(db_url, job_id)["status"]


def finished(db_url: str, job_id: int) -> bool:
    return job_status(db_url, job_id) in store.TERMINAL


def study_of(db_url: str, job_id: int) -> dict | None:
    with session_scope(db_url) as session:
        study = session.scalar(select(Study).where(Study.job_id == job_id))
        return None if study is None else {"id": study.id, "status": study.status, "results": study.results}


def runs_of(db_url: str, job_id: int) -> list[dict]:
    study = study_of(db_url, job_id)
    return [] if study is None else store.runs_of_study(db_url, study["id"])


def integrity(db_url: str) -> str:
    with sqlite3.connect(db_url.removeprefix("sqlite:///")) as connection:
        return connection.execute("PRAGMA integrity_check").fetchone()[0]


def test_study_runs_to_completion_with_epochs_predictions_artifacts_and_tables(executor_thread, db_url, toy_version):
    job_id = jobs.submit("study", study_payload(toy_version, modes=["composition", "bimodal-aug", "bimodal"]))
    wait_until(lambda: finished(db_url, job_id), 240, "the study")
    job = store.job_row(db_url, job_id)
    assert job["status"] == "succeeded", job["error"]
    assert job["progress"] == 1.0

    study = study_of(db_url, job_id)
    assert study["status"] == "succeeded"
    with session_scope(db_url) as session:
        runs = session.scalars(select(Run).where(Run.study_id == study["id"]).order_by(Run.id)).all()
        assert [r.mode for r in runs] == ["composition", "bimodal-aug", "bimodal"]
        for run in runs:
            assert run.status == "succeeded" and run.epochs_done == 2 and run.device == "cpu"
            epochs = session.scalars(select(EpochMetric).where(EpochMetric.run_id == run.id)).all()
            assert sorted(e.epoch for e in epochs) == [1, 2]
            assert all(e.seconds > 0 and e.val_mae is not None and e.val_mae >= 0 for e in epochs)
            assert run.best_val_mae == min(e.val_mae for e in epochs)
            predictions = session.scalars(select(Prediction).where(Prediction.run_id == run.id)).all()
            assert len(predictions) == 30  # every kept row, the rejected one excluded
            assert {p.split for p in predictions} == {"train", "val", "test"}
            assert sum(p.has_structure for p in predictions) == 10
            assert all(p.structure_id is not None for p in predictions if p.has_structure)
            if run.mode == "composition":  # w_C is exactly 1 when no structure enters the model
                assert all(p.composition_weight == pytest.approx(1.0) for p in predictions)
            else:
                assert any(p.composition_weight < 0.999 for p in predictions if p.has_structure)
                assert all(p.composition_weight == pytest.approx(1.0) for p in predictions if not p.has_structure)
            test_rows = [p for p in predictions if p.split == "test"]
            mae = float(np.mean([abs(p.value - p.target) for p in test_rows]))
            assert run.test_metrics["all"]["mae"] == pytest.approx(mae)
            assert run.test_metrics["all"]["n"] == len(test_rows)
            # provenance: which structure each entry carried
            assert sum(v is not None for v in run.structure_decisions.values()) == 10
            artifact = session.scalar(select(ModelArtifact).where(ModelArtifact.run_id == run.id))
            assert Path(artifact.path).is_file() and artifact.size_bytes == Path(artifact.path).stat().st_size
            with np.load(artifact.representations_path) as export:
                assert export["composition_repr"].shape == (30, TINY_TRAIN["hidden_dim"])
                assert export["structure_repr"].shape == (30, TINY_TRAIN["hidden_dim"])
            assert not Path(run.checkpoint_path).exists()  # the artifact replaced the checkpoint
    from cosnet_core.artifact import load_artifact

    assert load_artifact(artifact.path).mode == "bimodal"
    table1 = study["results"]["table1"]
    assert set(table1) == {"composition", "bimodal-aug", "bimodal"}
    assert table1["bimodal"]["all"]["mae_mean"] == pytest.approx(runs[2].test_metrics["all"]["mae"])
    assert table1["bimodal"]["all"]["mae_std"] == 0.0  # one seed
    assert set(study["results"]["table2"]) == {"composition", "bimodal-aug", "bimodal"}
    assert study["results"]["runs"] == {"succeeded": 3}
    log = Path(job["log_path"]).read_text()
    assert "3 runs queued" in log and "succeeded" in log


def warm_two_workers(meeting: Path) -> None:
    """Have two Ray workers import the training stack, so two runs can start at the same moment (a cold worker
    spends many seconds importing torch, long enough for a tiny run to finish before the other starts). Each task
    waits until the other runs too (a marker file each): with one idle worker, Ray would otherwise run both in it,
    one after the other, while a second worker is still starting on a loaded machine."""
    import ray

    @ray.remote(num_cpus=0.5)
    def warm(folder: str, index: int) -> int:
        import cosnet_core.train  # noqa: F401
        import jobs.training  # noqa: F401

        (Path(folder) / f"warm-{index}").touch()
        deadline = time.monotonic() + 120
        while len(list(Path(folder).glob("warm-*"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        return os.getpid()

    meeting.mkdir(exist_ok=True)
    assert len(set(ray.get([warm.remote(str(meeting), 0), warm.remote(str(meeting), 1)]))) == 2


def test_two_runs_queued_at_once_train_concurrently_without_lock_errors(executor_thread, db_url, toy_version, tmp_path):
    warm_two_workers(tmp_path / "warm")
    job_id = jobs.submit("study", study_payload(toy_version, seeds=[0, 1], train={**TINY_TRAIN, "epochs": 30}))
    wait_until(lambda: finished(db_url, job_id), 240, "the study")
    with session_scope(db_url) as session:
        all_jobs = session.scalars(select(Job).order_by(Job.id)).all()
        assert [j.status for j in all_jobs] == ["succeeded"] * 3, [(j.kind, j.status, j.error) for j in all_jobs]
        assert not any("locked" in (j.error or "") for j in all_jobs)
        assert session.scalar(select(func.count()).select_from(EpochMetric)) == 60
        # both runs were queued at once and ran in separate Ray workers (half a Ray CPU each), writing claims,
        # heartbeats, progress and epochs into the same SQLite file; on a loaded machine Ray may still start the
        # second worker only as the first finishes, so their overlap in time is reported, not required
        first, second = all_jobs[1], all_jobs[2]
        assert first.worker_pid != second.worker_pid
        assert second.created_at < first.finished_at and first.created_at < second.finished_at
        overlapped = second.started_at < first.finished_at and first.started_at < second.finished_at
        print(f"the two runs overlapped in time: {overlapped}")
    assert integrity(db_url) == "ok"


def test_cancel_stops_a_running_study_and_marks_it_cancelled(executor_thread, db_url, toy_version):
    job_id = jobs.submit("study", study_payload(toy_version, train={**TINY_TRAIN, "epochs": 200}))
    wait_until(lambda: any(r["epochs_done"] >= 1 for r in runs_of(db_url, job_id)), 120, "a first epoch")
    assert jobs.cancel(job_id) == "running"
    wait_until(lambda: finished(db_url, job_id), 60, "the cancellation")
    assert job_status(db_url, job_id) == "cancelled"
    (run,) = runs_of(db_url, job_id)
    assert run["status"] == "cancelled" and run["job_status"] == "cancelled"
    assert run["epochs_done"] < 200
    assert study_of(db_url, job_id)["status"] == "cancelled"
    with session_scope(db_url) as session:
        assert session.scalar(select(func.count()).select_from(Prediction)) == 0


def test_cancel_of_a_queued_job_never_runs_it(db_url, toy_version):
    job_id = jobs.submit("study", study_payload(toy_version))
    assert jobs.cancel(job_id) == "cancelled"
    assert job_status(db_url, job_id) == "cancelled"
    assert jobs.run_inline(job_id) == "cancelled"  # nothing to claim
    assert study_of(db_url, job_id) is None


def test_killed_worker_is_resumed_from_its_checkpoint_and_the_database_stays_sound(
    executor_thread, db_url, toy_version
):
    job_id = jobs.submit("study", study_payload(toy_version, train={**TINY_TRAIN, "epochs": 12}))
    wait_until(lambda: any(r["epochs_done"] >= 2 for r in runs_of(db_url, job_id)), 120, "two epochs")
    (run,) = runs_of(db_url, job_id)
    train_job = store.job_row(db_url, run["job_id"])
    assert train_job["status"] == "running" and train_job["worker_pid"] != os.getpid()
    os.kill(train_job["worker_pid"], signal.SIGKILL)

    wait_until(lambda: finished(db_url, job_id), 180, "the study after the kill")
    (run,) = runs_of(db_url, job_id)
    train_job = store.job_row(db_url, run["job_id"])
    if run["status"] == "succeeded":  # resumed
        assert train_job["attempts"] == 2
        with session_scope(db_url) as session:
            epochs = session.scalars(select(EpochMetric.epoch).where(EpochMetric.run_id == run["id"])).all()
        assert sorted(epochs) == list(range(1, 13))  # each epoch once, none lost, none doubled
    else:
        assert run["status"] == "failed" and "worker" in (run["error"] or "")
    assert integrity(db_url) == "ok"

    again = jobs.submit("study", study_payload(toy_version, seeds=[3]))
    wait_until(lambda: finished(db_url, again), 180, "a new study after the kill")
    assert job_status(db_url, again) == "succeeded"


def test_restarting_the_executor_during_a_run_keeps_the_run_and_finishes_it(ray_session, app_env, db_url, toy_version):
    from jobs.executor import executor_status, stop_executor

    job_id = jobs.submit("study", study_payload(toy_version, train={**TINY_TRAIN, "epochs": 10}))
    first_pid = jobs.ensure_executor()
    assert jobs.ensure_executor() == first_pid or executor_status(app_env) is not None  # idempotent
    try:
        wait_until(lambda: any(r["epochs_done"] >= 1 for r in runs_of(db_url, job_id)), 180, "a first epoch")
        os.kill(first_pid, signal.SIGKILL)  # the app's long-lived process dies
        wait_until(lambda: executor_status(app_env) is None, 30, "the lock to be released")
        (run,) = runs_of(db_url, job_id)
        assert run["status"] in ("running", "queued", "succeeded")  # still visible, not lost

        second_pid = jobs.ensure_executor()
        assert second_pid != first_pid
        wait_until(lambda: finished(db_url, job_id), 240, "the study after the restart")
        (run,) = runs_of(db_url, job_id)
        assert job_status(db_url, job_id) == "succeeded"
        assert run["status"] == "succeeded" and run["epochs_done"] == 10
        with session_scope(db_url) as session:
            epochs = session.scalars(select(EpochMetric.epoch).where(EpochMetric.run_id == run["id"])).all()
        assert sorted(epochs) == list(range(1, 11))
        print("train job attempts after the executor restart:", store.job_row(db_url, run["job_id"])["attempts"])
    finally:
        assert stop_executor(app_env)
    assert integrity(db_url) == "ok"
