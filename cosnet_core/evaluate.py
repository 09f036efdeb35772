"""Evaluation with the paper's protocol: Table 1 errors per subset, Table 2 alignment, Figures 2 and 3.

* Table 1: MAE (and RMSE, R²) on all test rows, on those without a structure and on those with one, as mean ± std
  over seeds (:func:`subset_metrics`, :func:`summarize_over_seeds`).
* Table 2: how well the composition representation C predicts the volume per atom V_a
  (:func:`alignment_r2`).
* Figure 2: test MAE when the structures of a growing share of rows are hidden (:func:`structure_fraction_experiment`).
* Figure 3: w_C per sample, read from the prediction table (:func:`composition_weights`).
* The paper's significance criterion (:func:`is_significant_difference`) and seed ensembles
  (:func:`ensemble_predictions`; on the test rows with Table 1's subsets, alone or blended 50/50 with the forest:
  :func:`ensemble_metrics`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # heavy imports only where used
    from cosnet_core.train import TrainConfig

SUBSETS = ("all", "without_structure", "with_structure")
HIDDEN_FRACTIONS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


def regression_metrics(target: Sequence[float], prediction: Sequence[float]) -> dict[str, float]:
    """MAE, RMSE and R² of one set of predictions.

    Args:
        target: true values.
        prediction: predicted values (same length).

    Returns:
        ``{"mae", "rmse", "r2", "n"}``; the errors are NaN for an empty set and R² is NaN when the targets are
        constant or fewer than 2.
    """
    y = np.asarray(target, dtype=float)
    p = np.asarray(prediction, dtype=float)
    if y.shape != p.shape:
        raise ValueError(f"target and prediction differ in length: {y.shape} vs {p.shape}")
    n = int(y.size)
    if n == 0:
        return {"mae": float("nan"), "rmse": float("nan"), "r2": float("nan"), "n": 0}
    error = p - y
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float((error**2).sum()) / ss_tot if n >= 2 and ss_tot > 0 else float("nan")
    return {
        "mae": float(np.abs(error).mean()),
        "rmse": float(np.sqrt((error**2).mean())),
        "r2": r2,
        "n": n,
    }


def measured_mask(censored: Sequence[Any] | None, n: int) -> np.ndarray:
    """Which rows hold a measurement: False where the row's target is a bound (a censored sign such as ``"<"``, or
    True in a boolean column), True elsewhere (None, NaN, empty, False).

    Args:
        censored: one entry per row (``Sample.censored``, a prediction table's ``censored`` column), or None.
        n: the number of rows.

    Returns:
        A boolean array of length ``n``.
    """
    if censored is None:
        return np.ones(n, dtype=bool)
    values = list(censored)
    if len(values) != n:
        raise ValueError(f"censored has {len(values)} entries for {n} rows")

    def is_bound(value: Any) -> bool:
        if value is None or value is False or (isinstance(value, float) and np.isnan(value)):
            return False
        return bool(str(value).strip()) and str(value).strip().lower() not in ("false", "0", "nan", "none")

    return np.array([not is_bound(value) for value in values], dtype=bool)


def subset_metrics(
    target: Sequence[float],
    prediction: Sequence[float],
    has_structure: Sequence[bool],
    censored: Sequence[Any] | None = None,
) -> dict[str, dict[str, float]]:
    """Table 1's three subsets: all rows, rows without a structure, rows with one.

    A row whose target is a bound (``censored``, e.g. σ < 1E-10) is not a measurement, so it is never scored: it
    is left out of every subset and counted in ``n_censored_excluded``.

    Args:
        target: true values.
        prediction: predicted values.
        has_structure: whether each row has a crystal structure in the data.
        censored: per row, its censored sign or None (see :func:`measured_mask`); None: every row is measured.

    Returns:
        ``{"all"|"without_structure"|"with_structure": {**regression_metrics(...), "n_censored_excluded"}}``.
    """
    y = np.asarray(target, dtype=float)
    p = np.asarray(prediction, dtype=float)
    mask = np.asarray(has_structure, dtype=bool)
    measured = measured_mask(censored, len(y))
    subsets = {"all": measured, "without_structure": measured & ~mask, "with_structure": measured & mask}
    excluded = {"all": ~measured, "without_structure": ~measured & ~mask, "with_structure": ~measured & mask}
    return {
        name: {**regression_metrics(y[rows], p[rows]), "n_censored_excluded": int(excluded[name].sum())}
        for name, rows in subsets.items()
    }


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1) over seeds, ignoring NaN; std is 0 for a single value.

    Args:
        values: one number per seed.

    Returns:
        ``(mean, std)``; ``(nan, nan)`` when no value is finite.
    """
    array = np.asarray(values, dtype=float)
    array = array[np.isfinite(array)]
    if array.size == 0:
        return float("nan"), float("nan")
    std = float(array.std(ddof=1)) if array.size > 1 else 0.0
    return float(array.mean()), std


def summarize_over_seeds(per_seed: Sequence[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Mean ± std over seeds of :func:`subset_metrics` results.

    Args:
        per_seed: one ``subset_metrics`` result per seed.

    Returns:
        ``{subset: {"mae_mean", "mae_std", "rmse_mean", "rmse_std", "r2_mean", "r2_std", "n"}}``, where ``n`` is
        the test size of the first seed (the same for every seed when the split is fixed).
    """
    summary: dict[str, dict[str, float]] = {}
    for subset in SUBSETS:
        entry: dict[str, float] = {}
        for metric in ("mae", "rmse", "r2"):
            mean, std = mean_std([result[subset][metric] for result in per_seed])
            entry[f"{metric}_mean"] = mean
            entry[f"{metric}_std"] = std
        entry["n"] = int(per_seed[0][subset]["n"]) if per_seed else 0
        entry["n_censored_excluded"] = int(per_seed[0][subset].get("n_censored_excluded", 0)) if per_seed else 0
        summary[subset] = entry
    return summary


def is_significant_difference(mean_a: float, std_a: float, mean_b: float, std_b: float) -> bool:
    """The paper's criterion: two results differ significantly when their means differ by more than the sum of
    their standard deviations.

    Args:
        mean_a: mean of result A (e.g. MAE over seeds).
        std_a: its standard deviation.
        mean_b: mean of result B.
        std_b: its standard deviation.

    Returns:
        True when ``|mean_a - mean_b| > std_a + std_b``.
    """
    return abs(mean_a - mean_b) > std_a + std_b


def volume_per_atom(structure: Any) -> float:
    """V_a of Table 2: :func:`cosnet_core.structure.volume_per_atom`, the one definition (cell volume divided by the
    occupancy-weighted number of atoms) that the app's stored column uses too.

    Args:
        structure: a pymatgen ``Structure``.

    Returns:
        Volume per atom in Å³.
    """
    from cosnet_core.structure_io import volume_per_atom as one_definition

    return one_definition(structure)


def alignment_r2(
    composition_repr: np.ndarray, volume: Sequence[float], *, n_splits: int = 5, seed: int = 0
) -> float:
    """Table 2's alignment score: how linearly the composition representation C predicts the volume per atom.

    The paper fits a linear regression from C (the output of g_C, eq. (1)) to V_a over the test rows that have a
    structure and reports its R². Because C is 64-wide and such test sets hold tens of rows, an in-sample R² of an
    ordinary least-squares fit is close to 1 for any C. We therefore report a **cross-validated** R²: the features
    are standardised, a ridge regression (``sklearn.linear_model.RidgeCV``, alphas 1e-3…1e3, 13 values on a log
    grid, chosen by efficient leave-one-out inside each training fold) is fitted on ``n_splits`` folds of a
    ``KFold(shuffle=True, random_state=seed)``, and R² = 1 − SS_res/SS_tot is computed once over the pooled
    out-of-fold predictions.

    Args:
        composition_repr: C, shape ``[n, h]``, of the test rows that have a structure.
        volume: V_a of the same rows (see :func:`volume_per_atom`).
        n_splits: number of folds (reduced to n when fewer rows).
        seed: fold shuffle seed.

    Returns:
        The cross-validated R² (can be negative: worse than predicting the mean), or NaN when fewer than 5 rows
        or when V_a is constant.
    """
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import KFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.asarray(composition_repr, dtype=float)
    y = np.asarray(volume, dtype=float)
    if x.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f"composition_repr must be [n, h] with n = len(volume); got {x.shape} and {y.shape}")
    n = y.shape[0]
    if n < 5 or float(y.var()) == 0.0:
        return float("nan")
    out_of_fold = np.empty(n)
    folds = KFold(n_splits=min(n_splits, n), shuffle=True, random_state=seed)
    for train_idx, test_idx in folds.split(x):
        model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13)))
        model.fit(x[train_idx], y[train_idx])
        out_of_fold[test_idx] = model.predict(x[test_idx])
    return 1.0 - float(((y - out_of_fold) ** 2).sum()) / float(((y - y.mean()) ** 2).sum())


def composition_weights(predictions: pd.DataFrame) -> pd.DataFrame:
    """Figure 3: w_C per sample for the rows that have a structure (w_C is exactly 1 for the others).

    Args:
        predictions: a prediction table with ``id``, ``has_structure`` and ``w_c`` columns.

    Returns:
        The rows with a structure, columns ``id``, ``w_c`` (and ``composition``/``target``/``prediction`` where
        present), sorted by ``w_c``.
    """
    keep = [c for c in ("id", "composition", "target", "prediction", "w_c") if c in predictions.columns]
    rows = predictions[predictions["has_structure"].astype(bool)]
    return rows[keep].sort_values("w_c").reset_index(drop=True)


def ensemble_predictions(per_seed: Sequence[Sequence[float]]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation per row over the predictions of several seeds (or models).

    Args:
        per_seed: one prediction array per seed, all of the same length.

    Returns:
        ``(mean, std)`` arrays; std is the population standard deviation (ddof=0), 0 for a single model.
    """
    stacked = np.stack([np.asarray(p, dtype=float) for p in per_seed])
    return stacked.mean(axis=0), stacked.std(axis=0)


#: Weight of the seed ensemble in :func:`ensemble_metrics`'s blend with the forest (the forest gets the rest). Fixed
#: at one half a priori: it is not tuned on validation or test rows.
FOREST_BLEND_WEIGHT = 0.5


def _aligned(frames: Sequence[pd.DataFrame]) -> list[pd.DataFrame] | None:
    """The frames indexed by ``id`` in the first frame's row order, or None when they do not hold the same rows."""
    if not frames:
        return None
    indexed = []
    for frame in frames:
        ids = frame["id"].astype(str)
        if ids.duplicated().any():
            return None
        indexed.append(frame.assign(id=ids).set_index("id"))
    order = indexed[0].index
    if any(set(other.index) != set(order) for other in indexed[1:]):
        return None
    return [frame.loc[order] for frame in indexed]


def seed_ensemble(per_seed_frames: Sequence[pd.DataFrame]) -> pd.DataFrame | None:
    """The seed ensemble (the served model) on the test rows: the mean prediction per row over the seeds.

    Args:
        per_seed_frames: one frame per seed with the columns ``id, target, prediction, has_structure`` (its test
            rows) and optionally ``censored``: rows whose target is a bound are left out (never scored).

    Returns:
        Columns ``id, target, prediction, has_structure`` in the first frame's row order, or None when there is
        no frame or when the seeds did not all score the same rows (a ``resplit`` study).
    """
    per_seed_frames = [
        frame[measured_mask(frame["censored"], len(frame))] if "censored" in frame.columns else frame
        for frame in per_seed_frames
    ]
    aligned = _aligned(per_seed_frames)
    if aligned is None:
        return None
    first = aligned[0]
    mean, _ = ensemble_predictions([frame["prediction"].to_numpy(dtype=float) for frame in aligned])
    return pd.DataFrame({"id": first.index, "target": first["target"].to_numpy(dtype=float), "prediction": mean,
                         "has_structure": first["has_structure"].astype(bool).to_numpy()})


def ensemble_metrics(
    per_seed_frames: Sequence[pd.DataFrame], forest: Sequence[pd.DataFrame] | None = None
) -> dict[str, dict[str, float]] | None:
    """Table 1's subsets for the seed ensemble, or for its blend with the random forest.

    Without ``forest``: the metrics of :func:`seed_ensemble` (the mean prediction per test row over the seeds).
    With ``forest``: the metrics of the equal-weight blend ``0.5 · seed ensemble + 0.5 · forest``, where ``forest``
    is the mean over seeds of the ``rf_magpie`` baseline's predictions for the same rows. The weight is fixed at
    :data:`FOREST_BLEND_WEIGHT` = 1/2 a priori, **not tuned on anything** (neither validation nor test rows), so
    the blend's test error is as honest as the ensemble's.

    Args:
        per_seed_frames: one frame per seed with ``id, target, prediction, has_structure`` (its test rows).
        forest: one frame per seed with ``id, prediction`` (the forest's predictions of that seed's test rows).

    Returns:
        ``{"all"|"without_structure"|"with_structure": {"mae", "rmse", "r2", "n", "members"}}`` with
        ``members`` the number of seeds; None when the seeds (or the forest's seeds) did not all score the same
        rows, e.g. under the ``resplit`` protocol.
    """
    ensemble = seed_ensemble(per_seed_frames)
    if ensemble is None:
        return None
    prediction = ensemble["prediction"].to_numpy(dtype=float)
    if forest is not None:
        aligned = _aligned([ensemble[["id"]], *forest])
        if aligned is None or len(aligned) < 2:
            return None
        forest_mean, _ = ensemble_predictions([frame["prediction"].to_numpy(dtype=float) for frame in aligned[1:]])
        prediction = FOREST_BLEND_WEIGHT * prediction + (1.0 - FOREST_BLEND_WEIGHT) * forest_mean
    metrics = subset_metrics(ensemble["target"], prediction, ensemble["has_structure"])
    first = per_seed_frames[0]
    if "censored" in first.columns:  # the bounds seed_ensemble left out, counted as subset_metrics counts them
        bounds = first[~measured_mask(first["censored"], len(first))]
        excluded = subset_metrics(np.zeros(len(bounds)), np.zeros(len(bounds)), bounds["has_structure"].astype(bool))
        for subset in metrics:
            metrics[subset]["n_censored_excluded"] = excluded[subset]["n"]
    return {subset: {**entry, "members": len(per_seed_frames)} for subset, entry in metrics.items()}


def table1_of_runs(
    frame: pd.DataFrame, forest: Sequence[pd.DataFrame] | None = None
) -> dict[str, dict[str, Any]]:
    """Table 1 per mode from the test predictions of a set of runs: the one computation behind the command line's
    ``metrics.json``, the app's study results and the Results page.

    Per run (one mode and seed), :func:`subset_metrics` on its test rows; per mode, their mean ± std
    (:func:`summarize_over_seeds`), the seed ensemble and its 50/50 blend with the forest (:func:`ensemble_metrics`).

    Args:
        frame: one row per (run, test row) with ``mode, run, id, target, prediction, has_structure`` (and
            ``censored`` where the target may be a bound).
        forest: the forest baseline's test predictions per seed (``id, prediction``) for the blend, or None.

    Returns:
        ``{mode: {"test": summary over runs, "per_run": [subset_metrics per run], "runs": [run keys],
        "ensemble": ..., "ensemble_with_forest": ... (None without ``forest``)}}``, modes in order of appearance.
    """
    found: dict[str, dict[str, Any]] = {}
    for mode, mode_rows in frame.groupby("mode", sort=False):
        runs = list(mode_rows.groupby("run", sort=False))
        per_run, frames = [], []
        for _, rows in runs:
            bounds = {"censored": rows["censored"]} if "censored" in rows.columns else {}
            per_run.append(subset_metrics(rows["target"], rows["prediction"], rows["has_structure"].astype(bool),
                                          **bounds))
            frames.append(pd.DataFrame({"id": rows["id"].astype(str).to_numpy(), "target": rows["target"].to_numpy(),
                                        "prediction": rows["prediction"].to_numpy(),
                                        "has_structure": rows["has_structure"].astype(bool).to_numpy(),
                                        **{k: v.to_numpy() for k, v in bounds.items()}}))
        found[str(mode)] = {
            "test": summarize_over_seeds(per_run), "per_run": per_run, "runs": [key for key, _ in runs],
            "ensemble": ensemble_metrics(frames),
            "ensemble_with_forest": ensemble_metrics(frames, forest=forest) if forest else None,
        }
    return found


def hide_structures(samples: Sequence[Any], fraction: float, *, seed: int = 0) -> list[Any]:
    """Copies of the samples where the structures of a random ``fraction`` of the rows that have one are removed.

    Used for Figure 2 on the pooled train/validation/test rows, so every split loses structures alike.

    Args:
        samples: rows (dataclasses with ``structure`` and ``structure_id``).
        fraction: share of structured rows to strip, 0 to 1.
        seed: which rows.

    Returns:
        New sample objects (inputs are not changed), in the input order.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    with_structure = [i for i, s in enumerate(samples) if s.structure is not None]
    n_hide = int(round(fraction * len(with_structure)))
    rng = np.random.default_rng(seed)
    hidden = set(rng.permutation(with_structure)[:n_hide].tolist()) if with_structure else set()
    return [
        dataclasses.replace(s, structure=None, structure_id=None) if i in hidden else dataclasses.replace(s)
        for i, s in enumerate(samples)
    ]


def structure_fraction_experiment(
    train: Sequence[Any],
    val: Sequence[Any],
    test: Sequence[Any],
    config: TrainConfig,
    *,
    fractions: Sequence[float] = HIDDEN_FRACTIONS,
    modes: Sequence[str] = ("bimodal-aug", "bimodal"),
    seeds: Sequence[int] = (0,),
    cache: Any = None,
) -> pd.DataFrame:
    """Figure 2: hide the structures of a random share of the rows that have one, train, report test MAE.

    For each fraction and seed, the same rows (chosen from train, validation and test pooled) lose their structure
    for every mode; then one model per mode is fitted with that seed.

    Args:
        train: training rows.
        val: validation rows.
        test: test rows.
        config: training settings (``mode`` and ``seed`` are overridden).
        fractions: shares of structured rows to hide (the paper: 0, 0.2, …, 1).
        modes: training modes to compare.
        seeds: seeds (hiding and fitting).
        cache: optional graph cache passed to :func:`cosnet_core.train.fit`.

    Returns:
        A table with columns ``hidden_fraction, mode, seed, test_mae, test_mae_with_structure, n_test_with_structure``.
    """
    from cosnet_core.predict import predict_samples
    from cosnet_core.train import fit

    rows = []
    pooled = list(train) + list(val) + list(test)
    n_train, n_val = len(train), len(val)
    for fraction in fractions:
        for seed in seeds:
            stripped = hide_structures(pooled, fraction, seed=seed)
            part_train = stripped[:n_train]
            part_val = stripped[n_train : n_train + n_val]
            part_test = stripped[n_train + n_val :]
            for mode in modes:
                run_config = dataclasses.replace(config, mode=mode, seed=seed)
                result = fit(part_train, part_val, run_config, cache=cache)
                predicted = predict_samples(result, part_test, cache=cache)
                target = np.array([s.target for s in part_test], dtype=float)
                metrics = subset_metrics(target, predicted.prediction, predicted.has_structure,
                                         [getattr(s, "censored", None) for s in part_test])
                rows.append(
                    {
                        "hidden_fraction": fraction,
                        "mode": mode,
                        "seed": seed,
                        "test_mae": metrics["all"]["mae"],
                        "test_mae_with_structure": metrics["with_structure"]["mae"],
                        "n_test_with_structure": metrics["with_structure"]["n"],
                    }
                )
    return pd.DataFrame(rows)
