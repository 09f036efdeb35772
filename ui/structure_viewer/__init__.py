"""A 3D crystal-structure viewer for the pages: crystal-toolkit's scene, drawn offline in a static component.

How it works
    :func:`scene_json` turns a pymatgen ``Structure`` into the JSON scene of crystal-toolkit
    (``Structure.get_scene()``, or ``StructureGraph.get_scene()`` when bonds are drawn), passed through
    ``monty.json.jsanitize``. :func:`structure_viewer` sends that scene to a Streamlit component (components v1,
    ``declare_component(name, path=...)``) whose ``index.html`` loads React, ReactDOM, PropTypes and the
    mp-react-components bundle (``window.dash_mp_components.CrystalToolkitScene``) and renders the scene.
    The browser loads those scripts once per viewer iframe; every rerun only sends the scene.

Where the JavaScript comes from
    Nothing is fetched from a CDN and no wheel file is copied into the repository. At import time
    :func:`viewer_frontend_dir` assembles a folder in the app's cache directory (``COSNET_DATA_DIR/cache``):
    ``index.html`` and ``viewer.js`` from ``frontend/`` next to this file, plus hard links (or copies) of
    ``dash/deps/react@18.x.min.js``, ``react-dom@18.x.min.js``, ``prop-types@15.x.min.js`` from the installed
    ``dash`` wheel and ``dash_mp_components/dash_mp_components.min.js`` from the installed ``dash-mp-components``
    wheel. The folder name is a hash of its contents, so an upgrade of either wheel builds a new folder.
    (Symbolic links would not do: Streamlit refuses to serve a component file whose real path leaves the
    component's folder.)

Renderer
    ``renderer="auto"`` uses the value of the environment variable ``COSNET_VIEWER_RENDERER`` (``svg`` or
    ``webgl``) when it is set, and ``webgl`` otherwise. In headless Chromium (browser tests) the ``svg``
    renderer draws at once, while ``webgl`` draws only after an interaction, so tests set
    ``COSNET_VIEWER_RENDERER=svg``. ``webgl`` is faster and smoother for people.

Disorder and size
    Partially occupied sites (most experimental CIFs) are drawn the crystal-toolkit way: each sphere is cut into
    segments, one per species, sized by occupancy, and a white segment marks a vacancy. Bonds are drawn only for
    ordered cells of at most :data:`MAX_BONDED_SITES` sites (bonding a mixed site is not well defined);
    periodic-image atoms on the cell faces only up to :data:`MAX_IMAGE_ATOM_SITES` sites; cells above
    :data:`MAX_VIEWER_SITES` sites are refused with a clear message. The caption under the viewer says which
    of these choices applied.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st
import streamlit.components.v1 as components
from pymatgen.core import Structure

from db.config import cache_dir

RENDERER_ENV = "COSNET_VIEWER_RENDERER"
RENDERERS = ("auto", "svg", "webgl")
MAX_BONDED_SITES = 500
MAX_IMAGE_ATOM_SITES = 500
MAX_VIEWER_SITES = 3000
BOND_CUTOFF_ANGSTROM = 4.0
# Direction (Cartesian, from the cell centre) the camera looks from, and the Cartesian axis drawn upwards:
# a slightly raised three-quarter view, so that a cubic cell is not seen flat down an axis.
CAMERA_VIEW_DIRECTION = (1.0, 0.45, 0.35)
CAMERA_UP = (0.0, 0.0, 1.0)
CAMERA_ZOOM = 4.0  # what CrystalToolkitScene itself sets after fitting its orthographic camera to the scene

FRONTEND_SOURCE_DIR = Path(__file__).parent / "frontend"
#: CSS selectors for browser tests, inside the component's iframe (title ``ui.structure_viewer.structure_scene``):
#: the svg that the ``svg`` renderer draws into once a scene has been rendered, and the ``webgl`` canvas.
SCENE_SVG_SELECTOR = "#scene-root[data-rendered='1'] .three-container > svg"
SCENE_CANVAS_SELECTOR = "#scene-root[data-rendered='1'] .three-container > canvas"
COMPONENT_IFRAME_SELECTOR = "iframe[title='ui.structure_viewer.structure_scene']"


# --------------------------------------------------------------------------------------------------------------
# Scene (pure functions, usable without Streamlit)
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ViewerScene:
    """What the viewer draws for one structure.

    Attributes:
        scene: crystal-toolkit scene as JSON-ready dict (``Scene.to_json()`` through ``jsanitize``).
        legend: element colours, ``[{"color": "#ab5cf2", "label": "Na"}, ...]``.
        caption: one line for people saying what is drawn and which simplifications applied.
        bonds_drawn: whether bonds (a ``StructureGraph``) were drawn.
        camera: initial ``customCameraState`` of ``CrystalToolkitScene`` (see :func:`camera_state`).
    """

    scene: dict[str, Any]
    legend: list[dict[str, str]]
    caption: str
    bonds_drawn: bool
    camera: dict[str, Any]


def camera_state(structure: Structure) -> dict[str, Any]:
    """The initial camera of the viewer: a three-quarter view of the cell with the Cartesian z axis up.

    The scene is centred on the cell (crystal-toolkit's ``origin``), so the camera sits at
    ``distance * CAMERA_VIEW_DIRECTION`` and looks at the origin. three.js cameras look along their own -z axis,
    so the camera's rotation has columns (right, up, backward) with backward = the view direction.

    Args:
        structure: the structure whose cell sets the camera distance.

    Returns:
        ``{"position": {"x", "y", "z"}, "quaternion": {"x", "y", "z", "w"}, "zoom": CAMERA_ZOOM}``.
    """
    import numpy as np
    from scipy.spatial.transform import Rotation

    backward = np.asarray(CAMERA_VIEW_DIRECTION, dtype=float)
    backward /= np.linalg.norm(backward)
    right = np.cross(np.asarray(CAMERA_UP, dtype=float), backward)
    right /= np.linalg.norm(right)
    up = np.cross(backward, right)
    rotation = np.column_stack([right, up, backward])
    qx, qy, qz, qw = Rotation.from_matrix(rotation).as_quat()
    distance = float(np.linalg.norm(structure.lattice.matrix.sum(axis=0))) + 10.0
    px, py, pz = (distance * backward).tolist()
    return {
        "position": {"x": px, "y": py, "z": pz},
        "quaternion": {"x": float(qx), "y": float(qy), "z": float(qz), "w": float(qw)},
        "zoom": CAMERA_ZOOM,
    }


def _check_structure(structure: Structure) -> None:
    """Raise a clear error for anything the viewer cannot draw."""
    if not isinstance(structure, Structure):
        raise TypeError(f"structure viewer needs a pymatgen Structure, got {type(structure).__name__}")
    if len(structure) == 0:
        raise ValueError("structure viewer: the structure has no sites")
    if len(structure) > MAX_VIEWER_SITES:
        raise ValueError(
            f"structure viewer: {structure.composition.reduced_formula} has {len(structure)} sites, more than "
            f"the {MAX_VIEWER_SITES} sites the viewer draws; view a primitive or smaller cell instead"
        )


def build_viewer_scene(structure: Structure, *, bonded: bool = True) -> ViewerScene:
    """Build the crystal-toolkit scene, colour legend and caption for ``structure``.

    Args:
        structure: an ordered or disordered pymatgen structure with 1..MAX_VIEWER_SITES sites.
        bonded: draw nearest-neighbour bonds (``MinimumDistanceNN``) when the cell is ordered and has at most
            ``MAX_BONDED_SITES`` sites.

    Returns:
        The :class:`ViewerScene` to send to the browser.

    Raises:
        TypeError: ``structure`` is not a pymatgen ``Structure``.
        ValueError: the structure is empty or has more than ``MAX_VIEWER_SITES`` sites.
    """
    _check_structure(structure)
    # crystal-toolkit adds ``get_scene`` to pymatgen's classes when imported; the import is slow (it loads Dash),
    # so it happens on first use, not when the pages import this module.
    import crystal_toolkit.renderables.structure  # noqa: F401
    import crystal_toolkit.renderables.structuregraph  # noqa: F401
    from crystal_toolkit.core.legend import Legend
    from monty.json import jsanitize
    from pymatgen.analysis.graphs import StructureGraph
    from pymatgen.analysis.local_env import MinimumDistanceNN

    n_sites = len(structure)
    draw_image_atoms = n_sites <= MAX_IMAGE_ATOM_SITES
    notes = [f"{structure.composition.reduced_formula}", f"{n_sites} sites"]
    n_partial = sum(1 for site in structure if not site.is_ordered)

    bonds_drawn = False
    graph = None
    if bonded and structure.is_ordered and n_sites <= MAX_BONDED_SITES:
        try:
            graph = StructureGraph.from_local_env_strategy(structure, MinimumDistanceNN(cutoff=BOND_CUTOFF_ANGSTROM))
        except ValueError:  # MinimumDistanceNN finds no neighbour within the cutoff for some atom
            notes.append(f"no bonds (an atom has no neighbour within {BOND_CUTOFF_ANGSTROM} Å)")
    if graph is not None:
        scene = graph.get_scene(
            draw_image_atoms=draw_image_atoms,
            bonded_sites_outside_unit_cell=False,
            site_get_scene_kwargs={"draw_polyhedra": False},
        )
        bonds_drawn = True
        notes.append("nearest-neighbour bonds")
    else:
        scene = structure.get_scene(draw_image_atoms=draw_image_atoms)
        if bonded and not structure.is_ordered:
            notes.append("no bonds (disordered cell)")
        elif bonded and n_sites > MAX_BONDED_SITES:
            notes.append(f"no bonds (more than {MAX_BONDED_SITES} sites)")
    if n_partial:
        n_vacancy = sum(1 for site in structure if site.species.num_atoms < 1 - 1e-6)
        vacancy_note = f", white segment = vacancy on {n_vacancy} of them" if n_vacancy else ""
        notes.append(
            f"{n_partial} sites with mixed or partial occupancy drawn as sphere segments sized by occupancy"
            f"{vacancy_note}"
        )
    if not draw_image_atoms:
        notes.append("atoms on cell faces not repeated")

    legend_colors = Legend(structure).get_legend()["colors"]
    legend = [{"color": color, "label": label} for color, label in sorted(legend_colors.items(), key=lambda kv: kv[1])]
    return ViewerScene(
        scene=jsanitize(scene.to_json(), strict=False),
        legend=legend,
        caption=" · ".join(notes),
        bonds_drawn=bonds_drawn,
        camera=camera_state(structure),
    )


def scene_json(structure: Structure, *, bonded: bool = True) -> dict[str, Any]:
    """The crystal-toolkit scene of ``structure`` as a JSON-ready dict (what the browser renders).

    Args:
        structure: an ordered or disordered pymatgen structure.
        bonded: draw bonds when the cell is ordered and small enough (see :func:`build_viewer_scene`).

    Returns:
        ``{"name": ..., "contents": [{"name": "atoms", "contents": [spheres...]}, {"name": "bonds", ...},
        ..., {"name": "unit_cell", ...}], "origin": [...], ...}``.
    """
    return build_viewer_scene(structure, bonded=bonded).scene


def resolve_renderer(renderer: str = "auto") -> str:
    """The three.js renderer the browser should use.

    Args:
        renderer: ``"svg"``, ``"webgl"`` or ``"auto"`` (the ``COSNET_VIEWER_RENDERER`` environment variable when
            set, else ``"webgl"``).

    Returns:
        ``"svg"`` or ``"webgl"``.

    Raises:
        ValueError: an unknown renderer name, in the argument or in the environment variable.
    """
    if renderer not in RENDERERS:
        raise ValueError(f"structure viewer renderer must be one of {RENDERERS}, got {renderer!r}")
    if renderer != "auto":
        return renderer
    from cosnet_core.settings import SETTINGS

    return SETTINGS.viewer_renderer.get()  # a SettingError (a ValueError) names the variable


# --------------------------------------------------------------------------------------------------------------
# Frontend folder assembled from the installed wheels
# --------------------------------------------------------------------------------------------------------------


def _package_dir(package: str) -> Path:
    """Folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"structure viewer: the package {package!r} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def _newest_min_js(folder: Path, library: str, major: int) -> Path:
    """The newest ``<library>@<major>.x.y.min.js`` in ``folder`` (dash ships several React versions)."""
    pattern = re.compile(rf"^{re.escape(library)}@({major})\.(\d+)\.(\d+)\.min\.js$")
    found = []
    for path in folder.glob(f"{library}@*.min.js"):
        match = pattern.match(path.name)
        if match:
            found.append((tuple(int(part) for part in match.groups()), path))
    if not found:
        raise FileNotFoundError(f"structure viewer: no {library}@{major}.x.min.js in {folder}")
    return max(found)[1]


def viewer_script_sources() -> dict[str, Path]:
    """Files the viewer page needs, by the name ``index.html`` uses, resolved in the installed wheels.

    Returns:
        ``{"react.min.js": .../dash/deps/react@18.3.1.min.js, ..., "index.html": ..., "viewer.js": ...}``.

    Raises:
        FileNotFoundError: ``dash`` or ``dash-mp-components`` is missing or lacks a file.
    """
    dash_deps = _package_dir("dash") / "deps"
    bundle = _package_dir("dash_mp_components") / "dash_mp_components.min.js"
    if not bundle.is_file():
        raise FileNotFoundError(f"structure viewer: {bundle} is missing (dash-mp-components wheel)")
    return {
        "react.min.js": _newest_min_js(dash_deps, "react", 18),
        "react-dom.min.js": _newest_min_js(dash_deps, "react-dom", 18),
        "prop-types.min.js": _newest_min_js(dash_deps, "prop-types", 15),
        "dash_mp_components.min.js": bundle,
        "index.html": FRONTEND_SOURCE_DIR / "index.html",
        "viewer.js": FRONTEND_SOURCE_DIR / "viewer.js",
    }


def viewer_frontend_dir(root: Path | None = None) -> Path:
    """Assemble (once) the static folder the component serves, and return it.

    Args:
        root: where to build it; default ``<COSNET_DATA_DIR>/cache/structure_viewer``.

    Returns:
        A folder holding ``index.html``, ``viewer.js`` and the four viewer scripts, named by a hash of their
        contents, so that a folder is never changed once built.
    """
    sources = viewer_script_sources()
    digest = hashlib.sha256()
    for name, path in sorted(sources.items()):
        digest.update(name.encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    root = Path(root) if root is not None else cache_dir() / "structure_viewer"
    target = root / digest.hexdigest()[:16]
    if all((target / name).is_file() for name in sources):
        return target
    root.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=".building-", dir=root))
    try:
        for name, path in sources.items():
            try:
                os.link(path, building / name)
            except OSError:  # another file system, or links not allowed
                shutil.copyfile(path, building / name)
        try:
            building.rename(target)
        except OSError:  # another process built it first
            if not all((target / name).is_file() for name in sources):
                raise
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return target


# Declared once, at import, as Streamlit (and AppTest) require.
_structure_scene_component = components.declare_component("structure_scene", path=str(viewer_frontend_dir()))


def _import_crystal_toolkit() -> None:
    import crystal_toolkit.renderables.structure  # noqa: F401
    import crystal_toolkit.renderables.structuregraph  # noqa: F401


def warm_up_in_background() -> threading.Thread | None:
    """Import crystal-toolkit in a daemon thread so that the first viewer of the session does not wait for it.

    Importing crystal-toolkit loads Dash and all of its components: about 5 s on an idle machine, several times
    that on a busy one. ``app.py`` may call this once at start-up.

    Returns:
        The started thread, or None when crystal-toolkit is already imported.
    """
    if "crystal_toolkit" in sys.modules:
        return None
    thread = threading.Thread(target=_import_crystal_toolkit, name="crystal-toolkit-warm-up", daemon=True)
    thread.start()
    return thread


# --------------------------------------------------------------------------------------------------------------
# Streamlit widget
# --------------------------------------------------------------------------------------------------------------


@st.cache_data(max_entries=64, show_spinner=False)
def _cached_viewer_scene(structure_json: str, bonded: bool) -> ViewerScene:
    """:func:`build_viewer_scene` cached by the structure's JSON, so reruns do not rebuild the scene."""
    return build_viewer_scene(Structure.from_dict(json.loads(structure_json)), bonded=bonded)


def structure_viewer(
    structure: Structure,
    *,
    key: str | None = None,
    height: int = 420,
    renderer: str = "auto",
    bonded: bool = True,
) -> None:
    """Draw ``structure`` in 3D (crystal-toolkit's scene), with a colour legend and a caption.

    A structure the viewer cannot draw (empty, more than ``MAX_VIEWER_SITES`` sites) gets a warning in the page
    instead of an exception.

    Args:
        structure: an ordered or disordered pymatgen structure.
        key: Streamlit key; give one per viewer when a page shows several.
        height: height of the viewer in pixels (100..2000).
        renderer: ``"auto"``, ``"svg"`` or ``"webgl"`` (see :func:`resolve_renderer`).
        bonded: draw bonds when the cell is ordered and small enough.

    Raises:
        ValueError: ``height`` or ``renderer`` is out of range.
        TypeError: ``structure`` is not a pymatgen ``Structure``.
    """
    if not 100 <= int(height) <= 2000:
        raise ValueError(f"structure viewer height must be between 100 and 2000 pixels, got {height}")
    chosen_renderer = resolve_renderer(renderer)
    try:
        _check_structure(structure)
    except ValueError as error:
        st.warning(str(error))
        return
    if "crystal_toolkit" in sys.modules:
        viewer_scene = _cached_viewer_scene(json.dumps(structure.as_dict()), bool(bonded))
    else:
        with st.spinner("Loading the 3D viewer (first use after a restart)…"):
            viewer_scene = _cached_viewer_scene(json.dumps(structure.as_dict()), bool(bonded))
    _structure_scene_component(
        scene=viewer_scene.scene,
        legend=viewer_scene.legend,
        camera=viewer_scene.camera,
        renderer=chosen_renderer,
        height=int(height),
        key=key,
        default=None,
    )
    st.caption(viewer_scene.caption)
