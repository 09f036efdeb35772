"""Study reports computed from a table of stored predictions (pure pandas; used by the Results page).

A *prediction table* has one row per (run, entry) with at least the columns
``run_id, mode, seed, entry_id, split, target, prediction, w_c, has_structure`` and, for the Figure 2
experiment, ``structure_fraction`` (empty for the ordinary runs of a study).

* :func:`table1` — the paper's Table 1: test MAE mean ± std over seeds for all rows / rows without a
  structure / rows with one, one column per mode, the best mode marked, and whether each mode differs from
  composition-only learning by the paper's criterion (difference larger than the sum of the standard deviations);
  with RMSE and R², each mode's seed ensemble (the served model) and its 50/50 blend with the forest, the study's
  baselines (training-set mean, Magpie random forest) beside the modes, and plain warnings where a mode's served
  model is not better than a baseline or has R² < 0.
* :func:`per_sample` — one row per entry for a mode: target, seed-ensemble mean and std, error, w_C.
* :func:`figure2` — test MAE against the fraction of rows that kept their structure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from cosnet_core.evaluate import (
    is_significant_difference,
    mean_std,
    measured_mask,
    table1_of_runs,
)
from cosnet_core.hparams import Mode

SUBSET_LABELS = {"all": "complete", "without_structure": "w/o structure", "with_structure": "w/ structure"}
MODE_LABELS = {mode.value: mode.label for mode in Mode}
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


#: Kinds of rows in :attr:`Table1.long`, in the order they stand per mode.
ROW_KINDS = ("model", "ensemble", "ensemble_with_forest", "baseline")
_KIND_SUFFIX = {"ensemble": ":ensemble", "ensemble_with_forest": ":ensemble+forest"}
_KIND_MODEL = {"model": "COSNet (mean over seeds)", "ensemble": "COSNet (served)",
               "ensemble_with_forest": "COSNet + forest", "baseline": "baseline"}


@dataclass
class Table1:
    """Table 1 of the paper for one study, with the served seed ensembles and the study's baselines.

    Attributes:
        long: one row per (subset, model): ``mode`` (the row's key: a COSNet mode, ``<mode>:ensemble``,
            ``<mode>:ensemble+forest`` or a baseline name), ``kind`` (:data:`ROW_KINDS`: "model" for a COSNet mode's
            mean ± std over seeds, "ensemble" for its seed ensemble (the served model), "ensemble_with_forest" for
            the fixed 50/50 blend of that ensemble with the forest, "baseline" for :mod:`cosnet_core.baselines`),
            ``of_mode`` (the COSNet mode of the first three kinds, None for baselines), ``mae_mean, mae_std,
            rmse_mean, r2_mean, n`` (test rows; an ensemble has one number, so its std is NaN), ``n_seeds`` (seeds
            behind the row), ``best`` (lowest MAE in its subset, every kind included) and
            ``significant_vs_composition`` (paper's criterion; None for the composition-only column itself, for
            ensembles and baselines or when that mode was not run).
        n_censored_excluded: test rows left out of every number because their target is a bound (a ``censored``
            column in the prediction table), not a measurement.
    """

    long: pd.DataFrame
    n_censored_excluded: int = 0

    def display(self, digits: int = 3) -> pd.DataFrame:
        """A table to show: rows = subsets, columns = per mode its mean ± std over seeds, its served ensemble and
        the ensemble + forest blend, then the baselines; cells ``MAE mean ± std`` (one MAE for an ensemble) with ★
        on the best and † where the difference to composition-only learning is significant."""
        cells: dict[str, dict[str, str]] = {}
        for row in self.long.itertuples():
            if not np.isfinite(row.mae_mean):
                text = "–"
            elif np.isfinite(row.mae_std):
                text = f"{row.mae_mean:.{digits}f} ± {row.mae_std:.{digits}f}"
            else:
                text = f"{row.mae_mean:.{digits}f}"
            if row.best:
                text += " ★"
            if row.significant_vs_composition:
                text += " †"
            cells.setdefault(_row_label(row), {})[SUBSET_LABELS[row.subset]] = text
        table = pd.DataFrame(cells).reindex(list(SUBSET_LABELS.values()))
        counts = self.long.groupby("subset")["n"].max()
        table.insert(0, "test rows", [int(counts.get(s, 0)) for s in SUBSET_LABELS])
        table.index.name = "test subset"
        return table

    def metrics(self, digits: int = 3) -> pd.DataFrame:
        """MAE, RMSE and R² of every model, ensemble and baseline: rows = models, columns ``MAE · complete``,
        ``RMSE · complete``, ``R² · complete``, … for each subset (means over seeds, the ensemble's own numbers for
        an ensemble; ``–`` where a subset has no rows)."""
        def number(value: float) -> str:
            return f"{value:.{digits}f}" if np.isfinite(value) else "–"

        rows: dict[str, dict[str, str]] = {}
        for row in self.long.itertuples():
            subset = SUBSET_LABELS[row.subset]
            entry = rows.setdefault(_row_label(row), {"model": _KIND_MODEL[row.kind]})
            entry[f"MAE · {subset}"] = number(row.mae_mean)
            entry[f"RMSE · {subset}"] = number(row.rmse_mean)
            entry[f"R² · {subset}"] = number(row.r2_mean)
        table = pd.DataFrame.from_dict(rows, orient="index")
        table.index.name = "model"
        return table

    def warnings(self, subset: str = "all") -> list[str]:
        """Plain sentences where a COSNet mode's served model is not better than a baseline on ``subset`` or has
        R² < 0.

        The served model is the mode's seed ensemble when the seeds scored the same test rows (the row
        "…, ensemble of N seeds (served)"), else the mean over seeds.

        Args:
            subset: which test subset to judge (default all test rows).

        Returns:
            One sentence per problem, in the order of the modes.
        """
        rows = self.long[self.long["subset"] == subset]
        baselines = rows[rows["kind"] == "baseline"].set_index("mode")
        found = []
        for _, per_seed in rows[rows["kind"] == "model"].iterrows():
            served = rows[(rows["kind"] == "ensemble") & (rows["of_mode"] == per_seed["mode"])]
            judged = served.iloc[0] if len(served) else per_seed
            if not np.isfinite(judged["mae_mean"]):
                continue
            name = _row_label(judged)
            seeds = (f" (one seed: {per_seed['mae_mean']:.3g} on average)"
                     if len(served) and np.isfinite(per_seed["mae_mean"]) else "")
            for baseline in ("rf_magpie", "mean"):
                if baseline in baselines.index and np.isfinite(baselines.at[baseline, "mae_mean"]) and (
                    judged["mae_mean"] >= baselines.at[baseline, "mae_mean"]
                ):
                    found.append(
                        f"{name} is not better than the {_label(baseline)}: test MAE {judged['mae_mean']:.3g} "
                        f"against {baselines.at[baseline, 'mae_mean']:.3g}{seeds}. Do not trust this model over "
                        "the baseline."
                    )
                    break
            if np.isfinite(judged["r2_mean"]) and judged["r2_mean"] < 0:
                found.append(
                    f"{name} has a test R² of {judged['r2_mean']:.2f}, below 0: it predicts the test rows worse "
                    "than their own mean would."
                )
        return found


def seed_protocol_text(protocol: str | None) -> str:
    """One line saying what the seeds of a study share (:func:`cosnet_core.splits.split_for_seed`).

    Args:
        protocol: ``"fixed-test"``, ``"resplit"``, or None for a study launched before the choice existed (its
            seeds shared one whole split).

    Returns:
        A sentence ending with a full stop.
    """
    from cosnet_core.splits import SEED_PROTOCOL_TEXT

    if protocol in SEED_PROTOCOL_TEXT:
        return SEED_PROTOCOL_TEXT[protocol] + "."
    return "Seeds share one split (the same training, validation and test rows): the study predates the choice."


def _label(mode: str) -> str:
    from cosnet_core.baselines import BASELINE_LABELS

    return MODE_LABELS.get(mode) or BASELINE_LABELS.get(mode) or mode


def _row_label(row: Any) -> str:
    """How a row of :attr:`Table1.long` is named on the page (a namedtuple or a Series)."""
    kind, of_mode = _get(row, "kind"), _get(row, "of_mode")
    if kind == "ensemble":
        n = int(_get(row, "n_seeds"))
        return f"{_label(of_mode)}, ensemble of {n} seed{'s' if n != 1 else ''} (served)"
    if kind == "ensemble_with_forest":
        return f"{_label(of_mode)} ensemble + forest (50/50)"
    return _label(_get(row, "mode"))


def _get(row: Any, name: str) -> Any:
    return row[name] if isinstance(row, pd.Series) else getattr(row, name)


def table1(
    predictions: pd.DataFrame,
    split: str = "test",
    baselines: dict[str, dict[str, dict[str, float]]] | None = None,
    baseline_rows: Any = None,
) -> Table1:
    """Table 1 from a prediction table (test rows of the ordinary runs), with the seed ensembles and the study's
    baselines.

    The metrics are computed per run (one run = one mode and seed) on each subset
    (:func:`cosnet_core.evaluate.subset_metrics`), then summarised as mean and sample standard deviation over the
    seeds of each mode (:func:`cosnet_core.evaluate.summarize_over_seeds`), the same definitions as the command
    line's ``metrics.json``. When every seed of a mode scored the same test rows, the mode also gets its seed
    ensemble (the served model) and that ensemble blended 50/50 with the forest
    (:func:`cosnet_core.evaluate.ensemble_metrics`, as ``metrics.json``'s ``ensemble`` and
    ``ensemble_with_forest``).

    Args:
        predictions: the prediction table.
        split: which split to score (Table 1 uses the test split).
        baselines: ``{"mean"|"rf_magpie": {subset: {"mae_mean", "mae_std", "rmse_mean", "r2_mean", "n"}}}`` as
            stored with the study (``Study.results["baselines"]``), or None.
        baseline_rows: the baselines' test predictions per seed as stored with the study
            (``Study.results["baseline_rows"]``; see :func:`cosnet_core.baselines.stored_prediction_frames`), for
            the blend; None: no blend row.

    Returns:
        The :class:`Table1`.
    """
    from cosnet_core.baselines import stored_prediction_frames

    _check(predictions)
    rows = _protocol_rows(predictions)
    rows = rows[rows["split"] == split]
    forest = stored_prediction_frames(baseline_rows)
    n_forest_seeds = len(forest)
    records = []
    summaries: dict[str, tuple[dict[str, dict[str, float]], int, str, str | None]] = {}
    # the one Table 1 computation (the command line's metrics.json and the study results use it too)
    by_mode = table1_of_runs(rows.rename(columns={"run_id": "run", "entry_id": "id"}), forest=forest or None)
    for mode, found in by_mode.items():
        summaries[mode] = (found["test"], len(found["per_run"]), "model", mode)
        for kind in ("ensemble", "ensemble_with_forest"):
            if found[kind]:
                summaries[mode + _KIND_SUFFIX[kind]] = (_as_summary(found[kind]), len(found["runs"]), kind, mode)
    for name, subsets in (baselines or {}).items():
        summaries[name] = (subsets, max(n_forest_seeds, 1), "baseline", None)
    for subset in SUBSET_LABELS:
        for mode, (summary, n_seeds, kind, of_mode) in summaries.items():
            entry = summary.get(subset) or {}
            if kind != "baseline" and not entry.get("n"):
                continue  # no test row of this subset
            records.append(
                {"subset": subset, "mode": mode, "kind": kind, "of_mode": of_mode,
                 **{key: _number(entry.get(key)) for key in ("mae_mean", "mae_std", "rmse_mean", "r2_mean")},
                 "n": int(entry.get("n") or 0), "n_seeds": n_seeds}
            )
    long = pd.DataFrame(
        records,
        columns=["subset", "mode", "kind", "of_mode", "mae_mean", "mae_std", "rmse_mean", "r2_mean", "n", "n_seeds"],
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
                if row["kind"] == "model" and row["mode"] != "composition" and np.isfinite(row["mae_mean"]):
                    long.at[index, "significant_vs_composition"] = bool(is_significant_difference(
                        row["mae_mean"], row["mae_std"], ref_mean, ref_std
                    ))
    bounds = rows[~measured_mask(rows["censored"], len(rows))] if "censored" in rows.columns else rows.iloc[:0]
    return Table1(long=long.reset_index(drop=True), n_censored_excluded=int(bounds["entry_id"].nunique()))


def _as_summary(metrics: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """:func:`cosnet_core.evaluate.ensemble_metrics`' numbers under the keys of a summary over seeds (std NaN)."""
    return {
        subset: {"mae_mean": entry["mae"], "mae_std": float("nan"), "rmse_mean": entry["rmse"],
                 "r2_mean": entry["r2"], "n": entry["n"]}
        for subset, entry in metrics.items()
    }


def _number(value: float | None) -> float:
    return float("nan") if value is None else float(value)


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
