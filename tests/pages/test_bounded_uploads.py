"""Issue 14, item 9: bounded work for any upload. A CIF that keeps the parser busy is stopped in its own process
(the page answers, the other CIFs are read); a table with a million columns is refused before it is parsed, in
the app and the command line."""

from __future__ import annotations

import random
import time

import pytest
from pymatgen.core import Lattice, Structure

from cosnet_core.tabular import TableError
from cosnet_core.tabular import read_table as read_cli_table
from tests.cosnet_core.ingest_files import zip_archive
from tests.pages.cif_reading import finish_cif_reading
from tests.pages.test_predict_page import trained_artifacts, trained_study  # noqa: F401  (module fixtures)

NACL = Structure(Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]).to(fmt="cif")
WIDE = (",".join(f"c{i}" for i in range(1_000_000)) + "\n" + ",".join("1" for _ in range(1_000_000)) + "\n").encode()


def many_symmetry_operations(n_ops: int = 20_000) -> str:
    """A 0.5 MB CIF whose symmetry loop keeps pymatgen busy for about a minute (then it is refused anyway)."""
    rng = random.Random(0)
    lines = ["data_evil", "_cell_length_a 5.64", "_cell_length_b 5.64", "_cell_length_c 5.64", "_cell_angle_alpha 90",
             "_cell_angle_beta 90", "_cell_angle_gamma 90", "loop_", "_symmetry_equiv_pos_as_xyz"]
    lines += [f"'x+{rng.randint(1, 997) / 1000},y+{rng.randint(1, 997) / 1000},z+{rng.randint(1, 997) / 1000}'"
              for _ in range(n_ops)]
    lines += ["loop_", "_atom_site_label", "_atom_site_type_symbol", "_atom_site_fract_x", "_atom_site_fract_y",
              "_atom_site_fract_z", "_atom_site_occupancy", "Na1 Na 0 0 0 1", "Cl1 Cl 0.5 0.5 0.5 1"]
    return "\n".join(lines) + "\n"


def test_a_cif_that_keeps_the_parser_busy_is_stopped_and_the_others_are_read(app_test, app_env, monkeypatch):
    import ui.datasets_view as view

    monkeypatch.setattr(view, "CIF_TIMEOUT_S", 1.0)
    table = b"formula,target,cif\nNaCl,1.0,evil.cif\nNaCl,2.0,nacl.cif\n"
    archive = zip_archive({"evil.cif": many_symmetry_operations(), "nacl.cif": NACL})
    at = app_test(timeout=120)
    at.run()
    at.file_uploader[0].set_value(("t.csv", table, "text/csv"))
    at.file_uploader[1].set_value(("s.zip", archive, "application/zip"))
    started = time.monotonic()
    finish_cif_reading(at.run())
    assert time.monotonic() - started < 30  # unbounded, the parser alone needs about a minute
    warnings = [w.value for w in at.warning if "cannot be read" in w.value]
    assert len(warnings) == 1 and "'evil.cif'" in warnings[0]
    assert not any("nacl.cif" in w.value for w in at.warning)  # the good CIF was read


def test_a_million_columns_are_refused_before_parsing(app_test, app_env):
    at = app_test()
    at.run()
    at.file_uploader[0].set_value(("wide.csv", WIDE, "text/csv"))
    started = time.monotonic()
    at.run()
    assert time.monotonic() - started < 20
    assert not at.exception, at.exception
    assert "more than the limit of 1,000" in at.error[0].value and "COSNET_MAX_COLUMNS" in at.error[0].value


def test_the_command_line_refuses_a_million_columns_at_once(tmp_path):
    path = tmp_path / "wide.csv"
    path.write_bytes(WIDE)
    started = time.monotonic()
    with pytest.raises(TableError, match="more than 1,000 columns"):
        read_cli_table(path, formula_col="c0")
    assert time.monotonic() - started < 5


def test_a_cif_attached_on_the_structures_page_is_bounded_too(app_env, monkeypatch):
    from sqlalchemy import select

    import db.structure_library
    import db.structures as review
    from db.engine import session_scope
    from db.models import Entry
    from tests.pages.isolation_fixtures import store_dataset

    monkeypatch.setattr(db.structure_library, "CIF_PARSE_TIMEOUT_S", 1.0)
    ids = store_dataset("local", table=b"id,formula,conductivity\nA1,NaCl,1e-4\n")
    with session_scope() as session:
        entry_id = session.scalar(select(Entry.id).where(Entry.dataset_version_id == ids.version_id))
    started = time.monotonic()
    with pytest.raises(review.StructureStoreError, match="evil.cif"):
        review.attach_structure(None, entry_id, "evil.cif", many_symmetry_operations().encode())
    assert time.monotonic() - started < 20  # unbounded, about a minute
    assert review.attach_structure(None, entry_id, "nacl.cif", NACL.encode()) > 0  # a good CIF still attaches


def test_a_batch_on_predict_reads_its_cifs_within_the_same_bounds(trained_study, app_test, downloads,  # noqa: F811
                                                                 monkeypatch):
    import io

    import pandas as pd

    import ui.predict_view as predict_view

    monkeypatch.setattr(predict_view, "CIF_TIMEOUT_S", 1.0)
    at = app_test(timeout=120)
    at.switch_page("pages/predict.py")
    at.run()
    batch = at.tabs[1]
    batch.get("file_uploader")[0].upload("new.csv", b"name,formula,cif\na,NaCl,evil.cif\nb,NaCl,nacl\n", "text/csv")
    archive = zip_archive({"evil.cif": many_symmetry_operations(), "nacl.cif": NACL})
    batch.get("file_uploader")[1].upload("s.zip", archive, "application/zip").run()
    batch = at.tabs[1]
    batch.selectbox[0].set_value("formula")
    batch.selectbox[1].set_value("name")
    batch.selectbox[2].set_value("cif").run()
    started = time.monotonic()
    next(b for b in at.button if b.label == "Predict the table").click().run()
    assert time.monotonic() - started < 30  # unbounded, about a minute
    assert not at.exception, at.exception
    result = pd.read_csv(io.BytesIO(downloads(at.download_button[0]))).set_index("id")
    assert pd.isna(result.loc["a", "prediction"]) and "cif:" in result.loc["a", "reason"]
    assert "no such file" not in result.loc["a", "reason"]  # the reason is the parser's, not a missing file
    assert bool(result.loc["b", "has_structure"]) is True and pd.notna(result.loc["b", "prediction"])


def test_one_cif_uploaded_on_predict_is_bounded_too(trained_study, app_test, monkeypatch):  # noqa: F811
    import ui.predict_view as predict_view

    monkeypatch.setattr(predict_view, "CIF_TIMEOUT_S", 1.0)
    at = app_test(timeout=120)
    at.switch_page("pages/predict.py")
    at.run()
    at.text_input[0].input("NaCl")
    at.radio[0].set_value("upload a CIF").run()
    uploader = next(u for u in at.get("file_uploader") if u.proto.label == "CIF file")
    started = time.monotonic()
    uploader.upload("evil.cif", many_symmetry_operations().encode(), "chemical/x-cif").run()
    assert time.monotonic() - started < 30  # unbounded, about a minute
    assert not at.exception, at.exception
    assert at.error[0].value.startswith("The CIF cannot be used: ") and "evil.cif" in at.error[0].value
