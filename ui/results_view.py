"""Altair charts of the Results page. Each has a title and axis titles with units; the page adds a caption."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from cosnet_core.report import MODE_LABELS

#: Autosize of the charts that fill their column: the width follows the column, the height is the plot area's
#: (under Streamlit's default "fit" the title, axes and a legend below were taken out of the height, and the plot
#: area of the training curves collapsed to a line at 1400×1000).
FIT_WIDTH = alt.AutoSizeParams(type="fit-x", contains="padding")

STRUCTURE_COLOURS = alt.Scale(domain=["with structure", "without structure"], range=["#d62728", "#1f77b4"])


def _structure_label(frame: pd.DataFrame) -> pd.Series:
    return frame["has_structure"].map({True: "with structure", False: "without structure"})


#: How the parity plot draws a measured value and a bound (a censored row: its target is an upper or lower bound).
VALUE_KINDS = alt.Scale(domain=["measurement", "bound (censored, not scored)"], range=["circle", "triangle-down"])


def value_kind(samples: pd.DataFrame) -> pd.Series:
    """Per row, "measurement" or "bound (censored, not scored)" (from a ``censored`` column, when there is one)."""
    from cosnet_core.evaluate import measured_mask

    if "censored" not in samples.columns:
        return pd.Series("measurement", index=samples.index)
    measured = measured_mask(samples["censored"], len(samples))
    return pd.Series(np.where(measured, "measurement", "bound (censored, not scored)"), index=samples.index)


def parity_chart(samples: pd.DataFrame, target_label: str) -> alt.LayerChart:
    """Predicted against measured values, coloured by whether the row has a structure, with the y = x line.

    Rows whose target is a bound (censored) are drawn as downward triangles at the bound: they are not measurements
    and Table 1 never scores them; a prediction below an upper bound is consistent with it."""
    data = samples.assign(structure=_structure_label(samples), value=value_kind(samples))
    low, high = parity_domain(data)
    x_axis = {"title": f"Measured {target_label}", "scale": alt.Scale(domain=[low, high], nice=False)}
    y_axis = {"title": f"Predicted {target_label}", "scale": alt.Scale(domain=[low, high], nice=False)}
    points = (
        alt.Chart(data)
        .mark_point(size=50, opacity=0.7, filled=True)
        .encode(
            x=alt.X("target:Q", **x_axis),
            y=alt.Y("prediction:Q", **y_axis),
            color=alt.Color("structure:N", title="Row", scale=STRUCTURE_COLOURS),
            shape=alt.Shape("value:N", title="Value", scale=VALUE_KINDS),
            tooltip=[
                alt.Tooltip("formula:N", title="formula"),
                alt.Tooltip("id:N", title="id"),
                alt.Tooltip("target:Q", format=".3f", title="measured"),
                alt.Tooltip("prediction:Q", format=".3f", title="predicted"),
                alt.Tooltip("prediction_std:Q", format=".3f", title="ensemble std"),
                alt.Tooltip("error:Q", format=".3f", title="error"),
                alt.Tooltip("w_c:Q", format=".2f", title="w_C"),
            ],
        )
    )
    diagonal = alt.Chart(pd.DataFrame({"v": [low, high]})).mark_line(color="grey", strokeDash=[4, 4]).encode(
        x=alt.X("v:Q", **x_axis), y=alt.Y("v:Q", **y_axis)
    )
    return (diagonal + points).properties(
        title="Parity plot: predicted vs measured (dashed: y = x)", width=PARITY_SIZE, height=PARITY_SIZE,
        # "pad": width and height are the plot area's, axes and legend come on top (the default "fit" squeezed the
        # plot area to make room for the legend, so the square was not square)
        autosize=alt.AutoSizeParams(type="pad"),
    ).configure_legend(orient="bottom", direction="vertical", labelLimit=260)


#: Width and height of the parity plot in pixels: a square with one domain on both axes, so y = x is the diagonal.
PARITY_SIZE = 360  # with the axes and the legend below, it fits a half-width column at 1400 px


def parity_domain(data: pd.DataFrame) -> tuple[float, float]:
    """One axis range for measured and predicted values: both extremes, padded by 5 % (at least 0.5 when all values
    are equal), so no point sits on the frame."""
    low = float(min(data["target"].min(), data["prediction"].min()))
    high = float(max(data["target"].max(), data["prediction"].max()))
    pad = 0.05 * (high - low) or 0.5
    return low - pad, high + pad


#: Height of the plot area of every per-epoch chart; axes, title and the legend below it come on top.
CURVE_HEIGHT = 300


def epoch_curves(data: pd.DataFrame, field: str, title: str, y_title: str, *, points: bool = False) -> alt.Chart:
    """One line per run (column ``run``) of ``field`` against ``epoch``.

    Readable in a half-width column at 1400×1000: the plot area keeps :data:`CURVE_HEIGHT` (autosize "fit-x": the
    width follows the column, the height is the plot's; under Streamlit's default "fit" the title, axes and legend
    were taken out of the height and the plot collapsed to a line), the legend sits below the plot (long run names
    at the side squeezed it) and the y title is short (a long one was cut).
    """
    return (
        alt.Chart(data, title=title)
        .mark_line(point=points)
        .encode(
            x=alt.X("epoch:Q", title="Epoch"),
            y=alt.Y(f"{field}:Q", title=y_title, scale=alt.Scale(zero=False)),
            color=alt.Color("run:N", title="Run", legend=alt.Legend(orient="bottom", columns=2, labelLimit=320)),
            tooltip=["run", "epoch", alt.Tooltip("val_mae:Q", format=".4g"), alt.Tooltip("train_loss:Q", format=".4g")],
        )
        .properties(height=CURVE_HEIGHT, autosize=FIT_WIDTH)
    )


def best_epoch_at_end(epochs: pd.DataFrame, finished_run_ids: set[int] | None = None) -> pd.DataFrame:
    """Runs whose lowest validation MAE came at their last epoch: they were still improving, so training longer
    may help (the kept checkpoint is the best-validation epoch, here the last one).

    Args:
        epochs: per-epoch rows with ``run_id``, ``epoch`` and ``val_mae`` (and ``run``, a label, when present).
        finished_run_ids: only these runs (a running run's best epoch is often its latest; None: every run).

    Returns:
        One row per such run: ``run_id``, ``run`` (label), ``best_epoch`` (= its last epoch); runs of one epoch
        are left out.
    """
    columns = ["run_id", "run", "best_epoch"]
    if epochs.empty:
        return pd.DataFrame(columns=columns)
    data = epochs if finished_run_ids is None else epochs[epochs["run_id"].isin(finished_run_ids)]
    data = data.dropna(subset=["val_mae"])
    rows = []
    for run_id, curve in data.groupby("run_id", sort=True):
        last = int(curve["epoch"].max())
        best = int(curve.loc[curve["val_mae"].idxmin(), "epoch"])
        if last > 1 and best == last:
            rows.append({"run_id": run_id, "run": curve["run"].iloc[0] if "run" in curve else f"run {run_id}",
                         "best_epoch": best})
    return pd.DataFrame(rows, columns=columns)


def train_longer_hint(still_improving: pd.DataFrame) -> str | None:
    """The "train longer" sentence for :func:`best_epoch_at_end`'s rows, or None when there are none."""
    if still_improving.empty:
        return None
    names = ", ".join(f"{r.run} (epoch {r.best_epoch})" for r in still_improving.itertuples())
    return (
        f"Best epoch = last epoch for {len(still_improving)} run(s): {names}. The validation error was still "
        "falling when training stopped; train longer (more epochs) and compare."
    )


def residual_histogram(samples: pd.DataFrame, target_label: str) -> alt.Chart:
    """Histogram of prediction errors (predicted - measured), stacked by structure availability."""
    data = samples.assign(structure=_structure_label(samples))
    return (
        alt.Chart(data)
        .mark_bar(opacity=0.8)
        .encode(
            x=alt.X("error:Q", bin=alt.Bin(maxbins=40), title=f"Error, predicted − measured ({target_label})"),
            y=alt.Y("count():Q", title="Rows"),
            color=alt.Color("structure:N", title="Row", scale=STRUCTURE_COLOURS),
        )
        .properties(title="Residuals", height=260, padding={"left": 12, "top": 6, "right": 6, "bottom": 6},
                    autosize=FIT_WIDTH)
    )


def composition_weight_chart(weights: pd.DataFrame) -> alt.Chart:
    """Figure 3: distribution of w_C over rows that have a structure, one colour per bimodal mode."""
    data = weights.assign(model=weights["mode"].map(MODE_LABELS).fillna(weights["mode"]))
    return (
        alt.Chart(data)
        .mark_bar(opacity=0.6)
        .encode(
            x=alt.X("w_c:Q", bin=alt.Bin(extent=[0, 1], step=0.05), title="Composition weight w_C (dimensionless)"),
            y=alt.Y("count():Q", stack=None, title="Rows with a structure"),
            color=alt.Color("model:N", title="Model"),
        )
        .properties(title="Figure 3: composition weight w_C of rows with a structure", height=260,
                    autosize=FIT_WIDTH)
    )


def run_labels(epochs: pd.DataFrame) -> pd.Series:
    """``mode · seed N`` per row of a study's epochs."""
    return epochs["mode"] + " · seed " + epochs["seed"].astype(str)


def training_curves(epochs: pd.DataFrame, target_label: str) -> alt.Chart:
    """Validation MAE per epoch, one line per run."""
    return epoch_curves(
        epochs.assign(run=run_labels(epochs)), "val_mae", "Training curves: validation MAE per epoch",
        f"Validation MAE ({target_label})",
    )


def figure2_chart(frame: pd.DataFrame, target_label: str) -> alt.LayerChart:
    """Figure 2: test MAE against the share of rows that kept their structure, with ± std error bars."""
    data = frame.assign(
        model=frame["mode"].map(MODE_LABELS).fillna(frame["mode"]),
        percent=frame["structure_fraction"] * 100,
        low=frame["mae_mean"] - frame["mae_std"],
        high=frame["mae_mean"] + frame["mae_std"],
    )
    base = alt.Chart(data).encode(
        x=alt.X("percent:Q", title="Rows with a structure (% of those that have one)"),
        color=alt.Color("model:N", title="Model"),
    )
    line = base.mark_line(point=True).encode(y=alt.Y("mae_mean:Q", title=f"Test MAE ({target_label})"))
    bars = base.mark_errorbar().encode(y="low:Q", y2="high:Q")
    return (line + bars).properties(title="Figure 2: test MAE vs share of structures", height=300,
                                    autosize=FIT_WIDTH)


def representations_frame(runs: pd.DataFrame, entries: pd.DataFrame) -> pd.DataFrame:
    """The learned representations of every row for every finished run: C (and S where the row had a structure).

    Reads each run's representations file (``npz`` written by the training job: entry ids, split, C, S, w_C).

    Args:
        runs: the study's run table (columns ``run, mode, seed, representations``).
        entries: the study's entries (``entry_id, formula, id``).

    Returns:
        One row per (run, entry): ``run, mode, seed, entry_id, id, formula, split, has_structure, w_c``,
        then ``C_0 … C_{h-1}`` and ``S_0 … S_{h-1}``.
    """
    import numpy as np

    parts = []
    for run in runs.dropna(subset=["representations"]).itertuples():
        with np.load(run.representations) as stored:
            c, s = stored["composition_repr"], stored["structure_repr"]
            part = pd.DataFrame({
                "run": run.run, "mode": run.mode, "seed": run.seed, "entry_id": stored["entry_id"],
                "split": stored["split"], "has_structure": stored["has_structure"],
                "w_c": stored["composition_weight"],
            })
        width = c.shape[1]
        part = pd.concat(
            [part, pd.DataFrame(c, columns=[f"C_{i}" for i in range(width)]),
             pd.DataFrame(s, columns=[f"S_{i}" for i in range(s.shape[1])])], axis=1,
        )
        parts.append(part)
    if not parts:
        return pd.DataFrame()
    frame = pd.concat(parts, ignore_index=True)
    described = entries[["entry_id", "id", "formula"]]
    frame = frame.merge(described, on="entry_id", how="left")
    first = ["run", "mode", "seed", "entry_id", "id", "formula", "split", "has_structure", "w_c"]
    return frame[first + [c for c in frame.columns if c not in first]]
