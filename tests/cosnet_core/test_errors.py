"""One input-error base class (issue 17, item 6): every refusal of user input is an ``InputError`` whose message
names the item and the reason, and survives pickling (errors cross Ray and process boundaries)."""

from __future__ import annotations

import pickle

import pytest

from cosnet_core.artifact import ArtifactError
from cosnet_core.errors import InputError
from cosnet_core.formula import FormulaError, parse_formula
from cosnet_core.ingest import IngestError
from cosnet_core.matching import MatchingError
from cosnet_core.pretrained import PretrainError
from cosnet_core.sources.local_library import LibraryImportError
from cosnet_core.splits import SplitError
from cosnet_core.structure_io import StructureError
from cosnet_core.tabular import TableError
from db.datasets import DatasetStoreError
from db.structures import StructureStoreError


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (FormulaError("Xx2", "unknown element Xx"), "formula 'Xx2': unknown element Xx"),
        (StructureError("a.cif", "it holds no structure"), "structure a.cif: it holds no structure"),
        (MatchingError(3, "Xx", "cannot be parsed"), "row 3: formula 'Xx': cannot be parsed"),
        (LibraryImportError("lib.zip: b.cif", "not a CIF"), "lib.zip: b.cif: not a CIF"),
        (StructureStoreError("decision 12", "unknown"), "decision 12: unknown"),
        (IngestError("row 5: the target is empty"), "row 5: the target is empty"),
        (TableError("no column 'gap'"), "no column 'gap'"),
        (SplitError("no train rows"), "no train rows"),
        (ArtifactError("m.pt: not an artifact"), "m.pt: not an artifact"),
        (PretrainError("t.csv has no usable row"), "t.csv has no usable row"),
        (DatasetStoreError("unknown version 7"), "unknown version 7"),
    ],
)
def test_every_input_error_is_an_input_error_with_its_message_after_pickling(error: InputError, message: str) -> None:
    assert isinstance(error, InputError) and isinstance(error, ValueError)
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is type(error)
    assert str(error) == str(back) == message
    assert back.reason == error.reason


def test_attributes_of_the_named_errors() -> None:
    with pytest.raises(InputError) as caught:
        parse_formula("Li2Xx")
    assert isinstance(caught.value, FormulaError)
    assert (caught.value.formula, caught.value.item) == ("Li2Xx", "Li2Xx")
    assert StructureError("b.cif", "empty").source == "b.cif"
    assert InputError("only a reason").item is None
