"""Helpers for tests that drive a real browser against ``streamlit run``.

* :func:`chromium_path` finds Debian's Chromium (``apt-get install chromium``); ``playwright install`` cannot
  download browsers on these machines, so Playwright is pointed at the system binary.
* :func:`headless_chromium` launches it headless through Playwright and yields the ``Browser``.
* :func:`streamlit_server` starts ``streamlit run <script>`` on 127.0.0.1 at a free port in a subprocess, waits
  for ``/_stcore/health``, yields the base URL and stops the process (and its children) afterwards.
* :func:`require_browser` skips the calling test with a clear reason when Chromium or Playwright is missing.

Typical use::

    from tests.browser import headless_chromium, require_browser, streamlit_server

    @pytest.mark.browser
    def test_page(tmp_path):
        require_browser()
        with streamlit_server(SCRIPT, env={"COSNET_DATA_DIR": str(tmp_path)}) as url, headless_chromium() as browser:
            page = browser.new_page()
            page.goto(url)
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS_DIR = REPO_ROOT / "test-artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def chromium_path() -> str | None:
    """Path of the system Chromium (Debian's ``chromium`` package), or None when it is not installed."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def require_browser() -> str:
    """Skip the calling test unless Chromium and Playwright are both available.

    Returns:
        The Chromium executable path.
    """
    path = chromium_path()
    if path is None:
        pytest.skip("Chromium is not installed (apt-get install -y chromium); browser tests need it")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("Playwright for Python is not installed; browser tests need it")
    return path


def artifacts_dir() -> Path:
    """The git-ignored folder where browser tests save screenshots (created on demand)."""
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS_DIR


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def headless_chromium(**launch_options: Any) -> Iterator[Any]:
    """Launch the system Chromium headless through Playwright.

    Args:
        **launch_options: extra keyword arguments for ``chromium.launch``.

    Yields:
        A Playwright ``Browser``; closed on exit.
    """
    executable = require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, **launch_options)
        try:
            yield browser
        finally:
            browser.close()


def _wait_for_health(url: str, process: subprocess.Popen, log_path: Path, timeout_s: float) -> None:
    """Poll ``<url>/_stcore/health`` until it answers ok, the process dies, or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"streamlit exited with code {process.returncode} before it was healthy:\n{log_path.read_text()}"
            )
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.25)
    raise TimeoutError(f"streamlit was not healthy at {url} after {timeout_s:.0f} s:\n{log_path.read_text()}")


def _stop(process: subprocess.Popen) -> None:
    """Stop the streamlit process group: SIGTERM, then SIGKILL after 10 s."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=10)


@contextmanager
def streamlit_server(
    script: str | Path,
    *,
    env: dict[str, str] | None = None,
    startup_timeout_s: float = 60.0,
    log_path: Path | None = None,
    address_flag: bool = True,
) -> Iterator[str]:
    """Run ``streamlit run script`` on 127.0.0.1 at a free port for the duration of the block.

    Args:
        script: the Streamlit script to run.
        env: environment variables added to (and overriding) the current environment, e.g. ``COSNET_DATA_DIR``.
        startup_timeout_s: how long to wait for ``/_stcore/health``.
        log_path: where the server's stdout/stderr go; default ``test-artifacts/streamlit-<script>.log``.
        address_flag: pass ``--server.address 127.0.0.1`` and ``--server.fileWatcherType none``; False leaves
            both to ``.streamlit/config.toml``, as the README's ``streamlit run app.py`` does.

    Yields:
        The base URL, e.g. ``http://127.0.0.1:51234``.
    """
    port = free_port()
    script = Path(script)
    log_path = log_path or artifacts_dir() / f"streamlit-{script.stem}.log"
    python_path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    full_env = {**os.environ, "PYTHONPATH": python_path, **(env or {})}
    command = [
        sys.executable, "-m", "streamlit", "run", str(script),
        "--server.port", str(port),
        *(["--server.address", "127.0.0.1", "--server.fileWatcherType", "none"] if address_flag else []),
        "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            _wait_for_health(url, process, log_path, startup_timeout_s)
            yield url
        finally:
            _stop(process)
