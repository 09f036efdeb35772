"""The three readers of an uploaded zip of CIFs (Datasets/Predict pages, the structure library in the database,
``StructureLibrary``) all go through ``cosnet_core.cif_zip.read_cif_zip`` and refuse the same hostile zips with
the same limits, naming the member and the reason."""

from __future__ import annotations

import re

import pytest
from pymatgen.core import Lattice, Structure

from cosnet_core.cif_zip import CifZipError
from cosnet_core.ingest import read_cif_zip
from cosnet_core.sources.local_library import LibraryImportError, StructureLibrary
from db.structures import StructureStoreError, read_library_upload
from tests.cosnet_core.ingest_files import zip_archive

NACL = Structure(Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]).to(fmt="cif")


def _dataset_zip(data: bytes) -> list[str]:
    return sorted(read_cif_zip(data))


def _library_upload(data: bytes) -> list[str]:
    return sorted(candidate.external_id for candidate in read_library_upload("up.zip", data))


def _local_library(data: bytes) -> list[str]:
    return sorted(entry.external_id for entry in StructureLibrary.from_zip(data))


CALLERS = {
    "datasets-and-predict": (_dataset_zip, CifZipError, ""),
    "db-library-upload": (_library_upload, StructureStoreError, "up.zip: "),
    "structure-library": (_local_library, LibraryImportError, "uploaded zip: "),
}

HOSTILE = [
    pytest.param(
        zip_archive({"ok.cif": NACL, "cifs/../../etc/evil.cif": NACL}),
        r"cifs/\.\./\.\./etc/evil\.cif.*escapes the archive's folder \('\.\.', path traversal\)",
        id="zip-slip",
    ),
    pytest.param(
        zip_archive({"/etc/evil.cif": NACL}), r"/etc/evil\.cif.*is an absolute path", id="absolute-path"
    ),
    pytest.param(
        zip_archive({f"{i}.cif": NACL for i in range(4)}),
        "the zip has 4 members, more than the limit of 3",
        id="too-many-members",
    ),
    pytest.param(
        zip_archive({"big.cif": b"\0" * 1_600_000}),
        r"big\.cif.*unpacks to 1\.5 MB, more than the per-file limit of 1\.0 MB",
        id="oversize-member",
    ),
    pytest.param(  # 3 kB that unpack to 2.7 MB: each member is within its limit, the sum is not
        zip_archive({f"{i}.cif": b"\0" * 900_000 for i in range(3)}),
        r"the zip unpacks to more than 2\.0 MB, the limit for unpacked CIFs",
        id="zip-bomb",
    ),
]


@pytest.fixture
def small_limits(monkeypatch):
    """The same small limits for every caller, through the environment as in the app."""
    monkeypatch.setenv("COSNET_MAX_ZIP_MEMBERS", "3")
    monkeypatch.setenv("COSNET_MAX_ZIP_MEMBER_MB", "1")
    monkeypatch.setenv("COSNET_MAX_ZIP_UNPACKED_MB", "2")


@pytest.mark.parametrize("caller", list(CALLERS))
@pytest.mark.parametrize(("data", "message"), HOSTILE)
def test_every_zip_reader_refuses_the_same_hostile_zip(small_limits, caller, data, message):
    read, error_type, prefix = CALLERS[caller]
    with pytest.raises(error_type) as raised:
        read(data)
    assert str(raised.value).startswith(prefix)
    assert len(raised.value.reason) > 10
    assert re.search(message, str(raised.value)), str(raised.value)


@pytest.mark.parametrize("caller", list(CALLERS))
def test_a_nested_zip_bomb_is_never_unpacked(small_limits, caller):
    """A zip inside the zip (here one that would unpack beyond every limit) is skipped, not opened: only the
    archive's own CIFs are read, by every caller alike."""
    inner = zip_archive({f"{i}.cif": b"\0" * 1_600_000 for i in range(3)})
    read, _, _ = CALLERS[caller]
    assert [name.rsplit("/", 1)[-1] for name in read(zip_archive({"inner.zip": inner, "cifs/NaCl.cif": NACL}))] == [
        "NaCl.cif"
    ]
