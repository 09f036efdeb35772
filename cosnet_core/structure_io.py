"""Structure I/O without torch: read a CIF or structure file safely, check it, hash it, its volume per atom, and
the one summary of a structure (formula, space group, crystal system, density) that the app shows and stores.

The domain half of :mod:`cosnet_core.structure` (which builds the de-CGCNN crystal graphs of eq. (2) and imports
torch). Ingest, matching, the database layer and the pages read structures from here, so none of them loads torch.
"""

from __future__ import annotations

import functools
import hashlib
import signal
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pymatgen.core import Structure
from pymatgen.io.cif import CifParser

from cosnet_core.errors import InputError

DEFAULT_MAX_SITES = 2000
CIF_OCCUPANCY_TOLERANCE = 1.05


class StructureError(InputError):
    """A structure that cannot become a crystal graph.

    Attributes:
        source: the file name, structure formula or "CIF text" it came from (also ``item``).
        reason: why it was refused.
    """

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(source, reason)

    @property
    def source(self) -> str:
        """The file name, structure formula or "CIF text" it came from."""
        return str(self.item)

    def item_label(self) -> str:
        """``structure <source>``."""
        return f"structure {self.item}"


@contextmanager
def _time_limit(seconds: float, source: str) -> Iterator[None]:
    """Raise StructureError after ``seconds``.

    Enforced only in the main thread (where SIGALRM works) and only when no other alarm is pending (e.g.
    pytest-timeout's), which it would otherwise cancel.
    """
    usable = (
        seconds
        and seconds > 0
        and hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
        and signal.getitimer(signal.ITIMER_REAL)[0] == 0
    )
    if not usable:
        yield
        return

    def _handler(signum: int, frame: object) -> None:
        raise StructureError(source, f"parsing took longer than {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, _handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def check_structure(structure: Structure, source: str, *, max_sites: int = DEFAULT_MAX_SITES) -> None:
    """Refuse absurd structures.

    Args:
        structure: the structure.
        source: name used in the error message.
        max_sites: largest accepted number of sites.

    Raises:
        StructureError: no sites, more than ``max_sites`` sites, non-finite or non-positive cell volume, or a
            site without species.
    """
    if len(structure) == 0:
        raise StructureError(source, "it has no sites")
    if len(structure) > max_sites:
        raise StructureError(source, f"it has {len(structure)} sites, more than the limit of {max_sites}")
    matrix = structure.lattice.matrix
    if not np.all(np.isfinite(matrix)):
        raise StructureError(source, "the lattice has non-finite entries")
    volume = abs(float(np.linalg.det(matrix)))
    if volume <= 1e-6:
        raise StructureError(source, f"the cell volume is {volume:g} Å^3 (must be positive)")
    for index, site in enumerate(structure):
        if site.species.num_atoms <= 0:
            raise StructureError(source, f"site {index} has no species")


MAX_CIF_BYTES = 5_000_000
ATOM_ROWS_PER_SITE = 4  # a disordered site is written as one atom row per species sharing it


def _atom_site_rows(text: str) -> int:
    """How many atom rows the CIF's ``_atom_site_`` loops declare (counted without parsing the CIF; a row that
    wraps over several lines counts once per line, which only over-counts)."""
    rows, state, atom_loop = 0, None, False
    for raw in text.splitlines():
        line = raw.strip().lower()
        if not line or line.startswith("#"):
            continue
        if line == "loop_":
            state, atom_loop = "header", False
        elif line.startswith("_"):
            if state == "header":
                atom_loop = atom_loop or (line.startswith("_atom_site_") and not line.startswith("_atom_site_aniso"))
            else:  # a tag outside a loop header ends the loop
                state, atom_loop = None, False
        elif line.startswith("data_"):
            state, atom_loop = None, False
        elif state is not None:
            state = "rows"
            rows += atom_loop
    return rows


def _check_cif_size(text: str, source: str, max_sites: int) -> None:
    """Refuse CIFs whose size alone makes them absurd, before pymatgen spends time on them.

    This is what bounds parsing time in every thread (the SIGALRM timer of :func:`load_structure` only works in the
    main thread): the text is at most ``MAX_CIF_BYTES`` and declares at most ``ATOM_ROWS_PER_SITE * max_sites`` atom
    rows, so the symmetry expansion that follows stays proportional to a cell the featurizer would accept.
    """
    if len(text) > MAX_CIF_BYTES:
        raise StructureError(source, f"the CIF is {len(text) / 1e6:.1f} MB, more than the {MAX_CIF_BYTES / 1e6:.0f} MB limit")
    rows = _atom_site_rows(text)
    if rows > ATOM_ROWS_PER_SITE * max_sites:
        raise StructureError(source, f"the CIF lists {rows} atom rows, too many for the limit of {max_sites} sites")


def load_structure(
    cif_or_path: str | Path, *, max_sites: int = DEFAULT_MAX_SITES, timeout_s: float = 30, source: str | None = None
) -> Structure:
    """Read a structure from CIF text (a ``str``) or a file (a ``Path``: CIF, POSCAR or anything pymatgen reads).

    A ``str`` is always CIF text, never a file name, so text from an upload can never make the server read a file.
    CIFs are parsed with ``occupancy_tolerance=1.05`` (experimental CIFs often sum occupancies slightly above 1)
    and ``primitive=False`` (the cell as written). Parsing is bounded: CIFs larger than ``MAX_CIF_BYTES`` or with far
    more atom rows than ``max_sites`` are refused before parsing, every structure with more than ``max_sites``
    sites after parsing is refused, and in the main thread a timer stops parsing after ``timeout_s``.

    Args:
        cif_or_path: CIF text, or a path to a structure file.
        max_sites: largest accepted number of sites.
        timeout_s: parsing time limit in seconds (enforced in the main thread only).
        source: how to name the input in errors (default: the file name, or "CIF text").

    Returns:
        The first structure in the file.

    Raises:
        StructureError: empty or broken file, no structure, too many sites, non-positive volume, timeout.
    """
    text: str | None = None
    path: Path | None = None
    if isinstance(cif_or_path, Path):
        path = cif_or_path
        source = source or path.name or str(path)
        if not path.is_file():
            raise StructureError(source, "the file does not exist")
        if path.stat().st_size == 0:
            raise StructureError(source, "the file is empty")
        if path.suffix.lower() == ".cif":
            if path.stat().st_size > MAX_CIF_BYTES:
                raise StructureError(source, f"the CIF is larger than the {MAX_CIF_BYTES / 1e6:.0f} MB limit")
            text = path.read_text(encoding="utf-8-sig", errors="replace")
    else:
        text = str(cif_or_path)
        source = source or "CIF text"
        if not text.strip():
            raise StructureError(source, "the text is empty")
    if text is not None:
        _check_cif_size(text, source, max_sites)
    try:
        with _time_limit(timeout_s, source), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if text is None:
                assert path is not None
                structures = [Structure.from_file(path)]
            else:
                parser = CifParser.from_str(text, occupancy_tolerance=CIF_OCCUPANCY_TOLERANCE)
                structures = parser.parse_structures(primitive=False)
    except StructureError:
        raise
    except Exception as error:
        raise StructureError(source, f"it cannot be parsed ({type(error).__name__}: {error})") from error
    if not structures:
        raise StructureError(source, "it holds no structure")
    structure = structures[0]
    check_structure(structure, source, max_sites=max_sites)
    return structure


def volume_per_atom(structure: Structure) -> float:
    """V_a (Table 2, and a cell descriptor of g_S): the cell volume divided by the number of atoms in the cell,
    counted with their occupancies, Σ_sites Σ_species occu (pymatgen's ``composition.num_atoms``).

    The one definition of the quantity: the command line, the app's Table 2 (the ``structures.volume_per_atom``
    column, filled by this function and recomputed by migration 0004) and the cell descriptors all use it. For an
    ordered cell it is volume / number of sites; a partly vacant or mixed site counts by its occupancy sum (a
    half-empty Li site is half an atom), which is not volume / sites.

    Args:
        structure: a pymatgen structure (ordered or disordered).

    Returns:
        Å³ per atom.

    Raises:
        ValueError: a cell without atoms.
    """
    atoms = float(structure.composition.num_atoms)
    if not atoms > 0:
        raise ValueError("the cell holds no atoms (every occupancy is 0)")
    return float(structure.volume) / atoms


def structure_hash(structure: Structure) -> str:
    """Content hash of a structure, independent of site order.

    Lattice vectors (to 1e-5 Å), and per site the species with occupancies and fractional coordinates wrapped into
    [0, 1) (to 1e-5), sorted.

    Args:
        structure: the structure.

    Returns:
        64 hex characters.
    """
    lattice = ";".join(f"{v:.5f}" for v in np.asarray(structure.lattice.matrix).ravel())
    rows = []
    for site in structure:
        frac = np.round(np.mod(site.frac_coords, 1.0), 5) % 1.0
        species = ",".join(
            f"{sp}:{occ:.5f}" for sp, occ in sorted(site.species.items(), key=lambda kv: str(kv[0]))
        )
        rows.append(f"{species}@{frac[0]:.5f},{frac[1]:.5f},{frac[2]:.5f}")
    text = lattice + "|" + "|".join(sorted(rows))
    return hashlib.sha256(text.encode()).hexdigest()


# ------------------------------------------------------------------------------------------- one structure summary

SUMMARY_SYMPREC = 0.1
"""Distance tolerance (Å) of the space group shown to users and stored with each structure (loose enough for
experimental CIFs). The model's cell descriptors use their own spglib call (:func:`cosnet_core.structure.symmetry`)."""


def space_group(structure: Structure, symprec: float = SUMMARY_SYMPREC) -> tuple[str | None, int | None]:
    """Hermann–Mauguin symbol and international number of a structure's space group (pymatgen's analyzer).

    Args:
        structure: the structure.
        symprec: distance tolerance in Å.

    Returns:
        ``(symbol, number)``, or ``(None, None)`` when spglib gives up (some disordered cells).
    """
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    try:
        analyzer = SpacegroupAnalyzer(structure, symprec=symprec)
        return analyzer.get_space_group_symbol(), int(analyzer.get_space_group_number())
    except Exception:  # spglib fails on some disordered cells; the structure stays usable
        return None, None


@functools.cache
def crystal_system(space_group_number: int) -> str:
    """The crystal system of a space group (``"triclinic"`` … ``"cubic"``), as pymatgen's ``SpaceGroup`` says.

    Args:
        space_group_number: 1–230.

    Returns:
        One of the seven crystal-system names.
    """
    from pymatgen.symmetry.groups import SpaceGroup

    return str(SpaceGroup.from_int_number(int(space_group_number)).crystal_system)


@dataclass(frozen=True)
class StructureSummary:
    """What the app shows and stores about one structure, computed in one place.

    Attributes:
        formula: reduced formula of its elements (``"Li7La3Zr2O12"``).
        chemsys: elements joined by ``-`` in alphabetical order.
        nsites: sites in the cell.
        fractions: element fractions rounded to 6 decimals.
        spacegroup_symbol: see :func:`space_group` (None when unknown).
        spacegroup_number: see :func:`space_group` (None when unknown).
        volume_per_atom: :func:`volume_per_atom` (None for a cell without atoms).
        density: g/cm³ (None when pymatgen cannot weigh the cell, e.g. dummy species).
        is_ordered: no partial or mixed occupancy.
        content_hash: :func:`structure_hash`.
    """

    formula: str
    chemsys: str
    nsites: int
    fractions: dict[str, float]
    spacegroup_symbol: str | None
    spacegroup_number: int | None
    volume_per_atom: float | None
    density: float | None
    is_ordered: bool
    content_hash: str


def summarize_structure(structure: Structure, *, with_space_group: bool = True) -> StructureSummary:
    """The one summary of a structure (formula, space group, density, …) used by uploads, libraries and the database.

    Args:
        structure: the structure.
        with_space_group: compute the space group (False leaves it None, e.g. when a source already gives it).

    Returns:
        A :class:`StructureSummary`.
    """
    composition = structure.composition.element_composition
    symbol, number = space_group(structure) if with_space_group else (None, None)
    try:
        density: float | None = float(structure.density)
    except Exception:  # a cell pymatgen cannot weigh (dummy species)
        density = None
    try:
        per_atom: float | None = volume_per_atom(structure)
    except ValueError:
        per_atom = None
    return StructureSummary(
        formula=composition.reduced_formula,
        chemsys="-".join(sorted(element.symbol for element in composition.elements)),
        nsites=len(structure),
        fractions={str(el): round(x, 6) for el, x in composition.fractional_composition.get_el_amt_dict().items()},
        spacegroup_symbol=symbol,
        spacegroup_number=number,
        volume_per_atom=per_atom,
        density=density,
        is_ordered=bool(structure.is_ordered),
        content_hash=structure_hash(structure),
    )


__all__ = [
    "CIF_OCCUPANCY_TOLERANCE",
    "DEFAULT_MAX_SITES",
    "MAX_CIF_BYTES",
    "SUMMARY_SYMPREC",
    "StructureError",
    "StructureSummary",
    "check_structure",
    "crystal_system",
    "load_structure",
    "space_group",
    "structure_hash",
    "summarize_structure",
    "volume_per_atom",
]
