"""Domain descriptors of a composition: Magpie statistics (Ward et al., npj Comput. Mater. 2, 16028, 2016).

One definition, used by the random-forest baseline (:mod:`cosnet_core.baselines`) and by the ``descriptors="magpie"``
option of the network (:class:`cosnet_core.models.cosnet.CosNet`): matminer's ``ElementProperty`` with the
``"magpie"`` preset, 22 element properties × 6 statistics (minimum, maximum, range, mean, average deviation, mode)
= 132 numbers per composition. Elements that lack a property value get matminer's imputation (``impute_nan=True``:
the mean of that property over the elements that have it), so every feature is finite.

This module imports no torch (it is used by the baselines and the pages). Features are cached per reduced
composition, so repeated compositions and repeated calls cost one featurization each.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence

import numpy as np
from pymatgen.core import Composition

from cosnet_core.formula import composition_key

MAGPIE_PRESET = "magpie"
#: 22 element properties × 6 statistics.
MAGPIE_FEATURE_COUNT = 132
#: Standardised descriptors are clipped to ± this many training standard deviations before the network sees them:
#: a composition far outside the training rows (an element none of them has) must not blow up the prediction.
STANDARDIZED_CLIP = 6.0


@functools.lru_cache(maxsize=1)
def _featurizer():  # noqa: ANN202 - matminer's ElementProperty (imported lazily: it takes ~2 s)
    import warnings

    from matminer.featurizers.composition import ElementProperty

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ElementProperty.from_preset(MAGPIE_PRESET, impute_nan=True)


def magpie_feature_names() -> list[str]:
    """Names of the 132 Magpie features, in column order (e.g. ``"MagpieData mean Electronegativity"``)."""
    return list(_featurizer().feature_labels())


@functools.lru_cache(maxsize=200_000)
def _magpie_row(key: str) -> tuple[float, ...]:
    """Magpie features of one composition, cached by its :func:`~cosnet_core.formula.composition_key` (the
    features depend on the element fractions only, and the key reads back as the same composition)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        values = _featurizer().featurize(Composition(key))
    return tuple(float(v) for v in values)


def magpie_features(compositions: Iterable[Composition] | Sequence[Composition]) -> np.ndarray:
    """Magpie statistics of each composition.

    Args:
        compositions: pymatgen compositions (any normalisation; only the element fractions matter).

    Returns:
        ``[n, 132]`` float64 array, finite everywhere.

    Raises:
        ValueError: a composition whose features cannot be computed (named in the message).
    """
    rows = []
    for composition in compositions:
        try:
            rows.append(_magpie_row(composition_key(composition)))
        except Exception as error:  # matminer raises assorted errors for exotic elements
            raise ValueError(f"cannot compute Magpie descriptors of {composition.formula}: {error}") from error
    features = np.array(rows, dtype=np.float64).reshape(len(rows), MAGPIE_FEATURE_COUNT)
    if not np.all(np.isfinite(features)):
        bad = int(np.flatnonzero(~np.isfinite(features).all(axis=1))[0])
        raise ValueError(f"Magpie descriptors of row {bad} are not finite")
    return features


def standardization(features: np.ndarray, *, min_std: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of each feature column (to be fitted on training rows only).

    A column that is constant on the training rows gets std 1, so a new row that differs there gets a finite
    standardised value (its difference from the training value) instead of one divided by ~0; other stds are
    floored at ``min_std``. The model also clips standardised values to ±:data:`STANDARDIZED_CLIP`.

    Args:
        features: ``[n, d]``.
        min_std: floor on the standard deviation of non-constant columns.

    Returns:
        ``(mean, std)``, each ``[d]``.
    """
    mean = features.mean(axis=0)
    std = features.std(axis=0)
    std = np.where(std < 1e-12, 1.0, np.maximum(std, min_std))
    return mean, std
