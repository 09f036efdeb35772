"""Issue 14, item 4: user text (dataset names, user names, formulas, column names, CIF member names) reaches
markdown only through ui.text.md_escape: no image, link or HTML from any of them, and the text stays readable."""

from __future__ import annotations

import re

import pytest

from cosnet_core.ingest import CleaningOptions, ColumnMapping, clean_table, read_table
from db import datasets as store
from db.users import create_user
from tests.cosnet_core.ingest_files import zip_archive
from tests.pages.cif_reading import finish_cif_reading
from tests.pages.isolation_fixtures import PASSWORD, login
from tests.pages.test_predict_page import trained_artifacts, trained_study  # noqa: F401  (module fixtures)
from ui.text import md_escape

IMAGE, LINK, HTML = "![x](http://host/p.png)", "[link](http://x)", "<img src=x>"
PAYLOADS = (IMAGE, LINK, HTML)


def markdown_bodies(at) -> list[str]:
    """Every string of the page that Streamlit renders as markdown (text elements, messages, radio options)."""
    kinds = ("markdown", "caption", "title", "header", "subheader", "success", "info", "warning", "error", "toast")
    bodies = [str(e.value) for kind in kinds for e in at.get(kind)]
    bodies += [str(e.value) for e in at.sidebar.get("caption")]
    bodies += [str(o) for r in at.radio for o in r.options]
    return bodies


def assert_shown_as_text(at, payload: str) -> None:
    bodies = markdown_bodies(at)
    assert not [b for b in bodies if payload in b or re.search(r"(?<!\\)<img", b)], "unescaped user text"
    assert any(md_escape(payload) in b for b in bodies), "the text itself should still be shown"


def test_md_escape_turns_markup_into_text():
    assert md_escape(IMAGE) == r"!\[x\](http\://host/p.png)"
    assert md_escape(LINK) == r"\[link\](http\://x)"
    assert md_escape(HTML) == r"\<img src=x\>"
    assert md_escape("see www.x.org or a@b.org") == r"see www\.x.org or a\@b.org"  # no bare autolink either
    assert md_escape("(Li2S)0.75(P2S5)0.25 row_2") == "(Li2S)0.75(P2S5)0.25 row_2"  # ordinary text unchanged
    assert md_escape("a\n# heading") == r"a \# heading"  # no new block from a line break
    assert md_escape(None) == ""


@pytest.mark.parametrize("payload", PAYLOADS)
def test_user_name_in_the_sidebar(app_test, monkeypatch, payload):
    monkeypatch.setenv("COSNET_AUTH", "accounts")
    create_user(payload, PASSWORD)
    at = login(app_test, payload)
    assert any(f"Logged in as {md_escape(payload)}" in c.value for c in at.sidebar.caption)
    assert_shown_as_text(at, payload)


@pytest.mark.parametrize("payload", PAYLOADS)
def test_dataset_name_file_name_column_name_and_owner_on_the_datasets_page(app_test, app_env, payload):
    table = f"formula,{payload}\nNaCl,1.0\nKCl,2.0\n".encode()
    raw = read_table(table, f"{payload}.csv")
    result = clean_table(raw, ColumnMapping(formula="formula", target=payload), CleaningOptions())
    store.create_dataset(None, result, name=payload, created_by=payload)
    at = app_test()
    at.run()
    assert not at.exception, at.exception
    summary = next(s.value for s in at.subheader if s.value.startswith("Summary of"))
    assert summary == f"Summary of {md_escape(payload)} · v1"
    imported = next(c.value for c in at.caption if c.value.startswith("Imported from"))
    assert imported.count(md_escape(payload)) == 3  # file name (stem), importer and target column
    at.checkbox[-1].check().run()  # the delete confirmation names the dataset in a warning
    assert_shown_as_text(at, payload)


@pytest.mark.parametrize("payload", ["![x](p.png)", "[link](x)", HTML])  # zip members cannot hold "//"
def test_cif_member_name_in_the_upload_preview(app_test, app_env, payload):
    member = f"{payload}.cif"
    table = f"formula,target,cif\nNaCl,1.0,{member}\n".encode()
    at = app_test()
    at.run()
    at.file_uploader[0].set_value(("t.csv", table, "text/csv"))
    at.file_uploader[1].set_value(("s.zip", zip_archive({member: b"not a cif"}), "application/zip"))
    finish_cif_reading(at.run())
    assert any("cannot be read" in w.value and md_escape(member) in w.value for w in at.warning)
    assert_shown_as_text(at, payload)


@pytest.mark.parametrize("payload", PAYLOADS)
def test_formula_in_predict_messages(trained_study, app_test, payload):  # noqa: F811
    at = app_test(timeout=120)
    at.switch_page("pages/predict.py")
    at.run()
    at.text_input[0].input(payload).run()
    next(b for b in at.button if b.label == "Predict").click().run()
    assert not at.exception, at.exception
    assert at.error and at.error[0].value.startswith("Cannot predict")
    assert_shown_as_text(at, payload)
