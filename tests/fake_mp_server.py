"""A local stand-in for the Materials Project REST API, for tests that drive the real ``mp-api`` client.

The server speaks the wire format that ``mp_api.client.MPRester`` (0.46.x) expects:

* ``GET /heartbeat`` (no key needed) → ``{"status": "OK", "version": <emmet version>, "db_version": ...,
  "access_controlled_batch_ids": []}``. The client calls it when an ``MPRester`` is created.
* ``GET /materials/summary/`` with the query parameters the client builds: ``formula`` and ``chemsys``
  (comma-separated lists allowed), ``material_ids``, ``_fields`` (comma-separated projection) or ``_all_fields``,
  ``_limit`` and ``_skip`` (pagination); other filters (``batch_id_not_eq`` …) are accepted and ignored.
  The answer is ``{"data": [...], "meta": {"total_doc": N, "max_limit": 1000, ...}}``.
* The key travels in the ``x-api-key`` header; a missing or wrong key gets ``401`` with a JSON ``detail`` (the
  real API refuses a bad key on data routes with 401/403; the heartbeat needs no key).

Documents are Materials Project summary documents built from real MP structures: a few rows of
``mp_structure_library.csv.gz`` from the shared data folder (CIF → ``Structure.as_dict()``), or, where that folder
is absent, two structures built in code (NaCl rock salt and diamond Si) so the tests still run.

Typical use::

    with FakeMaterialsProject(documents, api_key=KEY) as server:
        with MPRester(KEY, endpoint=server.url) as rester: ...
"""

from __future__ import annotations

import gzip
import json
import threading
import warnings
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from pymatgen.core import Composition, Lattice, Structure
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

FAKE_API_KEY = "0123456789abcdefABCDEF0123456789"  # 32 characters, the length mp-api accepts
SERVER_EMMET_VERSION = "0.87.2"
SERVER_DB_VERSION = "2025_09_25"
SUMMARY_ROUTE = "/materials/summary/"
MAX_LIMIT = 1000


def summary_document(
    material_id: str,
    structure: Structure,
    *,
    energy_above_hull: float = 0.0,
    theoretical: bool = False,
) -> dict[str, Any]:
    """A Materials Project summary document (the subset of fields the matching code asks for, and a few more).

    Args:
        material_id: the MP id, e.g. ``"mp-22862"``.
        structure: the crystal structure.
        energy_above_hull: eV/atom; ``is_stable`` is true when it is 0.
        theoretical: MP's flag for entries without an ICSD (experimental) counterpart.

    Returns:
        A JSON-ready dict in the wire format of ``/materials/summary/``.
    """
    composition = structure.composition
    analyzer = SpacegroupAnalyzer(structure, symprec=0.1)
    elements = sorted(el.symbol for el in composition.elements)
    return {
        "material_id": material_id,
        "formula_pretty": composition.reduced_formula,
        "formula_anonymous": composition.anonymized_formula,
        "chemsys": "-".join(elements),
        "elements": elements,
        "nelements": len(elements),
        "nsites": len(structure),
        "composition": composition.as_dict(),
        "composition_reduced": composition.reduced_composition.as_dict(),
        "volume": structure.volume,
        "density": structure.density,
        "structure": structure.as_dict(),
        "symmetry": {
            "crystal_system": analyzer.get_crystal_system().title(),
            "symbol": analyzer.get_space_group_symbol(),
            "number": analyzer.get_space_group_number(),
            "point_group": analyzer.get_point_group_symbol(),
            "symprec": 0.1,
            "angle_tolerance": 5.0,
            "version": "2.5.0",
        },
        "energy_above_hull": float(energy_above_hull),
        "is_stable": energy_above_hull <= 0.0,
        "theoretical": bool(theoretical),
        "deprecated": False,
    }


def built_in_documents() -> list[dict[str, Any]]:
    """Two documents built in code (used when the shared data folder is absent).

    Returns:
        NaCl (rock salt, mp-22862) and Si (diamond, mp-149) summary documents.
    """
    nacl = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.69), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    silicon = Structure.from_spacegroup("Fd-3m", Lattice.cubic(5.47), ["Si"], [[0, 0, 0]])
    return [
        summary_document("mp-22862", nacl.get_primitive_structure()),
        summary_document("mp-149", silicon.get_primitive_structure()),
    ]


def library_documents(
    csv_gz_path: Path, material_ids: Iterable[str], properties: dict[str, dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """Summary documents for chosen rows of ``mp_structure_library.csv.gz`` (structures parsed from their CIF).

    Args:
        csv_gz_path: path to the gzipped CSV library.
        material_ids: MP ids to serve; rows are looked up by ``material_id``.
        properties: per id, keyword arguments of :func:`summary_document` (``energy_above_hull``,
            ``theoretical``); the library has no thermodynamic data, so these default to 0 and False.

    Returns:
        One document per id, in the order asked.

    Raises:
        KeyError: an id is not in the library.
    """
    import csv

    wanted = list(material_ids)
    rows: dict[str, dict[str, str]] = {}
    with gzip.open(csv_gz_path, "rt", encoding="utf-8", newline="") as handle:
        csv.field_size_limit(10**8)
        for row in csv.DictReader(handle):
            if row["material_id"] in wanted:
                rows[row["material_id"]] = row
    documents = []
    for material_id in wanted:
        if material_id not in rows:
            raise KeyError(f"{material_id} is not in {csv_gz_path}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            structure = Structure.from_str(rows[material_id]["cif"], fmt="cif")
        documents.append(summary_document(material_id, structure, **(properties or {}).get(material_id, {})))
    return documents


def _matches_formula(document: dict[str, Any], formulas: list[str]) -> bool:
    reduced = document["formula_pretty"]
    for formula in formulas:
        try:
            if Composition(formula).reduced_formula == reduced:
                return True
        except Exception:  # an anonymous or wildcard formula: not supported by this fake
            continue
    return False


def _matches_chemsys(document: dict[str, Any], systems: list[str]) -> bool:
    own = document["chemsys"]
    return any("-".join(sorted(system.split("-"))) == own for system in systems)


class FakeMaterialsProject:
    """A threaded HTTP server on 127.0.0.1 (a free port) that answers like the Materials Project API.

    Args:
        documents: summary documents to serve (see :func:`summary_document`).
        api_key: the only key accepted in the ``x-api-key`` header.

    Attributes:
        url: the endpoint to give ``MPRester(endpoint=...)``, with a trailing slash.
        requests: every request seen, as ``(path, query dict, headers dict)``, for assertions.
    """

    def __init__(self, documents: list[dict[str, Any]], api_key: str = FAKE_API_KEY) -> None:
        self.documents = documents
        self.api_key = api_key
        self.requests: list[tuple[str, dict[str, list[str]], dict[str, str]]] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    # -- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> str:
        """Start serving in a daemon thread.

        Returns:
            The endpoint URL.
        """
        handler = _make_handler(self)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        host, port = self._server.server_address[:2]
        self.url = f"http://{host}:{port}/"
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-mp", daemon=True)
        self._thread.start()
        return self.url

    def stop(self) -> None:
        """Stop serving and free the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeMaterialsProject:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the API ---------------------------------------------------------------------------------------------
    def answer(self, path: str, query: dict[str, list[str]], headers: dict[str, str]) -> tuple[int, Any]:
        """Compute the status code and JSON body for one GET request.

        Args:
            path: URL path.
            query: parsed query string (``parse_qs``).
            headers: request headers, lower-cased names.

        Returns:
            ``(status, body)``.
        """
        if path.rstrip("/") == "/heartbeat":
            return 200, {
                "status": "OK",
                "message": "Materials Project API is up",
                "version": SERVER_EMMET_VERSION,
                "db_version": SERVER_DB_VERSION,
                "access_controlled_batch_ids": [],
            }
        key = headers.get("x-api-key", "")
        if not key:
            return 401, {"detail": "No API key found in request"}
        if key != self.api_key:
            return 401, {"detail": "Invalid authentication credentials"}
        if path != SUMMARY_ROUTE:
            return 404, {"detail": "Not Found"}

        def values(name: str) -> list[str]:
            return [part for raw in query.get(name, []) for part in raw.split(",") if part]

        matched = list(self.documents)
        if formulas := values("formula"):
            matched = [doc for doc in matched if _matches_formula(doc, formulas)]
        if systems := values("chemsys"):
            matched = [doc for doc in matched if _matches_chemsys(doc, systems)]
        if ids := values("material_ids"):
            matched = [doc for doc in matched if doc["material_id"] in ids]
        if deprecated := values("deprecated"):
            wanted = deprecated[0].lower() == "true"
            matched = [doc for doc in matched if bool(doc.get("deprecated", False)) == wanted]
        try:
            limit = int(query.get("_limit", ["100"])[0])
            skip = int(query.get("_skip", ["0"])[0])
        except ValueError:
            return 422, {"detail": [{"loc": ["query", "_limit"], "msg": "value is not a valid integer"}]}
        if limit > MAX_LIMIT:
            return 422, {"detail": [{"loc": ["query", "_limit"], "msg": f"must be <= {MAX_LIMIT}"}]}
        page = matched[skip : skip + limit]
        fields = values("_fields")
        all_fields = query.get("_all_fields", ["false"])[0].lower() == "true"
        if not fields and not all_fields:
            fields = ["material_id"]
        if fields and not all_fields:
            page = [{name: doc[name] for name in fields if name in doc} for doc in page]
        meta = {
            "api_version": SERVER_EMMET_VERSION,
            "time_stamp": "2026-01-01T00:00:00",
            "total_doc": len(matched),
            "max_limit": MAX_LIMIT,
        }
        return 200, {"data": page, "meta": meta}


def _make_handler(server: FakeMaterialsProject) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            parsed = urlparse(self.path)
            query = parse_qs(parsed.query)
            headers = {name.lower(): value for name, value in self.headers.items()}
            server.requests.append((parsed.path, query, headers))
            status, body = server.answer(parsed.path, query, headers)
            payload = json.dumps(body).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:  # silence the default stderr log
            return

    return Handler
