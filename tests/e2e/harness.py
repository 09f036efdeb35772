"""What the end-to-end, fault and load tests add to :mod:`tests.browser`.

* :class:`AppServer`: ``streamlit run app.py`` on 127.0.0.1 over one data directory, whose process can be killed
  with SIGKILL and started again on the same data directory (``tests.browser.streamlit_server`` only yields a URL).
* :func:`stop_everything`: ends every process this test started for a data directory (the Streamlit server, the
  jobs executor it spawned, the executor's local Ray), found by process id: the executor's status files and the
  processes whose environment carries that exact ``COSNET_DATA_DIR``.
* :func:`obelix_subset`: a small real dataset written into the test's temporary folder from the shared OBELiX
  files (rows with and without a CIF, a zip of their CIFs, a few more CIFs for the structure library).
* Streamlit-in-Playwright helpers (:func:`wait_for_app`, :func:`upload`, :func:`choose`, :func:`click_button`,
  :func:`open_page`, ...) that use the ``data-testid`` attributes Streamlit 1.67 renders and wait for reruns.
* :func:`row_counts` and :func:`integrity_check`: what a fault test compares before and after a crash.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.browser import REPO_ROOT, artifacts_dir, free_port

E2E_TIMEOUT_MS = 240_000  # generous: the first script run of a cold server imports torch and pymatgen
#: The 3D viewer component's iframe (``ui.structure_viewer``) and its drawn SVG scene.
VIEWER_IFRAME = "iframe[title='ui.structure_viewer.structure_scene']"
VIEWER_SVG = "#scene-root[data-rendered='1'] #cosnet-structure-scene svg"
OBELIX_TARGET = "Ionic conductivity (S cm-1)"


def e2e_artifacts() -> Path:
    """``test-artifacts/e2e/`` (git-ignored), created on demand: screenshots and server logs of these tests."""
    folder = artifacts_dir() / "e2e"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def app_environment(data_dir: Path, **extra: str) -> dict[str, str]:
    """Environment of an app process over ``data_dir``: its own SQLite database, SVG viewer, local Ray.

    Args:
        data_dir: the (fresh) data directory.
        **extra: more variables (they win).

    Returns:
        The variables to add to ``os.environ``.
    """
    env = {
        "COSNET_DATA_DIR": str(data_dir),
        "COSNET_DATABASE_URL": database_url(data_dir),
        "COSNET_VIEWER_RENDERER": "svg",
        "COSNET_RAY_NUM_CPUS": "2",  # a small local Ray: two runs at a time is enough for the tiny studies here
        "PYTHONPATH": str(REPO_ROOT),
    }
    env.update(extra)
    return env


def database_url(data_dir: Path) -> str:
    """The SQLite URL of a data directory's database."""
    return f"sqlite:///{Path(data_dir) / 'cosnet.db'}"


# ---------------------------------------------------------------------------------------------- processes


class AppServer:
    """``streamlit run app.py`` over one data directory, killable and restartable.

    Args:
        data_dir: the data directory (``COSNET_DATA_DIR``); the database is ``<data dir>/cosnet.db``.
        env: more environment variables.
        name: a short name for the log file ``test-artifacts/e2e/streamlit-<name>.log``.
    """

    def __init__(self, data_dir: Path, *, env: dict[str, str] | None = None, name: str = "app") -> None:
        self.data_dir = Path(data_dir)
        inherited = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # a local Ray of its own
        self.env = {**inherited, **app_environment(self.data_dir), **(env or {})}
        self.log_path = e2e_artifacts() / f"streamlit-{name}.log"
        self.process: subprocess.Popen | None = None
        self.url = ""

    @property
    def pid(self) -> int:
        """The Streamlit server's process id."""
        assert self.process is not None, "the server was not started"
        return self.process.pid

    def start(self, timeout_s: float = 120.0) -> str:
        """Start the server at a free port and wait until ``/_stcore/health`` answers.

        Args:
            timeout_s: how long to wait for health.

        Returns:
            The base URL.
        """
        import urllib.error
        import urllib.request

        port = free_port()
        command = [
            sys.executable, "-m", "streamlit", "run", "app.py",
            "--server.address", "127.0.0.1", "--server.port", str(port), "--server.headless", "true",
            "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false",
        ]  # fmt: skip
        with open(self.log_path, "a") as log:
            log.write(f"\n=== start {time.strftime('%H:%M:%S')} port {port}\n")
            log.flush()
            self.process = subprocess.Popen(
                command, cwd=REPO_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"streamlit exited with {self.process.returncode}:\n{self.log_path.read_text()}")
            with contextlib.suppress(urllib.error.URLError, ConnectionError, TimeoutError):
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        return self.url
            time.sleep(0.25)
        raise TimeoutError(f"streamlit was not healthy after {timeout_s:.0f} s:\n{self.log_path.read_text()}")

    def kill9(self) -> None:
        """SIGKILL the Streamlit server process only (what a crash or an OOM kill does)."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        """Stop the server's process group: SIGTERM, then SIGKILL after 10 s."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def _environ_of(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:  # gone, or not ours
        return {}
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {key.decode(errors="replace"): value.decode(errors="replace") for key, value in pairs}


def processes_of(data_dir: Path) -> list[int]:
    """Process ids of the processes whose environment has ``COSNET_DATA_DIR`` set to exactly ``data_dir``.

    Every process a test starts for its fresh data directory (Streamlit, the executor, Ray's processes and workers,
    which inherit the executor's environment) carries it; no other process does.

    Args:
        data_dir: the test's data directory.

    Returns:
        The process ids (this process excluded).
    """
    wanted = str(Path(data_dir))
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            if _environ_of(int(entry.name)).get("COSNET_DATA_DIR") == wanted:
                found.append(int(entry.name))
    return found


def executor_pid(data_dir: Path) -> int | None:
    """The pid of the jobs executor running for ``data_dir`` (from its status files), or None."""
    from jobs.executor import executor_status

    status = executor_status(Path(data_dir))
    if status is None:
        return None
    if status.get("pid"):
        return int(status["pid"])
    with contextlib.suppress(OSError, ValueError, KeyError):
        return int(json.loads((Path(data_dir) / "executor.spawn").read_text())["pid"])
    return None


def stop_everything(data_dir: Path, server: AppServer | None = None) -> list[int]:
    """End every process started for ``data_dir``: the server, the executor (SIGTERM first), then any leftover.

    Args:
        data_dir: the test's data directory.
        server: the app server, when there is one.

    Returns:
        The ids of the processes that had to be killed with SIGKILL at the end.
    """
    if server is not None:
        server.stop()
    with contextlib.suppress(Exception):
        from jobs.executor import stop_executor

        stop_executor(Path(data_dir), timeout_s=20)
    leftovers = processes_of(data_dir)
    for pid in leftovers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and processes_of(data_dir):
        time.sleep(0.3)
    killed = processes_of(data_dir)
    for pid in killed:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return killed


def wait_until(condition: Callable[[], Any], timeout_s: float, what: str, every_s: float = 0.5) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout_s`` naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


# ---------------------------------------------------------------------------------------------- database


def row_counts(url: str) -> dict[str, int]:
    """Rows in every table of the database (Alembic's bookkeeping table excluded).

    Args:
        url: a SQLite URL.

    Returns:
        ``{table: rows}``.
    """
    with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as connection:
        tables = [
            name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if not name.startswith(("sqlite_", "alembic_"))
        ]
        return {name: connection.execute(f'SELECT COUNT(*) FROM "{name}"').fetchone()[0] for name in sorted(tables)}


def integrity_check(url: str) -> str:
    """SQLite's ``PRAGMA integrity_check`` of the database (``"ok"`` when sound)."""
    with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as connection:
        return "; ".join(row[0] for row in connection.execute("PRAGMA integrity_check"))


# ---------------------------------------------------------------------------------------------- data


@dataclass
class ObelixSubset:
    """A small real dataset cut from OBELiX's train split, written as upload files.

    Attributes:
        table: the CSV (the original 28 columns).
        cif_zip: a zip of the CIFs named ``<ID>.cif`` of the rows with a structure in the upload.
        library: CIF files of rows left out of the zip (for the local structure library).
        ids_with_cif: IDs whose CIF is in the zip.
        ids_library: IDs whose CIF is only in the library.
        ids_without: IDs with no CIF at all.
    """

    table: Path
    cif_zip: Path
    library: list[Path]
    ids_with_cif: list[str] = field(default_factory=list)
    ids_library: list[str] = field(default_factory=list)
    ids_without: list[str] = field(default_factory=list)

    @property
    def n_rows(self) -> int:
        """Rows of the table."""
        return len(self.ids_with_cif) + len(self.ids_library) + len(self.ids_without)


def obelix_subset(
    shared_data: Path, folder: Path, *, n_with_cif: int = 22, n_library: int = 3, n_without: int = 10,
    max_sites: int = 40,
) -> ObelixSubset:
    """Write a small OBELiX subset: rows with small, readable CIFs, some whose CIF goes to the library, some without.

    Only rows with a numeric conductivity and a CIF whose composition agrees with the table are used, smallest
    cells first (fast graphs).

    Args:
        shared_data: the shared data folder (``li_conductivity/`` inside).
        folder: where to write the files.
        n_with_cif: rows whose CIF is in the upload zip.
        n_library: rows whose CIF is left out of the zip and written for the library instead.
        n_without: rows without any CIF.
        max_sites: largest cell used.

    Returns:
        The files and the IDs of each group.
    """
    import pandas as pd

    source = shared_data / "li_conductivity"
    table = pd.read_csv(source / "train.csv", dtype=str, keep_default_na=False)
    report = pd.read_csv(source / "cif_report.csv", dtype=str, keep_default_na=False)
    numeric = pd.to_numeric(table[OBELIX_TARGET], errors="coerce") > 0
    table = table[numeric]
    checked = report[(report["parses"] == "True") & (report["composition_check"] == "ok")].copy()
    checked["nsites"] = checked["nsites"].astype(float)
    small = checked[checked["nsites"] <= max_sites].sort_values(["nsites", "ID"])
    with_cif = [i for i in small["ID"] if i in set(table["ID"])]
    chosen_cif = with_cif[: n_with_cif + n_library]
    if len(chosen_cif) < n_with_cif + n_library:
        raise ValueError(f"only {len(chosen_cif)} OBELiX rows have a small readable CIF")
    without = [i for i in table["ID"] if i not in set(report["ID"])][:n_without]
    ids_zip, ids_library = chosen_cif[:n_with_cif], chosen_cif[n_with_cif:]
    rows = table[table["ID"].isin([*chosen_cif, *without])]
    folder.mkdir(parents=True, exist_ok=True)
    table_path = folder / "obelix-small.csv"
    rows.to_csv(table_path, index=False)
    zip_path = folder / "obelix-small-cifs.zip"
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as archive:
        for sample_id in ids_zip:
            archive.write(source / "cifs" / f"{sample_id}.cif", arcname=f"{sample_id}.cif")
    library = []
    for sample_id in ids_library:
        path = folder / f"library-{sample_id}.cif"
        path.write_bytes((source / "cifs" / f"{sample_id}.cif").read_bytes())
        library.append(path)
    return ObelixSubset(table_path, zip_path, library, ids_zip, ids_library, without)


# ---------------------------------------------------------------------------------------------- Playwright


def wait_for_app(page: Any, timeout_ms: int = E2E_TIMEOUT_MS, settle_ms: int = 600) -> None:
    """Wait until the Streamlit script is not running, and has stayed so for ``settle_ms`` (reruns chain).

    Args:
        page: a Playwright page showing the app.
        timeout_ms: how long to wait in all.
        settle_ms: how long the app must stay idle.
    """
    deadline = time.monotonic() + timeout_ms / 1000
    idle_since = None
    while time.monotonic() < deadline:
        state = page.evaluate(
            "() => { const app = document.querySelector('[data-testid=stApp]');"
            " return app ? app.getAttribute('data-test-script-state') : null; }"
        )
        busy = state != "notRunning" or page.locator("[data-testid=stSpinner]").count() > 0
        if busy:
            idle_since = None
        elif idle_since is None:
            idle_since = time.monotonic()
        elif (time.monotonic() - idle_since) * 1000 >= settle_ms:
            return
        page.wait_for_timeout(150)
    raise AssertionError(f"the app was still running its script after {timeout_ms / 1000:.0f} s")


def open_page(page: Any, title: str) -> None:
    """Go to one of the app's pages through the sidebar navigation (the browser session is kept).

    Args:
        page: the Playwright page.
        title: the navigation title ("Datasets", "Structures", "Training", "Results", "Predict").
    """
    page.locator("[data-testid=stSidebarNavLink]", has_text=title).first.click()
    page.wait_for_selector(f"h1:has-text('{title}')", timeout=E2E_TIMEOUT_MS)
    wait_for_app(page)


def upload(page: Any, label: str, path: Path | list[Path]) -> None:
    """Give a file (or files) to the ``st.file_uploader`` whose label contains ``label``; waits for the rerun.

    Args:
        page: the Playwright page.
        label: part of the uploader's label.
        path: the file(s).
    """
    uploader = page.locator("[data-testid=stFileUploader]", has_text=label).first
    files = [str(p) for p in path] if isinstance(path, list) else str(path)
    uploader.locator("input[type=file]").set_input_files(files)
    page.wait_for_timeout(300)
    wait_for_app(page)


def choose(page: Any, label: str, option: str) -> None:
    """Pick ``option`` (its visible text, exactly) in the ``st.selectbox`` labelled ``label``.

    Streamlit 1.67 draws a select box as a react-aria combo box: an ``input[role=combobox]`` named by the label and
    a list box of ``[role=option]`` items.

    Args:
        page: the Playwright page.
        label: the select box's label (exact).
        option: the visible option text (exact).
    """
    box = page.get_by_role("combobox", name=label, exact=True).first
    wanted = page.get_by_role("option", name=option, exact=True).first
    for _attempt in range(3):
        box.click()
        box.fill(option)  # filters the (virtualised) list down to the option
        try:
            wanted.wait_for(state="visible", timeout=10_000)
        except Exception:  # the list did not open (a rerun redrew the widget): try again
            page.keyboard.press("Escape")
            wait_for_app(page)
            continue
        wanted.click()
        break
    else:
        raise AssertionError(f"the select box {label!r} never offered {option!r}")
    page.wait_for_timeout(300)
    wait_for_app(page)


def click_button(page: Any, text: str, *, exact: bool = True) -> None:
    """Click the ``st.button`` with this text and wait for the rerun.

    Args:
        page: the Playwright page.
        text: the button's label.
        exact: the label is exactly ``text`` (else: contains it).
    """
    page.get_by_role("button", name=text, exact=exact).first.click()
    page.wait_for_timeout(300)
    wait_for_app(page)


def set_number(page: Any, label: str, value: float | int) -> None:
    """Type a value into the ``st.number_input`` whose label contains ``label`` (Enter commits it)."""
    box = page.locator("[data-testid=stNumberInput]", has_text=label).first.locator("input")
    box.fill(str(value))
    box.press("Enter")
    page.wait_for_timeout(300)
    wait_for_app(page)


def set_text(page: Any, label: str, value: str) -> None:
    """Type a value into the ``st.text_input`` whose label contains ``label`` (Enter commits it)."""
    box = page.locator("[data-testid=stTextInput]", has_text=label).first.locator("input")
    box.fill(value)
    box.press("Enter")
    page.wait_for_timeout(300)
    wait_for_app(page)


def screenshot(page: Any, name: str) -> Path:
    """Save a full-page screenshot as ``test-artifacts/e2e/<name>.png``.

    Returns:
        The file written.
    """
    path = e2e_artifacts() / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def alerts(page: Any, kind: str = "Error") -> list[str]:
    """Texts of the visible alerts of one kind ("Error", "Success", "Warning", "Info")."""
    return page.locator(f"[data-testid=stAlertContent{kind}]").all_inner_texts()


#: JavaScript run in the viewer's iframe: the number of drawn shapes of the largest SVG in the scene, and the
#: distinct fill colours among them (the toolbar's icon SVGs have a handful of paths each).
SCENE_SHAPES_JS = """() => {
    const root = document.querySelector('#scene-root[data-rendered="1"] #cosnet-structure-scene');
    if (!root) { return {shapes: 0, fills: []}; }
    let best = null;
    root.querySelectorAll('svg').forEach((svg) => {
        const n = svg.querySelectorAll('path, polygon, circle, line').length;
        if (best === null || n > best.n) { best = {svg: svg, n: n}; }
    });
    if (best === null) { return {shapes: 0, fills: []}; }
    const fills = new Set();
    best.svg.querySelectorAll('path, polygon, circle').forEach((el) => {
        const fill = el.getAttribute('fill') || el.style.fill;
        if (fill && fill !== 'none') { fills.add(fill); }
    });
    return {shapes: best.n, fills: Array.from(fills)};
}"""


def viewer_drawing(page: Any, min_shapes: int = 50, timeout_ms: int = E2E_TIMEOUT_MS) -> dict[str, Any]:
    """Wait until the 3D structure view (SVG renderer) has drawn a scene of at least ``min_shapes`` shapes.

    Args:
        page: the Playwright page with one structure viewer on it.
        min_shapes: the fewest paths/polygons/circles/lines the scene's SVG must hold.
        timeout_ms: how long to wait.

    Returns:
        ``{"shapes": n, "fills": [colours]}`` of the drawn scene, and ``"error"``: the viewer's error text.
    """
    iframe = page.locator(VIEWER_IFRAME).first
    iframe.wait_for(state="attached", timeout=timeout_ms)
    frame = iframe.element_handle().content_frame()
    frame.wait_for_function(f"() => ({SCENE_SHAPES_JS})().shapes >= {min_shapes}", timeout=timeout_ms)
    drawn = frame.evaluate(f"({SCENE_SHAPES_JS})()")
    error = frame.locator("#viewer-error")
    drawn["error"] = error.inner_text() if error.count() else ""
    return drawn


def remove_choice(page: Any, option: str, attempts: int = 4) -> None:
    """Remove ``option`` from an ``st.multiselect`` (its tag's "Remove <option>" button), checking that it is gone.

    Args:
        page: the Playwright page.
        option: the option's visible text.
        attempts: clicks tried before giving up (a rerun may redraw the tags under the pointer).
    """
    remove = page.get_by_role("button", name=f"Remove {option}", exact=True)
    for _attempt in range(attempts):
        if remove.count() == 0:
            return
        remove.first.click()
        page.keyboard.press("Escape")  # close the list the click may have opened; the choice is committed
        page.wait_for_timeout(300)
        wait_for_app(page)
    if remove.count():
        raise AssertionError(f"could not remove {option!r} from the multiselect")
