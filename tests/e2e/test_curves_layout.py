"""Issue 16, item 7 in a real browser at 1400×1000: the Results page's charts keep their plot areas (the training
curves had collapsed to a line: Streamlit's default autosize took the title, axes and legend out of the height), the
parity plot's plot area is square and fits its column, and no chart overlaps another."""

from __future__ import annotations

import pytest

from db.engine import dispose_engines, upgrade_database
from tests.e2e.harness import database_url, open_page, screenshot, wait_for_app
from ui.results_view import CURVE_HEIGHT, PARITY_SIZE


def _plot_area(chart) -> dict:
    """The bounding box of a Vega chart's plot area (the frame of its marks; the first layer of a layered chart)."""
    frame = chart.locator("svg g.mark-group.role-frame > g > path.background").first
    return frame.bounding_box()


@pytest.mark.slow
@pytest.mark.browser
def test_results_charts_keep_their_plot_areas_at_1400_by_1000(data_dir, app_server, browser, monkeypatch):
    url = database_url(data_dir)
    upgrade_database(url)
    monkeypatch.setenv("COSNET_DATABASE_URL", url)
    from tests.pages.results_fixtures import store_study

    store_study(n_entries=12)
    dispose_engines()
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(app_server().url)
    wait_for_app(page)
    open_page(page, "Results")
    charts = page.locator("[data-testid=stVegaLiteChart]")
    assert charts.count() == 4  # parity, residuals, Figure 3, training curves
    boxes = []
    for index in range(charts.count()):
        charts.nth(index).scroll_into_view_if_needed()
        boxes.append((charts.nth(index).bounding_box(), _plot_area(charts.nth(index))))
    screenshot(page, "results-1400x1000-curves")
    charts.first.scroll_into_view_if_needed()
    screenshot(page, "results-1400x1000-parity")

    (parity, parity_plot), (residuals, residuals_plot), (_, weights_plot), (_, curves_plot) = boxes
    assert parity_plot["width"] == pytest.approx(PARITY_SIZE, abs=1)
    assert parity_plot["height"] == pytest.approx(PARITY_SIZE, abs=1)  # square: y = x is its diagonal
    assert parity["x"] + parity["width"] <= residuals["x"], (parity, residuals)  # fits its half of the row
    assert curves_plot["height"] == pytest.approx(CURVE_HEIGHT, abs=1), curves_plot
    assert curves_plot["width"] > 600  # the full width of the main column
    for plot in (residuals_plot, weights_plot):
        assert plot["height"] >= 200, plot


@pytest.mark.slow
@pytest.mark.browser
def test_training_page_curves_keep_their_plot_areas_and_full_titles(data_dir, app_server, browser, monkeypatch):
    """The Training page draws its two curves side by side in half-width columns: the layout where the plot area
    collapsed to a line and the loss axis title was cut."""
    url = database_url(data_dir)
    upgrade_database(url)
    monkeypatch.setenv("COSNET_DATABASE_URL", url)
    from tests.pages.results_fixtures import store_study

    store_study(n_entries=12)  # a finished study: four runs with three epochs each
    dispose_engines()
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(app_server().url)
    wait_for_app(page)
    open_page(page, "Training")
    charts = page.locator("[data-testid=stVegaLiteChart]")
    assert charts.count() == 2  # validation MAE and training loss of the study
    charts.first.scroll_into_view_if_needed()
    wait_for_app(page)
    screenshot(page, "training-1400x1000-curves")
    for index in range(2):
        plot = _plot_area(charts.nth(index))
        assert plot["height"] == pytest.approx(CURVE_HEIGHT, abs=1), plot
        assert plot["width"] > 250, plot
        titles = charts.nth(index).locator("svg g.role-axis-title text").all_text_contents()
        assert titles and not any(t.endswith("…") for t in titles), titles
