"""The structure store: library import (validation, deduplication), match results, review decisions, coverage.

The always-run tests build small structures with pymatgen; the real-data tests import OBELiX CIFs and rows of the
shared Materials Project library (``shared_data`` fixture). Every refused input is checked for its message and for
an unchanged database.
"""

from __future__ import annotations

import gzip
import io
import zipfile

import pandas as pd
import pytest
from pymatgen.core import Lattice
from pymatgen.core import Structure as PymatgenStructure
from pymatgen.io.cif import CifWriter
from sqlalchemy import func, select

from db import structures as store
from db.engine import session_scope
from db.models import Dataset, DatasetVersion, Entry, MatchCandidate, ReviewDecision, Structure

# -- shared helpers (also used by the job and page tests) ----------------------------------------------------------


def rock_salt(a: float = 5.64, cation: str = "Na", anion: str = "Cl") -> PymatgenStructure:
    """Conventional rock-salt cell (8 sites)."""
    return PymatgenStructure.from_spacegroup("Fm-3m", Lattice.cubic(a), [cation, anion], [[0, 0, 0], [0.5, 0.5, 0.5]])


def diamond_si() -> PymatgenStructure:
    return PymatgenStructure.from_spacegroup("Fd-3m", Lattice.cubic(5.47), ["Si"], [[0, 0, 0]])


def rutile_tio2() -> PymatgenStructure:
    return PymatgenStructure.from_spacegroup(
        "P4_2/mnm", Lattice.tetragonal(4.59, 2.96), ["Ti", "O"], [[0, 0, 0], [0.305, 0.305, 0]]
    )


def anatase_tio2() -> PymatgenStructure:
    return PymatgenStructure.from_spacegroup(
        "I4_1/amd", Lattice.tetragonal(3.78, 9.51), ["Ti", "O"], [[0, 0.75, 0.125], [0, 0.75, 0.3333]]
    )


def cif_bytes(structure: PymatgenStructure) -> bytes:
    return str(CifWriter(structure)).encode()


def make_version(url: str, formulas: list[str], *, name: str = "test set", statuses: list[str] | None = None) -> int:
    """A dataset version with one kept entry per formula (row numbers from 2, as in a spreadsheet)."""
    with session_scope(url) as session:
        dataset = Dataset(name=name)
        version = DatasetVersion(dataset=dataset, number=1, n_rows=len(formulas), n_kept=len(formulas))
        session.add(version)
        for position, formula in enumerate(formulas):
            status = statuses[position] if statuses else "kept"
            session.add(
                Entry(
                    dataset_version=version, row_number=position + 2, raw_formula=formula, composition=formula,
                    target=1.0, status=status,
                )
            )
        session.flush()
        return version.id


def entry_ids(url: str, version_id: int) -> dict[str, int]:
    with session_scope(url) as session:
        return dict(
            session.execute(
                select(Entry.raw_formula, Entry.id).where(Entry.dataset_version_id == version_id)
            ).all()
        )


def db_snapshot(url: str) -> tuple:
    """Counts and states that must not change when an input is refused."""
    with session_scope(url) as session:
        return (
            session.scalar(select(func.count(Structure.id))),
            session.scalar(select(func.count(MatchCandidate.id))),
            session.scalar(select(func.count(ReviewDecision.id))),
            tuple(session.execute(select(Entry.id, Entry.structure_id, Entry.match_state).order_by(Entry.id)).all()),
            tuple(session.execute(select(MatchCandidate.id, MatchCandidate.status).order_by(MatchCandidate.id)).all()),
        )


def small_library_uploads() -> list[tuple[str, bytes]]:
    """NaCl, a 2x1x1 supercell of the same NaCl (a StructureMatcher duplicate), Si, and two TiO2 polymorphs."""
    return [
        ("NaCl.cif", cif_bytes(rock_salt())),
        ("NaCl-supercell.cif", cif_bytes(rock_salt().make_supercell([2, 1, 1], in_place=False))),
        ("Si.cif", cif_bytes(diamond_si())),
        ("TiO2-rutile.cif", cif_bytes(rutile_tio2())),
        ("TiO2-anatase.cif", cif_bytes(anatase_tio2())),
    ]


@pytest.fixture()
def url(app_env) -> str:
    return f"sqlite:///{app_env / 'cosnet.db'}"


# -- library import ------------------------------------------------------------------------------------------------


def test_import_cifs_deduplicates_with_structure_matcher(url):
    report = store.import_library(url, small_library_uploads(), created_by="ada")
    assert report.n_read == 5
    assert report.n_added == 4
    assert report.duplicates == {"NaCl-supercell.cif": "NaCl.cif"}
    with session_scope(url) as session:
        rows = session.execute(select(Structure.external_id, Structure.formula, Structure.in_library,
                                      Structure.spacegroup_number, Structure.nsites, Structure.created_by)).all()
    by_id = {row[0]: row for row in rows}
    assert set(by_id) == {"NaCl.cif", "Si.cif", "TiO2-rutile.cif", "TiO2-anatase.cif"}
    assert by_id["NaCl.cif"][1:] == ("NaCl", True, 225, 8, "ada")
    assert by_id["TiO2-rutile.cif"][3] == 136
    library = store.library_source(url)
    assert [c.external_id for c in library.search_formula("TiO2")] == ["TiO2-rutile.cif", "TiO2-anatase.cif"]
    assert library.search_formula("Cl4Na4")[0].external_id == "NaCl.cif"

    # Importing the same files again adds nothing (identical content hashes) and leaves the library as it was.
    again = store.import_library(url, small_library_uploads()[:2])
    assert (again.n_added, again.n_duplicates) == (0, 2)
    assert store.library_source(url) is library  # the cached library: its version key did not change


def test_import_zip_and_csv_table(url):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("cifs/LiF.cif", cif_bytes(rock_salt(4.03, "Li", "F")))
        archive.writestr("cifs/readme.txt", "not a structure")
        archive.writestr("__MACOSX/._LiF.cif", "junk")
    table = pd.DataFrame(
        {
            "material_id": ["mp-22862", "mp-149"],
            "cif": [cif_bytes(rock_salt()).decode(), cif_bytes(diamond_si()).decode()],
            "energy_above_hull": ["0.0", "0.01"],
            "theoretical": ["False", "True"],
        }
    )
    csv_gz = gzip.compress(table.to_csv(index=False).encode())
    report = store.import_library(url, [("lif.zip", buffer.getvalue()), ("mp.csv.gz", csv_gz)])
    assert (report.n_read, report.n_added) == (3, 3)
    with session_scope(url) as session:
        rows = {r.external_id: r for r in session.scalars(select(Structure))}
    assert rows["LiF.cif"].formula == "LiF"
    assert rows["mp-149"].theoretical is True and rows["mp-149"].energy_above_hull == pytest.approx(0.01)
    assert rows["mp-22862"].theoretical is False


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("broken.cif", b"data_broken\n_cell_length_a 5\nthis is not a cif loop\n", "broken.cif"),
        ("empty.cif", b"   \n", "empty.cif: the file is empty"),
        ("structures.xlsx", b"PK", "unknown file type"),
        ("table.csv", b"name,formula\nx,NaCl\n", "needs an id column"),
    ],
)
def test_bad_library_files_are_refused_and_change_nothing(url, name, data, message):
    store.import_library(url, [("Si.cif", cif_bytes(diamond_si()))])
    before = db_snapshot(url)
    with pytest.raises(store.StructureStoreError) as raised:
        store.import_library(url, [("NaCl.cif", cif_bytes(rock_salt())), (name, data)])
    assert message in str(raised.value)
    assert db_snapshot(url) == before  # the good NaCl file of the same upload was not stored either


def test_too_many_sites_under_a_small_limit(url, monkeypatch):
    big = rock_salt().make_supercell([2, 2, 2], in_place=False)  # 64 sites
    with pytest.raises(store.StructureStoreError) as raised:
        store.import_library(url, [("big.cif", cif_bytes(big))], max_sites=20)
    assert str(raised.value).startswith("big.cif: it has 64 sites, more than the limit of 20")
    monkeypatch.setenv(store.MAX_SITES_ENV, "5")
    with pytest.raises(store.StructureStoreError, match="it has 8 sites, more than the limit of 5"):
        store.import_library(url, [("NaCl.cif", cif_bytes(rock_salt()))])
    assert db_snapshot(url)[0] == 0


def test_zip_with_path_traversal_is_refused(url):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("good.cif", cif_bytes(rock_salt()))
        archive.writestr("../../etc/evil.cif", cif_bytes(diamond_si()))
    with pytest.raises(store.StructureStoreError) as raised:
        store.import_library(url, [("evil.zip", buffer.getvalue())])
    assert "evil.zip: ../../etc/evil.cif" in str(raised.value) and "path traversal" in str(raised.value)
    assert db_snapshot(url)[0] == 0


def test_table_row_errors_name_the_row(url):
    table = pd.DataFrame({"material_id": ["a", "b"], "cif": [cif_bytes(diamond_si()).decode(), "garbage"]})
    with pytest.raises(store.StructureStoreError, match=r"lib.csv row 2 \(b\)"):
        store.import_library(url, [("lib.csv", table.to_csv(index=False).encode())])
    assert db_snapshot(url)[0] == 0


# -- matching results and decisions --------------------------------------------------------------------------------


def _match_and_store(url, version_id, *, rule="never"):
    from cosnet_core.matching import match_composition

    library = store.library_source(url)
    todo = store.entries_to_match(url, version_id)
    results = [(entry_id, match_composition(formula, [library])) for entry_id, formula in todo]
    return store.store_match_results(url, results, auto_accept_rule=rule, reviewer="ada")


def _candidates(url, entry_id):
    return store.entry_detail(url, entry_id)["candidates"]


def test_match_results_states_and_auto_accept(url):
    store.import_library(url, small_library_uploads())
    version = make_version(url, ["NaCl", "TiO2", "Na1.02Cl0.98", "Si", "Xe", "Na0.98K0.02Cl"])
    ids = entry_ids(url, version)
    counts = _match_and_store(url, version, rule="unambiguous")
    assert counts.n_entries == 6
    assert counts.n_auto_accepted == 2  # NaCl and Si: one exact candidate each
    assert dict(counts.states) == {"unambiguous": 2, "ambiguous": 1, "approximate": 2, "no_candidate": 1}
    states = store.entry_table(url, version).set_index("formula")["state"].to_dict()
    assert states == {
        "NaCl": "accepted", "TiO2": "ambiguous", "Na1.02Cl0.98": "approximate", "Si": "accepted",
        "Xe": "no_candidate", "Na0.98K0.02Cl": "approximate",
    }
    approx = _candidates(url, ids["Na1.02Cl0.98"])
    assert len(approx) == 1 and approx[0]["match"] == "approximate"
    assert approx[0]["composition_distance"] == pytest.approx(0.01)  # ½ (|0.51-0.5| + |0.49-0.5|)
    doped = _candidates(url, ids["Na0.98K0.02Cl"])
    assert doped[0]["external_id"] == "NaCl.cif" and doped[0]["composition_distance"] == pytest.approx(0.01)
    assert store.coverage(url, version) == store.Coverage(2, 6)
    with session_scope(url) as session:
        auto = session.scalars(select(ReviewDecision).where(ReviewDecision.entry_id == ids["NaCl"])).one()
    assert (auto.action, auto.status, auto.reviewer) == ("auto_accept", "accepted", "ada")
    assert auto.decided_at is not None

    # Matching again leaves reviewed entries alone and does not duplicate candidates.
    again = _match_and_store(url, version)
    assert again.n_entries == 4 and again.n_candidates == 0 and again.n_auto_accepted == 0
    assert len(_candidates(url, ids["TiO2"])) == 2


def test_accept_reject_choose_revert_and_coverage(url):
    store.import_library(url, small_library_uploads())
    version = make_version(url, ["TiO2", "NaCl", "Si"])
    ids = entry_ids(url, version)
    _match_and_store(url, version)
    assert store.coverage(url, version).n_with_structure == 0
    before_any = db_snapshot(url)

    rutile, anatase = _candidates(url, ids["TiO2"])
    assert rutile["external_id"] == "TiO2-rutile.cif"  # fewer sites ranks first (6 vs 12)
    accept = store.accept_candidate(url, rutile["candidate_id"], reviewer="ada")
    assert store.coverage(url, version) == store.Coverage(1, 3)
    choose = store.accept_candidate(url, anatase["candidate_id"], reviewer="bob")
    detail = store.entry_detail(url, ids["TiO2"])
    assert detail["structure_id"] == anatase["structure_id"] and detail["state"] == "accepted"
    assert [c["status"] for c in detail["candidates"]] == ["pending", "accepted"]
    with pytest.raises(store.StructureStoreError, match="already the accepted structure"):
        store.accept_candidate(url, anatase["candidate_id"])

    reject = store.reject_entry(url, ids["NaCl"], reviewer="ada", note="wrong phase")
    assert store.entry_detail(url, ids["NaCl"])["state"] == "rejected"

    history = store.decision_table(url, version_id=version)
    assert list(history["action"]) == ["reject", "choose", "accept"]
    assert list(history["reviewer"]) == ["ada", "bob", "ada"]
    assert history["decided_at"].notna().all() and history["in_effect"].all()

    # Reverting "choose" brings back the rutile acceptance; reverting the revert re-applies the choice.
    revert = store.revert_decision(url, choose, reviewer="carol")
    detail = store.entry_detail(url, ids["TiO2"])
    assert detail["structure_id"] == rutile["structure_id"]
    assert [c["status"] for c in detail["candidates"]] == ["accepted", "pending"]
    with pytest.raises(store.StructureStoreError, match=f"decision {choose}: is already reverted"):
        store.revert_decision(url, choose)
    redo = store.revert_decision(url, revert, reviewer="carol")
    assert store.entry_detail(url, ids["TiO2"])["structure_id"] == anatase["structure_id"]
    with session_scope(url) as session:
        row = session.get(ReviewDecision, redo)
        assert (row.action, row.reverts_id, row.reviewer) == ("revert", revert, "carol")

    # Reverting everything returns each entry to the matcher's state and zero coverage.
    store.revert_decision(url, redo)
    store.revert_decision(url, accept)
    store.revert_decision(url, reject)
    assert store.coverage(url, version).n_with_structure == 0
    after = db_snapshot(url)
    assert after[3] == before_any[3] and after[4] == before_any[4]
    assert after[2] == before_any[2] + 8  # decisions are never deleted


def test_reject_accepted_candidate_clears_structure(url):
    store.import_library(url, small_library_uploads())
    version = make_version(url, ["Si"])
    (entry_id,) = entry_ids(url, version).values()
    _match_and_store(url, version, rule="unambiguous")
    (candidate,) = _candidates(url, entry_id)
    assert candidate["status"] == "accepted"
    store.reject_candidate(url, candidate["candidate_id"], reviewer="ada")
    detail = store.entry_detail(url, entry_id)
    assert detail["structure_id"] is None and detail["state"] == "rejected"
    assert store.coverage(url, version) == store.Coverage(0, 1)


def test_attach_own_cif_and_bad_attachments(url):
    version = make_version(url, ["LiF", "NaCl"])
    ids = entry_ids(url, version)
    before = db_snapshot(url)
    with pytest.raises(store.StructureStoreError, match="broken.cif"):
        store.attach_structure(url, ids["LiF"], "broken.cif", b"data_x\nnonsense\n")
    with pytest.raises(store.StructureStoreError, match="more than the limit of 4"):
        store.attach_structure(url, ids["LiF"], "LiF.cif", cif_bytes(rock_salt(4.03, "Li", "F")), max_sites=4)
    with pytest.raises(store.StructureStoreError, match="attach a .cif file"):
        store.attach_structure(url, ids["LiF"], "LiF.txt", b"x")
    assert db_snapshot(url) == before

    decision = store.attach_structure(url, ids["LiF"], "my-LiF.cif", cif_bytes(rock_salt(4.03, "Li", "F")),
                                      reviewer="ada")
    detail = store.entry_detail(url, ids["LiF"])
    (candidate,) = detail["candidates"]
    assert (candidate["source"], candidate["external_id"], candidate["match"]) == ("upload", "my-LiF.cif", "exact")
    assert detail["structure_id"] == candidate["structure_id"]
    assert store.coverage(url, version) == store.Coverage(1, 2)
    store.revert_decision(url, decision)
    assert store.coverage(url, version) == store.Coverage(0, 2)


def test_bulk_accept_rules(url):
    store.import_library(url, small_library_uploads())
    version = make_version(url, ["NaCl", "Si", "TiO2", "Na1.02Cl0.98"])
    _match_and_store(url, version)
    assert store.bulk_accept(url, version, "unambiguous_exact", reviewer="ada") == 2
    assert store.coverage(url, version) == store.Coverage(2, 4)
    assert store.bulk_accept(url, version, "top_exact") == 1  # TiO2: the top-ranked exact (rutile)
    states = store.entry_table(url, version, "accepted")
    assert sorted(states["formula"]) == ["NaCl", "Si", "TiO2"]
    assert store.entry_table(url, version, "approximate")["formula"].tolist() == ["Na1.02Cl0.98"]
    with pytest.raises(store.StructureStoreError, match="is not one of"):
        store.bulk_accept(url, version, "everything")


def test_entries_not_kept_take_no_structure_and_do_not_count(url):
    store.import_library(url, small_library_uploads())
    version = make_version(url, ["NaCl", "Si"], statuses=["kept", "rejected"])
    assert [formula for _, formula in store.entries_to_match(url, version)] == ["NaCl"]
    assert store.coverage(url, version).n_kept == 1
    with pytest.raises(store.StructureStoreError, match="does not exist"):
        store.entries_to_match(url, 999)


# -- real data -------------------------------------------------------------------------------------------------


def test_real_obelix_cifs_and_mp_library_rows(url, shared_data):
    cif_dir = shared_data / "li_conductivity" / "cifs"
    names = sorted(path.name for path in cif_dir.glob("*.cif"))[:6]
    uploads = [(name, (cif_dir / name).read_bytes()) for name in names]
    report = store.import_library(url, uploads, max_sites=400)
    assert report.n_read == 6 and report.n_added + report.n_duplicates == 6
    report_csv = shared_data / "li_conductivity" / "cif_report.csv"
    expected = pd.read_csv(report_csv).set_index("ID")
    with session_scope(url) as session:
        rows = {r.external_id: r for r in session.scalars(select(Structure))}
    for name in report.added_ids:
        assert rows[name].nsites == expected.loc[name.removesuffix(".cif"), "nsites"]
        assert rows[name].is_ordered == bool(expected.loc[name.removesuffix(".cif"), "is_ordered"])

    frame = pd.read_csv(shared_data / "mp_structures" / "mp_structure_library.csv.gz", dtype=str).head(25)
    before = db_snapshot(url)[0]
    table = store.import_library(url, [("mp25.csv", frame.to_csv(index=False).encode())])
    assert table.n_read == 25 and db_snapshot(url)[0] == before + table.n_added + table.n_joined
    version = make_version(url, [frame.loc[0, "reduced_formula"], frame.loc[1, "reduced_formula"]])
    _match_and_store(url, version)
    table_rows = store.entry_table(url, version)
    assert (table_rows["exact"] >= 1).all()
    first = store.entry_detail(url, int(table_rows.loc[0, "entry_id"]))
    assert frame.loc[0, "material_id"] in {c["external_id"] for c in first["candidates"]}
