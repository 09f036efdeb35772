"""Benchmark: our featurization and bimodal training step against the peer ``aviary-models==1.2.1``.

Not a test. One run, same data (OBELiX train split in the shared data folder), same machine, same thread count:

1. Crystal-graph featurization of the 254 OBELiX CIFs (parsing excluded; both get the same parsed structures):
   ours = ``crystal_graph`` (neighbours, occupancy-weighted node features, Gaussian expansion, cell descriptors and
   spglib) on the disordered structures as they are; peer = ``aviary.cgcnn.data.CrystalGraphData`` (constructor
   pre-check + every ``__getitem__``; its Gaussian expansion happens later, in the model) with radius 8 Å and 12
   neighbours. The peer reads ``site.specie`` and fails on partially occupied sites, so it gets ordered copies
   (each site's majority species, prepared outside the timing). Ours on the same ordered copies is printed too.
2. Training throughput (rows/s, batch 128, Adam, L1 loss), best of several epochs after a warm-up epoch that also
   fills every cache: ours = one bimodal CosNet epoch over all rows (structure where a CIF exists, p_S = 0
   elsewhere); peer = a Roost epoch over the same rows plus a CGCNN epoch over the rows that have a structure
   (what it takes to learn from both modalities with the peer's single-modality models). The peer runs with its
   default widths and again with widths matched to ours.
3. Composition-only epoch time on matbench_expt_gap (4,604 formulas; issue 4: "epoch time against aviary's ROOST on
   the same data in the same run"): one training epoch of our COSNet in ``composition`` mode against one epoch of
   aviary's ``Roost`` (default widths, and widths matched to ours) over the same rows, batch 128, Adam, L1.
   ``--only expt_gap`` runs this part alone.

Run with the bench venv (see bench/README.md), from the repository root:
    /work/venv-bench/bin/python bench/bench_model.py [--threads 1] [--epochs 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from pymatgen.core import Structure

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cosnet_core.composition import FormulaError, parse_formula  # noqa: E402
from cosnet_core.data import BimodalDataset, Sample, make_loader  # noqa: E402
from cosnet_core.embeddings import load_element_embedding  # noqa: E402
from cosnet_core.models import CosNet, CosNetConfig  # noqa: E402
from cosnet_core.structure import crystal_graph, load_structure  # noqa: E402

BATCH = 128
RADIUS = 8.0
NEIGHBOURS = 12


def shared_data_dir() -> Path:
    env = os.environ.get("COSNET_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def majority_ordered(structure: Structure) -> Structure:
    """An ordered copy: every site becomes its majority species (what the peer can read)."""
    species = [max(site.species.items(), key=lambda kv: kv[1])[0].symbol for site in structure]
    return Structure(structure.lattice, species, structure.frac_coords)


def log10_conductivity(value: object) -> float:
    text = str(value).strip().lstrip("<")
    try:
        number = float(text)
    except ValueError:
        return math.nan
    return math.log10(number) if number > 0 else math.nan


def load_obelix(folder: Path) -> tuple[list[Sample], dict[str, Structure]]:
    table = pd.read_csv(folder / "train.csv")
    structures: dict[str, Structure] = {}
    for path in sorted((folder / "cifs").glob("*.cif")):
        structures[path.stem] = load_structure(path)
    samples = []
    columns = zip(
        table["ID"], table["Reduced Composition"], table["Ionic conductivity (S cm-1)"], strict=True
    )
    for raw_id, formula, conductivity in columns:
        row_id = str(raw_id)
        try:
            composition = parse_formula(str(formula))
        except FormulaError:
            continue
        target = log10_conductivity(conductivity)
        if math.isnan(target):
            continue
        samples.append(
            Sample(
                row_id, composition, target, structures.get(row_id), row_id if row_id in structures else None
            )
        )
    return samples, structures


def timed(function, repeats: int = 2) -> float:
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def best_epoch_seconds(step_epoch, epochs: int) -> float:
    step_epoch()  # warm-up: fills caches, allocator
    return min(timed(step_epoch, repeats=1) for _ in range(epochs))


def our_epoch_fn(dataset: BimodalDataset, element_dim: int):  # noqa: ANN201
    """A default-width COSNet and one training epoch of it over ``dataset`` (Adam, L1, batch ``BATCH``)."""
    model = CosNet(CosNetConfig(element_dim=element_dim))
    model.set_cell_normalization(*dataset.cell_descriptor_stats())
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = make_loader(dataset, batch_size=BATCH, shuffle=True, seed=0)

    def epoch() -> None:
        model.train()
        for batch in loader:
            optimiser.zero_grad()
            loss = (model(batch).prediction.reshape(-1) - batch.target).abs().mean()
            loss.backward()
            optimiser.step()

    return model, epoch


def peer_epoch_fn(net, data, collate):
    """One training epoch of an aviary model over ``data`` (Adam, L1, batch ``BATCH``), as a closure."""
    net_optimiser = torch.optim.Adam(net.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    peer_loader = torch.utils.data.DataLoader(
        data, batch_size=BATCH, shuffle=True, collate_fn=collate, generator=generator
    )

    def epoch() -> None:
        net.train()
        for inputs, batch_targets, *_ in peer_loader:
            net_optimiser.zero_grad()
            prediction = net(*inputs)[0].squeeze(1)
            loss = (prediction - batch_targets[0].squeeze(1)).abs().mean()
            loss.backward()
            net_optimiser.step()

    return epoch


def compare_expt_gap_epoch(args: argparse.Namespace) -> None:
    """Part 3: composition-only epoch time on matbench_expt_gap, ours against aviary's Roost, same rows."""
    from aviary.roost.data import CompositionData
    from aviary.roost.data import collate_batch as roost_collate
    from aviary.roost.model import Roost

    frame = pd.read_csv(shared_data_dir() / "band_gap" / "matbench_expt_gap.csv")
    samples = [
        Sample(id=f"gap{i}", composition=parse_formula(formula), target=float(target), formula=formula)
        for i, (formula, target) in enumerate(zip(frame["composition"], frame["gap expt"], strict=True))
    ]
    embedding = load_element_embedding("matscholar200")
    model, ours_epoch = our_epoch_fn(BimodalDataset(samples, embedding), embedding.dim)

    composition_frame = pd.DataFrame(
        {"material_id": [s.id for s in samples], "composition": list(frame["composition"]), "y": frame["gap expt"]}
    )
    roost_data = CompositionData(composition_frame, {"y": "regression"}, identifiers=("material_id", "composition"))
    task = {"task_dict": {"y": "regression"}, "robust": False, "n_targets": [1]}
    matched = {"elem_gate": (64,), "elem_msg": (64,), "cry_gate": (64,), "cry_msg": (64,),
               "trunk_hidden": (64,), "out_hidden": (64, 32)}
    t_ours = best_epoch_seconds(ours_epoch, args.epochs)
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"\n== composition-only epoch on matbench_expt_gap, {len(samples)} rows, batch {BATCH}, "
          f"{args.threads} thread(s) ==")
    print(f"ours COSNet composition mode ({n_params:,} parameters): {t_ours:.3f} s/epoch")
    for label, kwargs in (("default widths", {}), ("widths matched to ours", matched)):
        roost = Roost(**task, **kwargs)
        t_peer = best_epoch_seconds(peer_epoch_fn(roost, roost_data, roost_collate), args.epochs)
        n_peer = sum(p.numel() for p in roost.parameters() if p.requires_grad)
        print(f"peer aviary Roost, {label} ({n_peer:,} parameters): {t_peer:.3f} s/epoch; "
              f"ratio peer/ours: {t_peer / t_ours:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads for both sides")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs (best is kept)")
    parser.add_argument("--only", choices=("all", "expt_gap"), default="all", help="run one part only")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")

    import aviary
    from aviary.cgcnn.data import CrystalGraphData
    from aviary.cgcnn.data import collate_batch as cgcnn_collate
    from aviary.cgcnn.model import CrystalGraphConvNet
    from aviary.roost.data import CompositionData
    from aviary.roost.data import collate_batch as roost_collate
    from aviary.roost.model import Roost

    if args.only == "expt_gap":
        print(f"date (UTC): {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M}")
        print(f"machine: {cpu_name()}, {os.cpu_count()} logical CPUs, load average {os.getloadavg()[0]:.1f}")
        compare_expt_gap_epoch(args)
        return

    folder = shared_data_dir() / "li_conductivity"
    if not folder.is_dir():
        raise SystemExit(f"shared data folder {folder} is absent")
    print(f"date (UTC): {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M}")
    print(f"machine: {cpu_name()}, {os.cpu_count()} logical CPUs, load average {os.getloadavg()[0]:.1f}")
    print(
        f"python {platform.python_version()}, torch {torch.__version__}, threads {args.threads}, "
        f"aviary {getattr(aviary, '__version__', '1.2.1')}"
    )

    samples, structures = load_obelix(folder)
    embedding = load_element_embedding("matscholar200")
    ids = sorted(structures)
    disordered = [structures[i] for i in ids]
    ordered = [majority_ordered(s) for s in disordered]
    n_disordered = sum(not s.is_ordered for s in disordered)
    print(
        f"data: {len(samples)} OBELiX rows with a numeric target, {sum(s.structure is not None for s in samples)} "
        f"with a CIF; {len(ids)} CIFs ({n_disordered} disordered), {sum(len(s) for s in disordered)} sites"
    )

    # 1. featurization
    ours = timed(
        lambda: [crystal_graph(s, embedding, radius=RADIUS, max_neighbors=NEIGHBOURS) for s in disordered]
    )
    ours_ordered = timed(
        lambda: [crystal_graph(s, embedding, radius=RADIUS, max_neighbors=NEIGHBOURS) for s in ordered]
    )
    frame = pd.DataFrame({"id": ids, "structure": ordered, "y": 0.0}).set_index("id")

    def peer_featurize() -> None:
        data = CrystalGraphData(frame, {"y": "regression"}, radius_cutoff=RADIUS, max_num_nbr=NEIGHBOURS)
        for index in range(len(data)):
            data[index]

    peer = timed(peer_featurize)
    print("\n== crystal-graph featurization of the OBELiX CIFs (s, lower is better) ==")
    print(f"ours (disordered, with cell descriptors) {ours:8.2f} s  ({len(ids) / ours:7.1f} structures/s)")
    print(f"ours (majority-ordered copies)           {ours_ordered:8.2f} s")
    print(f"peer aviary CrystalGraphData (ordered)   {peer:8.2f} s  ({len(ids) / peer:7.1f} structures/s)")
    print(
        f"ratio speed ours/peer: {peer / ours:.2f}x (goal >= 3x); on ordered copies: {peer / ours_ordered:.2f}x"
    )

    # 2. training throughput
    targets = torch.tensor([s.target for s in samples], dtype=torch.float32)
    model, ours_epoch = our_epoch_fn(BimodalDataset(samples, embedding), embedding.dim)

    composition_frame = pd.DataFrame(
        {
            "material_id": [s.id for s in samples],
            "composition": [s.composition.formula.replace(" ", "") for s in samples],
            "y": targets.numpy(),
        }
    )
    roost_data = CompositionData(
        composition_frame, {"y": "regression"}, identifiers=("material_id", "composition")
    )
    with_structure = [s for s in samples if s.structure is not None]
    structure_frame = pd.DataFrame(
        {
            "id": [f"{s.id}-{k}" for k, s in enumerate(with_structure)],
            "structure": [majority_ordered(s.structure) for s in with_structure],
            "y": np.array([s.target for s in with_structure], dtype=np.float32),
        }
    ).set_index("id")
    cgcnn_data = CrystalGraphData(
        structure_frame, {"y": "regression"}, radius_cutoff=RADIUS, max_num_nbr=NEIGHBOURS
    )
    task = {"task_dict": {"y": "regression"}, "robust": False, "n_targets": [1]}
    peers = {
        "default widths": (
            Roost(**task),
            CrystalGraphConvNet(**task, radius_cutoff=RADIUS),
        ),
        "widths matched to ours": (
            Roost(
                **task,
                elem_gate=(64,),
                elem_msg=(64,),
                cry_gate=(64,),
                cry_msg=(64,),
                trunk_hidden=(64,),
                out_hidden=(64, 32),
            ),
            CrystalGraphConvNet(
                **task, radius_cutoff=RADIUS, elem_embedding="matscholar200", n_graph=3, h_fea_len=64
            ),
        ),
    }

    def parameters(net: torch.nn.Module) -> int:
        return sum(p.numel() for p in net.parameters() if p.requires_grad)

    t_ours = best_epoch_seconds(ours_epoch, args.epochs)
    rows = len(samples)
    print(
        f"\n== training throughput, batch {BATCH}, CPU, {rows} rows ({len(with_structure)} with a structure) =="
    )
    print(
        f"ours CosNet bimodal ({parameters(model):,} parameters): {t_ours:.3f} s/epoch = {rows / t_ours:8.1f} rows/s"
    )
    for label, (roost, cgcnn) in peers.items():
        t_roost = best_epoch_seconds(peer_epoch_fn(roost, roost_data, roost_collate), args.epochs)
        t_cgcnn = best_epoch_seconds(peer_epoch_fn(cgcnn, cgcnn_data, cgcnn_collate), args.epochs)
        t_peer = t_roost + t_cgcnn
        print(
            f"peer ({label}): Roost ({parameters(roost):,} p) {t_roost:.3f} s + CGCNN ({parameters(cgcnn):,} p) "
            f"{t_cgcnn:.3f} s = {t_peer:.3f} s/epoch = {rows / t_peer:8.1f} rows/s"
        )
        print(f"  ratio throughput ours/peer: {t_peer / t_ours:.2f}x (goal >= 1x)")

    compare_expt_gap_epoch(args)


if __name__ == "__main__":
    main()
