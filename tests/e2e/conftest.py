"""Fixtures of the end-to-end tests: a fresh data directory, app servers that are always shut down, a browser.

Every process a test starts (``streamlit run app.py``, the jobs executor it spawns, the executor's local Ray) is
ended at teardown, also when the test fails: see :func:`tests.e2e.harness.stop_everything`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser import headless_chromium, require_browser
from tests.e2e.harness import AppServer, stop_everything


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    """A fresh, empty data directory for one test's app (the app migrates its database on first use)."""
    folder = tmp_path / "cosnet-data"
    folder.mkdir()
    return folder


@pytest.fixture()
def app_server(data_dir: Path, request) -> Iterator[Callable[..., AppServer]]:
    """A factory ``start(name="app", **env) -> AppServer`` of started app servers over the test's data directory.

    All servers, the executor and anything else carrying this data directory are stopped at teardown.
    """
    servers: list[AppServer] = []

    def start(name: str = "app", **env: str) -> AppServer:
        server = AppServer(data_dir, env=env, name=f"{request.node.name}-{name}")
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.stop()
    stop_everything(data_dir)


@pytest.fixture()
def browser() -> Iterator[Any]:
    """Headless Debian Chromium through Playwright; skips when either is missing."""
    require_browser()
    with headless_chromium() as launched:
        yield launched
