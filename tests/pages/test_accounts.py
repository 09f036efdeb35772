"""Issue 14, item 7: accounts behave like a lab server. Failed logins slow down and then lock the name for a
while, a disabled user's open session ends at their next action, and logins, shares and deletions are in the
audit log (shown on the Admin page)."""

from __future__ import annotations

from datetime import timedelta

import pytest

import db.users as users
from db.audit import recent_events
from db.datasets import delete_dataset, set_shared
from db.users import LOCK_AFTER, AccountLocked, authenticate, set_disabled
from tests.pages.isolation_fixtures import (
    ALICE,
    PASSWORD,
    login,
    make_users,
    run_whole_app,
    store_dataset,
    submit_login,
)


@pytest.fixture()
def lab(app_env, monkeypatch):
    monkeypatch.setenv("COSNET_AUTH", "accounts")
    make_users()
    waits: list[float] = []
    monkeypatch.setattr(users.time, "sleep", waits.append)  # record the delays instead of waiting
    return waits


def test_failed_logins_slow_down_then_lock_even_the_right_password(lab, monkeypatch):
    waits = lab
    for _ in range(LOCK_AFTER):
        assert authenticate("bob", "not-his-password") is None
    assert waits == [0.0, 0.5, 1.0, 2.0, 4.0]  # each failure makes the next attempt wait longer
    with pytest.raises(AccountLocked, match="locked for 15 more minute"):
        authenticate("bob", PASSWORD)
    assert authenticate("alice", PASSWORD).username == "alice"  # other names are not affected

    later = users.utcnow() + timedelta(minutes=16)
    monkeypatch.setattr(users, "utcnow", lambda: later)
    assert authenticate("bob", PASSWORD).username == "bob"  # the lock has ended
    assert authenticate("bob", "wrong-again-here") is None
    assert waits[-1] == 0.0  # counting restarts after a successful login
    actions = list(recent_events()["action"])
    assert actions.count("login_failed") == LOCK_AFTER + 1 and actions.count("login_locked") == 1
    assert actions.count("login") == 2


def test_the_login_form_says_the_account_is_locked(lab, app_test):
    for _ in range(LOCK_AFTER):
        authenticate("bob", "not-his-password")
    at = app_test()
    at.run()
    submit_login(at, "bob").run()
    assert not at.exception, at.exception
    assert "Too many failed logins" in at.error[0].value
    assert not any("Logged in as" in c.value for c in at.sidebar.caption)


def test_disabling_a_user_ends_their_open_session_at_the_next_action(lab, app_test):
    bob = login(app_test, "bob")
    set_disabled("bob", True, by="root")
    run_whole_app(bob)  # bob clicks anything
    assert [t.label for t in bob.text_input] == ["User name", "Password"]
    assert "disabled" in bob.error[0].value
    assert "cosnet_user" not in bob.session_state
    events = recent_events()
    assert ("root", "user_disabled", "user bob") in set(events[["user", "action", "target"]].itertuples(index=False))


def test_shares_and_deletions_are_in_the_audit_log_and_on_the_admin_page(lab, app_test):
    ids = store_dataset("alice", name="li")
    set_shared(None, ids.dataset_id, True, actor=ALICE)
    delete_dataset(None, ids.dataset_id, actor=ALICE)
    events = recent_events()
    rows = set(events[["user", "action", "target"]].itertuples(index=False))
    assert ("alice", "share", f"dataset {ids.dataset_id} 'li'") in rows
    assert ("alice", "delete_dataset", f"dataset {ids.dataset_id} 'li'") in rows

    root = login(app_test, "root", "pages/admin.py")
    shown = root.dataframe[-1].value
    assert list(shown.columns) == ["at", "user", "action", "target"]
    assert {"share", "delete_dataset", "login"} <= set(shown["action"])
