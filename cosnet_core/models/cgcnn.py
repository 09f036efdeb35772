"""The structure encoder g_S of eq. (2): de-CGCNN.

CGCNN (Xie & Grossman, PRL 120, 145301, 2018) convolutions on the crystal graph, mean pooling over sites, then the
normalised global cell descriptors hybridised with the pooled vector before the output layer ("de-": descriptor-
enhanced). One convolution, with z_ij = h_i ⊕ h_j ⊕ e_ij over the neighbours j of site i:

    h_i' = softplus(h_i + BN(Σ_j σ(BN(z_ij W_f + b_f)) ⊙ softplus(BN(z_ij W_s + b_s))))

Readout:  S = MLP_out(mean_i(h_i) ⊕ (cell - cell_mean) / cell_std).
Mean pooling (not sum) keeps S the same for a cell and its supercells.

The COSNet authors' code (shenggong1996/COSNet @ 2c472c7, ``model/cgcnn.py`` and ``model/data.py``) instead
concatenates 8 raw, unnormalised cell features (a, b, c, α, β, γ of pymatgen's primitive cell, the crystal system
as an integer 1–7, the space-group number) to softplus(mean_i(h_i)), followed by one Linear and a softplus; the cell
descriptors here are more (:data:`cosnet_core.structure.CELL_DESCRIPTOR_NAMES`) and normalised. See
``docs/departures.md``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.nn import global_mean_pool

from cosnet_core.models.blocks import batch_norm


class CGCNNConv(nn.Module):
    """One CGCNN convolution (gated sum over neighbours, residual, softplus).

    Args:
        hidden_dim: node width.
        edge_dim: width of the edge features (41 Gaussians).
    """

    def __init__(self, hidden_dim: int, edge_dim: int) -> None:
        super().__init__()
        # W_f and W_s of the formula, stacked (2h outputs) and split by input block: z_ij W = h_i W_i + h_j W_j +
        # e_ij W_e. The node blocks run once per site instead of once per edge, which is ~4x fewer operations.
        self.centre_linear = nn.Linear(hidden_dim, 2 * hidden_dim)
        self.neighbour_linear = nn.Linear(hidden_dim, 2 * hidden_dim, bias=False)
        self.edge_linear = nn.Linear(edge_dim, 2 * hidden_dim, bias=False)
        self.edge_norm = batch_norm(2 * hidden_dim)
        self.node_norm = batch_norm(hidden_dim)

    def forward(self, h: torch.Tensor, edge_index: torch.Tensor, edge_attr: torch.Tensor) -> torch.Tensor:
        """Update the sites.

        Args:
            h: ``[N, hidden]``.
            edge_index: ``[2, E]`` (row 0 = neighbour j, row 1 = site i).
            edge_attr: ``[E, edge_dim]``.

        Returns:
            ``[N, hidden]``.
        """
        neighbour, centre = edge_index
        z = self.centre_linear(h)[centre] + self.neighbour_linear(h)[neighbour] + self.edge_linear(edge_attr)
        gate, core = self.edge_norm(z).chunk(2, dim=1)
        messages = torch.sigmoid(gate) * F.softplus(core)
        summed = torch.zeros_like(h).index_add(0, centre, messages)
        return F.softplus(h + self.node_norm(summed))


class DeCGCNNEncoder(nn.Module):
    """g_S of eq. (2): crystal graph (+ cell descriptors) → S.

    Args:
        element_dim: width of the element vectors.
        hidden_dim: width of the sites and of S.
        layers: number of convolutions.
        edge_dim: width of the edge features.
        cell_dim: number of cell descriptors.
    """

    def __init__(
        self, element_dim: int, hidden_dim: int = 64, layers: int = 3, edge_dim: int = 41, cell_dim: int = 0
    ):
        super().__init__()
        self.embed = nn.Linear(element_dim, hidden_dim)
        self.convolutions = nn.ModuleList(CGCNNConv(hidden_dim, edge_dim) for _ in range(layers))
        self.hybrid = nn.Sequential(nn.Linear(hidden_dim + cell_dim, hidden_dim), nn.SiLU())
        self.output = nn.Linear(hidden_dim, hidden_dim)

    def forward(self, structure, normalised_cell: torch.Tensor) -> torch.Tensor:  # noqa: ANN001 - a PyG Batch
        """Encode a batch of crystal graphs.

        Args:
            structure: ``Batch`` with ``x``, ``edge_index``, ``edge_attr``, ``batch``.
            normalised_cell: ``[num_graphs, cell_dim]`` normalised cell descriptors.

        Returns:
            S, ``[num_graphs, hidden_dim]``.
        """
        h = self.embed(structure.x)
        for convolution in self.convolutions:
            h = convolution(h, structure.edge_index, structure.edge_attr)
        pooled = global_mean_pool(h, structure.batch, size=structure.num_graphs)
        return self.output(self.hybrid(torch.cat([pooled, normalised_cell], dim=1)))
