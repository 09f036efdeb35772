"""COSNet: fusion of eqs. (3)-(9) in all four variants, invariances, mixed batches, single elements."""

from __future__ import annotations

import json

import pytest
import torch
from pymatgen.core import Structure
from pymatgen.core.operations import SymmOp

from cosnet_core.composition import parse_formula
from cosnet_core.data import BimodalDataset, Sample, collate_bimodal
from cosnet_core.models import CosNet, CosNetConfig, CosNetOutput
from cosnet_core.structure import CELL_DESCRIPTOR_NAMES

VARIANTS = [(fusion, weight) for fusion in ("sum", "concat") for weight in ("scalar", "vector")]
HIDDEN = 16


def _model(fusion: str = "sum", weight: str = "scalar", seed: int = 0) -> CosNet:
    torch.manual_seed(seed)
    config = CosNetConfig(
        element_dim=200, hidden_dim=HIDDEN, fusion=fusion, weight=weight, head_hidden=(16, 8)
    )
    model = CosNet(config)
    return model


def _warm_up(model: CosNet, batch) -> None:
    """One training-mode pass so the BatchNorm running statistics are not the trivial initial ones."""
    model.train()
    with torch.no_grad():
        model(batch)
    model.eval()


def _batch(samples, embedding):
    dataset = BimodalDataset(samples, embedding)
    return collate_bimodal(dataset.items), dataset


def _rotated_translated(structure: Structure) -> Structure:
    moved = structure.copy()
    moved.apply_operation(SymmOp.from_axis_angle_and_translation([1, 2, 3], 37.0))
    moved.translate_sites(list(range(len(moved))), [0.13, 0.27, 0.41], frac_coords=True, to_unit_cell=True)
    return Structure.from_sites(list(reversed(moved.sites)))  # and a different site order


@pytest.fixture()
def mixed_samples(triclinic, rocksalt) -> list[Sample]:
    return [
        Sample("a", triclinic.composition, 1.0, triclinic),
        Sample("b", parse_formula("Fe2O3"), 2.0),
        Sample("c", rocksalt.composition, 3.0, rocksalt),
        Sample("d", parse_formula("Li7La3Zr2O12"), 4.0),
        Sample("e", parse_formula("(Li2S)0.75(P2S5)0.25"), 5.0),
    ]


@pytest.mark.parametrize(("fusion", "weight"), VARIANTS)
@pytest.mark.parametrize("training", [True, False])
def test_without_structure_w_c_is_exactly_one_and_m_is_c(fusion, weight, training, mixed_samples, embedding):
    batch, _ = _batch(mixed_samples, embedding)
    model = _model(fusion, weight)
    model.train(training)
    out = model(batch)
    assert isinstance(out, CosNetOutput)
    absent = batch.presence == 0
    present = ~absent
    width = 1 if weight == "scalar" else HIDDEN
    expected_shape = (5,) if weight == "scalar" else (5, HIDDEN)
    assert out.composition_weight.shape == expected_shape == out.structure_weight.shape
    assert out.prediction.shape == (5,)
    assert out.composition_weight.dtype == torch.float32
    assert torch.equal(
        out.composition_weight[absent],
        torch.ones(3, width).squeeze(-1) if width == 1 else torch.ones(3, width),
    )
    assert torch.equal(out.structure_weight[absent], torch.zeros_like(out.structure_weight[absent]))
    assert torch.equal(out.structure_repr[absent], torch.zeros(3, HIDDEN))
    c = out.composition_repr[absent]
    if fusion == "sum":
        assert torch.equal(out.fused_repr[absent], c)
    else:
        assert torch.equal(out.fused_repr[absent], torch.cat([c, torch.zeros_like(c)], dim=1))
    # rows with a structure mix both modalities: weights in (0, 1) that sum to 1 (eqs. (6), (7))
    w_c, w_s = out.composition_weight[present], out.structure_weight[present]
    assert torch.all((w_c > 0) & (w_c < 1))
    torch.testing.assert_close(w_c + w_s, torch.ones_like(w_c))
    assert torch.all(out.structure_repr[present].abs().sum(dim=1) > 0)


@pytest.mark.parametrize(("fusion", "weight"), VARIANTS)
def test_composition_only_batch_matches_head_of_c(fusion, weight, embedding):
    """Composition-only learning: every row p_S = 0, the prediction is MLP^t(C) (or MLP^t(C ⊕ 0))."""
    batch, _ = _batch(
        [Sample("x", parse_formula("LiFePO4"), 1.0), Sample("y", parse_formula("Li"), 2.0)], embedding
    )
    model = _model(fusion, weight).eval()
    calls = []
    model.structure_encoder.register_forward_hook(lambda *args: calls.append(1))
    model.structure_weight_mlp.register_forward_hook(lambda *args: calls.append(1))
    with torch.no_grad():
        out = model(batch)
        c = out.composition_repr
        fused = c if fusion == "sum" else torch.cat([c, torch.zeros_like(c)], dim=1)
        expected = model.head(fused).squeeze(1)
    assert calls == []  # g_S and MLP_S^w never run without structures
    assert torch.equal(out.prediction, expected)


def test_order_and_scale_of_a_formula_give_identical_c(embedding):
    model = _model()
    warm = [Sample(f, parse_formula(f), 0.0) for f in ("Fe2O3", "LiCoO2", "NaCl")]
    _warm_up(model, _batch(warm, embedding)[0])
    with torch.no_grad():
        c = [
            model(_batch([Sample(f, parse_formula(f), 0.0)], embedding)[0]).composition_repr[0]
            for f in ("Fe2O3", "O3Fe2", "Fe4O6", "FeO")
        ]
    assert torch.equal(c[0], c[1]) and torch.equal(c[0], c[2])
    assert not torch.allclose(c[3], c[0])


@pytest.mark.parametrize(("fusion", "weight"), VARIANTS)
def test_supercell_and_rotation_give_the_same_s_and_prediction(
    fusion, weight, triclinic, rocksalt, embedding
):
    structures = [triclinic, triclinic * (2, 2, 2), _rotated_translated(triclinic)]
    samples = [Sample(str(i), s.composition, 0.0, s) for i, s in enumerate(structures)]
    samples.append(Sample("nacl", rocksalt.composition, 0.0, rocksalt))
    batch, dataset = _batch(samples, embedding)
    model = _model(fusion, weight)
    model.set_cell_normalization(*dataset.cell_descriptor_stats())
    _warm_up(model, batch)
    with torch.no_grad():
        out = model(batch)
    for i in (1, 2):
        torch.testing.assert_close(out.structure_repr[i], out.structure_repr[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(out.prediction[i], out.prediction[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(out.composition_weight[i], out.composition_weight[0], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(out.structure_repr[3], out.structure_repr[0], atol=1e-3)


@pytest.mark.parametrize(("fusion", "weight"), VARIANTS)
def test_eval_mixed_batch_equals_each_row_alone(fusion, weight, mixed_samples, embedding):
    batch, dataset = _batch(mixed_samples, embedding)
    model = _model(fusion, weight)
    model.set_cell_normalization(*dataset.cell_descriptor_stats())
    _warm_up(model, batch)
    with torch.no_grad():
        together = model(batch)
        for row, item in enumerate(dataset.items):
            alone = model(collate_bimodal([item]))
            for name in CosNetOutput._fields:
                torch.testing.assert_close(
                    getattr(alone, name)[0], getattr(together, name)[row], atol=1e-5, rtol=1e-5
                )


def test_single_element_composition_and_structure_train_and_predict(bcc_lithium, embedding):
    sample = Sample("li", bcc_lithium.composition, 1.0, bcc_lithium)
    batch, _ = _batch([sample], embedding)
    assert batch.structure.num_nodes == 1 and batch.composition.num_nodes == 1
    model = _model("concat", "vector")
    model.train()
    out = model(batch)  # one row, one site: BatchNorm must not fail
    loss = (out.prediction - batch.target).abs().mean()
    loss.backward()
    assert torch.isfinite(out.prediction).all()
    assert model.structure_encoder.embed.weight.grad.abs().sum() > 0
    assert model.composition_encoder.embed.weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        assert torch.isfinite(model(batch).prediction).all()


def test_training_step_reduces_the_loss(mixed_samples, embedding):
    batch, dataset = _batch(mixed_samples, embedding)
    model = _model()
    model.set_cell_normalization(*dataset.cell_descriptor_stats())
    optimiser = torch.optim.Adam(model.parameters(), lr=2e-2)
    losses = []
    for _ in range(80):
        optimiser.zero_grad()
        loss = (model(batch).prediction - batch.target).abs().mean()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_config_round_trip_and_state_dict_holds_cell_statistics():
    config = CosNetConfig(element_dim=200, hidden_dim=HIDDEN, fusion="concat", weight="vector")
    data = json.loads(json.dumps(config.to_dict()))
    assert data["head_hidden"] == [64, 32]
    assert CosNetConfig.from_dict(data) == config
    with pytest.raises(ValueError, match="fusion"):
        CosNetConfig(element_dim=200, fusion="product")
    with pytest.raises(ValueError, match="unknown"):
        CosNetConfig.from_dict({**data, "colour": "red"})
    model = CosNet(config)
    width = len(CELL_DESCRIPTOR_NAMES)
    model.set_cell_normalization(torch.arange(width, dtype=torch.float32), torch.full((width,), 2.0))
    restored = CosNet(CosNetConfig.from_dict(data))
    restored.load_state_dict(model.state_dict())
    assert torch.equal(restored.cell_mean, torch.arange(width, dtype=torch.float32))
    assert torch.equal(restored.cell_std, torch.full((width,), 2.0))
    with pytest.raises(ValueError, match="positive"):
        model.set_cell_normalization(torch.zeros(width), torch.zeros(width))


def test_vector_weights_differ_per_channel(mixed_samples, embedding):
    batch, _ = _batch(mixed_samples, embedding)
    model = _model("sum", "vector")
    with torch.no_grad():
        out = model(batch)
    row = int(batch.structure_rows[0])
    assert out.composition_weight[row].std() > 0
    expected = (
        out.composition_repr[row] * out.composition_weight[row]
        + out.structure_repr[row] * out.structure_weight[row]
    )
    torch.testing.assert_close(out.fused_repr[row], expected)


def test_roost_mlp_width_sets_every_gate_and_message_mlp_and_old_configs_still_load(mixed_samples, embedding):
    wide = CosNet(CosNetConfig(element_dim=200, hidden_dim=HIDDEN, roost_mlp_hidden=40))
    encoder = wide.composition_encoder
    inner_layers = [mlp.lins[0] for layer in encoder.layers for mlp in (*layer.gates, *layer.messages)]
    inner_layers += [mlp.lins[0] for mlp in (*encoder.readout.gates, *encoder.readout.messages)]
    assert len(inner_layers) == 3 * 2 * 3 + 2 * 3  # 3 layers × (gate + message) × 3 heads, + readout
    assert {linear.out_channels for linear in inner_layers} == {40}
    # the node and output widths stay h: the encoder still returns C of width h
    batch, _ = _batch(mixed_samples, embedding)
    with torch.no_grad():
        assert encoder(batch.composition).shape == (len(mixed_samples), HIDDEN)
    # by default the MLPs are as wide as the encoder, whatever h is (the authors' code uses 128: docs/departures.md)
    narrow = CosNet(CosNetConfig(element_dim=200, hidden_dim=HIDDEN))
    assert {mlp.lins[0].out_channels for mlp in narrow.composition_encoder.layers[0].gates} == {HIDDEN}
    # an artifact written before the option existed has no such key: same shapes, its weights load
    old = CosNetConfig(element_dim=200, hidden_dim=HIDDEN).to_dict()
    del old["roost_mlp_hidden"]
    restored = CosNet(CosNetConfig.from_dict(old))
    restored.load_state_dict(narrow.state_dict())


@pytest.mark.parametrize(("fusion", "weight"), VARIANTS)
def test_with_descriptors_w_c_stays_exactly_one_without_a_structure(fusion, weight, mixed_samples, embedding):
    dataset = BimodalDataset(mixed_samples, embedding, descriptors=True)
    batch = collate_bimodal(dataset.items)
    assert batch.descriptors.shape == (5, 132)
    torch.manual_seed(0)
    model = CosNet(CosNetConfig(element_dim=200, hidden_dim=HIDDEN, fusion=fusion, weight=weight,
                                head_hidden=(16, 8), descriptor_dim=132))
    model.set_descriptor_normalization(*dataset.descriptor_stats())
    _warm_up(model, batch)
    out = model(batch)
    absent = batch.presence == 0
    assert torch.equal(out.composition_weight[absent], torch.ones_like(out.composition_weight[absent]))
    assert torch.equal(out.structure_weight[absent], torch.zeros_like(out.structure_weight[absent]))
    # C is g_C's output merged with D, so changing only the descriptors changes C and the prediction.
    changed = collate_bimodal(dataset.items)
    changed.descriptors = changed.descriptors + 5.0
    out_changed = model(changed)
    assert not torch.allclose(out.composition_repr, out_changed.composition_repr)
    assert not torch.allclose(out.prediction, out_changed.prediction)
    # A model that takes descriptors refuses a batch without them, with the reason.
    with pytest.raises(ValueError, match="needs composition descriptors"):
        model(collate_bimodal(BimodalDataset(mixed_samples, embedding).items))


def test_descriptor_normalisation_is_stored_and_descriptors_equal_matminer(mixed_samples, embedding):
    from matminer.featurizers.composition import ElementProperty

    dataset = BimodalDataset(mixed_samples, embedding, descriptors=True)
    reference = ElementProperty.from_preset("magpie", impute_nan=True).featurize(parse_formula("Fe2O3"))
    assert torch.allclose(dataset.items[1].descriptors, torch.tensor(reference, dtype=torch.float32))
    mean, std = dataset.descriptor_stats()
    stacked = torch.stack([item.descriptors for item in dataset.items]).double()
    assert torch.allclose(mean.double(), stacked.mean(0), rtol=1e-5)
    model = CosNet(CosNetConfig(element_dim=200, hidden_dim=HIDDEN, descriptor_dim=132))
    model.set_descriptor_normalization(mean, std)
    state = model.state_dict()
    assert torch.equal(state["descriptor_mean"], mean) and torch.equal(state["descriptor_std"], std)
    with pytest.raises(ValueError, match="132 values"):
        model.set_descriptor_normalization(mean[:3], std[:3])


def test_descriptors_far_outside_the_training_rows_are_clipped(mixed_samples, embedding):
    """A composition unlike every training row (or a column constant in training) cannot blow up the prediction."""
    from cosnet_core.descriptors import STANDARDIZED_CLIP, standardization

    features = torch.tensor([[1.0, 5.0], [3.0, 5.0]], dtype=torch.float64).numpy()
    mean, std = standardization(features)
    assert std.tolist() == [1.0, 1.0]  # the constant column gets std 1, not a floor of ~0
    dataset = BimodalDataset(mixed_samples, embedding, descriptors=True)
    torch.manual_seed(0)
    model = CosNet(CosNetConfig(element_dim=200, hidden_dim=HIDDEN, head_hidden=(16, 8), descriptor_dim=132))
    model.set_descriptor_normalization(*dataset.descriptor_stats())
    _warm_up(model, collate_bimodal(dataset.items))
    far, edge = collate_bimodal(dataset.items), collate_bimodal(dataset.items)
    far.descriptors = model.descriptor_mean + 1e6 * model.descriptor_std.expand(5, -1)
    edge.descriptors = model.descriptor_mean + STANDARDIZED_CLIP * model.descriptor_std.expand(5, -1)
    out_far, out_edge = model(far), model(edge)
    assert torch.isfinite(out_far.prediction).all()
    assert torch.allclose(out_far.prediction, out_edge.prediction, atol=1e-5)
