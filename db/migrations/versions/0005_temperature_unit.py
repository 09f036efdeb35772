"""A dataset version records the unit of its temperature column (°C or K) beside the unit of its target.

Versions imported before this revision keep NULL: their temperatures were stored as given, in an unstated unit.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 17:40:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('dataset_versions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('temperature_unit', sa.String(length=10), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('dataset_versions', schema=None) as batch_op:
        batch_op.drop_column('temperature_unit')
