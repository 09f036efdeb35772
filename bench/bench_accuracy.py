"""Accuracy benchmarks of issue 4 (run by hand; they take long on a CPU).

    python bench/bench_accuracy.py expt_gap  [--epochs 40] [--folds 0 1 2 3 4]
    python bench/bench_accuracy.py paper_gap [--epochs 40]
    python bench/bench_accuracy.py obelix    [--epochs 60] [--folds 0 1 2 3 4] [--batch-size 32]
        [--models rf bimodal-aug composition bimodal]

* ``expt_gap``: matbench_expt_gap, composition only, 5-fold ``KFold(shuffle=True, random_state=18012019)`` as
  matbench; validation = a random 10 % of each training fold. Goal MAE ≤ 0.35 eV (dummy 1.14).
* ``paper_gap``: the COSNet paper's own band-gap split (train/val/test files), composition only. Goal ≤ 0.50 eV.
* ``obelix``: OBELiX train split with its CIFs, log10(S/cm), censored ``<`` rows excluded, 5-fold ``GroupKFold``
  by composition; validation = 20 % of each training fold grouped by composition. Compares ``bimodal-aug``,
  ``composition`` and a random forest on Magpie features (matminer) on the same folds.

Each run appends one JSON line per fold/model to ``--results`` (default ``bench/results_accuracy.jsonl``) and
prints a summary. Epochs are reduced from the paper's 200 for time; the number used is recorded with each result.
The data folder is ``../shared/data`` next to the checkout, or ``$COSNET_SHARED_DATA``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cosnet_core.composition import FormulaError, parse_formula  # noqa: E402
from cosnet_core.data import Sample  # noqa: E402
from cosnet_core.evaluate import subset_metrics  # noqa: E402
from cosnet_core.splits import composition_key, grouped_split, random_split  # noqa: E402
from cosnet_core.structure import GraphCache, StructureError, load_structure  # noqa: E402
from cosnet_core.train import TrainConfig, fit  # noqa: E402

DATA = Path(os.environ.get("COSNET_SHARED_DATA", REPO.parent / "shared" / "data"))


def log(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


def record(results: Path, entry: dict) -> None:
    entry = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": platform.node(),
             "cpus": os.cpu_count(), **entry}
    with results.open("a") as handle:
        handle.write(json.dumps(entry) + "\n")
    log(json.dumps(entry))


def composition_samples(formulas, targets, prefix: str) -> list[Sample]:
    rows = []
    for index, (formula, target) in enumerate(zip(formulas, targets, strict=True)):
        try:
            composition = parse_formula(str(formula))
        except FormulaError as error:
            log(f"skipped {prefix}{index}: {error}")
            continue
        rows.append(Sample(id=f"{prefix}{index}", composition=composition, target=float(target), formula=str(formula)))
    return rows


def run_fold(train, val, test, config: TrainConfig, cache=None) -> dict:
    started = time.perf_counter()
    result = fit(train, val, config, cache=cache)
    predicted = result.predict(test, cache=cache)
    target = np.array([s.target for s in test])
    metrics = subset_metrics(target, predicted.prediction, predicted.has_structure)
    return {
        "mae": metrics["all"]["mae"], "mae_with_structure": metrics["with_structure"]["mae"],
        "mae_without_structure": metrics["without_structure"]["mae"], "n_test": metrics["all"]["n"],
        "best_epoch": result.best_epoch, "seconds": round(time.perf_counter() - started, 1),
        "seconds_per_epoch": round(float(np.mean([r.seconds for r in result.history])), 2),
    }


def bench_expt_gap(args: argparse.Namespace) -> None:
    from sklearn.model_selection import KFold

    frame = pd.read_csv(DATA / "band_gap" / "matbench_expt_gap.csv")
    samples = composition_samples(frame["composition"], frame["gap expt"], "gap")
    folds = list(KFold(n_splits=5, shuffle=True, random_state=18012019).split(samples))
    config = TrainConfig(mode="composition", epochs=args.epochs, seed=0, batch_size=args.batch_size,
                         weight_decay=args.weight_decay, lr=args.lr, lr_decay=args.lr_decay,
                         head_hidden=tuple(args.head_hidden))
    for fold in args.folds:
        train_idx, test_idx = folds[fold]
        inner = random_split([samples[i] for i in train_idx], fractions=(0.9, 0.1, 0.0), seed=fold)
        outcome = run_fold(inner.train, inner.val, [samples[i] for i in test_idx], config)
        record(args.results, {"bench": "matbench_expt_gap", "model": "cosnet-composition", "fold": fold,
                              "epochs": args.epochs, "batch_size": args.batch_size,
                              "weight_decay": args.weight_decay, "lr": args.lr, "lr_decay": args.lr_decay,
                              "head_hidden": args.head_hidden, **outcome})


def bench_paper_gap(args: argparse.Namespace) -> None:
    parts = {}
    for name in ("train", "val", "test"):
        frame = pd.read_csv(DATA / "cosnet_paper" / "band_gap" / f"{name}.csv")
        parts[name] = composition_samples(frame["composition"], frame["target"], f"{name}")
    for seed in args.seeds:
        config = TrainConfig(mode="composition", epochs=args.epochs, seed=seed, batch_size=args.batch_size,
                         weight_decay=args.weight_decay, lr=args.lr, lr_decay=args.lr_decay,
                         head_hidden=tuple(args.head_hidden))
        outcome = run_fold(parts["train"], parts["val"], parts["test"], config)
        record(args.results, {"bench": "paper_band_gap", "model": "cosnet-composition", "seed": seed,
                              "epochs": args.epochs, "batch_size": args.batch_size,
                              "weight_decay": args.weight_decay, "lr": args.lr, "lr_decay": args.lr_decay,
                              "head_hidden": args.head_hidden, **outcome})


def obelix_samples() -> list[Sample]:
    frame = pd.read_csv(DATA / "li_conductivity" / "train.csv", dtype=str, keep_default_na=False)
    rows = []
    for record_ in frame.to_dict("records"):
        value = record_["Ionic conductivity (S cm-1)"].strip()
        if value.startswith("<"):
            continue  # censored: an upper bound, not a measurement
        try:
            composition = parse_formula(record_["Reduced Composition"])
        except FormulaError as error:
            log(f"skipped {record_['ID']}: {error}")
            continue
        structure, structure_id = None, None
        cif = DATA / "li_conductivity" / "cifs" / f"{record_['ID']}.cif"
        if cif.is_file():
            try:
                structure, structure_id = load_structure(cif), cif.name
            except StructureError as error:
                log(f"no structure for {record_['ID']}: {error}")
        rows.append(Sample(id=record_["ID"], composition=composition, target=float(np.log10(float(value))),
                           structure=structure, structure_id=structure_id, formula=record_["Reduced Composition"]))
    return rows


def bench_obelix(args: argparse.Namespace) -> None:
    from sklearn.model_selection import GroupKFold

    samples = obelix_samples()
    log(f"OBELiX: {len(samples)} rows, {sum(s.structure is not None for s in samples)} with a structure")
    groups = [composition_key(s.composition) for s in samples]
    folds = list(GroupKFold(n_splits=5).split(samples, groups=groups))
    cache = GraphCache(args.cache)
    for fold in args.folds:
        train_idx, test_idx = folds[fold]
        train_all = [samples[i] for i in train_idx]
        test = [samples[i] for i in test_idx]
        if "rf" in args.models:
            record(args.results, {"bench": "obelix", "model": "rf-magpie", "fold": fold,
                                  **random_forest_magpie(train_all, test)})
        inner = grouped_split(train_all, fractions=(0.8, 0.2, 0.0), seed=fold)
        for mode in ("bimodal-aug", "composition", "bimodal"):
            if mode not in args.models:
                continue
            config = TrainConfig(mode=mode, epochs=args.epochs, seed=fold, batch_size=args.batch_size,
                         weight_decay=args.weight_decay, lr=args.lr, lr_decay=args.lr_decay,
                         head_hidden=tuple(args.head_hidden))
            outcome = run_fold(inner.train, inner.val, test, config, cache=cache)
            record(args.results, {"bench": "obelix", "model": f"cosnet-{mode}", "fold": fold,
                                  "epochs": args.epochs, "batch_size": args.batch_size,
                              "weight_decay": args.weight_decay, "lr": args.lr, "lr_decay": args.lr_decay,
                              "head_hidden": args.head_hidden, **outcome})


def random_forest_magpie(train: list[Sample], test: list[Sample]) -> dict:
    from matminer.featurizers.composition import ElementProperty
    from sklearn.ensemble import RandomForestRegressor

    featurizer = ElementProperty.from_preset("magpie")

    def features(rows: list[Sample]) -> np.ndarray:
        return np.nan_to_num(np.array([featurizer.featurize(s.composition) for s in rows], dtype=float))

    forest = RandomForestRegressor(n_estimators=500, random_state=0, n_jobs=1)
    forest.fit(features(train), [s.target for s in train])
    prediction = forest.predict(features(test))
    target = np.array([s.target for s in test])
    metrics = subset_metrics(target, prediction, [s.structure is not None for s in test])
    return {"mae": metrics["all"]["mae"], "mae_with_structure": metrics["with_structure"]["mae"],
            "mae_without_structure": metrics["without_structure"]["mae"], "n_test": metrics["all"]["n"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bench", choices=("expt_gap", "paper_gap", "obelix"))
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--folds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--weight-decay", type=float, default=0.1, help="Table 3 range: 1e-1 … 1e-4")
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--lr-decay", type=float, default=0.96, help="Table 3 range: 0.99 … 0.94")
    parser.add_argument("--head-hidden", type=int, nargs="+", default=[64, 32], help="widths of the head MLP^t")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--models", nargs="+", default=["rf", "bimodal-aug", "composition"])
    parser.add_argument("--results", type=Path, default=REPO / "bench" / "results_accuracy.jsonl")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/cosnet-bench-graphs"))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    {"expt_gap": bench_expt_gap, "paper_gap": bench_paper_gap, "obelix": bench_obelix}[args.bench](args)


if __name__ == "__main__":
    main()
