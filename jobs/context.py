"""What a running job sees: :class:`JobContext` (progress, cancellation, log) and :class:`JobCancelled`.

A job function has the signature ``run_job(job_id: int, payload: dict, ctx: JobContext) -> None``. Returning marks
the job succeeded, raising :class:`JobCancelled` marks it cancelled, any other exception marks it failed with the
exception's text as the reason (see :func:`jobs.executor.execute_job`).

A job whose heavy part must be able to run on any node of a Ray cluster (a training run) splits it off as a
*compute* function: a generator that receives everything it needs as one argument and yields events (metrics,
log lines, checkpoints, outputs) that the job function stores (:meth:`JobContext.compute_stream`). The compute
function never touches the database or the data directory; it runs in the job's own process when the job runs
inline, in a Ray worker chosen by its resources when the executor runs the job.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from jobs import store


class JobCancelled(Exception):
    """Raised inside a job when the user asked to cancel it; the job ends with status "cancelled"."""


def ray_node_id() -> str | None:
    """The id of the Ray node this process belongs to (a Ray worker or a connected driver), else None.

    Returns:
        Ray's hexadecimal node id, or None outside Ray.
    """
    import sys

    ray = sys.modules.get("ray")  # never imports Ray: a process outside Ray has no node
    if ray is None or not ray.is_initialized():
        return None
    return ray.get_runtime_context().get_node_id()


def thread_events(work: Callable[[Callable[[Any], None], threading.Event], Any], name: str) -> Generator[Any, None, Any]:
    """Run ``work(emit, stop)`` in a thread and yield each event it emits as it comes; return what it returns.

    A compute function uses it to stream the events of a long call that reports through a callback (a fit's
    epochs). Closing the generator (a cancel) sets ``stop`` and waits for the thread, which should check ``stop``
    between units of work (e.g. return True from a fit's epoch callback).

    Args:
        work: the call; ``emit(event)`` hands an event over, ``stop`` is set when the consumer goes away.
        name: the thread's name.

    Yields:
        The emitted events, in order.

    Returns:
        What ``work`` returned (``result = yield from thread_events(...)``).

    Raises:
        BaseException: what ``work`` raised.
    """
    import queue

    events: queue.Queue = queue.Queue()
    stop = threading.Event()

    def target() -> None:
        try:
            events.put(("done", work(lambda event: events.put(("event", event)), stop)))
        except BaseException as error:  # handed to the generator, which raises it
            events.put(("error", error))

    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    try:
        while True:
            tag, value = events.get()
            if tag == "error":
                raise value
            if tag == "done":
                return value
            yield value
    finally:
        stop.set()
        thread.join()


class WorkerLost(Exception):
    """The Ray worker (or node) running a job's compute task died; the job is resumed or failed like a job whose
    own worker died (:func:`jobs.recovery.recover_dead_job`)."""


class ComputeStream:
    """The events of one compute function (see the module docstring), in this process or from a Ray worker.

    Args:
        reference: ``"module:function"`` of a generator function taking one argument.
        inputs: its argument.
        options: Ray options of the compute task (:func:`jobs.ray_backend.compute_options`), or None to run the
            generator in this process.
        name: the Ray task's name.
    """

    def __init__(self, reference: str, inputs: Any, options: dict[str, Any] | None, name: str = "cosnet-compute"):
        self.remote = options is not None
        if self.remote:
            from jobs.ray_backend import stream_compute

            self._stream = stream_compute(reference, inputs, options, name)
        else:
            from jobs.registry import resolve

            self._stream = resolve(reference)(inputs)

    def events(self, wait_s: float = 1.0) -> Iterator[Any]:
        """The events in the order they were yielded; from a Ray worker also ``None`` after every ``wait_s``
        seconds without an event (so the caller can check for a cancel while a long epoch runs).

        Args:
            wait_s: seconds to wait for the next remote event.

        Yields:
            Events, or None.

        Raises:
            WorkerLost: the remote worker or its node died.
            Exception: what the compute function raised (its own exception, not Ray's wrapper).
        """
        if not self.remote:
            yield from self._stream
            return
        import ray
        from ray.exceptions import RayError, RayTaskError

        while True:
            ready, _ = ray.wait([self._stream], timeout=wait_s)
            if not ready:
                yield None
                continue
            try:
                event = ray.get(next(self._stream))
            except StopIteration:
                return
            except RayTaskError as error:  # raised by the compute function: re-raise the original exception
                cause = getattr(error, "cause", None)
                raise (cause if isinstance(cause, Exception) else error) from None
            except RayError as error:  # the worker process or its node died, or the object was lost with it
                first = str(error).strip().splitlines()[0] if str(error).strip() else ""
                raise WorkerLost(f"{type(error).__name__}: {first}") from error
            yield event

    def close(self) -> None:
        """Stop the computation if it still runs (a remote task is cancelled; a local generator closed)."""
        if not self.remote:
            self._stream.close()
            return
        import contextlib

        import ray

        with contextlib.suppress(Exception):
            ray.cancel(self._stream)  # a KeyboardInterrupt in the worker; nothing when the task has ended


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
        compute: the Ray options of the job's compute task (:func:`jobs.ray_backend.compute_options`), or None:
            the compute function runs in this process.
    """

    job_id: int
    db_url: str
    data_dir: Path
    log_path: Path
    inline: bool = False
    device: str | None = None
    compute: dict[str, Any] | None = None
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

    def compute_stream(self, reference: str, inputs: Any) -> ComputeStream:
        """Start the job's compute function: in a Ray worker chosen by :attr:`compute`, else in this process.

        Args:
            reference: ``"module:function"`` of the generator function.
            inputs: its argument (everything it needs; it never reads the database or the data directory).

        Returns:
            The :class:`ComputeStream` (close it when done).
        """
        return ComputeStream(reference, inputs, self.compute, name=f"cosnet-compute-job-{self.job_id}")
