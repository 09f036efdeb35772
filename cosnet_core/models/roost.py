"""The composition encoder g_C of eq. (1): ROOST (Goodall & Lee, Nat. Commun. 11, 6280, 2020).

A composition is a fully connected graph of its elements (self-loops included). Every node starts from its element
vector (projected to ``hidden_dim - 1``) concatenated with its fractional amount w_j. Each message-passing layer
updates the nodes by weighted soft attention over the other elements, with several heads averaged:

    e_ij^k = f_k(h_i ⊕ h_j)                                        (attention logit, head k)
    a_ij^k = w_j^{p_k} exp(e_ij^k) / Σ_l w_l^{p_k} exp(e_il^k)      (the amounts raised to a learnable power p_k)
    h_i' = h_i + (1/K) Σ_k Σ_j a_ij^k g_k(h_i ⊕ h_j)

The readout pools the nodes of each composition the same way (attention weighted by w_i^{p_k}, heads averaged),
giving C = g_C(c) of width ``hidden_dim``. ``w^p exp(e)`` is computed as ``softmax(e + p log w)``, which is the
same number and numerically stable.

f_k and g_k are Linear → SiLU → Linear (:func:`cosnet_core.models.blocks.mlp`) with ``mlp_hidden`` (default
``hidden_dim``) hidden units, and each power p_k starts at 1. The COSNet authors' code (shenggong1996/COSNet @
2c472c7, ``model/roost.py`` with the widths of ``train.py``) uses 128 hidden units with BatchNorm before the
SiLU, and starts each p_k from a standard normal draw; both are options here (``mlp_hidden=128, mlp_batchnorm=True,
power_init="normal"``, the ``authors`` preset of :mod:`cosnet_core.hparams`); see ``docs/departures.md``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch_geometric.utils import softmax

from cosnet_core.models.blocks import mlp

#: How the attention powers p_k start: "one" (the plain weighted attention w^1) or "normal" (a standard normal
#: draw per head, as ``torch.randn(1)`` in the authors' ``WeightedAttentionPooling``).
POWER_INITS = ("one", "normal")


def initial_powers(heads: int, power_init: str) -> torch.Tensor:
    """Starting values of the attention powers p_k, one per head.

    Args:
        heads: number of heads.
        power_init: "one" (all 1) or "normal" (standard normal draws from torch's generator).

    Returns:
        ``[heads]``.
    """
    if power_init not in POWER_INITS:
        raise ValueError(f"power_init must be one of {', '.join(POWER_INITS)}, got {power_init!r}")
    return torch.ones(heads) if power_init == "one" else torch.randn(heads)


class WeightedAttentionLayer(nn.Module):
    """One ROOST message-passing layer (weighted soft attention, several heads, residual update).

    Args:
        hidden_dim: node width.
        heads: number of attention heads K.
        mlp_hidden: hidden width of f_k and g_k (default: ``hidden_dim``).
        mlp_batchnorm: BatchNorm inside f_k and g_k (the authors' code).
        power_init: "one" or "normal" (:data:`POWER_INITS`).
    """

    def __init__(
        self, hidden_dim: int, heads: int, mlp_hidden: int | None = None, *, mlp_batchnorm: bool = False,
        power_init: str = "one",
    ) -> None:
        super().__init__()
        inner = mlp_hidden or hidden_dim
        self.gates = nn.ModuleList(
            mlp(2 * hidden_dim, (inner,), 1, batchnorm=mlp_batchnorm) for _ in range(heads)
        )
        self.messages = nn.ModuleList(
            mlp(2 * hidden_dim, (inner,), hidden_dim, batchnorm=mlp_batchnorm) for _ in range(heads)
        )
        self.powers = nn.Parameter(initial_powers(heads, power_init))

    def forward(self, h: torch.Tensor, log_weights: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        """Update the nodes.

        Args:
            h: node features ``[N, hidden]``.
            log_weights: ``log w`` per node ``[N, 1]``.
            edge_index: ``[2, E]`` (row 0 = source j, row 1 = target i).

        Returns:
            Updated node features ``[N, hidden]``.
        """
        source, target = edge_index
        pair = torch.cat([h[target], h[source]], dim=1)
        update = torch.zeros_like(h)
        for k, (gate, message) in enumerate(zip(self.gates, self.messages, strict=True)):
            logits = gate(pair) + self.powers[k] * log_weights[source]
            attention = softmax(logits, target, num_nodes=h.shape[0])
            update = update.index_add(0, target, attention * message(pair))
        return h + update / len(self.gates)


class WeightedAttentionPooling(nn.Module):
    """Readout: per composition, Σ_i a_i^k g_k(h_i) with a_i^k ∝ w_i^{p_k} exp(f_k(h_i)), heads averaged.

    Args:
        hidden_dim: node width.
        heads: number of heads.
        mlp_hidden: hidden width of the gate and message MLPs (default: ``hidden_dim``).
        mlp_batchnorm: BatchNorm inside them (the authors' code).
        power_init: "one" or "normal" (:data:`POWER_INITS`).
    """

    def __init__(
        self, hidden_dim: int, heads: int, mlp_hidden: int | None = None, *, mlp_batchnorm: bool = False,
        power_init: str = "one",
    ) -> None:
        super().__init__()
        inner = mlp_hidden or hidden_dim
        self.gates = nn.ModuleList(mlp(hidden_dim, (inner,), 1, batchnorm=mlp_batchnorm) for _ in range(heads))
        self.messages = nn.ModuleList(
            mlp(hidden_dim, (inner,), hidden_dim, batchnorm=mlp_batchnorm) for _ in range(heads)
        )
        self.powers = nn.Parameter(initial_powers(heads, power_init))

    def forward(
        self, h: torch.Tensor, log_weights: torch.Tensor, batch: torch.Tensor, size: int
    ) -> torch.Tensor:
        """Pool nodes into one vector per composition.

        Args:
            h: node features ``[N, hidden]``.
            log_weights: ``log w`` per node ``[N, 1]``.
            batch: graph index of each node ``[N]``.
            size: number of graphs.

        Returns:
            ``[size, hidden]``.
        """
        pooled = h.new_zeros(size, h.shape[1])
        for k, (gate, message) in enumerate(zip(self.gates, self.messages, strict=True)):
            attention = softmax(gate(h) + self.powers[k] * log_weights, batch, num_nodes=size)
            pooled = pooled.index_add(0, batch, attention * message(h))
        return pooled / len(self.gates)


class RoostEncoder(nn.Module):
    """g_C of eq. (1): composition graph → C.

    Args:
        element_dim: width of the element vectors.
        hidden_dim: width of the nodes and of C.
        layers: number of message-passing layers.
        heads: attention heads per layer and in the readout.
        mlp_hidden: hidden width of every gate and message MLP (default: ``hidden_dim``).
        mlp_batchnorm: BatchNorm inside every gate and message MLP (the authors' code).
        power_init: how the attention powers start, "one" or "normal" (:data:`POWER_INITS`).
    """

    def __init__(
        self, element_dim: int, hidden_dim: int = 64, layers: int = 3, heads: int = 3, mlp_hidden: int | None = None,
        *, mlp_batchnorm: bool = False, power_init: str = "one",
    ) -> None:
        super().__init__()
        options = {"mlp_batchnorm": mlp_batchnorm, "power_init": power_init}
        self.embed = nn.Linear(element_dim, hidden_dim - 1)
        self.layers = nn.ModuleList(
            WeightedAttentionLayer(hidden_dim, heads, mlp_hidden, **options) for _ in range(layers)
        )
        self.readout = WeightedAttentionPooling(hidden_dim, heads, mlp_hidden, **options)

    def forward(self, composition) -> torch.Tensor:  # noqa: ANN001 - a torch_geometric Batch
        """Encode a batch of composition graphs.

        Args:
            composition: ``Batch`` with ``x``, ``weights``, ``edge_index`` and ``batch``.

        Returns:
            C, ``[num_graphs, hidden_dim]``.
        """
        weights = composition.weights
        h = torch.cat([self.embed(composition.x), weights], dim=1)
        log_weights = torch.log(weights.clamp(min=1e-12))
        for layer in self.layers:
            h = layer(h, log_weights, composition.edge_index)
        return self.readout(h, log_weights, composition.batch, composition.num_graphs)
