"""The design's layers, enforced (issue 17, items 1 and 6).

- Importing the database layer (``db``), the UI helpers (``ui``), the torch-free parsing modules of ``cosnet_core``,
  the pages' imports or ``app.py``'s imports loads no torch (the first page must appear without it, issue 16 item 9).
- ``lint-imports`` keeps the contracts of ``.importlinter`` (the table of ``DESIGN.md``): science imports no UI,
  database or jobs layer, Streamlit or SQLAlchemy; ``db`` imports no torch (not even through ``cosnet_core`` or
  inside a function), Streamlit, ``ui`` or ``jobs``; ``jobs`` imports no Streamlit or ``ui``; ``ui`` imports no SQL
  library. ``pages/`` is not a package, so its rules are checked here by import walks and AST scans.
- ``ui/``, ``pages/`` and ``app.py`` hold no SQL: no SQL library imported anywhere in them, no SQL statement text.
"""

from __future__ import annotations

import ast
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# The torch-free halves of the science package: parsing and reading, the rows, the metadata of a model file.
PARSING_MODULES = (
    "cosnet_core.formula",
    "cosnet_core.structure_io",
    "cosnet_core.sample",
    "cosnet_core.ingest",
    "cosnet_core.upload_limits",
    "cosnet_core.table_reading",
    "cosnet_core.column_mapping",
    "cosnet_core.cleaning",
    "cosnet_core.cif_zip",
    "cosnet_core.structure_table",
    "cosnet_core.tabular",
    "cosnet_core.matching",
    "cosnet_core.applicability",
    "cosnet_core.splits",
    "cosnet_core.units",
    "cosnet_core.uploaded_cif",
    "cosnet_core.artifact",
    "cosnet_core.sources",
)
UI_FILES = sorted([*(ROOT / "ui").rglob("*.py"), *(ROOT / "pages").glob("*.py"), ROOT / "app.py"])


def _package_modules(package: str) -> list[str]:
    """Every module of a top-level package, migrations' revision scripts excepted (alembic runs those)."""
    names = [package]
    for info in pkgutil.walk_packages([str(ROOT / package)], prefix=f"{package}."):
        if ".migrations" not in info.name:
            names.append(info.name)
    return names


def _script_imports(path: Path) -> list[str]:
    """The module-level import statements of a Streamlit script, as source lines (the script itself is not run)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [ast.unparse(node) for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)]


def _torch_after_each(statements: list[str]) -> list[str]:
    """Run the import statements one after another in a fresh interpreter; return those after which torch is loaded.

    One fresh interpreter per group is as strict as one per statement: torch is absent before the first statement,
    so the first statement after which it appears is the one that loaded it (and it is named).
    """
    program = (
        "import sys\n"
        f"for statement in {statements!r}:\n"
        "    exec(statement, {})\n"
        "    if 'torch' in sys.modules or 'torch_geometric' in sys.modules:\n"
        "        print('TORCH', statement)\n"
    )
    done = subprocess.run([sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return [line[len("TORCH "):] for line in done.stdout.splitlines() if line.startswith("TORCH ")]


GROUPS = {
    "db": [f"import {name}" for name in _package_modules("db")],
    "ui": [f"import {name}" for name in _package_modules("ui")],
    "parsing": [f"import {name}" for name in PARSING_MODULES],
    "pages": [s for page in sorted((ROOT / "pages").glob("*.py")) for s in _script_imports(page)],
    "app": _script_imports(ROOT / "app.py"),
}


def test_groups_are_not_empty() -> None:
    """The walk finds the modules it claims to check (a broken walk would make the torch test pass vacuously)."""
    assert {"import db.datasets", "import db.structures", "import db.results"} <= set(GROUPS["db"])
    assert {"import ui.datasets_view", "import ui.predict_view", "import ui.uploads"} <= set(GROUPS["ui"])
    assert "from cosnet_core.ingest import IngestLimits" in GROUPS["pages"]
    assert "from ui.state import database, dataset_sidebar" in GROUPS["app"]


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_imports_load_no_torch(group: str) -> None:
    """Importing every module of the group (or every import of the pages / app.py) leaves torch unloaded."""
    assert _torch_after_each(GROUPS[group]) == []


def test_graph_modules_still_load_torch() -> None:
    """The check can fail: the graph builders do import torch, and re-export the torch-free names unchanged."""
    assert _torch_after_each(["from cosnet_core.composition import parse_formula"]) == [
        "from cosnet_core.composition import parse_formula"
    ]
    from cosnet_core import composition, data, formula, sample, structure, structure_io

    assert composition.parse_formula is formula.parse_formula
    assert composition.FormulaError is formula.FormulaError
    assert data.composition_key is formula.composition_key
    assert data.Sample is sample.Sample
    assert structure.load_structure is structure_io.load_structure
    assert structure.StructureError is structure_io.StructureError
    assert structure.structure_hash is structure_io.structure_hash
    assert structure.DEFAULT_MAX_SITES == structure_io.DEFAULT_MAX_SITES == 2000


def test_import_contracts_are_kept() -> None:
    """``lint-imports`` (import-linter, pinned in requirements-dev.txt) keeps every contract of ``.importlinter``."""
    lint = Path(sys.executable).with_name("lint-imports")
    assert lint.is_file(), "import-linter is missing: pip install -r requirements-dev.txt"
    done = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "4 kept, 0 broken" in done.stdout


SQL_MODULES = ("sqlalchemy", "sqlite3", "psycopg", "psycopg2", "alembic")
SQL_TEXT = re.compile(r"\b(SELECT\s.+\sFROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|CREATE\s+TABLE)\b", re.S)


def _sql_in(path: Path) -> list[str]:
    """SQL library imports (at any depth, functions included) and SQL statement strings of one file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        found += [f"line {node.lineno}: imports {n}" for n in names if n.split(".")[0] in SQL_MODULES]
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL_TEXT.search(node.value):
            found.append(f"line {node.lineno}: SQL text {node.value[:60]!r}")
    return found


def test_ui_and_pages_hold_no_sql() -> None:
    """No file of ``ui/``, ``pages/`` or ``app.py`` imports an SQL library or writes an SQL statement."""
    assert len(UI_FILES) > 10
    offences = {str(path.relative_to(ROOT)): _sql_in(path) for path in UI_FILES}
    assert {path: found for path, found in offences.items() if found} == {}


def test_sql_detector_finds_sql(tmp_path: Path) -> None:
    """The SQL check can fail: a function-level SQLAlchemy import and a raw statement are both reported."""
    page = tmp_path / "page.py"
    page.write_text(
        "def rows(engine):\n"
        "    from sqlalchemy import text\n"
        "    return engine.execute(text('SELECT id FROM datasets'))\n"
    )
    assert _sql_in(page) == ["line 2: imports sqlalchemy", "line 3: SQL text 'SELECT id FROM datasets'"]
