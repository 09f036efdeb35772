"""One composition key (issue 15, item 4): ingestion, the grouped split, the augmentation (eq. 13), pretraining and
the Magpie cache all use ``cosnet_core.formula.composition_key`` and agree on which formulas are the same
composition. Before, ingestion wrote ``"Li0.666667 O0.333333"``, the splits ``"Li:0.666667 O:0.333333"``,
pretraining ``"Li0.666667 O0.333333"`` in electronegativity order with ``%g`` digits, and the Magpie cache 8 digits."""

from __future__ import annotations

import pandas as pd
import pytest
from pymatgen.core import Composition, Species

from cosnet_core import data, descriptors, ingest, pretrain, splits
from cosnet_core.formula import composition_key, parse_formula

SAME = ["Li2O", "OLi2", "Li4O2", "Li0.666667O0.333333", "(Li2)O"]
FRACTIONAL = "Li6.05P0.95Si0.05S5Br"


def test_the_key_is_canonical_text_that_reads_back_as_the_same_composition() -> None:
    assert composition_key(parse_formula("OLi2")) == "Li0.666667 O0.333333"
    assert {composition_key(parse_formula(text)) for text in SAME} == {"Li0.666667 O0.333333"}
    key = composition_key(parse_formula(FRACTIONAL))
    assert composition_key(Composition({Species("Li", 1): 4, Species("O", -2): 2})) == "Li0.666667 O0.333333"
    assert key == "Br0.076628 Li0.463602 P0.072797 S0.383142 Si0.003831"
    assert key != composition_key(parse_formula("Li6PS5Br"))
    assert Composition(key).almost_equals(parse_formula(FRACTIONAL).fractional_composition, rtol=0, atol=1e-6)
    assert composition_key(Composition()) == ""


def test_every_module_uses_the_one_definition() -> None:
    assert splits.composition_key is composition_key
    assert data.composition_key is composition_key
    assert not hasattr(ingest, "_composition_key")
    assert not hasattr(descriptors, "_key")


def test_ingestion_stores_the_same_key_as_the_split_groups_by() -> None:
    table = "id,formula,target\n" + "".join(f"r{i},{text},{i}\n" for i, text in enumerate([*SAME, FRACTIONAL, "Li6PS5Br"]))
    raw = ingest.read_table(table.encode(), "t.csv")
    result = ingest.clean_table(raw, ingest.suggest_mapping(list(raw.frame.columns)), ingest.CleaningOptions())
    stored = list(result.rows["composition_key"])
    assert stored == [composition_key(parse_formula(text)) for text in [*SAME, FRACTIONAL, "Li6PS5Br"]]
    assert result.summary.n_distinct_compositions == 3


def test_pretraining_merges_rows_by_the_key(tmp_path) -> None:
    path = tmp_path / "task.csv"
    pd.DataFrame({"formula": [*SAME, FRACTIONAL], "target": [1.0, 2.0, 3.0, 4.0, 5.0, 7.0]}).to_csv(path, index=False)
    series = pretrain.read_task(pretrain.TaskTable("t", path))
    assert series.to_dict() == pytest.approx(
        {"Li0.666667 O0.333333": 3.0, composition_key(parse_formula(FRACTIONAL)): 7.0}
    )
