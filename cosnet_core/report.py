"""Study reports computed from a table of stored predictions (pure pandas; used by the Results page).

A *prediction table* has one row per (run, entry) with at least the columns
``run_id, mode, seed, entry_id, split, target, prediction, w_c, has_structure`` and, for the Figure 2
experiment, ``structure_fraction`` (empty for the ordinary runs of a study).

* :func:`table1` — the paper's Table 1: test MAE mean ± std over seeds for all rows / rows without a
  structure / rows with one, one column per mode, the best mode marked, and whether each mode differs from
  composition-only learning by the paper's criterion (difference larger than the sum of the standard deviations).
* :func:`per_sample` — one row per entry for a mode: target, seed-ensemble mean and std, error, w_C.
* :func:`figure2` — test MAE against the fraction of rows that kept their structure.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from cosnet_core.evaluate import is_significant_difference, mean_std

SUBSET_LABELS = {"all": "complete", "without_structure": "w/o structure", "with_structure": "w/ structure"}
MODE_LABELS = {
    "composition": "composition only",
    "bimodal-aug": "bimodal with augmentation",
    "bimodal": "bimodal without augmentation",
}
REQUIRED_COLUMNS = ("run_id", "mode", "seed", "entry_id", "split", "target", "prediction", "w_c", "has_structure")


def _check(predictions: pd.DataFrame) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in predictions.columns]
    if missing:
        raise ValueError(f"the prediction table lacks the columns {missing}")


def _protocol_rows(predictions: pd.DataFrame) -> pd.DataFrame:
    """Rows of the ordinary runs (not the Figure 2 experiment)."""
    if "structure_fraction" in predictions.columns:
        return predictions[predictions["structure_fraction"].isna()]
    return predictions


def _subset_mask(frame: pd.DataFrame, subset: str) -> pd.Series:
    if subset == "all":
        return pd.Series(True, index=frame.index)
    with_structure = frame["has_structure"].astype(bool)
    return with_structure if subset == "with_structure" else ~with_structure


@dataclass
class Table1:
    """Table 1 of the paper for one study.

    Attributes:
        long: one row per (subset, mode): ``mae_mean, mae_std, n`` (test rows), ``n_seeds``, ``best`` (lowest
            mean MAE in its subset) and ``significant_vs_composition`` (paper's criterion; None for the
            composition-only column itself or when that mode was not run).
    """

    long: pd.DataFrame

    def display(self, digits: int = 3) -> pd.DataFrame:
        """A table to show: rows = subsets, columns = modes, cells ``mean ± std`` with ★ on the best and † where
        the difference to composition-only learning is significant."""
        cells: dict[str, dict[str, str]] = {}
        for row in self.long.itertuples():
            text = f"{row.mae_mean:.{digits}f} ± {row.mae_std:.{digits}f}" if np.isfinite(row.mae_mean) else "–"
            if row.best:
                text += " ★"
            if row.significant_vs_composition:
                text += " †"
            cells.setdefault(MODE_LABELS.get(row.mode, row.mode), {})[SUBSET_LABELS[row.subset]] = text
        table = pd.DataFrame(cells).reindex(list(SUBSET_LABELS.values()))
        counts = self.long.groupby("subset")["n"].max()
        table.insert(0, "test rows", [int(counts.get(s, 0)) for s in SUBSET_LABELS])
        table.index.name = "test subset"
        return table


def table1(predictions: pd.DataFrame, split: str = "test") -> Table1:
    """Table 1 from a prediction table (test rows of the ordinary runs).

    The MAE is computed per run (one run = one mode and seed) on each subset, then summarised as mean and sample
    standard deviation over the seeds of each mode (:func:`cosnet_core.evaluate.mean_std`).

    Args:
        predictions: the prediction table.
        split: which split to score (Table 1 uses the test split).

    Returns:
        The :class:`Table1`.
    """
    _check(predictions)
    rows = _protocol_rows(predictions)
    rows = rows[rows["split"] == split]
    records = []
    for subset in SUBSET_LABELS:
        subset_rows = rows[_subset_mask(rows, subset)]
        for mode, mode_rows in subset_rows.groupby("mode", sort=False):
            per_run = (mode_rows["prediction"] - mode_rows["target"]).abs().groupby(mode_rows["run_id"]).mean()
            mae_mean, mae_std = mean_std(per_run.to_numpy())
            n = int(mode_rows.groupby("run_id").size().max()) if len(mode_rows) else 0
            records.append(
                {"subset": subset, "mode": mode, "mae_mean": mae_mean, "mae_std": mae_std, "n": n,
                 "n_seeds": int(per_run.size)}
            )
    long = pd.DataFrame(
        records, columns=["subset", "mode", "mae_mean", "mae_std", "n", "n_seeds"]
    )
    long["best"] = False
    long["significant_vs_composition"] = pd.Series([None] * len(long), dtype=object)
    for _subset, group in long.groupby("subset"):
        finite = group[np.isfinite(group["mae_mean"])]
        if len(finite):
            long.loc[finite["mae_mean"].idxmin(), "best"] = True
        reference = group[group["mode"] == "composition"]
        if len(reference) and np.isfinite(reference["mae_mean"].iloc[0]):
            ref_mean, ref_std = reference["mae_mean"].iloc[0], reference["mae_std"].iloc[0]
            for index, row in group.iterrows():
                if row["mode"] != "composition" and np.isfinite(row["mae_mean"]):
                    long.at[index, "significant_vs_composition"] = bool(is_significant_difference(
                        row["mae_mean"], row["mae_std"], ref_mean, ref_std
                    ))
    return Table1(long=long.reset_index(drop=True))


def per_sample(predictions: pd.DataFrame, mode: str) -> pd.DataFrame:
    """One row per entry for ``mode``: the seed-ensemble mean and (population) std of the prediction, its error
    and the mean composition weight w_C.

    Descriptive columns present in the prediction table (formula, id, structure source, ...) are carried over.

    Args:
        predictions: the prediction table.
        mode: one of the study's modes.

    Returns:
        Columns ``entry_id, split, target, prediction, prediction_std, error, abs_error, w_c, has_structure,
        n_seeds`` plus the descriptive columns, sorted by entry id.
    """
    _check(predictions)
    rows = _protocol_rows(predictions)
    rows = rows[rows["mode"] == mode]
    described = [c for c in rows.columns if c not in (*REQUIRED_COLUMNS, "structure_fraction", "seed", "mode")]
    grouped = rows.groupby("entry_id", sort=True)
    table = grouped[["split", "target", "has_structure", *described]].first()
    table["prediction"] = grouped["prediction"].mean()
    table["prediction_std"] = grouped["prediction"].std(ddof=0)
    table["w_c"] = grouped["w_c"].mean()
    table["n_seeds"] = grouped["run_id"].nunique()
    table["error"] = table["prediction"] - table["target"]
    table["abs_error"] = table["error"].abs()
    return table.reset_index()


def figure2(predictions: pd.DataFrame, split: str = "test") -> pd.DataFrame:
    """Figure 2 from the runs of the structure-fraction experiment: test MAE (mean ± std over seeds) per mode and
    fraction of rows that kept their structure.

    Args:
        predictions: the prediction table with a ``structure_fraction`` column.
        split: which split to score.

    Returns:
        Columns ``mode, structure_fraction, mae_mean, mae_std, n_seeds``; empty when the experiment did not run.
    """
    columns = ["mode", "structure_fraction", "mae_mean", "mae_std", "n_seeds"]
    if "structure_fraction" not in predictions.columns:
        return pd.DataFrame(columns=columns)
    rows = predictions[predictions["structure_fraction"].notna() & (predictions["split"] == split)]
    records = []
    for (mode, fraction), group in rows.groupby(["mode", "structure_fraction"]):
        per_run = (group["prediction"] - group["target"]).abs().groupby(group["run_id"]).mean()
        mae_mean, mae_std = mean_std(per_run.to_numpy())
        records.append({"mode": mode, "structure_fraction": float(fraction), "mae_mean": mae_mean,
                        "mae_std": mae_std, "n_seeds": int(per_run.size)})
    return pd.DataFrame(records, columns=columns)
