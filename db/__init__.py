"""Persistence for COSNet Studio: typed SQLAlchemy models, sessions, Alembic migrations.

Must not import streamlit or torch.
"""

from db.config import data_dir, database_url
from db.engine import get_engine, session_scope, upgrade_database

__all__ = ["data_dir", "database_url", "get_engine", "session_scope", "upgrade_database"]
