"""Results that read at a glance (issue 16, item 7): square parity plots with one scale and a y = x line, training
curves with room for the plot, the study selector on the active dataset's latest finished study (a cancelled study
is never "in progress"), and a "train longer" hint when the best epoch is the last one."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from sqlalchemy import update

from db.engine import session_scope
from db.models import Dataset, DatasetVersion, EpochMetric, Job, Run, Study
from tests.pages.results_fixtures import store_study
from ui.results_view import PARITY_SIZE, best_epoch_at_end, epoch_curves, train_longer_hint


def _charts(at) -> list[dict]:
    """Each chart's Vega-Lite spec, with its named datasets (sent beside the spec as Arrow) put back as records."""
    from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df

    specs = []
    for chart in at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart"):
        spec = json.loads(chart.proto.spec)
        spec.setdefault("datasets", {}).update({
            named.name: convert_arrow_bytes_to_pandas_df(named.data.data).to_dict("records")
            for named in chart.proto.datasets
        })
        specs.append(spec)
    return specs


def _titled(charts: list[dict], word: str) -> dict:
    return next(c for c in charts if word in json.dumps(c.get("title", "")))


def _results(app_test, version_id=None):
    at = app_test()
    at.switch_page("pages/results.py")
    if version_id is not None:
        at.session_state["active_dataset_version_id"] = version_id
    at.run()
    assert not at.exception, at.exception
    return at


def _version_of(study_id: int) -> int:
    with session_scope() as session:
        return session.get(Study, study_id).dataset_version_id


def test_parity_plot_is_square_with_one_scale_and_the_y_equals_x_line(app_test):
    store_study(n_entries=12)
    parity = _titled(_charts(_results(app_test)), "Parity")
    assert parity["width"] == parity["height"] == PARITY_SIZE
    assert parity["autosize"] == {"type": "pad"}  # the size is the plot area's, not the whole chart's
    scales = [(layer["encoding"]["x"]["scale"], layer["encoding"]["y"]["scale"]) for layer in parity["layer"]]
    for x_scale, y_scale in scales:
        assert x_scale == y_scale and x_scale["nice"] is False
    (line,) = [layer for layer in parity["layer"] if layer["mark"]["type"] == "line"]
    assert line["encoding"]["x"]["field"] == line["encoding"]["y"]["field"]  # y = x
    ends = [row["v"] for row in parity["datasets"][line["data"]["name"]]]
    assert ends == scales[0][0]["domain"]  # corner to corner of the square
    points = next(layer for layer in parity["layer"] if layer["mark"]["type"] != "line")
    values = parity["datasets"][points["data"]["name"]]
    low, high = ends
    assert all(low < row["target"] < high and low < row["prediction"] < high for row in values)


def test_training_curves_keep_their_plot_area_legend_below_short_titles(app_test):
    store_study(n_entries=12)
    curves = _titled(_charts(_results(app_test)), "Training curves")
    assert curves["height"] >= 300
    assert curves["autosize"]["type"] == "fit-x"  # the height stays the plot area's (see tests/e2e/test_curves_layout.py)
    assert curves["encoding"]["color"]["legend"]["orient"] == "bottom"
    assert len(curves["encoding"]["y"]["title"]) <= 40, curves["encoding"]["y"]["title"]


def test_training_page_curves_share_the_readable_layout():
    metrics = pd.DataFrame({"run": ["bimodal-aug · seed 0 · 20% structures"] * 3, "epoch": [1, 2, 3],
                            "val_mae": [3.0, 2.0, 2.5], "train_loss": [1.0, 0.8, 0.7]})
    spec = epoch_curves(metrics, "train_loss", "Training loss per epoch", "Training loss (standardised target)").to_dict()
    assert spec["height"] >= 300 and spec["encoding"]["color"]["legend"]["orient"] == "bottom"
    assert spec["autosize"]["type"] == "fit-x"


def test_train_longer_hint_only_when_the_best_epoch_is_the_last():
    epochs = pd.DataFrame({
        "run_id": [1, 1, 1, 2, 2, 2, 3, 3, 3, 4], "run": ["a"] * 3 + ["b"] * 3 + ["c"] * 3 + ["d"],
        "epoch": [1, 2, 3] * 3 + [1], "val_mae": [3, 2, 1, 3, 1, 2, 3, 2, 1, 5.0],
    })
    found = best_epoch_at_end(epochs, finished_run_ids={1, 2, 4})  # run 3 is still training
    assert found.to_dict("records") == [{"run_id": 1, "run": "a", "best_epoch": 3}]
    assert "train longer" in train_longer_hint(found) and "a (epoch 3)" in train_longer_hint(found)
    assert train_longer_hint(best_epoch_at_end(epochs, {2})) is None


def test_results_page_hints_train_longer_and_not_after_an_earlier_best(app_test):
    import streamlit as st

    study_id = store_study(n_entries=12)  # val MAE 2/epoch: every run is best at its last epoch
    at = _results(app_test)
    assert any("train longer" in i.value and "4 run(s)" in i.value for i in at.info)
    with session_scope() as session:
        run_ids = [r.id for r in session.query(Run).filter(Run.study_id == study_id)]
        session.execute(update(EpochMetric).where(EpochMetric.run_id.in_(run_ids), EpochMetric.epoch == 3)
                        .values(val_mae=5.0))
    st.cache_data.clear()  # the page caches a study's curves until a run finishes; the rows were edited under it
    at = _results(app_test)
    assert not any("train longer" in i.value for i in at.info)


def _set_status(study_id: int, status: str, job_status: str | None = None) -> None:
    with session_scope() as session:
        study = session.get(Study, study_id)
        study.status = status
        if job_status is not None:
            job = Job(kind="study", payload={}, created_by="local", status=job_status, cancel_requested=True)
            session.add(job)
            session.flush()
            study.job_id = job.id


def _bare_study(dataset: str, status: str) -> int:
    """A study on a new dataset with no runs (enough for the selector)."""
    with session_scope() as session:
        version = DatasetVersion(dataset=Dataset(name=dataset), number=1, target_name="y", n_rows=1, n_kept=1)
        study = Study(name=f"{dataset} study", dataset_version=version, modes=["composition"], seeds=[0],
                      status=status, config={}, results={})
        session.add(study)
        session.flush()
        return study.id


def test_selector_opens_on_the_active_datasets_latest_finished_study(app_test):
    mine_old = store_study(n_entries=12)  # dataset A, finished
    other = _bare_study("dataset B", "succeeded")  # newer, on another dataset
    version_a = _version_of(mine_old)
    with session_scope() as session:  # a newer study on A that was cancelled before any run finished
        cancelled = Study(name="cancelled one", dataset_version_id=version_a, modes=["composition"], seeds=[0],
                          status="running", config={}, results={})
        session.add(cancelled)
        session.flush()
        cancelled_id = cancelled.id
    _set_status(cancelled_id, "running", job_status="cancelled")  # its job ended; the row was not updated

    at = _results(app_test, version_id=version_a)
    (picker,) = [s for s in at.selectbox if s.label == "Study"]
    assert picker.value == mine_old, (picker.value, other)
    labels = {option.split(" ")[0]: option for option in picker.options}
    assert labels[f"#{cancelled_id}"].endswith("· cancelled")

    at = _results(app_test, version_id=_version_of(other))
    assert [s for s in at.selectbox if s.label == "Study"][0].value == other

    picker = [s for s in at.selectbox if s.label == "Study"][0]
    picker.set_value(cancelled_id).run()
    assert not at.exception, at.exception
    infos = " ".join(i.value for i in at.info)
    assert "This study is cancelled and no run of it finished" in infos
    assert "has finished yet" not in infos and "Progress is shown" not in infos


@pytest.mark.parametrize(
    ("study", "job", "cancel", "shown"),
    [("running", "running", False, "running"), ("running", "running", True, "cancelling"),
     ("running", "cancelled", True, "cancelled"), ("running", "failed", False, "failed"),
     ("succeeded", "succeeded", False, "succeeded"), ("queued", None, False, "queued")],
)
def test_study_status_never_calls_a_cancelled_study_running(study, job, cancel, shown):
    from db.results import study_status

    assert study_status(study, job, cancel) == shown
