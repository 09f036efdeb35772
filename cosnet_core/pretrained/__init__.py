"""Pretrained composition encoders shipped with COSNet Studio, and their manifest (no torch imported here).

``manifest.json`` beside this file lists every shipped checkpoint: its file and sha256, the data files it learned
from with their sha256, the command that rebuilds it (``python -m cosnet_core pretrain ... --ship NAME``), its
architecture and its validation errors. Pages list the names with :func:`shipped_checkpoints`; training resolves a
name with :func:`resolve_checkpoint` and loads it with :func:`cosnet_core.pretrain.load_encoder_into`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from cosnet_core.errors import InputError

PRETRAINED_DIR = Path(__file__).resolve().parent
MANIFEST = PRETRAINED_DIR / "manifest.json"


class PretrainError(InputError):
    """A pretraining table or checkpoint that cannot be used (the message says which and why)."""


def sha256_of(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest() -> dict[str, Any]:
    """The shipped checkpoints' manifest (an empty list of checkpoints when none is shipped)."""
    if not MANIFEST.is_file():
        return {"checkpoints": []}
    return json.loads(MANIFEST.read_text())


def shipped_checkpoints() -> list[str]:
    """Names of the checkpoints shipped in ``cosnet_core/pretrained/`` (usable as ``init_from``)."""
    return [entry["name"] for entry in read_manifest()["checkpoints"]]


def resolve_checkpoint(name_or_path: str | Path) -> Path:
    """The file of a shipped checkpoint name, or the given path.

    Raises:
        PretrainError: neither a shipped name nor an existing file.
    """
    for entry in read_manifest()["checkpoints"]:
        if entry["name"] == str(name_or_path):
            return PRETRAINED_DIR / entry["file"]
    path = Path(name_or_path)
    if path.is_file():
        return path
    names = ", ".join(shipped_checkpoints()) or "none"
    raise PretrainError(f"pretrained encoder {str(name_or_path)!r} is neither a shipped checkpoint ({names}) nor a file")




def is_compatible(name: str, *, embedding: str, hidden_dim: int, roost_layers: int = 3, roost_heads: int = 3,
                  roost_mlp_hidden: int | None = None) -> bool:
    """Whether the shipped checkpoint ``name`` fits a model of this embedding and g_C architecture.

    Used to apply the default encoder only where it fits (a user who narrows the network gets a fresh g_C, not an
    error); an encoder the user names explicitly is checked strictly by :func:`cosnet_core.pretrain.load_encoder_into`.
    """
    for entry in read_manifest()["checkpoints"]:
        if entry["name"] == name:
            config = entry.get("encoder_config", {})
            return entry.get("embedding") == embedding and (
                config.get("hidden_dim"), config.get("roost_layers"), config.get("roost_heads"),
                config.get("roost_mlp_hidden"),
            ) == (hidden_dim, roost_layers, roost_heads, roost_mlp_hidden)
    return False
