"""The Results page shows Table 1 computed from the stored predictions, filters its table and exports CSV."""

import io

import pandas as pd
import pytest

from cosnet_core.report import table1
from db.engine import session_scope
from db.models import Study
from db.results import study_predictions
from tests.pages.results_fixtures import store_study


@pytest.fixture()
def results_page(app_test):
    study_id = store_study(n_entries=12)
    at = app_test()
    at.switch_page("pages/results.py")
    at.run()
    assert not at.exception, at.exception
    return at, study_id


def test_table1_on_the_page_equals_the_numbers_from_stored_predictions(results_page):
    at, study_id = results_page
    shown = at.dataframe[0].value
    expected = table1(study_predictions(study_id)).long.set_index(["subset", "mode"])
    cell = shown.loc["complete", "bimodal with augmentation"]
    mean, std = (float(x) for x in cell.split(" ")[0:3:2])
    assert mean == pytest.approx(expected.loc[("all", "bimodal-aug"), "mae_mean"], abs=5e-4)
    assert std == pytest.approx(expected.loc[("all", "bimodal-aug"), "mae_std"], abs=5e-4)
    assert shown.loc["w/ structure", "test rows"] == expected.loc[("with_structure", "composition"), "n"]


def test_filters_change_the_table_and_download_has_one_row_per_test_entry(downloads, results_page):
    at, study_id = results_page
    table = at.dataframe[2].value
    assert set(table["split"]) == {"test"} and len(table) == 4  # rows 8..11 of 12 are test
    downloaded = pd.read_csv(io.BytesIO(downloads(at.download_button[0])))
    assert sorted(downloaded["id"]) == ["r10", "r11", "r8", "r9"]
    assert list(downloaded.columns[:5]) == ["id", "formula", "split", "measured", "predicted"]
    rows_filter = next(s for s in at.selectbox if s.label == "Rows")
    rows_filter.set_value("with structure").run()
    filtered = at.dataframe[2].value
    assert len(filtered) == 1 and bool(filtered["has structure"].iloc[0])
    at.multiselect[0].set_value(["train", "val", "test"]).run()
    assert len(at.dataframe[2].value) == 4  # rows 0,3,6,9 have a structure


def test_empty_state_without_studies(app_test):
    at = app_test()
    at.switch_page("pages/results.py")
    at.run()
    assert not at.exception
    assert "No study has been launched yet" in at.info[0].value


def test_results_of_a_study_trained_in_the_test(app_test, downloads):
    """A tiny real study (two modes, two seeds, 2 epochs) trained by the jobs package, then shown on the page."""
    import os

    import jobs
    from tests.jobs.conftest import TINY_TRAIN, make_dataset

    version_id = make_dataset(os.environ["COSNET_DATABASE_URL"])
    payload = {"dataset_version_id": version_id, "modes": ["composition", "bimodal-aug"], "seeds": [0, 1],
               "train": TINY_TRAIN, "split": {"method": "grouped", "seed": 0}}
    job_id = jobs.submit("study", payload)
    assert jobs.run_inline(job_id) == "succeeded"

    at = app_test(timeout=120)
    at.switch_page("pages/results.py")
    at.run()
    assert not at.exception, at.exception
    from db.results import list_studies

    study_id = list_studies()[0].id
    expected = table1(study_predictions(study_id)).long.set_index(["subset", "mode"])
    shown = at.dataframe[0].value
    for subset, label in [("all", "complete"), ("without_structure", "w/o structure"),
                          ("with_structure", "w/ structure")]:
        for mode, column in [("composition", "composition only"), ("bimodal-aug", "bimodal with augmentation")]:
            mean, std = (float(x) for x in shown.loc[label, column].split(" ")[0:3:2])
            assert mean == pytest.approx(expected.loc[(subset, mode), "mae_mean"], abs=5e-4)
            assert std == pytest.approx(expected.loc[(subset, mode), "mae_std"], abs=5e-4)
    n_test = int(expected.loc[("all", "composition"), "n"])
    downloaded = pd.read_csv(io.BytesIO(downloads(at.download_button[0])))
    assert len(downloaded) == n_test and set(downloaded["split"]) == {"test"}
    assert any(h.value.startswith("Figure 3") for h in at.header)


def test_a_run_that_finishes_while_the_study_goes_on_appears_on_the_next_rerun(app_test):
    from db.engine import session_scope
    from db.models import Run, Study

    study_id = store_study(n_entries=12)
    with session_scope() as session:
        session.get(Study, study_id).status = "running"
        last = session.get(Study, study_id).runs[-1]
        last.status, last_id = "running", last.id
    at = app_test()
    at.switch_page("pages/results.py")
    at.run()
    assert "± 0.000" in at.dataframe[0].value.loc["complete", "bimodal with augmentation"]  # one seed so far
    with session_scope() as session:
        session.get(Run, last_id).status = "succeeded"
    at.run()
    shown = at.dataframe[0].value.loc["complete", "bimodal with augmentation"]
    expected = table1(study_predictions(study_id)).long.set_index(["subset", "mode"]).loc[("all", "bimodal-aug")]
    assert expected["n_seeds"] == 2 and shown.startswith(f"{expected['mae_mean']:.3f} ± {expected['mae_std']:.3f}")


def test_baselines_stand_beside_the_modes_with_rmse_r2_and_a_plain_warning(app_test):
    forest = {s: {"mae_mean": 0.01, "mae_std": 0.0, "rmse_mean": 0.02, "r2_mean": 0.99, "n": n}
              for s, n in (("all", 4), ("without_structure", 3), ("with_structure", 1))}
    mean = {s: {**v, "mae_mean": 2.0, "rmse_mean": 2.5, "r2_mean": -0.2} for s, v in forest.items()}
    study_id = store_study(n_entries=12, results={"baselines": {"mean": mean, "rf_magpie": forest}})
    at = app_test()
    at.switch_page("pages/results.py")
    at.run()
    assert not at.exception, at.exception
    shown = at.dataframe[0].value
    assert shown.loc["complete", "random forest on Magpie"].startswith("0.010 ± 0.000 ★")
    assert shown.loc["complete", "training-set mean"] == "2.000 ± 0.000"
    metrics = at.dataframe[1].value
    assert metrics.loc["random forest on Magpie", "R² · complete"] == "0.990"
    expected = table1(study_predictions(study_id)).long.set_index(["subset", "mode"])
    assert metrics.loc["composition only", "RMSE · complete"] == f"{expected.loc[('all', 'composition'), 'rmse_mean']:.3f}"
    warnings = [w.value for w in at.warning]
    assert any(w.startswith("composition only, ensemble of 2 seeds (served) is not better than the random forest on "
                            "Magpie") for w in warnings)
    assert any(w.startswith("bimodal with augmentation, ensemble of 2 seeds (served) is not better than the random "
                            "forest") for w in warnings)


def test_each_mode_shows_its_served_ensemble_and_the_blend_with_the_forest(app_test):
    # the forest's stored test predictions per seed (entries 9..12 are the test rows of store_study's 12 entries)
    forest = {s: {"mae_mean": 0.5, "mae_std": 0.0, "rmse_mean": 0.6, "r2_mean": 0.1, "n": n}
              for s, n in (("all", 4), ("without_structure", 3), ("with_structure", 1))}
    study_id = store_study(n_entries=12, results={"baselines": {"mean": forest, "rf_magpie": forest}})
    predictions = study_predictions(study_id)
    test_ids = sorted(predictions.loc[predictions["split"] == "test", "entry_id"].unique())
    targets = predictions.drop_duplicates("entry_id").set_index("entry_id")["target"]
    rows = [{"seed": seed, "train_entry_ids": [], "test_entry_ids": [int(i) for i in test_ids],
             "predictions": {"rf_magpie": [float(targets[i]) + 1.0 for i in test_ids]}} for seed in (0, 1)]
    with session_scope() as session:
        study = session.get(Study, study_id)
        study.results = {**study.results, "baseline_rows": rows}
    at = app_test()
    at.switch_page("pages/results.py")
    at.run()
    assert not at.exception, at.exception
    shown = at.dataframe[0].value
    expected = table1(predictions, baseline_rows=rows).long.set_index(["subset", "mode"])
    for mode in ("composition", "bimodal-aug"):
        label = {"composition": "composition only", "bimodal-aug": "bimodal with augmentation"}[mode]
        served = expected.loc[("all", f"{mode}:ensemble"), "mae_mean"]
        blend = expected.loc[("all", f"{mode}:ensemble+forest"), "mae_mean"]
        assert shown.loc["complete", f"{label}, ensemble of 2 seeds (served)"].startswith(f"{served:.3f}")
        assert shown.loc["complete", f"{label} ensemble + forest (50/50)"].startswith(f"{blend:.3f}")
        # the blend is the mean of the ensemble and the forest (every forest prediction is the target + 1)
        ensemble = predictions[(predictions["mode"] == mode) & (predictions["split"] == "test")].groupby(
            "entry_id")["prediction"].mean()
        by_hand = (0.5 * ensemble + 0.5 * (targets[ensemble.index] + 1.0) - targets[ensemble.index]).abs().mean()
        assert blend == pytest.approx(by_hand)


@pytest.mark.parametrize(
    ("results", "line"),
    [
        ({"seed_protocol": "fixed-test"}, "Seeds share one test split; each seed draws its own validation rows."),
        ({"seed_protocol": "resplit"}, "Each seed draws its own split (training, validation and test rows)."),
        ({}, "Seeds share one split (the same training, validation and test rows): the study predates the choice."),
    ],
)
def test_the_page_says_what_the_seeds_share(app_test, results, line):
    store_study(n_entries=12, results=results)
    at = app_test()
    at.switch_page("pages/results.py")
    at.run()
    assert not at.exception, at.exception
    assert line in [caption.value for caption in at.caption]
