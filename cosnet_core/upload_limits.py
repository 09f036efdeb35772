"""Bounds on what an upload may contain, and the error every upload reader raises.

:class:`IngestLimits` reads ``COSNET_MAX_UPLOAD_MB``, ``COSNET_MAX_ROWS``, ``COSNET_MAX_COLUMNS`` and, for zips of
CIFs, ``COSNET_MAX_ZIP_MEMBERS``, ``COSNET_MAX_ZIP_UNPACKED_MB`` and ``COSNET_MAX_ZIP_MEMBER_MB`` from the
environment. The table reader (:mod:`cosnet_core.table_reading`), the zip reader (:mod:`cosnet_core.cif_zip`) and
the pages' upload widgets share these limits. Pure: no torch, no streamlit, no database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cosnet_core.errors import InputError

MB = 1024 * 1024


class IngestError(InputError):
    """A file or a mapping that cannot be imported; the message is written for the person who uploaded it."""


@dataclass(frozen=True)
class IngestLimits:
    """Bounds on what an upload may contain.

    Attributes:
        max_upload_bytes: largest table or zip file accepted (env ``COSNET_MAX_UPLOAD_MB``, default 50 MB).
        max_rows: most data rows in a table (env ``COSNET_MAX_ROWS``, default 200,000).
        zip_max_members: most entries in a zip of CIFs (env ``COSNET_MAX_ZIP_MEMBERS``, default 5,000).
        zip_max_unpacked_bytes: most bytes a zip may unpack to, counted while reading
            (env ``COSNET_MAX_ZIP_UNPACKED_MB``, default 500 MB).
        zip_max_member_bytes: most bytes one zip member may unpack to (env ``COSNET_MAX_ZIP_MEMBER_MB``,
            default 20 MB).
        max_columns: most columns in a table (env ``COSNET_MAX_COLUMNS``, default 1,000), checked before the
            table is parsed.
    """

    max_upload_bytes: int = 50 * MB
    max_rows: int = 200_000
    zip_max_members: int = 5_000
    zip_max_unpacked_bytes: int = 500 * MB
    zip_max_member_bytes: int = 20 * MB
    max_columns: int = 1_000

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> IngestLimits:
        """Limits with defaults overridden by environment variables.

        Args:
            environ: the variables to read (``os.environ`` when omitted); see :data:`cosnet_core.settings.SETTINGS`.

        Returns:
            The limits.

        Raises:
            ValueError: a variable is set but is not a positive number (a ``SettingError`` naming it).
        """
        from cosnet_core.settings import SETTINGS

        return cls(
            max_upload_bytes=int(SETTINGS.max_upload_mb.get(environ) * MB),
            max_rows=int(SETTINGS.max_rows.get(environ)),
            zip_max_members=int(SETTINGS.max_zip_members.get(environ)),
            zip_max_unpacked_bytes=int(SETTINGS.max_zip_unpacked_mb.get(environ) * MB),
            zip_max_member_bytes=int(SETTINGS.max_zip_member_mb.get(environ) * MB),
            max_columns=int(SETTINGS.max_columns.get(environ)),
        )


def megabytes(n_bytes: int) -> str:
    """A byte count in words: ``"1.5 MB"``, ``"4.9 kB"`` or ``"12 bytes"``."""
    if n_bytes >= MB:
        return f"{n_bytes / MB:.1f} MB"
    return f"{n_bytes / 1024:.1f} kB" if n_bytes >= 1024 else f"{n_bytes} bytes"


def check_upload_size(data: bytes, what: str, limits: IngestLimits) -> None:
    """Refuse ``data`` larger than ``limits.max_upload_bytes``, naming ``what`` (e.g. ``"the zip file"``).

    Raises:
        IngestError: the upload is too large.
    """
    if len(data) > limits.max_upload_bytes:
        raise IngestError(
            f"{what} is {megabytes(len(data))}, larger than the upload limit of "
            f"{megabytes(limits.max_upload_bytes)} (an administrator can raise it with COSNET_MAX_UPLOAD_MB)"
        )

