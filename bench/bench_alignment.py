"""Table 2 with and without volume per atom and density among g_S's cell inputs (issue 15, item 8; run by hand).

    python bench/bench_alignment.py [--folds 0 1] [--epochs 60] [--threads 1]

Table 2 regresses the composition representation C on the volume per atom V_a. The project's de-CGCNN also takes
V_a and the density as cell descriptors (``TrainConfig.cell_features="all"``), so a bimodal model could pass V_a
into C's training signal; ``cell_features="no-volume"`` drops both. On OBELiX (its train split with CIFs, log10 S/cm,
censored rows left out, the grouped folds of ``bench_accuracy.py obelix``) this trains, per fold, the
composition-only model (C never sees a structure) and the bimodal-aug model with and without V_a/density, all with
the project's defaults preset except the epochs, and records the cross-validated alignment R²
(:func:`cosnet_core.evaluate.alignment_r2`, the CLI's and the app's Table 2) on the fold's test rows that have a
structure, and, less noisy, on every row of the fold that has a structure (train, validation and test), with the
test MAE. One JSON line per run is appended to ``--results`` (default ``bench/results_accuracy.jsonl``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_accuracy import log, obelix_folds, obelix_samples, record  # noqa: E402

from cosnet_core.evaluate import alignment_r2, subset_metrics, volume_per_atom  # noqa: E402
from cosnet_core.hparams import preset_train_settings  # noqa: E402
from cosnet_core.splits import grouped_split  # noqa: E402
from cosnet_core.structure import GraphCache  # noqa: E402
from cosnet_core.train import TrainConfig, fit  # noqa: E402

VARIANTS = (("composition", "all"), ("bimodal-aug", "all"), ("bimodal-aug", "no-volume"))


def alignment_of(result, rows, cache, seed: int) -> tuple[float, int]:
    """Cross-validated R² of C → V_a over the rows that have a structure, and their number."""
    structured = [s for s in rows if s.structure is not None]
    if not structured:
        return float("nan"), 0
    predicted = result.predict(structured, cache=cache)
    volumes = [volume_per_atom(s.structure) for s in structured]
    return alignment_r2(predicted.composition_repr, volumes, seed=seed), len(structured)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--results", type=Path, default=REPO / "bench" / "results_accuracy.jsonl")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/cosnet-bench-graphs"))
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    folds = obelix_folds(obelix_samples())
    cache = GraphCache(args.cache)
    for fold in args.folds:
        train_all, test = folds[fold]
        inner = grouped_split(train_all, fractions=(0.8, 0.2, 0.0), seed=fold * 1000 + args.seed)
        for mode, cell_features in VARIANTS:
            config = TrainConfig(**{**preset_train_settings("defaults"), "mode": mode, "epochs": args.epochs,
                                    "seed": args.seed + fold, "cell_features": cell_features})
            started = time.perf_counter()
            result = fit(inner.train, inner.val, config, cache=cache)
            predicted = result.predict(test, cache=cache)
            metrics = subset_metrics([s.target for s in test], predicted.prediction, predicted.has_structure)
            r2_test, n_test = alignment_of(result, test, cache, args.seed)
            r2_all, n_all = alignment_of(result, [*inner.train, *inner.val, *test], cache, args.seed)
            record(args.results, {
                "bench": "obelix_table2", "model": f"cosnet-{mode}", "cell_features": cell_features, "fold": fold,
                "seed": args.seed, "epochs": args.epochs, "preset": "defaults", "label": "table2-volume-inputs",
                "alignment_r2_test": r2_test, "n_alignment_test": n_test,
                "alignment_r2_all_rows": r2_all, "n_alignment_all_rows": n_all,
                "mae": metrics["all"]["mae"], "n_test": metrics["all"]["n"], "best_epoch": result.best_epoch,
                "seconds": round(time.perf_counter() - started, 1),
            })
    log("done")


if __name__ == "__main__":
    main()
