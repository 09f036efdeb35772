"""V_a (Table 2's volume per atom) has one definition: the command line, the app's stored column (dataset
uploads, library and Materials Project structures) and migration 0004 give the same number on a disordered cell."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from pymatgen.core import Lattice, Structure
from pymatgen.io.cif import CifWriter

from db.engine import dispose_engines, session_scope, upgrade_database

#: A cubic cell (a = 4 Å, 64 Å³) with a half-occupied Li site and a full Cl site: 2 sites but 1.5 atoms.
HALF_LITHIUM = Structure(Lattice.cubic(4.0), [{"Li": 0.5}, "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
PER_ATOM, PER_SITE = 64.0 / 1.5, 64.0 / 2


def _cif() -> str:
    return str(CifWriter(HALF_LITHIUM))


def test_cli_and_app_paths_give_the_same_occupancy_weighted_volume(tmp_path) -> None:
    from cosnet_core.evaluate import (
        volume_per_atom as cli_volume,  # what `python -m cosnet_core train` regresses on
    )
    from cosnet_core.sources.base import StructureCandidate
    from cosnet_core.structure import CELL_DESCRIPTOR_NAMES, cell_descriptors, load_structure
    from cosnet_core.uploaded_cif import summarize_cif
    from db.structures import store_candidates
    from jobs.store import structure_volumes

    structure = load_structure(_cif())
    cli = cli_volume(structure)
    assert cli == pytest.approx(PER_ATOM) and abs(cli - PER_SITE) > 10  # not volume / sites

    url = f"sqlite:///{tmp_path / 'v.db'}"
    upgrade_database(url)
    uploaded = summarize_cif(_cif(), max_sites=100, timeout_s=30)  # a CIF in a dataset upload
    with session_scope(url) as session:
        (row,) = store_candidates(session, [StructureCandidate(source="library", external_id="half-li.cif",
                                                               formula="Li0.5Cl", cif=_cif())])
        structure_id = row.id
    app = structure_volumes(url, [structure_id])[structure_id]  # what the app's Table 2 reads
    dispose_engines()
    descriptor = float(cell_descriptors(structure)[CELL_DESCRIPTOR_NAMES.index("volume_per_atom")])
    assert app == cli == uploaded["volume_per_atom"]
    assert descriptor == pytest.approx(cli, rel=1e-6)  # g_S's input (float32) is the same quantity


def test_migration_0004_recomputes_the_stored_volume_per_site(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade_database(url, "0003")
    structures = sa.table(
        "structures", *(sa.column(name) for name in (
            "id", "source", "external_id", "formula", "chemsys", "nsites", "volume_per_atom", "is_ordered", "cif",
            "pymatgen_json", "content_hash", "in_library", "created_at", "created_by")),
    )
    common = {"source": "dataset", "formula": "Li0.5Cl", "chemsys": "Cl-Li", "nsites": 2, "is_ordered": False,
              "in_library": False, "created_at": "2026-12-01 00:00:00", "created_by": "local",
              "volume_per_atom": PER_SITE}  # what the old code stored
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(structures.insert().values(
            id=1, external_id="json.cif", cif=_cif(), pymatgen_json=json.dumps(HALF_LITHIUM.as_dict()),
            content_hash="a" * 64, **common))
        connection.execute(structures.insert().values(  # no JSON: recomputed from the CIF
            id=2, external_id="cif-only.cif", cif=_cif(), pymatgen_json=None, content_hash="b" * 64, **common))
    upgrade_database(url)
    with engine.connect() as connection:
        values = dict(connection.execute(sa.text("SELECT id, volume_per_atom FROM structures")).all())
    assert values == {1: pytest.approx(PER_ATOM), 2: pytest.approx(PER_ATOM)}
    from db.engine import downgrade_database

    downgrade_database(url, "0003")  # and back to the old meaning
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT volume_per_atom FROM structures WHERE id = 1")).scalar() == pytest.approx(PER_SITE)
    engine.dispose()
    dispose_engines()
