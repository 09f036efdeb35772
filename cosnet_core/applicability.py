"""Is a new row like the rows a model learned from? Warnings that go with every prediction (torch-free).

Three checks, none of which changes the prediction itself:

* **structure ≠ formula**: the structure given with a row has another composition than its formula (e.g. the
  formula LiCoO2 with a Li7La3Zr2O12 CIF). The model would predict a mix of two materials without a word.
* **unseen elements**: elements that appear in no training row. Their embedding vector is known, but the model never
  learned how they act on the target.
* **nearest training compositions**: the ``k`` training compositions closest to the row, with their measured values
  (the mean when a composition was measured several times) and a distance. The distance is the cosine distance
  ``1 − u·v / (|u| |v|)`` between the fractional composition vectors u, v (one entry per element, summing to 1): 0 for
  the same reduced composition, 1 for compositions sharing no element. (The element mover's distance, which also
  knows that Na is closer to Li than to Cl, needs a package that is not installed here.)

Targets are in the model's units (e.g. log10 of a conductivity when the dataset stored log10).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from pymatgen.core import Composition, Structure

NEAREST_K = 3
# Share of atoms (total variation distance of the fractional compositions) above which a structure's composition is
# said to differ from the formula: 1 % tolerates rounding in a CIF's occupancies, not another compound.
STRUCTURE_TOLERANCE = 0.01
NO_TRAINING_ROWS_NOTE = ("the model file predates the storage of its training rows (trained before 2026-12-03): no "
                         "nearest training compositions can be given; train it again to get them")


def fractions(composition: Composition) -> dict[str, float]:
    """The fractional composition ``{element: share of atoms}`` (shares sum to 1; vacancies and oxidation states
    ignored)."""
    amounts: dict[str, float] = {}
    for element, amount in composition.items():
        symbol = getattr(element, "symbol", None) or str(element)
        amounts[symbol] = amounts.get(symbol, 0.0) + float(amount)
    total = sum(amounts.values())
    return {symbol: amount / total for symbol, amount in amounts.items()} if total > 0 else {}


def structure_mismatch(composition: Composition, structure: Structure | None) -> str | None:
    """Why the structure does not belong to the formula, or None when it does (or there is no structure).

    Args:
        composition: the row's composition (from its formula).
        structure: the row's structure.

    Returns:
        A sentence naming both compositions and the share of atoms that differ, or None.
    """
    if structure is None:
        return None
    given, built = fractions(composition), fractions(structure.composition)
    differ = 0.5 * sum(abs(given.get(e, 0.0) - built.get(e, 0.0)) for e in set(given) | set(built))
    if differ <= STRUCTURE_TOLERANCE:
        return None
    return (f"the structure's composition {structure.composition.reduced_formula} differs from the formula "
            f"{composition.reduced_formula} ({differ:.0%} of the atoms): the prediction mixes two materials")


@dataclass
class Neighbour:
    """A training composition near a new row.

    Attributes:
        formula: the training composition (reduced formula).
        target: its measured value (the mean of its rows).
        n_rows: how many training rows measured it.
        distance: cosine distance of the fractional composition vectors (0 = same reduced composition).
    """

    formula: str
    target: float
    n_rows: int
    distance: float


class TrainingDomain:
    """The compositions a model was trained on, for :meth:`unseen_elements` and :meth:`nearest`.

    Args:
        formulas: the training rows' formulas (unparseable ones are skipped).
        targets: their measured values, in the model's units.
    """

    def __init__(self, formulas: Sequence[str], targets: Sequence[float]) -> None:
        from cosnet_core.formula import FormulaError, parse_formula

        grouped: dict[str, tuple[dict[str, float], list[float]]] = {}
        for formula, target in zip(formulas, targets, strict=True):
            try:
                composition = parse_formula(str(formula))
            except FormulaError:
                continue
            key = composition.reduced_formula
            grouped.setdefault(key, (fractions(composition), []))[1].append(float(target))
        self.formulas = list(grouped)
        self.targets = np.array([float(np.mean(values)) for _, values in grouped.values()])
        self.counts = np.array([len(values) for _, values in grouped.values()], dtype=int)
        self.elements = sorted({e for vector, _ in grouped.values() for e in vector})
        self._index = {e: i for i, e in enumerate(self.elements)}
        matrix = np.zeros((len(self.formulas), len(self.elements)))
        for row, (vector, _) in enumerate(grouped.values()):
            for element, share in vector.items():
                matrix[row, self._index[element]] = share
        self._unit = matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)

    def __len__(self) -> int:
        return len(self.formulas)

    def unseen_elements(self, composition: Composition) -> list[str]:
        """The elements of ``composition`` that no training row holds, in the formula's order."""
        return [e for e in fractions(composition) if e not in self._index]

    def nearest(self, composition: Composition, k: int = NEAREST_K) -> list[Neighbour]:
        """The ``k`` training compositions with the smallest cosine distance to ``composition``, nearest first
        (ties in training-row order)."""
        if not self.formulas:
            return []
        vector = np.zeros(len(self.elements))
        for element, share in fractions(composition).items():
            if element in self._index:
                vector[self._index[element]] = share
        norm = float(np.linalg.norm(list(fractions(composition).values())))  # unseen elements count in |v|
        similarity = self._unit @ vector / max(norm, 1e-12)
        distance = np.clip(1.0 - similarity, 0.0, 1.0)
        order = np.argsort(np.round(distance, 12), kind="stable")[:k]
        return [Neighbour(self.formulas[i], float(self.targets[i]), int(self.counts[i]), float(distance[i]))
                for i in order]


def distinct_rows(sets: Sequence[tuple[Sequence[str], Sequence[float]]]) -> tuple[list[str], list[float]]:
    """Several seeds' training rows ``[(formulas, targets), …]`` as one ``(formulas, targets)``, each distinct
    (formula, target) pair once: a row every seed trained on counts once, not once per seed."""
    formulas: list[str] = []
    targets: list[float] = []
    seen: set[tuple[str, float]] = set()
    for set_formulas, set_targets in sets:
        for formula, target in zip(set_formulas, set_targets, strict=True):
            if (str(formula), float(target)) not in seen:
                seen.add((str(formula), float(target)))
                formulas.append(str(formula))
                targets.append(float(target))
    return formulas, targets


def domain_of(training_rows: tuple[Sequence[str], Sequence[float]] | None) -> TrainingDomain | None:
    """A :class:`TrainingDomain` from ``(formulas, targets)``, or None when the model did not keep them."""
    if not training_rows:
        return None
    return TrainingDomain(*training_rows)


def nearest_columns(k: int = NEAREST_K) -> list[str]:
    """The nearest-neighbour column names: ``nearest_1_composition, nearest_1_target, nearest_1_distance, …``."""
    return [f"nearest_{i}_{part}" for i in range(1, k + 1) for part in ("composition", "target", "distance")]


def assess(
    compositions: Sequence[Composition],
    structures: Sequence[Structure | None],
    domain: TrainingDomain | None,
    *,
    k: int = NEAREST_K,
) -> pd.DataFrame:
    """The applicability warnings of each row, in the rows' order.

    Args:
        compositions: each row's composition.
        structures: each row's structure (None when it has none).
        domain: the model's training compositions, or None when the model file does not hold them.
        k: how many nearest training compositions to give.

    Returns:
        One row per input row: ``applicability`` (the warnings in words, "" when there is none),
        ``structure_mismatch`` (bool), ``unseen_elements`` (comma-separated), and, when ``domain`` is given,
        ``nearest_i_composition``, ``nearest_i_target``, ``nearest_i_distance`` for i = 1 … k.
    """
    records = []
    for composition, structure in zip(compositions, structures, strict=True):
        notes = []
        mismatch = structure_mismatch(composition, structure)
        if mismatch:
            notes.append(mismatch)
        record: dict[str, object] = {"structure_mismatch": mismatch is not None, "unseen_elements": ""}
        if domain is not None:
            unseen = domain.unseen_elements(composition)
            if unseen:
                record["unseen_elements"] = ", ".join(unseen)
                notes.append(f"element(s) {', '.join(unseen)} appear in no training row")
            neighbours = domain.nearest(composition, k)
            for i in range(1, k + 1):
                found = neighbours[i - 1] if i <= len(neighbours) else None
                record[f"nearest_{i}_composition"] = found.formula if found else ""
                record[f"nearest_{i}_target"] = found.target if found else np.nan
                record[f"nearest_{i}_distance"] = round(found.distance, 4) if found else np.nan
        record["applicability"] = "; ".join(notes)
        records.append(record)
    columns = ["applicability", "structure_mismatch", "unseen_elements"] + (nearest_columns(k) if domain else [])
    return pd.DataFrame(records, columns=columns)


def describe_neighbours(neighbours: Sequence[Neighbour], unit: str = "") -> str:
    """``"Li7La3Zr2O12 (−3.21 S/cm, 3 rows; distance 0.012), …"`` for a caption."""
    suffix = f" {unit}" if unit else ""
    return ", ".join(
        f"{n.formula} ({n.target:.3g}{suffix}" + (f", mean of {n.n_rows} rows" if n.n_rows > 1 else "")
        + f"; distance {n.distance:.3f})"
        for n in neighbours
    )
