"""More bad inputs for the pages that had few cases (Predict, Training, Structures), driven with AppTest.

Each case asserts the message the page shows (naming the input and the reason) AND that the database is unchanged:
the row count of every table is the same before and after.
"""

from __future__ import annotations

import os

import pandas as pd
import pytest
from pymatgen.core import Lattice, Structure

from tests.cosnet_core.ingest_files import zip_archive
from tests.e2e.harness import row_counts
from tests.pages.test_predict_page import trained_artifacts, trained_study  # noqa: F401  (fixtures)

PREDICT = "pages/predict.py"
TRAINING = "pages/training.py"
STRUCTURES = "pages/structures.py"
NACL_CIF = b"""data_NaCl
_symmetry_space_group_name_H-M 'P 1'
_cell_length_a 5.64
_cell_length_b 5.64
_cell_length_c 5.64
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
_atom_site_occupancy
Na1 Na 0 0 0 1
Cl1 Cl 0.5 0.5 0.5 1
"""

#: A proper rock-salt NaCl cell (Fm-3m, a = 5.64 Å).
ROCK_SALT_NACL_CIF = (
    Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    .to(fmt="cif")
    .encode()
)


@pytest.fixture()
def url(app_env) -> str:
    """The test's database URL."""
    return os.environ["COSNET_DATABASE_URL"]


def texts(at) -> str:
    """Every message-like element of an AppTest run, joined (to search for a reason)."""
    kinds = ("markdown", "caption", "info", "error", "success", "warning")
    return "\n".join(str(element.value) for kind in kinds for element in at.get(kind))


def errors(at) -> list[str]:
    return [str(e.value) for e in at.error]


def button(at, label: str):
    return next(b for b in at.button if b.label == label)


# ------------------------------------------------------------------------------------------------------- Predict


def predict_page(app_test):
    at = app_test(timeout=120)
    at.switch_page(PREDICT)
    at.run()
    assert not at.exception, at.exception
    return at


def predict_formula(at, formula: str):
    at.text_input[0].input(formula).run()
    button(at, "Predict").click().run()
    assert not at.exception, at.exception
    return at


def test_predict_empty_formula_keeps_the_button_disabled(trained_study, app_test, url):  # noqa: F811
    before = row_counts(url)
    at = predict_page(app_test)
    at.text_input[0].input("").run()
    assert button(at, "Predict").disabled
    assert not at.metric
    assert row_counts(url) == before


@pytest.mark.parametrize(
    "formula",
    [
        "Li((2O",  # unbalanced parentheses
        "Li2O-",  # trailing garbage
        "Zz3Cl",  # unknown element
        "   ",  # only blanks (the button is enabled: the text is not empty)
        "Li-2O",  # negative amount
    ],
)
def test_predict_unusable_formula_is_refused_with_its_text(trained_study, app_test, url, formula):  # noqa: F811
    before = row_counts(url)
    at = predict_page(app_test)
    predict_formula(at, formula)
    assert not at.metric, f"{formula!r} got a prediction"
    (message,) = errors(at)
    assert message.startswith("Cannot predict:"), message
    if formula.strip():
        assert formula in message
    assert row_counts(url) == before


def test_predict_element_without_an_embedding_vector_is_named(trained_study, app_test, url):  # noqa: F811
    from pymatgen.core import Element

    from cosnet_core.embeddings import load_element_embedding

    embedding = load_element_embedding(_model_embedding(url))
    missing = next(e.symbol for e in Element if e.symbol not in embedding)
    before = row_counts(url)
    at = predict_page(app_test)
    predict_formula(at, f"Li{missing}O2")
    assert not at.metric
    assert f"element(s) {missing} have no vector" in errors(at)[0]
    assert row_counts(url) == before


def _model_embedding(url: str) -> str:
    from cosnet_core.artifact import load_artifact
    from db.results import model_choices

    return load_artifact(model_choices(url)[0].paths[0]).config.embedding


def _batch(at, name: str, data: bytes, mime: str = "text/csv"):
    at.tabs[1].get("file_uploader")[0].upload(name, data, mime).run()
    assert not at.exception, at.exception
    return at


def test_predict_binary_garbage_as_batch_table(trained_study, app_test, url):  # noqa: F811
    before = row_counts(url)
    at = predict_page(app_test)
    garbage = bytes(range(256)) * 40 + b"\x00\xff\xfe" * 100
    _batch(at, "garbage.csv", garbage)
    (message,) = errors(at)
    assert message.startswith("The table cannot be read:") and "can't decode byte" in message, message
    assert not at.dataframe
    assert row_counts(url) == before


def test_predict_batch_with_only_a_header_says_there_is_no_row(trained_study, app_test, url):  # noqa: F811
    before = row_counts(url)
    at = predict_page(app_test)
    _batch(at, "empty.csv", b"formula,id\n")
    at.tabs[1].selectbox[0].set_value("formula").run()
    button(at, "Predict the table").click().run()
    assert not at.exception, at.exception
    assert errors(at) == ["The table has no data rows: add one formula per row below the header."]
    assert not at.dataframe
    assert row_counts(url) == before


def test_predict_batch_formula_column_of_numbers_gives_a_reason_per_row(trained_study, app_test, url):  # noqa: F811
    before = row_counts(url)
    at = predict_page(app_test)
    _batch(at, "numbers.csv", b"name,value\na,1.5\nb,2.5\n")
    at.tabs[1].selectbox[0].set_value("value").run()  # the wrong column picked as the formula column
    button(at, "Predict the table").click().run()
    assert not at.exception, at.exception
    assert "2 row(s) could not be predicted" in at.warning[0].value
    result = at.dataframe[0].value
    assert result["prediction"].isna().all() and result["reason"].str.startswith("value").all()
    assert row_counts(url) == before


def test_predict_batch_over_the_upload_limit(trained_study, app_test, url, monkeypatch):  # noqa: F811
    monkeypatch.setenv("COSNET_MAX_UPLOAD_MB", "1")
    before = row_counts(url)
    at = predict_page(app_test)
    big = b"formula,id\n" + b"".join(b"NaCl,row%07d\n" % i for i in range(80_000))  # about 1.4 MB
    assert len(big) > 2**20
    _batch(at, "big.csv", big)
    at.tabs[1].selectbox[0].set_value("formula").run()
    button(at, "Predict the table").click().run()
    assert errors(at) == ["The upload cannot be used: the table is larger than the limit of 1 MB"]
    assert not at.dataframe
    assert row_counts(url) == before


def _with_zip(at, table: bytes, archive: bytes):
    _batch(at, "with-cifs.csv", table)
    at.tabs[1].get("file_uploader")[1].upload("cifs.zip", archive, "application/zip").run()
    assert not at.exception, at.exception
    at.tabs[1].selectbox[0].set_value("formula")
    at.tabs[1].selectbox[2].set_value("cif").run()
    button(at, "Predict the table").click().run()
    assert not at.exception, at.exception
    return at


def test_predict_batch_zip_with_path_traversal_is_refused(trained_study, app_test, url):  # noqa: F811
    before = row_counts(url)
    at = predict_page(app_test)
    archive = zip_archive({"ok.cif": NACL_CIF, "../../escape.cif": NACL_CIF})
    _with_zip(at, b"formula,cif\nNaCl,ok.cif\n", archive)
    assert len(errors(at)) == 1 and errors(at)[0].startswith("The upload cannot be used")
    assert "../../escape.cif" in errors(at)[0]
    assert not at.dataframe
    assert row_counts(url) == before


def test_predict_batch_zip_that_is_not_a_zip(trained_study, app_test, url):  # noqa: F811
    before = row_counts(url)
    at = predict_page(app_test)
    _with_zip(at, b"formula,cif\nNaCl,ok.cif\n", b"PK\x03\x04 this is not really a zip archive" * 10)
    assert len(errors(at)) == 1 and errors(at)[0].startswith("The upload cannot be used")
    assert "zip" in errors(at)[0].lower()
    assert row_counts(url) == before


def test_predict_batch_broken_cif_in_the_zip_is_a_row_reason(trained_study, app_test, url):  # noqa: F811
    before = row_counts(url)
    at = predict_page(app_test)
    archive = zip_archive({"ok.cif": NACL_CIF, "broken.cif": b"data_broken\n_cell_length_a nonsense\n"})
    _with_zip(at, b"formula,cif\nNaCl,ok.cif\nKCl,broken.cif\n", archive)
    assert "1 row(s) could not be predicted" in at.warning[0].value
    result = at.dataframe[0].value.set_index("line")
    assert result.loc[2, "composition"] == "NaCl" and result.loc[2, "has_structure"] and result.loc[2, "reason"] == ""
    assert result.loc[3, "composition"] == "KCl" and pd.isna(result.loc[3, "prediction"])  # the formula (issue 16)
    assert result.loc[3, "reason"].startswith("cif: it cannot be parsed")
    assert row_counts(url) == before


def test_predict_broken_cif_for_one_formula(trained_study, app_test, url):  # noqa: F811
    before = row_counts(url)
    at = predict_page(app_test)
    at.text_input[0].input("NaCl").run()
    at.radio[0].set_value("upload a CIF").run()
    uploader = next(w for w in at.get("file_uploader") if w.key == "predict-cif")
    uploader.upload("broken.cif", b"data_x\n_cell_length_a -3\nloop_\n_atom_site_label\n", "chemical/x-cif").run()
    assert not at.exception, at.exception
    assert errors(at) and errors(at)[0].startswith("The CIF cannot be used:")
    assert not at.get("structure_scene")  # nothing drawn
    assert row_counts(url) == before


# ------------------------------------------------------------------------------------------------------- Training


def training_page(app_test, version_id: int):
    at = app_test()
    at.switch_page(TRAINING)
    at.session_state["active_dataset_version_id"] = version_id
    at.run()
    assert not at.exception, at.exception
    return at


def test_training_without_any_mode_cannot_be_launched(app_test, url):
    from tests.jobs.conftest import make_dataset

    version_id = make_dataset(url, n=12)
    before = row_counts(url)
    at = training_page(app_test, version_id)
    at.multiselect[0].set_value([]).run()
    assert "Cannot launch: choose at least one mode." in errors(at)
    assert button(at, "Launch study").disabled
    assert row_counts(url) == before


def test_training_split_column_that_the_dataset_lacks(app_test, url):
    from tests.jobs.conftest import make_dataset

    version_id = make_dataset(url, n=12)
    before = row_counts(url)
    at = training_page(app_test, version_id)
    split = next(s for s in at.selectbox if s.label == "Split")
    split.set_value("column").run()
    assert any("the dataset has no split column" in e for e in errors(at)), errors(at)
    assert button(at, "Launch study").disabled
    assert row_counts(url) == before


def test_training_bimodal_without_structures_warns_before_launch(app_test, url):
    from tests.jobs.conftest import make_dataset

    version_id = make_dataset(url, n=12, structure_every=10_000)  # only row 0 gets a structure
    from db.engine import session_scope
    from db.models import Entry

    with session_scope(url) as session:  # take the single structure away again: no row has one
        for entry in session.query(Entry).filter(Entry.dataset_version_id == version_id):
            entry.structure_id = None
            entry.match_state = "unmatched"
    before = row_counts(url)
    at = training_page(app_test, version_id)
    assert any("No row has an accepted structure yet" in w.value for w in at.warning)
    at.multiselect[0].set_value(["composition"]).run()
    assert not any("No row has an accepted structure yet" in w.value for w in at.warning)
    assert row_counts(url) == before


# ------------------------------------------------------------------------------------------------------- Structures


def structures_page(app_test, version_id: int):
    at = app_test(timeout=180)
    at.run()
    at.switch_page(STRUCTURES)
    at.session_state["active_dataset_version_id"] = version_id
    at.run()
    assert not at.exception, at.exception
    return at


@pytest.fixture()
def structures_url(url, monkeypatch) -> str:
    for variable in ("MP_API_KEY", "PMG_MAPI_KEY", "MP_API_ENDPOINT"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr("cosnet_core.settings.SECRETS_FILES", ())
    return url


def _library_upload(at, files: list[tuple[str, bytes, str]]):
    uploader = next(w for w in at.get("file_uploader") if w.key == "structures_library_upload")
    uploader.set_value(files)
    at.button(key="structures_import").click().run()
    assert not at.exception, at.exception
    return at


def test_structures_add_to_library_without_files(app_test, structures_url):
    from tests.db.test_structures_store import make_version

    version_id = make_version(structures_url, ["NaCl"])
    before = row_counts(structures_url)
    at = structures_page(app_test, version_id)
    at.button(key="structures_import").click().run()
    assert at.warning[0].value == "Choose CIF, zip, CSV or JSON files to add first."
    assert row_counts(structures_url) == before


@pytest.mark.parametrize(
    "name, data, reason",
    [
        ("table.csv", b"material_id,formula\nmp-1,NaCl\n", "needs an id column"),  # no 'cif' column
        ("library.json", b"{not json at all", "cannot be read as a table"),
        ("library.csv.gz", b"\x1f\x8b this is not gzip data", "cannot be read as a table"),
        ("empty.zip", zip_archive({"readme.txt": b"no cif here"}), "the archive holds no .cif file"),
        ("atoms.cif", b"data_x\n_cell_length_a 5\nloop_\n_atom_site_label\n" + b"X1\n" * 10, "cannot be parsed"),
    ],
)
def test_structures_unusable_library_files_are_refused(app_test, structures_url, name, data, reason):
    from tests.db.test_structures_store import make_version

    version_id = make_version(structures_url, ["NaCl"])
    before = row_counts(structures_url)
    at = structures_page(app_test, version_id)
    _library_upload(at, [(name, data, "application/octet-stream")])
    (message,) = errors(at)
    assert message.startswith(f"Refused: {name}: ") and reason in message, message
    assert message.endswith("Nothing was changed.")
    assert row_counts(structures_url) == before


def test_structures_attach_without_a_file(app_test, structures_url):
    from tests.db.test_structures_store import make_version

    version_id = make_version(structures_url, ["LiF"])
    at = structures_page(app_test, version_id)
    at.button(key="structures_match_all").click().run()
    before = row_counts(structures_url)
    at.button(key="structures_attach").click().run()
    assert not at.exception, at.exception
    assert at.warning[0].value == "Choose a CIF file to attach first."
    assert row_counts(structures_url) == before


def _attach(app_test, url: str, formula: str, name: str, cif: bytes):
    from tests.db.test_structures_store import make_version

    version_id = make_version(url, [formula])
    at = structures_page(app_test, version_id)
    at.button(key="structures_match_all").click().run()
    before = row_counts(url)
    uploader = next(w for w in at.get("file_uploader") if w.key == "structures_attach_upload")
    uploader.set_value((name, cif, "chemical/x-cif"))
    at.button(key="structures_attach").click().run()
    return at, before


def test_structures_attach_a_cif_of_another_compound(app_test, structures_url):
    at, before = _attach(app_test, structures_url, "LiF", "nacl.cif", ROCK_SALT_NACL_CIF)
    assert not at.exception, at.exception
    assert errors(at), texts(at)
    assert errors(at)[0].startswith("Refused: nacl.cif: its composition NaCl is not that of row 2 (LiF")
    assert errors(at)[0].endswith("Nothing was changed.")
    assert row_counts(structures_url) == before


def test_structures_attached_cif_with_isolated_atoms_does_not_crash_the_page(app_test, structures_url):
    """Not a refusal: a 2-site cell with 4.9 Å between its atoms is a valid structure; the 3D view says why it
    draws no bonds instead of failing (it used to raise in pymatgen's MinimumDistanceNN)."""
    at, _ = _attach(app_test, structures_url, "NaCl", "sparse.cif", NACL_CIF)
    assert not at.exception, at.exception
    assert at.success[0].value.startswith("Attached sparse.cif and accepted it")
    assert any("no bonds (an atom has no neighbour within" in c.value for c in at.caption)
