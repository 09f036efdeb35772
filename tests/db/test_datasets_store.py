"""Storing cleaned uploads as dataset versions: one transaction, every row kept, structures, dependents, deletion."""

from __future__ import annotations

import hashlib
import math
import os

import pytest
from pymatgen.core import Lattice, Structure
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from cosnet_core.ingest import CleaningOptions, ColumnMapping, clean_table, read_cif_zip, read_table
from db import datasets as store
from db.config import artifacts_dir
from db.engine import session_scope
from db.models import (
    Base,
    Dataset,
    DatasetVersion,
    Entry,
    EpochMetric,
    MatchCandidate,
    ModelArtifact,
    Prediction,
    ReviewDecision,
    Run,
    Study,
)
from db.models import Structure as StructureRow
from tests.cosnet_core.ingest_files import zip_archive
from ui.datasets_view import parse_uploaded_cifs

pytestmark = pytest.mark.both_databases  # each test also runs on PostgreSQL (tests/conftest.py)

NACL_CIF = Structure(Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]).to(fmt="cif")
LICL_CIF = Structure(Lattice.cubic(5.13), ["Li", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]).to(fmt="cif")

TABLE = (
    "id,formula,conductivity,cif,note\n"
    "a1,NaCl,1e-4,nacl.cif,first\n"  # row 2: kept, CIF attached
    "a2,Na2Cl2,1e-2,nacl_copy.cif,same structure\n"  # row 3: kept, identical CIF content (dedupe)
    "a3,Xx2O,1e-3,,bad formula\n"  # row 4: rejected
    "a4,LiCl,<1E-10,licl.cif,censored\n"  # row 5: censored
    "a5,LiCl,2e-6,broken.cif,broken cif\n"  # row 6: kept, CIF unreadable -> composition-only
    "a6,LiCl,4e-6,,plain\n"  # row 7: kept, no CIF
)


def _ingest(table: str = TABLE, *, with_cifs: bool = True, log10: bool = True):
    raw = read_table(table.encode(), "li.csv")
    mapping = ColumnMapping(formula="formula", target="conductivity", id="id", structure_file="cif", extra=("note",))
    cifs = (
        read_cif_zip(
            zip_archive({"nacl.cif": NACL_CIF, "nacl_copy.cif": NACL_CIF, "licl.cif": LICL_CIF,
                  "broken.cif": "data_broken\n_cell_length_a 5\nnot a cif at all\n"})
        )
        if with_cifs
        else None
    )
    result = clean_table(raw, mapping, CleaningOptions(unit="S/cm", log10=log10), cifs=cifs)
    members = {m for m in result.rows["cif_member"] if isinstance(m, str)}
    uploaded = parse_uploaded_cifs(cifs, members) if cifs else store.UploadedStructures()
    return result, uploaded


def _counts(url: str) -> dict[str, int]:
    with session_scope(url) as session:
        return {
            table.name: session.scalar(select(func.count()).select_from(table))
            for table in Base.metadata.sorted_tables
        }


@pytest.fixture()
def url(app_env):
    return os.environ["COSNET_DATABASE_URL"]


def test_create_dataset_stores_every_row_with_its_status_and_reason(url):
    result, uploaded = _ingest()
    stored = store.create_dataset(url, result, name="Li conductors", source_sha256="ab" * 32, uploaded=uploaded)
    assert stored.number == 1

    version = store.get_version(url, stored.version_id)
    assert version.dataset_name == "Li conductors"
    assert (version.n_rows, version.n_kept, version.n_rejected) == (6, 4, 1)
    assert version.summary["n_censored"] == 1
    assert version.target_transform == "log10" and version.target_unit == "S/cm"
    assert version.source_sha256 == "ab" * 32
    assert version.settings["mapping"]["structure_file"] == "cif"
    assert version.settings["options"]["log10"] is True

    frame = store.load_entries(url, stored.version_id)
    assert list(frame["row"]) == [2, 3, 4, 5, 6, 7]
    assert list(frame["status"]) == ["kept", "kept", "rejected", "censored", "kept", "kept"]
    by_row = frame.set_index("row")
    assert by_row.loc[2, "target"] == pytest.approx(-4.0)
    assert by_row.loc[3, "composition"] == "NaCl"
    assert "Xx2O" in by_row.loc[4, "reason"] and math.isnan(by_row.loc[4, "target"])
    assert by_row.loc[5, "censored"] == "<"
    assert by_row.loc[2, "external_id"] == "a1"
    assert by_row.loc[7, "note"] == "plain"  # extra column kept as metadata
    kept = store.load_entries(url, stored.version_id, statuses=["kept"])
    assert list(kept["row"]) == [2, 3, 6, 7]


def test_uploaded_cifs_become_deduplicated_structures_attached_with_a_decision(url):
    result, uploaded = _ingest()
    assert set(uploaded.structures) == {"nacl.cif", "nacl_copy.cif", "licl.cif"}
    assert "broken.cif" in uploaded.errors
    stored = store.create_dataset(url, result, name="d", uploaded=uploaded, created_by="alice")

    with session_scope(url) as session:
        structures = session.scalars(select(StructureRow)).all()
        # nacl.cif and nacl_copy.cif hold the same crystal: one row. licl.cif belongs to a censored row but
        # is stored too (it came with the upload).
        assert sorted(s.formula for s in structures) == ["LiCl", "NaCl"]
        assert all(s.source == "dataset" and len(s.content_hash) == 64 for s in structures)
        entries = {
            e.row_number: e
            for e in session.scalars(select(Entry).where(Entry.dataset_version_id == stored.version_id))
        }
        nacl = next(s for s in structures if s.formula == "NaCl")
        assert entries[2].structure_id == entries[3].structure_id == nacl.id
        assert entries[2].match_state == "accepted" and entries[2].structure_file == "nacl.cif"
        decision = session.scalars(select(ReviewDecision).where(ReviewDecision.entry_id == entries[2].id)).one()
        assert (decision.action, decision.status, decision.reviewer) == ("attach", "accepted", "alice")
        assert decision.structure_id == nacl.id and decision.note == store.UPLOAD_NOTE
        # The unreadable CIF: row kept composition-only, with the reason.
        assert entries[6].status == "kept" and entries[6].structure_id is None
        assert entries[6].match_state == "unmatched"
        assert "broken.cif" in entries[6].reason and "composition-only" in entries[6].reason
        assert entries[7].structure_id is None and entries[7].structure_file is None
        assert session.scalar(select(func.count()).select_from(ReviewDecision)) == 3  # rows 2, 3, 5
    assert store.get_version(url, stored.version_id).summary["n_cif_failed"] == 1

    # A second dataset with the same CIFs reuses the stored structures.
    store.create_dataset(url, result, name="again", uploaded=uploaded)
    assert _counts(url)["structures"] == 2


def test_add_version_numbers_and_links_and_keeps_the_old_version(url):
    first, uploaded = _ingest()
    v1 = store.create_dataset(url, first, name="d", uploaded=uploaded)
    before = store.load_entries(url, v1.version_id)
    second, _ = _ingest(TABLE + "a7,LiBr,5e-5,,new row\n", with_cifs=False, log10=False)
    v2 = store.add_version(url, v1.dataset_id, second, note="re-upload")
    assert (v2.dataset_id, v2.number) == (v1.dataset_id, 2)
    v3 = store.add_version(url, v1.dataset_id, second, parent_id=v1.version_id)
    assert v3.number == 3

    info = store.get_version(url, v2.version_id)
    assert info.parent_id == v1.version_id and info.n_rows == 7 and info.target_transform == "none"
    assert store.get_version(url, v3.version_id).parent_id == v1.version_id
    after = store.load_entries(url, v1.version_id)
    assert after.equals(before)  # version 1 is untouched
    listed = store.list_datasets(url)
    assert [v.number for v in listed[0].versions] == [1, 2, 3]
    assert listed[0].latest.id == v3.version_id

    with pytest.raises(store.DatasetStoreError, match="no dataset with id 999"):
        store.add_version(url, 999, second)
    other = store.create_dataset(url, second, name="other")
    with pytest.raises(store.DatasetStoreError, match="is not a version of dataset"):
        store.add_version(url, v1.dataset_id, second, parent_id=other.version_id)


def test_nothing_kept_or_no_name_stores_nothing(url):
    all_censored = "id,formula,conductivity,cif,note\nx,LiCl,<1E-10,,\ny,NaCl,<1E-9,,\n"
    result, _ = _ingest(all_censored, with_cifs=False)
    before = _counts(url)
    with pytest.raises(store.DatasetStoreError, match="no row of 'li.csv' was kept"):
        store.create_dataset(url, result, name="d")
    good, _ = _ingest(with_cifs=False)
    with pytest.raises(store.DatasetStoreError, match="give the dataset a name"):
        store.create_dataset(url, good, name="   ")
    assert _counts(url) == before


def test_a_failure_midway_rolls_the_whole_import_back(url, monkeypatch):
    plain, _ = _ingest(with_cifs=False)
    first = store.create_dataset(url, plain, name="d")
    result, uploaded = _ingest()
    before = _counts(url)
    real_entry_rows = store._entry_rows

    def last_entry_breaks(*args, **kwargs):
        entries, n_attached, n_failed = real_entry_rows(*args, **kwargs)
        entries[-1].raw_formula = None  # NOT NULL: the INSERT of the last entry fails after the others ran
        return entries, n_attached, n_failed

    monkeypatch.setattr(store, "_entry_rows", last_entry_breaks)
    with pytest.raises(IntegrityError):
        store.add_version(url, first.dataset_id, result, uploaded=uploaded)
    assert _counts(url) == before  # no version, structure, entry or decision left behind


def _add_work(url: str, version_id: int, model_path: str) -> None:
    """A study with one run, its epochs, a prediction, a model, and a match candidate on an entry."""
    with session_scope(url) as session:
        entry = session.scalars(select(Entry).where(Entry.dataset_version_id == version_id)).first()
        structure = session.scalars(select(StructureRow)).first()
        study = Study(name="paper protocol", dataset_version_id=version_id)
        run = Run(study=study, dataset_version_id=version_id, mode="bimodal-aug")
        session.add_all([study, run])
        session.flush()
        session.add_all(
            [
                EpochMetric(run_id=run.id, epoch=1, train_loss=1.0, seconds=0.1),
                Prediction(run_id=run.id, entry_id=entry.id, split="test", value=1.0),
                ModelArtifact(run_id=run.id, path=model_path, sha256="0" * 64, size_bytes=3),
                MatchCandidate(entry_id=entry.id, structure_id=structure.id, rank=1),
            ]
        )


def test_dependents_name_studies_runs_models_and_delete_removes_them(url):
    result, uploaded = _ingest()
    v1 = store.create_dataset(url, result, name="d", uploaded=uploaded)
    v2 = store.add_version(url, v1.dataset_id, result, uploaded=uploaded)
    model = artifacts_dir() / "run-1.pt"
    model.write_bytes(b"abc")
    _add_work(url, v1.version_id, str(model))

    found = store.dependents(url, version_id=v1.version_id)
    assert found.studies == ["paper protocol"]
    assert (found.n_runs, found.n_models, found.n_predictions) == (1, 1, 1)
    assert found.n_review_decisions == 3 and found.n_match_candidates == 1 and found.n_entries == 6
    assert found.has_work
    text = found.describe()
    assert "paper protocol" in text and "1 training run(s)" in text and "1 trained model(s)" in text
    whole = store.dependents(url, dataset_id=v1.dataset_id)
    assert whole.versions == ["v1", "v2"] and whole.n_entries == 12
    assert not store.dependents(url, version_id=v2.version_id).studies

    store.delete_version(url, v1.version_id)
    counts = _counts(url)
    assert counts["studies"] == counts["runs"] == counts["predictions"] == counts["model_artifacts"] == 0
    assert counts["epoch_metrics"] == counts["match_candidates"] == 0
    assert counts["entries"] == 6 and counts["review_decisions"] == 3  # version 2's
    assert counts["structures"] == 2  # shared structures stay
    assert not model.exists()
    assert store.get_version(url, v1.version_id) is None
    assert store.get_version(url, v2.version_id).parent_id is None  # its parent is gone

    store.delete_version(url, v2.version_id)  # the last version: the dataset goes too
    counts = _counts(url)
    assert counts["datasets"] == counts["dataset_versions"] == counts["entries"] == 0
    with pytest.raises(store.DatasetStoreError):
        store.dependents(url, dataset_id=v1.dataset_id)


def test_delete_dataset_removes_all_versions_only_of_that_dataset(url):
    result, _ = _ingest(with_cifs=False)
    keep = store.create_dataset(url, result, name="keep")
    gone = store.create_dataset(url, result, name="gone")
    store.add_version(url, gone.dataset_id, result)
    removed = store.delete_dataset(url, gone.dataset_id)
    assert removed.versions == ["v1", "v2"]
    with session_scope(url) as session:
        assert session.scalars(select(Dataset.name)).all() == ["keep"]
        assert session.scalar(select(func.count()).select_from(DatasetVersion)) == 1
    assert len(store.load_entries(url, keep.version_id)) == 6


def test_unused_rows_csv_lists_rejected_and_censored_rows_with_reasons(url):
    result, uploaded = _ingest()
    stored = store.create_dataset(url, result, name="d", uploaded=uploaded)
    text = store.unused_rows_csv(url, stored.version_id).decode("utf-8-sig")
    lines = text.strip().splitlines()
    assert lines[0].startswith("row,status,reason,formula,target (as given),external_id")
    assert len(lines) == 3
    assert lines[1].startswith("4,rejected,") and "Xx2O" in lines[1]
    assert lines[2].startswith("5,censored,") and "<1E-10" in lines[2]


def test_kept_uploads_are_content_addressed_and_removed_with_their_last_version(url):
    data = TABLE.encode()
    sha = hashlib.sha256(data).hexdigest()
    path = store.save_upload(data, sha)
    assert store.save_upload(data, sha) == path and store.load_upload(sha) == data
    assert store.load_upload("0" * 64) is None and store.load_upload(None) is None
    with pytest.raises(ValueError, match="not a SHA-256"):
        store.save_upload(data, "../../etc/passwd")

    result, _ = _ingest(with_cifs=False)
    first = store.create_dataset(url, result, name="a", source_sha256=sha)
    second = store.create_dataset(url, result, name="b", source_sha256=sha)
    store.delete_dataset(url, first.dataset_id)
    assert path.exists()  # still the file of dataset "b"
    store.delete_dataset(url, second.dataset_id)
    assert not path.exists()


def test_obelix_rows_with_their_cifs_store_disordered_structures(url, shared_data):
    folder = shared_data / "li_conductivity"
    frame_text = (folder / "train.csv").read_bytes()
    raw = read_table(frame_text, "train.csv")
    ids = [i for i in raw.frame["ID"] if (folder / "cifs" / f"{i}.cif").is_file()][:12]
    cifs = {f"{i}.cif": (folder / "cifs" / f"{i}.cif").read_bytes() for i in ids}
    mapping = ColumnMapping(formula="Reduced Composition", target="Ionic conductivity (S cm-1)", id="ID")
    result = clean_table(raw, mapping, CleaningOptions(unit="S/cm", log10=True), cifs=cifs)
    members = {m for m in result.rows["cif_member"] if isinstance(m, str)}
    assert len(members) == 12
    uploaded = parse_uploaded_cifs(cifs, members)
    assert not uploaded.errors
    assert sum(not s.is_ordered for s in uploaded.structures.values()) >= 6  # OBELiX is mostly disordered
    stored = store.create_dataset(url, result, name="OBELiX train", uploaded=uploaded)
    entries = store.load_entries(url, stored.version_id)
    attached = entries[entries["structure_id"].notna()]
    assert len(entries) == raw.n_rows
    assert set(attached["external_id"]) <= set(ids)
    assert len(attached) == (entries["match_state"] == "accepted").sum()
    with_cif_kept = result.kept["cif_member"].notna().sum()
    assert len(attached[attached["status"] == "kept"]) == with_cif_kept
