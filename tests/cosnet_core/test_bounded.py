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


PAGE_LIKE_SCRIPT = """
import sys
with open(sys.argv[1], "a") as log:  # unguarded top-level code, as in a Streamlit page or app.py
    log.write("ran\\n")
if __name__ == "__main__":
    sys.path.insert(0, sys.argv[2])
    from cosnet_core.bounded import map_bounded
    print(map_bounded(abs, [(-1,), (-2,), (-3,)], timeout_s=60, memory_mb=0))
"""


def test_children_do_not_run_the_main_script_again(tmp_path):
    """Under Streamlit ``__main__`` is the page; each child used to run it again (and app.py's login gate ended it)."""
    import subprocess
    import sys
    from pathlib import Path

    script, log = tmp_path / "page.py", tmp_path / "ran.log"
    script.write_text(PAGE_LIKE_SCRIPT)
    repo = str(Path(__file__).resolve().parents[2])
    done = subprocess.run([sys.executable, str(script), str(log), repo], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "[('ok', 1), ('ok', 2), ('ok', 3)]" in done.stdout
    assert log.read_text() == "ran\n"  # once, by the parent only
