"""A version whose bounds are kept (Datasets page: "keep them as upper bounds") gives the study's runs samples that
carry the bound's sign, and the study's baselines neither fit nor score them (issue 15 item 7, issue 16 item 4)."""

from __future__ import annotations

from cosnet_core.ingest import CleaningOptions, ColumnMapping, clean_table, read_table
from db import datasets as store
from jobs.training import study_baselines, training_samples, validate_study_payload

FORMULAS = ["LiCl", "NaCl", "KCl", "LiF", "NaF", "KF", "LiBr", "NaBr", "KBr", "LiI", "NaI", "KI", "Li2O", "Na2O",
            "K2O", "Li2S", "Na2S", "K2S", "MgO", "CaO"]


def test_kept_bounds_reach_the_runs_with_their_sign_and_the_baselines_skip_them(app_env):
    url = f"sqlite:///{app_env / 'cosnet.db'}"
    lines = ["formula,sigma,upper_bound"]
    for i, formula in enumerate(FORMULAS):
        lines.append(f"{formula},{10.0 ** -(3 + i % 5)},{'yes' if i % 4 == 0 else 'no'}")
    raw = read_table(("\n".join(lines) + "\n").encode(), "flags.csv")
    mapping = ColumnMapping("formula", "sigma", censored_flag="upper_bound")
    result = clean_table(raw, mapping, CleaningOptions(log10=True, censored="include_at_bound"))
    version = store.create_dataset(url, result, name="flags").version_id

    samples = training_samples(url, version)
    bounds = [s for s in samples if s.censored]
    assert len(samples) == 20 and len(bounds) == 5
    assert {s.censored for s in bounds} == {"<"}
    assert {s.formula: s.target for s in bounds} == {"LiCl": -3.0, "NaF": -7.0, "KBr": -6.0, "Li2O": -5.0,
                                                     "Na2S": -4.0}  # log10 of each bound

    payload = validate_study_payload({"dataset_version_id": version, "seeds": [0], "modes": ["composition"],
                                      "train": {"censored": "drop", "nonnegative": "off", "epochs": 1}})
    assert payload["train"]["censored"] == "drop" and payload["train"]["nonnegative"] == "off"
    fitted = study_baselines(url, payload)
    row = fitted["baseline_rows"][0]
    bound_ids = {int(s.id) for s in bounds}
    assert not bound_ids & set(row["train_entry_ids"]) and not bound_ids & set(row["test_entry_ids"])
    assert len(row["train_entry_ids"]) + len(row["test_entry_ids"]) < 15  # validation rows are not fitted either
