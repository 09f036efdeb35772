"""Formula parsing and composition (ROOST input) graphs."""

from __future__ import annotations

import pytest
import torch
from pymatgen.core import Composition

from cosnet_core.composition import FormulaError, composition_graph, parse_formula
from cosnet_core.embeddings import load_element_embedding


@pytest.mark.parametrize(
    "text", ["(Li2S)0.75(P2S5)0.25", '"(Li2S)0.75 (P2S5)0.25"', "\ufeff (Li2S)0.75(P2S5)0.25 "]
)
def test_mixture_notation(text, embedding):
    composition = parse_formula(text)
    assert composition.get_el_amt_dict() == pytest.approx({"Li": 1.5, "P": 0.5, "S": 2.0})
    graph = composition_graph(composition, embedding)
    # Li 1.5/4, P 0.5/4, S 2/4; nodes sorted by electronegativity: Li < P < S
    assert graph.weights.squeeze(1).tolist() == pytest.approx([0.375, 0.125, 0.5])
    torch.testing.assert_close(graph.x[0], torch.tensor(embedding.vector("Li")))


def test_fractional_stoichiometry_and_parentheses():
    assert parse_formula("Li6.05P0.95Si0.05S5Br")["Si"] == pytest.approx(0.05)
    assert parse_formula("Ca3(PO4)2").get_el_amt_dict() == pytest.approx({"Ca": 3, "P": 2, "O": 8})


def test_graph_is_fully_connected_with_self_loops(embedding):
    graph = composition_graph(parse_formula("LiFePO4"), embedding)
    assert graph.x.shape == (4, 200) and graph.x.dtype == torch.float32
    assert graph.edge_index.shape == (2, 16)
    pairs = {tuple(edge) for edge in graph.edge_index.t().tolist()}
    assert pairs == {(i, j) for i in range(4) for j in range(4)}
    assert float(graph.weights.sum()) == pytest.approx(1.0)


def test_order_and_scale_give_identical_graphs(embedding):
    graphs = [composition_graph(parse_formula(f), embedding) for f in ("Fe2O3", "O3Fe2", "Fe4O6")]
    for other in graphs[1:]:
        assert torch.equal(graphs[0].x, other.x)
        assert torch.equal(graphs[0].weights, other.weights)
        assert torch.equal(graphs[0].edge_index, other.edge_index)
    assert graphs[0].weights.squeeze(1).tolist() == pytest.approx([0.4, 0.6])


def test_single_element_has_one_self_loop(embedding):
    graph = composition_graph(Composition("Li"), embedding)
    assert graph.edge_index.tolist() == [[0], [0]]
    assert graph.weights.tolist() == [[1.0]]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("  '' ", "empty"),
        ("na5", "cannot be parsed"),
        ("Xx2O", "unknown element"),
        ("Fe0O3", "zero amount"),
        ("Fe-2O3", "negative"),
    ],
)
def test_bad_formulas_name_formula_and_reason(text, reason):
    with pytest.raises(FormulaError) as caught:
        parse_formula(text)
    assert caught.value.formula == text
    assert reason in caught.value.reason
    assert repr(text) in str(caught.value)


def test_element_without_vector_names_formula():
    with pytest.raises(FormulaError) as caught:
        composition_graph(parse_formula("Am2O3"), load_element_embedding("megnet16"))
    assert "Am" in caught.value.reason and "megnet16" in caught.value.reason
    assert caught.value.formula == "Am2 O3"
