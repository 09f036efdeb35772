"""A throwaway PostgreSQL server for the test session (the ``postgres_server`` fixture of ``tests/conftest.py``).

The server is a fresh cluster in a temporary folder (``initdb`` then ``pg_ctl start``), listening only on a unix
socket in that folder, with durability switched off (``fsync``, ``synchronous_commit``, ``full_page_writes``):
nothing it holds outlives the session. PostgreSQL refuses to run as root, so when the tests run as root (CI does)
the cluster belongs to the ``postgres`` user (Debian's package creates it) or else to ``nobody``, and every server
command runs as that user. The binaries are found on ``PATH`` or under ``/usr/lib/postgresql/<version>/bin``
(Debian installs them there, off ``PATH``).

Each test gets its own database: :meth:`PostgresServer.create_database` copies a template that was migrated once
(``CREATE DATABASE ... TEMPLATE``, a file copy of a few tens of milliseconds) or makes an empty one;
:meth:`PostgresServer.drop_database` removes it, ending any connection a worker still holds.
"""

from __future__ import annotations

import itertools
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

SUPERUSER = "cosnet"
MIGRATED_TEMPLATE = "cosnet_migrated"


def find_postgres_bin() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``: from ``PATH``, else the newest ``/usr/lib/postgresql/*/bin``.

    Returns:
        The folder, or None when no PostgreSQL server binaries are installed.
    """
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(on_path).resolve().parent
    found = [
        folder for folder in Path("/usr/lib/postgresql").glob("*/bin")
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file()
    ]

    def version(folder: Path) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", folder.parent.name))

    return max(found, key=version) if found else None


def _server_user() -> pwd.struct_passwd | None:
    """The unprivileged account the server runs as when the tests run as root (None: run as ourselves)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root and neither a 'postgres' nor a 'nobody' account exists to run PostgreSQL")


class PostgresServer:
    """A running throwaway cluster; :meth:`stop` ends it and deletes its folder."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.user = _server_user()
        self.root = Path(tempfile.mkdtemp(prefix="cosnet-pg-"))  # short: a unix socket path must fit 107 bytes
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self._names = itertools.count(1)
        self._template_ready = False
        if self.user is not None:
            os.chown(self.root, self.user.pw_uid, self.user.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "-A", "trust", "-E", "UTF8", "--locale=C",
                  "--no-sync")
        options = (
            f"-c listen_addresses='' -k {self.root} -p 5432 -c fsync=off -c synchronous_commit=off "
            "-c full_page_writes=off -c max_connections=300"
        )
        try:
            self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "-o", options, "start")
        except RuntimeError as error:
            log = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
            shutil.rmtree(self.root, ignore_errors=True)
            raise RuntimeError(f"{error}\nserver log:\n{log}") from None

    def _run(self, program: str, *args: str) -> None:
        """Run a server binary (as the unprivileged user when we are root); raise with its output on failure."""
        kwargs = {}
        if self.user is not None:
            kwargs = {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}
        done = subprocess.run(
            [str(self.bin_dir / program), *args], stdin=subprocess.DEVNULL, capture_output=True, text=True,
            cwd=self.root, timeout=120, **kwargs,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{program} failed ({done.returncode}): {done.stdout}\n{done.stderr}")

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of a database of this server (psycopg 3 over the unix socket)."""
        return f"postgresql+psycopg://{SUPERUSER}@/{database}?host={self.root}&port=5432"

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(host=str(self.root), port=5432, user=SUPERUSER, dbname="postgres",
                             autocommit=True) as connection:
            connection.execute(sql)

    def create_database(self, *, migrated: bool) -> str:
        """A new database: a copy of the migrated template (``migrated=True``) or empty.

        Returns:
            Its SQLAlchemy URL.
        """
        if migrated and not self._template_ready:
            from db.engine import dispose_engines, upgrade_database

            self._admin(f"CREATE DATABASE {MIGRATED_TEMPLATE}")
            upgrade_database(self.url(MIGRATED_TEMPLATE))
            dispose_engines()  # a template with open connections cannot be copied
            self._template_ready = True
        name = f"test_{next(self._names)}"
        self._admin(f"CREATE DATABASE {name} TEMPLATE {MIGRATED_TEMPLATE if migrated else 'template0'}")
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Drop a database made by :meth:`create_database`, ending the connections still open on it."""
        name = url.split("@/", 1)[1].split("?", 1)[0]
        self._admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def stop(self) -> None:
        """Stop the server and delete its folder."""
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
