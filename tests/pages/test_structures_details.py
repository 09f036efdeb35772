"""Structures page details (issue 16, item 8): a row with an accepted CIF never says "No candidate"; revert asks
for confirmation and stays on the row; approximate candidates show their composition distance and can be accepted
in bulk under a threshold; one upload limit on every uploader. (A finished library import saying so is checked in
``test_structures_page.py::test_large_library_upload_becomes_a_job``.)"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from db import structures as store
from db.engine import session_scope
from db.models import ReviewDecision
from tests.db.test_structures_store import (
    cif_bytes,
    entry_ids,
    make_version,
    rock_salt,
    small_library_uploads,
)
from tests.pages.test_structures_page import click, open_page, selectbox, uploader
from tests.pages.test_structures_page import url as url  # noqa: F401  (the page tests' fixture)
from ui import structures_view as view


def _texts(at) -> str:
    return "\n".join(e.value for kind in ("info", "success", "warning", "error") for e in at.get(kind))


def _with_dataset_cif(url: str, entry_id: int) -> None:
    """Give a row the structure its dataset's CIF zip brought (as the Datasets import does: accepted, no decision)."""
    from db.models import Entry

    with session_scope(url) as session:
        (stored,) = store.store_candidates(session, [_candidate()], created_by="local")
        entry = session.get(Entry, entry_id)
        entry.structure_id, entry.match_state = stored.id, "accepted"


def _candidate():
    from cosnet_core.sources.base import StructureCandidate

    structure = rock_salt(4.03, "Li", "F")
    return StructureCandidate(source="dataset", external_id="LiF.cif", structure=structure,
                              formula=structure.composition.reduced_formula)


def test_a_row_with_an_accepted_cif_never_says_no_candidate(app_test, url):  # noqa: F811
    version = make_version(url, ["LiF", "Xe"])
    ids = entry_ids(url, version)
    _with_dataset_cif(url, ids["LiF"])
    at = open_page(app_test, version)  # not matched yet: the row has its CIF and no candidate at all
    selectbox(at, view.ENTRY_KEY).set_value(ids["LiF"]).run()
    assert "No candidate" not in _texts(at)
    assert "This row has an accepted structure" in _texts(at)
    selectbox(at, view.ENTRY_KEY).set_value(ids["Xe"]).run()
    assert "No candidate structure for this row" in _texts(at)  # a row without one still says so


def test_matching_counts_a_row_with_its_own_structure_apart_from_no_candidate(url):  # noqa: F811
    from pymatgen.core import Composition

    from cosnet_core.matching import MatchResult

    def nothing_found(formula: str) -> MatchResult:
        return MatchResult(formula, Composition(formula), Composition(formula).reduced_formula)

    version = make_version(url, ["LiF", "Xe"])
    ids = entry_ids(url, version)
    _with_dataset_cif(url, ids["LiF"])
    stored = store.store_match_results(url, [(ids["LiF"], nothing_found("LiF")), (ids["Xe"], nothing_found("Xe"))])
    assert dict(stored.states) == {"own_structure": 1, "no_candidate": 1}
    assert store.entry_detail(url, ids["LiF"])["state"] == "accepted"


def _matched(url: str, formulas: list[str]) -> tuple[int, dict[str, int]]:  # noqa: F811
    """A version over the small library, matched without auto-accept (the clicks are covered by the page tests)."""
    from jobs.matching import match_inline

    store.import_library(url, small_library_uploads())
    version = make_version(url, formulas)
    match_inline(url, {"dataset_version_id": version, "auto_accept": "never", "sources": ["library", "dataset"]})
    return version, entry_ids(url, version)


def test_revert_asks_first_and_stays_on_the_row(app_test, url):  # noqa: F811
    version, ids = _matched(url, ["Si", "NaCl", "TiO2"])
    (candidate,) = store.entry_detail(url, ids["NaCl"])["candidates"]
    store.accept_candidate(url, candidate["candidate_id"])
    at = app_test(timeout=180)
    at.switch_page("pages/structures.py")
    at.session_state["active_dataset_version_id"] = version
    at.session_state[view.FILTER_KEY] = "accepted"
    at.run()
    assert not at.exception, at.exception
    assert selectbox(at, view.ENTRY_KEY).value == ids["NaCl"]

    click(at, "structures_revert")  # "Revert…": only asks
    assert store.entry_detail(url, ids["NaCl"])["state"] == "accepted"
    assert any("Revert decision" in w.value for w in at.warning)
    click(at, "structures_revert_cancel")  # "Keep it"
    assert not any("Revert decision" in w.value for w in at.warning)
    assert store.entry_detail(url, ids["NaCl"])["state"] == "accepted"

    click(at, "structures_revert")
    click(at, "structures_revert_confirm")
    assert "Reverted decision" in at.success[0].value
    assert store.entry_detail(url, ids["NaCl"])["state"] == "unambiguous"
    # the row left the "accepted" category; the page shows all rows and keeps this one selected
    assert at.radio(key=view.FILTER_KEY).value == "all"
    assert selectbox(at, view.ENTRY_KEY).value == ids["NaCl"]
    assert at.subheader[-2].value.startswith("Row 3: NaCl")


def test_approximate_candidates_show_their_distance_and_bulk_accept_under_a_threshold(app_test, url):  # noqa: F811
    version, ids = _matched(url, ["Na1.02Cl0.98", "Na1.2Cl0.8", "NaCl"])
    at = open_page(app_test, version)
    near = store.entry_detail(url, ids["Na1.02Cl0.98"])["candidates"][0]
    assert near["match"] == "approximate" and 0 < near["composition_distance"] < 0.05
    far = store.entry_detail(url, ids["Na1.2Cl0.8"])["candidates"]
    selectbox(at, view.ENTRY_KEY).set_value(ids["Na1.02Cl0.98"]).run()
    assert f"approximate, distance {near['composition_distance']:.3f}" in selectbox(at, view.CANDIDATE_KEY).options[0]

    selectbox(at, view.BULK_RULE_KEY).set_value("approximate_within").run()
    at.number_input(key=view.BULK_DISTANCE_KEY).set_value(round(near["composition_distance"] / 2, 3)).run()
    assert "0 row(s) would be accepted now." in [c.value for c in at.caption]
    assert at.button(key="structures_bulk_accept").disabled
    threshold = 0.05
    at.number_input(key=view.BULK_DISTANCE_KEY).set_value(threshold).run()
    expected = 1 + int(bool(far) and far[0]["composition_distance"] <= threshold)
    assert f"{expected} row(s) would be accepted now." in [c.value for c in at.caption]
    click(at, "structures_bulk_accept")
    assert f"Accepted {expected} rows by the rule (composition distance ≤ 0.05)." in at.success[0].value
    assert store.entry_detail(url, ids["Na1.02Cl0.98"])["state"] == "accepted"
    assert store.entry_detail(url, ids["NaCl"])["state"] == "unambiguous"  # exact rows are not this rule's
    with session_scope(url) as session:
        notes = session.scalars(select(ReviewDecision.note)).all()
    assert all("distance ≤ 0.05" in note for note in notes) and len(notes) == expected


@pytest.mark.parametrize("distance", [None, 0.0, 0.5])
def test_the_threshold_rule_refuses_a_missing_or_out_of_range_distance(url, distance):  # noqa: F811
    version = make_version(url, ["NaCl"])
    with pytest.raises(store.StructureStoreError, match="composition distance"):
        store.bulk_accept(url, version, "approximate_within", max_distance=distance)


def test_one_upload_limit_on_every_uploader(app_test, url, monkeypatch):  # noqa: F811
    monkeypatch.setenv("COSNET_MAX_UPLOAD_MB", "1")
    version = make_version(url, ["NaCl"])
    at = open_page(app_test, version)
    limits = {widget.key: widget.proto.max_upload_size_mb for widget in at.get("file_uploader")}
    assert limits == {view.LIBRARY_UPLOAD: 1, view.ATTACH_UPLOAD: 1}
    big = cif_bytes(rock_salt()) + b"#" * (1024 * 1024)
    uploader(at, view.LIBRARY_UPLOAD).set_value(("big.cif", big, "chemical/x-cif"))
    click(at, "structures_import")
    assert "big.cif is 1.0 MB, above the upload limit of 1 MB" in at.error[0].value
    assert store.library_version_key(url)[0] == 0
