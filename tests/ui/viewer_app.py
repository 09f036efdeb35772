"""A tiny Streamlit script for the structure-viewer tests (AppTest and the real-browser test).

It draws two structures made in code: rock-salt NaCl (ordered, with bonds) and a disordered rock salt whose
cation site holds Li0.5Na0.5 (no bonds, sphere segments). ``COSNET_VIEWER_TEST_CIF`` may name a CIF to draw
instead of the second one.
"""

from __future__ import annotations

import os

import streamlit as st
from pymatgen.core import Lattice, Structure

from ui.structure_viewer import structure_viewer

st.title("Structure viewer test")

FCC = [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]
ANION_SITES = [[(x + 0.5) % 1 for x in site] for site in FCC]

rock_salt = Structure(Lattice.cubic(5.64), ["Na"] * 4 + ["Cl"] * 4, FCC + ANION_SITES)
st.subheader("NaCl")
structure_viewer(rock_salt, key="ordered", height=360)

cif_path = os.environ.get("COSNET_VIEWER_TEST_CIF")
if cif_path:
    disordered = Structure.from_file(cif_path)
else:
    disordered = Structure(Lattice.cubic(5.5), [{"Li": 0.5, "Na": 0.5}] * 4 + ["Cl"] * 4, FCC + ANION_SITES)
st.subheader(disordered.composition.reduced_formula)
structure_viewer(disordered, key="disordered", height=360)
