"""The Training page driven with Streamlit's AppTest: empty state, launch, progress, cancel."""

from __future__ import annotations

import os
import time

import pytest

from jobs import store
from tests.jobs.conftest import make_dataset
from tests.ray_fixture import ray_session  # noqa: F401  (the shared session fixture)

PAGE = "pages/training.py"


def wait_until(condition, timeout: float = 120.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def texts(at) -> str:
    parts = [e.value for kind in ("markdown", "caption", "info", "error", "success", "warning") for e in at.get(kind)]
    return "\n".join(str(p) for p in parts)


def test_empty_state_without_a_dataset(app_test):
    at = app_test()
    at.switch_page(PAGE)
    at.run()
    assert not at.exception
    assert "Import a dataset" in at.info[0].value
    assert not [b for b in at.button if b.label == "Launch study"]


def test_too_small_a_dataset_cannot_be_launched(app_test, app_env):
    version_id = make_dataset(os.environ["COSNET_DATABASE_URL"], n=6)
    at = app_test()
    at.switch_page(PAGE)
    at.session_state["active_dataset_version_id"] = version_id
    at.run()
    assert not at.exception
    assert "a study needs at least 10" in texts(at)
    assert [b for b in at.button if b.label == "Launch study"][0].disabled


@pytest.mark.slow
def test_launch_watch_progress_and_cancel(app_test, app_env, ray_session):  # noqa: F811
    from jobs.executor import stop_executor

    db_url = os.environ["COSNET_DATABASE_URL"]
    version_id = make_dataset(db_url)
    at = app_test(timeout=60)
    at.switch_page(PAGE)
    at.session_state["active_dataset_version_id"] = version_id
    at.run()
    assert not at.exception
    assert "30 rows with a target, 10 of them with an accepted crystal structure" in texts(at)
    assert "estimated" in texts(at)
    assert [r.options for r in at.radio if r.label == "Device"][0][:2] == ["Auto (GPU when available)", "CPU"]
    [m for m in at.multiselect if m.label == "Modes"][0].set_value(["bimodal-aug"])
    [n for n in at.number_input if n.label == "Seeds per mode"][0].set_value(1)
    [n for n in at.number_input if n.label == "Epochs"][0].set_value(300)
    [n for n in at.number_input if n.label == "Encoder width"][0].set_value(8)
    at.run()
    # an 8-wide encoder cannot start from the 64-wide pretrained one: the form says so until the choice is none
    assert any("was trained for 64-wide encoders" in e.value for e in at.error)
    _selectbox(at, "Start g_C from a pretrained encoder").set_value("none").run()
    assert "1 runs of 300 epochs on 30 rows" in texts(at)
    try:
        [b for b in at.button if b.label == "Launch study"][0].click()
        at.run()
        assert not at.exception
        assert "Study queued" in texts(at)
        (study_job,) = store.pending_study_jobs(db_url, version_id) or [
            {"id": s["job_id"]} for s in store.studies_of_version(db_url, version_id)
        ]
        job = store.job_row(db_url, study_job["id"])
        assert job["payload"]["train"]["epochs"] == 300 and job["payload"]["modes"] == ["bimodal-aug"]
        assert job["created_by"] == "local"

        def first_epoch():
            studies = store.studies_of_version(db_url, version_id)
            runs = store.runs_of_study(db_url, studies[0]["id"]) if studies else []
            return runs and runs[0]["epochs_done"] >= 1

        wait_until(first_epoch, 180, "a first epoch")
        at.run()
        assert not at.exception
        assert at.get("progress"), "no progress bar"
        assert "running" in texts(at)
        assert at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart"), "no loss curve"
        cancel = [b for b in at.button if b.label == "Cancel study"]
        assert cancel
        cancel[0].click()
        at.run()
        wait_until(lambda: store.job_row(db_url, study_job["id"])["status"] in store.TERMINAL, 90, "the cancel")
        assert store.job_row(db_url, study_job["id"])["status"] == "cancelled"
        at.run()
        assert "cancelled" in texts(at)
        assert not [b for b in at.button if b.label == "Cancel study"]
    finally:
        assert stop_executor(app_env)


def _selectbox(at, label):
    return next(s for s in at.selectbox if s.label == label)


def _page_on_a_new_dataset(app_test, n: int = 12):
    """The Training page on a fresh dataset version of ``n`` distinct binaries; returns the page and the version."""
    version_id = make_dataset(os.environ["COSNET_DATABASE_URL"], n=n)
    at = app_test()
    at.switch_page(PAGE)
    at.session_state["active_dataset_version_id"] = version_id
    at.run()
    assert not at.exception, at.exception
    return at, version_id


def test_split_defaults_to_grouped_when_compositions_repeat_and_says_why(app_test, app_env):
    from db.engine import session_scope
    from db.models import Entry

    at, distinct = _page_on_a_new_dataset(app_test)
    assert _selectbox(at, "Split").value == "random"
    assert "Default random: every row has its own composition" in texts(at)

    with session_scope(os.environ["COSNET_DATABASE_URL"]) as session:  # four rows of the same composition
        entries = session.query(Entry).filter(Entry.dataset_version_id == distinct, Entry.status == "kept").all()
        for entry in entries[:4]:
            entry.composition = "LiF"
    at.run()
    assert not at.exception, at.exception
    assert _selectbox(at, "Split").value == "grouped"
    assert "Default grouped: compositions repeat (12 rows, 9 distinct compositions)" in texts(at)
    _selectbox(at, "Split").set_value("random").run()
    assert any("test errors will be optimistic" in w.value for w in at.warning)


def test_descriptors_and_pretrained_encoder_choices_reach_the_study_payload(app_test, app_env, monkeypatch):
    import jobs
    from cosnet_core.train import TrainConfig

    monkeypatch.setattr(jobs, "ensure_executor", lambda *a, **k: None)  # the job is only queued, not run
    at, version_id = _page_on_a_new_dataset(app_test)
    db_url = os.environ["COSNET_DATABASE_URL"]
    descriptors = _selectbox(at, "Composition descriptors")
    encoder = _selectbox(at, "Start g_C from a pretrained encoder")
    # the page's defaults are the app's training defaults (DEFAULTS: the shipped encoder, no descriptors),
    # and it offers every shipped checkpoint
    from cosnet_core.hparams import DEFAULTS
    from cosnet_core.pretrained import shipped_checkpoints

    assert descriptors.value == DEFAULTS["descriptors"] == "none"
    assert encoder.value == DEFAULTS["init_from"] == "roost64-dft4"
    assert encoder.options[1:] == shipped_checkpoints() and encoder.options[0].startswith("none")
    # an encoder of another width is refused on the form, before launch
    width = next(n for n in at.number_input if n.label == "Encoder width")
    width.set_value(32).run()
    assert any("pretrained encoder roost64-dft4 was trained for 64-wide encoders" in e.value for e in at.error)
    assert next(b for b in at.button if b.label == "Launch study").disabled
    width.set_value(64).run()
    descriptors.set_value("magpie").run()
    encoder.set_value("none").run()
    next(b for b in at.button if b.label == "Launch study").click().run()
    assert not at.exception, at.exception
    assert "Study queued" in texts(at)
    (job,) = store.pending_study_jobs(db_url, version_id)
    train = store.job_row(db_url, job["id"])["payload"]["train"]
    assert train["descriptors"] == "magpie" and train["init_from"] is None
    assert TrainConfig.from_dict({k: train[k] for k in ("descriptors", "init_from")}).descriptors == "magpie"


def test_the_authors_preset_reaches_the_study_and_its_runs(app_test, app_env, monkeypatch):
    import jobs
    from jobs.training import run_specs, validate_study_payload

    monkeypatch.setattr(jobs, "ensure_executor", lambda *a, **k: None)  # the job is only queued, not run
    at, version_id = _page_on_a_new_dataset(app_test)
    db_url = os.environ["COSNET_DATABASE_URL"]
    preset = next(r for r in at.radio if r.label == "Preset")
    assert preset.value == "defaults"
    preset.set_value("authors").run()
    assert not at.exception, at.exception
    # the form now starts from the authors' train.py: weight decay 0.1, decay 0.96, no pretrained encoder
    assert _selectbox(at, "Weight decay").value == 0.1 and _selectbox(at, "Learning-rate decay per epoch").value == 0.96
    assert _selectbox(at, "Start g_C from a pretrained encoder").value == "none"
    assert "Still different: final ReLU" in texts(at)
    next(b for b in at.button if b.label == "Launch study").click().run()
    assert not at.exception, at.exception
    (job,) = store.pending_study_jobs(db_url, version_id)
    payload = validate_study_payload(store.job_row(db_url, job["id"])["payload"])
    assert payload["preset"] == "authors"
    config = run_specs(payload)[0]["config"]
    assert (config["loss"], config["weight_decay"], config["lr_decay"]) == ("mse", 0.1, 0.96)
    assert (config["head"], config["cell_features"], config["roost_mlp_hidden"]) == ("authors", "authors", 128)


def test_the_search_budget_is_shown_and_can_be_raised_to_the_full_grid(app_test, app_env, monkeypatch):
    import jobs

    monkeypatch.setattr(jobs, "ensure_executor", lambda *a, **k: None)  # the job is only queued, not run
    at, version_id = _page_on_a_new_dataset(app_test)
    db_url = os.environ["COSNET_DATABASE_URL"]
    next(c for c in at.checkbox if c.label.startswith("First search Table 3")).check().run()
    assert "Search budget: 16 trial(s) × 50 epochs per mode" in texts(at)
    next(n for n in at.number_input if n.label == "Epochs per trial").set_value(80).run()
    next(c for c in at.checkbox if c.label.startswith("Full Table 3 grid (720")).check().run()
    assert not at.exception, at.exception
    assert "Search budget: 720 trial(s) × 80 epochs per mode" in texts(at)
    assert "after a search of 720 trials × 80 epochs per mode" in texts(at)
    next(b for b in at.button if b.label == "Launch study").click().run()
    (job,) = store.pending_study_jobs(db_url, version_id)
    search = store.job_row(db_url, job["id"])["payload"]["search"]
    assert search == {"enabled": True, "num_samples": 720, "epochs": 80, "full_grid": True, "grace_period": 2}
