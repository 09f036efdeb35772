"""Issue 16, item 5: the Training page checks the split of every seed before launch and says where validation
comes from. (Grouped is preselected when compositions repeat: test_training_page.py,
test_split_defaults_to_grouped_when_compositions_repeat_and_says_why.)"""

from __future__ import annotations

import os

from db.engine import session_scope
from db.models import Entry
from tests.jobs.conftest import make_dataset
from tests.pages.test_training_page import PAGE, _selectbox, texts


def _page_with_labels(app_test, labels: list[str]):
    """The Training page on 12 toy rows (rows 0, 3, 6, 9 with a structure) whose split column holds ``labels``."""
    url = os.environ["COSNET_DATABASE_URL"]
    version_id = make_dataset(url, n=12)
    with session_scope(url) as session:
        entries = (session.query(Entry).filter(Entry.dataset_version_id == version_id, Entry.status == "kept")
                   .order_by(Entry.row_number).all())
        for entry, label in zip(entries, labels, strict=True):
            entry.split = label
    at = app_test()
    at.switch_page(PAGE)
    at.session_state["active_dataset_version_id"] = version_id
    at.run()
    assert not at.exception, at.exception
    _selectbox(at, "Split").set_value("column").run()
    assert not at.exception, at.exception
    return at


def _launch(at):
    return next(b for b in at.button if b.label == "Launch study")


def _errors(at) -> str:
    return "\n".join(e.value for e in at.error)


def test_a_split_column_without_train_rows_is_refused_on_the_form(app_test, app_env):
    at = _page_with_labels(app_test, ["val"] * 8 + ["test"] * 4)
    assert "Cannot launch: the column split cannot be made: the split column has no 'train' row" in _errors(at)
    assert _launch(at).disabled


def test_too_few_validation_rows_are_refused_and_the_source_of_validation_is_stated(app_test, app_env):
    at = _page_with_labels(app_test, ["train"] * 9 + ["val"] + ["test"] * 2)
    assert "seed 0: the column split leaves 1 validation row(s); at least 2 are needed" in _errors(at)
    assert _launch(at).disabled
    assert "Validation: the 1 row(s) labelled 'val' in the split column" in texts(at)


def test_validation_carved_from_train_when_the_column_has_no_val(app_test, app_env):
    at = _page_with_labels(app_test, ["train"] * 9 + ["test"] * 3)  # row 9 (a structure) is a test row
    assert not _errors(at), _errors(at)
    assert not _launch(at).disabled
    assert "the split column labels no row 'val', so each seed moves 25% of the 'train' rows" in texts(at)
    _selectbox(at, "Split").set_value("random").run()
    assert "the test rows (20%) are drawn once and shared by every seed; each seed then draws its own validation " \
           "rows, 25% of the other rows (at random)" in texts(at)


def test_a_test_split_without_structures_is_refused_for_a_bimodal_study_only(app_test, app_env):
    at = _page_with_labels(app_test, ["train"] * 8 + ["val"] * 2 + ["test"] * 2)  # rows 10, 11: no structure
    assert "no test row of the column split has a structure (2 test rows): a bimodal study could not be scored" \
        in _errors(at)
    assert _launch(at).disabled
    at.multiselect[0].set_value(["composition"]).run()  # a composition-only study needs no structure
    assert not _errors(at), _errors(at)
    assert not _launch(at).disabled


def test_a_drawn_split_whose_test_rows_have_no_structure_is_a_warning(app_test, app_env):
    at = _page_with_labels(app_test, ["train"] * 12)
    _selectbox(at, "Split").set_value("random").run()  # seed 0 draws 3 test rows of 12, none of rows 0, 3, 6, 9
    assert any("test rows of this random split has a structure" in w.value for w in at.warning)
    assert not _launch(at).disabled
    at.multiselect[0].set_value(["composition"]).run()
    assert not any("test rows of this random split" in w.value for w in at.warning)
