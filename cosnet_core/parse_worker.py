"""A process of its own that reads uploaded CIFs and reports each outcome as it comes (issue 16, item 9).

Run as ``python -m cosnet_core.parse_worker``: reads one JSON object from stdin, ``{"cifs": {member: text},
"max_sites", "timeout_s", "memory_mb", "batch", "readers"}``, and writes one JSON line per CIF to stdout,
``{"member", "status", "value"}`` (``status`` as in :mod:`cosnet_core.bounded`: ``ok`` with the facts of
:func:`cosnet_core.uploaded_cif.summarize_cif`, else ``error``/``timeout``/``memory`` with the reason), a batch at a
time, ``readers`` batches in parallel. Each CIF is still read in a child bounded in time and memory
(:func:`cosnet_core.bounded.map_bounded`).

Why a process of its own: Streamlit installs the running page as ``__main__`` (with the page's ``__file__``), and
multiprocessing makes every child it starts from the server re-run that ``__main__`` first, so each bounded child
started by the Streamlit server executes the whole page script again before it reads its first CIF (seconds
each). Here ``__main__`` is this module, which a child imports at no cost. Torch is never imported.
"""

from __future__ import annotations

import json
import math
import sys
import threading
from typing import Any


def read_batches(
    cifs: dict[str, str], *, max_sites: int, timeout_s: float, memory_mb: int, batch: int, readers: int,
    emit,
) -> None:
    """Read every CIF, ``batch`` per bounded child, ``readers`` children at a time; ``emit(member, status, value)``
    for each outcome, in batches as they finish."""
    from cosnet_core.bounded import map_bounded
    from cosnet_core.uploaded_cif import summarize_cif

    members = sorted(cifs)
    batches = [members[i:i + batch] for i in range(0, len(members), batch)]
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                if not batches:
                    return
                names = batches.pop(0)
            try:
                outcomes = map_bounded(summarize_cif, [(cifs[m], max_sites, 0) for m in names], timeout_s=timeout_s,
                                       memory_mb=memory_mb)
            except Exception as error:  # the machinery failed, not a CIF: say so for these CIFs
                outcomes = [("error", f"the background reader failed ({type(error).__name__}: {error})")] * len(names)
            with lock:
                for member, (status, value) in zip(names, outcomes, strict=True):
                    emit(member, status, value)

    threads = [threading.Thread(target=work, daemon=True) for _ in range(max(1, min(readers, len(batches))))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def main() -> None:
    """Read the request from stdin and answer on stdout, one flushed JSON line per CIF."""
    request: dict[str, Any] = json.load(sys.stdin)

    def emit(member: str, status: str, value: Any) -> None:
        sys.stdout.write(json.dumps({"member": member, "status": status, "value": value}) + "\n")
        sys.stdout.flush()

    max_sites, timeout_s = int(request["max_sites"]), float(request["timeout_s"])
    if max_sites < 1 or not (math.isfinite(timeout_s) and timeout_s > 0):  # an unbounded reader could hang forever
        sys.exit(f"parse_worker: max_sites ({max_sites}) must be at least 1 and timeout_s ({timeout_s}) a positive "
                 "number of seconds")
    read_batches(request["cifs"], max_sites=max_sites, timeout_s=timeout_s, memory_mb=int(request["memory_mb"]),
                 batch=int(request.get("batch", 4)), readers=int(request.get("readers", 1)), emit=emit)


if __name__ == "__main__":
    main()
