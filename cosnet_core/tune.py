"""The Table 3 search (paper, Methods: hyper-parameters chosen on the validation error) with Ray Tune.

One function, :func:`search`, serves the app's study jobs (:func:`jobs.training.search_hyperparameters`) and the
command line (``python -m cosnet_core tune``). Each trial fits COSNet with one point of Table 3
(:data:`cosnet_core.hparams.SEARCH_SPACE`) on the training rows and reports, after every epoch, the validation MAE
of that epoch and the lowest one so far (``best_val_mae``). A trial is ranked by ``best_val_mae``: the final fit
keeps the weights of its best validation epoch (:func:`cosnet_core.train.fit`), so the search ranks each
configuration by that same epoch, not by its last one. An ASHA scheduler stops trials whose best validation MAE
is poor early; ``full_grid`` runs every one of the 720 points of Table 3 instead of ``num_samples`` random draws.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cosnet_core.hparams import SEARCH_SPACE, search_space_size
from cosnet_core.settings import SETTINGS

#: The metric trials report and are ranked by: the lowest validation MAE over the epochs run so far.
RANK_METRIC = "best_val_mae"


class EpochReporter:
    """Reports each epoch of a trial to Ray Tune: its validation MAE, the lowest so far (:data:`RANK_METRIC`) and
    the epoch that reached it. Called with a :class:`cosnet_core.train.EpochReport` (anything with ``epoch`` and
    ``val_mae``)."""

    def __init__(self) -> None:
        self.best_val_mae, self.best_epoch = float("inf"), 0

    def __call__(self, epoch_report: Any) -> None:
        from ray import tune

        if epoch_report.val_mae < self.best_val_mae:
            self.best_val_mae, self.best_epoch = float(epoch_report.val_mae), int(epoch_report.epoch)
        tune.report({"val_mae": float(epoch_report.val_mae), RANK_METRIC: self.best_val_mae,
                     "best_epoch": self.best_epoch, "epoch": int(epoch_report.epoch)})


def fit_trial(point: dict[str, Any], train: list[Any], val: list[Any], base: dict[str, Any]) -> None:
    """One trial: fit with ``base`` (a ``TrainConfig.to_dict()``) and the Table 3 point, reporting every epoch.

    Args:
        point: the sampled Table 3 values (checked by :func:`cosnet_core.hparams.config_overrides`).
        train: training rows.
        val: validation rows.
        base: every other setting of the fit (its ``epochs`` is the trial's budget).
    """
    from cosnet_core.hparams import config_overrides
    from cosnet_core.train import TrainConfig, fit

    fit(train, val, TrainConfig.from_dict({**base, **config_overrides(dict(point))}), callback=EpochReporter())


def param_space(full_grid: bool, space: dict[str, tuple[Any, ...]] | None = None) -> dict[str, Any]:
    """Ray Tune's parameter space for Table 3: every point (``grid_search``) or random draws (``choice``).

    Args:
        full_grid: every combination (720 for Table 3) instead of random draws.
        space: the values per name (default :data:`~cosnet_core.hparams.SEARCH_SPACE`).

    Returns:
        ``{name: tune.grid_search(values) | tune.choice(values)}``.
    """
    from ray import tune

    space = space or SEARCH_SPACE
    kind = tune.grid_search if full_grid else tune.choice
    return {name: kind(list(values)) for name, values in space.items()}


def search(
    train: list[Any],
    val: list[Any],
    base: dict[str, Any],
    *,
    num_samples: int,
    epochs: int,
    grace_period: int = 2,
    full_grid: bool = False,
    storage_path: str | Path,
    name: str,
    stop: Any = None,
    cpus_per_trial: float = 1.0,
    resources: dict[str, float] | None = None,
    trial: Callable[..., None] = fit_trial,
    space: dict[str, tuple[Any, ...]] | None = None,
) -> dict[str, Any]:
    """Search Table 3 on one split and return the configuration with the lowest best-epoch validation MAE.

    Args:
        train: training rows.
        val: validation rows.
        base: ``TrainConfig.to_dict()`` of every setting the search does not vary.
        num_samples: random draws (ignored, i.e. 1 pass over the grid, with ``full_grid``).
        epochs: the epochs of each trial (ASHA's ``max_t``).
        grace_period: epochs every trial runs before ASHA may stop it.
        full_grid: run every point of the space (720 for Table 3).
        storage_path: folder for Ray Tune's records (made absolute).
        name: the experiment's name there.
        stop: an optional ``tune.Stopper`` (e.g. the app's cancellation).
        cpus_per_trial: CPUs each trial asks Ray for.
        resources: custom Ray resources each trial asks for too (e.g. ``{"gpu_node": 1}`` to keep trials on the
            cluster's nodes that offer it); None: none.
        trial: the trainable (default :func:`fit_trial`; tests pass a synthetic one with the same reports).
        space: the values per name (default Table 3).

    Returns:
        ``{"best_config": {name: value}, "best_val_mae", "best_epoch", "trials", "epochs_per_trial",
        "trial_results": [{"config", "best_val_mae", "best_epoch", "last_val_mae", "epochs"}], "full_grid",
        "num_samples", "epochs", "rank_metric"}``.
    """
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    space = space or SEARCH_SPACE
    trainable = tune.with_resources(
        tune.with_parameters(trial, train=train, val=val, base={**base, "epochs": int(epochs)}),
        {"cpu": cpus_per_trial, **(resources or {})},
    )
    tuner = tune.Tuner(
        trainable,
        param_space=param_space(full_grid, space),
        tune_config=tune.TuneConfig(
            metric=RANK_METRIC,
            mode="min",
            num_samples=1 if full_grid else int(num_samples),
            scheduler=ASHAScheduler(max_t=int(epochs), grace_period=max(1, min(int(grace_period), int(epochs))),
                                    reduction_factor=2),
        ),
        run_config=tune.RunConfig(name=name, storage_path=str(Path(storage_path).resolve()), stop=stop, verbose=0),
    )
    grid = tuner.fit()
    best = grid.get_best_result(metric=RANK_METRIC, mode="min", scope="last")
    trials = [
        {"config": {key: result.config[key] for key in space}, "best_val_mae": float(result.metrics[RANK_METRIC]),
         "best_epoch": int(result.metrics["best_epoch"]), "last_val_mae": float(result.metrics["val_mae"]),
         "epochs": int(result.metrics.get("epoch", 0))}
        for result in grid if result.metrics and RANK_METRIC in result.metrics
    ]
    return {
        "best_config": {key: best.config[key] for key in space},
        "best_val_mae": float(best.metrics[RANK_METRIC]),
        "best_epoch": int(best.metrics["best_epoch"]),
        "trials": len(grid),
        "epochs_per_trial": [trial_result["epochs"] for trial_result in trials],
        "trial_results": trials,
        "full_grid": bool(full_grid),
        "num_samples": search_space_size() if full_grid and space is SEARCH_SPACE else int(num_samples),
        "epochs": int(epochs),
        "rank_metric": RANK_METRIC,
    }


def connect_local() -> None:
    """Join ``RAY_ADDRESS`` or start a local Ray (no dashboard) when this process is not connected yet; workers get
    this checkout on their ``PYTHONPATH``."""
    import ray

    if ray.is_initialized():
        return
    repo = str(Path(__file__).resolve().parents[1])
    paths = [repo, *(p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != repo)]
    ray.init(address=SETTINGS.ray_address.get() or "local", include_dashboard=False, log_to_driver=False,
             configure_logging=False, runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(paths)}})
