"""Issue 14, item 9: untrusted work runs in a child process with a hard time and memory limit per item; a bad
item gets a message and the items after it still run."""

from __future__ import annotations

import time

from pymatgen.core import Lattice, Structure

from cosnet_core.bounded import map_bounded
from cosnet_core.uploaded_cif import summarize_cif

NACL = Structure(Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]).to(fmt="cif")


def test_a_slow_item_is_stopped_and_the_next_ones_still_run():
    started = time.monotonic()
    outcomes = map_bounded(time.sleep, [(0,), (30,), (0,)], timeout_s=1.0, memory_mb=512)
    assert [status for status, _ in outcomes] == ["ok", "timeout", "ok"]
    assert "longer than 1 s" in outcomes[1][1]
    assert time.monotonic() - started < 20  # not the 30 s the item asked for


def test_an_item_that_wants_too_much_memory_is_refused():
    outcomes = map_bounded(bytearray, [(16,), (8 * 2**30,), (16,)], timeout_s=20, memory_mb=256)
    assert [status for status, _ in outcomes] == ["ok", "memory", "ok"]
    assert outcomes[0][1] == bytearray(16)


def test_cifs_are_summarised_in_the_child_with_reasons_for_bad_ones():
    outcomes = map_bounded(summarize_cif, [(NACL, 500, 10.0), ("data_x\n_cell_length_a 1\n", 500, 10.0)],
                           timeout_s=30, memory_mb=1024)
    (ok, summary), (bad, reason) = outcomes
    assert ok == "ok" and summary["formula"] == "NaCl" and summary["nsites"] == 2
    assert summary["spacegroup_number"] == 221
    assert bad == "error" and isinstance(reason, str) and reason
