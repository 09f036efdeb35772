"""One upload limit for every file uploader of the app (issue 16, item 8).

The limit is ``COSNET_MAX_UPLOAD_MB`` (default 50, :class:`cosnet_core.ingest.IngestLimits`), capped by Streamlit's
``server.maxUploadSize`` (200 in ``.streamlit/config.toml``), which no widget can exceed. Every
``st.file_uploader`` passes :func:`upload_limit_mb` as ``max_upload_size``, so the widget shows the same number the
app enforces, and :func:`too_large` refuses a bigger file with its name where an upload is read.
"""

from __future__ import annotations

import streamlit as st

from cosnet_core.ingest import MB, IngestLimits


def upload_limit_mb() -> int:
    """The largest upload in whole MB: ``COSNET_MAX_UPLOAD_MB``, at most Streamlit's ``server.maxUploadSize``."""
    configured = IngestLimits.from_env().max_upload_bytes // MB
    return max(1, min(int(configured), int(st.get_option("server.maxUploadSize"))))


def too_large(files: list[tuple[str, bytes]]) -> str | None:
    """Why an upload is refused for its size (naming the first file over the limit), or None when all fit."""
    limit = upload_limit_mb()
    for name, data in files:
        if len(data) > limit * MB:
            return (f"{name} is {len(data) / MB:.1f} MB, above the upload limit of {limit} MB "
                    "(an administrator can raise it with COSNET_MAX_UPLOAD_MB)")
    return None
