"""How long a study takes: before launch from this installation's measured epochs, and while it runs from the
epochs already timed in that study (issue 16, item 9).

Before launch, the seconds per (epoch x data row) are this installation's median over its finished runs of the same
encoder width, per mode where the mode has finished runs (a bimodal epoch builds crystal graphs and costs more
than a composition-only one), else over all modes, else :data:`DEFAULT_SECONDS_PER_ROW_EPOCH`. Once a study has
timed an epoch, its remaining time is computed from its own epochs only (:func:`remaining_study_seconds`): the
rate measured on other data, another load or another device no longer matters.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

#: Seconds per (epoch x data row) of the default 64-wide model before this installation has measured its own.
#: CPU: 4.7e-3 s measured with one torch thread on the 2-core development machine under load (54 toy binaries,
#: half with a CsCl-type structure, epochs 2-4 of a fit); GPU: an assumption (ten times faster), not measured.
DEFAULT_SECONDS_PER_ROW_EPOCH = {"cpu": 5e-3, "gpu": 5e-4}
#: Fixed cost per run (featurization, model set-up, predictions), seconds.
RUN_OVERHEAD_S = 10.0
#: Finished runs looked at for the measured rate (the most recent first).
RECENT_RUNS = 200


def measured_rates(db_url: str, hidden_dim: int | None = None) -> dict[str, float]:
    """This installation's seconds per (epoch x row): the median over its recent finished runs, per mode and overall.

    Epoch 1 is left out (it pays for warm-up). A run's rate is its mean epoch seconds divided by the kept rows of
    its dataset version.

    Args:
        db_url: database URL.
        hidden_dim: only runs of this encoder width (speed depends on it); None counts all.

    Returns:
        ``{mode: rate, ..., "all": rate}``; empty when no run has finished yet.
    """
    from sqlalchemy import func, select

    from db.engine import session_scope
    from db.models import DatasetVersion, EpochMetric, Run

    with session_scope(db_url) as session:
        rows = session.execute(
            select(func.avg(EpochMetric.seconds), DatasetVersion.n_kept, Run.mode, Run.config)
            .join(Run, EpochMetric.run_id == Run.id)
            .join(DatasetVersion, Run.dataset_version_id == DatasetVersion.id)
            .where(Run.status == "succeeded", EpochMetric.epoch > 1)
            .group_by(Run.id, DatasetVersion.id)  # PostgreSQL: n_kept must come from a grouped key
            .order_by(Run.id.desc())
            .limit(RECENT_RUNS)
        ).all()
    by_mode: dict[str, list[float]] = {}
    for seconds, n_rows, mode, config in rows:
        if seconds and n_rows and (hidden_dim is None or (config or {}).get("hidden_dim") == hidden_dim):
            by_mode.setdefault(mode, []).append(seconds / n_rows)
    rates = {mode: statistics.median(values) for mode, values in by_mode.items()}
    if by_mode:
        rates["all"] = statistics.median([v for values in by_mode.values() for v in values])
    return rates


def estimate_study_seconds(
    n_rows: int,
    runs_per_mode: Mapping[str, int],
    epochs: int,
    *,
    rates: Mapping[str, float],
    parallel: int = 1,
    gpu: bool = False,
    search_trial_epochs: Mapping[str, int] | None = None,
) -> float:
    """Wall-time estimate of a study before launch.

    seconds ≈ Σ_modes (runs_m · (epochs · n_rows · r_m + overhead) + search_m · n_rows · r_m) / parallel, where r_m
    is the measured rate of mode m (:func:`measured_rates`), else the measured rate of all modes, else
    :data:`DEFAULT_SECONDS_PER_ROW_EPOCH`. Early stopping and ASHA make it an upper bound.

    Args:
        n_rows: rows of the dataset version.
        runs_per_mode: runs of each mode.
        epochs: epochs per run (the most; early stopping may end a run sooner).
        rates: measured seconds per (epoch x row), from :func:`measured_rates`.
        parallel: runs executed at the same time.
        gpu: whether runs train on a GPU (used only without a measured rate).
        search_trial_epochs: total epochs of the hyper-parameter search per mode (none without a search).

    Returns:
        Estimated seconds.
    """
    default = DEFAULT_SECONDS_PER_ROW_EPOCH["gpu" if gpu else "cpu"]
    search = search_trial_epochs or {}
    work = 0.0
    for mode in set(runs_per_mode) | set(search):
        rate = rates.get(mode) or rates.get("all") or default
        work += runs_per_mode.get(mode, 0) * (epochs * n_rows * rate + RUN_OVERHEAD_S)
        work += search.get(mode, 0) * n_rows * rate
    return work / max(parallel, 1)


@dataclass(frozen=True)
class Remaining:
    """What is left of a running study, from its own timed epochs.

    Attributes:
        seconds: estimated wall seconds left (an upper bound: early stopping may end runs sooner).
        epochs_left: epochs still to train over the study's unfinished runs.
        epochs_timed: epochs of this study already timed (the basis of the estimate).
        seconds_per_epoch: median epoch seconds per mode measured in this study (``"all"``: over every mode).
    """

    seconds: float
    epochs_left: int
    epochs_timed: int
    seconds_per_epoch: dict[str, float]


def remaining_study_seconds(
    runs: Iterable[Mapping[str, Any]], epochs: Iterable[Mapping[str, Any]], *, parallel: int = 1
) -> Remaining | None:
    """Time left of a running study, computed only from the epochs already timed in it.

    seconds ≈ (Σ_unfinished runs (n_epochs − epochs_done) · t_mode + queued runs · overhead) / min(parallel, active
    runs), where t_mode is the median epoch seconds of that mode in this study (of all its modes for a mode not yet
    timed). Runs that ended (succeeded, failed, cancelled) add nothing.

    Args:
        runs: the study's runs (``jobs.store.runs_of_study``: ``id, mode, state, epochs_done, n_epochs``).
        epochs: its timed epochs (``jobs.store.epoch_metrics``: ``run_id, epoch, seconds``).
        parallel: runs executed at the same time.

    Returns:
        The estimate, or None before the study has timed an epoch.
    """
    runs = list(runs)
    mode_of = {run["id"]: run["mode"] for run in runs}
    timed: dict[str, list[float]] = {}
    for epoch in epochs:
        seconds = epoch.get("seconds")
        if epoch["run_id"] in mode_of and seconds is not None and math.isfinite(seconds) and seconds > 0:
            timed.setdefault(mode_of[epoch["run_id"]], []).append(float(seconds))
    if not timed:
        return None
    per_epoch = {mode: statistics.median(values) for mode, values in timed.items()}
    per_epoch["all"] = statistics.median([v for values in timed.values() for v in values])
    active = [run for run in runs if run["state"] in ("queued", "running")]
    epochs_left = 0
    work = 0.0
    for run in active:
        left = max(int(run["n_epochs"]) - int(run["epochs_done"] or 0), 0)
        epochs_left += left
        work += left * per_epoch.get(run["mode"], per_epoch["all"])
        if run["state"] == "queued":
            work += RUN_OVERHEAD_S
    lanes = max(1, min(parallel, len(active)))
    return Remaining(seconds=work / lanes, epochs_left=epochs_left,
                     epochs_timed=sum(len(values) for values in timed.values()), seconds_per_epoch=per_epoch)


def format_duration(seconds: float) -> str:
    """"about 3 min", "about 2.5 h" ...

    Args:
        seconds: a duration.

    Returns:
        A short human text.
    """
    if not math.isfinite(seconds):
        return "unknown"
    if seconds < 90:
        return f"about {max(seconds, 1):.0f} s"
    if seconds < 90 * 60:
        return f"about {seconds / 60:.0f} min"
    return f"about {seconds / 3600:.1f} h"


__all__ = [
    "DEFAULT_SECONDS_PER_ROW_EPOCH",
    "RUN_OVERHEAD_S",
    "Remaining",
    "estimate_study_seconds",
    "format_duration",
    "measured_rates",
    "remaining_study_seconds",
]
