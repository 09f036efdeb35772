"""Which column of an uploaded table holds the formula, the target and the optional roles.

:class:`ColumnMapping` (validated against the table's columns) and :func:`suggest_mapping`, which proposes one
from the column names; the second step of :mod:`cosnet_core.ingest`. Pure: no torch, no streamlit, no database.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, fields

from cosnet_core.upload_limits import IngestError


@dataclass
class ColumnMapping:
    """Which column of the file holds what.

    Attributes:
        formula: the chemical formula (required).
        target: the measured property (required).
        id: a sample identifier (also used to match CIF files by name).
        structure_file: the CIF file name of the row's structure.
        mp_id: a Materials Project id.
        temperature: the measurement temperature (in the unit of the file; the window uses the same unit).
        split: a given train/val/test assignment.
        reference: the source (DOI or citation); a year inside it serves the "most recent" policy.
        year: the publication year, or a date (``2019-05-01``, ``05/2019``): its year serves "most recent".
        censored_flag: a yes/no column saying "this value is an upper bound" (``censored``, ``upper_bound``…):
            a row flagged yes is censored like a ``<1E-10`` value (see :func:`parse_flag` for what counts as yes/no).
        extra: further columns kept as metadata.
    """

    formula: str | None = None
    target: str | None = None
    id: str | None = None
    structure_file: str | None = None
    mp_id: str | None = None
    temperature: str | None = None
    split: str | None = None
    reference: str | None = None
    year: str | None = None
    censored_flag: str | None = None
    extra: tuple[str, ...] = ()

    def optional_fields(self) -> dict[str, str]:
        """The optional roles that are mapped, ``{role: column}``."""
        roles = ("id", "structure_file", "mp_id", "temperature", "split", "reference", "year", "censored_flag")
        return {role: getattr(self, role) for role in roles if getattr(self, role)}

    def validate(self, columns: Sequence[str]) -> None:
        """Check that the mapping fits the table.

        Args:
            columns: the table's column names.

        Raises:
            IngestError: formula or target not chosen, a mapped column missing from the table (named), or one
                column used for two roles.
        """
        for role in ("formula", "target"):
            if not getattr(self, role):
                raise IngestError(f"choose the {role} column (required)")
        available = set(columns)
        used: dict[str, str] = {}
        for spec in fields(self):
            if spec.name == "extra":
                continue
            column = getattr(self, spec.name)
            if not column:
                continue
            if column not in available:
                raise IngestError(
                    f"the {spec.name.replace('_', ' ')} column {column!r} is not in the file; "
                    f"its columns are: {', '.join(repr(c) for c in columns)}"
                )
            if column in used:
                raise IngestError(
                    f"the column {column!r} is mapped twice (as {used[column]} and as {spec.name})"
                )
            used[column] = spec.name
        missing_extra = [c for c in self.extra if c not in available]
        if missing_extra:
            raise IngestError(
                f"the extra column(s) {', '.join(repr(c) for c in missing_extra)} are not in the file"
            )


def _normalise_name(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


# For each role: normalised names, best first; a name matches exactly or, where marked with "*", as a prefix.
_NAME_GUESSES: dict[str, tuple[str, ...]] = {
    "formula": (
        "formula",
        "composition",
        "reducedcomposition",
        "reducedformula",
        "prettyformula",
        "chemicalformula",
        "compound",
        "material",
        "formula*",
        "composition*",
    ),
    "target": (
        "target",
        "y",
        "property",
        "value",
        "ionicconductivity*",
        "conductivity*",
        "sigma*",
        "gapexpt",
        "exptgap",
        "bandgap*",
        "exptforme",
        "target*",
    ),
    "id": ("id", "sampleid", "entryid", "name", "identifier", "key", "sample"),
    "structure_file": (
        "structurefile",
        "ciffile",
        "cifname",
        "ciffilename",
        "cif",
        "ciffilepath",
        "filename",
    ),
    "mp_id": ("mpid", "likelympid", "materialsprojectid", "materialid", "mpids"),
    "temperature": ("temperature", "temperaturec", "temperaturek", "temp", "tc", "tk", "temperature*"),
    "split": ("split", "subset", "set", "fold", "partition"),
    "reference": ("doi", "reference", "source", "ref", "citation", "paper"),
    "year": ("year", "publicationyear", "pubyear", "date", "publicationdate"),
    "censored_flag": (
        "censored", "iscensored", "upperbound", "isupperbound", "censoredupperbound", "censored*", "upperbound*",
    ),
}


def suggest_mapping(columns: Sequence[str]) -> ColumnMapping:
    """Guess the mapping from common column names (the user confirms or edits it).

    Recognises e.g. ``composition`` / ``formula`` / ``Reduced Composition`` as the formula and ``target`` /
    ``Ionic conductivity (S cm-1)`` / ``gap expt`` as the target. Columns not given a role become ``extra``.

    Args:
        columns: the table's column names.

    Returns:
        A mapping; ``formula`` or ``target`` is ``None`` when no column name suggests it.
    """
    normalised = {column: _normalise_name(column) for column in columns}
    chosen: dict[str, str] = {}
    taken: set[str] = set()
    for role, guesses in _NAME_GUESSES.items():
        for guess in guesses:
            prefix = guess.endswith("*")
            stem = guess.rstrip("*")
            match = next(
                (
                    column
                    for column in columns
                    if column not in taken
                    and (normalised[column].startswith(stem) if prefix else normalised[column] == stem)
                ),
                None,
            )
            if match is not None:
                chosen[role] = match
                taken.add(match)
                break
    extra = tuple(column for column in columns if column not in taken)
    return ColumnMapping(**chosen, extra=extra)
