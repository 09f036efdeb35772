"""Element embeddings: one fixed vector per chemical element.

The vectors are read from the JSON files that ship inside the ``matminer`` wheel
(``matminer/utils/data_files``) through :mod:`importlib.resources`, so matminer's heavy modules are never
imported:

- ``matscholar200``: ``matscholar_els.json``, 103 elements x 200, keyed by symbol (the ROOST default).
- ``cgcnn92``: ``cgcnn_atom_feature.json``, 100 elements x 92, keyed by atomic number (the CGCNN default).
- ``megnet16``: ``megnet_elemental_embedding.json``, a list indexed by atomic number (row 0 is a dummy),
  elements 1..94 x 16.

Any other JSON file ``{symbol: [floats]}`` can be given by path.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field
from importlib import resources
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
from pymatgen.core.periodic_table import Element

BUILTIN_EMBEDDINGS: dict[str, str] = {
    "matscholar200": "matscholar_els.json",
    "cgcnn92": "cgcnn_atom_feature.json",
    "megnet16": "megnet_elemental_embedding.json",
}


class UnknownElementError(KeyError):
    """An element has no vector in the chosen embedding.

    Attributes:
        symbol: the element symbol that was asked for.
        embedding_name: the name of the embedding that lacks it.
    """

    def __init__(self, symbol: str, embedding_name: str) -> None:
        super().__init__(symbol, embedding_name)
        self.symbol = symbol
        self.embedding_name = embedding_name

    def __str__(self) -> str:
        return f"element {self.symbol!r} has no vector in the element embedding {self.embedding_name!r}"


@dataclass(frozen=True)
class ElementEmbedding:
    """A table of element vectors.

    Attributes:
        name: short name (``"matscholar200"``) or the file path it was read from.
        symbols: element symbols, one per row of ``matrix``.
        matrix: float32 array ``[n_elements, dim]``.
        dim: width of one vector.
        version: identifies the exact content (source + sha256 of the file), used in cache keys.
    """

    name: str
    symbols: tuple[str, ...]
    matrix: np.ndarray
    dim: int
    version: str
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {symbol: i for i, symbol in enumerate(self.symbols)})

    def __contains__(self, symbol: object) -> bool:
        return symbol in self._index

    def index(self, symbol: str) -> int:
        """Row of ``symbol`` in ``matrix``.

        Raises:
            UnknownElementError: when the element has no vector.
        """
        try:
            return self._index[symbol]
        except KeyError:
            raise UnknownElementError(symbol, self.name) from None

    def vector(self, symbol: str) -> np.ndarray:
        """The vector of one element (a read-only float32 view).

        Args:
            symbol: element symbol such as ``"Li"``.

        Returns:
            float32 array ``[dim]``.

        Raises:
            UnknownElementError: when the element has no vector.
        """
        return self.matrix[self.index(symbol)]


def _matminer_version() -> str:
    try:
        return version("matminer")
    except PackageNotFoundError:  # pragma: no cover - matminer is pinned
        return "unknown"


def _rows_from_json(name: str, raw: object) -> dict[str, list[float]]:
    """Turn any of the supported JSON layouts into ``{symbol: vector}``."""
    if isinstance(raw, list):
        # megnet layout: row i is atomic number i, row 0 a dummy.
        return {Element.from_Z(z).symbol: list(map(float, row)) for z, row in enumerate(raw) if z > 0}
    if not isinstance(raw, dict) or not raw:
        raise ValueError(f"element embedding {name!r}: expected a non-empty JSON object {{symbol: [floats]}}")
    rows: dict[str, list[float]] = {}
    for key, row in raw.items():
        symbol = Element.from_Z(int(key)).symbol if str(key).isdigit() else str(key)
        rows[symbol] = list(map(float, row))
    return rows


@functools.lru_cache(maxsize=16)
def load_element_embedding(name_or_path: str = "matscholar200") -> ElementEmbedding:
    """Load (once per process) an element embedding by name or path.

    Args:
        name_or_path: ``"matscholar200"``, ``"cgcnn92"``, ``"megnet16"``, or a path to a JSON file
            ``{symbol: [floats]}`` (keys may also be atomic numbers).

    Returns:
        The embedding, ordered by atomic number.

    Raises:
        ValueError: unknown name, unreadable file, or rows of unequal width.
    """
    if name_or_path in BUILTIN_EMBEDDINGS:
        file_name = BUILTIN_EMBEDDINGS[name_or_path]
        data = resources.files("matminer.utils.data_files").joinpath(file_name).read_bytes()
        source = f"{name_or_path}@matminer-{_matminer_version()}"
        name = name_or_path
    else:
        path = Path(name_or_path)
        if not path.is_file():
            known = ", ".join(BUILTIN_EMBEDDINGS)
            raise ValueError(
                f"element embedding {name_or_path!r} is neither a known name ({known}) nor a file"
            )
        data = path.read_bytes()
        source = path.name
        name = str(path)
    try:
        raw = json.loads(data)
    except json.JSONDecodeError as error:
        raise ValueError(f"element embedding {name!r} is not valid JSON: {error}") from error
    rows = _rows_from_json(name, raw)
    widths = {len(row) for row in rows.values()}
    if len(widths) != 1:
        raise ValueError(f"element embedding {name!r} has rows of different widths {sorted(widths)}")
    symbols = tuple(sorted(rows, key=lambda s: Element(s).Z if Element.is_valid_symbol(s) else 10_000))
    matrix = np.asarray([rows[s] for s in symbols], dtype=np.float32)
    matrix.setflags(write=False)
    digest = hashlib.sha256(data).hexdigest()[:12]
    return ElementEmbedding(
        name=name,
        symbols=symbols,
        matrix=matrix,
        dim=int(matrix.shape[1]),
        version=f"{source}+sha256:{digest}",
    )
