"""Issue 14 in a real browser, two users at once (COSNET_AUTH=accounts): alice's new dataset is private until she
shares it, bob then reads it without any control that would change it, a markdown image in its name is shown as
text and never fetched, and logging out leaves bob at the login form."""

from __future__ import annotations

import pytest

from db.engine import dispose_engines, upgrade_database
from db.users import create_user
from tests.e2e.harness import (
    E2E_TIMEOUT_MS,
    alerts,
    click_button,
    database_url,
    open_page,
    upload,
    wait_for_app,
)

PASSWORD = "a-long-enough-password"
TABLE = "id,formula,conductivity\nA1,Li7La3Zr2O12,1e-4\nA2,Li6PS5Cl,2e-3\nA3,LiCl,1e-8\n"


def _log_in(context, url: str, username: str, *, path: str = "", title: str = "Datasets"):
    """A new tab of ``context`` at ``url + path``, logged in as ``username`` through the login form, once the page
    titled ``title`` has run."""
    page = context.new_page()
    page.goto(url + path)
    page.wait_for_selector("text=Log in", timeout=E2E_TIMEOUT_MS)
    page.get_by_role("textbox", name="User name").fill(username)
    page.get_by_role("textbox", name="Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_selector(f"h1:has-text('{title}')", timeout=E2E_TIMEOUT_MS)
    wait_for_app(page)
    return page


@pytest.mark.slow
@pytest.mark.browser
def test_two_users_private_then_shared_read_only_and_no_pixel(data_dir, app_server, browser, tmp_path):
    url = database_url(data_dir)
    upgrade_database(url)
    for name in ("alice", "bob"):
        create_user(name, PASSWORD, url=url)
    dispose_engines()
    base = app_server(COSNET_AUTH="accounts").url
    pixel = f"{base}/pixel.png"
    name = f"salts ![x]({pixel})"
    fetched: list[str] = []

    alice = _log_in(browser.new_context(), base, "alice")
    alice.on("request", lambda request: fetched.append(request.url))
    table = tmp_path / "salts.csv"
    table.write_text(TABLE)
    upload(alice, "Table of measurements", table)
    box = alice.get_by_role("textbox", name="Name of the new dataset")
    box.fill(name)
    box.press("Enter")
    wait_for_app(alice)
    click_button(alice, "Import")
    assert any("Imported" in text for text in alerts(alice, "Success"))

    bob = _log_in(browser.new_context(), base, "bob")
    bob.on("request", lambda request: fetched.append(request.url))
    assert bob.get_by_text("No dataset yet").count() == 1  # private: nothing of alice's

    click_button(alice, "Share with the lab")
    open_page(bob, "Datasets")  # bob's next click (a reload would start a new, logged-out session)
    bob.wait_for_selector("h3:has-text('Summary of')", timeout=60_000)
    wait_for_app(bob)
    assert name in bob.locator("h3:has-text('Summary of')").first.inner_text()  # shown as text
    assert bob.locator(f"img[src='{pixel}']").count() == 0 and alice.locator(f"img[src='{pixel}']").count() == 0
    for label in ("Delete permanently", "Make private", "Re-clean this version with other options"):
        assert bob.get_by_role("button", name=label).count() == 0, label
    assert bob.get_by_text("belongs to alice").count() == 1

    bob.get_by_role("button", name="Log out").click()
    bob.wait_for_selector("text=Log in", timeout=E2E_TIMEOUT_MS)
    assert bob.get_by_role("textbox", name="User name").count() == 1
    assert pixel not in fetched  # no browser ever asked for the "tracking pixel"
