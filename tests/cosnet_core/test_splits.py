"""Splits: the paper's random 60/20/20, grouped by composition, and the user's column."""

from __future__ import annotations

import dataclasses

import pytest
from pymatgen.core import Composition

from cosnet_core.data import Sample
from cosnet_core.splits import (
    SplitError,
    column_split,
    composition_key,
    grouped_split,
    random_split,
    recommended_split,
    split_for_seed,
    split_samples,
)


def repeated_rows() -> list[Sample]:
    """30 rows over 10 compositions, each composition three times (written in different ways)."""
    formulas = ["LiF", "NaCl", "KBr", "MgO", "CaS", "SrO", "BaF2", "Li2O", "Na2S", "AlN"]
    rows = []
    for repeat in range(3):
        for formula in formulas:
            composition = Composition(formula) * (repeat + 1)  # LiF, Li2F2, Li3F3: one composition
            rows.append(Sample(id=f"{formula}-{repeat}", composition=composition, target=float(repeat)))
    return rows


def test_composition_key_ignores_scale_and_order() -> None:
    assert composition_key(Composition("Li2O")) == composition_key(Composition("OLi2"))
    assert composition_key(Composition("Li4O2")) == composition_key(Composition("Li2O"))
    assert composition_key(Composition("Li6.05P0.95Si0.05S5Br")) != composition_key(Composition("Li6PS5Br"))


def test_random_split_is_60_20_20_and_reproducible() -> None:
    rows = repeated_rows()
    split = random_split(rows, seed=1)
    assert split.sizes() == (18, 6, 6)
    ids = [{s.id for s in part} for part in (split.train, split.val, split.test)]
    assert set().union(*ids) == {s.id for s in rows} and sum(map(len, ids)) == 30
    again = random_split(rows, seed=1)
    assert [s.id for s in again.test] == [s.id for s in split.test]
    assert [s.id for s in random_split(rows, seed=2).test] != [s.id for s in split.test]


def test_grouped_split_keeps_each_composition_in_one_part() -> None:
    rows = repeated_rows()
    for seed in range(5):
        split = grouped_split(rows, seed=seed)
        keys = [{composition_key(s.composition) for s in part} for part in (split.train, split.val, split.test)]
        assert not keys[0] & keys[1] and not keys[0] & keys[2] and not keys[1] & keys[2]
        assert split.sizes() == (18, 6, 6)  # 3 rows per composition: 6/2/2 compositions
        assert sum(split.sizes()) == 30


def test_column_split_uses_labels_and_carves_val_from_train_grouped() -> None:
    rows = repeated_rows()
    labelled = [dataclasses.replace(s, split="TEST" if s.id.startswith(("LiF", "NaCl")) else " train ") for s in rows]
    split = column_split(labelled, val_fraction=0.25, seed=0)
    assert {s.id.split("-")[0] for s in split.test} == {"LiF", "NaCl"}
    assert len(split.test) == 6
    assert len(split.val) == 6 and len(split.train) == 18  # 2 of the 8 training compositions moved to val
    train_keys = {composition_key(s.composition) for s in split.train}
    assert not train_keys & {composition_key(s.composition) for s in split.val}


def test_column_split_keeps_given_validation_rows() -> None:
    rows = [dataclasses.replace(s, split=["train", "validation", "test"][i % 3]) for i, s in enumerate(repeated_rows())]
    assert column_split(rows).sizes() == (10, 10, 10)


def test_bad_split_label_names_the_row() -> None:
    rows = [dataclasses.replace(s, split="train") for s in repeated_rows()]
    rows[4] = dataclasses.replace(rows[4], split="tset")
    with pytest.raises(SplitError, match=r"row 5 \(id 'CaS-0'\).*'tset'"):
        column_split(rows)
    with pytest.raises(SplitError, match="no 'train'"):
        column_split([dataclasses.replace(s, split="test") for s in repeated_rows()])


def test_split_samples_dispatch_and_errors() -> None:
    rows = repeated_rows()
    assert split_samples(rows, "grouped", seed=0).sizes() == grouped_split(rows, seed=0).sizes()
    with pytest.raises(SplitError, match="unknown split method"):
        split_samples(rows, "stratified")
    with pytest.raises(SplitError, match="sum"):
        random_split(rows, fractions=(0.5, 0.5, 0.5))
    with pytest.raises(SplitError, match="distinct compositions"):
        grouped_split(rows[:1] * 5)


def test_recommended_split_is_grouped_when_compositions_repeat() -> None:
    method, reason = recommended_split(140, 56)
    assert method == "grouped" and reason.startswith("compositions repeat (140 rows, 56 distinct compositions)")
    assert recommended_split(50, 50)[0] == "random"
    method, reason = recommended_split(10, 2)  # too few compositions to group into three parts
    assert method == "random" and "too few" in reason


def _ids(split) -> tuple[set[str], set[str], set[str]]:
    return tuple({s.id for s in part} for part in (split.train, split.val, split.test))


@pytest.mark.parametrize("method", ["random", "grouped"])
def test_fixed_test_keeps_the_test_rows_and_redraws_validation_per_seed(method: str) -> None:
    rows = repeated_rows()
    splits = [split_for_seed(rows, method, split_seed=3, seed=seed) for seed in range(4)]
    parts = [_ids(split) for split in splits]
    assert all(test == parts[0][2] for _, _, test in parts)  # one test split for every seed
    assert len({frozenset(val) for _, val, _ in parts}) > 1  # each seed its own validation rows
    for train, val, test in parts:
        assert not train & val and not train & test and not val & test
        assert train | val | test == {s.id for s in rows}
    assert [len(p) for p in (splits[0].train, splits[0].val, splits[0].test)] == [18, 6, 6]
    # the test rows are those of the split_seed's full split; together the seeds saw every non-test row
    assert parts[0][2] == {s.id for s in split_samples(rows, method, seed=3).test}
    assert set().union(*(train | val for train, val, _ in parts)) == {s.id for s in rows} - parts[0][2]
    if method == "grouped":  # validation is drawn by composition too
        for split in splits:
            keys = [{composition_key(s.composition) for s in part} for part in (split.train, split.val, split.test)]
            assert not keys[0] & keys[1] and not keys[0] & keys[2] and not keys[1] & keys[2]
    assert _ids(split_for_seed(rows, method, split_seed=4, seed=0))[2] != parts[0][2]


@pytest.mark.parametrize("method", ["random", "grouped"])
def test_resplit_redraws_the_test_rows_per_seed(method: str) -> None:
    rows = repeated_rows()
    tests = [_ids(split_for_seed(rows, method, split_seed=0, seed=seed, protocol="resplit"))[2] for seed in range(4)]
    assert len({frozenset(t) for t in tests}) > 1
    # resplit is the command line's former behaviour: the whole split drawn with the seed
    assert tests[1] == {s.id for s in split_samples(rows, method, seed=1).test}


def test_column_split_keeps_its_labels_under_both_protocols() -> None:
    rows = repeated_rows()
    labelled = [dataclasses.replace(s, split="test" if s.id.startswith(("LiF", "NaCl")) else "train") for s in rows]
    for protocol in ("fixed-test", "resplit"):
        splits = [split_for_seed(labelled, "column", seed=seed, protocol=protocol) for seed in range(3)]
        assert all({s.id.split("-")[0] for s in split.test} == {"LiF", "NaCl"} for split in splits)
        assert len({frozenset(_ids(split)[1]) for split in splits}) > 1  # val carved per seed from train
        assert all(split.sizes() == (18, 6, 6) for split in splits)  # 0.2 / (0.6 + 0.2) of the 24 training rows
    given = [dataclasses.replace(s, split=["train", "val", "test"][i % 3]) for i, s in enumerate(rows)]
    assert _ids(split_for_seed(given, "column", seed=0)) == _ids(split_for_seed(given, "column", seed=5))


def test_split_for_seed_refuses_unknown_protocols_and_methods() -> None:
    with pytest.raises(SplitError, match="unknown seed protocol 'same'"):
        split_for_seed(repeated_rows(), "random", protocol="same")
    with pytest.raises(SplitError, match="unknown split method"):
        split_for_seed(repeated_rows(), "kfold")
