"""Ids are never reused: SQLite AUTOINCREMENT on every table whose rows can be deleted.

Without AUTOINCREMENT, SQLite gives a new row the largest id + 1, so deleting the newest study (or dataset, run,
job ...) hands its id to the next one, and anything keyed on the old id (a link, a cache, a query parameter)
shows the new owner's rows. With AUTOINCREMENT (``sqlite_sequence``) an id is used once. Other databases
(PostgreSQL sequences) never reuse ids; there this migration does nothing.

SQLite needs the tables rebuilt for this (Alembic's batch mode copies each one). Foreign keys are switched off
for the rebuild by ``db/migrations/env.py`` (dropping a parent table would otherwise cascade to its children).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03 14:30:00.000000
"""

from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

# Parents before children, as in 0001.
TABLES = (
    'datasets', 'jobs', 'structures', 'users', 'dataset_versions', 'entries', 'studies', 'match_candidates',
    'runs', 'review_decisions', 'epoch_metrics', 'model_artifacts', 'predictions',
)


def _rebuild(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != 'sqlite':
        return
    for table in TABLES:
        with op.batch_alter_table(
            table, schema=None, recreate='always', table_kwargs={'sqlite_autoincrement': autoincrement}
        ):
            pass


def upgrade() -> None:
    _rebuild(True)


def downgrade() -> None:
    _rebuild(False)
