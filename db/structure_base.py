"""What the structure modules of ``db`` share: the error they raise, the review vocabulary, the size limit.

:class:`StructureStoreError` (the item refused and the reason), the decision actions, review filters and bulk
rules the Structures page offers, the accepted file endings, and :func:`configured_max_sites`. Imports no torch.
"""

from __future__ import annotations

from collections.abc import Callable

from cosnet_core.errors import InputError
from cosnet_core.structure_table import ID_COLUMNS, TABLE_SUFFIXES  # noqa: F401  (TABLE_SUFFIXES re-exported)

DEFAULT_REVIEWER = "local"
MAX_SITES_ENV = "COSNET_MAX_STRUCTURE_SITES"  # cosnet_core.settings.SETTINGS.max_structure_sites
DEFAULT_MAX_SITES = 2000  # the same default as cosnet_core.structure.DEFAULT_MAX_SITES and the setting's

ACCEPTING_ACTIONS = ("accept", "choose", "attach", "auto_accept", "bulk_accept")
DECISION_ACTIONS = (*ACCEPTING_ACTIONS, "reject", "revert")
REVIEW_FILTERS: dict[str, str] = {
    "all": "All entries",
    "pending": "Pending review",
    "ambiguous": "Ambiguous (several exact candidates)",
    "approximate": "Approximate (parent structures only)",
    "no_candidate": "No candidate",
    "accepted": "Accepted",
    "rejected": "Rejected",
    "unmatched": "Not matched yet",
}
PENDING_STATES = ("unambiguous", "ambiguous", "approximate")
BULK_RULES: dict[str, str] = {
    "unambiguous_exact": "every pending entry with exactly one exact candidate: accept it",
    "top_exact": "every pending entry with at least one exact candidate: accept the top-ranked exact one",
    "approximate_within": "every approximate entry whose closest candidate lies within a composition distance: "
    "accept that candidate",
}
#: Largest threshold of the ``approximate_within`` rule: the matcher's own limit for approximate candidates.
MAX_BULK_DISTANCE = 0.10
CIF_SUFFIXES = (".cif", ".mcif")
ZIP_SUFFIXES = (".zip",)
TABLE_ID_COLUMNS = ID_COLUMNS  # the id columns of a table of structures (cosnet_core.structure_table)


Progress = Callable[[float, str], None]


MAX_ATTACH_DISTANCE = 0.10  # an attached CIF may be a parent structure of a doped row, not another compound


class StructureStoreError(InputError):
    """Input the structure store refuses, naming the item (file, row, entry, decision) and the reason.

    Attributes:
        item: what was refused, e.g. ``"cifs.zip: ../evil.cif"`` or ``"decision 12"``.
        reason: why, in words for the user.
    """


def default_reviewer() -> str:
    """The reviewer name recorded when none is given (single-user mode; pages pass the logged-in user)."""
    return DEFAULT_REVIEWER


def configured_max_sites() -> int:
    """Largest number of sites accepted in a stored structure (``COSNET_MAX_STRUCTURE_SITES``, default 2000)."""
    from cosnet_core.settings import SETTINGS, SettingError

    try:
        return SETTINGS.max_structure_sites.get()
    except SettingError as error:
        raise StructureStoreError(MAX_SITES_ENV, error.reason) from error
