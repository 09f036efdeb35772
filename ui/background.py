"""Uploaded CIFs read in the background, so the Datasets page never waits for pymatgen (issue 16, item 9).

Reading a zip of a few hundred CIFs takes from ten seconds to a minute; done in Streamlit's script thread it froze
the page when the target column was chosen. Here the zip's CIFs are read once per upload, keyed by the zip's SHA-256
(and the reading limits), as soon as it is uploaded: a daemon thread of the server runs
:mod:`cosnet_core.parse_worker` in a process of its own (which reads each CIF in a child bounded in time and memory,
:mod:`cosnet_core.bounded`) and records every outcome as its line arrives. The page shows ``n of N`` from
:attr:`CifReading.n_done` and, once :attr:`CifReading.finished`, takes the outcomes of the members its rows use.
Readings are shared by every session of the server (same bytes, same outcome); the finished ones beyond
:data:`KEEP_FINISHED` are forgotten, oldest first. Nothing here imports torch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from db.datasets import UploadedStructure, UploadedStructures

_ROOT = Path(__file__).resolve().parents[1]  # the worker is run from the repository root (python -m)
#: CIFs handed to one bounded child process at a time: the progress advances by this step.
BATCH = 4
#: Finished readings kept in memory (each holds its structures' JSON), beyond which the oldest are forgotten.
KEEP_FINISHED = 8


def read_cifs(
    cifs: Mapping[str, bytes], members: Iterable[str], *, max_sites: int, timeout_s: float, memory_mb: int
) -> UploadedStructures:
    """Read CIFs now, each in a child process bounded in time, memory and sites (:mod:`cosnet_core.bounded`).

    Args:
        cifs: ``{zip member: bytes}`` from ``read_cif_zip``.
        members: the members to read.
        max_sites: largest accepted number of sites.
        timeout_s: wall-clock limit per CIF.
        memory_mb: memory a reader may add per CIF.

    Returns:
        The structures by member and, for the others, why they could not be read (a bad CIF never raises).
    """
    from cosnet_core.bounded import map_bounded
    from cosnet_core.uploaded_cif import summarize_cif

    names = sorted(set(members))
    texts = [cifs[member].decode("utf-8-sig", errors="replace") for member in names]
    outcomes = map_bounded(summarize_cif, [(text, max_sites, 0) for text in texts], timeout_s=timeout_s,
                           memory_mb=memory_mb)
    structures: dict[str, UploadedStructure] = {}
    errors: dict[str, str] = {}
    for member, (status, value) in zip(names, outcomes, strict=True):
        if status == "ok":
            structures[member] = UploadedStructure(member=member, **value)
        else:
            errors[member] = value if status == "error" else f"reading it {value}"
    return UploadedStructures(structures=structures, errors=errors)


@dataclass
class CifReading:
    """The reading of one uploaded zip's CIFs, filled in by background threads.

    Attributes:
        key: the zip's SHA-256 and the reading limits.
        members: every CIF of the zip, in reading order.
        started: ``time.monotonic()`` at the start.
        finished_after_s: seconds the whole reading took, once finished.
    """

    key: str
    members: tuple[str, ...]
    started: float = field(default_factory=time.monotonic)
    finished_after_s: float | None = None
    _structures: dict[str, UploadedStructure] = field(default_factory=dict)
    _errors: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _done: threading.Event = field(default_factory=threading.Event)

    @property
    def total(self) -> int:
        """CIFs to read."""
        return len(self.members)

    @property
    def n_done(self) -> int:
        """CIFs read so far (structures and failures)."""
        with self._lock:
            return len(self._structures) + len(self._errors)

    @property
    def finished(self) -> bool:
        """Whether every CIF has its outcome."""
        return self._done.is_set()

    def wait(self, timeout_s: float | None) -> bool:
        """Block up to ``timeout_s`` seconds (None: until finished); whether the reading has finished."""
        return self._done.wait(timeout_s)

    def outcome(self, members: Iterable[str]) -> UploadedStructures:
        """The outcomes of the given members (those the table's rows refer to), once finished.

        Raises:
            RuntimeError: the reading has not finished.
        """
        if not self.finished:
            raise RuntimeError("the CIF files are still being read")
        wanted = set(members)
        with self._lock:
            return UploadedStructures(
                structures={m: s for m, s in self._structures.items() if m in wanted},
                errors={m: e for m, e in self._errors.items() if m in wanted},
            )

    def _record(self, part: UploadedStructures) -> None:
        with self._lock:
            self._structures.update(part.structures)
            self._errors.update(part.errors)

    def _fail(self, members: Iterable[str], reason: str) -> None:
        with self._lock:
            for member in members:
                if member not in self._structures:
                    self._errors.setdefault(member, reason)


_registry_lock = threading.Lock()
_readings: OrderedDict[str, CifReading] = OrderedDict()


def n_readers() -> int:
    """Bounded children reading at the same time for one upload: one CPU is left to the server."""
    return max(1, min(4, (os.cpu_count() or 1) - 1))


def start_reading(
    zip_sha256: str, cifs: Mapping[str, bytes], *, max_sites: int, timeout_s: float, memory_mb: int
) -> tuple[CifReading, bool]:
    """The reading of a zip's CIFs, started now unless the same bytes are being (or were) read with the same limits.

    Args:
        zip_sha256: SHA-256 of the uploaded zip (the key: reruns and other sessions never read it twice).
        cifs: ``{zip member: bytes}`` from ``read_cif_zip``.
        max_sites: largest accepted number of sites.
        timeout_s: wall-clock limit per CIF.
        memory_mb: memory a reader may add per CIF.

    Returns:
        The reading and whether this call started it.
    """
    key = f"{zip_sha256}:{max_sites}:{timeout_s:g}:{memory_mb}"
    with _registry_lock:
        reading = _readings.get(key)
        if reading is not None:
            _readings.move_to_end(key)
            return reading, False
        reading = CifReading(key=key, members=tuple(sorted(cifs)))
        _readings[key] = reading
        _forget_old()
    request = {
        "cifs": {member: data.decode("utf-8-sig", errors="replace") for member, data in cifs.items()},
        "max_sites": max_sites, "timeout_s": timeout_s, "memory_mb": memory_mb, "batch": BATCH,
        "readers": n_readers(),
    }
    threading.Thread(target=_read_in_worker, args=(reading, request), daemon=True,
                     name=f"cif-reading-{zip_sha256[:12]}").start()
    return reading, True


def _read_in_worker(reading: CifReading, request: dict) -> None:
    """Run :mod:`cosnet_core.parse_worker` on the request and record each outcome as its line arrives."""
    try:
        worker = subprocess.Popen(
            [sys.executable, "-m", "cosnet_core.parse_worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True, cwd=_ROOT,  # pymatgen's parser warnings would fill the log
        )
        with worker:
            # The request is written by a thread of its own: a large one fills the pipe before the worker answers.
            feeder = threading.Thread(target=_feed, args=(worker.stdin, json.dumps(request)), daemon=True)
            feeder.start()
            for line in worker.stdout:
                answer = json.loads(line)
                status, value = answer["status"], answer["value"]
                if status == "ok":
                    part = UploadedStructures(structures={answer["member"]: UploadedStructure(member=answer["member"],
                                                                                               **value)})
                else:
                    part = UploadedStructures(errors={answer["member"]: value if status == "error"
                                                      else f"reading it {value}"})
                reading._record(part)
            feeder.join()
        if reading.n_done < reading.total:
            reading._fail(reading.members, f"the background reader stopped early (exit code {worker.returncode})")
    except Exception as error:  # the machinery failed, not a CIF: each CIF left says so
        reading._fail(reading.members, f"the background reader failed ({type(error).__name__}: {error})")
    finally:
        reading.finished_after_s = time.monotonic() - reading.started
        reading._done.set()


def _feed(stream, text: str) -> None:
    try:
        stream.write(text)
        stream.close()
    except (BrokenPipeError, OSError):  # the worker died; the reader thread reports it
        pass


def _forget_old() -> None:
    """Drop the oldest finished readings beyond :data:`KEEP_FINISHED` (the caller holds the registry lock)."""
    finished = [key for key, reading in _readings.items() if reading.finished]
    for key in finished[: max(0, len(finished) - KEEP_FINISHED)]:
        del _readings[key]


def wait_for_all(timeout_s: float = 120.0) -> bool:
    """Wait until every reading started so far has finished (tests and benchmarks); whether they all did."""
    deadline = time.monotonic() + timeout_s
    with _registry_lock:
        readings = list(_readings.values())
    return all(reading.wait(max(0.0, deadline - time.monotonic())) for reading in readings)


__all__ = ["BATCH", "KEEP_FINISHED", "CifReading", "read_cifs", "start_reading", "wait_for_all"]
