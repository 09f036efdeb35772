"""COSNet: composition–structure bimodal network, eqs. (1)–(10) of the paper.

    C = g_C(c)                                   eq. (1)   (ROOST, :class:`RoostEncoder`)
    S = g_S(s)                                   eq. (2)   (de-CGCNN, :class:`DeCGCNNEncoder`)
    M = C·w_C + S·w_S   or   C·w_C ⊕ S·w_S         eq. (3)   (``fusion`` = "sum" or "concat")
    w'_C = softplus(MLP_C^w(C))                  eq. (4)
    w'_S = softplus(MLP_S^w(S)) · p_S            eq. (5)
    w_C = w'_C / (w'_C + w'_S)                   eq. (6)
    w_S = w'_S / (w'_C + w'_S)                   eq. (7)
    p_S = 1 with a structure, 0 without          eq. (8)
    M = C (or C ⊕ 0) when p_S = 0                eq. (9)
    t = MLP^t(M)                                 eq. (10)

Domain descriptors (an option beyond the paper, ``descriptor_dim`` > 0): the composition side becomes

    D = MLP_D(clip((d − μ_d) / σ_d, ±6))         d = Magpie statistics of c (:mod:`cosnet_core.descriptors`)
    C = W_m (g_C(c) ⊕ D)                         a linear map back to width h

and everything downstream (eqs. (3)–(10)) is unchanged: C is still the composition-side vector, w_C still weighs
it against S, and w_C = 1 exactly without a structure.

Universal structure features (an option beyond the paper, ``universal_dim`` > 0), the same construction on the
structure side:

    U = MLP_U(clip((u − μ_u) / σ_u, ±6))         u = CHGNet crystal features of s (:mod:`cosnet_core.universal`)
    S = W_u (g_S(s) ⊕ U)                         computed only for rows with a structure, as S always is

The weights are scalars ([B]) or vectors of C's width ([B, h]) (``weight`` = "scalar" or "vector").
Rows without a structure never run g_S or MLP_S^w: S and w'_S are exact zeros there, so w_C = w'_C / w'_C = 1
exactly and M = C exactly. A constant 1e-6 is added to w'_C so that it can never underflow to zero (0/0).
Composition-only learning is this network with p_S = 0 for every row.

Where this differs from the paper or from the authors' published code (shenggong1996/COSNet @ 2c472c7: the head, the
ROOST MLPs, the cell descriptors, the vacancy encoding, …): ``docs/departures.md``.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from cosnet_core.descriptors import STANDARDIZED_CLIP
from cosnet_core.models.blocks import mlp
from cosnet_core.models.cgcnn import DeCGCNNEncoder
from cosnet_core.models.roost import POWER_INITS, RoostEncoder
from cosnet_core.structure import CELL_DESCRIPTOR_NAMES, CRYSTAL_SYSTEMS

WEIGHT_FLOOR = 1e-6
#: Output heads MLP^t (eq. (10)): "mlp" (Linear → BatchNorm → SiLU blocks, then a Linear) or "authors" (the update
#: block and residual network of the authors' ``model/model.py``, :class:`AuthorsHead`).
HEADS = ("mlp", "authors")
#: Which cell descriptors g_S sees (:func:`select_cell_features`): "all" (the 18 of
#: :data:`~cosnet_core.structure.CELL_DESCRIPTOR_NAMES`), "no-volume" (all but volume per atom and density, so that
#: Table 2's target V_a is not an input of g_S) or "authors" (the authors' 8: a, b, c, α, β, γ, the crystal system
#: as an integer 1-7 and the space-group number, ``get_cell_fea`` in their ``model/data.py``).
CELL_FEATURE_SETS = ("all", "no-volume", "authors")
_VOLUME_FEATURES = ("volume_per_atom", "density")


def cell_feature_names(cell_features: str) -> tuple[str, ...]:
    """Names of the cell descriptors a :data:`CELL_FEATURE_SETS` choice gives g_S, in order.

    Args:
        cell_features: "all", "no-volume" or "authors".

    Returns:
        The names (``crystal_system`` is the integer 1-7 of the authors' ``crystal_system_to_int``).
    """
    if cell_features == "all":
        return CELL_DESCRIPTOR_NAMES
    if cell_features == "no-volume":
        return tuple(name for name in CELL_DESCRIPTOR_NAMES if name not in _VOLUME_FEATURES)
    if cell_features == "authors":
        return ("a", "b", "c", "alpha", "beta", "gamma", "crystal_system", "space_group_number")
    raise ValueError(f"cell_features must be one of {', '.join(CELL_FEATURE_SETS)}, got {cell_features!r}")


def select_cell_features(cell: torch.Tensor, cell_features: str) -> torch.Tensor:
    """The columns of the raw cell descriptors ``[N, 18]`` that a :data:`CELL_FEATURE_SETS` choice keeps.

    Args:
        cell: raw descriptors in the order of :data:`~cosnet_core.structure.CELL_DESCRIPTOR_NAMES`.
        cell_features: "all", "no-volume" or "authors".

    Returns:
        ``[N, len(cell_feature_names(cell_features))]``; for "authors" the crystal-system one-hot becomes its
        integer (triclinic 1 … cubic 7, the order of :data:`~cosnet_core.structure.CRYSTAL_SYSTEMS`).
    """
    names = cell_feature_names(cell_features)
    if cell_features == "all":
        return cell
    index = {name: i for i, name in enumerate(CELL_DESCRIPTOR_NAMES)}
    columns = []
    for name in names:
        if name == "crystal_system":
            first = index[f"crystal_system_{CRYSTAL_SYSTEMS[0]}"]
            one_hot = cell[:, first:first + len(CRYSTAL_SYSTEMS)]
            codes = torch.arange(1, len(CRYSTAL_SYSTEMS) + 1, dtype=cell.dtype, device=cell.device)
            columns.append((one_hot * codes).sum(dim=1, keepdim=True))
        else:
            columns.append(cell[:, index[name]:index[name] + 1])
    return torch.cat(columns, dim=1)


@dataclass
class CosNetConfig:
    """Architecture of COSNet (plain JSON types via :meth:`to_dict`).

    Attributes:
        element_dim: width of the element vectors (200 for matscholar200).
        hidden_dim: width h of C and S.
        roost_layers: message-passing layers of g_C.
        roost_heads: attention heads of g_C.
        roost_mlp_hidden: hidden width of the attention-gate and message MLPs inside g_C; None (the default) means
            ``hidden_dim``. The COSNet authors' code uses 128 (``elem_gate``/``elem_msg``/``cry_gate``/``cry_msg``
            = [128] in their ``train.py``) with BatchNorm + SiLU; ROOST's own open-source default is 256.
        roost_mlp_batchnorm: BatchNorm between the Linear and the SiLU of those MLPs (the authors' code; default
            False).
        roost_power_init: how ROOST's attention powers p_k start: "one" (default) or "normal" (the authors').
        cgcnn_layers: convolutions of g_S.
        edge_dim: Gaussians per edge.
        cell_dim: number of cell descriptors g_S sees; set from ``cell_features``.
        cell_features: which cell descriptors g_S sees (:data:`CELL_FEATURE_SETS`; default "all").
        fusion: "sum" or "concat" (eq. (3)).
        weight: "scalar" or "vector" modality weights.
        head_hidden: hidden widths of MLP^t (eq. (10)): one Linear → BatchNorm → SiLU block per width, then a
            Linear. The authors' head is larger: an update block (M → [64] → 64), a residual network
            (64 → [64, 32] → 1, BatchNorm + SiLU, a linear skip per block) and a final ReLU (``model/model.py``,
            ``model/roost.py``); ``head="authors"`` builds that (:class:`AuthorsHead`), see ``docs/departures.md``.
        head: "mlp" (default) or "authors" (:data:`HEADS`).
        weight_hidden: hidden widths of MLP_C^w and MLP_S^w (eqs. (4), (5)).
        descriptor_dim: number of composition descriptors fed next to g_C's output (0 = none, the paper).
        universal_dim: number of pretrained structure features fed next to g_S's output (0 = none, the paper).
    """

    element_dim: int
    hidden_dim: int = 64
    roost_layers: int = 3
    roost_heads: int = 3
    roost_mlp_hidden: int | None = None
    roost_mlp_batchnorm: bool = False
    roost_power_init: str = "one"
    cgcnn_layers: int = 3
    edge_dim: int = 41
    cell_dim: int = len(CELL_DESCRIPTOR_NAMES)
    cell_features: str = "all"
    fusion: Literal["sum", "concat"] = "sum"
    weight: Literal["scalar", "vector"] = "scalar"
    head_hidden: tuple[int, ...] = (64, 32)
    head: str = "mlp"
    weight_hidden: tuple[int, ...] = (64, 32)
    descriptor_dim: int = 0
    universal_dim: int = 0

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {', '.join(HEADS)}, got {self.head!r}")
        if self.roost_power_init not in POWER_INITS:
            raise ValueError(f"roost_power_init must be one of {', '.join(POWER_INITS)}, got {self.roost_power_init!r}")
        self.cell_dim = len(cell_feature_names(self.cell_features))
        if self.descriptor_dim < 0 or self.universal_dim < 0:
            raise ValueError(
                f"descriptor_dim and universal_dim must be ≥ 0, got {self.descriptor_dim}, {self.universal_dim}"
            )
        if self.fusion not in ("sum", "concat"):
            raise ValueError(f"fusion must be 'sum' or 'concat', got {self.fusion!r}")
        if self.weight not in ("scalar", "vector"):
            raise ValueError(f"weight must be 'scalar' or 'vector', got {self.weight!r}")
        if self.hidden_dim < 2:
            raise ValueError(f"hidden_dim must be at least 2, got {self.hidden_dim}")
        self.head_hidden = tuple(int(v) for v in self.head_hidden)
        self.weight_hidden = tuple(int(v) for v in self.weight_hidden)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (tuples become lists)."""
        return {
            key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CosNetConfig:
        """Inverse of :meth:`to_dict` (unknown keys are refused)."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown CosNetConfig fields: {sorted(unknown)}")
        return cls(**data)


class CosNetOutput(NamedTuple):
    """Per-row outputs of :class:`CosNet`.

    Attributes:
        prediction: t, ``[B]``.
        composition_repr: C, ``[B, h]``.
        structure_repr: S, ``[B, h]`` (zeros where p_S = 0).
        composition_weight: w_C, ``[B]`` (scalar) or ``[B, h]`` (vector); exactly 1 where p_S = 0.
        structure_weight: w_S, same shape; exactly 0 where p_S = 0.
        fused_repr: M, ``[B, h]`` (sum) or ``[B, 2h]`` (concat).
    """

    prediction: torch.Tensor
    composition_repr: torch.Tensor
    structure_repr: torch.Tensor
    composition_weight: torch.Tensor
    structure_weight: torch.Tensor
    fused_repr: torch.Tensor


class AuthorsHead(nn.Module):
    """MLP^t of eq. (10) as the authors' code builds it (``MultiModalNetwork`` in their ``model/model.py``).

    An update block (their ``SimpleNetwork``: Linear(M → h) → BatchNorm → SiLU → Linear(h → h)), then a residual
    network (their ``ResidualNetwork``): per hidden width w, x ← SiLU(BN(Linear(x))) + R(x), where R is the identity
    when the width does not change and a bias-free Linear otherwise, then a Linear to 1. Their final ReLU is not
    part of this head (it would be wrong for targets that can be negative).

    Args:
        in_dim: width of M.
        hidden_dim: h (the update block's width).
        hidden: the residual network's widths (their ``output_net_params``: [64, 32]).
    """

    def __init__(self, in_dim: int, hidden_dim: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.update = mlp(in_dim, (hidden_dim,), hidden_dim)
        pairs = list(itertools.pairwise([hidden_dim, *hidden]))
        self.blocks = nn.ModuleList(mlp(a, (b,), None, plain_last=False) for a, b in pairs)
        self.skips = nn.ModuleList(nn.Identity() if a == b else nn.Linear(a, b, bias=False) for a, b in pairs)
        self.output = nn.Linear(([hidden_dim, *hidden])[-1], 1)

    def forward(self, fused: torch.Tensor) -> torch.Tensor:
        """``[B, in_dim]`` → ``[B, 1]``."""
        x = self.update(fused)
        for block, skip in zip(self.blocks, self.skips, strict=True):
            x = block(x) + skip(x)
        return self.output(x)


class CosNet(nn.Module):
    """The bimodal network of eqs. (1)–(10).

    Args:
        config: the architecture.
    """

    def __init__(self, config: CosNetConfig) -> None:
        super().__init__()
        self.config = config
        h = config.hidden_dim
        weight_width = 1 if config.weight == "scalar" else h
        self.composition_encoder = RoostEncoder(
            config.element_dim, h, config.roost_layers, config.roost_heads, config.roost_mlp_hidden,
            mlp_batchnorm=config.roost_mlp_batchnorm, power_init=config.roost_power_init,
        )
        self.structure_encoder = DeCGCNNEncoder(
            config.element_dim, h, config.cgcnn_layers, config.edge_dim, config.cell_dim
        )
        self.composition_weight_mlp = mlp(h, config.weight_hidden, weight_width)
        self.structure_weight_mlp = mlp(h, config.weight_hidden, weight_width)
        fused_width = h if config.fusion == "sum" else 2 * h
        if config.head == "authors":
            self.head: nn.Module = AuthorsHead(fused_width, h, config.head_hidden)
        else:
            self.head = mlp(fused_width, config.head_hidden, 1)
        self.register_buffer("cell_mean", torch.zeros(config.cell_dim))
        self.register_buffer("cell_std", torch.ones(config.cell_dim))
        if config.descriptor_dim:
            self.descriptor_encoder = mlp(config.descriptor_dim, (h,), h)
            self.descriptor_merge = nn.Linear(2 * h, h)
            self.register_buffer("descriptor_mean", torch.zeros(config.descriptor_dim))
            self.register_buffer("descriptor_std", torch.ones(config.descriptor_dim))
        if config.universal_dim:
            self.universal_encoder = mlp(config.universal_dim, (h,), h)
            self.universal_merge = nn.Linear(2 * h, h)
            self.register_buffer("universal_mean", torch.zeros(config.universal_dim))
            self.register_buffer("universal_std", torch.ones(config.universal_dim))

    def set_universal_normalization(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Store the statistics that standardise the pretrained structure features (saved in the state_dict).

        Args:
            mean: ``[universal_dim]`` (from the training rows with a structure).
            std: ``[universal_dim]``, positive.
        """
        if not self.config.universal_dim:
            raise ValueError("this model takes no universal structure features")
        self._store_statistics("universal", mean, std)

    def set_descriptor_normalization(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Store the statistics that standardise the composition descriptors (saved in the state_dict).

        Args:
            mean: ``[descriptor_dim]`` (from the training rows).
            std: ``[descriptor_dim]``, positive.
        """
        if not self.config.descriptor_dim:
            raise ValueError("this model takes no descriptors")
        self._store_statistics("descriptor", mean, std)

    def encode_compositions(self, batch) -> torch.Tensor:  # noqa: ANN001 - BimodalBatch
        """C of eq. (1): g_C(c), merged with the descriptor vector D when the model takes descriptors.

        Args:
            batch: a BimodalBatch (with ``descriptors`` when ``descriptor_dim`` > 0).

        Returns:
            ``[B, h]``.
        """
        composition_repr = self.composition_encoder(batch.composition)
        if not self.config.descriptor_dim:
            return composition_repr
        if batch.descriptors is None:
            raise ValueError("this model needs composition descriptors, but the batch has none")
        scaled = ((batch.descriptors - self.descriptor_mean) / self.descriptor_std).clamp(
            -STANDARDIZED_CLIP, STANDARDIZED_CLIP
        )
        return self.descriptor_merge(torch.cat([composition_repr, self.descriptor_encoder(scaled)], dim=1))

    def set_cell_normalization(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Store the statistics used to normalise cell descriptors (saved in the state_dict).

        Args:
            mean: ``[cell_dim]`` (of the descriptors :func:`select_cell_features` keeps).
            std: ``[cell_dim]``, positive.
        """
        self._store_statistics("cell", mean, std)

    def _store_statistics(self, name: str, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Copy ``mean``/``std`` into the buffers ``<name>_mean``/``<name>_std`` after checking shape and sign."""
        target_mean, target_std = getattr(self, f"{name}_mean"), getattr(self, f"{name}_std")
        mean = torch.as_tensor(mean, dtype=torch.float32).reshape(-1)
        std = torch.as_tensor(std, dtype=torch.float32).reshape(-1)
        if mean.shape != target_mean.shape or std.shape != target_std.shape:
            raise ValueError(f"{name} statistics must have {target_mean.numel()} values each")
        if not torch.all(std > 0):
            raise ValueError(f"{name} standard deviations must be positive")
        target_mean.copy_(mean)
        target_std.copy_(std)

    def encode_structures(self, batch) -> torch.Tensor:  # noqa: ANN001 - BimodalBatch
        """S of eq. (2) for every row: g_S on the crystal graphs only, scattered into zeros.

        Args:
            batch: a BimodalBatch.

        Returns:
            ``[B, h]``, zeros for rows without a structure.
        """
        rows = len(batch.presence)
        structure_repr = batch.presence.new_zeros(rows, self.config.hidden_dim)
        if batch.structure is not None and batch.structure.num_graphs > 0:
            cell = select_cell_features(batch.structure.cell, self.config.cell_features)
            cell = (cell - self.cell_mean) / self.cell_std
            encoded = self.structure_encoder(batch.structure, cell)
            if self.config.universal_dim:
                universal = getattr(batch.structure, "universal", None)
                if universal is None:
                    raise ValueError("this model needs CHGNet structure features, but the batch has none")
                scaled = ((universal - self.universal_mean) / self.universal_std).clamp(
                    -STANDARDIZED_CLIP, STANDARDIZED_CLIP
                )
                encoded = self.universal_merge(torch.cat([encoded, self.universal_encoder(scaled)], dim=1))
            structure_repr = structure_repr.index_copy(0, batch.structure_rows, encoded)
        return structure_repr

    def forward(self, batch) -> CosNetOutput:  # noqa: ANN001 - BimodalBatch
        """Predict for a batch.

        Args:
            batch: a BimodalBatch (``composition``, ``structure``, ``presence``, ``structure_rows``).

        Returns:
            The prediction with C, S, w_C, w_S and M.
        """
        presence = batch.presence
        composition_repr = self.encode_compositions(batch)  # eq. (1)
        structure_repr = self.encode_structures(batch)  # eq. (2)

        raw_composition_weight = (
            F.softplus(self.composition_weight_mlp(composition_repr)) + WEIGHT_FLOOR
        )  # eq. (4)
        raw_structure_weight = torch.zeros_like(raw_composition_weight)
        rows = batch.structure_rows
        if rows.numel() > 0:
            present = F.softplus(self.structure_weight_mlp(structure_repr[rows]))
            raw_structure_weight = raw_structure_weight.index_copy(0, rows, present)
        raw_structure_weight = raw_structure_weight * presence[:, None]  # eq. (5), p_S of eq. (8)

        total = raw_composition_weight + raw_structure_weight
        composition_weight = raw_composition_weight / total  # eq. (6)
        structure_weight = raw_structure_weight / total  # eq. (7)

        if self.config.fusion == "sum":  # eqs. (3), (9)
            fused = composition_repr * composition_weight + structure_repr * structure_weight
        else:
            fused = torch.cat(
                [composition_repr * composition_weight, structure_repr * structure_weight], dim=1
            )
        prediction = self.head(fused).squeeze(1)  # eq. (10)

        if self.config.weight == "scalar":
            composition_weight, structure_weight = composition_weight.squeeze(1), structure_weight.squeeze(1)
        return CosNetOutput(
            prediction=prediction,
            composition_repr=composition_repr,
            structure_repr=structure_repr,
            composition_weight=composition_weight,
            structure_weight=structure_weight,
            fused_repr=fused,
        )
