"""Reference models every study is compared with: the training-set mean and a random forest on Magpie features.

A materials scientist's first question about a model is whether it beats a random forest on Magpie composition
statistics. Each study therefore also fits, on exactly the training rows of its COSNet runs, and scores on exactly
their test rows:

* ``mean``: the mean target of the training rows, predicted for every row;
* ``rf_magpie``: scikit-learn's ``RandomForestRegressor`` (:data:`RF_TREES` trees, fixed ``random_state``,
  ``n_jobs=1``) on the Magpie statistics of the composition (:func:`cosnet_core.descriptors.magpie_features`).

Neither uses structures, so both score the rows with and without a structure alike; their metrics come from the same
functions as the models' (:func:`cosnet_core.evaluate.subset_metrics`, :func:`cosnet_core.evaluate.summarize_over_seeds`).
Torch-free: numpy, pandas, scikit-learn and the Magpie featurizer only.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from cosnet_core.evaluate import FOREST_BLEND_WEIGHT, subset_metrics, summarize_over_seeds

BASELINES = ("mean", "rf_magpie")
BASELINE_LABELS = {"mean": "training-set mean", "rf_magpie": "random forest on Magpie"}
RF_TREES = 500
RF_RANDOM_STATE = 0
#: Forests re-fitted for predictions (:func:`forest_predictions`) kept per process, least recently used dropped.
FOREST_CACHE_SIZE = 16
_FORESTS: OrderedDict[str, Any] = OrderedDict()
_FORESTS_LOCK = threading.Lock()


@dataclass
class BaselineCache:
    """Finished baseline fits per split, shared by the modes of a command-line run (a split is fitted once; the
    Magpie vectors are cached per composition by :mod:`cosnet_core.descriptors`).

    Attributes:
        runs: :class:`BaselineRun` per (training ids, test ids).
    """

    runs: dict[tuple[tuple[str, ...], tuple[str, ...]], BaselineRun] = field(default_factory=dict)


@dataclass
class BaselineRun:
    """The baselines of one split.

    Attributes:
        train_ids: ids of the rows they were fitted on, in input order.
        test_ids: ids of the rows they were scored on, in input order.
        target: targets of the test rows.
        has_structure: whether each test row has a structure (for the subsets of Table 1).
        predictions: per baseline name, the predictions of the test rows.
    """

    train_ids: list[str]
    test_ids: list[str]
    target: np.ndarray
    has_structure: np.ndarray
    predictions: dict[str, np.ndarray]

    def metrics(self) -> dict[str, dict[str, dict[str, float]]]:
        """Table 1's subsets per baseline.

        Returns:
            ``{baseline: subset_metrics(...)}``.
        """
        return {
            name: subset_metrics(self.target, prediction, self.has_structure)
            for name, prediction in self.predictions.items()
        }

    def prediction_frame(self, name: str = "rf_magpie") -> pd.DataFrame:
        """One baseline's test predictions, in the shape :func:`cosnet_core.evaluate.ensemble_metrics` takes.

        Args:
            name: the baseline.

        Returns:
            Columns ``id, prediction``.
        """
        return pd.DataFrame({"id": self.test_ids, "prediction": self.predictions[name]})

    def to_frame(self) -> pd.DataFrame:
        """One row per (baseline, test row).

        Returns:
            Columns ``baseline, id, target, prediction, has_structure``.
        """
        return pd.concat(
            [
                pd.DataFrame({"baseline": name, "id": self.test_ids, "target": self.target,
                              "prediction": prediction, "has_structure": self.has_structure})
                for name, prediction in self.predictions.items()
            ],
            ignore_index=True,
        )


def fit_baselines(
    train: Sequence[Any],
    test: Sequence[Any],
    *,
    cache: BaselineCache | None = None,
    n_estimators: int = RF_TREES,
    random_state: int = RF_RANDOM_STATE,
) -> BaselineRun:
    """Fit the baselines on ``train`` and predict ``test``.

    Args:
        train: the training rows of the COSNet runs (objects with ``id``, ``composition``, ``target``); the
            validation rows are not used, as COSNet uses them only to choose its epoch.
        test: the test rows (``structure`` tells the subsets apart).
        cache: optional :class:`BaselineCache`; a split already fitted is returned from it.
        n_estimators: trees of the forest.
        random_state: the forest's seed.

    Returns:
        The :class:`BaselineRun`.

    Raises:
        ValueError: no training row.
    """
    from sklearn.ensemble import RandomForestRegressor

    from cosnet_core.descriptors import magpie_features

    # rows whose target is a bound (Sample.censored) are neither fitted on nor scored, as for COSNet's Table 1
    train = [s for s in train if not getattr(s, "censored", None)]
    test = [s for s in test if not getattr(s, "censored", None)]
    if not train:
        raise ValueError("the baselines need at least one training row")
    key = (tuple(str(s.id) for s in train), tuple(str(s.id) for s in test))
    if cache is not None and key in cache.runs:
        return cache.runs[key]
    y_train = np.array([float(s.target) for s in train])
    target = np.array([float(s.target) for s in test])
    predictions = {"mean": np.full(len(test), float(y_train.mean()))}
    forest = RandomForestRegressor(n_estimators=n_estimators, random_state=random_state, n_jobs=1)
    forest.fit(magpie_features([s.composition for s in train]), y_train)
    predictions["rf_magpie"] = (
        forest.predict(magpie_features([s.composition for s in test])) if len(test) else np.zeros(0)
    )
    run = BaselineRun(
        train_ids=list(key[0]), test_ids=list(key[1]), target=target,
        has_structure=np.array([s.structure is not None for s in test], dtype=bool), predictions=predictions,
    )
    if cache is not None:
        cache.runs[key] = run
    return run


def summarize_baselines(runs: Sequence[BaselineRun]) -> dict[str, dict[str, dict[str, float]]]:
    """Mean ± std over seeds (splits) of each baseline, with the keys of the models' ``test`` summary.

    Args:
        runs: one :class:`BaselineRun` per seed.

    Returns:
        ``{"mean"|"rf_magpie": {subset: {"mae_mean", "mae_std", "rmse_mean", "rmse_std", "r2_mean", "r2_std",
        "n"}}}``; empty when ``runs`` is.
    """
    if not runs:
        return {}
    per_run = [run.metrics() for run in runs]
    return {name: summarize_over_seeds([metrics[name] for metrics in per_run]) for name in BASELINES}


def stored_prediction_frames(stored: Any, name: str = "rf_magpie") -> list[pd.DataFrame]:
    """A baseline's test predictions per seed from a study's ``Study.results["baseline_rows"]``.

    Args:
        stored: the stored rows: a list with one ``{"seed", "train_entry_ids", "test_entry_ids", "predictions"}``
            per seed, or (studies launched before the seed protocols) one such dictionary for the study's split.
        name: the baseline.

    Returns:
        One frame ``id, prediction`` per seed (ids as strings); empty when nothing usable is stored.
    """
    items = [stored] if isinstance(stored, dict) else list(stored or [])
    frames = []
    for item in items:
        values = (item.get("predictions") or {}).get(name) if isinstance(item, dict) else None
        ids = item.get("test_entry_ids") if isinstance(item, dict) else None
        if values is not None and ids is not None and len(values) == len(ids):
            frames.append(pd.DataFrame({"id": [str(i) for i in ids], "prediction": [float(v) for v in values]}))
    return frames


def _fitted_forest(formulas: Sequence[str], targets: Sequence[float]) -> Any:
    """The forest of :func:`fit_baselines` fitted on these rows, from the per-process cache when it was fitted
    before (keyed by the formulas, targets and the forest's settings)."""
    from sklearn.ensemble import RandomForestRegressor

    from cosnet_core.descriptors import magpie_features
    from cosnet_core.formula import parse_formula

    digest = hashlib.sha256(repr((RF_TREES, RF_RANDOM_STATE, [str(f) for f in formulas],
                                  [float(t) for t in targets])).encode()).hexdigest()
    with _FORESTS_LOCK:
        if digest in _FORESTS:
            _FORESTS.move_to_end(digest)
            return _FORESTS[digest]
    forest = RandomForestRegressor(n_estimators=RF_TREES, random_state=RF_RANDOM_STATE, n_jobs=1)
    forest.fit(magpie_features([parse_formula(f) for f in formulas]), np.asarray(targets, dtype=float))
    with _FORESTS_LOCK:
        _FORESTS[digest] = forest
        while len(_FORESTS) > FOREST_CACHE_SIZE:
            _FORESTS.popitem(last=False)
    return forest


def forest_predictions(
    training_sets: Sequence[tuple[Sequence[str], Sequence[float]]], compositions: Sequence[Any]
) -> np.ndarray:
    """The ``rf_magpie`` baseline for new rows: the mean over seeds of the forests fitted on each seed's training
    rows, as in ``ensemble_with_forest``.

    Each forest is re-fitted from the training rows stored with the study or the run (formulas and targets, never a
    pickled model read from disk), with a fixed ``random_state``, so the same rows give the same forest; the fitted
    forests are cached per process (:data:`FOREST_CACHE_SIZE`).

    Args:
        training_sets: per seed, the formulas and targets of its training rows.
        compositions: the rows to predict (pymatgen compositions).

    Returns:
        One prediction per row.

    Raises:
        ValueError: no training set, or one without rows.
    """
    from cosnet_core.descriptors import magpie_features

    if not training_sets or any(len(formulas) == 0 for formulas, _ in training_sets):
        raise ValueError("the forest needs the training rows of at least one seed")
    if len(compositions) == 0:
        return np.zeros(0)
    features = magpie_features(list(compositions))
    return np.mean([_fitted_forest(formulas, targets).predict(features) for formulas, targets in training_sets],
                   axis=0)


def blend_with_forest(ensemble_prediction: Sequence[float], forest_prediction: Sequence[float]) -> np.ndarray:
    """The seed ensemble averaged with the forest with the fixed weight of ``ensemble_with_forest``
    (:data:`cosnet_core.evaluate.FOREST_BLEND_WEIGHT` = 1/2, not tuned on anything).

    Args:
        ensemble_prediction: the seed ensemble's predictions.
        forest_prediction: :func:`forest_predictions` of the same rows.

    Returns:
        The blended predictions.
    """
    ensemble = np.asarray(ensemble_prediction, dtype=float)
    return FOREST_BLEND_WEIGHT * ensemble + (1.0 - FOREST_BLEND_WEIGHT) * np.asarray(forest_prediction, dtype=float)


def add_forest_blend(
    table: pd.DataFrame, training_sets: Sequence[tuple[Sequence[str], Sequence[float]]], compositions: Sequence[Any]
) -> pd.DataFrame:
    """Serve the ensemble + forest blend: ``prediction`` becomes :func:`blend_with_forest` of the seed ensemble and
    :func:`forest_predictions`; the two parts are kept as ``prediction_ensemble`` and ``prediction_forest``.

    Args:
        table: predictions of the seed ensemble (a ``prediction`` column, one row per composition).
        training_sets: per seed, the formulas and targets of its training rows.
        compositions: the compositions of the rows of ``table``, in order.

    Returns:
        A copy of ``table`` with the blend.
    """
    forest = forest_predictions(training_sets, compositions)
    blended = table.copy()
    blended["prediction_ensemble"] = blended["prediction"]
    blended["prediction_forest"] = forest
    blended["prediction"] = blend_with_forest(blended["prediction_ensemble"], forest)
    return blended


__all__ = [
    "BASELINES",
    "BASELINE_LABELS",
    "BaselineCache",
    "BaselineRun",
    "add_forest_blend",
    "blend_with_forest",
    "fit_baselines",
    "forest_predictions",
    "stored_prediction_frames",
    "summarize_baselines",
]
