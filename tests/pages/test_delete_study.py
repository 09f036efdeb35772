"""Issue 14, item 2: deleting a study. Only the owner of its dataset or an administrator may (the data layer refuses
bob even when he calls it directly, even on a dataset alice shared); its queued jobs are cancelled and running
ones asked to stop before anything is deleted; its runs, curves, predictions and model files go, the dataset
stays; the audit log has a row; the Results page asks for a confirmation."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from db.access import AccessDenied
from db.audit import recent_events
from db.config import artifacts_dir
from db.datasets import set_shared
from db.engine import session_scope
from db.models import Entry, EpochMetric, Job, ModelArtifact, Prediction, Run, Study
from db.studies import StudyBusy, delete_study
from tests.pages.isolation_fixtures import ADMIN, ALICE, BOB, login, make_users, store_dataset


def _study(version_id: int, *, study_job: str | None = None, queued_run: bool = True) -> dict:
    """A study of alice's with one finished run (curves, predictions, model and representation files) and,
    optionally, a run whose job is still queued and a coordinating study job in state ``study_job``."""
    folder = artifacts_dir()
    folder.mkdir(parents=True, exist_ok=True)
    with session_scope() as session:
        entries = list(session.scalars(select(Entry.id).where(Entry.dataset_version_id == version_id)))
        job = Job(kind="study", status=study_job, created_by="alice") if study_job else None
        study = Study(name="alice's study", dataset_version_id=version_id, modes=["composition"], seeds=[0, 1],
                      status="running" if study_job else "succeeded", created_by="alice")
        if job is not None:
            session.add(job)
            session.flush()
            study.job_id = job.id
        session.add(study)
        session.flush()
        done = Run(study_id=study.id, dataset_version_id=version_id, mode="composition", seed=0, status="succeeded")
        session.add(done)
        session.flush()
        files = [folder / f"run-{done.id}.pt", folder / f"run-{done.id}-representations.npz"]
        for path in files:
            path.write_bytes(b"weights")
        session.add(ModelArtifact(run_id=done.id, path=str(files[0]), sha256="0" * 64, size_bytes=7,
                                  representations_path=str(files[1])))
        session.add_all(Prediction(run_id=done.id, entry_id=e, split="test", target=1.0, value=1.1)
                        for e in entries)
        session.add(EpochMetric(run_id=done.id, epoch=1, train_loss=0.5, val_mae=0.4, seconds=1.0))
        queued_job = None
        if queued_run:
            queued_job = Job(kind="train", status="queued", created_by="alice")
            session.add(queued_job)
            session.flush()
            session.add(Run(study_id=study.id, dataset_version_id=version_id, mode="composition", seed=1,
                            status="queued", job_id=queued_job.id))
        session.flush()
        return {"study": study.id, "files": files, "queued_job": queued_job.id if queued_job else None,
                "study_job": job.id if job else None}


def _counts() -> dict[str, int]:
    with session_scope() as session:
        return {model.__tablename__: int(session.scalar(select(func.count()).select_from(model)))
                for model in (Study, Run, Prediction, EpochMetric, ModelArtifact, Entry)}


@pytest.fixture()
def lab(app_env, monkeypatch):
    monkeypatch.setenv("COSNET_AUTH", "accounts")
    make_users()
    return store_dataset("alice", name="alice salts")


def test_bob_is_refused_by_the_data_layer_on_a_private_and_on_a_shared_dataset(lab):
    made = _study(lab.version_id)
    before = _counts()
    with pytest.raises(AccessDenied, match="does not exist"):  # private: not even its existence shows
        delete_study(None, made["study"], actor=BOB)
    set_shared(None, lab.dataset_id, True, actor=ALICE)
    with pytest.raises(AccessDenied, match=r"only the dataset's owner \(alice\) or an administrator"):
        delete_study(None, made["study"], actor=BOB)
    assert _counts() == before and all(path.is_file() for path in made["files"])
    with session_scope() as session:
        assert session.get(Job, made["queued_job"]).status == "queued"  # bob did not even cancel it
    assert "delete_study" not in set(recent_events()["action"])


def test_the_owner_deletes_the_study_after_cancelling_its_queued_run(lab):
    made = _study(lab.version_id)
    before = _counts()
    deleted = delete_study(None, made["study"], actor=ALICE)
    assert (deleted.n_runs, deleted.n_active, deleted.n_models, deleted.n_predictions) == (2, 1, 1, 3)
    after = _counts()
    assert after == {**before, "studies": 0, "runs": 0, "predictions": 0, "epoch_metrics": 0, "model_artifacts": 0}
    assert after["entries"] == 3  # the dataset and its rows stay
    assert not any(path.exists() for path in made["files"])
    with session_scope() as session:
        job = session.get(Job, made["queued_job"])
        assert (job.status, job.cancel_requested) == ("cancelled", True)  # the executor will never start it
    events = set(recent_events()[["user", "action", "target"]].itertuples(index=False))
    assert ("alice", "delete_study", f"study {made['study']} \"alice's study\"") in events


def test_a_running_study_is_stopped_first_and_deleted_once_it_has_stopped(lab):
    made = _study(lab.version_id, study_job="running", queued_run=False)
    before = _counts()
    with pytest.raises(StudyBusy, match="1 job"):
        delete_study(None, made["study"], actor=ALICE)
    assert _counts() == before and all(path.is_file() for path in made["files"])
    with session_scope() as session:
        job = session.get(Job, made["study_job"])
        assert (job.status, job.cancel_requested) == ("running", True)  # asked to stop, stops at its next check
        job.status = "cancelled"  # what the worker does when it sees the request
    delete_study(None, made["study"], actor=ADMIN)  # an administrator may delete anyone's study
    assert _counts()["studies"] == 0 and not made["files"][0].exists()
    assert ("root", "delete_study") in set(recent_events()[["user", "action"]].itertuples(index=False))


def test_results_page_deletes_after_a_confirmation_and_bob_gets_no_control(lab, app_test):
    made = _study(lab.version_id, queued_run=False)
    set_shared(None, lab.dataset_id, True, actor=ALICE)
    bob = login(app_test, "bob", "pages/results.py")
    assert next(s for s in bob.selectbox if s.label == "Study").value == made["study"]  # he may read it
    assert not [e for e in bob.expander if e.label == "Delete this study"]
    assert not [b for b in bob.button if b.label == "Delete study permanently"]

    alice = login(app_test, "alice", "pages/results.py")
    (box,) = [e for e in alice.expander if e.label == "Delete this study"]
    assert "1 run(s), 1 model file(s) and 3 stored prediction(s) will be deleted" in box.warning[0].value
    button = next(b for b in alice.button if b.label == "Delete study permanently")
    assert button.disabled  # nothing happens before the confirmation
    next(c for c in alice.checkbox if c.label == "I understand; delete this study").check().run()
    next(b for b in alice.button if b.label == "Delete study permanently").click().run()
    assert not alice.exception, alice.exception
    assert any(f"Deleted study #{made['study']}" in s.value for s in alice.success)
    assert "No study has been launched yet" in alice.info[0].value
    assert _counts()["studies"] == 0 and not Path(made["files"][0]).exists()
