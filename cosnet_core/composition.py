"""Formulas → pymatgen ``Composition`` → ROOST input graphs (the input c of eq. (1)).

Parsing (:func:`parse_formula`, :class:`FormulaError`, :func:`element_fractions`, :func:`composition_key`) lives in
the torch-free :mod:`cosnet_core.formula` and is re-exported here; this module adds the graph, which needs torch.

A composition becomes a fully connected graph of its elements **with self-loops** (so a single element still has
one edge to attend over). Node features are the element vectors of an :class:`ElementEmbedding`; each node also
carries its fractional amount (amounts divided by their sum), which the ROOST attention uses as a weight.
Because only fractions enter, ``Fe2O3``, ``O3Fe2`` and ``Fe4O6`` give the identical graph (elements are sorted by
electronegativity then symbol, as pymatgen does).
"""

from __future__ import annotations

import torch
from pymatgen.core import Composition
from torch_geometric.data import Data

from cosnet_core.embeddings import ElementEmbedding
from cosnet_core.formula import (  # noqa: F401 - re-exported: formula parsing lives in a torch-free module
    MAX_AMOUNT,
    MIN_AMOUNT,
    FormulaError,
    composition_key,
    element_fractions,
    parse_formula,
)


def composition_graph(composition: Composition, embedding: ElementEmbedding) -> Data:
    """The ROOST input graph of one composition.

    Args:
        composition: the composition (any scale and order).
        embedding: element vectors.

    Returns:
        ``Data`` with ``x`` float32 ``[n_el, dim]``, ``weights`` float32 ``[n_el, 1]`` (fractions, sum 1) and
        ``edge_index`` long ``[2, n_el * n_el]`` (fully connected, self-loops included).

    Raises:
        FormulaError: an element has no vector in ``embedding`` or the composition is empty.
    """
    if len(composition) == 0 or composition.num_atoms <= 0:
        raise FormulaError(composition.formula, "the composition has no atoms")
    fractions = element_fractions(composition)
    missing = [symbol for symbol, _ in fractions if symbol not in embedding]
    if missing:
        raise FormulaError(
            composition.formula,
            f"element(s) {', '.join(missing)} have no vector in the element embedding {embedding.name!r}",
        )
    x = torch.from_numpy(embedding.matrix[[embedding.index(s) for s, _ in fractions]].copy())
    weights = torch.tensor([[fraction] for _, fraction in fractions], dtype=torch.float32)
    n = len(fractions)
    nodes = torch.arange(n)
    edge_index = torch.stack([nodes.repeat_interleave(n), nodes.repeat(n)])
    return Data(x=x, weights=weights, edge_index=edge_index, num_nodes=n)
