"""One row of a dataset, without torch: :class:`Sample` and the direction of a censored target.

Readers of tables (:mod:`cosnet_core.tabular`, the jobs and the Predict page) build samples without loading torch;
:mod:`cosnet_core.data` featurizes them (and re-exports both names).
"""

from __future__ import annotations

from dataclasses import dataclass

from pymatgen.core import Composition, Structure


@dataclass
class Sample:
    """One row of a dataset.

    Attributes:
        id: unique row id.
        composition: the composition c.
        target: the property t (None when unknown, e.g. for prediction).
        structure: the crystal structure s, or None (p_S = 0).
        structure_id: where the structure came from (file name, MP id), used to tell structures apart.
        split: "train", "val", "test" or None.
        formula: the formula text as given.
        censored: None when ``target`` is a measurement; ``"<"`` when it is an upper bound (e.g. a conductivity
            reported as ``<1E-10``: the true value is at most ``target``), ``">"`` when it is a lower bound. Such
            rows are never scored as measurements (:func:`cosnet_core.evaluate.measured_mask`); in training,
            ``TrainConfig.censored`` decides whether they are dropped or enter the censored loss
            (:func:`cosnet_core.train.censored_loss`).
    """

    id: str
    composition: Composition
    target: float | None
    structure: Structure | None = None
    structure_id: str | None = None
    split: str | None = None
    formula: str = ""
    censored: str | None = None


def bound_direction(censored: str | None) -> int:
    """The direction of a censored target: 0 for a measurement, +1 for an upper bound (``<``, ``<=``, ``≤``), −1 for
    a lower bound (``>``, ``>=``, ``≥``).

    Args:
        censored: the sign stored with the row (:attr:`Sample.censored`), or None.

    Returns:
        0, +1 or −1.

    Raises:
        ValueError: a sign that is not a comparison.
    """
    if not censored:
        return 0
    sign = str(censored).strip()
    if sign in ("<", "<=", "≤"):
        return 1
    if sign in (">", ">=", "≥"):
        return -1
    raise ValueError(f"censored sign {censored!r} is not <, <=, > or >=")


__all__ = ["Sample", "bound_direction"]
