"""Tests of the structure sources: candidates, the local library (CIFs, zip, tables, dedup, persistence), the
dataset's structures, and the Materials Project through the real ``mp-api`` client against a local fake server."""

from __future__ import annotations

import functools
import logging
import socket
import zipfile

import pytest
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Lattice, Structure
from pymatgen.io.cif import CifWriter

from cosnet_core.matching import match_composition
from cosnet_core.sources import (
    DatasetStructures,
    LibraryImportError,
    MaterialsProjectSource,
    SourceUnavailable,
    StructureCandidate,
    StructureLibrary,
    candidate_from_cif,
)
from tests.conftest import shared_data_dir
from tests.fake_mp_server import FAKE_API_KEY, FakeMaterialsProject, built_in_documents, library_documents

LIBRARY_CSV = "mp_structures/mp_structure_library.csv.gz"


@functools.cache
def nacl() -> Structure:
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


@functools.cache
def kcl() -> Structure:
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(6.29), ["K", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def translated(structure: Structure, vector=(0.13, 0.27, 0.41)) -> Structure:
    moved = structure.copy()
    moved.translate_sites(list(range(len(moved))), vector, frac_coords=True, to_unit_cell=True)
    return moved


def cif(structure: Structure) -> str:
    return str(CifWriter(structure))


# -- candidates ----------------------------------------------------------------------------------------------


def test_candidate_parses_cif_lazily_and_round_trips():
    candidate = StructureCandidate(
        source="library", external_id="nacl.cif", formula="NaCl", cif=cif(nacl()), spacegroup_number=225
    )
    assert candidate.structure is None  # nothing parsed yet
    assert candidate.spacegroup_symbol == "Fm-3m"
    structure = candidate.get_structure()
    assert structure.composition.reduced_formula == "NaCl" and candidate.nsites == 8
    assert candidate.get_structure() is structure
    assert len(candidate.get_content_hash()) == 64
    copy = StructureCandidate.from_dict(candidate.to_dict())
    assert copy.to_dict() == candidate.to_dict()
    assert StructureMatcher().fit(copy.get_structure(), structure)
    with pytest.raises(ValueError, match="unknown source 'icsd'"):
        StructureCandidate(source="icsd", external_id="x", formula="NaCl", cif="data_x")
    with pytest.raises(ValueError, match="neither a structure nor CIF"):
        StructureCandidate(source="library", external_id="x", formula="NaCl")
    with pytest.raises(ValueError, match="lacks cif"):
        StructureCandidate.from_dict({"source": "library", "external_id": "x", "formula": "NaCl"})


def test_uploaded_cif_becomes_an_upload_candidate():
    candidate = candidate_from_cif(cif(kcl()), "my_KCl.cif")
    assert (candidate.source, candidate.external_id, candidate.formula) == ("upload", "my_KCl.cif", "KCl")
    assert (candidate.spacegroup_symbol, candidate.nsites) == ("Fm-3m", 8)
    assert candidate.cif == cif(kcl())
    with pytest.raises(LibraryImportError, match="empty.cif: the text is empty"):
        candidate_from_cif("  \n\n", "empty.cif")


def test_broken_cif_names_the_candidate():
    from cosnet_core.structure import StructureError

    candidate = StructureCandidate(source="upload", external_id="bad.cif", formula="NaCl", cif="data_x\n_cell_length_a 1\n")
    with pytest.raises(StructureError, match="upload:bad.cif"):
        candidate.get_structure()


# -- local library -------------------------------------------------------------------------------------------


def test_dedup_merges_a_translated_copy_and_keeps_different_structures():
    library = StructureLibrary()
    added = library.extend(
        [
            StructureCandidate(source="library", external_id="a.cif", formula="NaCl", cif=cif(nacl())),
            StructureCandidate(source="library", external_id="b.cif", formula="NaCl", cif=cif(translated(nacl()))),
            StructureCandidate(source="library", external_id="c.cif", formula="KCl", cif=cif(kcl())),
        ]
    )
    assert added == 2 and len(library) == 2
    assert library.duplicates == {"b.cif": "a.cif"}
    assert library.get("b.cif").external_id == "a.cif"
    assert library.get("a.cif").duplicate_ids == ["b.cif"]
    assert [c.external_id for c in library.search_formula("NaCl")] == ["a.cif"]
    # One more copy (a primitive cell, translated) added on its own is also recognised.
    kept = library.add_cif(cif(translated(nacl().get_primitive_structure(), (0.5, 0.1, 0.0))), "d.cif")
    assert kept.external_id == "a.cif" and len(library) == 2
    # A distorted NaCl (c stretched by 40 %) is a different structure.
    stretched = Structure(Lattice.tetragonal(5.64, 7.9), nacl().species, nacl().frac_coords)
    assert library.add_cif(cif(stretched), "e.cif").external_id == "e.cif"
    assert len(library) == 3
    without = StructureLibrary()
    without.extend(
        [StructureCandidate(source="library", external_id=n, formula="NaCl", cif=cif(nacl())) for n in ("x", "y")],
        deduplicate=False,
    )
    assert len(without) == 2


def test_cif_zip_import(tmp_path):
    archive = tmp_path / "cifs.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("structures/NaCl.cif", cif(nacl()))
        handle.writestr("structures/NaCl_shifted.cif", cif(translated(nacl())))
        handle.writestr("KCl.CIF", cif(kcl()))
        handle.writestr("README.txt", "not a structure")
        handle.writestr("__MACOSX/structures/._NaCl.cif", "resource fork")
    library = StructureLibrary.from_zip(archive)
    assert sorted(c.external_id for c in library) == ["KCl.CIF", "NaCl.cif"]
    assert library.duplicates == {"NaCl_shifted.cif": "NaCl.cif"}
    entry = library.search_formula("KCl")[0]
    assert (entry.spacegroup_symbol, entry.spacegroup_number, entry.nsites) == ("Fm-3m", 225, 8)
    assert entry.source == "library" and len(entry.content_hash) == 64
    assert [c.external_id for c in library.search_chemsys(["Cl", "K"])] == ["KCl.CIF"]
    # The same bytes as an upload.
    assert len(StructureLibrary.from_zip(archive.read_bytes())) == 2

    broken = tmp_path / "broken.zip"
    with zipfile.ZipFile(broken, "w") as handle:
        handle.writestr("good.cif", cif(nacl()))
        handle.writestr("bad.cif", "data_bad\n_cell_length_a 3\n")
    with pytest.raises(LibraryImportError, match=r"broken.zip: bad.cif"):
        StructureLibrary.from_zip(broken)
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w") as handle:
        handle.writestr("notes.txt", "nothing")
    with pytest.raises(LibraryImportError, match="no .cif file"):
        StructureLibrary.from_zip(empty)
    with pytest.raises(LibraryImportError, match="uploaded zip: the file is not a valid zip archive"):
        StructureLibrary.from_zip(b"plain bytes")


def test_table_import_from_csv_and_json_and_errors(tmp_path):
    import pandas as pd

    frame = pd.DataFrame(
        {
            "material_id": ["mp-22862", "mp-23193"],
            "cif": [cif(nacl()), cif(kcl())],
            "energy_above_hull": [0.0, 0.01],
            "theoretical": ["False", "True"],
        }
    )
    csv_path = tmp_path / "lib.csv"
    frame.to_csv(csv_path, index=False)
    library = StructureLibrary.from_table(csv_path)  # no formula column: read from the CIFs
    kcl_entry = library.search_formula("KCl")[0]
    assert (kcl_entry.external_id, kcl_entry.energy_above_hull, kcl_entry.theoretical) == ("mp-23193", 0.01, True)
    json_path = tmp_path / "lib.json"
    frame.assign(reduced_formula=["NaCl", "KCl"]).to_json(json_path, orient="records")
    from_json = StructureLibrary.from_table(json_path)
    assert {c.external_id for c in from_json} == {"mp-22862", "mp-23193"}
    assert from_json.search_formula("NaCl")[0].structure is None  # formula given: CIF not parsed

    with pytest.raises(LibraryImportError, match="needs an id column"):
        StructureLibrary.from_table(frame.drop(columns=["cif"]), label="mine.csv")
    bad = frame.copy()
    bad.loc[1, "cif"] = "   "
    with pytest.raises(LibraryImportError, match=r"lib.csv row 2 \(mp-23193\): the 'cif' value is empty"):
        StructureLibrary.from_table(bad, label="lib.csv")
    broken = frame.copy()
    broken.loc[0, "cif"] = "data_broken\n_cell_length_a 2\n"
    with pytest.raises(LibraryImportError, match=r"row 1 \(mp-22862\)"):
        StructureLibrary.from_table(broken, label="lib.csv")


def test_records_round_trip_without_parsing():
    library = StructureLibrary()
    library.extend(
        [
            StructureCandidate(source="library", external_id="a", formula="NaCl", cif=cif(nacl())),
            StructureCandidate(source="library", external_id="b", formula="NaCl", cif=cif(translated(nacl()))),
            StructureCandidate(source="library", external_id="c", formula="KCl", cif=cif(kcl()), theoretical=False),
        ]
    )
    again = StructureLibrary.from_json(library.to_json())
    assert [c.external_id for c in again] == ["a", "c"]
    assert again.duplicates == {"b": "a"}
    assert again.get("c").theoretical is False
    assert all(c.structure is None for c in again)
    assert again.search_chemsys(["Na", "Cl"])[0].external_id == "a"


def test_dataset_structures_source():
    source = DatasetStructures({"row-7": nacl(), "row-9": translated(nacl())})
    found = source.search_formula("NaCl")
    assert [(c.source, c.external_id) for c in found] == [("dataset", "row-7"), ("dataset", "row-9")]
    assert source.name == "dataset"
    result = match_composition("NaCl", [source])
    assert result.status == "ambiguous" and {r.candidate.source for r in result.candidates} == {"dataset"}


def test_real_obelix_cifs_parse_into_the_library(shared_data):
    cifs = shared_data / "li_conductivity" / "cifs"
    library = StructureLibrary.from_cif_files([cifs / "9zr.cif", cifs / "11b.cif", cifs / "0iv.cif"])
    assert {c.formula for c in library} == {"Li6PS5Br", "Li3P", "Li2PS3"}
    li3p = library.search_formula("Li3P")[0]
    assert li3p.nsites == 8 and li3p.spacegroup_number == 194


def test_shared_mp_library_csv_import(shared_data):
    library = StructureLibrary.from_table(shared_data / LIBRARY_CSV, deduplicate=False)
    ids = [c.external_id for c in library]
    assert len(ids) == 2433 and len(set(ids)) == 2433
    assert len(library.formulas) == 2086
    assert [c.external_id for c in library.search_formula("Si")] == ["mp-149", "mp-165"]
    assert [c.external_id for c in library.search_formula("Ga2As2")] == ["mp-2534", "mp-8883"]
    assert sorted(c.formula for c in library.search_chemsys(["O", "Li"])) == ["Li2O", "Li2O2"]
    silicon = library.search_formula("Si")[0]
    assert silicon.structure is None and silicon.spacegroup_symbol == "Fd-3m"
    assert silicon.get_structure().composition.reduced_formula == "Si"


def test_shared_mp_library_dedup_within_formula_groups(shared_data):
    import pandas as pd

    frame = pd.read_csv(shared_data / LIBRARY_CSV)
    subset = frame[frame.reduced_formula.isin(["Te", "Si", "TiO2"])]
    library = StructureLibrary.from_table(subset)
    # mp-567313 is Te with the same (trigonal helix) structure as mp-19 up to StructureMatcher's tolerances;
    # the two Si polymorphs and the three TiO2 polymorphs stay distinct.
    assert library.duplicates == {"mp-567313": "mp-19"}
    assert len(library) == len(subset) - 1


# -- Materials Project through the real client against the fake server -------------------------------------

SERVED_IDS = ["mp-2657", "mp-553432", "mp-554278", "mp-1960", "mp-841", "mp-149"]


@pytest.fixture(scope="module")
def served_documents():
    path = shared_data_dir() / LIBRARY_CSV
    if path.is_file():
        properties = {
            "mp-553432": {"energy_above_hull": 0.012, "theoretical": True},
            "mp-554278": {"energy_above_hull": 0.004, "theoretical": False},
        }
        return library_documents(path, SERVED_IDS, properties), "shared"
    return built_in_documents(), "built-in"


@pytest.fixture(scope="module")
def fake_mp(served_documents):
    documents, _ = served_documents
    with FakeMaterialsProject(documents, api_key=FAKE_API_KEY) as server:
        yield server


def _original(documents, material_id) -> Structure:
    return Structure.from_dict(next(d for d in documents if d["material_id"] == material_id)["structure"])


def test_mp_formula_search_through_real_client(fake_mp, served_documents):
    documents, kind = served_documents
    source = MaterialsProjectSource(FAKE_API_KEY, endpoint=fake_mp.url)
    formula = "TiO2" if kind == "shared" else "NaCl"
    found = source.search_formula(formula)
    expected = [d["material_id"] for d in documents if d["formula_pretty"] == formula]
    assert [c.external_id for c in found] == expected
    matcher = StructureMatcher()
    for candidate in found:
        assert candidate.source == "materials_project" and candidate.formula == formula
        assert matcher.fit(candidate.get_structure(), _original(documents, candidate.external_id))
        assert candidate.nsites == len(candidate.get_structure())
        assert candidate.spacegroup_number is not None and candidate.spacegroup_symbol
    summary_requests = [q for path, q, _ in fake_mp.requests if path == "/materials/summary/"]
    assert summary_requests[-1]["formula"] == [formula]
    assert set(summary_requests[-1]["_fields"][0].split(",")) == {
        "material_id", "formula_pretty", "structure", "energy_above_hull", "is_stable", "theoretical", "symmetry",
        "nsites",
    }
    # Results are cached per query: a second search sends no request.
    count = len(fake_mp.requests)
    assert [c.external_id for c in source.search_formula(formula)] == expected
    assert len(fake_mp.requests) == count
    if kind == "shared":
        by_id = {c.external_id: c for c in found}
        assert (by_id["mp-553432"].theoretical, by_id["mp-553432"].energy_above_hull) == (True, 0.012)
        assert by_id["mp-2657"].spacegroup_symbol == "P4_2/mnm" and by_id["mp-2657"].is_stable is True
        result = match_composition("Ti2O4", [source])
        assert [r.candidate.external_id for r in result.candidates] == ["mp-2657", "mp-554278", "mp-553432"]


def test_mp_chemsys_search_and_approximate_match(fake_mp, served_documents):
    documents, kind = served_documents
    source = MaterialsProjectSource(FAKE_API_KEY, endpoint=fake_mp.url)
    elements = ["O", "Li"] if kind == "shared" else ["Cl", "Na"]
    found = source.search_chemsys(elements)
    expected = {d["material_id"] for d in documents if d["chemsys"] == "-".join(sorted(elements))}
    assert {c.external_id for c in found} == expected and expected
    if kind == "shared":
        result = match_composition("Li1.9O", [source])
        assert result.status == "approximate"
        assert result.candidates[0].candidate.external_id == "mp-1960"  # Li2O, nearer than Li2O2


def test_mp_endpoint_and_key_from_environment(fake_mp, monkeypatch):
    monkeypatch.delenv("MP_API_KEY", raising=False)
    monkeypatch.setenv("PMG_MAPI_KEY", FAKE_API_KEY)
    monkeypatch.setenv("MP_API_ENDPOINT", fake_mp.url)
    source = MaterialsProjectSource()
    assert source.endpoint == fake_mp.url
    assert source.search_formula("Si")[0].external_id == "mp-149"


def test_mp_wrong_key_is_refused_clearly_and_the_key_never_leaks(fake_mp, caplog):
    wrong_key = "ZYXWVUTSRQ9876543210zyxwvutsrqpo"
    caplog.set_level(logging.DEBUG)
    source = MaterialsProjectSource(wrong_key, endpoint=fake_mp.url)
    with pytest.raises(SourceUnavailable, match=r"refused the API key \(HTTP 401\)") as caught:
        source.search_formula("Si")
    for text in (str(caught.value), repr(caught.value), repr(source), caplog.text):
        assert wrong_key not in text
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    sent = [headers.get("x-api-key") for path, _, headers in fake_mp.requests if path == "/materials/summary/"]
    assert wrong_key in sent  # the key did travel, in the header only


def test_mp_no_key_and_malformed_key(monkeypatch):
    monkeypatch.delenv("MP_API_KEY", raising=False)
    monkeypatch.delenv("PMG_MAPI_KEY", raising=False)
    with pytest.raises(SourceUnavailable, match="no API key: set the MP_API_KEY"):
        MaterialsProjectSource()
    with pytest.raises(SourceUnavailable, match="malformed") as caught:
        MaterialsProjectSource("short-secret-key")
    assert "short-secret-key" not in str(caught.value)


def test_mp_server_down_gives_a_clear_message(caplog):
    with socket.socket() as probe:  # a port that nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    caplog.set_level(logging.DEBUG)
    source = MaterialsProjectSource(FAKE_API_KEY, endpoint=f"http://127.0.0.1:{port}")
    with pytest.raises(SourceUnavailable, match=r"cannot reach the Materials Project at http://127.0.0.1:\d+/ \(no network"):
        source.search_chemsys(["Na", "Cl"])
    assert FAKE_API_KEY not in caplog.text


def test_fake_server_paginates_and_projects(fake_mp, served_documents):
    import requests

    documents, _ = served_documents
    url = fake_mp.url + "materials/summary/"
    headers = {"x-api-key": FAKE_API_KEY}
    first = requests.get(url, params={"_limit": 1, "_skip": 0, "_fields": "material_id"}, headers=headers, timeout=5)
    second = requests.get(url, params={"_limit": 1, "_skip": 1, "_fields": "material_id,nsites"}, headers=headers, timeout=5)
    assert first.json() == {"data": [{"material_id": documents[0]["material_id"]}], "meta": first.json()["meta"]}
    assert first.json()["meta"]["total_doc"] == len(documents)
    assert second.json()["data"] == [{"material_id": documents[1]["material_id"], "nsites": documents[1]["nsites"]}]
    assert requests.get(url, timeout=5).status_code == 401
    assert requests.get(fake_mp.url + "heartbeat", timeout=5).json()["db_version"]


def test_built_in_documents_serve_without_shared_data():
    documents = built_in_documents()
    assert [d["material_id"] for d in documents] == ["mp-22862", "mp-149"]
    with FakeMaterialsProject(documents) as server:
        source = MaterialsProjectSource(FAKE_API_KEY, endpoint=server.url)
        salt = source.search_formula("NaCl")
        assert [c.external_id for c in salt] == ["mp-22862"]
        assert salt[0].spacegroup_symbol == "Fm-3m" and salt[0].nsites == 2
        assert StructureMatcher().fit(salt[0].get_structure(), nacl())
        assert [c.external_id for c in source.search_chemsys(["Si"])] == ["mp-149"]
        assert source.search_formula("KCl") == []
