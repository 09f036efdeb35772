"""Issue 16, item 9: the CIFs of an uploaded zip are read in the background with a progress bar; the form stays
usable meanwhile, Import waits for the reading, each zip is read once, and a bad CIF still gets its row and reason."""

from __future__ import annotations

import hashlib

from pymatgen.core import Lattice, Structure

from db import datasets as store
from tests.cosnet_core.ingest_files import zip_archive
from tests.pages.cif_reading import finish_cif_reading
from tests.pages.test_bounded_uploads import many_symmetry_operations

NACL = Structure(Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]).to(fmt="cif")
KCL = Structure(Lattice.cubic(6.29), ["K", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]).to(fmt="cif")
# "measured" is no column name the mapping guesses: the user chooses the target, as in the 62 s freeze.
TABLE = b"id,formula,measured,cif\nA1,NaCl,1.0,a_slow.cif\nA2,NaCl,2.0,nacl.cif\nA3,KCl,3.0,kcl.cif\nA4,KCl,4.0,\n"


def _progress(at) -> list[str]:
    return [element.proto.text for element in at.get("progress")]


def _import_button(at):
    return next(b for b in at.button if b.key and b.key.startswith("import_"))


def test_choosing_the_target_while_cifs_are_read_does_not_wait_for_them(app_test, app_env, monkeypatch):
    import ui.background as background
    import ui.datasets_view as view

    monkeypatch.setattr(view, "CIF_TIMEOUT_S", 2.0)  # the slow CIF is stopped after 3 s: the reading lasts >= 3 s
    monkeypatch.setattr(view, "CIF_WAIT_S", 0.0)
    calls: list[list[str]] = []
    real_worker = background._read_in_worker

    def counted(reading, request):  # the real reader, counted
        calls.append(sorted(request["cifs"]))
        return real_worker(reading, request)

    monkeypatch.setattr(background, "_read_in_worker", counted)
    archive = zip_archive({"a_slow.cif": many_symmetry_operations(), "nacl.cif": NACL, "kcl.cif": KCL})
    at = app_test(timeout=60)
    at.run()
    at.file_uploader[0].set_value(("t.csv", TABLE, "text/csv"))
    at.file_uploader[1].set_value(("s.zip", archive, "application/zip"))
    at.run()
    assert not at.exception, at.exception
    reading, started = background.start_reading(hashlib.sha256(archive).hexdigest(), {}, **view._cif_limits())
    assert not started and reading.total == 3  # the upload's run started it, with the page's limits

    # The form answers while the CIFs are read: choosing the target column returns before the reading ends.
    at.selectbox(key=next(s.key for s in at.selectbox if s.key.startswith("map_target_"))).set_value("measured")
    at.run()
    assert not at.exception, at.exception
    assert not reading.finished, "the page waited for the CIFs"
    assert _progress(at) and _progress(at)[0].startswith("Reading the CIF files in the background: ")
    assert _progress(at)[0].endswith(" of 3 read.")
    assert _import_button(at).disabled
    assert any("still being read" in info.value for info in at.info)
    assert not [w for w in at.warning if "cannot be read" in w.value]  # no verdict before the reading is done

    finish_cif_reading(at)
    assert reading.finished and reading.n_done == 3
    assert not _progress(at) and not _import_button(at).disabled
    warnings = [w.value for w in at.warning if "cannot be read" in w.value]
    assert warnings == ["Row 2: the CIF 'a_slow.cif' cannot be read (reading it took longer than 3 s and was "
                        "stopped); kept composition-only."]
    # Reruns and a mapping change reuse the reading: every CIF went through the reader exactly once.
    at.selectbox(key=next(s.key for s in at.selectbox if s.key.startswith("map_id_"))).set_value("(none)").run()
    assert calls == [["a_slow.cif", "kcl.cif", "nacl.cif"]]

    _import_button(at).click().run()
    assert not at.exception, at.exception
    url = f"sqlite:///{app_env / 'cosnet.db'}"
    entries = store.load_entries(url, store.list_datasets(url)[0].versions[0].id)
    assert list(entries["match_state"]) == ["unmatched", "accepted", "accepted", "unmatched"]
    assert entries["structure_id"].notna().sum() == 2



def test_a_reader_that_dies_finishes_the_reading_with_a_reason_for_every_cif():
    """The page must never wait forever: a worker that exits without answering ends the reading, each CIF named."""
    import ui.background as background

    reading, started = background.start_reading("not-a-real-zip-" + "0" * 48, {"a.cif": NACL.encode(), "b.cif": b"x"},
                                                max_sites=500, timeout_s=float("nan"), memory_mb=0)
    assert started  # the worker refuses a time limit that is not a number before reading anything
    assert reading.wait(60)
    outcome = reading.outcome(["a.cif", "b.cif"])
    assert not outcome.structures
    assert set(outcome.errors) == {"a.cif", "b.cif"}
    assert all(reason.startswith("the background reader stopped early (exit code ") for reason in outcome.errors.values())
