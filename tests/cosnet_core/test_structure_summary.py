"""One structure summary (issue 17, item 1): formula, space group, crystal system, density and volume per atom come
from ``cosnet_core.structure_io`` for uploads, structure libraries, the database rows and the model's descriptors."""

from __future__ import annotations

import pytest
from pymatgen.core import Lattice, Structure

from cosnet_core.sources.local_library import candidate_from_cif
from cosnet_core.structure import cell_descriptors
from cosnet_core.structure_io import crystal_system, space_group, summarize_structure
from cosnet_core.uploaded_cif import summarize_cif
from db.structure_rows import _structure_fields


def _rocksalt() -> Structure:
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(4.2), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def _half_vacant() -> Structure:
    """LiCl rock salt with the Li site half occupied: 4 Cl + 2 Li atoms in the 8-site cell."""
    return Structure.from_spacegroup(
        "Fm-3m", Lattice.cubic(5.1), [{"Li": 0.5}, "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]
    )


@pytest.mark.parametrize(
    ("number", "name"),
    [(1, "triclinic"), (2, "triclinic"), (14, "monoclinic"), (62, "orthorhombic"), (142, "tetragonal"),
     (166, "trigonal"), (167, "trigonal"), (194, "hexagonal"), (225, "cubic")],
)
def test_crystal_system_follows_the_international_tables(number: int, name: str) -> None:
    assert crystal_system(number) == name


def test_summary_of_an_ordered_and_a_half_vacant_cell() -> None:
    ordered = summarize_structure(_rocksalt())
    assert (ordered.formula, ordered.chemsys, ordered.nsites) == ("MgO", "Mg-O", 8)
    assert (ordered.spacegroup_symbol, ordered.spacegroup_number) == ("Fm-3m", 225)
    assert ordered.volume_per_atom == pytest.approx(4.2**3 / 8)
    assert ordered.density == pytest.approx(4 * (24.305 + 15.999) / (4.2**3 * 0.60221408), rel=1e-3)
    vacant = summarize_structure(_half_vacant())
    assert vacant.fractions == {"Li": pytest.approx(1 / 3, abs=1e-6), "Cl": pytest.approx(2 / 3, abs=1e-6)}
    assert vacant.volume_per_atom == pytest.approx(5.1**3 / 6)  # atoms counted by occupancy, not 8 sites
    assert not vacant.is_ordered


def test_upload_library_and_database_rows_agree_with_the_summary() -> None:
    structure = _rocksalt()
    cif = structure.to(fmt="cif")
    summary = summarize_structure(Structure.from_str(cif, fmt="cif"))
    uploaded = summarize_cif(cif, max_sites=100, timeout_s=30)
    candidate = candidate_from_cif(cif, "MgO.cif")
    stored = _structure_fields(candidate)
    for row in (uploaded, stored):
        for field in ("formula", "chemsys", "nsites", "spacegroup_symbol", "spacegroup_number", "is_ordered"):
            assert row[field] == getattr(summary, field), field
        assert row["density"] == pytest.approx(summary.density)
        assert row["volume_per_atom"] == pytest.approx(summary.volume_per_atom)
    assert (candidate.spacegroup_symbol, candidate.spacegroup_number) == space_group(structure)


def test_model_descriptors_one_hot_the_crystal_system() -> None:
    from cosnet_core.structure import CELL_DESCRIPTOR_NAMES, CRYSTAL_SYSTEMS

    values = dict(zip(CELL_DESCRIPTOR_NAMES, cell_descriptors(_rocksalt()), strict=True))
    assert [values[f"crystal_system_{name}"] for name in CRYSTAL_SYSTEMS] == [
        1.0 if name == "cubic" else 0.0 for name in CRYSTAL_SYSTEMS
    ]
