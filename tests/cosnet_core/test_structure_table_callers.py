"""The two readers of a table of structures (the library upload in the database and ``StructureLibrary``) go
through ``cosnet_core.structure_table.read_structure_table`` and refuse the same tables with the same message."""

from __future__ import annotations

import gzip

import pytest
from pymatgen.core import Lattice, Structure

from cosnet_core.sources.local_library import LibraryImportError, StructureLibrary
from cosnet_core.structure_table import read_structure_table
from db.structures import StructureStoreError, read_library_upload

NACL = Structure(Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]).to(fmt="cif")
CIF_CELL = '"' + NACL.replace('"', '""') + '"'


def _csv(*rows: str, header: str = "material_id,formula,cif") -> bytes:
    return gzip.compress(("\n".join([header, *rows]) + "\n").encode())


def _db(data: bytes) -> None:
    read_library_upload("lib.csv.gz", data)


def _library(data: bytes, tmp_path) -> None:
    path = tmp_path / "lib.csv.gz"
    path.write_bytes(data)
    StructureLibrary.from_table(path)


BAD_TABLES = [
    pytest.param(_csv(f"mp-1,NaCl,{CIF_CELL}", f"mp-1,NaCl,{CIF_CELL}"),
                 "lib.csv.gz row 2 (mp-1): this id appears twice in the table", id="duplicate-id"),
    pytest.param(_csv(f",NaCl,{CIF_CELL}"), "lib.csv.gz row 1: the 'material_id' value is empty", id="empty-id"),
    pytest.param(_csv("mp-1,NaCl,"), "lib.csv.gz row 1 (mp-1): the 'cif' value is empty", id="empty-cif"),
    pytest.param(_csv(), "lib.csv.gz: the table has no rows", id="no-rows"),
    pytest.param(_csv("mp-1,NaCl", header="material_id,formula"),
                 "lib.csv.gz: needs an id column (one of material_id, id, external_id, name, filename) and a 'cif' "
                 "column; it has material_id, formula", id="no-cif-column"),
]


@pytest.mark.parametrize(("data", "message"), BAD_TABLES)
def test_both_table_readers_refuse_the_same_table_alike(tmp_path, data, message):
    with pytest.raises(StructureStoreError) as from_db:
        _db(data)
    with pytest.raises(LibraryImportError) as from_library:
        _library(data, tmp_path)
    assert str(from_db.value) == str(from_library.value) == message


def test_rows_keep_text_ids_and_read_the_optional_columns():
    data = (b"material_id,cif,spacegroup_number,energy_above_hull,is_stable,nsites\n"
            b"NA,x,225.0,0.012,yes,2\n0001,y,,n/a,0,\n")
    first, second = read_structure_table(data, "t.csv")
    assert (first.external_id, first.item, first.nsites) == ("NA", "t.csv row 1 (NA)", 2)
    assert first.properties == {"spacegroup_number": 225, "spacegroup_symbol": None, "energy_above_hull": 0.012,
                                "is_stable": True, "theoretical": None}
    assert (second.external_id, second.nsites) == ("0001", None)
    assert (second.properties["energy_above_hull"], second.properties["is_stable"]) == (None, False)
