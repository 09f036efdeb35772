"""Structure features from a pretrained universal interatomic potential (CHGNet), an option beyond the paper.

CHGNet (Deng et al., Nat. Mach. Intell. 5, 1031, 2023) was trained on ~1.5 million relaxation frames of the
Materials Project. Its crystal feature vector (``return_crystal_feas=True``: 64 numbers, the *sum* of its atom
features after the last interaction block, so a 2×1×1 supercell doubles it) divided by the number of sites, i.e.
the mean atom feature, summarises local environments that the small de-CGCNN of eq. (2)
cannot learn from a few hundred measured rows. With ``TrainConfig.structure_features = "chgnet"`` the structure side
becomes (:class:`cosnet_core.models.cosnet.CosNet`)

    U = MLP_U(clip((u − μ_u) / σ_u, ±6))          u = CHGNet crystal features of s
    S = W_u (g_S(s) ⊕ U)                          a linear map back to width h

so S, w_S and p_S keep their meaning (S is still computed only where a structure exists).

CHGNet needs an ordered cell. A disordered site (partial occupancy or mixed species, as in 249 of 254 OBELiX
CIFs) is replaced by its majority species at full occupancy, keeping every site; this over-fills partly vacant
sites, and the de-CGCNN side still sees the exact occupancy-weighted cell. The weights are the ones shipped inside
the ``chgnet`` wheel (version ``CHGNET_MODEL``), so no network access is needed.

Features are cached per structure content hash (:func:`cosnet_core.structure.structure_hash`) in memory and,
when a directory is given, on disk as ``<directory>/chgnet-<version>-per-site/<hash>.npy``.
"""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pymatgen.core import Structure

#: Version of the CHGNet weights (shipped inside the pinned ``chgnet`` wheel).
CHGNET_MODEL = "0.3.0"
#: Width of CHGNet's crystal feature vector.
CHGNET_FEATURE_COUNT = 64
#: Names accepted by ``TrainConfig.structure_features``.
STRUCTURE_FEATURE_CHOICES = ("none", "chgnet")
#: Structures per CHGNet call (CHGNet's three-body graphs of 100–350-site cells take gigabytes in a batch).
_BATCH = 1


class UniversalFeatureError(RuntimeError):
    """CHGNet is not installed or could not featurize a structure (the message says which and why)."""


@functools.lru_cache(maxsize=1)
def _chgnet():  # noqa: ANN202 - chgnet.model.CHGNet, imported lazily (it is an optional dependency)
    try:
        from chgnet.model import CHGNet
    except ImportError as error:
        raise UniversalFeatureError(
            "structure features 'chgnet' need the chgnet package: pip install -r requirements.txt"
        ) from error
    model = CHGNet.load(model_name=CHGNET_MODEL, use_device="cpu", verbose=False)
    model.eval()
    return model


def ordered_for_chgnet(structure: Structure) -> Structure:
    """The cell with every disordered site replaced by its majority species at full occupancy.

    Args:
        structure: any pymatgen structure (ordered or not).

    Returns:
        An ordered structure with the same lattice and sites (the input itself when it is ordered).
    """
    if structure.is_ordered:
        return structure
    species = [max(site.species.items(), key=lambda kv: (kv[1], str(kv[0])))[0] for site in structure]
    return Structure(structure.lattice, species, structure.frac_coords)


_memory: dict[str, np.ndarray] = {}


def chgnet_features(
    structures: Sequence[Structure],
    *,
    cache_dir: str | Path | None = None,
    hashes: Sequence[str] | None = None,
    labels: Sequence[str] | None = None,
) -> np.ndarray:
    """CHGNet crystal features of each structure.

    Args:
        structures: the structures.
        cache_dir: optional folder for the on-disk cache.
        hashes: their content hashes when the caller has them (else computed).
        labels: how error messages name each structure (default "structure N", 1-based).

    Returns:
        float32 ``[len(structures), 64]``.

    Raises:
        UniversalFeatureError: chgnet is missing, or a structure could not be featurized (names it by its label).
    """
    from cosnet_core.structure_io import structure_hash

    keys = list(hashes) if hashes is not None else [structure_hash(s) for s in structures]
    names = list(labels) if labels is not None else [f"structure {i + 1}" for i in range(len(structures))]
    folder = Path(cache_dir) / f"chgnet-{CHGNET_MODEL}-per-site" if cache_dir is not None else None
    result = np.zeros((len(structures), CHGNET_FEATURE_COUNT), dtype=np.float32)
    missing: dict[str, list[int]] = {}
    for index, key in enumerate(keys):
        if key in _memory:
            result[index] = _memory[key]
            continue
        path = folder / f"{key}.npy" if folder is not None else None
        if path is not None and path.is_file():
            try:
                _memory[key] = np.load(path).astype(np.float32).reshape(CHGNET_FEATURE_COUNT)
                result[index] = _memory[key]
                continue
            except (OSError, ValueError):
                path.unlink(missing_ok=True)
        missing.setdefault(key, []).append(index)
    if missing:
        model = _chgnet()
        todo = list(missing)
        for start in range(0, len(todo), _BATCH):
            chunk = todo[start : start + _BATCH]
            cells = [ordered_for_chgnet(structures[missing[key][0]]) for key in chunk]
            try:
                outputs = model.predict_structure(cells, task="e", return_crystal_feas=True, batch_size=_BATCH)
            except Exception as error:  # noqa: BLE001 - CHGNet raises many kinds; name the structure instead
                raise UniversalFeatureError(
                    f"CHGNet could not featurize {names[missing[chunk[0]][0]]}: {error}"
                ) from error
            if isinstance(outputs, dict):
                outputs = [outputs]
            for key, cell, output in zip(chunk, cells, outputs, strict=True):
                summed = np.asarray(output["crystal_fea"], dtype=np.float64).reshape(CHGNET_FEATURE_COUNT)
                vector = (summed / len(cell)).astype(np.float32)  # CHGNet pools by a sum: per site = intensive
                if not np.all(np.isfinite(vector)):
                    raise UniversalFeatureError(f"CHGNet gave non-finite features for {names[missing[key][0]]}")
                _memory[key] = vector
                for index in missing[key]:
                    result[index] = vector
                if folder is not None:
                    folder.mkdir(parents=True, exist_ok=True)
                    handle, temporary = tempfile.mkstemp(dir=folder, suffix=".npy")
                    os.close(handle)
                    np.save(temporary, vector)
                    os.replace(temporary, folder / f"{key}.npy")
    return result


__all__ = [
    "CHGNET_FEATURE_COUNT",
    "CHGNET_MODEL",
    "STRUCTURE_FEATURE_CHOICES",
    "UniversalFeatureError",
    "chgnet_features",
    "ordered_for_chgnet",
]
