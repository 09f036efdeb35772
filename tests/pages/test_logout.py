"""Issue 14, item 6: a browser session belongs to one user. After alice logs out, bob logging in in the same tab
finds nothing of hers: not her unsaved upload, not her choices, not her messages."""

from __future__ import annotations

from tests.pages.isolation_fixtures import TABLE, make_users, run_whole_app, submit_login
from ui import datasets_view as view


def test_logout_clears_every_piece_of_session_state(app_test, app_env, monkeypatch):
    monkeypatch.setenv("COSNET_AUTH", "accounts")
    make_users()
    at = app_test()
    at.run()
    submit_login(at, "alice").run()
    at.file_uploader[0].set_value(("alice-unsaved.csv", TABLE, "text/csv"))
    at.run()
    assert view.TABLE_KEY in at.session_state  # her upload waits, unsaved, in the session
    at.session_state["results_study_id"] = 7  # and some choice of another page

    run_whole_app(at)
    assert any(b.key and b.key.startswith("import_") for b in at.button)  # ready to import
    next(b for b in at.sidebar.button if b.label == "Log out").click()
    run_whole_app(at)
    assert not at.exception, at.exception
    assert [t.label for t in at.text_input] == ["User name", "Password"]  # the login form again
    for key in (view.TABLE_KEY, "results_study_id", "cosnet_user", "active_dataset_version_id"):
        assert key not in at.session_state, key
    assert at.session_state["cosnet_logouts"] == 1

    run_whole_app(at)  # the next interaction in this tab: still the login form
    run_whole_app(submit_login(at, "bob"))
    assert any("Logged in as bob" in c.value for c in at.sidebar.caption)
    assert view.TABLE_KEY not in at.session_state and "results_study_id" not in at.session_state
    assert not any("alice-unsaved" in c.value for c in at.caption)
    assert not any(b.key and b.key.startswith("import_") for b in at.button)  # nothing to import as his own
    assert all(not u.value for u in at.file_uploader)

