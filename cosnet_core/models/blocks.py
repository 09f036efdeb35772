"""The small networks every encoder and head is built from: torch-geometric's ``MLP`` and ``BatchNorm``.

Every multilayer perceptron of COSNet is ``Linear → [BatchNorm] → SiLU`` per hidden width, then a plain ``Linear``:
the ROOST gate and message networks f_k, g_k (without BatchNorm, or with it in the authors' preset, their
``SimpleNetwork``), MLP_C^w and MLP_S^w of eqs. (4)-(5), MLP^t of eq. (10), the descriptor and universal-feature
encoders and the blocks of the authors' residual head. ``torch_geometric.nn.MLP`` expresses each of them exactly:
it applies Linear → norm → activation per layer (``act_first=False``, so BatchNorm comes before the SiLU as in the
authors' code), no norm at all with ``norm=None``, and ends on a plain Linear (``plain_last=True``) or not
(``plain_last=False``, one residual block). Its dropout is 0 here, which is the identity and draws no random
numbers. So no hand-written MLP class is needed; :func:`mlp` only fixes the project's choices (SiLU, BatchNorm that
accepts one row) in one place.

BatchNorm is ``torch_geometric.nn.BatchNorm(allow_single_element=True)``: a batch of one row (one structure, or a
single-site crystal's one node) is normalised with the running statistics instead of raising, and they are not
updated; that is what the former hand-written ``SafeBatchNorm1d`` did. In eval mode both are plain BatchNorm.

Two things the library does not do the project's way are handled here:

* ``MLP`` draws every Linear's weights twice (in the Linear's constructor, then again in ``MLP.reset_parameters``).
  :func:`mlp` rewinds torch's generator in between, so the weights are drawn once, in the order ``torch.nn.Linear``
  draws them, and a seed gives the same initial weights as the ``nn.Sequential`` builders of artifact format 1.
* Artifact format 1 (and encoder checkpoints ``cosnet-encoder-1``, training checkpoints ``cosnet-checkpoint-1``)
  stored those networks as ``nn.Sequential`` (keys ``<mlp>.<index>.<param>``) and BatchNorm without the
  ``module`` wrapper. :func:`upgrade_state_dict` renames such keys to the current modules (the same tensors, so the
  same predictions) and :func:`upgrade_optimizer_state` reorders an optimizer's state to the current parameter order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch_geometric.nn import MLP, BatchNorm

#: The keyword arguments that make ``torch_geometric.nn.MLP`` build a BatchNorm that accepts a single row.
_SINGLE_ROW_BATCHNORM = {"allow_single_element": True}


def batch_norm(width: int) -> BatchNorm:
    """BatchNorm over ``width`` features that uses its running statistics (without updating them) on one row.

    Args:
        width: number of features.

    Returns:
        ``torch_geometric.nn.BatchNorm(width, allow_single_element=True)``.
    """
    return BatchNorm(width, **_SINGLE_ROW_BATCHNORM)


def mlp(
    in_dim: int, hidden: Sequence[int], out_dim: int | None, *, batchnorm: bool = True, plain_last: bool = True
) -> MLP:
    """Linear → [BatchNorm] → SiLU per hidden width, then a final Linear to ``out_dim``.

    Args:
        in_dim: input width.
        hidden: hidden widths (may be empty: one Linear).
        out_dim: output width; None with ``plain_last=False``: the last hidden width is the output (a block
            ``Linear → BatchNorm → SiLU`` per width and no plain Linear after them).
        batchnorm: BatchNorm (single rows allowed, :func:`batch_norm`) before each SiLU.
        plain_last: end on a plain Linear (True) or on the last block (False, ``out_dim`` must be None).

    Returns:
        The ``torch_geometric.nn.MLP``, its Linear weights drawn once from torch's generator in layer order
        (weight, then bias), as ``torch.nn.Linear`` draws them.
    """
    if plain_last == (out_dim is None):
        raise ValueError("give out_dim with plain_last=True and only then")
    channels = [in_dim, *hidden, *([out_dim] if plain_last else [])]
    generator_state = torch.get_rng_state()
    network = MLP(
        channels, act="silu", norm="batch_norm" if batchnorm else None,
        norm_kwargs=_SINGLE_ROW_BATCHNORM if batchnorm else None, plain_last=plain_last, dropout=0.0,
    )
    torch.set_rng_state(generator_state)  # draw the weights once (MLP.__init__ drew them twice), see the docstring
    network.reset_parameters()
    return network


def _format1_names(model: nn.Module) -> dict[str, str]:
    """Per current key prefix, the prefix format 1 stored it under (``nn.Sequential`` indices, bare BatchNorm)."""
    renames: dict[str, str] = {}
    for name, module in model.named_modules():
        prefix = f"{name}." if name else ""
        if isinstance(module, BatchNorm):
            renames[f"{prefix}module."] = prefix
    for name, module in model.named_modules():  # after BatchNorm: an MLP's own norms are renamed with its indices
        if isinstance(module, MLP):
            prefix = f"{name}." if name else ""
            stride = 3 if any(isinstance(norm, BatchNorm) for norm in module.norms) else 2  # Linear, [BN], SiLU
            for i in range(len(module.lins)):
                renames[f"{prefix}lins.{i}."] = f"{prefix}{stride * i}."
            for i in range(len(module.norms)):
                renames[f"{prefix}norms.{i}.module."] = f"{prefix}{stride * i + 1}."
    return renames


def _format1_key(key: str, renames: dict[str, str]) -> str:
    """The format-1 name of a current state-dict key (the longest matching prefix is renamed)."""
    matches = [prefix for prefix in renames if key.startswith(prefix)]
    if not matches:
        return key
    prefix = max(matches, key=len)
    return renames[prefix] + key[len(prefix):]


def upgrade_state_dict(model: nn.Module, state: dict[str, Any]) -> dict[str, Any]:
    """Rename the keys of a format-1 state dict (``nn.Sequential`` MLPs, bare BatchNorm) to ``model``'s modules.

    The tensors are the same objects, so the upgraded model computes the same numbers. Keys that fit no current
    module are passed through unchanged, so that ``load_state_dict`` names them as unexpected.

    Args:
        model: the current model (its architecture decides each MLP's layout).
        state: the old state dict.

    Returns:
        The state dict under the current key names.
    """
    renames = _format1_names(model)
    upgraded: dict[str, Any] = {}
    used: set[str] = set()
    for key in model.state_dict():
        old = _format1_key(key, renames)
        if old in state:
            upgraded[key] = state[old]
            used.add(old)
    upgraded.update({key: value for key, value in state.items() if key not in used})
    return upgraded


def upgrade_optimizer_state(model: nn.Module, old_state: dict[str, Any], optimizer_state: dict[str, Any]) -> dict:
    """Reorder an optimizer state dict saved with format-1 modules to ``model.parameters()``'s current order.

    An optimizer stores its per-parameter state by position in ``model.parameters()``; format 1 registered each
    MLP's parameters Linear, BatchNorm, Linear, … and the library's MLP registers all Linears, then all norms.

    Args:
        model: the current model.
        old_state: the model's format-1 state dict (it gives the old parameter order).
        optimizer_state: the optimizer's saved state dict (one parameter group).

    Returns:
        The optimizer state dict in the current order.
    """
    renames = _format1_names(model)
    current = [_format1_key(name, renames) for name, _ in model.named_parameters()]
    parameter_names = set(current)
    old_order = [key for key in old_state if key in parameter_names]  # a state dict lists parameters in order
    position = {name: i for i, name in enumerate(old_order)}
    if sorted(position) != sorted(current) or len(optimizer_state["param_groups"]) != 1:
        raise ValueError("the optimizer state does not fit this model's parameters")
    moved = {new: position[name] for new, name in enumerate(current)}
    group = dict(optimizer_state["param_groups"][0], params=list(range(len(current))))
    state = {new: optimizer_state["state"][old] for new, old in moved.items() if old in optimizer_state["state"]}
    return {"state": state, "param_groups": [group]}
