"""Summarise the accuracy runs of ``bench_accuracy.py``: per benchmark and model, the mean ± std of the test MAE
over folds (or seeds), and the MAE of the seed ensemble (mean prediction per row) from the saved predictions.

    python bench/accuracy_summary.py [--results bench/results_accuracy.jsonl] [--predictions DIR] [--label d99]

Only result lines with the given ``--label`` (as passed to ``bench_accuracy.py``) are used, so runs with other
settings in the same file do not mix in. The ensemble of a fold averages every saved seed of that fold.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
FILE_PATTERN = re.compile(
    r"^(?P<bench>.+?)-(?P<label>.+)-(?P<mode>composition|bimodal-aug|bimodal)-fold(?P<fold>\d+)-seed(?P<seed>\d+)\.csv$"
)
BENCH_OF_FILE = {"expt_gap": "matbench_expt_gap", "paper_gap": "paper_band_gap", "obelix": "obelix"}


def per_model(lines: list[dict]) -> dict[tuple[str, str], dict[int, list[float]]]:
    """MAE per (benchmark, model) → fold → list over seeds."""
    table: dict[tuple[str, str], dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for line in lines:
        table[(line["bench"], line["model"])][int(line.get("fold", 0))].append(float(line["mae"]))
    return table


def ensembles(folder: Path, label: str) -> dict[tuple[str, str], dict[int, tuple[int, float]]]:
    """(benchmark, model) → fold → (number of seeds, MAE of the mean prediction)."""
    groups: dict[tuple[str, str, int], list[pd.DataFrame]] = defaultdict(list)
    for path in sorted(folder.glob("*.csv")):
        match = FILE_PATTERN.match(path.name)
        if match is None or match["label"] != label:
            continue
        key = (BENCH_OF_FILE.get(match["bench"], match["bench"]), f"cosnet-{match['mode']}", int(match["fold"]))
        groups[key].append(pd.read_csv(path))
    out: dict[tuple[str, str], dict[int, tuple[int, float]]] = defaultdict(dict)
    for (bench, model, fold), frames in groups.items():
        if any(not frame["id"].equals(frames[0]["id"]) for frame in frames):
            raise SystemExit(f"{bench} {model} fold {fold}: the saved runs do not hold the same rows")
        mean = np.mean([frame["prediction"].to_numpy() for frame in frames], axis=0)
        out[(bench, model)][fold] = (len(frames), float(np.mean(np.abs(mean - frames[0]["target"].to_numpy()))))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=REPO / "bench" / "results_accuracy.jsonl")
    parser.add_argument("--predictions", type=Path, default=None, help="the --save-predictions folder")
    parser.add_argument("--label", default="default")
    args = parser.parse_args()
    lines = [json.loads(text) for text in args.results.read_text().splitlines() if text.strip()]
    chosen = [line for line in lines if line.get("label") == args.label or line["model"].startswith("rf-")]
    ensemble = ensembles(args.predictions, args.label) if args.predictions else {}
    print(f"label {args.label!r}: MAE per fold (mean over seeds), then mean ± std over folds")
    for (bench, model), folds in sorted(per_model(chosen).items()):
        fold_means = [float(np.mean(folds[fold])) for fold in sorted(folds)]
        seeds = sorted({len(values) for values in folds.values()})
        text = " / ".join(f"{value:.3f}" for value in fold_means)
        spread = f" ± {np.std(fold_means):.3f}" if len(fold_means) > 1 else ""
        validation = [float(line["best_val_mae"]) for line in chosen
                      if (line["bench"], line["model"]) == (bench, model) and line.get("best_val_mae") is not None]
        selection = f"  (validation MAE {np.mean(validation):.3f}, used for choices)" if validation else ""
        print(f"{bench:20s} {model:22s} folds {sorted(folds)} seeds {seeds}: {text} → {np.mean(fold_means):.3f}{spread}"
              f"{selection}")
        if (bench, model) in ensemble:
            members = ensemble[(bench, model)]
            values = [members[fold][1] for fold in sorted(members)]
            sizes = sorted({members[fold][0] for fold in members})
            print(f"{'':20s} {'  seed ensemble':22s} folds {sorted(members)} seeds {sizes}: "
                  + " / ".join(f"{v:.3f}" for v in values) + f" → {np.mean(values):.3f}")


if __name__ == "__main__":
    main()
