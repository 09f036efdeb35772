"""Crystal structures → de-CGCNN input graphs (the input s of eq. (2)).

Reading, checking and hashing structures (:func:`load_structure`, :func:`check_structure`, :func:`structure_hash`,
:func:`volume_per_atom`, :class:`StructureError`) live in the torch-free :mod:`cosnet_core.structure_io` and are
re-exported here; this module adds the graph, which needs torch.

Graph
    One node per site of the given cell. Node features are **occupancy-weighted** element vectors,
    ``x_i = sum_e occ_i(e) * v(e)`` over the site's ``species`` (never ``site.specie``), so a Li0.5Na0.5 site gets
    the mean of the Li and Na vectors. *Vacancies*: when the occupancies of a site sum to less than 1, the missing
    part is a vacancy whose vector is zero, so a half-empty Li site gets ``0.5 * v(Li)``; the vector's length then
    carries the occupancy and its direction the chemistry (the COSNet authors' code divides by the site's total
    occupancy instead, so that site gets ``v(Li)``: ``docs/departures.md``). Edges come from
    ``Structure.get_neighbor_list(r=8 Å)``:
    each site keeps its 12 nearest neighbours **plus any neighbour tied with the 12th within 1e-3 Å**, so the graph
    does not depend on site order (a supercell or a permuted copy gives the same edges per site). A site with no
    neighbour inside the cutoff gets one self-loop at distance = cutoff, so it keeps its own features and still
    takes part in the convolution. Distances are expanded on Gaussians centred at 0, 0.2, …, 8 Å (41 centres,
    width 0.2 Å).

Cell descriptors (the "de-" of de-CGCNN)
    Intensive, supercell-, rotation- and translation-invariant numbers, see :data:`CELL_DESCRIPTOR_NAMES`:
    a, b, c, α, β, γ of the **Niggli-reduced primitive cell** (the given cell's a, b, c would double in a 2x2x2
    supercell); the crystal system (one-hot, 7) and space-group number from spglib (called directly,
    ``symprec=0.1`` Å, which recovers the declared group of the noisy OBELiX CIFs; spglib treats each distinct
    site mixture as its own atom type, so disordered cells work; if spglib fails: P1, triclinic); volume per atom
    and density (both occupancy-aware); and two disorder measures that matter for ionic conductors: the mean site
    occupancy (1 for a fully occupied cell) and the fraction of sites that are partially occupied or mixed.
    They are returned raw; the model normalises them (``CosNet.set_cell_normalization``).
"""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import spglib
import torch
from pymatgen.core import Element, Lattice, Structure
from torch_geometric.data import Data

from cosnet_core.embeddings import ElementEmbedding
from cosnet_core.structure_io import (  # noqa: F401 - re-exported: structure I/O lives in a torch-free module
    CIF_OCCUPANCY_TOLERANCE,
    DEFAULT_MAX_SITES,
    MAX_CIF_BYTES,
    StructureError,
    check_structure,
    crystal_system,
    load_structure,
    structure_hash,
    volume_per_atom,
)

FEATURIZER_VERSION = "crystal-graph-1"
DEFAULT_RADIUS = 8.0
DEFAULT_MAX_NEIGHBORS = 12
GAUSSIAN_STEP = 0.2
TIE_TOLERANCE = 1e-3
SYMPREC = 0.1
FIRST_SEARCH_RADIUS = 5.0
AMU_PER_CUBIC_ANGSTROM_IN_G_PER_CM3 = 1.66053906660  # 1 u/Å^3 in g/cm^3

CRYSTAL_SYSTEMS: tuple[str, ...] = (
    "triclinic",
    "monoclinic",
    "orthorhombic",
    "tetragonal",
    "trigonal",
    "hexagonal",
    "cubic",
)
CELL_DESCRIPTOR_NAMES: tuple[str, ...] = (
    "a",
    "b",
    "c",
    "alpha",
    "beta",
    "gamma",
    *(f"crystal_system_{name}" for name in CRYSTAL_SYSTEMS),
    "space_group_number",
    "volume_per_atom",
    "density",
    "mean_site_occupancy",
    "disordered_site_fraction",
)


def gaussian_expansion(
    distances: torch.Tensor, radius: float = DEFAULT_RADIUS, step: float = GAUSSIAN_STEP
) -> torch.Tensor:
    """Expand distances on Gaussians ``exp(-(d - mu_k)^2 / step^2)``, mu_k = 0, step, …, radius.

    Args:
        distances: float tensor ``[E]`` in Å.
        radius: last centre (the cutoff).
        step: spacing and width.

    Returns:
        float32 ``[E, round(radius / step) + 1]`` (41 for 8 Å and 0.2 Å).
    """
    centres = torch.linspace(0.0, radius, round(radius / step) + 1, dtype=torch.float32)
    return torch.exp(-((distances.to(torch.float32)[:, None] - centres[None, :]) ** 2) / step**2)


@dataclass(frozen=True)
class SiteOccupancies:
    """The species of every site, read once (pymatgen's per-site properties are slow to query repeatedly).

    Attributes:
        symbols: element symbols per site.
        occupancies: their occupancies per site.
    """

    symbols: tuple[tuple[str, ...], ...]
    occupancies: tuple[tuple[float, ...], ...]

    @classmethod
    def of(cls, structure: Structure) -> SiteOccupancies:
        """Read the species of every site of ``structure``."""
        symbols, occupancies = [], []
        for site in structure:
            items = site.species.items()
            symbols.append(tuple(getattr(sp, "element", sp).symbol for sp, _ in items))
            occupancies.append(tuple(float(occ) for _, occ in items))
        return cls(tuple(symbols), tuple(occupancies))

    def totals(self) -> np.ndarray:
        """Occupancy sum per site (1 for a fully occupied site)."""
        return np.array([sum(occ) for occ in self.occupancies])


def node_features(
    structure: Structure, embedding: ElementEmbedding, occupancies: SiteOccupancies | None = None
) -> np.ndarray:
    """Occupancy-weighted element vectors, one row per site (vacancy part = zero vector).

    Args:
        structure: ordered or disordered structure.
        embedding: element vectors.
        occupancies: the structure's site species if already read.

    Returns:
        float32 ``[n_sites, dim]``.

    Raises:
        StructureError: an element has no vector in ``embedding``.
    """
    occupancies = occupancies or SiteOccupancies.of(structure)
    width = max(len(symbols) for symbols in occupancies.symbols)
    columns = np.zeros((len(structure), width), dtype=np.int64)
    weights = np.zeros((len(structure), width), dtype=np.float64)
    for index, (symbols, occs) in enumerate(zip(occupancies.symbols, occupancies.occupancies, strict=True)):
        for k, (symbol, occupancy) in enumerate(zip(symbols, occs, strict=True)):
            if symbol not in embedding:
                raise StructureError(
                    structure.formula,
                    f"site {index}: element {symbol} has no vector in the element embedding {embedding.name!r}",
                )
            columns[index, k] = embedding.index(symbol)
            weights[index, k] = occupancy
    vectors = embedding.matrix[columns].astype(np.float64)  # [n_sites, width, dim]; padding has weight 0
    return (vectors * weights[:, :, None]).sum(axis=1).astype(np.float32)


def _nearest_within(
    structure: Structure, radius: float, max_neighbors: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Nearest neighbours within ``radius`` (ties kept): centres, neighbours, distances, per-centre last distance."""
    centres, neighbours, _, distances = structure.get_neighbor_list(r=radius)
    order = np.lexsort((distances, centres))
    centres, neighbours, distances = centres[order], neighbours[order], distances[order]
    n_sites = len(structure)
    counts = np.bincount(centres, minlength=n_sites)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(len(centres)) - starts[centres]
    last = np.full(n_sites, np.inf)  # distance of the max_neighbors-th neighbour (inf when fewer)
    full = counts >= max_neighbors
    last[full] = distances[starts[full] + max_neighbors - 1]
    keep = (rank < max_neighbors) | (distances <= last[centres] + TIE_TOLERANCE)
    return centres[keep], neighbours[keep], distances[keep], last


def neighbor_edges(
    structure: Structure, radius: float = DEFAULT_RADIUS, max_neighbors: int = DEFAULT_MAX_NEIGHBORS
) -> tuple[np.ndarray, np.ndarray]:
    """Edges to the nearest neighbours of each site (ties with the last one kept; self-loop when isolated).

    The search first runs with a 5 Å sphere (a quarter of the volume of the 8 Å one); it is exact whenever every site found its
    ``max_neighbors`` neighbours and all their ties inside it, otherwise it is repeated with the full ``radius``.

    Args:
        structure: the structure.
        radius: cutoff in Å.
        max_neighbors: neighbours kept per site (plus ties within 1e-3 Å of the last kept one).

    Returns:
        ``edge_index`` int64 ``[2, E]`` (row 0 = neighbour = message source, row 1 = centre site) and
        ``distances`` float64 ``[E]``.
    """
    first = min(radius, FIRST_SEARCH_RADIUS)
    centres, neighbours, distances, last = _nearest_within(structure, first, max_neighbors)
    if first < radius and not np.all(last + TIE_TOLERANCE < first):
        centres, neighbours, distances, last = _nearest_within(structure, radius, max_neighbors)
    isolated = np.setdiff1d(np.arange(len(structure)), centres)
    if len(isolated):
        centres = np.concatenate([centres, isolated])
        neighbours = np.concatenate([neighbours, isolated])
        distances = np.concatenate([distances, np.full(len(isolated), radius)])
    edge_index = np.stack([neighbours, centres]).astype(np.int64)
    return edge_index, distances


def symmetry(
    structure: Structure, symprec: float = SYMPREC, occupancies: SiteOccupancies | None = None
) -> tuple[int, Lattice]:
    """Space-group number and canonical lattice of a structure.

    The canonical lattice is the Niggli-reduced lattice of the primitive cell, so a cell and its supercells get the
    same one. Both come from one spglib call; each distinct site mixture (species and occupancies) is its own atom
    type, so disordered cells work. When spglib fails: space group 1 and the primitive cell from pymatgen's
    ``get_primitive_structure`` (or the given cell).

    Args:
        structure: the structure.
        symprec: distance tolerance in Å.
        occupancies: the structure's site species if already read.

    Returns:
        ``(space_group_number, niggli_reduced_primitive_lattice)``.
    """
    occupancies = occupancies or SiteOccupancies.of(structure)
    kinds: dict[tuple, int] = {}
    types = [
        kinds.setdefault(tuple(zip(symbols, (round(o, 4) for o in occs), strict=False)), len(kinds) + 1)
        for symbols, occs in zip(occupancies.symbols, occupancies.occupancies, strict=True)
    ]
    try:
        cell = (np.asarray(structure.lattice.matrix), np.asarray(structure.frac_coords), types)
        dataset = spglib.get_symmetry_dataset(cell, symprec=symprec)
        number = int(dataset.number)
        primitive = Lattice(dataset.primitive_lattice)
        if not 1 <= number <= 230 or primitive.volume <= 1e-6:
            raise ValueError("spglib returned no usable cell")
        return number, _niggli(primitive)
    except Exception:
        pass
    try:
        primitive = structure.get_primitive_structure(tolerance=0.25).lattice
    except Exception:
        primitive = structure.lattice
    return 1, _niggli(primitive)


def _niggli(lattice: Lattice) -> Lattice:
    """Niggli-reduced lattice (spglib's C implementation; pymatgen's as a fallback)."""
    reduced = spglib.niggli_reduce(np.asarray(lattice.matrix), eps=1e-5)
    return Lattice(reduced) if reduced is not None else lattice.get_niggli_reduced_lattice()


def cell_descriptors(structure: Structure, occupancies: SiteOccupancies | None = None) -> np.ndarray:
    """Raw global cell descriptors, in the order of :data:`CELL_DESCRIPTOR_NAMES`.

    Args:
        structure: the structure.
        occupancies: the structure's site species if already read.

    Returns:
        float32 ``[len(CELL_DESCRIPTOR_NAMES)]``.
    """
    occupancies = occupancies or SiteOccupancies.of(structure)
    number, lattice = symmetry(structure, occupancies=occupancies)
    system = crystal_system(number)
    one_hot = [1.0 if name == system else 0.0 for name in CRYSTAL_SYSTEMS]
    totals = occupancies.totals()
    disordered = np.array(
        [len(occs) > 1 or abs(sum(occs) - 1.0) > 1e-6 for occs in occupancies.occupancies], dtype=np.float64
    )
    mass = sum(
        _atomic_mass(symbol) * occupancy
        for symbols, occs in zip(occupancies.symbols, occupancies.occupancies, strict=True)
        for symbol, occupancy in zip(symbols, occs, strict=True)
    )
    volume = float(structure.volume)
    values = [
        *lattice.abc,
        *lattice.angles,
        *one_hot,
        float(number),
        volume_per_atom(structure),
        mass * AMU_PER_CUBIC_ANGSTROM_IN_G_PER_CM3 / volume,
        float(totals.mean()),
        float(disordered.mean()),
    ]
    return np.asarray(values, dtype=np.float32)


@functools.lru_cache(maxsize=256)
def _atomic_mass(symbol: str) -> float:
    return float(Element(symbol).atomic_mass)


def crystal_graph(
    structure: Structure,
    embedding: ElementEmbedding,
    *,
    radius: float = DEFAULT_RADIUS,
    max_neighbors: int = DEFAULT_MAX_NEIGHBORS,
    max_sites: int = DEFAULT_MAX_SITES,
) -> Data:
    """The de-CGCNN input graph of one structure.

    Args:
        structure: ordered or disordered structure.
        embedding: element vectors.
        radius: neighbour cutoff in Å (also the last Gaussian centre).
        max_neighbors: neighbours per site.
        max_sites: largest accepted number of sites.

    Returns:
        ``Data`` with ``x`` float32 ``[n_sites, dim]``, ``edge_index`` long ``[2, E]``, ``edge_attr`` float32
        ``[E, 41]`` and ``cell`` float32 ``[1, len(CELL_DESCRIPTOR_NAMES)]`` (raw).

    Raises:
        StructureError: absurd structure or an element without a vector.
    """
    source = structure.formula if len(structure) else "(empty)"
    check_structure(structure, source, max_sites=max_sites)
    occupancies = SiteOccupancies.of(structure)
    x = node_features(structure, embedding, occupancies)
    edge_index, distances = neighbor_edges(structure, radius, max_neighbors)
    return Data(
        x=torch.from_numpy(x),
        edge_index=torch.from_numpy(edge_index),
        edge_attr=gaussian_expansion(torch.from_numpy(distances), radius),
        cell=torch.from_numpy(cell_descriptors(structure, occupancies))[None, :],
        num_nodes=len(structure),
    )


class GraphCache:
    """Crystal graphs cached on disk, keyed by structure content hash, featurizer and embedding versions.

    Files are ``<directory>/<key>.pt`` holding a dict of tensors, read with ``torch.load(weights_only=True)``.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def key(self, structure: Structure, embedding: ElementEmbedding, **kwargs: float) -> str:
        """The cache key of a structure under the given featurization settings."""
        settings = ",".join(f"{name}={kwargs[name]}" for name in sorted(kwargs))
        text = f"{structure_hash(structure)}|{FEATURIZER_VERSION}|{embedding.version}|{settings}"
        return hashlib.sha256(text.encode()).hexdigest()

    def get_or_build(self, structure: Structure, embedding: ElementEmbedding, **kwargs: float) -> Data:
        """Load the cached graph or build, store and return it.

        Args:
            structure: the structure.
            embedding: element vectors.
            **kwargs: passed to :func:`crystal_graph` (radius, max_neighbors, max_sites).

        Returns:
            The crystal graph.
        """
        path = self.directory / f"{self.key(structure, embedding, **kwargs)}.pt"
        if path.is_file():
            try:
                stored = torch.load(path, weights_only=True)
                return Data(**stored)
            except Exception:
                path.unlink(missing_ok=True)  # a broken or foreign file: rebuild it
        graph = crystal_graph(structure, embedding, **kwargs)
        stored = {name: graph[name] for name in ("x", "edge_index", "edge_attr", "cell")}
        stored["num_nodes"] = graph.num_nodes
        handle, temporary = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
        os.close(handle)
        torch.save(stored, temporary)
        os.replace(temporary, path)
        return graph


__all__ = [
    "CELL_DESCRIPTOR_NAMES",
    "volume_per_atom",
    "DEFAULT_MAX_SITES",
    "FEATURIZER_VERSION",
    "GraphCache",
    "StructureError",
    "cell_descriptors",
    "crystal_graph",
    "gaussian_expansion",
    "load_structure",
    "structure_hash",
]
