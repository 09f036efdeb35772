"""The Datasets page driven with Streamlit's AppTest: upload, map, preview, import, versions, delete, bad inputs."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from pymatgen.core import Lattice, Structure
from sqlalchemy import func, select

from cosnet_core.ingest import CleaningOptions, ColumnMapping, clean_table, read_table
from db import datasets as store
from db.engine import session_scope
from db.models import Base, Study
from tests.cosnet_core.ingest_files import zip_archive
from tests.pages.cif_reading import finish_cif_reading

PAGE = "pages/datasets.py"
REPO_ROOT = Path(__file__).resolve().parents[2]

# Rows 2..7: kept, censored, rejected (bad formula), kept, kept (same composition as row 5), kept.
TABLE = (
    b"id,formula,conductivity,temperature\n"
    b"A1,Li7La3Zr2O12,1e-4,25\n"
    b"A2,Li3PS4,<1E-10,25\n"
    b"A3,Xx2O,1e-3,25\n"
    b"A4,Li6PS5Cl,2e-3,25\n"
    b"A5,Li6PS5Cl,3e-3,25\n"
    b"A6,LiCl,1e-8,25\n"
)
NACL_CIF = Structure(Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]).to(fmt="cif")


def _url(app_env) -> str:
    return f"sqlite:///{app_env / 'cosnet.db'}"


def _counts(url: str) -> dict[str, int]:
    with session_scope(url) as session:
        return {
            table.name: session.scalar(select(func.count()).select_from(table))
            for table in Base.metadata.sorted_tables
        }


def _open(app_test):
    at = app_test()
    at.switch_page(PAGE)
    at.run()
    assert not at.exception, at.exception
    return at


def _upload(at, name: str, data: bytes, zip_data: bytes | None = None):
    at.file_uploader[0].set_value((name, data, "application/octet-stream"))
    if zip_data is not None:
        at.file_uploader[1].set_value(("structures.zip", zip_data, "application/zip"))
    at.run()
    assert not at.exception, at.exception
    if zip_data is not None and not at.error:  # the CIFs are read in the background
        finish_cif_reading(at)
    return at


def _import_button(at):
    return next(b for b in at.button if b.key and b.key.startswith("import_"))


def _metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_upload_map_import_summary_then_reupload_makes_version_2(app_test, app_env):
    url = _url(app_env)
    at = _open(app_test)
    assert at.info and "No dataset" in at.info[0].value
    _upload(at, "li.csv", TABLE)

    # The mapping is prefilled from the column names.
    selected = {s.label: s.value for s in at.selectbox}
    assert selected["Formula (required)"] == "formula"
    assert selected["Target property (required)"] == "conductivity"
    assert selected["Sample ID"] == "id" and selected["Temperature"] == "temperature"
    assert at.checkbox(key=next(c.key for c in at.checkbox if c.key.startswith("opt_log10_"))).value is True
    # The preview names the bad row and stores nothing yet.
    preview = " ".join(m.value for m in at.markdown)
    assert "**4 would be kept**, 1 rejected, 1 censored" in preview
    assert _counts(url)["entries"] == 0
    unused = at.dataframe[1].value
    assert list(unused.index) == [3, 4] and "Xx2O" in unused.loc[4, "reason"]

    _import_button(at).click().run()
    assert not at.exception, at.exception
    assert any("Imported 'li.csv' as version 1" in s.value for s in at.success)
    metrics = _metrics(at)
    assert (metrics["Rows kept"], metrics["Rows rejected"], metrics["Rows censored"]) == ("4", "1", "1")
    assert metrics["Distinct compositions"] == "3" and metrics["Conflicting compositions"] == "1"
    assert len(at.get("vega_lite_chart")) == 2  # element coverage + target histogram
    assert [b.label for b in at.get("download_button")] == ["Download the unused rows (CSV)"]
    counts = _counts(url)
    assert (counts["datasets"], counts["dataset_versions"], counts["entries"]) == (1, 1, 6)
    v1 = store.list_datasets(url)[0].versions[0]
    assert at.session_state["active_dataset_version_id"] == v1.id
    assert (v1.n_kept, v1.n_rejected, v1.summary["n_censored"]) == (4, 1, 1)
    assert v1.target_transform == "log10" and v1.target_unit == "S/cm"

    # Re-upload the corrected file: it becomes version 2 of the same dataset (same file name → same dataset).
    _upload(at, "li.csv", TABLE.replace(b"Xx2O", b"Li2O"))
    into = next(s for s in at.selectbox if s.label == "Import as")
    assert into.value == v1.dataset_id
    _import_button(at).click().run()
    assert not at.exception, at.exception
    assert any("as version 2" in s.value for s in at.success)
    assert _metrics(at)["Rows kept"] == "5" and _metrics(at)["Rows rejected"] == "0"
    versions = store.list_datasets(url)[0].versions
    assert [v.number for v in versions] == [1, 2] and versions[1].parent_id == v1.id
    assert len(store.load_entries(url, v1.id)) == 6  # version 1 still readable
    assert len(at.dataframe[0].value) == 2  # the versions list

    # An old version's summary can be viewed again.
    chooser = next(s for s in at.selectbox if s.label == "Show the summary of")
    chooser.set_value(v1.id).run()
    assert _metrics(at)["Rows rejected"] == "1"


def test_delete_asks_for_confirmation_and_names_dependents(app_test, app_env):
    url = _url(app_env)
    raw = read_table(TABLE, "li.csv")
    result = clean_table(raw, ColumnMapping(formula="formula", target="conductivity"), CleaningOptions(log10=True))
    first = store.create_dataset(url, result, name="li")
    second = store.add_version(url, first.dataset_id, result)
    with session_scope(url) as session:
        session.add(Study(name="paper protocol", dataset_version_id=first.version_id))

    at = _open(app_test)
    next(s for s in at.selectbox if s.label == "Show the summary of").set_value(first.version_id).run()
    delete = next(b for b in at.button if b.label == "Delete permanently")
    assert delete.disabled  # step 1: nothing happens without the confirmation
    confirm = next(c for c in at.checkbox if c.label.startswith("I understand"))
    confirm.check().run()
    warning = " ".join(w.value for w in at.warning)
    assert "paper protocol" in warning and "v1" in warning and "This cannot be undone" in warning
    assert _counts(url)["studies"] == 1
    next(b for b in at.button if b.label == "Delete permanently").click().run()  # step 2
    assert not at.exception, at.exception
    assert any("Deleted version 1 of 'li'" in s.value for s in at.success)
    counts = _counts(url)
    assert counts["studies"] == 0 and counts["dataset_versions"] == 1
    assert store.get_version(url, second.version_id) is not None

    # The whole dataset: the message lists its remaining version.
    at.radio(key=f"delete_scope_{second.version_id}").set_value("dataset").run()
    next(c for c in at.checkbox if c.label.startswith("I understand")).check().run()
    assert "1 version(s) (v2)" in " ".join(w.value for w in at.warning)
    next(b for b in at.button if b.label == "Delete permanently").click().run()
    assert _counts(url)["datasets"] == 0
    assert at.info  # back to the empty state


def test_multi_sheet_workbook_asks_for_the_sheet(app_test, app_env):
    import openpyxl

    workbook = openpyxl.Workbook()
    workbook.active.title = "notes"
    workbook.active.append(["nothing here"])
    sheet = workbook.create_sheet("data")
    sheet.append(["formula", "band gap"])
    for formula, gap in [("GaAs", 1.42), ("Si", 1.12), ("ZnO", 3.37)]:
        sheet.append([formula, gap])
    buffer = io.BytesIO()
    workbook.save(buffer)

    at = _upload(_open(app_test), "gaps.xlsx", buffer.getvalue())
    chooser = next(s for s in at.selectbox if s.label == "Sheet")
    assert chooser.options == ["notes", "data"]
    chooser.set_value("data").run()
    assert not at.error
    next(s for s in at.selectbox if s.label == "Target property (required)").set_value("band gap").run()
    _import_button(at).click().run()
    assert _metrics(at)["Rows kept"] == "3"
    assert store.list_datasets(_url(app_env))[0].versions[0].settings["sheet"] == "data"


def test_uploaded_cifs_are_attached_and_counted(app_test, app_env):
    table = b"id,formula,target,cif\nA1,NaCl,1.0,nacl.cif\nA2,KCl,2.0,\n"
    at = _upload(_open(app_test), "salts.csv", table, zip_archive({"cifs/nacl.cif": NACL_CIF}))
    assert "1 rows with a structure" in " ".join(m.value for m in at.markdown)
    _import_button(at).click().run()
    assert _metrics(at)["Rows with a structure"] == "1"
    entries = store.load_entries(_url(app_env), store.list_datasets(_url(app_env))[0].versions[0].id)
    assert list(entries["match_state"]) == ["accepted", "unmatched"]
    assert entries["structure_file"].iloc[0] == "cifs/nacl.cif"


# ----------------------------------------------------------------------------------------------------
# A corpus of bad inputs: each shows a clear message and leaves the database exactly as it was.

GOOD = b"formula,target\nNaCl,1.0\nKCl,2.0\n"
WITH_CIF = b"id,formula,target,cif\nA1,NaCl,1.0,bad.cif\nA2,KCl,2.0,\n"
NO_SITES_CIF = "\n".join(line for line in NACL_CIF.splitlines() if not line.strip().startswith(("Na ", "Cl ")))
ZEROS = b"\0" * 700_000

# id: (file name, bytes, zip bytes or None, environment, "error"/"warning", phrases, click Import first)
BAD_INPUTS = {
    "empty file": ("e.csv", b"", None, {}, "error", ["'e.csv' is empty"], False),
    "blank lines only": ("e.csv", b"  \n\n \n", None, {}, "error", ["is empty"], False),
    "header only": ("h.csv", b"formula,target\n", None, {}, "error", ["header but no data rows"], False),
    "binary garbage": ("g.csv", bytes(range(256)) * 8, None, {}, "error", ["binary content"], False),
    "pdf renamed csv": ("p.csv", b"%PDF-1.4\n%\xe2\xe3\n1 0 obj\n", None, {}, "error", ["is a PDF"], False),
    "latin-1 text": (
        "l.csv", "formula,target,note\nNaCl,1.0,café\n".encode("latin-1"), None, {}, "warning",
        ["not valid UTF-8", "cp1252"], False,
    ),
    "no header": ("n.csv", b"NaCl,1.0\nKCl,2.0\n", None, {}, "error", ["seems to have no header"], False),
    "missing formula column": (
        "m.csv", b"name,value\nfoo,1.0\n", None, {}, "error", ["choose the formula column"], False,
    ),
    "target all text": (
        "t.csv", b"formula,target\nNaCl,high\nKCl,low\n", None, {}, "error",
        ["no row of the target column 'target' holds a number"], False,
    ),
    "no formula readable": (
        "f.csv", b"formula,target\n123abc,1\n???,2\n", None, {}, "error",
        ["no row of the formula column 'formula'"], False,
    ),
    "wrong delimiter for tsv": (
        "w.tsv", b"formula,target\nNaCl,1.0\n", None, {}, "error", ["read as a single column"], False,
    ),
    "oversized upload": (
        "big.csv", GOOD + b"LiCl,3.0\n" * 40, None, {"COSNET_MAX_UPLOAD_MB": "0.0001"}, "error",
        ["larger than the upload limit", "COSNET_MAX_UPLOAD_MB"], False,
    ),
    "too many rows": (
        "rows.csv", GOOD + b"LiCl,3.0\nLiBr,4.0\n", None, {"COSNET_MAX_ROWS": "3"}, "error",
        ["more than 3 data rows", "COSNET_MAX_ROWS"], False,
    ),
    "misconfigured limit": (
        "x.csv", GOOD, None, {"COSNET_MAX_ROWS": "lots"}, "error", ["limits are misconfigured", "lots"], False,
    ),
    "old xls workbook": ("o.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 64, None, {}, "error",
                         ["old Excel .xls"], False),
    "corrupt xlsx": ("c.xlsx", b"PK\x03\x04" + b"not really a workbook" * 10, None, {}, "error",
                     ["cannot be read as an Excel workbook"], False),
    "corrupt zip": ("z.csv", GOOD, b"PK\x03\x04garbage", {}, "error", ["not a valid zip archive"], False),
    "zip bomb": (
        "z.csv", GOOD, zip_archive({"a.cif": ZEROS, "b.cif": ZEROS}), {"COSNET_MAX_ZIP_UNPACKED_MB": "1"}, "error",
        ["zip bomb"], False,
    ),
    "zip member too large": (
        "z.csv", GOOD, zip_archive({"a.cif": ZEROS}), {"COSNET_MAX_ZIP_MEMBER_MB": "0.5"}, "error",
        ["'a.cif' unpacks to", "per-file limit"], False,
    ),
    "zip too many members": (
        "z.csv", GOOD, zip_archive({f"{i}.cif": NACL_CIF for i in range(3)}), {"COSNET_MAX_ZIP_MEMBERS": "2"}, "error",
        ["3 members, more than the limit of 2"], False,
    ),
    "zip path traversal": (
        "z.csv", GOOD, zip_archive({"../evil.cif": NACL_CIF}), {}, "error", ["'../evil.cif'", "escapes"], False,
    ),
    "zip absolute path": (
        "z.csv", GOOD, zip_archive({"/etc/evil.cif": NACL_CIF}), {}, "error", ["absolute path"], False,
    ),
    "cif with zero sites": (
        "s.csv", WITH_CIF, zip_archive({"bad.cif": NO_SITES_CIF}), {}, "warning",
        ["Row 2: the CIF 'bad.cif' cannot be read", "composition-only"], False,
    ),
    "broken cif text": (
        "s.csv", WITH_CIF, zip_archive({"bad.cif": "data_x\n_cell_length_a 5\nthis is not a CIF\n"}), {}, "warning",
        ["Row 2: the CIF 'bad.cif' cannot be read"], False,
    ),
    "every row censored": (
        "c.csv", b"formula,target\nNaCl,<1E-10\nKCl,<1E-9\n", None, {}, "error",
        ["Nothing was imported", "no row of 'c.csv' was kept", "2 censored"], True,
    ),
}


@pytest.fixture(scope="module")
def corpus_db(tmp_path_factory):
    """One migrated database for the whole corpus (each case compares row counts before and after itself),
    holding one dataset already, so "unchanged" means more than "still empty"."""
    from db.engine import dispose_engines, upgrade_database

    data = tmp_path_factory.mktemp("corpus-data")
    url = f"sqlite:///{data / 'cosnet.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COSNET_DATA_DIR", str(data))
        patch.setenv("COSNET_DATABASE_URL", url)
        upgrade_database(url)
        raw = read_table(GOOD, "existing.csv")
        store.create_dataset(url, clean_table(raw, ColumnMapping(formula="formula", target="target")), name="existing")
        yield url
    dispose_engines()


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_shows_a_message_and_changes_nothing(case, corpus_db, monkeypatch):
    from streamlit.testing.v1 import AppTest

    name, data, zip_data, environment, kind, phrases, click_import = BAD_INPUTS[case]
    before = _counts(corpus_db)
    assert before["entries"] == 2

    for variable, value in environment.items():
        monkeypatch.setenv(variable, value)
    at = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=60)
    at.switch_page(PAGE)
    at.run()
    if "misconfigured" not in case:
        _upload(at, name, data, zip_data)
        if click_import:
            _import_button(at).click().run()
    assert not at.exception, at.exception
    shown = " | ".join(e.value for e in (at.error if kind == "error" else at.warning))
    for phrase in phrases:
        assert phrase in shown, f"{phrase!r} not in {shown!r}"
    assert _counts(corpus_db) == before
    assert not at.success  # nothing reported as imported


def test_a_cif_member_holding_a_path_is_never_read_from_disk(app_test, app_env, tmp_path):
    """A zip member whose text is a file path must not make the server read that file as a structure."""
    on_disk = tmp_path / "server-side.cif"
    on_disk.write_text(NACL_CIF)
    at = _upload(_open(app_test), "s.csv", WITH_CIF, zip_archive({"bad.cif": str(on_disk)}))
    assert any("Row 2: the CIF 'bad.cif' cannot be read" in w.value for w in at.warning)
    _import_button(at).click().run()
    entries = store.load_entries(_url(app_env), store.list_datasets(_url(app_env))[0].versions[0].id)
    assert entries["structure_id"].isna().all()
    assert _counts(_url(app_env))["structures"] == 0


def test_reclean_a_stored_version_with_other_options_makes_a_new_version(app_test, app_env):
    url = _url(app_env)
    at = _upload(_open(app_test), "li.csv", TABLE)
    _import_button(at).click().run()
    v1 = store.list_datasets(url)[0].versions[0]
    assert store.load_upload(v1.source_sha256) == TABLE  # the file is kept for re-cleaning

    next(b for b in at.button if b.label.startswith("Re-clean this version")).click().run()
    assert not at.exception, at.exception
    assert any("Re-cleaning the file 'li.csv'" in i.value for i in at.info)
    log10 = next(c for c in at.checkbox if c.key and c.key.startswith("opt_log10_"))
    assert log10.value is True  # starts from the version's own options
    log10.uncheck().run()
    next(r for r in at.radio if r.label.startswith("Censored values")).set_value("include_at_bound").run()
    assert next(s for s in at.selectbox if s.label == "Import as").value == v1.dataset_id
    _import_button(at).click().run()
    assert not at.exception, at.exception

    versions = store.list_datasets(url)[0].versions
    assert [v.number for v in versions] == [1, 2]
    v2 = versions[1]
    assert v2.parent_id == v1.id and v2.target_transform == "none"
    assert v2.settings["options"]["censored"] == "include_at_bound"
    assert (v2.n_kept, v2.summary["n_censored"]) == (5, 0)  # the censored row is now kept at its bound
    assert _metrics(at)["Rows kept"] == "5"
    assert store.get_version(url, v1.id).target_transform == "log10"  # version 1 unchanged
