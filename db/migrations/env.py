"""Alembic environment: runs migrations against the URL in the Alembic config or COSNET_DATABASE_URL."""

from __future__ import annotations

from alembic import context

from db.config import database_url
from db.engine import make_engine
from db.models import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    return url or database_url()


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = make_engine(_url())
    with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            # Batch migrations rebuild tables: with foreign keys on, dropping the old copy of a parent table would
            # cascade-delete its children. Off for this connection only (it is closed after the migrations).
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
