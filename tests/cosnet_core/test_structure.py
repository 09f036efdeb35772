"""Crystal graphs (de-CGCNN input): node features, edges, cell descriptors, errors, hashing, cache, real CIFs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Structure
from pymatgen.core.operations import SymmOp

from cosnet_core.structure import (
    CELL_DESCRIPTOR_NAMES,
    FEATURIZER_VERSION,
    GraphCache,
    StructureError,
    crystal_graph,
    load_structure,
    structure_hash,
)

NAMES = list(CELL_DESCRIPTOR_NAMES)


def _rotated_translated(structure: Structure) -> Structure:
    moved = structure.copy()
    moved.apply_operation(SymmOp.from_axis_angle_and_translation([1, 2, 3], 37.0))
    moved.translate_sites(list(range(len(moved))), [0.13, 0.27, 0.41], frac_coords=True, to_unit_cell=True)
    return moved


def _per_site_edges(graph) -> list[tuple]:
    """Per centre site: (its feature vector sum, sorted neighbour distances encoded by the Gaussians)."""
    rows = []
    for site in range(graph.num_nodes):
        mask = graph.edge_index[1] == site
        rows.append((round(float(graph.x[site].sum()), 4), int(mask.sum())))
    return sorted(rows)


def test_mixed_site_gets_mean_vector_and_vacancy_scales(embedding):
    lattice = Lattice.cubic(4.0)
    structure = Structure(lattice, [{"Li": 0.5, "Na": 0.5}, {"Li": 0.5}], [[0, 0, 0], [0.5, 0.5, 0.5]])
    graph = crystal_graph(structure, embedding)
    expected = (embedding.vector("Li") + embedding.vector("Na")) / 2
    np.testing.assert_allclose(graph.x[0].numpy(), expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(graph.x[1].numpy(), 0.5 * embedding.vector("Li"), rtol=1e-6, atol=1e-7)
    assert graph.cell[0, NAMES.index("mean_site_occupancy")] == pytest.approx(0.75)
    assert graph.cell[0, NAMES.index("disordered_site_fraction")] == pytest.approx(1.0)


def test_nearest_twelve_keeps_ties_and_expands_distances(embedding):
    # simple cubic Li, a = 3 Å: 6 neighbours at 3.0 Å, then 12 at 4.243 Å (all tied with the 12th) → 18 edges
    graph = crystal_graph(Structure(Lattice.cubic(3.0), ["Li"], [[0, 0, 0]]), embedding)
    assert graph.edge_index.shape == (2, 18)
    assert graph.edge_attr.shape == (18, 41)
    peaks = graph.edge_attr.argmax(dim=1)
    assert sorted(peaks.tolist()) == [15] * 6 + [21] * 12  # 3.0/0.2 = 15, 4.243/0.2 ≈ 21
    nearest = graph.edge_attr[peaks == 15][0]
    assert float(nearest[15]) == pytest.approx(1.0)
    assert float(nearest[16]) == pytest.approx(math.exp(-1.0), rel=1e-5)


def test_twelve_nearest_plus_exact_ties(triclinic, embedding):
    graph = crystal_graph(triclinic, embedding)
    centres, _, _, distances = triclinic.get_neighbor_list(r=8.0)
    for site in range(4):
        mine = np.sort(distances[centres == site])
        twelfth = mine[11]
        expected = int((mine <= twelfth + 1e-3).sum())  # the nearest 12 and any tie with the 12th
        assert int((graph.edge_index[1] == site).sum()) == expected
        assert 12 <= expected < len(mine)


def test_isolated_atom_gets_a_self_loop_at_the_cutoff(embedding):
    graph = crystal_graph(Structure(Lattice.cubic(10.0), ["Li"], [[0, 0, 0]]), embedding)
    assert graph.edge_index.tolist() == [[0], [0]]
    assert int(graph.edge_attr.argmax()) == 40  # the 8 Å Gaussian
    assert float(graph.edge_attr[0, 40]) == pytest.approx(1.0)


def test_cell_descriptors_of_rocksalt(rocksalt, embedding):
    cell = crystal_graph(rocksalt, embedding).cell[0]
    assert cell.shape == (len(CELL_DESCRIPTOR_NAMES),)
    primitive_edge = 5.64 / math.sqrt(2)
    for name in ("a", "b", "c"):
        assert float(cell[NAMES.index(name)]) == pytest.approx(primitive_edge, rel=1e-5)
    for name in ("alpha", "beta", "gamma"):
        assert float(cell[NAMES.index(name)]) == pytest.approx(60.0, abs=1e-3)
    assert float(cell[NAMES.index("space_group_number")]) == 225
    assert float(cell[NAMES.index("crystal_system_cubic")]) == 1.0
    assert float(cell[[i for i, n in enumerate(NAMES) if n.startswith("crystal_system")]].sum()) == 1.0
    assert float(cell[NAMES.index("volume_per_atom")]) == pytest.approx(5.64**3 / 8, rel=1e-5)
    assert float(cell[NAMES.index("density")]) == pytest.approx(rocksalt.density, rel=1e-5)
    assert float(cell[NAMES.index("mean_site_occupancy")]) == 1.0
    assert float(cell[NAMES.index("disordered_site_fraction")]) == 0.0


@pytest.mark.parametrize("fixture", ["rocksalt", "triclinic"])
def test_supercell_and_rotation_give_the_same_graph_content(fixture, request, embedding):
    structure = request.getfixturevalue(fixture)
    graph = crystal_graph(structure, embedding)
    supercell = crystal_graph(structure * (2, 2, 2), embedding)
    moved = crystal_graph(_rotated_translated(structure), embedding)
    for other in (supercell, moved):
        torch.testing.assert_close(other.cell, graph.cell, atol=1e-4, rtol=1e-5)
    assert supercell.num_nodes == 8 * graph.num_nodes
    assert supercell.edge_index.shape[1] == 8 * graph.edge_index.shape[1]
    assert _per_site_edges(moved) == _per_site_edges(graph)
    torch.testing.assert_close(moved.edge_attr.sum(dim=0), graph.edge_attr.sum(dim=0), atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(
        supercell.edge_attr.sum(dim=0) / 8, graph.edge_attr.sum(dim=0), atol=1e-4, rtol=1e-5
    )


def test_single_element_structure(bcc_lithium, embedding):
    graph = crystal_graph(bcc_lithium, embedding)
    assert graph.num_nodes == 1
    assert graph.edge_index.shape == (2, 14)  # 8 at 3.02 Å, 6 at 3.49 Å (the last two tied with the 12th)
    assert float(graph.cell[0, NAMES.index("space_group_number")]) == 229


def test_absurd_structures_are_refused(rocksalt, embedding, tmp_path):
    with pytest.raises(StructureError, match="more than the limit of 4"):
        crystal_graph(rocksalt, embedding, max_sites=4)
    flat = Structure(Lattice([[1, 0, 0], [0, 1, 0], [1, 1, 0]]), ["Li"], [[0, 0, 0]])
    with pytest.raises(StructureError, match="volume"):
        crystal_graph(flat, embedding)
    with pytest.raises(StructureError, match="no sites"):
        crystal_graph(Structure(Lattice.cubic(3), [], []), embedding)
    empty = tmp_path / "empty.cif"
    empty.write_text("")
    with pytest.raises(StructureError) as caught:
        load_structure(empty)
    assert caught.value.source == "empty.cif" and "empty" in caught.value.reason
    with pytest.raises(StructureError, match="cannot be parsed|holds no structure"):
        load_structure("data_broken\n_cell_length_a 3\nloop_\n_atom_site_label\nLi1\n")
    with pytest.raises(StructureError, match="does not exist"):
        load_structure(tmp_path / "missing.cif")


def test_load_structure_reads_cif_text_and_files(rocksalt, tmp_path):
    text = rocksalt.to(fmt="cif")
    parsed = load_structure(text)
    assert len(parsed) == 8 and parsed.composition.reduced_formula == "NaCl"
    path = tmp_path / "nacl.cif"
    path.write_text(text)
    assert len(load_structure(path)) == 8
    with pytest.raises(StructureError, match="more than the limit"):
        load_structure(path, max_sites=7)


def test_structure_hash_ignores_site_order(triclinic):
    reordered = Structure.from_sites(list(reversed(triclinic.sites)))
    assert structure_hash(reordered) == structure_hash(triclinic)
    changed = triclinic.copy()
    changed.replace(0, "Na")
    assert structure_hash(changed) != structure_hash(triclinic)


def test_graph_cache_round_trip(triclinic, embedding, tmp_path):
    cache = GraphCache(tmp_path / "graphs")
    built = cache.get_or_build(triclinic, embedding, radius=8.0, max_neighbors=12)
    files = list((tmp_path / "graphs").glob("*.pt"))
    assert len(files) == 1
    loaded = cache.get_or_build(triclinic, embedding, radius=8.0, max_neighbors=12)
    for name in ("x", "edge_index", "edge_attr", "cell"):
        assert torch.equal(built[name], loaded[name])
    assert loaded.num_nodes == 4
    assert cache.key(triclinic, embedding, radius=6.0) != cache.key(triclinic, embedding, radius=8.0)
    assert FEATURIZER_VERSION
    files[0].write_bytes(b"not a torch file")  # a broken entry is rebuilt, not fatal
    assert torch.equal(cache.get_or_build(triclinic, embedding, radius=8.0, max_neighbors=12).x, built.x)


def test_every_obelix_cif_featurizes_or_fails_with_a_named_reason(shared_data, embedding):
    cif_dir = shared_data / "li_conductivity" / "cifs"
    paths = sorted(cif_dir.glob("*.cif"))
    assert len(paths) == 254
    featurized, failures = 0, {}
    for path in paths:
        try:
            graph = crystal_graph(load_structure(path), embedding)
        except StructureError as error:
            assert error.source == path.name and error.reason
            failures[path.name] = error.reason
            continue
        assert graph.x.shape[1] == 200 and torch.isfinite(graph.x).all()
        assert graph.edge_attr.shape[1] == 41 and torch.isfinite(graph.edge_attr).all()
        assert torch.isfinite(graph.cell).all()
        assert torch.bincount(graph.edge_index[1], minlength=graph.num_nodes).min() >= 1
        assert 1 <= float(graph.cell[0, NAMES.index("space_group_number")]) <= 230
        featurized += 1
    assert featurized + len(failures) == 254
    assert featurized >= 250, failures


def test_a_string_is_always_cif_text_never_a_file_name(tmp_path):
    secret = tmp_path / "secret.cif"
    secret.write_text("data_x\n_cell_length_a 5\n")
    with pytest.raises(StructureError) as caught:
        load_structure(str(secret))  # e.g. a zip member whose content is a path
    assert caught.value.source == "CIF text" and "cannot be parsed" in caught.value.reason


def test_absurd_cifs_are_refused_before_parsing():
    header = "data_big\n_cell_length_a 50\n_cell_length_b 50\n_cell_length_c 50\n"
    header += "_cell_angle_alpha 90\n_cell_angle_beta 90\n_cell_angle_gamma 90\n"
    header += "loop_\n_atom_site_label\n_atom_site_type_symbol\n_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\n"
    rows = "".join(f"Li{i} Li {i / 1000:.4f} 0.1 0.1\n" for i in range(450))
    with pytest.raises(StructureError, match="450 atom rows, too many for the limit of 100 sites"):
        load_structure(header + rows, max_sites=100)
    with pytest.raises(StructureError, match="more than the 5 MB limit"):
        load_structure(header + "#" * 6_000_000)
