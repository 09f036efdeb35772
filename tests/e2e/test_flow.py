"""The whole flow in a real browser: upload a real dataset with its CIFs → match against the local library →
accept → the 3D view draws → train a tiny study → Table 1 and the parity plot → predict a new formula.

Playwright drives Debian's headless Chromium against ``streamlit run app.py`` on 127.0.0.1 over a fresh data
directory; the jobs executor and its local Ray are started by the Training page itself, as for a user. A
screenshot of each page is saved under ``test-artifacts/e2e/``.
"""

from __future__ import annotations

import math
import re
import time

import pytest

from tests.e2e.harness import (
    E2E_TIMEOUT_MS,
    OBELIX_TARGET,
    alerts,
    choose,
    click_button,
    database_url,
    e2e_artifacts,
    integrity_check,
    obelix_subset,
    open_page,
    remove_choice,
    row_counts,
    screenshot,
    set_number,
    set_text,
    upload,
    viewer_drawing,
    wait_for_app,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

STUDY_TIMEOUT_MS = 300_000
VIEWPORT = {"width": 1400, "height": 1800}


def metrics(page) -> dict[str, str]:
    """The ``st.metric`` values on the page by label."""
    found = {}
    for text in page.locator("[data-testid=stMetric]").all_inner_texts():
        label, _, value = (part.strip() for part in text.partition("\n\n"))
        found[label] = value
    return found


def library_candidate_labels(url: str, version_id: int) -> tuple[str, str]:
    """The review list's label of a pending entry with a local-library candidate, and that candidate's label."""
    from db import structures as store
    from ui.structures_view import _entry_label

    table = store.entry_table(url, version_id, "pending")
    for _, row in table.iterrows():
        for candidate in store.entry_detail(url, int(row["entry_id"]))["candidates"]:
            if candidate["source"] == "library":
                return _entry_label(row), (
                    f"#{candidate['rank']} {candidate['source']}:{candidate['external_id']} "
                    f"({candidate['formula']}, {candidate['match']}, {candidate['status']})"
                )
    raise AssertionError(f"no pending entry has a library candidate: {table.to_dict('records')}")


def test_upload_match_accept_train_results_predict(shared_data, tmp_path, data_dir, app_server, browser):
    subset = obelix_subset(shared_data, tmp_path / "upload")
    server = app_server("flow")
    url = database_url(data_dir)
    timings: dict[str, float] = {}
    started = time.monotonic()

    def lap(name: str) -> None:
        timings[name] = round(time.monotonic() - started, 1)

    page = browser.new_page(viewport=VIEWPORT)
    page.set_default_timeout(E2E_TIMEOUT_MS)
    page.goto(server.url)
    page.wait_for_selector("h1:has-text('Datasets')")
    wait_for_app(page)
    lap("first page")

    # ---- Datasets: upload the table and the CIF zip, map the columns, import.
    upload(page, "Table of measurements", subset.table)
    upload(page, "crystal structures as one .zip", subset.cif_zip)
    choose(page, "Formula (required)", "Reduced Composition")
    choose(page, "Target property (required)", OBELIX_TARGET)
    choose(page, "Sample ID", "ID")
    page.get_by_text(f"The zip '{subset.cif_zip.name}' holds {len(subset.ids_with_cif)} CIF file(s).").wait_for()
    click_button(page, "Import")
    page.get_by_text(f"Imported '{subset.table.name}' as version 1.").wait_for()
    wait_for_app(page)
    assert alerts(page, "Error") == []
    assert metrics(page)["Rows kept"] == str(subset.n_rows)
    assert metrics(page)["Rows with a structure"] == str(len(subset.ids_with_cif))
    screenshot(page, "1-datasets")
    lap("datasets")
    counts = row_counts(url)
    assert counts["entries"] == subset.n_rows and counts["dataset_versions"] == 1

    # ---- Structures: add the library CIFs, match with nothing accepted automatically, accept a library candidate.
    open_page(page, "Structures")
    assert metrics(page)["Structure coverage"] == f"{100 * len(subset.ids_with_cif) / subset.n_rows:.1f} %"
    upload(page, "Add CIF files, a zip of CIFs", subset.library)
    click_button(page, "Add to the library")
    assert any(f"{len(subset.library)} added to the library" in text for text in alerts(page, "Success"))
    assert metrics(page)["Structures in the library"] == str(len(subset.library))
    choose(page, "Auto-accept", "Accept nothing automatically")
    click_button(page, "Match all")
    assert any("0 accepted automatically" in text for text in alerts(page, "Success")), alerts(page, "Success")
    page.locator("[data-testid=stRadioOption]", has_text="Pending review").click()
    wait_for_app(page)
    entry_label, candidate_label = library_candidate_labels(url, version_id=1)
    choose(page, "Entry", entry_label)
    choose(page, "Candidate", candidate_label)
    drawn = viewer_drawing(page, min_shapes=50)  # the library candidate about to be accepted, in 3D
    assert drawn["error"] == ""
    assert len(drawn["fills"]) >= 2, drawn  # several elements, several colours (Li is one of them)
    screenshot(page, "2-structures")
    click_button(page, "Accept")
    assert any(text.startswith("Accepted ") and " for row " in text for text in alerts(page, "Success"))
    assert metrics(page)["Structure coverage"] == f"{100 * (len(subset.ids_with_cif) + 1) / subset.n_rows:.1f} %"
    lap("structures")

    # ---- Training: two modes x two seeds, two epochs; wait for the study on the page itself.
    open_page(page, "Training")
    remove_choice(page, "Bimodal without augmentation")
    set_number(page, "Seeds per mode", 2)
    set_number(page, "Epochs", 2)
    page.get_by_text("4 runs of 2 epochs on").wait_for()
    click_button(page, "Launch study")
    assert any("Study queued" in text for text in alerts(page, "Success"))
    page.get_by_text("Study 1 · succeeded").first.wait_for(timeout=STUDY_TIMEOUT_MS)
    wait_for_app(page)
    assert not page.get_by_text("failed:").count()
    screenshot(page, "3-training")
    lap("training")

    # ---- Results: Table 1 (a data frame with mean ± std cells) and the parity plot (vega-embed with marks).
    open_page(page, "Results")
    page.locator("h2", has_text="Table 1").wait_for()
    table1 = page.locator("[data-testid=stDataFrame]").first
    table1.wait_for()
    cells = table1.locator("[data-testid^=glide-cell]").all_inner_texts()
    assert any("±" in cell for cell in cells), cells
    parity = page.locator(".vega-embed", has_text="Predicted").first
    parity.wait_for()
    assert parity.locator("svg.marks, canvas").count() >= 1
    assert "Measured" in parity.inner_text()
    screenshot(page, "4-results")
    lap("results")

    # ---- Predict: a formula that is not in the dataset gets a finite number.
    open_page(page, "Predict")
    set_text(page, "Formula", "Li6PS5Cl")
    click_button(page, "Predict")
    prediction = metrics(page)["Prediction, log10(σ / S cm⁻¹)"]  # the unit of the dataset (issue 16, item 3)
    assert math.isfinite(float(prediction.replace("−", "-")))
    assert -25 < float(prediction.replace("−", "-")) < 5  # log10 of a conductivity in S/cm
    screenshot(page, "5-predict")

    # ---- Predict a table whose columns are in a non-default order (sample, cif, formula): the columns are chosen
    # by name; a row whose CIF is not in the zip is predicted from its composition, with a warning (issue 16).
    import pandas as pd

    rows = pd.read_csv(subset.table, dtype=str, keep_default_na=False).set_index("ID")
    batch_ids = subset.ids_with_cif[:2]
    batch = pd.DataFrame({
        "sample": [*batch_ids, "no-cif"],
        "cif": [f"{i}.cif" for i in batch_ids] + ["missing.cif"],
        "formula": [rows.loc[i, "Reduced Composition"] for i in batch_ids] + ["Li3PS4"],
    })
    batch_path = tmp_path / "batch.csv"
    batch.to_csv(batch_path, index=False)
    page.get_by_role("combobox", name="Model", exact=True).first.click()  # the bimodal model takes a CIF zip
    page.get_by_role("option", name=re.compile(r"bimodal-aug, ensemble of 2 seeds")).first.click()
    wait_for_app(page)
    page.get_by_role("tab", name="A table of materials").click()
    upload(page, "Table", batch_path)
    upload(page, "CIF zip (optional)", subset.cif_zip)
    click_button(page, "Predict the table")
    page.get_by_text("Download predictions as CSV").wait_for()
    warnings = " ".join(alerts(page, "Warning"))
    assert "1 row(s) predicted from the composition alone" in warnings and "line(s) 4" in warnings, warnings
    assert alerts(page, "Error") == []
    screenshot(page, "6-predict-batch")
    lap("predict")

    assert integrity_check(url) == "ok"
    (e2e_artifacts() / "flow-timings.txt").write_text(
        "\n".join(f"{name}: {seconds} s" for name, seconds in timings.items()) + "\n"
    )
    print("flow timings (s since the first request):", timings)
