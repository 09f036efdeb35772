"""Every environment variable COSNet Studio reads, defined once: name, type, default and meaning (issue 17, item 4).

Each variable is a :class:`Setting`; :data:`SETTINGS` holds them all, in the order of the README's configuration
table, which :func:`settings_table` renders from these definitions (``python -m cosnet_core.settings`` prints it,
and a test checks that the README holds exactly this rendering). Every other module reads its variable through
``SETTINGS.<field>.get()``, never through ``os.environ``.

A setting is read from the process environment at each call (nothing is cached, so a changed environment takes
effect at once and tests can ``monkeypatch.setenv``). Each one is parsed on its own: a bad value of one variable
fails only where that variable is read, with a :class:`SettingError` that names it; an unset (or blank) variable
gives the default. The Materials Project key is resolved in one place, :func:`materials_project_key` (environment,
then ``.streamlit/secrets.toml``).

Torch-free and light: this module imports only the standard library, so every layer (science, ``db``, ``jobs``,
``ui``, pages) may import it.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Generic, TypeVar

T = TypeVar("T")

AUTH_MODES = ("none", "accounts", "oidc")
RENDERERS = ("svg", "webgl")
#: Streamlit secrets files read for the Materials Project key when the environment has none; first found wins.
SECRETS_FILES = (Path(".streamlit") / "secrets.toml", Path.home() / ".streamlit" / "secrets.toml")
#: Variables read for the Materials Project key, in order (``PMG_MAPI_KEY`` is pymatgen's name for it).
MP_KEY_VARIABLES = ("MP_API_KEY", "PMG_MAPI_KEY")


class SettingError(ValueError):
    """A variable set to a value that cannot be used; the message names the variable and the value.

    Attributes:
        variable: the environment variable, e.g. ``"COSNET_MAX_ROWS"``.
        reason: what is wrong, without the variable's name (for callers that name it themselves).
    """

    def __init__(self, variable: str, reason: str, message: str | None = None) -> None:
        super().__init__(message or f"{variable} {reason}")
        self.variable = variable
        self.reason = reason


# ----------------------------------------------------------------------------------------------------------------
# Parsers: (variable name, raw text) -> value; each raises SettingError with the message the app has always shown
# ----------------------------------------------------------------------------------------------------------------


def _text(_name: str, text: str) -> str:
    return text.strip()


def _raw(_name: str, text: str) -> str:
    return text


def _path(_name: str, text: str) -> Path:
    return Path(text).expanduser()


def _positive_number(name: str, text: str) -> float:
    """An upload limit: a positive number (``IngestLimits``' historical messages)."""
    try:
        value = float(text)
    except ValueError:
        raise SettingError(name, "is not a number", f"environment variable {name}={text!r} is not a number") from None
    if not value > 0:
        raise SettingError(name, "must be positive", f"environment variable {name}={text!r} must be positive")
    return value


def _whole_number_at_least_1(name: str, text: str) -> int:
    text = text.strip()
    try:
        value = int(text)
    except ValueError:
        reason = f"must be a whole number, got {text!r}"
        raise SettingError(name, reason, f"{name}: {reason}") from None
    if value < 1:
        reason = f"must be at least 1, got {value}"
        raise SettingError(name, reason, f"{name}: {reason}")
    return value


def _lenient_int(default: int) -> Callable[[str, str], int]:
    """A whole number, or ``default`` when the text is not one (the inline limits never stop a page)."""

    def parse(_name: str, text: str) -> int:
        try:
            return int(text)
        except ValueError:
            return default

    return parse


def _cpus_per_run(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise SettingError(name, f"must be a number > 0, got {text.strip()!r}") from None
    if value <= 0:
        raise SettingError(name, f"must be > 0, got {value}")
    return value


def _ray_num_cpus(name: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise SettingError(name, f"must be a whole number of CPUs, got {text.strip()!r}") from None


def _seconds(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise SettingError(name, f"must be a number of seconds, got {text.strip()!r}") from None
    if not value > 0:
        raise SettingError(name, f"must be a positive number of seconds, got {text.strip()!r}")
    return value


def _ray_resources(name: str, text: str) -> dict[str, float]:
    text = text.strip()
    try:
        value = json.loads(text)
    except ValueError as error:
        raise SettingError(name, f"must be a JSON object such as {{\"gpu_node\": 1}}: {error}") from None
    if not isinstance(value, dict) or any(
        isinstance(amount, bool) or not isinstance(amount, int | float) or amount <= 0 for amount in value.values()
    ):
        raise SettingError(name, f"must map resource names to positive numbers, got {text!r}")
    if {"CPU", "GPU"} & set(value):
        raise SettingError(name, f"names custom resources only (CPU and GPU are set per run), got {text!r}")
    return {str(key): float(amount) for key, amount in value.items()}


def _auth_mode(name: str, text: str) -> str:
    mode = text.strip().lower() or "none"
    if mode not in AUTH_MODES:
        raise SettingError(name, f"is not one of {', '.join(AUTH_MODES)}.",
                           f"{name}={mode!r} is not one of {', '.join(AUTH_MODES)}.")
    return mode


def _renderer(name: str, text: str) -> str:
    value = text.strip().lower()
    if value not in RENDERERS:
        raise SettingError(name, f"must be 'svg' or 'webgl', got {value!r}")
    return value


def _emails(_name: str, text: str) -> frozenset[str]:
    return frozenset(part.strip().lower() for part in text.split(",") if part.strip())


def _endpoint(_name: str, text: str) -> str:
    text = text.strip()
    return text if text.endswith("/") else text + "/"


# ----------------------------------------------------------------------------------------------------------------
# Definitions
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Setting(Generic[T]):
    """One environment variable: its name, how it is parsed, its default and its meaning.

    Attributes:
        variable: the environment variable.
        default: the value when the variable is unset or blank (a ``Callable`` default is called at each read).
        shown_default: the default as the README shows it.
        meaning: one line for the README.
        parse: ``(variable, text) -> value``; raises :class:`SettingError` naming the variable.
        fallbacks: further variables read, in order, when ``variable`` is unset (``PMG_MAPI_KEY``).
        strip: whether surrounding blanks are ignored (not for passwords, where every character counts).
    """

    variable: str
    default: Any
    shown_default: str
    meaning: str
    parse: Callable[[str, str], T] = _text
    fallbacks: tuple[str, ...] = ()
    strip: bool = True

    def get(self, environ: Mapping[str, str] | None = None) -> T:
        """The value now: the first of ``variable`` and its fallbacks that is set, parsed; else the default.

        Args:
            environ: the variables to read (``os.environ`` when omitted).

        Returns:
            The parsed value or the default.

        Raises:
            SettingError: the variable is set to a value that cannot be used (the message names it).
        """
        env = os.environ if environ is None else environ
        for name in (self.variable, *self.fallbacks):
            text = env.get(name)
            if text is not None and (text.strip() if self.strip else text):
                return self.parse(name, text)
        return self.default() if callable(self.default) else self.default

    def is_set(self, environ: Mapping[str, str] | None = None) -> bool:
        """Whether the variable (or a fallback) is set to something other than blanks."""
        env = os.environ if environ is None else environ
        return any((env.get(name) or "").strip() for name in (self.variable, *self.fallbacks))

    def put(self, value: object, environ: MutableMapping[str, str] | None = None) -> None:
        """Set the variable to ``str(value)``: in this process (and the processes it starts), or in ``environ``
        (e.g. a child's environment from :func:`child_environment`)."""
        (os.environ if environ is None else environ)[self.variable] = str(value)


def _setting(variable: str, default: Any, shown_default: str, meaning: str, **options: Any) -> Any:
    return field(default=Setting(variable, default, shown_default, meaning, **options))


@dataclass(frozen=True)
class Settings:
    """All of COSNet Studio's environment variables (one :class:`Setting` each), in the README's order."""

    data_dir: Setting[Path] = _setting(
        "COSNET_DATA_DIR", lambda: Path.home() / ".cosnet-studio", "`~/.cosnet-studio`",
        "database (SQLite), model artifacts, caches, logs", parse=_path)
    database_url: Setting[str | None] = _setting(
        "COSNET_DATABASE_URL", None, "`sqlite:///$COSNET_DATA_DIR/cosnet.db`",
        'any SQLAlchemy URL, e.g. PostgreSQL for a lab server ("PostgreSQL instead of SQLite" below)')
    ray_address: Setting[str | None] = _setting(
        "RAY_ADDRESS", None, "unset (a local Ray is started on demand)",
        "an existing Ray cluster to run training on (the GCS address `host:6379`)")
    mp_api_key: Setting[str | None] = _setting(
        "MP_API_KEY", None, "unset",
        "Materials Project API key (else `PMG_MAPI_KEY`, else `MP_API_KEY` in `.streamlit/secrets.toml`, or typed "
        "in the Structures page; never stored or logged)", fallbacks=("PMG_MAPI_KEY",))
    mp_api_endpoint: Setting[str | None] = _setting(
        "MP_API_ENDPOINT", None, "the client's (`https://api.materialsproject.org/`)",
        "another Materials Project API server (the tests' local one)", parse=_endpoint)
    auth: Setting[str] = _setting(
        "COSNET_AUTH", "none", "`none`",
        "`none` (single user on this computer), `accounts` (built-in accounts) or `oidc` (the lab's identity "
        "provider)", parse=_auth_mode)
    admin_user: Setting[str | None] = _setting(
        "COSNET_ADMIN_USER", None, "unset", "with `accounts`: the first administrator, created at the first start",
        parse=_raw, strip=False)
    admin_password: Setting[str | None] = _setting(
        "COSNET_ADMIN_PASSWORD", None, "unset", "with `accounts`: the first administrator's password",
        parse=_raw, strip=False)
    new_password: Setting[str | None] = _setting(
        "COSNET_NEW_PASSWORD", None, "unset (asked for)",
        "the password `python -m db.users create-admin NAME` gives the new account", parse=_raw, strip=False)
    admins: Setting[frozenset[str]] = _setting(
        "COSNET_ADMINS", frozenset(), "unset", "with `oidc`: comma-separated e-mail addresses of administrators",
        parse=_emails)
    max_upload_mb: Setting[float] = _setting(
        "COSNET_MAX_UPLOAD_MB", 50.0, "50",
        "largest upload in MB, shown and enforced on every uploader of the app (at most Streamlit's "
        "`server.maxUploadSize` of 200)", parse=_positive_number)
    max_rows: Setting[float] = _setting(
        "COSNET_MAX_ROWS", 200_000.0, "200000", "most data rows in an uploaded table", parse=_positive_number)
    max_columns: Setting[float] = _setting(
        "COSNET_MAX_COLUMNS", 1_000.0, "1000", "most columns in a table, checked before it is parsed",
        parse=_positive_number)
    max_zip_members: Setting[float] = _setting(
        "COSNET_MAX_ZIP_MEMBERS", 5_000.0, "5000", "most files in a zip of CIFs", parse=_positive_number)
    max_zip_unpacked_mb: Setting[float] = _setting(
        "COSNET_MAX_ZIP_UNPACKED_MB", 500.0, "500", "most MB a zip of CIFs may unpack to, counted while reading",
        parse=_positive_number)
    max_zip_member_mb: Setting[float] = _setting(
        "COSNET_MAX_ZIP_MEMBER_MB", 20.0, "20", "most MB one file of a zip may unpack to", parse=_positive_number)
    max_structure_sites: Setting[int] = _setting(
        "COSNET_MAX_STRUCTURE_SITES", 2000, "2000",
        "largest crystal structure accepted, in sites (CIFs are also bounded in size before parsing)",
        parse=_whole_number_at_least_1)
    ray_num_cpus: Setting[int | None] = _setting(
        "COSNET_RAY_NUM_CPUS", None, "all cores", "CPUs of the local Ray", parse=_ray_num_cpus)
    jobs_cpus_per_run: Setting[float] = _setting(
        "COSNET_JOBS_CPUS_PER_RUN", 1.0, "1", "CPUs one training run asks for (fractions allowed)",
        parse=_cpus_per_run)
    ray_resources: Setting[dict[str, float]] = _setting(
        "COSNET_RAY_RESOURCES", dict, "unset",
        'custom Ray resources a training run asks for, JSON, e.g. `{"gpu_node": 1}` (see "Training on a Ray '
        'cluster")', parse=_ray_resources)
    executor_idle_exit_s: Setting[float] = _setting(
        "COSNET_EXECUTOR_IDLE_EXIT_S", 1800.0, "1800",
        "the background executor (`python -m jobs executor`) stops after this many idle seconds; the app restarts it",
        parse=_seconds)
    match_inline_limit: Setting[int] = _setting(
        "COSNET_MATCH_INLINE_LIMIT", 200, "200 rows", "above this, structure matching runs as a background job",
        parse=_lenient_int(200))
    library_inline_bytes: Setting[int] = _setting(
        "COSNET_LIBRARY_INLINE_BYTES", 300_000, "300 kB", "above this, a library import runs as a background job",
        parse=_lenient_int(300_000))
    viewer_renderer: Setting[str] = _setting(
        "COSNET_VIEWER_RENDERER", "webgl", "`webgl`", "`svg` for the 3D viewer in headless browsers",
        parse=_renderer)

    def __iter__(self) -> Iterator[Setting[Any]]:
        """The settings in the README's order."""
        return (getattr(self, f.name) for f in fields(self))

    def variables(self) -> tuple[str, ...]:
        """Every variable read, fallbacks included."""
        return tuple(name for setting in self for name in (setting.variable, *setting.fallbacks))


#: The one settings object.
SETTINGS = Settings()


def child_environment() -> dict[str, str]:
    """A copy of this process's environment for a child process; set settings in it with :meth:`Setting.put`."""
    return dict(os.environ)


def secrets_file_api_key(paths: tuple[Path, ...] | None = None) -> str | None:
    """``MP_API_KEY`` from a Streamlit secrets file (for processes outside Streamlit too; never logged).

    Args:
        paths: secrets files to look in, first found wins (default :data:`SECRETS_FILES`).

    Returns:
        The key, or None.
    """
    for path in SECRETS_FILES if paths is None else paths:
        try:
            with open(path, "rb") as handle:
                secrets = tomllib.load(handle)
        except (OSError, tomllib.TOMLDecodeError):
            continue
        value = secrets.get("MP_API_KEY")
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def materials_project_key(secrets_paths: tuple[Path, ...] | None = None) -> tuple[str | None, str]:
    """The Materials Project key and where it came from, resolved in one place for the whole app.

    Order: ``MP_API_KEY``, then ``PMG_MAPI_KEY`` (the environment), then ``MP_API_KEY`` in
    ``.streamlit/secrets.toml`` (this folder's, then the home folder's). The Structures page adds a typed key after
    these; an explicit argument to :class:`cosnet_core.sources.materials_project.MaterialsProjectSource` comes before.

    Args:
        secrets_paths: secrets files to look in (default :data:`SECRETS_FILES`).

    Returns:
        ``(key, "environment" | "secrets")``, or ``(None, "none")``.
    """
    key = SETTINGS.mp_api_key.get()
    if key:
        return key, "environment"
    key = secrets_file_api_key(secrets_paths)
    if key:
        return key, "secrets"
    return None, "none"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def settings_table(settings: Settings = SETTINGS) -> str:
    """The README's configuration table (Markdown), rendered from the definitions.

    Args:
        settings: the settings to list.

    Returns:
        The table, one row per variable, ending with a newline.
    """
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    rows += [f"| `{s.variable}` | {_cell(s.shown_default)} | {_cell(s.meaning)} |" for s in settings]
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(settings_table(), end="")
