"""The Materials Project as a structure source, through the official ``mp-api`` client (``MPRester``).

Searches ``materials/summary`` by reduced formula (``formula=``) and by chemical system (``chemsys=``), asking only
for the fields the matcher needs (:data:`SUMMARY_FIELDS`), excluding deprecated materials.

The API key comes from the ``api_key`` argument, else :func:`cosnet_core.settings.materials_project_key`
(``MP_API_KEY``, ``PMG_MAPI_KEY``, then ``MP_API_KEY`` in ``.streamlit/secrets.toml``; the page passes a typed key
as the argument). The key is kept
only in memory: it is never logged, never stored and never part of an exception message (messages are scrubbed).
The endpoint is the ``endpoint`` argument, else ``MP_API_ENDPOINT``, else the client's default
(``https://api.materialsproject.org/``), so tests can point the real client at a local server.

Every failure becomes :class:`~cosnet_core.sources.base.SourceUnavailable` with a message for the user: no key,
a malformed key, the server unreachable (no network, connection refused), the key refused (HTTP 401/403), or any
other error of the API.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Iterable
from typing import Any

from cosnet_core.settings import MP_KEY_VARIABLES, SETTINGS, materials_project_key
from cosnet_core.sources.base import SourceUnavailable, StructureCandidate, chemsys_string, element_set

logger = logging.getLogger(__name__)

SOURCE_NAME = "materials_project"
SUMMARY_FIELDS: tuple[str, ...] = (
    "material_id",
    "formula_pretty",
    "structure",
    "energy_above_hull",
    "is_stable",
    "theoretical",
    "symmetry",
    "nsites",
)
API_KEY_LENGTH = 32  # mp-api refuses other lengths before sending anything
KEY_ENVIRONMENT_VARIABLES = MP_KEY_VARIABLES
ENDPOINT_ENVIRONMENT_VARIABLE = SETTINGS.mp_api_endpoint.variable


def resolve_api_key(api_key: str | None = None) -> str | None:
    """The API key to use: the argument, else :func:`cosnet_core.settings.materials_project_key` (None when none
    is set)."""
    if api_key and api_key.strip():
        return api_key.strip()
    return materials_project_key()[0]


def resolve_endpoint(endpoint: str | None = None) -> str | None:
    """The endpoint URL: the argument, else ``MP_API_ENDPOINT``; None means the client's default."""
    value = endpoint or SETTINGS.mp_api_endpoint.get()
    if value and not value.endswith("/"):
        value += "/"
    return value


def _field(document: Any, name: str) -> Any:
    """A field of a summary document, whether the client returned a dict or a document model."""
    if isinstance(document, dict):
        return document.get(name)
    return getattr(document, name, None)


class MaterialsProjectSource:
    """Materials Project structures by formula or chemical system (a ``StructureSource``).

    The client is created on the first search (creating it contacts the server), and results are cached per
    query for the life of the object.

    Args:
        api_key: the key; falls back to ``MP_API_KEY``, ``PMG_MAPI_KEY``, then the secrets file.
        endpoint: the API's base URL; falls back to ``MP_API_ENDPOINT`` then the client default.
        timeout_s: per-request timeout in seconds.
        include_deprecated: also return deprecated materials.

    Raises:
        SourceUnavailable: no key, or a key that is not 32 characters (the message never shows the key).
    """

    name = SOURCE_NAME

    def __init__(
        self,
        api_key: str | None = None,
        endpoint: str | None = None,
        *,
        timeout_s: int = 20,
        include_deprecated: bool = False,
    ) -> None:
        key = resolve_api_key(api_key)
        if key is None:
            raise _unavailable(
                "no API key: set the MP_API_KEY environment variable, add it to the app's secrets or type it in "
                "(get a key at https://next-gen.materialsproject.org/api)"
            )
        if len(key) != API_KEY_LENGTH:
            raise _unavailable(
                f"the API key is malformed (Materials Project keys are {API_KEY_LENGTH} characters, this one has "
                f"{len(key)}); check that it was copied whole"
            )
        self._api_key = key
        self.endpoint = resolve_endpoint(endpoint)
        self.timeout_s = timeout_s
        self.include_deprecated = include_deprecated
        self._rester: Any = None
        self._cache: dict[tuple[str, str], list[StructureCandidate]] = {}

    def __repr__(self) -> str:  # never show the key
        return f"MaterialsProjectSource(endpoint={self.endpoint or 'default'!r})"

    @property
    def endpoint_label(self) -> str:
        """The endpoint for messages (the client default when none was configured)."""
        return self.endpoint or "https://api.materialsproject.org/"

    # -- client --------------------------------------------------------------------------------------------
    def _client(self) -> Any:
        if self._rester is None:
            try:
                from mp_api.client import MPRester
            except ImportError as error:  # pragma: no cover - mp-api is a pinned dependency
                raise _unavailable(f"the mp-api package is not installed ({error})") from None
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    self._rester = MPRester(
                        api_key=self._api_key,
                        endpoint=self.endpoint,
                        mute_progress_bars=True,
                        timeout=self.timeout_s,
                    )
            except Exception as error:
                raise self._translate(error) from None
        return self._rester

    def close(self) -> None:
        """Close the HTTP session (the source can still be used; a new client is then created)."""
        if self._rester is not None:
            try:
                self._rester.session.close()
            finally:
                self._rester = None

    def __enter__(self) -> MaterialsProjectSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _translate(self, error: BaseException) -> Exception:
        """Turn a client/network error into SourceUnavailable with a clear, key-free message."""
        import requests

        text = self._scrub(str(error))
        if isinstance(error, requests.exceptions.ConnectionError) or "Max retries exceeded" in text or (
            "Connection refused" in text
        ):
            return _unavailable(
                f"cannot reach the Materials Project at {self.endpoint_label} (no network, or the connection was "
                "refused); check the internet connection or try again later"
            )
        if isinstance(error, requests.exceptions.Timeout) or "timed out" in text:
            return _unavailable(f"the Materials Project at {self.endpoint_label} did not answer in time")
        status = re.search(r"status code (\d{3})", text)
        if status and status.group(1) in {"401", "403"}:
            return _unavailable(
                f"the Materials Project refused the API key (HTTP {status.group(1)}); check the key or get a new one "
                "at https://next-gen.materialsproject.org/api"
            )
        first_line = text.strip().splitlines()[0] if text.strip() else type(error).__name__
        return _unavailable(f"the Materials Project request failed ({first_line[:300]})")

    def _scrub(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text

    # -- searching -----------------------------------------------------------------------------------------
    def _search(self, kind: str, value: str) -> list[StructureCandidate]:
        cache_key = (kind, value)
        if cache_key in self._cache:
            return self._cache[cache_key]
        client = self._client()
        criteria: dict[str, Any] = {kind: value}
        if not self.include_deprecated:
            criteria["deprecated"] = False
        logger.info("Materials Project summary search %s=%s", kind, value)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                documents = client.materials.summary.search(fields=list(SUMMARY_FIELDS), **criteria)
        except Exception as error:
            raise self._translate(error) from None
        candidates = [self._candidate(document) for document in documents]
        self._cache[cache_key] = candidates
        return candidates

    def _candidate(self, document: Any) -> StructureCandidate:
        from pymatgen.core import Structure

        structure = _field(document, "structure")
        if isinstance(structure, dict):
            structure = Structure.from_dict(structure)
        symmetry = _field(document, "symmetry")
        number = _field(symmetry, "number") if symmetry is not None else None
        symbol = _field(symmetry, "symbol") if symmetry is not None else None
        energy = _field(document, "energy_above_hull")
        material_id = str(_field(document, "material_id"))
        formula = _field(document, "formula_pretty") or (structure.composition.reduced_formula if structure else "")
        if structure is None:
            raise _unavailable(f"the answer for {material_id} has no structure")
        return StructureCandidate(
            source=SOURCE_NAME,
            external_id=material_id,
            formula=formula,
            structure=structure,
            energy_above_hull=None if energy is None else float(energy),
            is_stable=_field(document, "is_stable"),
            theoretical=_field(document, "theoretical"),
            spacegroup_symbol=symbol,
            spacegroup_number=None if number is None else int(number),
            nsites=_field(document, "nsites") or len(structure),
        )

    def search_formula(self, reduced_formula: str) -> list[StructureCandidate]:
        """Materials with this reduced formula.

        Args:
            reduced_formula: e.g. ``"Li6PS5Br"``.

        Returns:
            The candidates, in the server's order.

        Raises:
            SourceUnavailable: no network, key refused, or another API error.
        """
        return self._search("formula", reduced_formula)

    def search_chemsys(self, elements: Iterable[str]) -> list[StructureCandidate]:
        """Materials made of exactly these elements (chemical system ``"Br-Li-P-S"``).

        Args:
            elements: element symbols.

        Returns:
            The candidates.

        Raises:
            SourceUnavailable: see :meth:`search_formula`.
        """
        symbols = element_set(elements)
        if not symbols:
            return []
        return self._search("chemsys", chemsys_string(symbols))


def _unavailable(reason: str) -> SourceUnavailable:
    return SourceUnavailable(SOURCE_NAME, reason)
