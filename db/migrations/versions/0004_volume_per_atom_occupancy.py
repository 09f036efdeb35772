"""Volume per atom means one thing: structures.volume_per_atom is recomputed as the cell volume divided by the
occupancy-weighted number of atoms (cosnet_core.structure.volume_per_atom, Table 2's V_a), where it was the cell
volume divided by the number of sites. The two differ on partly occupied cells (a median 23 % on the OBELiX CIFs).

The value is recomputed from each row's stored pymatgen JSON (lattice and site occupancies; no parsing), else from
its CIF. Downgrade writes volume / sites back.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 17:30:00.000000
"""

import json

import numpy as np
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

STRUCTURES = sa.table(
    'structures',
    sa.column('id', sa.Integer), sa.column('nsites', sa.Integer), sa.column('volume_per_atom', sa.Float),
    sa.column('cif', sa.Text), sa.column('pymatgen_json', sa.Text),
)


def _volume_and_atoms(pymatgen_json: str | None, cif: str | None) -> tuple[float, float, int] | None:
    """(cell volume, occupancy-weighted atoms, sites) of a stored structure, or None when neither text is usable."""
    try:
        data = json.loads(pymatgen_json) if pymatgen_json else None
        if data is not None:
            volume = abs(float(np.linalg.det(np.asarray(data['lattice']['matrix'], dtype=float))))
            atoms = sum(float(species.get('occu', 1.0)) for site in data['sites'] for species in site['species'])
            return volume, atoms, len(data['sites'])
    except (ValueError, KeyError, TypeError):
        pass
    if cif:
        try:
            from cosnet_core.structure_io import load_structure

            structure = load_structure(cif if '\n' in cif else cif + '\n')
            return float(structure.volume), float(structure.composition.num_atoms), len(structure)
        except Exception:  # a CIF that no longer parses keeps its value
            return None
    return None


def _rewrite(per_atom: bool) -> None:
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(STRUCTURES.c.id, STRUCTURES.c.pymatgen_json, STRUCTURES.c.cif)
    ).all()
    for structure_id, pymatgen_json, cif in rows:
        found = _volume_and_atoms(pymatgen_json, cif)
        if found is None:
            continue
        volume, atoms, sites = found
        count = atoms if per_atom else sites
        if count > 0:
            connection.execute(
                STRUCTURES.update().where(STRUCTURES.c.id == structure_id).values(volume_per_atom=volume / count)
            )


def upgrade() -> None:
    _rewrite(per_atom=True)


def downgrade() -> None:
    _rewrite(per_atom=False)
