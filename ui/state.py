"""App-wide state shared by the pages: the database (migrated once per process) and the active dataset.

Pages call :func:`database` for a ready engine URL and :func:`active_version_id` for the dataset version
the sidebar selected. Nothing here does heavy work: migrations run once per process through
``st.cache_resource``.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from db import database_url, upgrade_database
from db.datasets import visible_versions

ACTIVE_VERSION_KEY = "active_dataset_version_id"


@st.cache_resource(show_spinner="Preparing the database…")
def _migrated(url: str) -> str:
    upgrade_database(url)
    return url


def database() -> str:
    """The database URL, upgraded to the latest schema (``alembic upgrade head``) once per process, once the
    visitor has logged in (with authentication configured).

    Every page calls this first, and it shows the login form and stops the run for a visitor who has not logged
    in. ``app.py``'s login gate alone is not enough: because the page files live in ``pages/``, Streamlit runs the
    file a URL names (``/admin``, ``/datasets`` ...) directly, without ``app.py``, until some session has called
    ``st.navigation`` (which a logged-out session never reaches).
    """
    from ui.auth import login_gate

    url = _migrated(database_url())
    login_gate(url)  # returns at once when someone is logged in (or in single-user mode)
    return url


@dataclass(frozen=True)
class VersionChoice:
    """One selectable dataset version in the sidebar."""

    version_id: int
    label: str


def version_choices(url: str, username: str = "local", is_admin: bool = True) -> list[VersionChoice]:
    """Every dataset version visible to the user, newest dataset first."""
    return [
        VersionChoice(vid, f"{name} · v{number} ({kept} rows)")
        for name, vid, number, kept in visible_versions(url, username=username, is_admin=is_admin)
    ]


def visibility() -> dict:
    """Keyword arguments restricting queries to what the current user may see (own and shared datasets; an
    administrator, or the single user of an unconfigured instance, sees all)."""
    from ui.auth import current_user

    user = current_user()
    return {"username": user.username if user else "", "is_admin": bool(user and user.is_admin)}


def active_version_id() -> int | None:
    """The dataset version chosen in the sidebar, or None when there is none yet."""
    return st.session_state.get(ACTIVE_VERSION_KEY)


def set_active_version(version_id: int | None) -> None:
    """Make ``version_id`` the active dataset version (e.g. right after an import)."""
    st.session_state[ACTIVE_VERSION_KEY] = version_id


def dataset_sidebar(url: str, username: str = "local", is_admin: bool = True) -> None:
    """The sidebar picker of the active dataset version (only versions the user may see)."""
    choices = version_choices(url, username, is_admin)
    with st.sidebar:
        st.markdown("**Active dataset**")
        if not choices:
            st.caption("No dataset yet. Import one on the Datasets page.")
            set_active_version(None)
            return
        ids = [c.version_id for c in choices]
        labels = {c.version_id: c.label for c in choices}
        current = active_version_id()
        index = ids.index(current) if current in ids else 0
        chosen = st.selectbox(
            "Dataset version", ids, index=index, format_func=labels.__getitem__, label_visibility="collapsed"
        )
        set_active_version(chosen)
