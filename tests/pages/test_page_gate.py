"""Issue 14, item 2: a page file run on its own (as Streamlit runs the file of ``pages/`` that an address names,
without ``app.py``, until a session has called ``st.navigation``) shows the login form and nothing of the page to
a visitor who has not logged in. The browser check is in ``tests/e2e/test_two_users_hostile.py``."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import REPO_ROOT
from tests.pages.isolation_fixtures import make_users, store_dataset, submit_login


@pytest.mark.parametrize("page", ["pages/datasets.py", "pages/results.py"])
def test_a_page_run_without_app_py_asks_for_a_login_first(app_env, monkeypatch, page):
    monkeypatch.setenv("COSNET_AUTH", "accounts")
    make_users()
    store_dataset("alice", name="alice private")
    at = AppTest.from_file(str(REPO_ROOT / page), default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    assert [t.label for t in at.text_input] == ["User name", "Password"]
    assert [t.value for t in at.title] == ["COSNet Studio"]  # the login screen, not the page
    assert not at.get("file_uploader") and not at.selectbox
    if page == "pages/datasets.py":  # (the Results page of an empty lab links to Training, which AppTest cannot
        submit_login(at, "alice").run()  # resolve without app.py's navigation) after the login the page runs
        assert not at.exception, at.exception
        assert [t.value for t in at.title] == ["Datasets"]
