"""Small structures and the default embedding for the cosnet_core tests (built here, no files needed)."""

from __future__ import annotations

import pytest
from pymatgen.core import Lattice, Structure

from cosnet_core.embeddings import ElementEmbedding, load_element_embedding


def rocksalt_cell(a: float, cation: str = "Na", anion: str = "Cl") -> Structure:
    """Conventional rock-salt cell (8 sites, Fm-3m), built from explicit coordinates (``from_spacegroup`` is slow)."""
    fcc = [[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]]
    shifted = [[(x + 0.5) % 1, y, z] for x, y, z in fcc]
    return Structure(Lattice.cubic(a), [cation] * 4 + [anion] * 4, fcc + shifted)


@pytest.fixture(scope="session")
def embedding() -> ElementEmbedding:
    """matscholar200, the ROOST default."""
    return load_element_embedding("matscholar200")


@pytest.fixture()
def rocksalt() -> Structure:
    """Conventional NaCl cell, a = 5.64 Å, 8 sites, Fm-3m (225)."""
    return rocksalt_cell(5.64)


@pytest.fixture()
def triclinic() -> Structure:
    """A low-symmetry 4-site cell (no ties between neighbour distances to speak of)."""
    lattice = Lattice.from_parameters(5.1, 5.3, 5.6, 80, 95, 100)
    coords = [[0, 0, 0], [0.3, 0.4, 0.1], [0.5, 0.5, 0.7], [0.2, 0.8, 0.3]]
    return Structure(lattice, ["Li", "Fe", "O", "O"], coords)


@pytest.fixture()
def bcc_lithium() -> Structure:
    """Single-element structure: primitive bcc Li (1 site)."""
    return Structure(
        Lattice.cubic(3.49), ["Li", "Li"], [[0, 0, 0], [0.5, 0.5, 0.5]]
    ).get_primitive_structure()
