"""What every structure source gives the matcher: candidates, and one interface to search them.

A *source* answers two questions for a composition: which structures have exactly this reduced formula
(:meth:`StructureSource.search_formula`), and which structures are made of exactly these elements
(:meth:`StructureSource.search_chemsys`, used to find parent structures of doped compositions). Sources are the
Materials Project (:mod:`cosnet_core.sources.materials_project`), a local library of CIFs or structure tables and
the structures that came with an uploaded dataset (:mod:`cosnet_core.sources.local_library`).

A :class:`StructureCandidate` may carry its structure as a pymatgen ``Structure`` or only as CIF text, which is
parsed on first use (:meth:`StructureCandidate.get_structure`), so that searching a library of thousands of
entries never parses a CIF.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from pymatgen.core import Composition

if TYPE_CHECKING:
    from pymatgen.core import Structure

SourceKind = Literal["materials_project", "library", "dataset", "upload"]
SOURCE_KINDS: tuple[str, ...] = ("materials_project", "library", "dataset", "upload")


class SourceUnavailable(RuntimeError):
    """A structure source that cannot answer (no API key, no network, key refused …).

    Attributes:
        source: the source's name, e.g. ``"materials_project"``.
        reason: what went wrong and what to do about it, in words for the user (never contains an API key).
    """

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(source, reason)
        self.source = source
        self.reason = reason

    def __str__(self) -> str:
        return f"structure source {self.source!r} is unavailable: {self.reason}"


@lru_cache(maxsize=1)
def _spacegroup_symbols() -> dict[int, str]:
    """Space group number → short Hermann–Mauguin symbol, from pymatgen's symmetry tables (no group is built)."""
    from pymatgen.symmetry.groups import SYMM_DATA

    short_for_full = {full: short for short, full in SYMM_DATA["abbreviated_spacegroup_symbols"].items()}
    symbols: dict[int, str] = {}
    for symbol, data in SYMM_DATA["space_group_encoding"].items():
        symbols.setdefault(int(data["int_number"]), short_for_full.get(symbol, symbol))
    return symbols


def spacegroup_symbol_for_number(number: int) -> str | None:
    """Short Hermann–Mauguin symbol of a space group number, e.g. 225 → ``"Fm-3m"``, 12 → ``"C2/m"``.

    Args:
        number: 1–230.

    Returns:
        The symbol (pymatgen's setting), or None for a number outside 1–230.
    """
    return _spacegroup_symbols().get(int(number))


def element_set(elements: Iterable[str]) -> frozenset[str]:
    """Normalise element symbols (strings, or pymatgen ``Element``) to a frozenset of symbols."""
    return frozenset(str(element).strip() for element in elements)


def chemsys_string(elements: Iterable[str]) -> str:
    """Materials Project chemical system notation: sorted symbols joined by dashes (``"Br-Li-P-S"``)."""
    return "-".join(sorted(element_set(elements)))


@dataclass(eq=False)
class StructureCandidate:
    """One crystal structure proposed for a composition, with the properties used to rank it.

    Attributes:
        source: where it comes from: ``"materials_project"``, ``"library"``, ``"dataset"`` or ``"upload"``.
        external_id: the identifier within the source (an MP id such as ``"mp-149"``, a file name, an entry id).
        formula: reduced formula of the structure (``"Li6PS5Br"``).
        structure: the structure, when already parsed; use :meth:`get_structure` to parse ``cif`` on demand.
        energy_above_hull: eV/atom (Materials Project); None when unknown.
        is_stable: on the convex hull (Materials Project); None when unknown.
        theoretical: True when the Materials Project has no experimental (ICSD) counterpart; None when unknown.
        spacegroup_symbol: Hermann–Mauguin symbol, e.g. ``"Fm-3m"``.
        spacegroup_number: 1–230.
        nsites: number of sites in the cell.
        content_hash: :func:`cosnet_core.structure.structure_hash` of the structure (see :meth:`get_content_hash`).
        cif: CIF text of the structure when it has not been parsed yet (or to persist it).
        duplicate_ids: external ids of entries merged into this one by deduplication.
    """

    source: str
    external_id: str
    formula: str
    structure: Structure | None = field(default=None, repr=False)
    energy_above_hull: float | None = None
    is_stable: bool | None = None
    theoretical: bool | None = None
    spacegroup_symbol: str | None = None
    spacegroup_number: int | None = None
    nsites: int | None = None
    content_hash: str | None = None
    cif: str | None = field(default=None, repr=False)
    duplicate_ids: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.source not in SOURCE_KINDS:
            raise ValueError(f"candidate {self.external_id!r}: unknown source {self.source!r} (one of {SOURCE_KINDS})")
        if self.structure is None and not self.cif:
            raise ValueError(f"candidate {self.external_id!r} from {self.source!r} has neither a structure nor CIF text")
        if self.spacegroup_symbol is None and self.spacegroup_number is not None:
            self.spacegroup_symbol = spacegroup_symbol_for_number(self.spacegroup_number)

    @property
    def key(self) -> tuple[str, str]:
        """``(source, external_id)``: unique within one matching run."""
        return self.source, self.external_id

    def get_structure(self) -> Structure:
        """The structure, parsing the CIF text on first use (the result is kept).

        Returns:
            The pymatgen structure.

        Raises:
            cosnet_core.structure.StructureError: the CIF text cannot be parsed (names the candidate).
        """
        if self.structure is None:
            from cosnet_core.structure_io import StructureError, load_structure

            try:
                self.structure = load_structure(self.cif or "")
            except StructureError as error:
                raise StructureError(f"{self.source}:{self.external_id}", error.reason) from error
            if self.nsites is None:
                self.nsites = len(self.structure)
        return self.structure

    def get_content_hash(self) -> str:
        """Content hash of the structure (computed once, parsing the CIF if needed).

        Returns:
            64 hex characters, stable under site order (see :func:`cosnet_core.structure.structure_hash`).
        """
        if self.content_hash is None:
            from cosnet_core.structure_io import structure_hash

            self.content_hash = structure_hash(self.get_structure())
        return self.content_hash

    def get_cif(self) -> str:
        """CIF text of the structure (the stored text, or written from the structure by pymatgen's CifWriter)."""
        if not self.cif:
            from pymatgen.io.cif import CifWriter

            self.cif = str(CifWriter(self.get_structure()))
        return self.cif

    def composition(self) -> Composition:
        """Reduced composition of the candidate (from its formula; no structure parsing)."""
        return Composition(self.formula)

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready record (structure as CIF text) for persistence; inverse of :meth:`from_dict`."""
        return {
            "source": self.source,
            "external_id": self.external_id,
            "formula": self.formula,
            "cif": self.get_cif(),
            "energy_above_hull": self.energy_above_hull,
            "is_stable": self.is_stable,
            "theoretical": self.theoretical,
            "spacegroup_symbol": self.spacegroup_symbol,
            "spacegroup_number": self.spacegroup_number,
            "nsites": self.nsites,
            "content_hash": self.content_hash,
            "duplicate_ids": list(self.duplicate_ids),
        }

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> StructureCandidate:
        """Rebuild a candidate from :meth:`to_dict` output (the CIF is parsed lazily).

        Args:
            record: a dict with at least ``source``, ``external_id``, ``formula`` and ``cif``.

        Returns:
            The candidate.

        Raises:
            ValueError: a required key is missing (named).
        """
        missing = [name for name in ("source", "external_id", "formula", "cif") if not record.get(name)]
        if missing:
            raise ValueError(f"structure record {record.get('external_id')!r} lacks {', '.join(missing)}")
        return cls(
            source=record["source"],
            external_id=str(record["external_id"]),
            formula=record["formula"],
            cif=record["cif"],
            energy_above_hull=record.get("energy_above_hull"),
            is_stable=record.get("is_stable"),
            theoretical=record.get("theoretical"),
            spacegroup_symbol=record.get("spacegroup_symbol"),
            spacegroup_number=record.get("spacegroup_number"),
            nsites=record.get("nsites"),
            content_hash=record.get("content_hash"),
            duplicate_ids=list(record.get("duplicate_ids") or []),
        )


@runtime_checkable
class StructureSource(Protocol):
    """Anything that proposes structures for a composition.

    Attributes:
        name: short name used in messages and provenance (``"materials_project"``, ``"library"`` …).
    """

    name: str

    def search_formula(self, reduced_formula: str) -> list[StructureCandidate]:
        """Structures whose reduced formula is exactly ``reduced_formula`` (pymatgen's reduced formula)."""
        ...

    def search_chemsys(self, elements: Iterable[str]) -> list[StructureCandidate]:
        """Structures made of exactly these elements (no more, no fewer), any stoichiometry."""
        ...
