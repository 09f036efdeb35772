"""Two lab users (alice, bob) and an administrator on one instance with ``COSNET_AUTH=accounts``, for the
isolation tests: log in through the real login form, store a dataset as one of them."""

from __future__ import annotations

from cosnet_core.ingest import CleaningOptions, ColumnMapping, clean_table, read_table
from db import datasets as store
from db.access import Actor
from db.users import create_user
from ui.text import md_escape

PASSWORD = "a-long-enough-password"
ALICE, BOB, ADMIN = Actor("alice"), Actor("bob"), Actor("root", is_admin=True)
TABLE = b"id,formula,conductivity\nA1,Li7La3Zr2O12,1e-4\nA2,Li6PS5Cl,2e-3\nA3,LiCl,1e-8\n"


def make_users() -> None:
    """alice and bob as ordinary users, root as administrator."""
    create_user("alice", PASSWORD)
    create_user("bob", PASSWORD)
    create_user("root", PASSWORD, is_admin=True)


def submit_login(at, username: str, password: str = PASSWORD):
    """Fill in and submit the login form the last run showed (the next run processes it)."""
    at.text_input[0].input(username)
    at.text_input[1].input(password)
    at.button[0].click()
    return at


def login(app_test, username: str, page: str | None = None):
    """A fresh browser session (AppTest) logged in as ``username`` through the login form, on ``page``."""
    at = app_test()
    at.run()
    submit_login(at, username).run()
    assert not at.exception, at.exception
    assert any(f"Logged in as {md_escape(username)}" in c.value for c in at.sidebar.caption)
    if page and page != "pages/datasets.py":  # Datasets is the default page (AppTest drops the sidebar after
        at.switch_page(page)                   # switch_page, so tests that read the sidebar stay on it)
        at.run()
        assert not at.exception, at.exception
    return at


def run_whole_app(at):
    """Run ``app.py`` from the top, as the browser does on every interaction.

    After its first run, this Streamlit's AppTest re-runs only the page the previous run finished on (app.py's
    login gate and sidebar are skipped); forgetting that page makes the next run start at app.py again.
    """
    at._finished_page_script_hash = ""
    at._page_hash = ""
    at.run()
    assert not at.exception, at.exception
    return at


def store_dataset(owner: str, name: str = "alice private", table: bytes = TABLE, url: str | None = None):
    """A dataset imported by ``owner`` (private, as every new dataset); returns its ids."""
    raw = read_table(table, "t.csv")
    result = clean_table(raw, ColumnMapping(formula="formula", target="conductivity", id="id"), CleaningOptions())
    return store.create_dataset(url, result, name=name, created_by=owner)


def sidebar_versions(at) -> list[str]:
    """The dataset versions offered in the sidebar picker (empty when there is none)."""
    boxes = [s for s in at.sidebar.selectbox if s.label == "Dataset version"]
    return list(boxes[0].options) if boxes else []
