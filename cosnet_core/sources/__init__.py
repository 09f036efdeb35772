"""Structure sources for matching compositions to crystal structures (see :mod:`cosnet_core.matching`).

* :class:`StructureCandidate`, :class:`StructureSource`, :class:`SourceUnavailable` (:mod:`.base`);
* :class:`StructureLibrary` (CIFs, zips of CIFs, CSV/JSON tables; deduplicated) and :class:`DatasetStructures`
  (:mod:`.local_library`);
* :class:`MaterialsProjectSource`, through the official ``mp-api`` client (:mod:`.materials_project`; the client
  is imported only when a search runs).
"""

from cosnet_core.sources.base import (
    SOURCE_KINDS,
    SourceUnavailable,
    StructureCandidate,
    StructureSource,
    chemsys_string,
    spacegroup_symbol_for_number,
)
from cosnet_core.sources.local_library import (
    DatasetStructures,
    LibraryImportError,
    StructureLibrary,
    candidate_from_cif,
    candidate_from_structure,
)
from cosnet_core.sources.materials_project import MaterialsProjectSource

__all__ = [
    "SOURCE_KINDS",
    "DatasetStructures",
    "LibraryImportError",
    "MaterialsProjectSource",
    "SourceUnavailable",
    "StructureCandidate",
    "StructureLibrary",
    "StructureSource",
    "candidate_from_cif",
    "candidate_from_structure",
    "chemsys_string",
    "spacegroup_symbol_for_number",
]
