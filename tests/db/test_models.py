"""A round trip of every model through a real database (SQLite and PostgreSQL), cascades and foreign keys."""

from datetime import datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from db.engine import session_scope
from db.models import (
    AuditEvent,
    Base,
    Dataset,
    DatasetVersion,
    Entry,
    EpochMetric,
    Job,
    MatchCandidate,
    ModelArtifact,
    Prediction,
    ReviewDecision,
    Run,
    Structure,
    Study,
    User,
)

pytestmark = pytest.mark.both_databases  # each test also runs on PostgreSQL (tests/conftest.py)


def _populate(session) -> dict[str, int]:
    user = User(username="ada", display_name="Ada L.", password_hash="argon2$x", is_admin=True)
    dataset = Dataset(name="OBELiX train", description="Li-ion conductivity", owner="ada", shared=False)
    version = DatasetVersion(
        dataset=dataset, number=1, source_filename="train.csv", source_sha256="ab" * 32,
        target_name="Ionic conductivity", target_unit="log10(S/cm)", target_transform="log10",
        settings={"mapping": {"formula": "Reduced Composition"}, "censored": "exclude"},
        summary={"kept": 1, "rejected": 1}, n_rows=2, n_kept=1, n_rejected=1,
    )
    structure = Structure(
        source="library", external_id="mp-1185319", formula="Li7La3Zr2O12", chemsys="La-Li-O-Zr",
        spacegroup_symbol="Ia-3d", spacegroup_number=230, nsites=96, volume_per_atom=11.8, density=5.1,
        is_ordered=True, theoretical=False, energy_above_hull=0.0, cif="data_x\n", content_hash="f" * 64,
        in_library=True,
    )
    kept = Entry(
        dataset_version=version, row_number=2, external_id="jqc", raw_formula=" Li7La3Zr2O12 ",
        composition="Li7La3Zr2O12", composition_amounts={"Li": 7 / 24, "La": 3 / 24, "Zr": 2 / 24, "O": 0.5},
        target=-3.5, raw_target="3.16e-4", status="kept", temperature=25.0, split="train",
        reference="10.1000/x", mp_id="mp-1185319", structure_file="jqc.cif", extra={"Family": "garnet"},
        structure=structure, match_state="accepted",
    )
    rejected = Entry(
        dataset_version=version, row_number=3, raw_formula="na5", status="rejected",
        reason="row 3: formula 'na5' is not a chemical formula (unknown element 'Na5'?)",
    )
    session.add_all([user, dataset, kept, rejected])
    session.flush()
    candidate = MatchCandidate(entry=kept, structure=structure, rank=1, score=0.0, exact=True, status="accepted")
    session.add(candidate)
    session.flush()
    decision = ReviewDecision(
        entry=kept, candidate_id=candidate.id, structure_id=structure.id, action="accept", status="accepted",
        reviewer="ada", note="same garnet",
    )
    job = Job(kind="study", status="succeeded", progress=1.0, payload={"study": 1}, worker_pid=4242)
    session.add_all([decision, job])
    session.flush()
    study = Study(
        name="garnets", dataset_version=version, job_id=job.id, modes=["composition", "bimodal-aug"],
        seeds=[0, 1], config={"epochs": 5, "lr": 0.01}, results={"table1": {}}, status="succeeded",
    )
    run = Run(
        study=study, dataset_version_id=version.id, job_id=job.id, mode="bimodal-aug", seed=1,
        config={"lr": 0.01, "fusion": "sum"}, structure_decisions={str(kept.id): structure.id},
        status="succeeded", requested_device="auto", device="cpu", n_epochs=5, epochs_done=5, best_epoch=4,
        best_val_mae=0.8, test_metrics={"all": {"mae": 0.9}}, code_version="0.1.0+abc", duration_s=12.5,
    )
    session.add_all([study, run])
    session.flush()
    session.add_all([
        EpochMetric(run=run, epoch=1, train_loss=1.2, val_mae=1.0, seconds=2.5, lr=0.01),
        Prediction(run=run, entry=kept, split="test", target=-3.5, value=-3.1, composition_weight=0.62,
                   has_structure=True, structure_id=structure.id),
        ModelArtifact(run=run, path="artifacts/run-1.pt", sha256="c" * 64, size_bytes=1234,
                      featurizer_version="structure-v1", embedding="matscholar200"),
        AuditEvent(username="ada", action="share", target="dataset 'OBELiX train'", detail={"note": "lab"}),
    ])
    return {"dataset": dataset.id, "version": version.id, "entry": kept.id, "structure": structure.id,
            "run": run.id, "study": study.id, "job": job.id}


def test_every_model_round_trips(app_env):
    with session_scope() as session:
        ids = _populate(session)
    with session_scope() as session:
        version = session.get(DatasetVersion, ids["version"])
        assert version.dataset.name == "OBELiX train" and version.dataset.owner == "ada"
        assert version.settings == {"mapping": {"formula": "Reduced Composition"}, "censored": "exclude"}
        assert [e.row_number for e in version.entries] == [2, 3]
        kept = session.get(Entry, ids["entry"])
        assert kept.composition_amounts["O"] == pytest.approx(0.5)
        assert kept.extra == {"Family": "garnet"} and kept.structure.spacegroup_number == 230
        assert kept.candidates[0].structure.external_id == "mp-1185319"
        assert kept.decisions[0].reviewer == "ada" and isinstance(kept.decisions[0].decided_at, datetime)
        run = session.get(Run, ids["run"])
        assert run.study.modes == ["composition", "bimodal-aug"] and run.study.seeds == [0, 1]
        assert run.structure_decisions == {str(ids["entry"]): ids["structure"]}
        assert [(m.epoch, m.val_mae) for m in run.epochs] == [(1, 1.0)]
        assert run.predictions[0].composition_weight == pytest.approx(0.62)
        assert run.artifact.embedding == "matscholar200"
        assert session.get(Job, ids["job"]).worker_pid == 4242
        assert session.scalar(select(User.is_admin).where(User.username == "ada")) is True
        event = session.scalars(select(AuditEvent)).one()
        assert (event.username, event.action, event.detail) == ("ada", "share", {"note": "lab"})
        assert isinstance(event.at, datetime)


def test_deleting_a_dataset_removes_what_depends_on_it_but_keeps_structures(app_env):
    with session_scope() as session:
        ids = _populate(session)
    with session_scope() as session:
        session.delete(session.get(Dataset, ids["dataset"]))
    with session_scope() as session:
        for model in (DatasetVersion, Entry, MatchCandidate, ReviewDecision, Study, Run, EpochMetric,
                      Prediction, ModelArtifact):
            assert session.scalar(select(func.count()).select_from(model)) == 0, model.__name__
        assert session.scalar(select(func.count()).select_from(Structure)) == 1
        assert session.scalar(select(func.count()).select_from(Job)) == 1


def test_foreign_keys_are_enforced(app_env):
    with pytest.raises(IntegrityError):
        with session_scope() as session:
            session.add(Entry(dataset_version_id=999, row_number=1, raw_formula="NaCl"))


def test_every_table_is_covered_by_the_round_trip():
    covered = {AuditEvent, User, Dataset, DatasetVersion, Entry, Structure, MatchCandidate, ReviewDecision, Job, Study,
               Run, EpochMetric, Prediction, ModelArtifact}
    assert {m.class_.__tablename__ for m in Base.registry.mappers} == {m.__tablename__ for m in covered}
