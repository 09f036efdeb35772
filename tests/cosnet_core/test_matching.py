"""Tests of cosnet_core.matching: exact and approximate matches, composition distance, ranking, status, auto-accept."""

from __future__ import annotations

import functools

import pytest
from pymatgen.core import Composition, Lattice, Structure
from pymatgen.io.cif import CifWriter

from cosnet_core.matching import (
    AutoAcceptRule,
    MatchingError,
    auto_accept,
    composition_distance,
    dopant_elements,
    match_composition,
    match_many,
)
from cosnet_core.sources.base import StructureCandidate, StructureSource, element_set
from cosnet_core.sources.local_library import StructureLibrary


def rock_salt(a: float = 5.64, cation: str = "Na", anion: str = "Cl") -> Structure:
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(a), [cation, anion], [[0, 0, 0], [0.5, 0.5, 0.5]])


def argyrodite_li6ps5br() -> Structure:
    """An ordered Li6PS5Br argyrodite-like cell (F-43m; Br 4a, S 4c, P 4b, S 16e, Li 24g)."""
    return Structure.from_spacegroup(
        "F-43m",
        Lattice.cubic(9.98),
        ["Br", "S", "P", "S", "Li"],
        [[0, 0, 0], [0.25, 0.25, 0.25], [0.5, 0.5, 0.5], [0.62, 0.62, 0.62], [0.18, 0.25, 0.25]],
    )


def li3ps4() -> Structure:
    """A Li3PS4-composition cell (geometry is irrelevant for matching by composition)."""
    return Structure(
        Lattice.cubic(6.0),
        ["Li", "Li", "Li", "P", "S", "S", "S", "S"],
        [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0.25, 0.25, 0.25], [0.75, 0.75, 0.25],
         [0.75, 0.25, 0.75], [0.25, 0.75, 0.75], [0.0, 0.5, 0.5]],
    )


class ListSource:
    """A minimal StructureSource over hand-made candidates (exercises the protocol, not the library)."""

    def __init__(self, name: str, candidates: list[StructureCandidate]) -> None:
        self.name = name
        self.candidates = candidates
        self.calls: list[tuple[str, object]] = []

    def search_formula(self, reduced_formula: str) -> list[StructureCandidate]:
        self.calls.append(("formula", reduced_formula))
        return [c for c in self.candidates if c.formula == reduced_formula]

    def search_chemsys(self, elements) -> list[StructureCandidate]:
        wanted = element_set(elements)
        self.calls.append(("chemsys", wanted))
        return [c for c in self.candidates if element_set(str(e) for e in Composition(c.formula).elements) == wanted]


@functools.cache
def _shared_rock_salt() -> Structure:
    return rock_salt()


def hand_candidate(external_id: str, formula: str = "NaCl", *, source: str = "materials_project", **props):
    """A candidate whose properties are set by hand (its structure is a placeholder: ranking never reads it)."""
    return StructureCandidate(source=source, external_id=external_id, formula=formula, structure=_shared_rock_salt(), **props)


# -- composition distance and dopants -----------------------------------------------------------------------


def test_composition_distance_is_half_l1_of_atomic_fractions():
    doped = Composition("Li6.05P0.95Si0.05S5Br")
    parent = Composition("Li6PS5Br")
    total = 13.05
    by_hand = 0.5 * (
        abs(6.05 / total - 6 / 13) + abs(0.95 / total - 1 / 13) + abs(0.05 / total) + abs(5 / total - 5 / 13)
        + abs(1 / total - 1 / 13)
    )
    assert composition_distance(doped, parent) == pytest.approx(by_hand, abs=1e-12)
    assert composition_distance(doped, parent) == pytest.approx(0.005894, abs=1e-5)
    assert composition_distance(Composition("Fe2O3"), Composition("Fe3O4")) == pytest.approx(3 / 7 - 2 / 5)
    assert composition_distance(Composition("Fe2O3"), Composition("Fe4O6")) == 0.0
    assert composition_distance(Composition("NaCl"), Composition("SiO2")) == pytest.approx(1.0)


def test_dopant_elements_are_the_rare_ones_only():
    assert dopant_elements(Composition("Li6.05P0.95Si0.05S5Br")) == ("Si",)
    # Ge is 4 at.% of Li10GeP2S12: part of the structure type, not a dopant.
    assert dopant_elements(Composition("Li10GeP2S12")) == ()
    assert dopant_elements(Composition("Li6.25Al0.25La3Zr2O12")) == ("Al",)
    assert dopant_elements(Composition("Li10GeP2S12"), dopant_fraction=0.05) == ("Ge",)


# -- exact and approximate matches ---------------------------------------------------------------------------


def _argyrodite_library() -> StructureLibrary:
    library = StructureLibrary()
    library.add_cif(str(CifWriter(argyrodite_li6ps5br())), "Li6PS5Br.cif")
    library.add_cif(str(CifWriter(li3ps4())), "Li3PS4.cif")
    library.add_cif(str(CifWriter(rock_salt(4.62, "Li", "Cl"))), "LiCl.cif")
    return library


def test_exact_match_is_unambiguous_and_auto_accepted():
    library = _argyrodite_library()
    result = match_composition("Li12P2S10Br2", [library])  # the same reduced formula as Li6PS5Br
    assert result.reduced_formula == "Li6PS5Br"
    assert result.status == "unambiguous"
    assert [r.candidate.external_id for r in result.candidates] == ["Li6PS5Br.cif"]
    assert result.candidates[0].exact and result.candidates[0].composition_distance == 0.0
    assert result.candidates[0].score == 1.0 and result.candidates[0].rank == 1
    accepted = auto_accept(result)
    assert accepted is not None and accepted.candidate.external_id == "Li6PS5Br.cif"
    assert auto_accept(result, "never") is None


def test_doped_argyrodite_gets_its_parent_as_approximate_match():
    library = _argyrodite_library()
    result = match_composition("Li6.05P0.95Si0.05S5Br", [library])
    assert result.status == "approximate"
    # Li3PS4 lacks Br (7.7 at.%, not a dopant) and LiCl shares too little: only the parent remains.
    assert [r.candidate.external_id for r in result.candidates] == ["Li6PS5Br.cif"]
    parent = result.candidates[0]
    assert not parent.exact and parent.approximate
    assert parent.missing_elements == ("Si",)
    assert parent.composition_distance == pytest.approx(0.005894, abs=1e-5)
    assert parent.score == pytest.approx(1 - parent.composition_distance)
    # Approximate matches are never accepted without review, whatever the rule.
    assert auto_accept(result, AutoAcceptRule(unambiguous=True, best_exact_experimental_on_hull=True)) is None


def test_off_stoichiometric_same_elements_and_max_distance():
    library = _argyrodite_library()
    near = match_composition("Li6.2PS5.1Br0.9", [library])
    assert near.status == "approximate"
    assert near.candidates[0].candidate.external_id == "Li6PS5Br.cif"
    assert near.candidates[0].missing_elements == ()
    far = match_composition("Li3PS5Br3", [library], max_distance=0.05)
    assert far.status == "no_candidate" and far.candidates == []
    assert match_composition("Cs2O", [library]).status == "no_candidate"


def test_approximate_candidates_are_ranked_by_distance_then_properties():
    source = ListSource(
        "hand",
        [
            hand_candidate("mp-1", "Fe3O4", theoretical=True, energy_above_hull=0.0, nsites=14),
            hand_candidate("mp-2", "Fe3O4", theoretical=False, energy_above_hull=0.0, nsites=14),
            hand_candidate("mp-3", "FeO", theoretical=False, energy_above_hull=0.0, nsites=2),
        ],
    )
    result = match_composition("Fe2.95O4", [source], max_distance=0.2)
    assert result.status == "approximate"
    assert [r.candidate.external_id for r in result.candidates] == ["mp-2", "mp-1", "mp-3"]
    assert [r.rank for r in result.candidates] == [1, 2, 3]
    assert result.candidates[0].composition_distance < result.candidates[2].composition_distance


def test_exact_match_skips_parent_search_unless_asked():
    source = ListSource(
        "hand", [hand_candidate("mp-22862", "NaCl", nsites=2), hand_candidate("mp-9", "Na2Cl", nsites=3)]
    )
    result = match_composition("NaCl", [source], max_distance=0.5)
    assert [r.candidate.external_id for r in result.candidates] == ["mp-22862"]
    assert all(kind == "formula" for kind, _ in source.calls)
    both = match_composition("NaCl", [source], max_distance=0.5, approximate_when_exact=True)
    assert [(r.candidate.external_id, r.exact) for r in both.candidates] == [("mp-22862", True), ("mp-9", False)]
    assert both.status == "unambiguous"


# -- ranking of exact candidates -----------------------------------------------------------------------------


def test_exact_ranking_experimental_then_energy_then_sites():
    candidates = [
        hand_candidate("mp-a", theoretical=True, energy_above_hull=0.0, nsites=2),
        hand_candidate("mp-b", theoretical=False, energy_above_hull=0.05, nsites=2),
        hand_candidate("mp-c", theoretical=False, energy_above_hull=0.0, nsites=16),
        hand_candidate("mp-d", theoretical=False, energy_above_hull=0.0, nsites=8),
        hand_candidate("mp-e", theoretical=None, energy_above_hull=None, nsites=2),
        hand_candidate("mp-f", theoretical=True, energy_above_hull=None, nsites=1),
    ]
    result = match_composition("NaCl", [ListSource("hand", candidates)])
    assert [r.candidate.external_id for r in result.candidates] == ["mp-d", "mp-c", "mp-b", "mp-e", "mp-a", "mp-f"]
    assert result.status == "ambiguous"
    assert auto_accept(result, "unambiguous") is None
    # Exactly one exact candidate is experimental and on the hull? No: mp-c and mp-d both are -> no auto-accept.
    assert auto_accept(result, "best_exact_experimental_on_hull") is None


def test_best_exact_experimental_on_hull_rule_and_property_limits():
    candidates = [
        hand_candidate("mp-x", theoretical=True, energy_above_hull=0.0, nsites=2),
        hand_candidate("mp-y", theoretical=False, energy_above_hull=0.0, nsites=8),
        hand_candidate("mp-z", theoretical=False, energy_above_hull=0.02, nsites=2),
    ]
    result = match_composition("NaCl", [ListSource("hand", candidates)])
    assert result.status == "ambiguous"
    chosen = auto_accept(result, "best_exact_experimental_on_hull")
    assert chosen is not None and chosen.candidate.external_id == "mp-y"
    assert auto_accept(result, "unambiguous") is None

    theoretical_only = match_composition("NaCl", [ListSource("hand", [candidates[0]])])
    assert theoretical_only.status == "unambiguous"
    assert auto_accept(theoretical_only, "unambiguous").candidate.external_id == "mp-x"
    assert auto_accept(theoretical_only, "unambiguous_experimental") is None
    above = match_composition("NaCl", [ListSource("hand", [candidates[2]])])
    assert auto_accept(above, AutoAcceptRule(max_energy_above_hull=0.01)) is None
    assert auto_accept(above, AutoAcceptRule(max_energy_above_hull=0.05)).candidate.external_id == "mp-z"
    with pytest.raises(KeyError, match="unknown auto-accept rule 'sometimes'"):
        auto_accept(above, "sometimes")


def test_same_mp_id_from_two_sources_is_one_candidate_and_max_candidates():
    library_copy = hand_candidate("mp-22862", source="library", nsites=2)
    api_copy = hand_candidate("mp-22862", theoretical=False, energy_above_hull=0.0, nsites=2)
    upload = hand_candidate("my.cif", source="upload", nsites=8)
    result = match_composition("NaCl", [ListSource("mp", [api_copy]), ListSource("lib", [library_copy, upload])])
    assert [r.candidate.key for r in result.candidates] == [("materials_project", "mp-22862"), ("upload", "my.cif")]
    assert result.status == "ambiguous"
    many = [hand_candidate(f"mp-{i}", nsites=i) for i in range(1, 16)]
    truncated = match_composition("NaCl", [ListSource("hand", many)], max_candidates=4)
    assert truncated.n_found == 15 and len(truncated.candidates) == 4
    assert [r.candidate.nsites for r in truncated.candidates] == [1, 2, 3, 4]


def test_list_source_satisfies_the_protocol():
    assert isinstance(ListSource("x", []), StructureSource)
    assert isinstance(StructureLibrary(), StructureSource)


# -- many compositions ---------------------------------------------------------------------------------------


def test_match_many_reports_progress_and_reuses_searches():
    source = ListSource("hand", [hand_candidate("mp-22862", nsites=2)])
    seen: list[tuple[int, int]] = []
    results = match_many(["NaCl", "Na2Cl2", "KBr", "NaCl"], [source], progress=lambda i, n: seen.append((i, n)))
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert [r.status for r in results] == ["unambiguous", "unambiguous", "no_candidate", "unambiguous"]
    assert [r.formula for r in results] == ["NaCl", "Na2Cl2", "KBr", "NaCl"]
    # NaCl and Na2Cl2 share one normalised composition: one formula search for both (and the repeat).
    assert [call for call in source.calls if call[0] == "formula"] == [("formula", "NaCl"), ("formula", "KBr")]


def test_match_many_names_the_bad_row():
    with pytest.raises(MatchingError, match=r"row 1: formula 'Xx2O'"):
        match_many(["NaCl", "Xx2O"], [ListSource("hand", [])])
    with pytest.raises(MatchingError, match="formula ''"):
        match_composition("", [ListSource("hand", [])])


# -- real data -----------------------------------------------------------------------------------------------


def test_real_obelix_cifs_give_the_parent_of_a_doped_argyrodite(shared_data):
    cifs = shared_data / "li_conductivity" / "cifs"
    # 9zr: Li6PS5Br; 6jf: Li24.024P4S20Br4 (Li-rich Li6PS5Br); 122: Li6PS5Cl; 0iv: Li2PS3.
    library = StructureLibrary.from_cif_files([cifs / f"{name}.cif" for name in ("9zr", "6jf", "122", "0iv")])
    result = match_composition("Li6.05P0.95Si0.05S5Br", [library])
    assert result.status == "approximate"
    ids = [r.candidate.external_id for r in result.candidates]
    assert set(ids) == {"9zr.cif", "6jf.cif"}
    assert all(r.missing_elements == ("Si",) for r in result.candidates)
    assert result.candidates[0].composition_distance <= result.candidates[1].composition_distance
    exact = match_composition("Li6PS5Br", [library])
    assert exact.status == "unambiguous" and exact.candidates[0].candidate.external_id == "9zr.cif"


def test_real_library_polymorphs_are_ambiguous(shared_data):
    library = StructureLibrary.from_table(shared_data / "mp_structures" / "mp_structure_library.csv.gz", deduplicate=False)
    result = match_composition("TiO2", [library])
    assert result.status == "ambiguous"
    assert [r.candidate.external_id for r in result.candidates] == ["mp-2657", "mp-553432", "mp-554278"]
    assert [r.candidate.nsites for r in result.candidates] == [6, 9, 12]
    assert result.candidates[0].candidate.spacegroup_symbol == "P4_2/mnm"
    assert match_composition("Li2O", [library]).candidates[0].candidate.external_id == "mp-1960"
