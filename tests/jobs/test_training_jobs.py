"""Study payloads, run expansion, time estimate, inline studies (Figure 2) and the Ray Tune search."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

import jobs
from db.engine import session_scope
from db.models import Job, Prediction, Run, Study
from jobs import store
from jobs.training import (
    run_specs,
    split_for_run,
    training_samples,
    validate_study_payload,
)
from tests.jobs.conftest import TINY_TRAIN, toy_target, wait_until


def test_payload_defaults_are_the_papers_protocol():
    payload = validate_study_payload({"dataset_version_id": "4"})
    assert payload["dataset_version_id"] == 4
    assert payload["modes"] == ["composition", "bimodal-aug", "bimodal"]
    assert payload["seeds"] == [0, 1, 2, 3, 4]
    assert payload["split"] == {"method": "random", "fractions": [0.6, 0.2, 0.2], "seed": 0, "protocol": "fixed-test"}
    assert payload["device"] == "auto" and payload["search"]["enabled"] is False
    specs = run_specs(payload)
    assert len(specs) == 15
    assert {(s["mode"], s["seed"]) for s in specs} == {(m, s) for m in payload["modes"] for s in range(5)}
    assert all(s["config"]["epochs"] == 200 and s["config"]["lr"] == 0.01 for s in specs)


def test_figure2_adds_bimodal_runs_per_kept_share_and_search_overrides_apply_per_mode():
    payload = validate_study_payload(
        {"dataset_version_id": 1, "seeds": [0, 1], "structure_fractions": [0.5, 0.0], "train": {"epochs": 3}}
    )
    specs = run_specs(payload, {"bimodal": {"lr": 1e-3, "fusion": "concat"}})
    assert len(specs) == 3 * 2 + 2 * 2 * 2  # main runs + (bimodal-aug, bimodal) x seeds x shares
    figure2 = [s for s in specs if s["structure_fraction"] is not None]
    assert {s["mode"] for s in figure2} == {"bimodal-aug", "bimodal"}
    assert sorted({s["structure_fraction"] for s in figure2}) == [0.0, 0.5]
    bimodal = [s for s in specs if s["mode"] == "bimodal"]
    assert all(s["config"]["lr"] == 1e-3 and s["config"]["fusion"] == "concat" for s in bimodal)
    assert all(s["config"]["lr"] == 1e-2 for s in specs if s["mode"] != "bimodal")


def test_descriptors_and_pretrained_encoder_are_recorded_with_each_run():
    from cosnet_core.train import TrainConfig

    payload = validate_study_payload(
        {"dataset_version_id": 1, "seeds": [0, 1], "train": {"descriptors": "magpie", "init_from": "some-encoder"}}
    )
    specs = run_specs(payload)
    assert all(s["config"]["descriptors"] == "magpie" and s["config"]["init_from"] == "some-encoder" for s in specs)
    defaults = run_specs(validate_study_payload({"dataset_version_id": 1}))
    assert {(s["config"]["descriptors"], s["config"]["init_from"]) for s in defaults} == {
        (TrainConfig().descriptors, TrainConfig().init_from)
    }
    with pytest.raises(ValueError, match="descriptors 'roost' is not"):
        validate_study_payload({"dataset_version_id": 1, "train": {"descriptors": "roost"}})


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({}, "dataset_version_id is missing"),
        ({"dataset_version_id": 1, "modes": ["trimodal"]}, "modes must be a non-empty subset"),
        ({"dataset_version_id": 1, "seeds": [1, 1]}, "seeds must be distinct"),
        ({"dataset_version_id": 1, "train": {"learning_rate": 0.1}}, "unknown training settings ['learning_rate']"),
        ({"dataset_version_id": 1, "train": {"lr": -1}}, "lr must be > 0"),
        ({"dataset_version_id": 1, "device": "tpu"}, "device must be one of"),
        ({"dataset_version_id": 1, "split": {"method": "kfold"}}, "split method must be one of"),
        ({"dataset_version_id": 1, "split": {"fractions": [0.8, 0.0, 0.2]}}, "validation share > 0"),
        ({"dataset_version_id": 1, "split": {"protocol": "same"}}, "split protocol must be one of fixed-test, resplit"),
        ({"dataset_version_id": 1, "structure_fractions": [1.5]}, "structure_fractions"),
        ({"dataset_version_id": 1, "train": {"init_from": "roost64-dft4", "hidden_dim": 8}},
         "the pretrained encoder roost64-dft4 does not fit this network (encoder width 8"),
    ],
)
def test_bad_payloads_are_refused_before_anything_is_written(db_url, payload, fragment):
    with pytest.raises(ValueError, match="invalid study") as error:
        jobs.submit("study", payload)
    assert fragment in str(error.value)
    with session_scope(db_url) as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 0


@pytest.mark.parametrize("protocol", ["fixed-test", "resplit"])
@pytest.mark.parametrize("method", ["random", "grouped"])
def test_the_cli_and_the_jobs_draw_the_same_split_for_each_seed(method, protocol):
    """One definition (splits.split_for_seed): the command line's _split and the jobs' split_for_run agree."""
    import argparse

    from cosnet_core.cli import _split
    from tests.cosnet_core.test_splits import repeated_rows

    rows = repeated_rows()
    args = argparse.Namespace(split_col=None, split=method, split_seed=2, seed_protocol=protocol,
                              val_fraction=0.2, test_fraction=0.2)
    payload = validate_study_payload(
        {"dataset_version_id": 1, "split": {"method": method, "seed": 2, "protocol": protocol}}
    )
    tests = set()
    for seed in range(3):
        cli, app = _split(rows, args, seed), split_for_run(rows, payload["split"], seed)
        for part in ("train", "val", "test"):
            assert [s.id for s in getattr(cli, part)] == [s.id for s in getattr(app, part)]
        tests.add(frozenset(s.id for s in app.test))
    assert (len(tests) == 1) == (protocol == "fixed-test")


def test_study_baselines_are_fitted_on_each_seeds_training_rows(db_url, toy_version):
    from jobs.training import study_baselines

    payload = validate_study_payload({"dataset_version_id": toy_version, "seeds": [0, 1]})
    found = study_baselines(db_url, payload)
    assert found["seed_protocol"] == "fixed-test" and [r["seed"] for r in found["baseline_rows"]] == [0, 1]
    samples = training_samples(db_url, toy_version)
    for rows in found["baseline_rows"]:
        split = split_for_run(samples, payload["split"], rows["seed"])
        assert rows["train_entry_ids"] == [int(s.id) for s in split.train]
        assert rows["test_entry_ids"] == [int(s.id) for s in split.test]
        train_mean = sum(s.target for s in split.train) / len(split.train)
        assert rows["predictions"]["mean"] == pytest.approx([train_mean] * len(split.test))
    first, second = found["baseline_rows"]
    assert first["test_entry_ids"] == second["test_entry_ids"]  # fixed-test: one test split
    assert first["train_entry_ids"] != second["train_entry_ids"]  # each seed its own validation rows
    assert found["baselines"]["mean"]["all"]["n"] == len(first["test_entry_ids"])


def test_unknown_kind_is_refused(db_url):
    with pytest.raises(ValueError, match="unknown job kind 'paint'"):
        jobs.submit("paint", {})


def test_training_samples_carry_entry_ids_targets_and_accepted_structures(db_url, toy_version):
    samples = training_samples(db_url, toy_version)
    assert len(samples) == 30  # the rejected row is left out
    with_structure = [s for s in samples if s.structure is not None]
    assert len(with_structure) == 10
    assert samples[0].formula == "LiF" and samples[0].structure.composition.reduced_formula == "LiF"
    assert all(s.structure_id is not None for s in with_structure)
    assert samples[1].formula == "LiCl" and samples[1].target == pytest.approx(toy_target("Li", "Cl"))
    assert samples[1].structure is None and samples[3].structure is not None  # every third row


@pytest.mark.slow
def test_inline_study_with_figure2_hides_structures_and_summarises(db_url, toy_version):
    payload = {
        "dataset_version_id": toy_version, "modes": ["bimodal"], "seeds": [0], "train": TINY_TRAIN,
        "structure_fractions": [0.0],
    }
    job_id = jobs.submit("study", payload)
    assert jobs.run_inline(job_id) == "succeeded", store.job_row(db_url, job_id)["error"]
    with session_scope(db_url) as session:
        study = session.scalar(select(Study))
        runs = session.scalars(select(Run).order_by(Run.id)).all()
        assert [(r.mode, r.structure_fraction, r.status) for r in runs] == [
            ("bimodal", None, "succeeded"), ("bimodal", 0.0, "succeeded"),
        ]
        hidden = session.scalars(select(Prediction).where(Prediction.run_id == runs[1].id)).all()
        assert len(hidden) == 30 and not any(p.has_structure for p in hidden)  # no structure kept
        assert all(p.composition_weight == pytest.approx(1.0) for p in hidden)
        assert all(v is None for v in runs[1].structure_decisions.values())
        figure2 = study.results["figure2"]
        baselines, (rows,) = study.results["baselines"], study.results["baseline_rows"]
        assert study.results["seed_protocol"] == "fixed-test" and rows["seed"] == 0
        model_rows = session.scalars(select(Prediction).where(Prediction.run_id == runs[0].id)).all()
    # the baselines were fitted on exactly the seed's training rows, and scored on exactly its test rows
    by_split = {part: sorted(p.entry_id for p in model_rows if p.split == part) for part in ("train", "test")}
    assert sorted(rows["train_entry_ids"]) == by_split["train"] and sorted(rows["test_entry_ids"]) == by_split["test"]
    targets = {p.entry_id: p.target for p in model_rows}
    train_mean = sum(targets[i] for i in by_split["train"]) / len(by_split["train"])
    assert rows["predictions"]["mean"] == pytest.approx([train_mean] * len(by_split["test"]))
    by_hand = sum(abs(targets[i] - train_mean) for i in by_split["test"]) / len(by_split["test"])
    assert baselines["mean"]["all"]["mae_mean"] == pytest.approx(by_hand)
    for name in ("mean", "rf_magpie"):
        assert set(baselines[name]) == {"all", "without_structure", "with_structure"}
        for subset, entry in baselines[name].items():
            assert {"mae_mean", "mae_std", "rmse_mean", "r2_mean", "n"} <= set(entry)
            assert entry["n"] == runs[0].test_metrics[subset]["n"]
    assert set(study.results["table1"]["bimodal"]["all"]) >= {"mae_mean", "mae_std", "rmse_mean", "r2_mean", "n"}
    # one seed: its ensemble is the run itself; the blend averages it with the forest of the same rows
    ensemble = study.results["ensemble"]["bimodal"]["all"]
    assert ensemble["mae"] == pytest.approx(runs[0].test_metrics["all"]["mae"]) and ensemble["members"] == 1
    model = {p.entry_id: p.value for p in model_rows if p.split == "test"}
    forest = dict(zip(rows["test_entry_ids"], rows["predictions"]["rf_magpie"], strict=True))
    blend = [abs(0.5 * model[i] + 0.5 * forest[i] - targets[i]) for i in by_split["test"]]
    assert study.results["ensemble_with_forest"]["bimodal"]["all"]["mae"] == pytest.approx(sum(blend) / len(blend))
    assert [(row["structure_fraction"], row["mode"]) for row in figure2] == [(0.0, "bimodal"), (1.0, "bimodal")]
    assert figure2[0]["test_mae_mean"] == pytest.approx(runs[1].test_metrics["all"]["mae"])
    assert figure2[1]["test_mae_mean"] == pytest.approx(runs[0].test_metrics["all"]["mae"])
    # the time estimate now uses this installation's own speed, for the same encoder width only
    rate = store.median_epoch_seconds_per_row(db_url, hidden_dim=TINY_TRAIN["hidden_dim"])
    assert rate is not None and rate > 0
    assert store.median_epoch_seconds_per_row(db_url, hidden_dim=64) is None


@pytest.mark.slow
def test_search_with_ray_tune_picks_a_table3_point_and_reruns_it(executor_thread, db_url, toy_version):
    """The search runs inside the study's coordinator task on Ray, its trials as further Ray tasks."""
    from cosnet_core.hparams import SEARCH_SPACE

    payload = {
        "dataset_version_id": toy_version, "modes": ["composition"], "seeds": [0], "train": TINY_TRAIN,
        "search": {"enabled": True, "num_samples": 2, "epochs": 2, "grace_period": 1},
    }
    job_id = jobs.submit("study", payload)
    wait_until(lambda: store.job_row(db_url, job_id)["status"] in store.TERMINAL, 300, "the study with a search")
    assert store.job_row(db_url, job_id)["status"] == "succeeded", store.job_row(db_url, job_id)["error"]
    with session_scope(db_url) as session:
        study = session.scalar(select(Study))
        (run,) = session.scalars(select(Run)).all()
        found = study.config["search_results"]["composition"]
        assert found["trials"] == 2 and all(1 <= e <= 2 for e in found["epochs_per_trial"])  # ASHA may stop one
        assert all(found["best_config"][name] in values for name, values in SEARCH_SPACE.items())
        assert all(run.config[name] == value for name, value in found["best_config"].items())
        assert run.status == "succeeded"
