"""Match compositions to candidate crystal structures from several sources, ranked for review.

In the paper, structures for experimental rows were matched from the Materials Project by hand; this module
proposes them, ranked, so that a person only reviews what is not obvious.

For one composition:

1. **Exact matches**: every source's structures with the same reduced formula (``Fe2O3`` = ``Fe4O6``).
2. **Approximate matches** (only when there is no exact match, unless asked): *parent structures* of doped or
   off-stoichiometric compositions such as ``Li6.05P0.95Si0.05S5Br`` (parent ``Li6PS5Br``). Candidates are taken
   from structures made of the same element set, or of the element set without some *dopant elements*: elements
   whose atomic fraction is below ``dopant_fraction`` (default 0.03 = 3 at.%). Substitutional dopants in the
   experimental tables stay below that (Si in the argyrodite above: 0.4 at.%; Ta or Al in LLZO garnets:
   1–2.6 at.%), while an element that makes up more than a few percent of the atoms is part of the structure type
   (Ge in Li10GeP2S12 is 4 at.%) and its absence would change the structure, not dope it. Candidates further than
   ``max_distance`` from the composition are dropped.
3. **Ranking**: exact before approximate; approximate ones by composition distance; then experimental
   (``theoretical`` False) before unknown before theoretical; then lower energy above hull (unknown last); then
   fewer sites; then source and id (a stable order).

**Composition distance** between compositions ``a`` and ``b`` with atomic fractions ``x_a(e)`` and ``x_b(e)``
(amounts divided by the total, over the union of elements):

    d(a, b) = ½ Σ_e |x_a(e) − x_b(e)|

i.e. half the L1 distance between the normalised fractional compositions (the total-variation distance). It lies
in [0, 1] and reads as *the fraction of atoms that must change element to turn one composition into the other*:
0 for the same reduced formula, 0.0059 for ``Li6.05P0.95Si0.05S5Br`` against ``Li6PS5Br``, 0.029 for
``Fe2O3`` against ``Fe3O4``, 1 for compositions with no element in common.

The ``status`` of a result says what a reviewer has to do: ``"unambiguous"`` (exactly one exact candidate),
``"ambiguous"`` (several exact candidates, e.g. polymorphs), ``"approximate"`` (only parents) or
``"no_candidate"``. :func:`auto_accept` picks a candidate without review only for exact matches and only under
an explicit :class:`AutoAcceptRule`; everything else waits for review.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from pymatgen.core import Composition

from cosnet_core.errors import InputError
from cosnet_core.formula import FormulaError, parse_formula
from cosnet_core.sources.base import StructureCandidate, StructureSource, element_set

MatchStatus = Literal["no_candidate", "unambiguous", "ambiguous", "approximate"]

DEFAULT_DOPANT_FRACTION = 0.03
DEFAULT_MAX_DISTANCE = 0.10
MAX_DOPANT_ELEMENTS = 3  # at most 2**3 element subsets are searched per composition
ON_HULL_TOLERANCE = 1e-6  # eV/atom
_MP_ID = re.compile(r"^mp-\d+$")


class MatchingError(InputError):
    """A composition that cannot be matched (for example an unparseable formula), naming the row.

    Attributes:
        row: position of the composition in the input (None for a single match).
        formula: the formula as given.
        reason: why.
    """

    def __init__(self, row: int | None, formula: str, reason: str) -> None:
        ValueError.__init__(self, row, formula, reason)  # three arguments, so that it pickles back
        self.row = row
        self.formula = formula
        self.item = formula
        self.reason = reason

    def __str__(self) -> str:
        where = f"row {self.row}: " if self.row is not None else ""
        return f"{where}formula {self.formula!r}: {self.reason}"


@dataclass
class RankedCandidate:
    """A candidate structure as proposed for one composition.

    Attributes:
        candidate: the structure candidate.
        rank: 1 for the best.
        exact: same reduced formula as the composition.
        composition_distance: d(composition, candidate) (0 when exact; see the module docstring).
        score: ``1 − composition_distance`` (1 for exact matches); candidates with equal scores are ordered by
            rank (experimental, energy above hull, sites).
        missing_elements: dopant elements of the composition absent from the candidate (empty when it has the
            composition's element set).
    """

    candidate: StructureCandidate
    rank: int
    exact: bool
    composition_distance: float
    score: float
    missing_elements: tuple[str, ...] = ()

    @property
    def approximate(self) -> bool:
        """Not an exact reduced-formula match."""
        return not self.exact


@dataclass
class MatchResult:
    """Candidates for one composition, ranked, with the status a reviewer sees.

    Attributes:
        formula: the formula as given.
        composition: the parsed composition.
        reduced_formula: its reduced formula.
        candidates: ranked candidates (at most ``max_candidates``).
        status: ``"no_candidate"``, ``"unambiguous"``, ``"ambiguous"`` or ``"approximate"``.
        n_found: number of candidates found before truncation to ``max_candidates``.
        sources: names of the sources searched.
    """

    formula: str
    composition: Composition
    reduced_formula: str
    candidates: list[RankedCandidate] = field(default_factory=list)
    status: MatchStatus = "no_candidate"
    n_found: int = 0
    sources: tuple[str, ...] = ()

    @property
    def exact_candidates(self) -> list[RankedCandidate]:
        """The exact reduced-formula candidates, best first."""
        return [ranked for ranked in self.candidates if ranked.exact]

    @property
    def best(self) -> RankedCandidate | None:
        """The top-ranked candidate (not necessarily acceptable without review)."""
        return self.candidates[0] if self.candidates else None


def fractional_amounts(composition: Composition) -> dict[str, float]:
    """Atomic fractions of a composition (amounts divided by their sum), keyed by element symbol."""
    return {str(element): float(amount) for element, amount in composition.fractional_composition.get_el_amt_dict().items()}


def composition_distance(a: Composition | dict[str, float], b: Composition | dict[str, float]) -> float:
    """d(a, b) = ½ Σ_e |x_a(e) − x_b(e)|, half the L1 distance between atomic-fraction vectors.

    Args:
        a: a composition, or its atomic fractions (summing to 1).
        b: another one.

    Returns:
        A number in [0, 1]: the fraction of atoms that must change element to turn ``a`` into ``b``.
    """
    x_a = a if isinstance(a, dict) else fractional_amounts(a)
    x_b = b if isinstance(b, dict) else fractional_amounts(b)
    return 0.5 * sum(abs(x_a.get(element, 0.0) - x_b.get(element, 0.0)) for element in set(x_a) | set(x_b))


def dopant_elements(composition: Composition, dopant_fraction: float = DEFAULT_DOPANT_FRACTION) -> tuple[str, ...]:
    """Elements present below ``dopant_fraction`` of the atoms (candidates for absence in a parent structure).

    At most :data:`MAX_DOPANT_ELEMENTS` of the rarest are returned, and never all elements of the composition.

    Args:
        composition: the composition.
        dopant_fraction: atomic-fraction threshold.

    Returns:
        Element symbols, rarest first.
    """
    fractions = fractional_amounts(composition)
    minor = sorted((x, element) for element, x in fractions.items() if x < dopant_fraction)
    if len(minor) >= len(fractions):
        minor = minor[: len(fractions) - 1]
    return tuple(element for _, element in minor[:MAX_DOPANT_ELEMENTS])


def rank_key(ranked: RankedCandidate) -> tuple:
    """Sort key of the ranking: exact first; then composition distance; experimental (``theoretical`` False)
    before unknown before theoretical; lower energy above hull (unknown last); fewer sites (unknown last);
    then source and id."""
    candidate = ranked.candidate
    theoretical_order = {False: 0, None: 1, True: 2}[candidate.theoretical]
    energy = candidate.energy_above_hull if candidate.energy_above_hull is not None else math.inf
    nsites = candidate.nsites if candidate.nsites is not None else math.inf
    return (
        0 if ranked.exact else 1,
        round(ranked.composition_distance, 9),
        theoretical_order,
        energy,
        nsites,
        candidate.source,
        candidate.external_id,
    )


def rank_candidates(ranked: Iterable[RankedCandidate]) -> list[RankedCandidate]:
    """Sort by :func:`rank_key` and number the ranks from 1."""
    ordered = sorted(ranked, key=rank_key)
    for position, item in enumerate(ordered, start=1):
        item.rank = position
    return ordered


def _candidate_fractions(candidate: StructureCandidate, cache: dict[str, dict[str, float]]) -> dict[str, float]:
    fractions = cache.get(candidate.formula)
    if fractions is None:
        fractions = fractional_amounts(Composition(candidate.formula))
        cache[candidate.formula] = fractions
    return fractions


def _identity(candidate: StructureCandidate) -> tuple[str, str]:
    """Key under which two candidates are the same entry: a Materials Project id is the same material whichever
    source holds it (the library imported from MP and the MP API); other ids are unique within their source."""
    if _MP_ID.match(candidate.external_id):
        return "mp-id", candidate.external_id
    return candidate.key


def _status(candidates: Sequence[RankedCandidate]) -> MatchStatus:
    n_exact = sum(ranked.exact for ranked in candidates)
    if n_exact == 1:
        return "unambiguous"
    if n_exact > 1:
        return "ambiguous"
    return "approximate" if candidates else "no_candidate"


def match_composition(
    composition: Composition | str,
    sources: Sequence[StructureSource],
    *,
    max_candidates: int = 10,
    dopant_fraction: float = DEFAULT_DOPANT_FRACTION,
    max_distance: float = DEFAULT_MAX_DISTANCE,
    approximate_when_exact: bool = False,
    _fraction_cache: dict[str, dict[str, float]] | None = None,
) -> MatchResult:
    """Candidate structures for one composition, ranked (see the module docstring for the rules).

    Args:
        composition: a composition or a formula (parsed with :func:`cosnet_core.composition.parse_formula`).
        sources: structure sources, searched in order; a candidate already found is dropped (same source and id,
            or the same Materials Project id from another source).
        max_candidates: keep at most this many candidates (``n_found`` tells how many there were).
        dopant_fraction: elements below this atomic fraction may be absent from a parent structure.
        max_distance: largest composition distance of an approximate candidate.
        approximate_when_exact: also list parent structures when an exact match exists.

    Returns:
        The ranked result with its status.

    Raises:
        MatchingError: the formula cannot be parsed (names it and the reason).
        cosnet_core.sources.base.SourceUnavailable: a source cannot answer.
    """
    if isinstance(composition, Composition):
        formula = composition.formula
    else:
        formula = str(composition)
        try:
            composition = parse_formula(formula)
        except FormulaError as error:
            raise MatchingError(None, formula, error.reason) from error
    reduced_formula = composition.reduced_formula
    fraction_cache = _fraction_cache if _fraction_cache is not None else {}
    own_fractions = fractional_amounts(composition)

    seen: set[tuple[str, str]] = set()
    found: list[RankedCandidate] = []
    for source in sources:
        for candidate in source.search_formula(reduced_formula):
            if _identity(candidate) not in seen:
                seen.add(_identity(candidate))
                found.append(RankedCandidate(candidate, rank=0, exact=True, composition_distance=0.0, score=1.0))

    if approximate_when_exact or not found:
        own_elements = element_set(own_fractions)
        dopants = dopant_elements(composition, dopant_fraction)
        subsets = [
            own_elements - set(dropped)
            for size in range(len(dopants) + 1)
            for dropped in itertools.combinations(dopants, size)
        ]
        for source in sources:
            for elements in subsets:
                missing = tuple(sorted(own_elements - elements))
                for candidate in source.search_chemsys(elements):
                    if _identity(candidate) in seen or candidate.formula == reduced_formula:
                        continue
                    distance = composition_distance(own_fractions, _candidate_fractions(candidate, fraction_cache))
                    if distance > max_distance:
                        continue
                    seen.add(_identity(candidate))
                    found.append(
                        RankedCandidate(
                            candidate,
                            rank=0,
                            exact=False,
                            composition_distance=distance,
                            score=1.0 - distance,
                            missing_elements=missing,
                        )
                    )

    ranked = rank_candidates(found)
    kept = ranked[:max_candidates]
    return MatchResult(
        formula=formula,
        composition=composition,
        reduced_formula=reduced_formula,
        candidates=kept,
        status=_status(ranked),
        n_found=len(ranked),
        sources=tuple(source.name for source in sources),
    )


def match_many(
    compositions: Sequence[Composition | str],
    sources: Sequence[StructureSource],
    progress: Callable[[int, int], object] | None = None,
    **options: object,
) -> list[MatchResult]:
    """:func:`match_composition` for many compositions (for a bulk-matching job).

    Repeated reduced formulas are searched once (their results share candidates but each row gets its own
    :class:`MatchResult`).

    Args:
        compositions: compositions or formulas, one per row.
        sources: structure sources.
        progress: called as ``progress(i, n)`` after row ``i`` (1-based) of ``n``.
        **options: keyword options of :func:`match_composition` (``max_candidates``, ``dopant_fraction`` …).

    Returns:
        One result per row, in input order.

    Raises:
        MatchingError: a formula cannot be parsed (names the row, 0-based, and the formula).
    """
    results: list[MatchResult] = []
    by_formula: dict[tuple[str, tuple[tuple[str, float], ...]], MatchResult] = {}
    fraction_cache: dict[str, dict[str, float]] = {}
    total = len(compositions)
    for row, item in enumerate(compositions):
        if isinstance(item, Composition):
            composition, formula = item, item.formula
        else:
            formula = str(item)
            try:
                composition = parse_formula(formula)
            except FormulaError as error:
                raise MatchingError(row, formula, error.reason) from error
        # The same normalised composition gives the same candidates: reuse them.
        signature = (
            composition.reduced_formula,
            tuple(sorted((element, round(x, 9)) for element, x in fractional_amounts(composition).items())),
        )
        shared = by_formula.get(signature)
        if shared is None:
            shared = match_composition(composition, sources, _fraction_cache=fraction_cache, **options)  # type: ignore[arg-type]
            by_formula[signature] = shared
        results.append(
            MatchResult(
                formula=formula,
                composition=composition,
                reduced_formula=shared.reduced_formula,
                candidates=list(shared.candidates),
                status=shared.status,
                n_found=shared.n_found,
                sources=shared.sources,
            )
        )
        if progress is not None:
            progress(row + 1, total)
    return results


@dataclass(frozen=True)
class AutoAcceptRule:
    """When a match may be accepted without review. Approximate candidates are never accepted automatically.

    Attributes:
        unambiguous: accept the only exact candidate of an ``"unambiguous"`` result.
        best_exact_experimental_on_hull: for an ``"ambiguous"`` result, accept the exact candidate that is
            experimental (``theoretical`` False) and on the hull (energy above hull 0), when exactly one is.
        require_experimental: refuse candidates that are theoretical or of unknown origin.
        max_energy_above_hull: refuse candidates above this energy (eV/atom) or with an unknown energy.
    """

    unambiguous: bool = True
    best_exact_experimental_on_hull: bool = False
    require_experimental: bool = False
    max_energy_above_hull: float | None = None

    def allows(self, candidate: StructureCandidate) -> bool:
        """Whether the candidate passes the rule's property requirements."""
        if self.require_experimental and candidate.theoretical is not False:
            return False
        if self.max_energy_above_hull is not None and (
            candidate.energy_above_hull is None or candidate.energy_above_hull > self.max_energy_above_hull
        ):
            return False
        return True


AUTO_ACCEPT_RULES: dict[str, AutoAcceptRule] = {
    "never": AutoAcceptRule(unambiguous=False),
    "unambiguous": AutoAcceptRule(),
    "unambiguous_experimental": AutoAcceptRule(require_experimental=True),
    "best_exact_experimental_on_hull": AutoAcceptRule(best_exact_experimental_on_hull=True),
}


def _on_hull(candidate: StructureCandidate) -> bool:
    return candidate.energy_above_hull is not None and candidate.energy_above_hull <= ON_HULL_TOLERANCE


def auto_accept(result: MatchResult, rule: AutoAcceptRule | str = "unambiguous") -> RankedCandidate | None:
    """The candidate to accept without review, or None when the result must wait for a reviewer.

    Args:
        result: a match result.
        rule: an :class:`AutoAcceptRule` or the name of one in :data:`AUTO_ACCEPT_RULES`.

    Returns:
        An exact candidate allowed by the rule, or None.

    Raises:
        KeyError: unknown rule name (the known names are listed).
    """
    if isinstance(rule, str):
        if rule not in AUTO_ACCEPT_RULES:
            raise KeyError(f"unknown auto-accept rule {rule!r}; known: {', '.join(AUTO_ACCEPT_RULES)}")
        rule = AUTO_ACCEPT_RULES[rule]
    exact = result.exact_candidates
    if result.status == "unambiguous" and rule.unambiguous:
        return exact[0] if rule.allows(exact[0].candidate) else None
    if result.status == "ambiguous" and rule.best_exact_experimental_on_hull:
        chosen = [
            ranked
            for ranked in exact
            if ranked.candidate.theoretical is False and _on_hull(ranked.candidate) and rule.allows(ranked.candidate)
        ]
        if len(chosen) == 1:
            return chosen[0]
    return None
