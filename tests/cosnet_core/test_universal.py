"""CHGNet crystal features beside g_S (``structure_features="chgnet"``): ordering, invariance, cache, fusion, fit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Structure

from cosnet_core.composition import parse_formula
from cosnet_core.data import BimodalDataset, Sample, collate_bimodal
from cosnet_core.models import CosNet, CosNetConfig
from cosnet_core.train import fit
from cosnet_core.universal import CHGNET_FEATURE_COUNT, chgnet_features, ordered_for_chgnet

pytest.importorskip("chgnet", reason="the chgnet package (requirements.txt) is not installed")

HIDDEN = 16


@pytest.fixture()
def disordered() -> Structure:
    """A rock-salt cell whose cation site is 70 % Li and 30 % Na, and one anion site half vacant."""
    lattice = Lattice.cubic(4.2)
    return Structure(
        lattice,
        [{"Li": 0.7, "Na": 0.3}, {"Cl": 1.0}, {"Li": 0.2, "Na": 0.8}, {"Cl": 0.5}],
        [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0, 0, 0.5]],
    )


def test_disordered_sites_take_their_majority_species(disordered) -> None:
    ordered = ordered_for_chgnet(disordered)
    assert ordered.is_ordered and len(ordered) == len(disordered)
    assert [site.specie.symbol for site in ordered] == ["Li", "Cl", "Na", "Cl"]
    assert np.allclose(ordered.frac_coords, disordered.frac_coords)
    assert ordered_for_chgnet(ordered) is ordered  # an ordered cell is used as given


def test_features_are_supercell_and_permutation_invariant_and_cached(rocksalt, tmp_path) -> None:
    supercell = rocksalt.copy()
    supercell.make_supercell([2, 1, 1])
    permuted = Structure.from_sites(list(reversed(rocksalt.sites)))
    features = chgnet_features([rocksalt, supercell, permuted], cache_dir=tmp_path)
    assert features.shape == (3, CHGNET_FEATURE_COUNT) and features.dtype == np.float32
    assert np.abs(features[0]).max() > 1e-3  # not a zero vector
    assert np.allclose(features[0], features[1], atol=1e-4)  # per site, so intensive (CHGNet's own sum is not)
    assert np.allclose(features[0], features[2], atol=1e-5)
    stored = sorted((tmp_path / "chgnet-0.3.0-per-site").glob("*.npy"))
    assert len(stored) == 2  # one file per content hash (the permuted copy has the same hash)
    loaded = [np.load(path) for path in stored]
    assert any(np.array_equal(row, features[0]) for row in loaded)


def test_chgnet_features_change_s_but_never_w_c_without_a_structure(rocksalt, triclinic, embedding) -> None:
    samples = [
        Sample("a", triclinic.composition, 1.0, triclinic),
        Sample("b", parse_formula("Fe2O3"), 2.0),
        Sample("c", rocksalt.composition, 3.0, rocksalt),
    ]
    dataset = BimodalDataset(samples, embedding, structure_features=True)
    batch = collate_bimodal(dataset.items)
    assert batch.structure.universal.shape == (2, CHGNET_FEATURE_COUNT)
    expected = chgnet_features([triclinic, rocksalt])
    assert torch.allclose(batch.structure.universal, torch.from_numpy(expected))
    torch.manual_seed(0)
    model = CosNet(CosNetConfig(element_dim=200, hidden_dim=HIDDEN, head_hidden=(16, 8), universal_dim=64))
    model.set_universal_normalization(*dataset.universal_feature_stats())
    model.eval()
    out = model(batch)
    assert float(out.composition_weight[1]) == 1.0 and float(out.structure_weight[1]) == 0.0
    assert torch.equal(out.structure_repr[1], torch.zeros(HIDDEN))
    changed = collate_bimodal(dataset.items)
    changed.structure.universal = changed.structure.universal + 3.0 * model.universal_std
    out_changed = model(changed)
    assert not torch.allclose(out.structure_repr[0], out_changed.structure_repr[0])
    assert torch.equal(out.prediction[1], out_changed.prediction[1])  # the composition-only row is untouched
    with pytest.raises(ValueError, match="CHGNet structure features"):
        model(collate_bimodal(BimodalDataset(samples, embedding).items))


@pytest.mark.slow
def test_fit_and_predict_with_chgnet_features(tmp_path) -> None:
    from cosnet_core.artifact import load_artifact, save_artifact
    from cosnet_core.predict import predict_samples
    from tests.cosnet_core.test_train import tiny_config, toy_samples

    rows = toy_samples(30)
    config = tiny_config(epochs=2, structure_features="chgnet")
    result = fit(rows[:22], rows[22:], config)
    assert result.model.config.universal_dim == CHGNET_FEATURE_COUNT
    assert not torch.equal(result.model.universal_std, torch.ones(CHGNET_FEATURE_COUNT))  # set from training rows
    path = tmp_path / "model.pt"
    save_artifact(path, result)
    fitted = load_artifact(path)
    assert fitted.config.structure_features == "chgnet"
    first = predict_samples(fitted, rows[22:]).prediction
    again = predict_samples(load_artifact(path), rows[22:]).prediction
    assert np.all(np.isfinite(first)) and np.allclose(first, again)

