"""Tests that upload a CIF zip on the Datasets page wait for its background reading (issue 16, item 9)."""

from __future__ import annotations


def finish_cif_reading(at, timeout_s: float = 120.0):
    """Wait until every background CIF reading has finished, then rerun the page as its progress bar would."""
    from ui.background import wait_for_all

    assert wait_for_all(timeout_s), "the CIF files were not read in time"
    at.run()
    assert not at.exception, at.exception
    return at
