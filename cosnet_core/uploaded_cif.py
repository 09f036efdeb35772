"""One uploaded CIF read into the facts the Datasets page stores with it (run inside :mod:`cosnet_core.bounded`).

Callers in :mod:`cosnet_core.bounded` pass ``timeout_s=0``: the parent's hard kill is the time limit. The in-process
timer of ``load_structure`` interrupts pymatgen wherever it is, and pymatgen may swallow that and return a
structure built from part of the file.
"""

from __future__ import annotations

from typing import Any


def parse_cif(text: str, max_sites: int, timeout_s: float):
    """The structure of CIF text (bounded in sites and time), for :mod:`cosnet_core.bounded`.

    Raises:
        StructureError: the CIF cannot be used.
    """
    from cosnet_core.structure_io import load_structure

    return load_structure(text if "\n" in text else text + "\n", max_sites=max_sites, timeout_s=timeout_s)


def summarize_cif(text: str, max_sites: int, timeout_s: float) -> dict[str, Any]:
    """Parse CIF text (bounded in sites and time) and describe the structure.

    Args:
        text: the CIF.
        max_sites: largest accepted number of sites.
        timeout_s: parsing time limit (enforced by a timer in the child process's main thread).

    Returns:
        ``cif, content_hash, formula, chemsys, nsites, fractions, spacegroup_symbol, spacegroup_number,
        volume_per_atom, density, is_ordered, pymatgen_json``.

    Raises:
        StructureError: the CIF cannot be used (its ``reason`` says why).
    """
    from dataclasses import asdict

    from cosnet_core.structure_io import load_structure, summarize_structure

    if "\n" not in text:
        text += "\n"  # load_structure reads newline-free short text as a path; a CIF is never a path here
    structure = load_structure(text, max_sites=max_sites, timeout_s=timeout_s)
    return {"cif": text, **asdict(summarize_structure(structure)), "pymatgen_json": structure.to_json()}
