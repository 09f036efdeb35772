"""What a running job sees: :class:`JobContext` (progress, cancellation, log) and :class:`JobCancelled`.

A job function has the signature ``run_job(job_id: int, payload: dict, ctx: JobContext) -> None``. Returning marks
the job succeeded, raising :class:`JobCancelled` marks it cancelled, any other exception marks it failed with the
exception's text as the reason (see :func:`jobs.executor.execute_job`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from jobs import store


class JobCancelled(Exception):
    """Raised inside a job when the user asked to cancel it; the job ends with status "cancelled"."""


@dataclass
class JobContext:
    """The handle a job function uses to talk to the database while it runs.

    Attributes:
        job_id: the job's row id.
        db_url: the application database URL.
        data_dir: the application data directory (artifacts, caches, logs live below it).
        log_path: the job's log file.
        inline: True when the job runs synchronously in the caller's process (``jobs.run_inline``) rather than
            as a Ray task started by the executor; a study then trains its runs one after another itself.
        device: the torch device a training job must use ("cuda" when Ray reserved a GPU for it, "cpu"), or None
            when the job decides itself (inline runs).
    """

    job_id: int
    db_url: str
    data_dir: Path
    log_path: Path
    inline: bool = False
    device: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def progress(self, fraction: float, message: str = "") -> None:
        """Record progress (0..1) and a short message; also refreshes the heartbeat.

        Args:
            fraction: share of the work done, clipped to [0, 1].
            message: what is happening now (shown on the page).
        """
        store.set_job_progress(self.db_url, self.job_id, min(max(float(fraction), 0.0), 1.0), message or None)

    def should_cancel(self) -> bool:
        """Whether the user asked to cancel this job (check it between units of work).

        Returns:
            True when ``Job.cancel_requested`` is set.
        """
        return store.job_cancel_requested(self.db_url, self.job_id)

    def log(self, message: str) -> None:
        """Append a time-stamped line to the job's log file (viewable on the page).

        Args:
            message: one line of text.
        """
        stamp = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S")
        with self._lock, open(self.log_path, "a", encoding="utf-8") as handle:
            handle.write(f"{stamp}  {message}\n")
