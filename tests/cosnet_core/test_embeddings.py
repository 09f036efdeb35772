"""Element embeddings read from the matminer wheel."""

from __future__ import annotations

import json
from importlib import resources

import numpy as np
import pytest

from cosnet_core.embeddings import UnknownElementError, load_element_embedding


def _raw(file_name: str):
    return json.loads(resources.files("matminer.utils.data_files").joinpath(file_name).read_text())


def test_matscholar200_shape_values_and_version():
    embedding = load_element_embedding("matscholar200")
    assert embedding.matrix.shape == (103, 200)
    assert embedding.dim == 200
    assert embedding.matrix.dtype == np.float32
    assert embedding.symbols[:3] == ("H", "He", "Li")
    np.testing.assert_allclose(embedding.vector("Li"), np.float32(_raw("matscholar_els.json")["Li"]))
    assert embedding.version.startswith("matscholar200@matminer-0.10.1+sha256:")
    assert len(embedding.version.rsplit(":", 1)[1]) == 12
    assert load_element_embedding("matscholar200") is embedding  # cached


def test_cgcnn92_is_keyed_by_atomic_number():
    embedding = load_element_embedding("cgcnn92")
    assert embedding.matrix.shape == (100, 92)
    np.testing.assert_allclose(embedding.vector("O"), np.float32(_raw("cgcnn_atom_feature.json")["8"]))


def test_megnet16_rows_are_atomic_numbers_after_a_dummy():
    embedding = load_element_embedding("megnet16")
    assert embedding.matrix.shape == (94, 16)
    np.testing.assert_allclose(
        embedding.vector("Fe"), np.float32(_raw("megnet_elemental_embedding.json")[26])
    )


def test_unknown_element_is_a_key_error_naming_symbol_and_embedding():
    embedding = load_element_embedding("megnet16")
    with pytest.raises(KeyError) as caught:
        embedding.vector("Am")
    assert isinstance(caught.value, UnknownElementError)
    assert "'Am'" in str(caught.value) and "megnet16" in str(caught.value)


def test_custom_json_file(tmp_path):
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps({"O": [0.0, 1.0], "Li": [2.0, 3.0]}))
    embedding = load_element_embedding(str(path))
    assert embedding.symbols == ("Li", "O")  # ordered by atomic number
    np.testing.assert_array_equal(embedding.vector("O"), [0.0, 1.0])
    assert embedding.dim == 2


def test_bad_name_and_ragged_file(tmp_path):
    with pytest.raises(ValueError, match="neither a known name"):
        load_element_embedding("no-such-embedding")
    path = tmp_path / "ragged.json"
    path.write_text(json.dumps({"O": [0.0, 1.0], "Li": [2.0]}))
    with pytest.raises(ValueError, match="different widths"):
        load_element_embedding(str(path))
