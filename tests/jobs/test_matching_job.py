"""The bulk matching job: progress, cancellation between chunks, auto-accept, the Materials Project through the real
``mp-api`` client against the local fake server, and the job system's inline runner."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from db import structures as store
from db.engine import session_scope
from db.models import Job
from jobs import matching
from jobs.context import JobCancelled
from tests.db.test_structures_store import entry_ids, make_version, small_library_uploads
from tests.fake_mp_server import FAKE_API_KEY, FakeMaterialsProject, built_in_documents


class FakeContext:
    """Records what the job reports; asks to cancel after ``cancel_after`` checks."""

    def __init__(self, url: str, cancel_after: int | None = None) -> None:
        self.db_url = url
        self.cancel_after = cancel_after
        self.checks = 0
        self.reports: list[tuple[float, str]] = []
        self.lines: list[str] = []

    def progress(self, fraction: float, message: str = "") -> None:
        self.reports.append((fraction, message))

    def should_cancel(self) -> bool:
        self.checks += 1
        return self.cancel_after is not None and self.checks > self.cancel_after

    def log(self, message: str) -> None:
        self.lines.append(message)


@pytest.fixture()
def url(app_env, monkeypatch) -> str:
    for variable in ("MP_API_KEY", "PMG_MAPI_KEY", "MP_API_ENDPOINT"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr("cosnet_core.settings.SECRETS_FILES", ())
    return f"sqlite:///{app_env / 'cosnet.db'}"


def test_match_job_progress_states_and_auto_accept(url, monkeypatch):
    store.import_library(url, small_library_uploads())
    version = make_version(url, ["NaCl", "TiO2", "Na1.02Cl0.98", "Si", "Xe", "not a formula"])
    monkeypatch.setattr(matching, "CHUNK_SIZE", 4)
    ctx = FakeContext(url)
    matching.run_match_job(7, {"dataset_version_id": version, "created_by": "ada"}, ctx)

    fractions = [fraction for fraction, _ in ctx.reports]
    assert fractions == [0.0, pytest.approx(4 / 6), 1.0, 1.0]
    assert "2 auto-accepted" in ctx.reports[-1][1]
    assert any("Materials Project skipped: no API key" in line for line in ctx.lines)
    states = store.entry_table(url, version).set_index("formula")["state"].to_dict()
    assert states == {
        "NaCl": "accepted", "TiO2": "ambiguous", "Na1.02Cl0.98": "approximate", "Si": "accepted",
        "Xe": "no_candidate", "not a formula": "no_candidate",
    }
    bad = store.entry_detail(url, entry_ids(url, version)["not a formula"])
    assert bad["match_error"] and bad["candidates"] == []
    summary = store.matching_summary(url, version)
    assert summary["job_id"] == 7 and summary["n_auto_accepted"] == 2 and summary["sources"] == ["library"]
    assert store.coverage(url, version) == store.Coverage(2, 6)
    history = store.decision_table(url, version_id=version)
    assert set(history["action"]) == {"auto_accept"} and set(history["reviewer"]) == {"ada"}


def test_match_job_without_auto_accept_and_rematch_skips_reviewed(url):
    store.import_library(url, small_library_uploads())
    version = make_version(url, ["NaCl", "Si"])
    matching.run_match_job(1, {"dataset_version_id": version, "auto_accept": "never"}, FakeContext(url))
    assert store.coverage(url, version).n_with_structure == 0
    nacl = store.entry_detail(url, entry_ids(url, version)["NaCl"])
    store.reject_candidate(url, nacl["candidates"][0]["candidate_id"], reviewer="ada")
    ctx = FakeContext(url)
    matching.run_match_job(2, {"dataset_version_id": version}, ctx)
    assert store.matching_summary(url, version)["n_entries"] == 1  # only Si: NaCl was reviewed
    assert store.entry_detail(url, nacl["entry_id"])["state"] == "rejected"
    assert store.entry_detail(url, entry_ids(url, version)["Si"])["state"] == "accepted"


def test_match_job_cancellation_keeps_whole_chunks(url, monkeypatch):
    store.import_library(url, small_library_uploads())
    version = make_version(url, ["NaCl", "Si", "TiO2", "Xe", "NaCl"])
    monkeypatch.setattr(matching, "CHUNK_SIZE", 2)
    ctx = FakeContext(url, cancel_after=1)
    with pytest.raises(JobCancelled, match="after 2 of 5"):
        matching.run_match_job(3, {"dataset_version_id": version}, ctx)
    states = store.entry_table(url, version)["state"].tolist()
    assert states == ["accepted", "accepted", "unmatched", "unmatched", "unmatched"]
    assert store.matching_summary(url, version) is None


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({}, "dataset_version_id"),
        ({"dataset_version_id": 1, "sources": ["icsd"]}, "unknown source"),
        ({"dataset_version_id": 1, "auto_accept": "always"}, "unknown rule 'always'"),
        ({"dataset_version_id": 1, "max_candidates": 0}, "max_candidates"),
    ],
)
def test_bad_payloads_are_refused(url, payload, message):
    with pytest.raises(matching.MatchJobError, match=message):
        matching.validate_match_payload(payload)


def test_match_job_with_the_materials_project_fake_server(url, monkeypatch):
    version = make_version(url, ["NaCl", "Si", "Na0.98K0.02Cl"])
    with FakeMaterialsProject(built_in_documents()) as server:
        monkeypatch.setenv("MP_API_ENDPOINT", server.url)
        monkeypatch.setenv("MP_API_KEY", FAKE_API_KEY)
        ctx = FakeContext(url)
        matching.run_match_job(4, {"dataset_version_id": version, "sources": ["materials_project"]}, ctx)
        assert all(FAKE_API_KEY not in line for line in ctx.lines + [m for _, m in ctx.reports])
    ids = entry_ids(url, version)
    nacl = store.entry_detail(url, ids["NaCl"])
    (candidate,) = nacl["candidates"]
    assert (candidate["source"], candidate["external_id"], candidate["spacegroup"]) == (
        "materials_project", "mp-22862", "Fm-3m (225)",
    )
    assert candidate["theoretical"] is False and candidate["energy_above_hull"] == 0.0
    assert nacl["state"] == "accepted"
    doped = store.entry_detail(url, ids["Na0.98K0.02Cl"])
    assert doped["state"] == "approximate" and doped["candidates"][0]["external_id"] == "mp-22862"


def test_match_job_with_a_wrong_key_goes_on_without_the_materials_project(url, monkeypatch):
    store.import_library(url, small_library_uploads())
    version = make_version(url, ["NaCl"])
    with FakeMaterialsProject(built_in_documents()) as server:
        monkeypatch.setenv("MP_API_ENDPOINT", server.url)
        monkeypatch.setenv("MP_API_KEY", "X" * 32)
        ctx = FakeContext(url)
        matching.run_match_job(5, {"dataset_version_id": version}, ctx)
    assert any("refused the API key" in line for line in ctx.lines)
    summary = store.matching_summary(url, version)
    assert summary["sources"] == ["library"] and any("refused the API key" in note for note in summary["notes"])
    (candidate,) = store.entry_detail(url, entry_ids(url, version)["NaCl"])["candidates"]
    assert candidate["source"] == "library"


def test_match_job_through_the_job_system(url):
    import jobs

    store.import_library(url, small_library_uploads())
    version = make_version(url, ["NaCl", "TiO2"])
    job_id = jobs.submit("match", {"dataset_version_id": version, "sources": ["library"]}, db_url=url)
    assert jobs.run_inline(job_id, db_url=url) == "succeeded"
    with session_scope(url) as session:
        job = session.scalars(select(Job).where(Job.id == job_id)).one()
        assert job.progress == 1.0 and job.status == "succeeded"
    summary = store.matching_summary(url, version)
    assert summary["job_id"] == job_id and summary["n_auto_accepted"] == 1
    assert store.coverage(url, version) == store.Coverage(1, 2)


# -- library import as a job ---------------------------------------------------------------------------------------


def _saved_uploads(tmp_path, uploads):
    files = []
    for name, data in uploads:
        path = tmp_path / f"upload-{name}"
        path.write_bytes(data)
        files.append({"path": str(path), "name": name})
    return files


def test_library_import_job_adds_structures_and_deletes_the_saved_uploads(url, tmp_path):
    files = _saved_uploads(tmp_path, small_library_uploads())
    ctx = FakeContext(url)
    matching.run_library_import_job(11, {"files": files, "created_by": "ada"}, ctx)
    assert ctx.reports[-1] == (1.0, ctx.reports[-1][1]) and "4 added to the library" in ctx.reports[-1][1]
    assert [fraction for fraction, _ in ctx.reports] == sorted(fraction for fraction, _ in ctx.reports)
    assert store.library_version_key(url)[0] == 4
    assert not any((tmp_path / f"upload-{name}").exists() for name, _ in small_library_uploads())


def test_library_import_job_refused_or_cancelled_changes_nothing(url, tmp_path):
    from tests.db.test_structures_store import db_snapshot

    before = db_snapshot(url)
    files = _saved_uploads(tmp_path, [*small_library_uploads(), ("broken.cif", b"data_x\nnonsense\n")])
    with pytest.raises(store.StructureStoreError, match="broken.cif"):
        matching.run_library_import_job(12, {"files": files}, FakeContext(url))
    assert db_snapshot(url) == before and not any(Path(item["path"]).exists() for item in files)

    files = _saved_uploads(tmp_path, small_library_uploads())
    with pytest.raises(JobCancelled, match="before anything was written"):
        matching.run_library_import_job(13, {"files": files}, FakeContext(url, cancel_after=0))
    assert db_snapshot(url) == before

    with pytest.raises(matching.MatchJobError, match="is not at"):
        matching.validate_library_import_payload({"files": [{"path": str(tmp_path / "gone.cif"), "name": "x.cif"}]})
