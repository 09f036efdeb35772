"""Static guards for a lab-hosted instance: no user text as HTML, safe model loading, XSRF on, no secrets stored."""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [p for folder in ("pages", "ui", "jobs", "db", "cosnet_core") for p in (ROOT / folder).rglob("*.py")]
SOURCES.append(ROOT / "app.py")


def test_no_page_renders_html_from_text():
    offenders = [
        f"{p.relative_to(ROOT)}:{n}" for p in SOURCES for n, line in enumerate(p.read_text().splitlines(), 1)
        if re.search(r"unsafe_allow_html\s*=\s*True|\bst\.html\(|components\.v1\.html\(", line)
    ]
    assert not offenders, offenders


def test_every_torch_load_uses_weights_only():
    for path in SOURCES:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if "torch.load(" in line and not line.strip().startswith("#"):
                assert "weights_only=True" in line, f"{path.relative_to(ROOT)}:{number}"


def test_streamlit_server_has_xsrf_protection_and_hides_tracebacks():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["enableXsrfProtection"] is True
    assert config["client"]["showErrorDetails"] == "none"


def test_the_schema_has_no_column_for_api_keys():
    from db.models import Base

    names = {column.name for table in Base.metadata.tables.values() for column in table.columns}
    assert not {n for n in names if "api_key" in n or "secret" in n or n == "password"}
