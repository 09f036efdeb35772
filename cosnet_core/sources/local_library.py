"""Local structure sources: a library of CIFs or structure tables, and the structures of an uploaded dataset.

:class:`StructureLibrary` is filled from CIF files, a zip of CIFs, or a CSV/JSON table with a ``cif`` column (such
as the shared ``mp_structure_library.csv.gz``: ``material_id, reduced_formula, cif, spacegroup_number, nsites …``).
Entries are

* **deduplicated** with pymatgen's ``StructureMatcher``, comparing an entry only with the entries of the same
  reduced formula (two structures with different reduced formulas can never match), so a library of thousands of
  structures is deduplicated by parsing only the CIFs whose formula occurs more than once;
* **indexed** by reduced formula and by element set, so :meth:`search_formula` and :meth:`search_chemsys` are
  dictionary look-ups and never parse a CIF (CIF text is parsed on first use of a candidate's structure);
* **serialisable** to a list of plain dicts with the CIF text (:meth:`StructureLibrary.to_records`), which the
  database layer persists and :meth:`StructureLibrary.from_records` reads back.

:class:`DatasetStructures` wraps the structures that came with an uploaded dataset, keyed by entry id or file name.
"""

from __future__ import annotations

import functools
import json
import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from pymatgen.core import Composition

from cosnet_core.cif_zip import CifZipError, member_base_name, read_cif_zip
from cosnet_core.errors import InputError
from cosnet_core.sources.base import StructureCandidate, element_set
from cosnet_core.structure_table import StructureTableError, StructureTableRow, read_structure_table

if TYPE_CHECKING:
    from pymatgen.core import Structure

logger = logging.getLogger(__name__)

CIF_SUFFIXES = (".cif", ".mcif")


class LibraryImportError(InputError):
    """A file, zip member or table row that cannot become a library entry.

    Attributes:
        item: the file name, zip member or ``"<file> row <n>"``.
        reason: why.
    """


def structure_matcher():
    """The ``StructureMatcher`` used for deduplication (pymatgen defaults: ltol 0.2, stol 0.3, angle_tol 5°).

    Returns:
        A matcher that reduces both structures to primitive cells and allows any scaling of the volume
        (``scale=True``), so a translated, permuted or supercell copy of a structure matches it.
    """
    from pymatgen.analysis.structure_matcher import StructureMatcher

    return StructureMatcher(ltol=0.2, stol=0.3, angle_tol=5, primitive_cell=True, scale=True)


@functools.lru_cache(maxsize=65_536)
def _reduced_formula(text: str) -> str:
    """pymatgen's reduced formula of ``text`` (memoised: misses of a bulk match look the same formulas up again)."""
    return Composition(text).reduced_formula


def candidate_from_structure(
    structure: Structure, external_id: str, *, source: str = "library", cif: str | None = None, **properties: Any
) -> StructureCandidate:
    """A candidate for an already parsed structure (formula, space group, sites and content hash filled in).

    Args:
        structure: the structure.
        external_id: its identifier (file name, entry id).
        source: ``"library"``, ``"dataset"`` or ``"upload"``.
        cif: the original CIF text, kept for persistence when given.
        **properties: further candidate fields known from elsewhere (e.g. ``energy_above_hull``, ``theoretical``,
            or a ``spacegroup_number``/``spacegroup_symbol`` read from a table, which then is not recomputed).

    Returns:
        The candidate.
    """
    from cosnet_core.structure_io import space_group, structure_hash

    number = properties.pop("spacegroup_number", None)
    symbol = properties.pop("spacegroup_symbol", None)
    if number is None:
        symbol, number = space_group(structure)
    return StructureCandidate(
        source=source,
        external_id=external_id,
        formula=structure.composition.reduced_formula,
        structure=structure,
        spacegroup_symbol=symbol,
        spacegroup_number=number,
        nsites=len(structure),
        content_hash=structure_hash(structure),
        cif=cif,
        **properties,
    )


def candidate_from_cif(cif_text: str, external_id: str, *, source: str = "upload") -> StructureCandidate:
    """Parse a CIF (e.g. the user's own structure attached during review) into a candidate.

    Args:
        cif_text: the CIF text.
        external_id: its name (usually the file name).
        source: ``"upload"`` (default), ``"library"`` or ``"dataset"``.

    Returns:
        The candidate, with formula, space group, sites and content hash filled in and the CIF text kept.

    Raises:
        LibraryImportError: the CIF cannot be parsed (names the file and the reason).
    """
    from cosnet_core.structure_io import StructureError, load_structure

    try:
        structure = load_structure(cif_text)
    except StructureError as error:
        raise LibraryImportError(external_id, error.reason) from error
    return candidate_from_structure(structure, external_id, source=source, cif=cif_text)


class StructureLibrary:
    """A deduplicated, indexed collection of structures (a :class:`~cosnet_core.sources.base.StructureSource`).

    Args:
        name: the source name used in provenance (default ``"library"``).
        source: the ``source`` label of its candidates (``"library"``, ``"dataset"`` or ``"upload"``).

    Attributes:
        duplicates: ``{dropped external id: kept external id}`` for every entry merged by deduplication.
    """

    def __init__(self, name: str = "library", *, source: str = "library") -> None:
        self.name = name
        self.source = source
        self.duplicates: dict[str, str] = {}
        self._entries: list[StructureCandidate] = []
        self._ids: dict[str, int] = {}
        self._by_formula: dict[str, list[int]] = defaultdict(list)
        self._by_elements: dict[frozenset[str], list[int]] = defaultdict(list)
        self._fractions: list[dict[str, float]] = []

    # -- container -----------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self):
        return iter(self._entries)

    def __contains__(self, external_id: object) -> bool:
        return external_id in self._ids

    def get(self, external_id: str) -> StructureCandidate:
        """The entry with this id (or the entry a duplicate with this id was merged into).

        Raises:
            KeyError: unknown id.
        """
        external_id = self.duplicates.get(external_id, external_id)
        return self._entries[self._ids[external_id]]

    @property
    def formulas(self) -> set[str]:
        """Reduced formulas present in the library."""
        return set(self._by_formula)

    def fractions(self, candidate: StructureCandidate) -> dict[str, float]:
        """Fractional composition (amounts summing to 1) of an entry, computed once at indexing time."""
        return self._fractions[self._ids[candidate.external_id]]

    # -- adding --------------------------------------------------------------------------------------------
    def _index(self, candidate: StructureCandidate) -> None:
        if candidate.external_id in self._ids:
            raise LibraryImportError(candidate.external_id, "an entry with this id is already in the library")
        composition = Composition(candidate.formula)
        candidate.formula = composition.reduced_formula
        position = len(self._entries)
        self._entries.append(candidate)
        self._ids[candidate.external_id] = position
        self._by_formula[candidate.formula].append(position)
        self._by_elements[element_set(el.symbol for el in composition.elements)].append(position)
        self._fractions.append(dict(composition.fractional_composition.get_el_amt_dict()))

    def find_duplicate(self, candidate: StructureCandidate) -> StructureCandidate | None:
        """An entry already in the library that ``StructureMatcher`` finds equal to ``candidate``, if any.

        Only entries with the same reduced formula are compared (and parsed).

        Args:
            candidate: the newcomer.

        Returns:
            The matching entry, or None.
        """
        same_formula = self._by_formula.get(_reduced_formula(candidate.formula), [])
        if not same_formula:
            return None
        matcher = structure_matcher()
        new_structure = candidate.get_structure()
        for position in same_formula:
            existing = self._entries[position]
            if matcher.fit(existing.get_structure(), new_structure):
                return existing
        return None

    def add(self, candidate: StructureCandidate, *, deduplicate: bool = True) -> StructureCandidate:
        """Add one entry, unless it duplicates an existing one.

        Args:
            candidate: the entry; its ``external_id`` must be new.
            deduplicate: compare with same-formula entries by ``StructureMatcher`` first.

        Returns:
            The entry now standing for this structure: ``candidate``, or the existing entry it duplicates (whose
            ``duplicate_ids`` then lists the newcomer's id).
        """
        if deduplicate:
            existing = self.find_duplicate(candidate)
            if existing is not None:
                existing.duplicate_ids.append(candidate.external_id)
                self.duplicates[candidate.external_id] = existing.external_id
                logger.info("library %s: %s duplicates %s", self.name, candidate.external_id, existing.external_id)
                return existing
        self._index(candidate)
        return candidate

    def extend(self, candidates: Iterable[StructureCandidate], *, deduplicate: bool = True) -> int:
        """Add many entries; deduplication groups them by reduced formula first, so only formulas that occur more
        than once (in the library or among the newcomers) have their CIFs parsed.

        Args:
            candidates: the new entries.
            deduplicate: merge structures that ``StructureMatcher`` finds equal.

        Returns:
            The number of entries actually added.
        """
        candidates = list(candidates)
        if not deduplicate:
            for candidate in candidates:
                self._index(candidate)
            return len(candidates)
        groups: dict[str, list[StructureCandidate]] = defaultdict(list)
        for candidate in candidates:
            groups[_reduced_formula(candidate.formula)].append(candidate)
        added = 0
        for formula, group in groups.items():
            existing = [self._entries[position] for position in self._by_formula.get(formula, [])]
            if len(group) == 1 and not existing:
                self._index(group[0])
                added += 1
                continue
            added += self._merge_group(existing, group)
        return added

    def _merge_group(self, existing: list[StructureCandidate], newcomers: list[StructureCandidate]) -> int:
        """Deduplicate newcomers of one reduced formula against each other and the existing entries.

        ``StructureMatcher.group_structures`` reduces every structure once, then compares within the group.
        In each group of equal structures the existing entry (or else the first newcomer) is kept.
        """
        everyone = existing + newcomers
        by_structure = {id(candidate.get_structure()): candidate for candidate in everyone}
        groups = structure_matcher().group_structures([candidate.get_structure() for candidate in everyone])
        order = {id(candidate): position for position, candidate in enumerate(everyone)}
        added = 0
        for group in groups:
            members = sorted((by_structure[id(structure)] for structure in group), key=lambda c: order[id(c)])
            keeper = members[0]
            if keeper in newcomers:
                self._index(keeper)
                added += 1
            for member in members[1:]:
                if member in existing:  # two old entries judged equal now: keep both, they were kept before
                    continue
                keeper.duplicate_ids.append(member.external_id)
                self.duplicates[member.external_id] = keeper.external_id
                logger.info("library %s: %s duplicates %s", self.name, member.external_id, keeper.external_id)
        return added

    # -- searching (the StructureSource protocol) ----------------------------------------------------------
    def search_formula(self, reduced_formula: str) -> list[StructureCandidate]:
        """Entries whose reduced formula is ``reduced_formula`` (any order/scale of the formula is accepted)."""
        positions = self._by_formula.get(reduced_formula)
        if positions is None:
            try:
                positions = self._by_formula.get(_reduced_formula(reduced_formula), [])
            except Exception:
                return []
        return [self._entries[position] for position in positions]

    def search_chemsys(self, elements: Iterable[str]) -> list[StructureCandidate]:
        """Entries made of exactly these elements."""
        return [self._entries[position] for position in self._by_elements.get(element_set(elements), [])]

    # -- importing -----------------------------------------------------------------------------------------
    def add_cif(self, cif_text: str, external_id: str, *, deduplicate: bool = True) -> StructureCandidate:
        """Parse one CIF and add it.

        Args:
            cif_text: the CIF text.
            external_id: its name (usually the file name).
            deduplicate: see :meth:`add`.

        Returns:
            The entry standing for the structure (see :meth:`add`).

        Raises:
            LibraryImportError: the CIF cannot be parsed (names the file and the reason).
        """
        candidate = candidate_from_cif(cif_text, external_id, source=self.source)
        return self.add(candidate, deduplicate=deduplicate)

    def add_cif_files(self, paths: Iterable[str | Path], *, deduplicate: bool = True) -> list[StructureCandidate]:
        """Add CIF files (the file name is the entry id).

        Raises:
            LibraryImportError: a file cannot be read or parsed (names it).
        """
        added = []
        for path in map(Path, paths):
            try:
                text = path.read_text(encoding="utf-8-sig", errors="replace")
            except OSError as error:
                raise LibraryImportError(path.name, f"cannot be read ({error})") from error
            added.append(self.add_cif(text, path.name, deduplicate=deduplicate))
        return added

    def add_cif_zip(self, zip_file: str | Path | bytes, *, deduplicate: bool = True) -> list[StructureCandidate]:
        """Add every ``.cif`` member of a zip archive (member base name = entry id; other members are ignored).

        Args:
            zip_file: path to the archive or its bytes (an upload).
            deduplicate: see :meth:`add`.

        Returns:
            The entries standing for the archive's structures, in archive order.

        The archive is read by :func:`cosnet_core.cif_zip.read_cif_zip`, with the upload limits of
        :class:`cosnet_core.upload_limits.IngestLimits` (members, unpacked sizes, paths that leave the archive).

        Raises:
            LibraryImportError: not a zip, beyond a limit, a member whose path leaves the archive, no CIF inside,
                or a member that cannot be parsed (named).
        """
        label = "uploaded zip" if isinstance(zip_file, bytes) else Path(zip_file).name
        try:
            data = zip_file if isinstance(zip_file, bytes) else Path(zip_file).read_bytes()
            members = read_cif_zip(data)
        except OSError as error:
            raise LibraryImportError(label, f"not a readable zip archive ({error})") from error
        except CifZipError as error:
            raise LibraryImportError(f"{label}: {error.item}" if error.item else label, error.reason) from error
        if not members:
            raise LibraryImportError(label, "the archive holds no .cif file")
        added = []
        for name, member_data in members.items():
            member = member_base_name(name)
            try:
                added.append(self.add_cif(member_data.decode("utf-8-sig", errors="replace"), member,
                                          deduplicate=deduplicate))
            except LibraryImportError as error:
                raise LibraryImportError(f"{label}: {member}", error.reason) from error
        return added

    def add_table(
        self, table: str | Path | pd.DataFrame, *, deduplicate: bool = True, label: str | None = None
    ) -> int:
        """Add the rows of a CSV (optionally gzipped) or JSON table of structures.

        Columns: an id (``material_id``, ``id``, ``external_id``, ``name`` or ``filename``), ``cif`` (CIF text),
        and optionally a formula (``reduced_formula``, ``formula_pretty`` or ``formula``; read from the CIF when
        absent), ``spacegroup_number``, ``spacegroup_symbol``, ``nsites``, ``energy_above_hull``, ``is_stable``,
        ``theoretical``. Rows with a formula are indexed without parsing their CIF.

        Args:
            table: a path (``.csv``, ``.csv.gz``, ``.json``, ``.json.gz``) or a DataFrame.
            deduplicate: see :meth:`extend`.
            label: name used in messages (defaults to the file name).

        Returns:
            The number of entries added.

        Raises:
            LibraryImportError: unreadable file, missing id or cif column, or a bad row (named by number).
        """
        if label is None:
            label = "table" if isinstance(table, pd.DataFrame) else Path(table).name
        try:
            rows = read_structure_table(table, label)
        except StructureTableError as error:
            raise LibraryImportError(error.item or label, error.reason) from error
        return self.extend([self._row_candidate(row) for row in rows], deduplicate=deduplicate)

    def _row_candidate(self, row: StructureTableRow) -> StructureCandidate:
        if row.formula:
            try:
                formula = _reduced_formula(row.formula)
            except Exception as error:
                raise LibraryImportError(row.item, f"formula {row.formula!r} cannot be parsed") from error
            candidate = StructureCandidate(
                source=self.source,
                external_id=row.external_id,
                formula=formula,
                cif=row.cif,
                spacegroup_number=row.properties["spacegroup_number"],
                spacegroup_symbol=row.properties["spacegroup_symbol"],
                nsites=row.nsites,
            )
        else:
            from cosnet_core.structure_io import StructureError, load_structure

            try:
                structure = load_structure(row.cif)
            except StructureError as error:
                raise LibraryImportError(row.item, error.reason) from error
            candidate = candidate_from_structure(structure, row.external_id, source=self.source, cif=row.cif)
        candidate.energy_above_hull = row.properties["energy_above_hull"]
        candidate.is_stable = row.properties["is_stable"]
        candidate.theoretical = row.properties["theoretical"]
        return candidate

    # -- persistence ---------------------------------------------------------------------------------------
    def to_records(self) -> list[dict[str, Any]]:
        """Every entry as a plain dict with its CIF text (see :meth:`StructureCandidate.to_dict`)."""
        return [entry.to_dict() for entry in self._entries]

    @classmethod
    def from_records(
        cls, records: Iterable[Mapping[str, Any]], *, name: str = "library", source: str = "library"
    ) -> StructureLibrary:
        """Rebuild a library from :meth:`to_records` output (no CIF parsing, no deduplication).

        Args:
            records: the stored dicts.
            name: source name.
            source: candidates' source label.

        Returns:
            The library, with ``duplicates`` restored from the records' ``duplicate_ids``.
        """
        library = cls(name, source=source)
        for record in records:
            candidate = StructureCandidate.from_dict(dict(record))
            library._index(candidate)
            for duplicate in candidate.duplicate_ids:
                library.duplicates[duplicate] = candidate.external_id
        return library

    def to_json(self) -> str:
        """:meth:`to_records` as JSON text."""
        return json.dumps(self.to_records())

    @classmethod
    def from_json(cls, text: str, **kwargs: Any) -> StructureLibrary:
        """Inverse of :meth:`to_json`."""
        return cls.from_records(json.loads(text), **kwargs)

    # -- convenience constructors --------------------------------------------------------------------------
    @classmethod
    def from_cif_files(cls, paths: Iterable[str | Path], *, deduplicate: bool = True, **kwargs: Any) -> StructureLibrary:
        """A new library from CIF files (see :meth:`add_cif_files`)."""
        library = cls(**kwargs)
        library.add_cif_files(paths, deduplicate=deduplicate)
        return library

    @classmethod
    def from_zip(cls, zip_file: str | Path | bytes, *, deduplicate: bool = True, **kwargs: Any) -> StructureLibrary:
        """A new library from a zip of CIFs (see :meth:`add_cif_zip`)."""
        library = cls(**kwargs)
        library.add_cif_zip(zip_file, deduplicate=deduplicate)
        return library

    @classmethod
    def from_table(
        cls, table: str | Path | pd.DataFrame, *, deduplicate: bool = True, label: str | None = None, **kwargs: Any
    ) -> StructureLibrary:
        """A new library from a CSV/JSON table of structures (see :meth:`add_table`)."""
        library = cls(**kwargs)
        library.add_table(table, deduplicate=deduplicate, label=label)
        return library


class DatasetStructures(StructureLibrary):
    """The structures that came with an uploaded dataset, as a source (``source="dataset"``).

    They are not deduplicated: two rows may legitimately carry the same structure.

    Args:
        structures: ``{entry id or file name: Structure}``.
        name: source name (default ``"dataset"``).
    """

    def __init__(self, structures: Mapping[str, Structure] | None = None, *, name: str = "dataset") -> None:
        super().__init__(name, source="dataset")
        for external_id, structure in (structures or {}).items():
            self.add(candidate_from_structure(structure, str(external_id), source="dataset"), deduplicate=False)
