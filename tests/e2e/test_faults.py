"""Crashes during work, then a restart: nothing stored is lost, the run ends correctly, the database stays sound.

(a) ``kill -9`` of the Streamlit server while a study trains: the executor is detached from the web server and goes
    on; after ``streamlit run app.py`` starts again on the same data directory, the study is still on the Training
    page and ends there.
(b) ``kill -9`` of the jobs executor (the process that owns the local Ray and the study's tasks) while a study
    trains; the Training page, opened again, starts a new executor, whose recovery resumes or fails the dead jobs
    with a reason. (``tests/jobs`` already kills a Ray *worker* and the executor over a Ray that survives it; here
    the executor's own local Ray goes down with it, as on a real machine.)

After each: the rows of datasets, versions, entries and structures are unchanged, every job and run has ended
(succeeded, or failed with a reason), each epoch of a run is stored once, and ``PRAGMA integrity_check`` is "ok".
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sqlite3
import time

import pytest

from tests.e2e.harness import (
    E2E_TIMEOUT_MS,
    click_button,
    database_url,
    executor_pid,
    integrity_check,
    open_page,
    remove_choice,
    row_counts,
    screenshot,
    set_number,
    wait_until,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

STORED_TABLES = ("datasets", "dataset_versions", "entries", "structures")
EPOCHS = 40
FINISH_TIMEOUT_S = 240


def query(url: str, sql: str) -> list[tuple]:
    """Rows of one SQL query on the test's SQLite database (read-only use)."""
    with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"), timeout=30)) as connection:
        return connection.execute(sql).fetchall()


def stored(url: str) -> dict[str, int]:
    """Row counts of the tables that hold the user's data (what a crash must never lose)."""
    counts = row_counts(url)
    return {table: counts[table] for table in STORED_TABLES}


def prepare_dataset(data_dir) -> str:
    """Migrate the data directory's database and store the jobs tests' 30-row toy dataset (10 structures)."""
    from db.engine import dispose_engines, upgrade_database
    from tests.jobs.conftest import make_dataset

    url = database_url(data_dir)
    upgrade_database(url)
    make_dataset(url)
    dispose_engines()
    return url


def launch_one_run(page) -> None:
    """On the Training page: one bimodal-aug run of :data:`EPOCHS` epochs, launched."""
    open_page(page, "Training")
    for mode in ("Composition only", "Bimodal without augmentation"):
        remove_choice(page, mode)
    set_number(page, "Seeds per mode", 1)
    set_number(page, "Epochs", EPOCHS)
    try:
        page.get_by_text(re.compile(rf"^1 runs? of {EPOCHS} epochs on")).wait_for(timeout=30_000)
    except Exception:
        screenshot(page, "faults-launch-failed")
        raise
    click_button(page, "Launch study")


def running_epochs(url: str) -> int:
    """Epochs done by a running run (0 when none runs)."""
    rows = query(url, "SELECT epochs_done FROM runs WHERE status = 'running'")
    return max((row[0] for row in rows), default=0)


def assert_ended_soundly(url: str, before: dict[str, int]) -> dict[str, object]:
    """Every job and run has ended; failures carry a reason; epochs are stored once; nothing stored was lost."""
    jobs = query(url, "SELECT id, kind, status, error, attempts FROM jobs")
    assert jobs and all(status in ("succeeded", "failed", "cancelled") for _, _, status, _, _ in jobs), jobs
    assert all(error for _, _, status, error, _ in jobs if status == "failed"), jobs
    runs = query(url, "SELECT id, status, epochs_done, n_epochs FROM runs")
    for run_id, status, epochs_done, n_epochs in runs:
        epochs = [row[0] for row in query(url, f"SELECT epoch FROM epoch_metrics WHERE run_id = {run_id}")]
        assert len(epochs) == len(set(epochs)), f"run {run_id} stored an epoch twice: {sorted(epochs)}"
        if status == "succeeded":
            assert sorted(epochs) == list(range(1, n_epochs + 1)) and epochs_done == n_epochs
    assert stored(url) == before
    assert integrity_check(url) == "ok"
    return {"jobs": jobs, "runs": runs}


def train_until_epoch_two(data_dir, app_server, browser, name: str):
    """A fresh dataset, a server and a page; one run launched from the Training page and past its second epoch.

    Returns:
        ``(database url, stored rows before training, server, page)``.
    """
    url = prepare_dataset(data_dir)
    before = stored(url)
    server = app_server(name)
    page = browser.new_page(viewport={"width": 1400, "height": 1600})
    page.set_default_timeout(E2E_TIMEOUT_MS)
    page.goto(server.url)
    page.wait_for_selector("h1:has-text('Datasets')")
    launch_one_run(page)
    wait_until(lambda: running_epochs(url) >= 2, 180, "two epochs of the run")
    return url, before, server, page


def test_kill_the_app_server_during_training_then_restart(data_dir, app_server, browser):
    url, before, first, page = train_until_epoch_two(data_dir, app_server, browser, "before-kill")
    executor = executor_pid(data_dir)

    first.kill9()
    assert executor is not None and os.path.exists(f"/proc/{executor}"), "the executor died with the web server"
    assert stored(url) == before

    second = app_server("after-kill")
    page.goto(second.url)
    page.wait_for_selector("h1:has-text('Datasets')")
    open_page(page, "Training")
    page.get_by_text("Study 1 ·").first.wait_for()  # still visible after the restart
    page.get_by_text("Study 1 · succeeded").first.wait_for(timeout=FINISH_TIMEOUT_S * 1000)
    screenshot(page, "faults-app-killed")
    outcome = assert_ended_soundly(url, before)
    assert [status for _, status, _, _ in outcome["runs"]] == ["succeeded"]


def test_kill_the_executor_during_training_then_restart(data_dir, app_server, browser):
    url, before, _server, page = train_until_epoch_two(data_dir, app_server, browser, "executor-kill")
    killed = executor_pid(data_dir)
    assert killed is not None
    os.kill(killed, signal.SIGKILL)
    from jobs.executor import executor_status

    wait_until(lambda: executor_status(data_dir) is None, 30, "the executor's lock to be released")
    assert stored(url) == before

    # The user comes back: the Training page sees an unfinished study and no executor, and starts one.
    started = time.monotonic()
    page.reload()
    page.wait_for_selector("h1")
    open_page(page, "Training")
    page.get_by_text("Study 1 ·").first.wait_for()
    wait_until(lambda: executor_pid(data_dir) not in (None, killed), 60, "a new executor")
    page.get_by_text("Study 1 · succeeded").or_(page.get_by_text("Study 1 · failed")).first.wait_for(
        timeout=FINISH_TIMEOUT_S * 1000
    )
    screenshot(page, "faults-executor-killed")
    outcome = assert_ended_soundly(url, before)
    (run,) = outcome["runs"]
    train_jobs = [job for job in outcome["jobs"] if job[1] == "train"]
    if run[1] == "succeeded":  # resumed from its checkpoint by the new executor
        assert any(attempts >= 2 for *_, attempts in train_jobs), outcome
    else:
        assert run[1] == "failed" and any("worker" in (job[3] or "") for job in train_jobs), outcome
    print(f"study ended {time.monotonic() - started:.0f} s after the page was opened again: {outcome}")
