"""Per fold: the mean single-seed MAE, the seed ensemble, the Magpie forest and the 50/50 ensemble + forest blend.

    python bench/accuracy_ensembles.py obelix   --label pt-desc --mode composition [--predictions /tmp/bench/pred]
    python bench/accuracy_ensembles.py expt_gap --label pt-desc --mode composition

Reads the test predictions that ``bench_accuracy.py --save-predictions DIR`` wrote (one CSV per fold, mode and
seed), refits the study baseline forest (:func:`cosnet_core.baselines.fit_baselines`, 500 trees on Magpie
statistics) on the same training fold as ``bench_accuracy.py`` does, and scores, on the same test rows:

* ``single``: the MAE of each seed, averaged over seeds;
* ``ensemble``: the MAE of the mean prediction over seeds (the model the app serves);
* ``forest``: the forest;
* ``blend``: the equal-weight mean of the ensemble and the forest (:data:`cosnet_core.evaluate.FOREST_BLEND_WEIGHT`;
  fixed, never tuned).

Prints one line per fold and the mean ± std over folds of each column (a Markdown table with ``--markdown``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import bench_accuracy  # noqa: E402

from cosnet_core.baselines import fit_baselines  # noqa: E402
from cosnet_core.evaluate import FOREST_BLEND_WEIGHT  # noqa: E402


def folds_of(bench: str) -> tuple[list, list]:
    """The samples and the (train, test) index folds of a benchmark, exactly as ``bench_accuracy.py`` draws them."""
    if bench == "obelix":
        from sklearn.model_selection import GroupKFold

        from cosnet_core.splits import composition_key

        samples = bench_accuracy.obelix_samples()
        groups = [composition_key(s.composition) for s in samples]
        return samples, list(GroupKFold(n_splits=5).split(samples, groups=groups))
    from sklearn.model_selection import KFold

    frame = pd.read_csv(bench_accuracy.DATA / "band_gap" / "matbench_expt_gap.csv")
    samples = bench_accuracy.composition_samples(frame["composition"], frame["gap expt"], "gap")
    return samples, list(KFold(n_splits=5, shuffle=True, random_state=18012019).split(samples))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bench", choices=("obelix", "expt_gap"))
    parser.add_argument("--label", required=True)
    parser.add_argument("--mode", default="composition")
    parser.add_argument("--predictions", type=Path, default=Path("/tmp/bench/pred"))
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    samples, folds = folds_of(args.bench)
    rows = []
    for fold, (train_idx, test_idx) in enumerate(folds):
        files = sorted(args.predictions.glob(f"{args.bench}-{args.label}-{args.mode}-fold{fold}-seed*.csv"))
        if not files:
            continue
        test = [samples[i] for i in test_idx]
        frames = [pd.read_csv(path) for path in files]
        for frame in frames:
            if frame["id"].astype(str).tolist() != [s.id for s in test]:
                raise SystemExit(f"{files[0].name}: its rows are not fold {fold}'s test rows")
        target = frames[0]["target"].to_numpy()
        ensemble = np.mean([frame["prediction"].to_numpy() for frame in frames], axis=0)
        forest = fit_baselines([samples[i] for i in train_idx], test).predictions["rf_magpie"]
        blend = FOREST_BLEND_WEIGHT * forest + (1 - FOREST_BLEND_WEIGHT) * ensemble
        rows.append({
            "fold": fold, "seeds": len(frames),
            "single": float(np.mean([np.mean(np.abs(f["prediction"].to_numpy() - target)) for f in frames])),
            "ensemble": float(np.mean(np.abs(ensemble - target))),
            "forest": float(np.mean(np.abs(forest - target))),
            "blend": float(np.mean(np.abs(blend - target))),
        })
    table = pd.DataFrame(rows)
    if table.empty:
        raise SystemExit("no saved predictions for that label and mode")
    summary = {c: f"{table[c].mean():.3f} ± {table[c].std(ddof=0):.3f}" for c in ("single", "ensemble", "forest", "blend")}
    if args.markdown:
        print("| fold | seeds | single seed | seed ensemble | forest | ensemble + forest |")
        print("|---|---|---|---|---|---|")
        for row in rows:
            print(f"| {row['fold']} | {row['seeds']} | {row['single']:.3f} | {row['ensemble']:.3f} | {row['forest']:.3f} "
                  f"| {row['blend']:.3f} |")
        print(f"| mean ± std | | {summary['single']} | {summary['ensemble']} | {summary['forest']} | {summary['blend']} |")
    else:
        print(table.round(3).to_string(index=False))
        print("mean ± std over folds:", summary)


if __name__ == "__main__":
    main()
