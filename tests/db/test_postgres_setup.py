"""What a lab needs to run on PostgreSQL: the pinned driver (optional file, in the dev requirements and the image's
build argument), CI installing the server binaries, and the test server helper finding Debian's binaries."""

from __future__ import annotations

import re
from pathlib import Path

from tests.postgres_server import find_postgres_bin

ROOT = Path(__file__).resolve().parents[2]


def test_the_driver_is_pinned_in_an_optional_file_used_by_the_tests_and_the_image():
    pins = [line.split("#")[0].strip() for line in (ROOT / "requirements-postgres.txt").read_text().splitlines()]
    assert [pin for pin in pins if pin] == ["psycopg[binary]==3.3.9"]
    assert "-r requirements-postgres.txt" in (ROOT / "requirements-dev.txt").read_text().splitlines()
    assert "psycopg" not in (ROOT / "requirements.txt").read_text()  # SQLite alone needs no driver
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "ARG WITH_POSTGRES=0" in dockerfile
    assert re.search(r'if \[ "\$\{WITH_POSTGRES\}" = "1" \]; then pip install [^;]*-r requirements-postgres.txt',
                     dockerfile)


def test_ci_installs_the_server_binaries_when_they_are_missing():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "/usr/lib/postgresql/*/bin/pg_ctl" in ci and "packages+=(postgresql)" in ci
    assert 'apt-get install -y -q --no-install-recommends "${packages[@]}"' in ci


def test_the_binaries_are_found_off_path_under_usr_lib_postgresql(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # Debian's layout: initdb and pg_ctl are not on PATH
    found = find_postgres_bin()
    installed = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if not installed:
        assert found is None
    else:
        assert found is not None and (found / "pg_ctl").is_file() and (found / "initdb").is_file()
        assert found.parent.name == max((p.parent.parent.name for p in installed), key=lambda v: float(v))
