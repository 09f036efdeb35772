"""Samples, the augmentation of eq. (13), the bimodal dataset, collation and loaders."""

from __future__ import annotations

import math

import pytest
import torch
from pymatgen.core import Structure

from cosnet_core.composition import FormulaError, parse_formula
from cosnet_core.data import (
    BimodalDataset,
    Sample,
    augment_single_structure_rows,
    collate_bimodal,
    make_loader,
)
from cosnet_core.embeddings import load_element_embedding
from cosnet_core.structure import CELL_DESCRIPTOR_NAMES, GraphCache, StructureError
from tests.cosnet_core.conftest import rocksalt_cell


def _nacl(a: float) -> Structure:
    return rocksalt_cell(a)


def _licl() -> Structure:
    return rocksalt_cell(5.13, "Li")


@pytest.fixture()
def samples() -> list[Sample]:
    return [
        Sample("licl", parse_formula("LiCl"), 1.0, _licl(), "licl.cif", "train", "LiCl"),
        Sample("nacl-1", parse_formula("NaCl"), 2.0, _nacl(5.64), "nacl-a.cif", "train", "NaCl"),
        Sample("nacl-2", parse_formula("Na2Cl2"), 2.5, _nacl(5.50), "nacl-b.cif", "train", "Na2Cl2"),
        Sample("fe2o3", parse_formula("Fe2O3"), 3.0, None, None, "train", "Fe2O3"),
        Sample("unknown", parse_formula("LiF"), None, None, None, "test", "LiF"),
    ]


def test_augmentation_of_eq_13(samples):
    augmented = augment_single_structure_rows(samples)
    assert augmented[: len(samples)] == samples
    extra = augmented[len(samples) :]
    # LiCl has one structure → one composition-only copy; NaCl has two distinct structures → none;
    # the composition-only rows get none.
    assert [sample.id for sample in extra] == ["licl#aug"]
    copy = extra[0]
    assert copy.structure is None and copy.structure_id is None
    assert copy.target == 1.0 and copy.composition == samples[0].composition and copy.split == "train"
    assert samples[0].structure is not None  # the original row is untouched


def test_augmentation_counts_one_shared_structure_once():
    structure = _licl()
    rows = [
        Sample("a", parse_formula("LiCl"), 1.0, structure, "licl.cif"),
        Sample("b", parse_formula("Li2Cl2"), 1.2, structure, "licl.cif"),
    ]
    augmented = augment_single_structure_rows(rows)
    assert [sample.id for sample in augmented] == ["a", "b", "a#aug", "b#aug"]
    # without ids, distinct structures are told apart by content
    rows = [
        Sample("a", parse_formula("NaCl"), 1.0, _nacl(5.6)),
        Sample("b", parse_formula("NaCl"), 1.0, _nacl(5.7)),
    ]
    assert len(augment_single_structure_rows(rows)) == 2


def test_collate_fields(samples, embedding):
    dataset = BimodalDataset(samples, embedding)
    batch = collate_bimodal([dataset[i] for i in (3, 0, 4, 2)])
    assert len(batch) == 4
    assert batch.ids == ["fe2o3", "licl", "unknown", "nacl-2"]
    assert batch.presence.tolist() == [0.0, 1.0, 0.0, 1.0]
    assert batch.structure_rows.tolist() == [1, 3]
    assert batch.structure.num_graphs == 2
    assert batch.structure.num_nodes == 16
    assert batch.composition.num_graphs == 4
    assert batch.target[:2].tolist() == [3.0, 1.0] and math.isnan(float(batch.target[2]))
    assert batch.structure.cell.shape == (2, len(CELL_DESCRIPTOR_NAMES))
    only_compositions = collate_bimodal([dataset[3], dataset[4]])
    assert only_compositions.structure is None
    assert only_compositions.structure_rows.tolist() == []
    moved = batch.to("cpu")
    assert moved.ids == batch.ids and torch.equal(moved.presence, batch.presence)


def test_identical_inputs_share_graphs(samples, embedding):
    samples.append(Sample("licl-again", parse_formula("Li2Cl2"), 1.1, _licl()))
    dataset = BimodalDataset(samples, embedding)
    assert dataset[5].composition is dataset[0].composition
    assert dataset[5].structure is dataset[0].structure


def test_cell_descriptor_stats(samples, embedding):
    mean, std = BimodalDataset(samples, embedding).cell_descriptor_stats()
    names = list(CELL_DESCRIPTOR_NAMES)
    a = [5.13 / math.sqrt(2), 5.64 / math.sqrt(2), 5.50 / math.sqrt(2)]
    assert float(mean[names.index("a")]) == pytest.approx(sum(a) / 3, rel=1e-5)
    assert float(std[names.index("a")]) == pytest.approx(torch.tensor(a).std(unbiased=False).item(), rel=1e-4)
    assert float(std[names.index("space_group_number")]) == 1.0  # constant column
    assert float(mean[names.index("space_group_number")]) == 225.0
    no_structures = BimodalDataset([samples[3]], embedding).cell_descriptor_stats()
    assert torch.equal(no_structures[1], torch.ones(len(names)))


def test_loader_is_deterministic_for_a_seed(samples, embedding):
    dataset = BimodalDataset(samples, embedding, cache=None)

    def order(seed: int) -> list[str]:
        return [i for batch in make_loader(dataset, batch_size=2, shuffle=True, seed=seed) for i in batch.ids]

    assert order(3) == order(3)
    assert sorted(order(3)) == sorted(sample.id for sample in samples)
    plain = [i for batch in make_loader(dataset, batch_size=2) for i in batch.ids]
    assert plain == [sample.id for sample in samples]


def test_dataset_uses_the_graph_cache(samples, embedding, tmp_path):
    BimodalDataset(samples, embedding, cache=GraphCache(tmp_path))
    assert len(list(tmp_path.glob("*.pt"))) == 3


def test_bad_rows_are_named(samples, embedding):
    bad = Sample("row-7", parse_formula("Am2O3"), 1.0, formula="Am2O3")
    with pytest.raises(FormulaError) as caught:
        BimodalDataset([bad], load_element_embedding("megnet16"))
    assert caught.value.formula == "Am2O3" and "row row-7" in caught.value.reason
    huge = Sample("row-9", parse_formula("NaCl"), 1.0, _nacl(5.64) * (3, 3, 3), "big.cif")
    with pytest.raises(StructureError) as caught:
        BimodalDataset([huge], embedding, max_sites=100)
    assert caught.value.source == "big.cif" and "row row-9" in caught.value.reason
    assert "216 sites" in caught.value.reason
