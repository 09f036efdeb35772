"""Work on untrusted files in a separate process with a hard time and memory limit.

A CIF with 20,000 symmetry operations or 100,000 atoms on one line can keep pymatgen busy for minutes and take
gigabytes; in Streamlit's script thread no alarm can stop it. :func:`map_bounded` runs a function over items in a
child process (forked from a fork server that has the parsing modules loaded, so a start costs milliseconds):
the child's address space is capped (``RLIMIT_AS``), and an item that takes longer than its time limit gets the
child killed; the items after it continue in a fresh child. Each item gets ``("ok", value)``, ``("error",
message)``, ``("timeout", message)`` or ``("memory", message)``; nothing raises for a bad item.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import resource
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

Outcome = tuple[str, Any]
STARTUP_TIMEOUT_S = 120.0  # the first start loads the parsing modules into the fork server
#: Loaded once into the fork server. The readers need pymatgen's CIF parser and symmetry finder, not torch: preloading
#: ``cosnet_core.structure`` (graphs, torch) made the first start take ~8 s instead of ~1 s.
_PRELOAD = ["cosnet_core.structure_io", "cosnet_core.uploaded_cif", "pymatgen.io.cif", "pymatgen.symmetry.analyzer"]
_context: Any = None
_main_lock = threading.Lock()


def _mp_context():
    global _context
    if _context is None:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(_PRELOAD)
        _context = context
    return _context


@contextlib.contextmanager
def _main_script_hidden() -> Iterator[None]:
    """Start children without re-running the main script.

    multiprocessing's fork server prepares each child by running the parent's ``__main__`` file again (as
    ``__mp_main__``) when that module has a file but no importable name. Under Streamlit ``__main__`` is the page
    being run: every child re-ran the whole page (``app.py`` and its login gate, which in accounts mode ended the
    child before it answered). The file name is hidden from multiprocessing while a child starts; a ``python -m``
    entry point (an importable name) is left alone.
    """
    main = sys.modules.get("__main__")
    spec_name = getattr(getattr(main, "__spec__", None), "name", None)
    if main is None or spec_name is not None or "__file__" not in vars(main):
        yield
        return
    with _main_lock:
        path = vars(main).pop("__file__")
        try:
            yield
        finally:
            main.__file__ = path


def _address_space_bytes() -> int:
    """The current virtual size of this process (the memory limit is on top of what is already mapped)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _worker(connection, function: Callable[..., Any], items: Sequence[tuple[int, tuple]], memory_mb: int) -> None:
    if memory_mb:
        try:
            limit = _address_space_bytes() + memory_mb * 2**20
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        except (OSError, ValueError):  # no /proc or no permission: the time limit still holds
            pass
    connection.send(None)  # ready: the time limit of the first item starts now, not while the fork server starts
    for index, arguments in items:
        try:
            outcome: Outcome = ("ok", function(*arguments))
        except MemoryError:
            outcome = ("memory", f"needs more than the {memory_mb} MB allowed")
        except Exception as error:  # any failure of one item is that item's message
            outcome = ("error", getattr(error, "reason", None) or f"{type(error).__name__}: {error}")
        try:
            connection.send((index, outcome))
        except MemoryError:
            connection.send((index, ("memory", f"needs more than the {memory_mb} MB allowed")))
    connection.close()


def _started(receiver) -> bool:  # noqa: ANN001 - a multiprocessing Connection
    """Whether the child said it is ready (None); a child that died before saying so is not."""
    try:
        return receiver.recv() is None
    except (EOFError, OSError):
        return False


def map_bounded(
    function: Callable[..., Any], items: Sequence[tuple], *, timeout_s: float, memory_mb: int
) -> list[Outcome]:
    """``function(*item)`` for every item, each in a child process within ``timeout_s`` and ``memory_mb``.

    Args:
        function: a module-level function (it is pickled by reference) returning a picklable value.
        items: argument tuples.
        timeout_s: wall-clock limit per item.
        memory_mb: address space the child may add to what it starts with.

    Returns:
        One ``(status, value or message)`` per item, in order.
    """
    context = _mp_context()
    outcomes: dict[int, Outcome] = {}
    pending = list(enumerate(items))
    while pending:
        receiver, sender = context.Pipe(duplex=False)
        child = context.Process(target=_worker, args=(sender, function, pending, memory_mb), daemon=True)
        with _main_script_hidden():
            child.start()
        sender.close()
        if not receiver.poll(STARTUP_TIMEOUT_S) or _started(receiver) is not True:
            child.kill()
            for index, _ in pending:
                outcomes[index] = ("error", "the separate reading process did not start")
            break
        while pending:
            current = pending[0][0]
            if not receiver.poll(timeout_s):
                outcomes[current] = ("timeout", f"took longer than {timeout_s:g} s and was stopped")
                pending.pop(0)
                break
            try:
                index, outcome = receiver.recv()
            except (EOFError, OSError):  # the child died (the kernel's memory limit, a crash)
                outcomes[current] = ("memory", f"stopped the reader (more than {memory_mb} MB or a crash)")
                pending.pop(0)
                break
            outcomes[index] = outcome
            pending = [p for p in pending if p[0] != index]
        if child.is_alive():
            child.kill()
        child.join(timeout=5)
        receiver.close()
    return [outcomes[i] for i in range(len(items))]


__all__ = ["Outcome", "map_bounded"]
