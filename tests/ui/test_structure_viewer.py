"""Tests of the 3D structure viewer: the scene (pure), the component in AppTest, and a real headless browser."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from pymatgen.core import Composition, Lattice, Structure
from scipy.spatial.transform import Rotation
from streamlit.testing.v1 import AppTest

from tests.browser import artifacts_dir, headless_chromium, require_browser, streamlit_server
from ui.structure_viewer import (
    CAMERA_VIEW_DIRECTION,
    COMPONENT_IFRAME_SELECTOR,
    MAX_BONDED_SITES,
    MAX_VIEWER_SITES,
    RENDERER_ENV,
    SCENE_SVG_SELECTOR,
    build_viewer_scene,
    camera_state,
    resolve_renderer,
    scene_json,
    viewer_frontend_dir,
    viewer_script_sources,
)

VIEWER_APP = Path(__file__).with_name("viewer_app.py")
NA_COLOR = "#ab5cf2"  # Jmol colours used by crystal-toolkit's default legend
CL_COLOR = "#1ff01f"
LI_COLOR = "#cc80ff"
A_NACL = 5.64


FCC = [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]


def rock_salt(a: float = A_NACL, cation: str | dict[str, float] = "Na") -> Structure:
    """Conventional rock-salt cell (8 sites) with the given cation site."""
    anions = [[(x + 0.5) % 1 for x in site] for site in FCC]
    return Structure(Lattice.cubic(a), [cation] * 4 + ["Cl"] * 4, FCC + anions)


def scene_part(scene: dict, name: str) -> list[dict]:
    """The primitives of one named sub-scene (atoms, bonds, unit_cell ...)."""
    return next(part for part in scene["contents"] if part["name"] == name)["contents"]


def element_of(sphere: dict) -> str:
    return sphere["tooltip"].split()[0]


# ---------------------------------------------------------------------------------------------------------------
# scene_json / build_viewer_scene
# ---------------------------------------------------------------------------------------------------------------


def test_nacl_scene_has_the_atoms_of_the_cell_and_its_faces_with_jmol_colours():
    scene = scene_json(rock_salt(), bonded=False)
    spheres = scene_part(scene, "atoms")
    assert all(sphere["type"] == "spheres" for sphere in spheres)
    # 4 Na + 4 Cl in the cell, plus the periodic images on faces, edges and corners drawn by crystal-toolkit:
    # Na at the 8 corners and 6 face centres, Cl at the body centre and the 12 edge centres.
    assert Counter((element_of(s), s["color"]) for s in spheres) == {("Na", NA_COLOR): 14, ("Cl", CL_COLOR): 13}
    positions = {tuple(np.round(s["positions"][0], 3)) for s in spheres if element_of(s) == "Cl"}
    assert (A_NACL / 2, A_NACL / 2, A_NACL / 2) in positions  # body centre
    assert (0.0, 0.0, A_NACL / 2) in positions  # an edge centre
    assert scene_part(scene, "bonds") == []
    # the unit cell is drawn as 12 edges = 24 line end points spanning the cube
    cell_lines = scene_part(scene, "unit_cell")[0]["contents"][0]
    assert cell_lines["type"] == "lines"
    assert len(cell_lines["positions"]) == 24
    assert np.allclose(np.max(cell_lines["positions"], axis=0), [A_NACL] * 3)
    json.dumps(scene)  # JSON-ready for the browser


def test_nacl_bonds_join_nearest_neighbours_only():
    viewer_scene = build_viewer_scene(rock_salt(), bonded=True)
    assert viewer_scene.bonds_drawn
    assert "nearest-neighbour bonds" in viewer_scene.caption
    bonds = scene_part(viewer_scene.scene, "bonds")
    pairs = [pair for cylinders in bonds for pair in cylinders["positionPairs"]]
    assert len(pairs) > 20
    # each Na-Cl bond (a/2 = 2.82 Å) is drawn as two half cylinders of a/4, one per atom colour
    lengths = [math.dist(start, end) for start, end in pairs]
    assert np.allclose(lengths, A_NACL / 4)
    assert {cylinders["color"] for cylinders in bonds} == {NA_COLOR, CL_COLOR}
    # no polyhedra: they hide the atoms of a busy cell
    assert scene_part(viewer_scene.scene, "polyhedra") == []
    assert viewer_scene.legend == [{"color": CL_COLOR, "label": "Cl"}, {"color": NA_COLOR, "label": "Na"}]


def test_mixed_site_is_drawn_as_sphere_segments_sized_by_occupancy_without_bonds():
    structure = rock_salt(5.5, {"Li": 0.25, "Na": 0.75})
    viewer_scene = build_viewer_scene(structure, bonded=True)
    assert not viewer_scene.bonds_drawn
    assert scene_part(viewer_scene.scene, "bonds") == []
    assert "no bonds (disordered cell)" in viewer_scene.caption
    assert "4 sites with mixed or partial occupancy" in viewer_scene.caption
    assert "vacancy" not in viewer_scene.caption
    spheres = scene_part(viewer_scene.scene, "atoms")
    li = [s for s in spheres if s["color"] == LI_COLOR]
    na = [s for s in spheres if s["color"] == NA_COLOR]
    assert len(li) == len(na) == 14
    # a pie chart of the site: Li from 0 to 0.25 of the turn, Na from 0.25 to 1
    assert li[0]["phiStart"] == pytest.approx(0.0) and li[0]["phiEnd"] == pytest.approx(0.5 * math.pi)
    assert na[0]["phiStart"] == pytest.approx(0.5 * math.pi) and na[0]["phiEnd"] == pytest.approx(2 * math.pi)


def test_vacancy_is_drawn_as_a_white_segment_and_said_in_the_caption():
    structure = rock_salt(5.5, {"Li": 0.5})
    viewer_scene = build_viewer_scene(structure)
    white = [s for s in scene_part(viewer_scene.scene, "atoms") if s["color"] == "#ffffff"]
    # crystal-toolkit merges identical untitled spheres into one primitive with many positions
    assert sum(len(s["positions"]) for s in white) == 14
    assert white[0]["phiStart"] == pytest.approx(math.pi) and white[0]["phiEnd"] == pytest.approx(2 * math.pi)
    assert "white segment = vacancy on 4 of them" in viewer_scene.caption


def test_real_disordered_obelix_cif_gets_a_scene(shared_data):
    from pymatgen.io.cif import CifParser

    cif = shared_data / "li_conductivity" / "cifs" / "019.cif"
    structure = CifParser(cif, occupancy_tolerance=1.05).parse_structures(primitive=False)[0]
    assert not structure.is_ordered
    viewer_scene = build_viewer_scene(structure)
    spheres = scene_part(viewer_scene.scene, "atoms")
    elements = {element_of(s) for s in spheres if "tooltip" in s}  # vacancy segments have no tooltip
    assert {el.symbol for el in structure.composition.elements} <= elements
    assert sum(len(s["positions"]) for s in spheres if "tooltip" in s) >= len(structure)
    assert not viewer_scene.bonds_drawn
    assert f"{len(structure)} sites" in viewer_scene.caption


def test_big_cell_is_drawn_without_bonds_or_face_images():
    structure = rock_salt() * (4, 4, 4)  # 512 sites
    assert len(structure) > MAX_BONDED_SITES
    viewer_scene = build_viewer_scene(structure, bonded=True)
    assert not viewer_scene.bonds_drawn
    assert f"no bonds (more than {MAX_BONDED_SITES} sites)" in viewer_scene.caption
    assert len(scene_part(viewer_scene.scene, "atoms")) == 512  # one sphere per site, no periodic images


def test_too_big_or_wrong_input_gets_a_clear_error():
    huge = rock_salt() * (8, 8, 6)
    assert len(huge) > MAX_VIEWER_SITES
    with pytest.raises(ValueError, match=r"NaCl has 3072 sites, more than the 3000"):
        scene_json(huge)
    with pytest.raises(TypeError, match="needs a pymatgen Structure, got Composition"):
        scene_json(Composition("NaCl"))


def test_camera_looks_at_the_cell_from_the_view_direction_with_z_up():
    camera = camera_state(rock_salt())
    q = camera["quaternion"]
    rotation = Rotation.from_quat([q["x"], q["y"], q["z"], q["w"]])
    direction = np.asarray(CAMERA_VIEW_DIRECTION) / np.linalg.norm(CAMERA_VIEW_DIRECTION)
    # three.js cameras look along their -z axis: it must point from the camera to the scene centre
    assert np.allclose(rotation.apply([0, 0, -1]), -direction)
    position = np.array([camera["position"][axis] for axis in "xyz"])
    assert np.allclose(position / np.linalg.norm(position), direction)
    assert np.linalg.norm(position) > np.linalg.norm([A_NACL] * 3)  # outside the cell
    # the screen's up leans towards +z and the screen's right stays horizontal
    assert rotation.apply([0, 1, 0])[2] > 0.9
    assert rotation.apply([1, 0, 0])[2] == pytest.approx(0.0, abs=1e-12)


# ---------------------------------------------------------------------------------------------------------------
# renderer and frontend folder
# ---------------------------------------------------------------------------------------------------------------


def test_renderer_auto_follows_the_environment(monkeypatch):
    monkeypatch.delenv(RENDERER_ENV, raising=False)
    assert resolve_renderer("auto") == "webgl"
    monkeypatch.setenv(RENDERER_ENV, "SVG")
    assert resolve_renderer("auto") == "svg"
    assert resolve_renderer("webgl") == "webgl"  # an explicit choice wins
    monkeypatch.setenv(RENDERER_ENV, "canvas")
    with pytest.raises(ValueError, match="COSNET_VIEWER_RENDERER must be 'svg' or 'webgl'"):
        resolve_renderer("auto")
    with pytest.raises(ValueError, match="renderer must be one of"):
        resolve_renderer("opengl")


def test_frontend_folder_holds_the_wheel_scripts_as_real_files(tmp_path):
    sources = viewer_script_sources()
    assert sources["react.min.js"].name.startswith("react@18.")
    assert sources["react.min.js"].parent.parts[-2:] == ("dash", "deps")
    assert sources["dash_mp_components.min.js"].stat().st_size > 1_000_000
    folder = viewer_frontend_dir(tmp_path)
    assert viewer_frontend_dir(tmp_path) == folder  # built once, then reused
    index_html = (folder / "index.html").read_text()
    for name, source in sources.items():
        served = folder / name
        # Streamlit refuses to serve a symlink that leaves the component folder: these must be real files
        assert served.is_file() and not served.is_symlink()
        assert served.read_bytes() == source.read_bytes()
        if name.endswith(".js"):
            assert f'src="{name}"' in index_html
    assert "http" not in index_html.replace("http-equiv", "")  # nothing from a CDN
    assert [p.name for p in tmp_path.iterdir()] == [folder.name]  # no half-built folder left behind


# ---------------------------------------------------------------------------------------------------------------
# Streamlit
# ---------------------------------------------------------------------------------------------------------------


def test_viewer_app_runs_in_apptest_and_sends_the_scene(monkeypatch):
    monkeypatch.setenv(RENDERER_ENV, "svg")
    app = AppTest.from_file(str(VIEWER_APP), default_timeout=300).run()
    assert not app.exception
    captions = [caption.value for caption in app.caption]
    assert captions[0] == "NaCl · 8 sites · nearest-neighbour bonds"
    assert captions[1].startswith("NaLiCl2 · 8 sites · no bonds (disordered cell)")
    components = app.get("component_instance")
    assert [c.proto.component_name for c in components] == ["ui.structure_viewer.structure_scene"] * 2
    args = json.loads(components[0].proto.json_args)
    assert args["renderer"] == "svg" and args["height"] == 360
    assert args["scene"] == scene_json(rock_salt())
    assert set(args["camera"]) == {"position", "quaternion", "zoom"}


def test_viewer_warns_instead_of_failing_on_a_huge_cell():
    def huge_cell_app():
        import numpy as np
        from pymatgen.core import Lattice, Structure

        from ui.structure_viewer import structure_viewer

        cell = Structure(Lattice.cubic(60.0), ["Ar"] * 3001, np.random.default_rng(0).random((3001, 3)))
        structure_viewer(cell, key="huge")

    app = AppTest.from_function(huge_cell_app, default_timeout=60).run()
    assert not app.exception
    assert "Ar has 3001 sites, more than the 3000 sites the viewer draws" in app.warning[0].value
    assert not app.get("component_instance")


# ---------------------------------------------------------------------------------------------------------------
# real browser
# ---------------------------------------------------------------------------------------------------------------

SVG_PATH_FILLS = """(svg) => {
    const fills = {};
    let paths = 0;
    svg.querySelectorAll('path').forEach((path) => {
        paths += 1;
        const fill = path.style.fill;
        if (fill) { fills[fill] = (fills[fill] || 0) + 1; }
    });
    return {paths, fills};
}"""


def _rgb(hex_color: str) -> str:
    red, green, blue = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgb({red}, {green}, {blue})"


@pytest.mark.slow
@pytest.mark.browser
def test_viewer_draws_in_headless_chromium(tmp_path):
    require_browser()
    env = {"COSNET_DATA_DIR": str(tmp_path / "data"), RENDERER_ENV: "svg"}
    selector = COMPONENT_IFRAME_SELECTOR
    with streamlit_server(VIEWER_APP, env=env) as url, headless_chromium() as browser:
        page = browser.new_page(viewport={"width": 1000, "height": 1100})
        page.goto(url)
        # The first script run imports crystal-toolkit (Dash): seconds on an idle machine, a minute on a busy one.
        page.wait_for_selector(f"{selector} >> nth=1", state="attached", timeout=240_000)
        drawn = []
        for iframe in page.query_selector_all(selector):
            frame = iframe.content_frame()
            svg = frame.wait_for_selector(SCENE_SVG_SELECTOR, timeout=120_000)
            frame.wait_for_function(
                f'() => document.querySelector("{SCENE_SVG_SELECTOR}").querySelectorAll("path").length > 100',
                polling=250,  # not requestAnimationFrame: a frame out of view may get no animation frames
                timeout=60_000,
            )
            assert frame.eval_on_selector("#viewer-error", "e => e.textContent") == ""
            drawn.append(svg.evaluate(SVG_PATH_FILLS))
        page.wait_for_timeout(500)
        screenshot = artifacts_dir() / "structure_viewer.png"
        page.screenshot(path=str(screenshot), full_page=True)
        page.query_selector(selector).screenshot(path=str(artifacts_dir() / "structure_viewer_nacl.png"))

    nacl, mixed = drawn
    # the svg renderer fills each triangle with the element colour: Na and Cl in NaCl, Li too in the mixed cell
    assert nacl["paths"] > 500
    assert nacl["fills"].get(_rgb(NA_COLOR), 0) > 100 and nacl["fills"].get(_rgb(CL_COLOR), 0) > 100
    assert _rgb(LI_COLOR) not in nacl["fills"]
    assert all(mixed["fills"].get(_rgb(color), 0) > 100 for color in (LI_COLOR, NA_COLOR, CL_COLOR))
    assert screenshot.stat().st_size > 10_000
