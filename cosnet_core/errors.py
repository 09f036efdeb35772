"""The one base class of input errors: what the user gave that the app refuses, naming the item and the reason.

Every refusal of user input (a formula, a CIF, an uploaded table, a split, a model file, a library entry, a store
request) derives from :class:`InputError`, so a page or the command line can catch ``InputError`` once and show
``str(error)``, which is written for the person who uploaded the input. Torch-free: ``db``, ``ui`` and the
parsing modules import it.
"""

from __future__ import annotations


class InputError(ValueError):
    """Input that is refused, written for the user: ``"<item>: <reason>"``, or just the reason.

    Raised as ``InputError(reason)`` when the message says everything, or ``InputError(item, reason)`` when it
    names a row, file, zip member or entry. Subclasses may describe the item (``formula 'Xx2'``) by overriding
    :meth:`item_label`. The arguments are kept in ``args`` so that the error survives pickling (Ray, processes).

    Attributes:
        item: what was refused (a file, ``"row 12"``, a formula), or None.
        reason: why, in words for the user.
    """

    def __init__(self, item_or_reason: str, reason: str | None = None) -> None:
        if reason is None:
            super().__init__(item_or_reason)
            self.item: str | None = None
            self.reason = str(item_or_reason)
        else:
            super().__init__(item_or_reason, reason)
            self.item = item_or_reason
            self.reason = reason

    def item_label(self) -> str:
        """How the item is named in the message (the item itself unless a subclass says more)."""
        return str(self.item)

    def __str__(self) -> str:
        return self.reason if self.item is None else f"{self.item_label()}: {self.reason}"


__all__ = ["InputError"]
