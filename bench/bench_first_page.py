"""How long the first page takes cold, and whether it loads torch (issue 16 item 9, issue 17 item 1).

For each checkout given (default: this one), in fresh interpreters, ``--repeat`` times each:

- ``imports``: the module-level imports of ``app.py`` and of the first page (``pages/datasets.py``), executed in
  order (the scripts themselves are not run), and whether torch is in ``sys.modules`` afterwards;
- ``apptest``: Streamlit's ``AppTest`` running ``app.py`` (which renders the first page, Datasets) over a fresh
  SQLite database, interpreter start included; ``torch`` says whether it was loaded by the end.

Run from the repository root: ``.venv/bin/python bench/bench_first_page.py [--root OTHER_CHECKOUT ...]``; to
compare with an older commit, ``git worktree add /tmp/before <commit>`` and pass ``--root /tmp/before --root .``.
Prints one ``FIRST_PAGE`` line per checkout and measure (the median of the repeats, and all of them).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

IMPORTS = """
import json, sys, time
start = time.perf_counter()
for statement in json.loads(sys.argv[1]):
    exec(statement, {})
print(json.dumps({"seconds": time.perf_counter() - start, "torch": "torch" in sys.modules}))
"""

APPTEST = """
import json, sys
from streamlit.testing.v1 import AppTest
from db.engine import upgrade_database
upgrade_database(sys.argv[1])
at = AppTest.from_file("app.py", default_timeout=300)
at.run()
assert not at.exception, at.exception
assert at.title and at.title[0].value == "Datasets", [t.value for t in at.title]
print(json.dumps({"torch": "torch" in sys.modules}))
"""


def script_imports(path: Path) -> list[str]:
    """The module-level import statements of a script, as source text."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [ast.unparse(node) for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)]


def run(root: Path, program: str, argument: str, env: dict[str, str]) -> tuple[float, bool]:
    """Seconds of wall clock for a fresh interpreter running ``program`` in ``root``, and whether torch loaded."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", program, argument], cwd=root, env=env, capture_output=True,
                          text=True, timeout=900)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{root}: failed\n{done.stderr[-3000:]}")
    return seconds, json.loads(done.stdout.strip().splitlines()[-1])["torch"]


def main() -> None:
    """Time the first page of each checkout and print one line per checkout and measure."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", action="append", type=Path, help="a checkout (default: this one); repeatable")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    roots = args.root or [Path(__file__).resolve().parents[1]]
    for root in roots:
        root = root.resolve()
        statements = script_imports(root / "app.py") + script_imports(root / "pages" / "datasets.py")
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                                text=True).stdout.strip()
        for measure in ("imports", "apptest"):
            times, torch_loaded = [], set()
            for _ in range(args.repeat):
                with tempfile.TemporaryDirectory() as data:
                    url = f"sqlite:///{data}/cosnet.db"
                    env = {**os.environ, "COSNET_DATA_DIR": data, "COSNET_DATABASE_URL": url, "OMP_NUM_THREADS": "1"}
                    program, argument = (IMPORTS, json.dumps(statements)) if measure == "imports" else (APPTEST, url)
                    seconds, torch = run(root, program, argument, env)
                times.append(seconds)
                torch_loaded.add(torch)
            print(f"FIRST_PAGE root={root} commit={commit} measure={measure} median={statistics.median(times):.2f}s "
                  f"runs={','.join(f'{t:.2f}' for t in times)} torch={'yes' if True in torch_loaded else 'no'}",
                  flush=True)


if __name__ == "__main__":
    main()
