"""The Structures page in Streamlit's AppTest: matching, review decisions (accept, choose, reject, revert) with the
coverage metric following them, library import from uploads, attaching a CIF, the Materials Project through the
local fake server, and refused inputs that leave the database unchanged."""

from __future__ import annotations

import io
import zipfile

import pytest
from sqlalchemy import select

from db import structures as store
from db.engine import session_scope
from db.models import Job, ReviewDecision, Structure
from tests.db.test_structures_store import (
    cif_bytes,
    db_snapshot,
    diamond_si,
    entry_ids,
    make_version,
    rock_salt,
    small_library_uploads,
)
from tests.fake_mp_server import FAKE_API_KEY, FakeMaterialsProject, built_in_documents
from ui import structures_view as view

PAGE = "pages/structures.py"


@pytest.fixture()
def url(app_env, monkeypatch) -> str:
    for variable in ("MP_API_KEY", "PMG_MAPI_KEY", "MP_API_ENDPOINT"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr("cosnet_core.settings.SECRETS_FILES", ())
    return f"sqlite:///{app_env / 'cosnet.db'}"


def open_page(app_test, version_id: int | None):
    at = app_test(timeout=180)
    at.run()
    at.switch_page(PAGE)
    if version_id is not None:
        at.session_state["active_dataset_version_id"] = version_id
    at.run()
    assert not at.exception, at.exception
    return at


def metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def uploader(at, key: str):
    return next(widget for widget in at.get("file_uploader") if widget.key == key)


def selectbox(at, key: str):
    return next(widget for widget in at.selectbox if widget.key == key)


def click(at, key: str):
    at.button(key=key).click().run()
    assert not at.exception, at.exception
    return at


def test_empty_state_without_a_dataset(app_test, url):
    at = open_page(app_test, None)
    assert at.title[0].value == "Structures"
    assert "Import one on the Datasets page" in at.info[0].value
    assert not at.metric


def test_match_review_revert_and_coverage(app_test, url):
    store.import_library(url, small_library_uploads())
    version = make_version(url, ["NaCl", "TiO2", "Na1.02Cl0.98", "Xe"])
    ids = entry_ids(url, version)
    at = open_page(app_test, version)
    assert metric(at, "Structure coverage") == "0.0 %"
    assert metric(at, "Structures in the library") == "4"

    selectbox(at, view.AUTO_RULE_KEY).set_value("never")
    click(at, "structures_match_all")
    assert "Matched 4 rows; 0 accepted automatically." in at.success[0].value
    assert metric(at, "Structure coverage") == "0.0 %" and metric(at, "Pending review") == "3"
    assert metric(at, "No candidate") == "1"

    # The ambiguous TiO2: pick the second candidate (anatase) and accept it.
    selectbox(at, view.ENTRY_KEY).set_value(ids["TiO2"]).run()
    candidates = {c["external_id"]: c["candidate_id"] for c in store.entry_detail(url, ids["TiO2"])["candidates"]}
    assert at.dataframe[1].value["id"].tolist() == ["TiO2-rutile.cif", "TiO2-anatase.cif"]
    selectbox(at, view.CANDIDATE_KEY).set_value(candidates["TiO2-anatase.cif"]).run()
    assert len(at.get("component_instance")) == 1  # the crystal-toolkit 3D view of the chosen candidate
    click(at, "structures_accept")
    assert metric(at, "Structure coverage") == "25.0 %"
    assert at.caption[0].value == "1 of 4 rows have an accepted structure"

    # Choose another: the rutile instead (the button says so).
    selectbox(at, view.CANDIDATE_KEY).set_value(candidates["TiO2-rutile.cif"]).run()
    assert at.button(key="structures_accept").label == "Choose this one instead"
    click(at, "structures_accept")
    assert store.entry_detail(url, ids["TiO2"])["structure_id"] is not None
    assert metric(at, "Structure coverage") == "25.0 %"

    # Reject the approximate row as a whole.
    selectbox(at, view.ENTRY_KEY).set_value(ids["Na1.02Cl0.98"]).run()
    click(at, "structures_reject_entry")
    assert store.entry_detail(url, ids["Na1.02Cl0.98"])["state"] == "rejected"

    with session_scope(url) as session:
        decisions = session.scalars(select(ReviewDecision).order_by(ReviewDecision.id)).all()
        assert [(d.action, d.reviewer) for d in decisions] == [("accept", "local"), ("choose", "local"),
                                                               ("reject", "local")]
        assert all(d.decided_at is not None for d in decisions)
        accept_id = decisions[0].id

    # Revert the acceptance and the choice from the history: coverage goes back to 0.
    at.toggle(key="structures_history_scope").set_value(True).run()
    history = at.dataframe[-1].value
    assert history["action"].tolist() == ["reject", "choose", "accept"]
    selectbox(at, view.REVERT_KEY).set_value(accept_id + 1).run()
    click(at, "structures_revert")
    click(at, "structures_revert_confirm")
    assert "Reverted decision" in at.success[0].value
    rutile_state = {c["external_id"]: c["status"] for c in store.entry_detail(url, ids["TiO2"])["candidates"]}
    assert rutile_state == {"TiO2-rutile.cif": "pending", "TiO2-anatase.cif": "accepted"}
    selectbox(at, view.REVERT_KEY).set_value(accept_id).run()
    click(at, "structures_revert")
    click(at, "structures_revert_confirm")
    assert metric(at, "Structure coverage") == "0.0 %"
    assert store.entry_detail(url, ids["TiO2"])["state"] == "ambiguous"


def test_bulk_accept_by_rule(app_test, url):
    store.import_library(url, small_library_uploads())
    version = make_version(url, ["NaCl", "Si", "TiO2"])
    at = open_page(app_test, version)
    selectbox(at, view.AUTO_RULE_KEY).set_value("never")
    click(at, "structures_match_all")
    assert metric(at, "Structure coverage") == "0.0 %"
    click(at, "structures_bulk_accept")
    assert "Accepted 2 rows by the rule." in at.success[0].value
    assert metric(at, "Structure coverage") == "66.7 %"

    # The filters show the entries of each state, with their counts in the labels.
    at.radio(key=view.FILTER_KEY).set_value("accepted").run()
    assert sorted(at.dataframe[0].value["formula"]) == ["NaCl", "Si"]
    assert "Accepted (2)" in at.radio(key=view.FILTER_KEY).options
    at.radio(key=view.FILTER_KEY).set_value("pending").run()
    assert at.dataframe[0].value[["formula", "candidates", "exact"]].values.tolist() == [["TiO2", 2, 2]]
    at.radio(key=view.FILTER_KEY).set_value("rejected").run()
    assert any(info.value == "No row in this category." for info in at.info)


def test_library_upload_and_refused_uploads(app_test, url, monkeypatch):
    version = make_version(url, ["NaCl"])
    at = open_page(app_test, version)
    assert any("No Materials Project key" in info.value for info in at.info)

    uploader(at, view.LIBRARY_UPLOAD).set_value([(name, data, "chemical/x-cif") for name, data in
                                                  small_library_uploads()])
    click(at, "structures_import")
    assert at.success[0].value.startswith("Read 5 structure(s): 4 added to the library")
    assert metric(at, "Structures in the library") == "4"
    before = db_snapshot(url)

    uploader(at, view.LIBRARY_UPLOAD).set_value(("broken.cif", b"data_x\nnot a cif at all\n", "chemical/x-cif"))
    click(at, "structures_import")
    assert at.error[0].value.startswith("Refused: broken.cif:") and "Nothing was changed" in at.error[0].value
    assert db_snapshot(url) == before

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("ok/Si.cif", cif_bytes(diamond_si()))
        archive.writestr("../escape.cif", cif_bytes(rock_salt(4.03, "Li", "F")))
    uploader(at, view.LIBRARY_UPLOAD).set_value(("bad.zip", buffer.getvalue(), "application/zip"))
    click(at, "structures_import")
    assert "bad.zip: ../escape.cif: escapes the archive's folder ('..', path traversal)" in at.error[0].value
    assert db_snapshot(url) == before

    monkeypatch.setenv(store.MAX_SITES_ENV, "6")
    big = rock_salt(4.03, "Li", "F")  # 8 sites
    uploader(at, view.LIBRARY_UPLOAD).set_value(("LiF.cif", cif_bytes(big), "chemical/x-cif"))
    click(at, "structures_import")
    assert "LiF.cif: it has 8 sites, more than the limit of 6" in at.error[0].value
    assert db_snapshot(url) == before


def test_attach_own_cif(app_test, url):
    version = make_version(url, ["LiF"])
    (entry_id,) = entry_ids(url, version).values()
    at = open_page(app_test, version)
    click(at, "structures_match_all")
    assert store.entry_detail(url, entry_id)["state"] == "no_candidate"

    uploader(at, view.ATTACH_UPLOAD).set_value(("mine.cif", b"data_bad\n_cell_length_a x\n", "chemical/x-cif"))
    before = db_snapshot(url)
    click(at, "structures_attach")
    assert at.error[0].value.startswith("Refused: mine.cif:")
    assert db_snapshot(url) == before

    uploader(at, view.ATTACH_UPLOAD).set_value(("mine.cif", cif_bytes(rock_salt(4.03, "Li", "F")), "chemical/x-cif"))
    click(at, "structures_attach")
    assert "Attached mine.cif and accepted it" in at.success[0].value
    assert metric(at, "Structure coverage") == "100.0 %"
    with session_scope(url) as session:
        decision = session.scalars(select(ReviewDecision)).one()
        assert (decision.action, decision.reviewer, decision.note) == ("attach", "local", "attached mine.cif")


def test_materials_project_search_with_wrong_and_right_key(app_test, url, monkeypatch):
    version = make_version(url, ["NaCl"])
    (entry_id,) = entry_ids(url, version).values()
    with FakeMaterialsProject(built_in_documents()) as server:
        monkeypatch.setenv("MP_API_ENDPOINT", server.url)
        at = open_page(app_test, version)
        assert at.button(key="structures_search_mp").disabled  # no key yet
        before = db_snapshot(url)
        at.text_input(key=view.MP_KEY_INPUT).input("W" * 32).run()
        click(at, "structures_search_mp")
        assert "The Materials Project is unavailable: the Materials Project refused the API key" in at.error[0].value
        assert "W" * 32 not in at.error[0].value
        assert db_snapshot(url) == before

        at.text_input(key=view.MP_KEY_INPUT).input(FAKE_API_KEY).run()
        click(at, "structures_search_mp")
        assert "Found 1 candidates (1 from the Materials Project)" in at.success[0].value
    (candidate,) = store.entry_detail(url, entry_id)["candidates"]
    assert (candidate["source"], candidate["external_id"], candidate["status"]) == (
        "materials_project", "mp-22862", "pending",
    )
    with session_scope(url) as session:
        stored = session.scalars(select(Structure.cif)).all()
    assert all(FAKE_API_KEY not in text for text in stored)


def test_running_match_job_shows_progress(app_test, url):
    version = make_version(url, ["NaCl"])
    with session_scope(url) as session:
        session.add(Job(kind="match", status="running", progress=0.4, message="100 of 250 entries matched",
                        payload={"dataset_version_id": version}))
    at = open_page(app_test, version)
    bars = at.get("progress")
    assert bars and "100 of 250 entries matched" in bars[0].proto.text
    assert at.button(key="structures_cancel_job")


def test_real_obelix_cifs_uploaded_into_the_library(app_test, url, shared_data):
    cif_dir = shared_data / "li_conductivity" / "cifs"
    names = sorted(path.name for path in cif_dir.glob("*.cif"))[:3]
    version = make_version(url, ["Li7La3Zr2O12"])
    at = open_page(app_test, version)
    uploader(at, view.LIBRARY_UPLOAD).set_value(
        [(name, (cif_dir / name).read_bytes(), "chemical/x-cif") for name in names]
    )
    click(at, "structures_import")
    assert at.success[0].value.startswith("Read 3 structure(s)")
    assert int(metric(at, "Structures in the library")) == store.library_version_key(url)[0] >= 1


def test_large_library_upload_becomes_a_job(app_test, url, monkeypatch):
    import jobs
    from jobs import registry

    if "library_import" not in registry.JOB_KINDS:  # until the job registry lists the kind
        monkeypatch.setitem(
            registry.JOB_KINDS, "library_import",
            registry.JobKind("jobs.matching:run_library_import_job",
                             validate="jobs.matching:validate_library_import_payload"),
        )
    monkeypatch.setattr(jobs, "ensure_executor", lambda *args, **kwargs: None)
    monkeypatch.setenv(view.INLINE_LIBRARY_BYTES_ENV, "100")
    version = make_version(url, ["NaCl"])
    at = open_page(app_test, version)
    uploader(at, view.LIBRARY_UPLOAD).set_value([(name, data, "chemical/x-cif") for name, data in
                                                  small_library_uploads()])
    click(at, "structures_import")
    assert "in the background (job" in at.success[0].value
    assert metric(at, "Structures in the library") == "0"  # nothing imported in the script run
    job = store.latest_job(url, "library_import")
    assert job["status"] == "queued" and at.get("progress")
    assert jobs.run_inline(job["job_id"], db_url=url) == "succeeded"
    at.run()
    assert metric(at, "Structures in the library") == "4"
    assert any(f"Last library import (job {job['job_id']})" in c.value for c in at.caption)
    # the page that watched the job says at the top that it finished (issue 16, item 8), once
    (notice,) = [s.value for s in at.success if f"Library import job {job['job_id']} finished" in s.value]
    assert "4 added to the library" in notice
    at.run()
    assert not [s for s in at.success if "finished" in s.value]
