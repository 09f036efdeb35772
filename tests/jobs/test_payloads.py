"""Typed payloads (issue 17, item 4): jobs.payloads' models accept, default and refuse exactly as the hand validators
did (jobs.training.validate_study_payload, jobs.matching.validate_match_payload before the switch, kept verbatim in
tests/jobs/legacy_payload_validators.py) on a table of payloads."""

from __future__ import annotations

import pytest

from jobs import payloads
from tests.jobs import legacy_payload_validators as legacy

STUDIES = [
    {"dataset_version_id": "4"},
    {"dataset_version_id": 3.0, "name": "  a study  ", "modes": ["bimodal", "composition", "bimodal"]},
    {"dataset_version_id": 1, "seeds": [3, 1], "structure_fractions": [0.5, 0.0, 0.5], "train": {"epochs": 3}},
    {"dataset_version_id": 1, "seeds": None, "modes": None, "split": None, "search": None, "train": None},
    {"dataset_version_id": 1, "train": {"descriptors": "magpie", "init_from": "some-encoder"}},
    {"dataset_version_id": 1, "preset": "authors"},
    {"dataset_version_id": 1, "preset": "authors", "train": {"epochs": 7}},
    {"dataset_version_id": 1, "device": "GPU", "name": "x" * 300},
    {"dataset_version_id": 1, "split": {"method": "grouped", "fractions": [0.5, 0.25, 0.25], "seed": "2",
                                        "protocol": "resplit", "extra": 1}},
    {"dataset_version_id": 1, "search": {"enabled": 1, "num_samples": "4", "full_grid": True}},
    {"dataset_version_id": 1, "train": {"epochs": 30}, "search": {"enabled": True}},
    {"dataset_version_id": 1, "search": {"enabled": True, "epochs": 5, "grace_period": 1}},
    {"dataset_version_id": 1, "unknown_key": "ignored"},
    # refused
    {},
    {"dataset_version_id": "four"},
    {"dataset_version_id": 1, "modes": ["trimodal"]},
    {"dataset_version_id": 1, "modes": "bimodal"},
    {"dataset_version_id": 1, "seeds": [1, 1]},
    {"dataset_version_id": 1, "seeds": [-1]},
    {"dataset_version_id": 1, "seeds": ["a"]},
    {"dataset_version_id": 1, "seeds": []},
    {"dataset_version_id": 1, "preset": "fastest"},
    {"dataset_version_id": 1, "preset": "fastest", "train": {"learning_rate": 1}},
    {"dataset_version_id": 1, "train": {"learning_rate": 0.1}},
    {"dataset_version_id": 1, "train": {"lr": -1}},
    {"dataset_version_id": 1, "train": {"descriptors": "roost"}},
    {"dataset_version_id": 1, "train": {"init_from": "roost64-dft4", "hidden_dim": 8}},
    {"dataset_version_id": 1, "device": "tpu"},
    {"dataset_version_id": 1, "split": {"method": "kfold"}},
    {"dataset_version_id": 1, "split": {"fractions": [0.8, 0.0, 0.2]}},
    {"dataset_version_id": 1, "split": {"fractions": [0.5, 0.5]}},
    {"dataset_version_id": 1, "split": {"protocol": "same"}},
    {"dataset_version_id": 1, "structure_fractions": [1.5]},
    {"dataset_version_id": 1, "search": {"enabled": True, "num_samples": 0}},
    {"dataset_version_id": 1, "train": {"epochs": 0}, "search": {"enabled": True}},
    {"modes": ["x"], "seeds": [2, 2], "device": "tpu", "split": {"method": "kfold", "protocol": "same"},
     "structure_fractions": [-0.1], "search": {"enabled": True, "epochs": 0}},  # every problem, in order
]

MATCHES = [
    {"dataset_version_id": 1},
    {"dataset_version_id": 2, "sources": ["dataset"], "auto_accept": None, "max_candidates": 3,
     "include_reviewed": 1, "created_by": "ana"},
    {"dataset_version_id": 2, "sources": [], "auto_accept": "never", "created_by": ""},
    {"dataset_version_id": 2, "max_candidates": True},
    # refused
    {},
    {"dataset_version_id": "1"},
    {"dataset_version_id": True},
    {"dataset_version_id": 1, "sources": ["icsd"]},
    {"dataset_version_id": 1, "auto_accept": "always"},
    {"dataset_version_id": 1, "max_candidates": 0},
    {"dataset_version_id": 1, "max_candidates": 2.5},
    {"dataset_version_id": "x", "sources": ["icsd"], "max_candidates": 0},  # the first problem only
]


def _outcome(validate, payload):
    try:
        return "ok", validate(payload)
    except ValueError as error:
        return type(error).__name__, str(error)


@pytest.mark.parametrize("payload", STUDIES, ids=range(len(STUDIES)))
def test_study_model_matches_the_hand_validator(payload):
    old = _outcome(legacy.validate_study_payload, payload)
    new = _outcome(lambda p: payloads.validate_study(p).model_dump(), payload)
    assert new == old
    if old[0] == "ok":
        assert isinstance(payloads.validate_study(payload), payloads.StudyPayload)


def test_study_table_has_both_outcomes_and_reports_every_problem():
    outcomes = [_outcome(legacy.validate_study_payload, p)[0] for p in STUDIES]
    assert outcomes.count("ok") == 13 and outcomes.count("ValueError") == len(STUDIES) - 13
    message = _outcome(payloads.validate_study, STUDIES[-1])[1]
    assert message.startswith("invalid study: dataset_version_id is missing or not an integer; modes must be")
    assert message.count(";") >= 6 and message.endswith("search needs num_samples ≥ 1 and epochs ≥ 1")


def test_study_defaults():
    study = payloads.validate_study({"dataset_version_id": "4"})
    assert study.modes == ["composition", "bimodal-aug", "bimodal"] and study.seeds == [0, 1, 2, 3, 4]
    assert study.split.model_dump() == {"method": "random", "fractions": [0.6, 0.2, 0.2], "seed": 0,
                                        "protocol": "fixed-test"}
    assert study.search.epochs == 50 and study.device == "auto" and study.preset is None


def test_the_jobs_validate_with_the_models():
    from jobs import matching, training

    for validate, table, model in ((training.validate_study_payload, STUDIES, payloads.validate_study),
                                   (matching.validate_match_payload, MATCHES, payloads.validate_match)):
        for payload in table:
            assert _outcome(validate, payload) == _outcome(lambda p, m=model: m(p).model_dump(), payload)


@pytest.mark.parametrize("payload", MATCHES, ids=range(len(MATCHES)))
def test_match_model_matches_the_hand_validator(payload):
    old = _outcome(legacy.validate_match_payload, payload)
    new = _outcome(lambda p: payloads.validate_match(p).model_dump(), payload)
    assert new == old
    assert [c[0] for c in (old, new)] in (["ok", "ok"], ["MatchJobError", "MatchJobError"])
