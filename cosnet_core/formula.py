"""Formula parsing without torch: text → pymatgen ``Composition``, element fractions and the composition key.

The domain half of :mod:`cosnet_core.composition` (which builds the ROOST input graphs of eq. (1) and imports torch).
Ingest, matching, the database layer and the pages import formulas from here, so none of them loads torch.
"""

from __future__ import annotations

import re

from pymatgen.core import Composition
from pymatgen.core.periodic_table import DummySpecies, Element

from cosnet_core.errors import InputError

# An element symbol followed by an explicit zero amount ("Fe0O3", "Li0.0"); pymatgen drops such elements silently.
_ZERO_AMOUNT = re.compile(r"[A-Z][a-z]?(?:0+(?:\.0*)?|\.0+)(?![\d.])")
_INVISIBLE = "\ufeff\u200b\u200c\u200d\u00a0"
# Every number written in a formula (amounts and mixture coefficients, with an optional exponent).
_NUMBER = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
# The amounts a formula may hold: beyond these a float loses the composition (1e400 is infinite, 1e-400 is zero,
# and fractions of 1 in 1e13 vanish next to 1); no experimental table needs them.
MIN_AMOUNT, MAX_AMOUNT = 1e-6, 1e6


class FormulaError(InputError):
    """A formula that cannot become a composition graph.

    Attributes:
        formula: the text as given (also ``item``).
        reason: why it was refused.
    """

    def __init__(self, formula: str, reason: str) -> None:
        super().__init__(formula, reason)

    @property
    def formula(self) -> str:
        """The formula as given."""
        return str(self.item)

    def item_label(self) -> str:
        """``formula 'Xx2'``."""
        return f"formula {self.item!r}"


def _clean(text: str) -> str:
    cleaned = text
    for char in _INVISIBLE:
        cleaned = cleaned.replace(char, " ")
    cleaned = cleaned.strip().strip("\"'").strip()
    # Mixture notation "(Li2S)0.75 (P2S5)0.25": pymatgen reads it, but spaces elsewhere are noise.
    return re.sub(r"\s+", "", cleaned)


def parse_formula(text: str) -> Composition:
    """Parse a formula as found in experimental tables.

    Accepts fractional stoichiometry (``Li6.05P0.95Si0.05S5Br``), parentheses (``Ca3(PO4)2``) and mixture notation
    (``(Li2S)0.75(P2S5)0.25`` = Li1.5 P0.5 S2, also with a space between the parts); strips quotes, whitespace and a
    UTF-8 BOM.

    Args:
        text: the formula text.

    Returns:
        The composition (not normalised).

    Raises:
        FormulaError: empty, unparseable, negative or zero amounts, or unknown elements; names the formula.
    """
    if not isinstance(text, str):
        raise FormulaError(str(text), f"expected a formula string, got {type(text).__name__}")
    cleaned = _clean(text)
    if not cleaned:
        raise FormulaError(text, "the formula is empty")
    if _ZERO_AMOUNT.search(cleaned):
        raise FormulaError(text, "an element has a zero amount")
    for number in _NUMBER.findall(cleaned):
        amount = float(number)
        written_zero = not any(d in "123456789" for d in number.lower().split("e")[0])
        if not written_zero and not MIN_AMOUNT <= amount <= MAX_AMOUNT:
            raise FormulaError(text, f"the amount {number} is outside {MIN_AMOUNT:g} to {MAX_AMOUNT:g}")
    try:
        composition = Composition(cleaned)
    except Exception as error:  # pymatgen raises ValueError and others with terse messages
        reason = "an amount is negative" if "negative" in str(error) else f"cannot be parsed ({error})"
        raise FormulaError(text, reason) from error
    unknown = [str(el) for el in composition if isinstance(el, DummySpecies)]
    if unknown:
        raise FormulaError(text, f"unknown element(s) {', '.join(unknown)}")
    if len(composition) == 0 or composition.num_atoms <= 0:
        raise FormulaError(text, "the formula has no atoms")
    if any(not 0 < amount < float("inf") for amount in composition.values()):
        raise FormulaError(text, "an element has a zero, negative or infinite amount")
    return composition


def element_fractions(composition: Composition) -> list[tuple[str, float]]:
    """Elements with their fractional amounts (sum 1), in a canonical order.

    Args:
        composition: any composition (species are reduced to their elements).

    Returns:
        ``[(symbol, fraction), ...]`` sorted by electronegativity then symbol.
    """
    amounts = composition.element_composition.get_el_amt_dict()
    total = sum(amounts.values())
    return [(symbol, amounts[symbol] / total) for symbol in sorted(amounts, key=_sort_key)]


def _sort_key(symbol: str) -> tuple[float, str]:
    x = Element(symbol).X
    return (x if x == x else 100.0, symbol)  # NaN electronegativity (noble gases) sorts last


def composition_key(composition: Composition) -> str:
    """The project's one key for "the same composition": equal for formulas that differ only in scale, element
    order or species (Li2O = Li4O2 = OLi2 = Li+2O2-), different as soon as an element fraction differs by 1e-6.

    Ingestion stores it with each row (``dataset_rows.composition_key``), the grouped split groups by it, the
    augmentation (eq. 13) counts structures per key, pretraining merges table rows by it, and the Magpie features are
    cached by it. Fractional formulas (``Li6.05P0.95Si0.05S5Br``) get their own key.

    Args:
        composition: any composition.

    Returns:
        Element symbols in alphabetical order, each followed by its fraction to 6 decimals and separated by spaces,
        e.g. ``"Li0.666667 O0.333333"``; pymatgen reads it back as the same composition. ``""`` for an empty one.
    """
    fractions = dict(element_fractions(composition)) if len(composition) else {}
    return " ".join(f"{symbol}{round(fractions[symbol], 6):.6f}" for symbol in sorted(fractions))


__all__ = ["MAX_AMOUNT", "MIN_AMOUNT", "FormulaError", "composition_key", "element_fractions", "parse_formula"]
