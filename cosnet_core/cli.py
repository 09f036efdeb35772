"""Command line: ``python -m cosnet_core {train,predict,reproduce,pretrain,tune}`` on plain files, no app, no
database.

``train`` and ``reproduce`` start from ``--preset`` (``defaults`` or ``authors``, :data:`cosnet_core.hparams.PRESETS`);
options given explicitly override it. ``train`` writes into OUTDIR:

* ``metrics.json``: ``{"mode", "preset", "preset_departures" (what the authors preset cannot reproduce), "seeds", "split", "seed_protocol", "seed_protocol_text", "split_seed", "epochs",
  "test": {"all"|"without_structure"|"with_structure": {"mae_mean", "mae_std", "rmse_mean", "rmse_std", "r2_mean",
  "r2_std", "n"}}, "baselines": {"mean"|"rf_magpie": {the same subsets and keys}}, "alignment_r2",
  "alignment_r2_std", "train_config", "target_lower_bound", "per_seed": [...]}`` (``target_lower_bound``: 0 when
  ``--nonnegative`` bounded the predictions, decided on the training rows; null otherwise); the baselines (:mod:`cosnet_core.baselines`) are
  fitted on each seed's training rows and scored on its test rows; ``seed_protocol`` says what the seeds share
  (``--seed-protocol``, :func:`cosnet_core.splits.split_for_seed`): ``fixed-test`` (default: one test split drawn
  with ``--split-seed``, validation rows drawn per seed) or ``resplit`` (the whole split drawn per seed);
  ``ensemble`` and ``ensemble_with_forest`` (:func:`cosnet_core.evaluate.ensemble_metrics`; ``{subset: {"mae",
  "rmse", "r2", "n", "members"}}``, null under ``resplit``): the seed ensemble (the served model) on the test rows,
  and its fixed 50/50 blend with the random forest;
* ``predictions.csv``: ``id, composition, split, seed, target, prediction, has_structure, w_c`` for every row and seed;
* ``baseline_predictions.csv``: ``id, seed, baseline, target, prediction, has_structure`` for every test row;
* ``models/seed_<s>.pt``: one artifact per seed (``predict --model OUTDIR`` averages them);
* ``history.csv`` (``seed, epoch, train_loss, val_mae, seconds, lr``) and ``input_errors.csv`` when rows were refused.

``predict`` writes ``id, composition, prediction, prediction_std, has_structure, w_c, warning`` and the
applicability columns of :func:`cosnet_core.applicability.assess` (``applicability``, ``structure_mismatch``,
``unseen_elements``, ``nearest_{1,2,3}_{composition,target,distance}``; a row whose structure file is missing is
predicted from its composition and ``warning`` says so; when ``train`` was given ``--target-unit`` or
``--target-transform log10``, ``unit`` and, for log10, ``10^prediction (<unit>)`` follow ``prediction_std``): with a
folder of seeds (what
``train`` writes), the prediction is the seeds' ensemble mean and ``prediction_std`` their spread (the uncertainty).
With ``--with-forest`` the prediction is that mean averaged 50/50 with the random forest on Magpie (re-fitted on each
seed's training rows from ``predictions.csv``, never loaded from a file), and ``prediction_ensemble`` and
``prediction_forest`` hold the two parts.
``tune`` searches Table 3 with Ray Tune on the first seed's split (:func:`cosnet_core.tune.search`, the app's search)
and writes ``OUT/tune.json`` (the chosen values, every trial ranked by its best validation epoch, and the ``train``
command that uses them).
``reproduce`` runs the three modes × seeds and writes Table 1 (``table1.csv``: per mode and subset the mean ± std
over seeds, ``kind`` "model", the seed ensemble, "ensemble", and its 50/50 blend with the forest,
"ensemble_with_forest", with ``members``; then the baselines, "baseline"), Table 2 (``table2.csv``) and Figure 2 (``figure2.csv``, ``figure2_summary.csv`` and, when matplotlib is installed, ``figure2.png``).

Input problems are reported per row (a table on stderr and a CSV file); fatal problems end with one line
``error: <reason>`` and exit status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import shlex
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cosnet_core.exports import safe_to_csv
from cosnet_core.hparams import MODES

PREDICTION_COLUMNS = ("id", "composition", "split", "seed", "target", "prediction", "has_structure", "w_c")
PREDICT_COLUMNS = ("id", "composition", "prediction", "prediction_std", "has_structure", "w_c")
BASELINE_PREDICTION_COLUMNS = ("id", "seed", "baseline", "target", "prediction", "has_structure")


ENSEMBLE_METHOD = (
    "ensemble: the mean prediction per test row over the seeds (the served model); ensemble_with_forest: "
    "0.5 x ensemble + 0.5 x the mean over seeds of rf_magpie's predictions of the same rows (a fixed weight, not "
    "tuned on anything); both null when the seeds scored different test rows (--seed-protocol resplit)"
)


class CliError(Exception):
    """A fatal problem, reported as one line."""


def _say(message: str, *, quiet: bool = False) -> None:
    if not quiet:
        print(message, file=sys.stderr, flush=True)


def _add_table_arguments(parser: argparse.ArgumentParser, *, with_target: bool) -> None:
    parser.add_argument("--data", required=True, type=Path, help="CSV (or .tsv) table, UTF-8")
    parser.add_argument("--formula-col", required=True, help="column holding the formula")
    if with_target:
        parser.add_argument("--target-col", required=True, help="column holding the measured property")
        parser.add_argument(
            "--target-transform", choices=("none", "log10"), default="none",
            help="log10 for quantities spanning decades (e.g. conductivity in S/cm)",
        )
        parser.add_argument(
            "--target-unit", default="",
            help="unit of the target column as given, e.g. S/cm or eV (a label, values are not converted; recorded "
                 "in metrics.json, and predict writes it in a unit column)",
        )
        parser.add_argument("--split-col", help="column with train/val/test labels (val carved from train if absent)")
        parser.add_argument(
            "--censored", choices=("exclude", "drop", "bound"), default="exclude",
            help="targets that are bounds (<1E-10, or flagged in --censored-col): exclude = refuse those rows "
                 "(listed in input_errors.csv); drop / bound = read them as bounds, never scored, and drop them "
                 "from training or train with the censored loss (TrainConfig.censored)",
        )
        parser.add_argument("--censored-col", help="yes/no column: yes = the target is an upper bound")
    parser.add_argument("--structure-col", help="column with a structure file name inside --structures (empty = none)")
    parser.add_argument("--structures", type=Path, help="folder of CIF files")
    parser.add_argument("--id-col", help="column with unique row ids (default: row<line>)")


def _add_training_arguments(parser: argparse.ArgumentParser) -> None:
    from cosnet_core.hparams import DEFAULTS, PRESETS

    parser.add_argument(
        "--preset", choices=tuple(PRESETS), default="defaults",
        help="defaults: the project's settings; authors: the authors' published code (MSE loss, weight decay 0.1, "
        "decay 0.96, 128-wide BatchNorm ROOST MLPs, their head and 8 cell features, no pretrained encoder, no "
        "forest blend; what it cannot reproduce is listed in metrics.json and docs/departures.md). Options given "
        "explicitly override the preset",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="default: the preset's (0 1 2 3 4)")
    parser.add_argument("--epochs", type=int, default=None, help=f"default: the preset's ({DEFAULTS['epochs']})")
    parser.add_argument(
        "--split", choices=("random", "grouped"), default=None,
        help="random 60/20/20 as in the paper, or grouped by composition; default: grouped when compositions "
        "repeat in the table, else random (the choice and its reason are printed)",
    )
    parser.add_argument(
        "--seed-protocol", choices=("fixed-test", "resplit"), default="fixed-test",
        help="fixed-test: the test rows are drawn once (--split-seed) and each seed draws its own validation rows "
        "from the rest, so the seeds can be averaged on the same test rows; resplit: each seed draws its whole split",
    )
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the test rows under --seed-protocol fixed-test")
    parser.add_argument("--val-fraction", type=float, default=0.2, help="share of rows for validation")
    parser.add_argument("--test-fraction", type=float, default=0.2, help="share of rows for test")
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the preset's (128)")
    parser.add_argument("--lr", type=float, default=None, help="default: the preset's (1e-2)")
    parser.add_argument("--weight-decay", type=float, default=None,
                        help=f"default: the preset's ({DEFAULTS['weight_decay']:g}; authors 0.1)")
    parser.add_argument("--lr-decay", type=float, default=None,
                        help=f"default: the preset's ({DEFAULTS['lr_decay']:g}; authors 0.96)")
    parser.add_argument("--loss", choices=("l1", "mse"), default=None, help="default: the preset's (l1; authors mse)")
    parser.add_argument("--fusion", choices=("sum", "concat"), default=None, help="default: the preset's (sum)")
    parser.add_argument("--weight", choices=("scalar", "vector"), default=None, help="default: the preset's (scalar)")
    parser.add_argument("--hidden-dim", type=int, default=None, help="default: the preset's (64)")
    parser.add_argument("--head", choices=("mlp", "authors"), default=None,
                        help="output head MLP^t: mlp, or the authors' update block + residual network")
    parser.add_argument(
        "--cell-features", choices=("all", "no-volume", "authors"), default=None,
        help="cell descriptors g_S sees: all 18, all but volume per atom and density (no-volume), or the authors' 8",
    )
    parser.add_argument("--patience", type=int, default=None, help="early stopping patience in epochs")
    parser.add_argument("--grad-clip", type=float, default=None, help="maximum gradient norm")
    parser.add_argument("--embedding", default=None, help="matscholar200 (default), cgcnn92, megnet16 or a JSON path")
    parser.add_argument(
        "--descriptors", choices=("none", "magpie"), default=None,
        help="feed standardised Magpie statistics of the composition next to g_C's output (none = the paper)",
    )
    parser.add_argument(
        "--structure-features", choices=("none", "chgnet"), default=None,
        help="feed the pretrained CHGNet potential's crystal features next to g_S's output (none = the paper)",
    )
    parser.add_argument(
        "--nonnegative", choices=("auto", "on", "off"), default="auto",
        help="bound predictions at 0 as the authors' final ReLU does (auto: when every training target is >= 0; "
             "recorded per seed in metrics.json as target_lower_bound)",
    )
    parser.add_argument(
        "--init-from", default=None,
        help="start g_C from a pretrained encoder: a shipped checkpoint name or a .pt written by 'pretrain' "
        f"('none' = random initialisation, the paper; default: {DEFAULTS['init_from'] or 'none'} where it fits "
        "the chosen embedding and width)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress messages")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m cosnet_core``.

    Returns:
        The parser with the ``train``, ``predict`` and ``reproduce`` commands.
    """
    parser = argparse.ArgumentParser(
        prog="python -m cosnet_core",
        description="COSNet: composition-structure bimodal learning for experimentally measured properties.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train one model per seed and evaluate on the test split")
    _add_table_arguments(train, with_target=True)
    train.add_argument("--mode", choices=MODES, default="bimodal-aug")
    _add_training_arguments(train)
    train.add_argument("--out", required=True, type=Path, help="output folder")

    from cosnet_core.hparams import DEFAULTS

    predict = commands.add_parser("predict", help="predict a table with a trained model (or a folder of seeds)")
    predict.add_argument("--model", required=True, type=Path, help="OUTDIR of train, a models/ folder or one .pt")
    _add_table_arguments(predict, with_target=False)
    predict.add_argument("--out", required=True, type=Path, help="predictions CSV to write")
    predict.add_argument("--device", default="cpu")
    predict.add_argument(
        "--with-forest", action=argparse.BooleanOptionalAction, default=None,
        help="serve the seed ensemble averaged 50/50 with the random forest on Magpie (metrics.json's "
        "ensemble_with_forest); the forests are re-fitted on each seed's training rows listed in --model's "
        f"predictions.csv (default: {'on' if DEFAULTS['serve_with_forest'] else 'off'} when that file is there)",
    )

    pretrain = commands.add_parser(
        "pretrain", help="pretrain the composition encoder g_C on large computed tables (for --init-from)"
    )
    pretrain.add_argument(
        "--table", action="append", default=None, metavar="NAME=PATH",
        help="a task: a CSV(.gz) with formula,target columns (repeat for several tasks; default: the DFT tables "
        "of ../shared/data/pretraining that the shipped checkpoint used)",
    )
    pretrain.add_argument("--max-rows-per-task", type=int, default=None, help="at most this many compositions per task")
    pretrain.add_argument("--epochs", type=int, default=10)
    pretrain.add_argument("--batch-size", type=int, default=256)
    pretrain.add_argument("--lr", type=float, default=2e-3)
    pretrain.add_argument("--val-fraction", type=float, default=0.05)
    pretrain.add_argument("--hidden-dim", type=int, default=64, help="must equal the width of the models it initialises")
    pretrain.add_argument("--embedding", default="matscholar200")
    pretrain.add_argument("--seed", type=int, default=0)
    pretrain.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda")
    pretrain.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's)")
    pretrain.add_argument("--out", required=True, type=Path, help="checkpoint file to write (.pt)")
    pretrain.add_argument(
        "--ship", metavar="NAME", default=None,
        help="register the checkpoint under NAME in cosnet_core/pretrained/manifest.json (--out must lie there)",
    )
    pretrain.add_argument("--quiet", action="store_true", help="no progress messages")

    tune = commands.add_parser(
        "tune", help="search Table 3 with Ray Tune on one split (the app's search) and write the chosen settings"
    )
    _add_table_arguments(tune, with_target=True)
    tune.add_argument("--mode", choices=MODES, default="bimodal-aug")
    _add_training_arguments(tune)
    tune.add_argument("--trials", type=int, default=16, help="random Table 3 points (ignored with --full-grid)")
    tune.add_argument("--trial-epochs", type=int, default=None, help="epochs of each trial (default: min(--epochs, 50))")
    tune.add_argument("--grace-period", type=int, default=2, help="epochs before ASHA may stop a trial")
    tune.add_argument("--full-grid", action="store_true", help="all 720 points of Table 3 (long)")
    tune.add_argument("--out", required=True, type=Path, help="folder for tune.json and Ray Tune's records")

    reproduce = commands.add_parser("reproduce", help="the three modes × seeds: Table 1, Table 2 and Figure 2 rows")
    _add_table_arguments(reproduce, with_target=True)
    reproduce.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    _add_training_arguments(reproduce)
    reproduce.add_argument(
        "--structure-fractions", type=float, nargs="*", default=None,
        help="Figure 2: shares of the structured rows that keep their structure, the x-axis of the app's Figure 2 "
        "(default 0 0.2 0.4 0.6 0.8 1; none given = skip Figure 2)",
    )
    reproduce.add_argument(
        "--fractions", type=float, nargs="*", default=None,
        help="the same as shares whose structure is hidden (1 - kept), for older scripts",
    )
    reproduce.add_argument("--out", required=True, type=Path, help="report folder")
    return parser


#: Command-line options a preset fills in when they are not given (option dest → preset key).
PRESET_OPTIONS = {
    "seeds": "seeds", "epochs": "epochs", "batch_size": "batch_size", "lr": "lr", "weight_decay": "weight_decay",
    "lr_decay": "lr_decay", "loss": "loss", "fusion": "fusion", "weight": "weight", "hidden_dim": "hidden_dim",
    "head": "head", "cell_features": "cell_features", "embedding": "embedding", "descriptors": "descriptors",
    "structure_features": "structure_features",
}


def _apply_preset(args: argparse.Namespace) -> None:
    """Fill every training option the user did not give from ``--preset`` (:data:`cosnet_core.hparams.PRESETS`);
    ``--init-from`` defaults to "default" (the shipped encoder where it fits) under the defaults preset and to
    "none" under a preset without a pretrained encoder."""
    from cosnet_core.hparams import PRESETS

    preset = PRESETS[args.preset]
    for option, key in PRESET_OPTIONS.items():
        if getattr(args, option, None) is None:
            value = preset[key]
            setattr(args, option, list(value) if isinstance(value, tuple) else value)
    if args.init_from is None:
        args.init_from = "default" if preset["init_from"] else "none"


def _train_config(args: argparse.Namespace, mode: str) -> Any:
    from cosnet_core.hparams import preset_train_settings
    from cosnet_core.train import TrainConfig

    return TrainConfig(**{
        **preset_train_settings(args.preset),
        "mode": mode, "lr": args.lr, "weight_decay": args.weight_decay, "lr_decay": args.lr_decay,
        "epochs": args.epochs, "batch_size": args.batch_size, "loss": args.loss, "grad_clip": args.grad_clip,
        "early_stopping_patience": args.patience, "device": args.device, "embedding": args.embedding,
        "hidden_dim": args.hidden_dim, "fusion": args.fusion, "weight": args.weight, "head": args.head,
        "cell_features": args.cell_features, "descriptors": args.descriptors, "init_from": _init_from(args),
        "structure_features": args.structure_features, "nonnegative": args.nonnegative,
        **({"censored": args.censored} if getattr(args, "censored", "exclude") != "exclude" else {}),
    })


def _init_from(args: argparse.Namespace) -> str | None:
    """The encoder a run starts from: the named one, none, or the default where it fits this architecture."""
    from cosnet_core.hparams import DEFAULTS, preset_train_settings
    from cosnet_core.pretrained import is_compatible

    if args.init_from in (None, "", "none"):
        return None
    if args.init_from != "default":
        return args.init_from
    default = DEFAULTS["init_from"]
    mlp_hidden = preset_train_settings(args.preset)["roost_mlp_hidden"]
    if default and is_compatible(default, embedding=args.embedding, hidden_dim=args.hidden_dim,
                                 roost_mlp_hidden=mlp_hidden):
        return default
    return None


def _blank_unusable_predictions(table: pd.DataFrame) -> None:
    """Never a silent NaN or inf: rows whose prediction is not finite or beyond ±MAX_ABS_TARGET are left empty
    and named on stderr."""
    from cosnet_core.tabular import MAX_ABS_TARGET

    values = table["prediction"].astype(float)
    unusable = ~np.isfinite(values) | (values.abs() > MAX_ABS_TARGET)
    if unusable.any():
        table.loc[unusable, ["prediction", "prediction_std"]] = np.nan
        ids = ", ".join(map(str, table.loc[unusable, "id"].head(10)))
        _say(f"{int(unusable.sum())} row(s) got no usable prediction (NaN, infinite or beyond ±{MAX_ABS_TARGET:g}); "
             f"their prediction is left empty: {ids}")


def _read_samples(args: argparse.Namespace, *, with_target: bool, error_file: Path,
                  row_warnings: dict[str, str] | None = None) -> list:
    """The table's usable rows; refused rows go to ``error_file``. With ``row_warnings`` (prediction), a row whose
    structure file is not in the folder is kept without a structure and ``row_warnings[id]`` says so."""
    from cosnet_core.embeddings import load_element_embedding
    from cosnet_core.tabular import read_table

    embedding = load_element_embedding(getattr(args, "embedding", "matscholar200"))
    table = read_table(
        args.data, formula_col=args.formula_col,
        target_col=args.target_col if with_target else None,
        structure_col=args.structure_col, structures_dir=args.structures,
        split_col=getattr(args, "split_col", None), id_col=args.id_col,
        target_transform=getattr(args, "target_transform", "none"), embedding=embedding,
        missing_structure="refuse" if row_warnings is None else "composition",
        bounds=with_target and getattr(args, "censored", "exclude") != "exclude",
        censored_col=getattr(args, "censored_col", None) if with_target else None,
    )
    for warning in table.warnings.itertuples(index=False):
        assert row_warnings is not None
        row_warnings[str(warning.id)] = f"{warning.column} {warning.value!r}: {warning.reason}"
        _say(f"line {warning.line} (id {warning.id}): {row_warnings[str(warning.id)]}")
    if not table.errors.empty:
        error_file.parent.mkdir(parents=True, exist_ok=True)
        safe_to_csv(table.errors, error_file, index=False)
        _say(table.error_message() + f"\n(all refused rows are listed in {error_file})")
    if not table.samples:
        raise CliError(f"no usable row in {args.data} (see {error_file})")
    return table.samples


def _choose_split(samples: list, args: argparse.Namespace) -> None:
    """Fill in ``args.split`` when not given (grouped when compositions repeat) and print the choice and why."""
    from cosnet_core.formula import composition_key
    from cosnet_core.splits import recommended_split

    if args.split_col or args.split is not None:
        return
    method, reason = recommended_split(len(samples), len({composition_key(s.composition) for s in samples}))
    args.split = method
    print(f"split: {method}: {reason} (choose with --split)", file=sys.stderr, flush=True)


def _split(samples: list, args: argparse.Namespace, seed: int) -> Any:
    """The split of one seed (:func:`cosnet_core.splits.split_for_seed`, the definition the app's jobs use too)."""
    from cosnet_core.splits import split_for_seed

    test, val = args.test_fraction, args.val_fraction
    fractions = (round(1.0 - val - test, 12), val, test)
    method = "column" if args.split_col else args.split
    return split_for_seed(
        samples, method, split_seed=args.split_seed, seed=seed, fractions=fractions, protocol=args.seed_protocol
    )


def run_training(
    samples: list, args: argparse.Namespace, mode: str, out: Path, cache: Any = None, baseline_cache: Any = None
) -> dict[str, Any]:
    """Fit one model per seed, and the baselines on each seed's split; save artifacts, predictions, history and
    metrics into ``out``.

    Args:
        samples: all rows (with targets).
        args: parsed ``train``/``reproduce`` arguments.
        mode: training mode.
        out: output folder.
        cache: optional crystal-graph cache shared by the seeds.
        baseline_cache: optional :class:`cosnet_core.baselines.BaselineCache` shared by the modes (a split is
            fitted once).

    Returns:
        The metrics dictionary written to ``out/metrics.json``.
    """
    from cosnet_core.artifact import save_artifact
    from cosnet_core.baselines import BaselineCache, fit_baselines, summarize_baselines
    from cosnet_core.evaluate import (
        alignment_r2,
        mean_std,
        subset_metrics,
        table1_of_runs,
        volume_per_atom,
    )
    from cosnet_core.splits import SEED_PROTOCOL_TEXT
    from cosnet_core.train import fit

    out.mkdir(parents=True, exist_ok=True)
    baseline_cache = baseline_cache if baseline_cache is not None else BaselineCache()
    prediction_frames, history_rows, per_seed_metrics, per_seed_alignment = [], [], [], []
    lower_bounds: list[float | None] = []  # TrainConfig.nonnegative as decided on each seed's training rows
    censored_rows: list[dict[str, int]] = []  # per seed, the bounds trained on, dropped, left out of validation
    baseline_runs, baseline_frames, test_frames = [], [], []
    config = _train_config(args, mode)
    for seed in args.seeds:
        split = _split(samples, args, seed)
        n_train, n_val, n_test = split.sizes()
        _say(f"[{mode}] seed {seed}: {n_train} train / {n_val} val / {n_test} test rows", quiet=args.quiet)
        config = dataclasses.replace(_train_config(args, mode), seed=seed)
        baselines = fit_baselines(split.train, split.test, cache=baseline_cache)
        baseline_runs.append(baselines)
        baseline_frames.append(baselines.to_frame().assign(seed=seed))

        def report(epoch_report: Any, seed: int = seed) -> None:
            history_rows.append({"seed": seed, **dataclasses.asdict(epoch_report)})
            if not args.quiet and (epoch_report.epoch % 10 == 0 or epoch_report.epoch == 1):
                _say(
                    f"  epoch {epoch_report.epoch}: train loss {epoch_report.train_loss:.4f}, "
                    f"val MAE {epoch_report.val_mae:.4f} ({epoch_report.seconds:.1f} s)"
                )

        result = fit(split.train, split.val, config, callback=report, cache=cache)
        save_artifact(out / "models" / f"seed_{seed}.pt", result)
        lower_bounds.append(result.normalizer.lower_bound)
        censored_rows.append(result.censored_rows)
        for part_name, part in (("train", split.train), ("val", split.val), ("test", split.test)):
            if not part:
                continue
            predicted = result.predict(part, cache=cache)
            prediction_frames.append(
                pd.DataFrame(
                    {
                        "id": predicted.ids,
                        "composition": [s.formula.strip() or s.composition.formula for s in part],
                        "split": part_name,
                        "seed": seed,
                        "target": [s.target for s in part],
                        "prediction": predicted.prediction,
                        "has_structure": predicted.has_structure,
                        "w_c": predicted.composition_weight,
                    }
                )
            )
            if part_name == "test":
                target = np.array([s.target for s in part], dtype=float)
                bounds = [s.censored for s in part]  # never scored as measurements
                metrics = subset_metrics(target, predicted.prediction, predicted.has_structure, bounds)
                test_frames.append(pd.DataFrame({"id": predicted.ids, "target": target,
                                                 "prediction": predicted.prediction,
                                                 "has_structure": predicted.has_structure, "censored": bounds}))
                per_seed_metrics.append(metrics)
                rows = np.flatnonzero(predicted.has_structure)
                volumes = [volume_per_atom(part[i].structure) for i in rows]
                per_seed_alignment.append(
                    alignment_r2(predicted.composition_repr[rows], volumes, seed=seed) if len(rows) else math.nan
                )
                forest = baselines.metrics()["rf_magpie"]["all"]
                _say(
                    f"  best epoch {result.best_epoch} (val MAE {result.best_val_mae:.4f}); test MAE "
                    f"{metrics['all']['mae']:.4f} on {metrics['all']['n']} rows (random forest on Magpie: "
                    f"{forest['mae']:.4f})",
                    quiet=args.quiet,
                )
    predictions = pd.concat(prediction_frames, ignore_index=True)[list(PREDICTION_COLUMNS)]
    safe_to_csv(predictions, out / "predictions.csv", index=False)
    safe_to_csv(pd.DataFrame(history_rows), out / "history.csv", index=False)
    safe_to_csv(pd.concat(baseline_frames, ignore_index=True)[list(BASELINE_PREDICTION_COLUMNS)],
                out / "baseline_predictions.csv", index=False)
    alignment_mean, alignment_std = mean_std(per_seed_alignment)
    # Table 1 through the one computation the app's studies and the Results page use
    table1 = table1_of_runs(
        pd.concat([frame.assign(mode=mode, run=seed) for frame, seed in zip(test_frames, args.seeds, strict=False)],
                  ignore_index=True),
        forest=[run.prediction_frame("rf_magpie") for run in baseline_runs],
    ).get(mode, {}) if test_frames else {}
    metrics = {
        "mode": mode,
        "preset": args.preset,
        "preset_departures": _preset_departures(args.preset),
        "seeds": list(args.seeds),
        "split": "column" if args.split_col else args.split,
        "seed_protocol": args.seed_protocol,
        "seed_protocol_text": SEED_PROTOCOL_TEXT[args.seed_protocol],
        "split_seed": args.split_seed if args.seed_protocol == "fixed-test" else None,
        "epochs": args.epochs,
        "test": table1.get("test", {}),
        "baselines": summarize_baselines(baseline_runs),
        "ensemble": table1.get("ensemble"),
        "ensemble_with_forest": table1.get("ensemble_with_forest"),
        "ensemble_method": ENSEMBLE_METHOD,
        "baselines_method": (
            "fitted on each seed's training rows, scored on its test rows: the training-set mean, and a "
            "RandomForestRegressor (500 trees, random_state 0) on Magpie composition statistics"
        ),
        "train_config": {k: v for k, v in config.to_dict().items() if k != "seed"},
        "target": {"name": args.target_col, "unit": getattr(args, "target_unit", ""),
                   "transform": getattr(args, "target_transform", "none")},
        "target_lower_bound": lower_bounds[0] if len(set(lower_bounds)) == 1 else lower_bounds,
        "censored": getattr(args, "censored", "exclude"),
        "censored_rows_per_seed": censored_rows,
        "alignment_r2": None if math.isnan(alignment_mean) else alignment_mean,
        "alignment_r2_std": None if math.isnan(alignment_std) else alignment_std,
        "alignment_r2_method": "5-fold KFold cross-validated R² of standardised RidgeCV from C to volume per atom",
        "per_seed": [
            {"seed": seed, "test": metric, "alignment_r2": None if math.isnan(a) else a,
             "baselines": run.metrics()}
            for seed, metric, a, run in zip(args.seeds, per_seed_metrics, per_seed_alignment, baseline_runs,
                                            strict=False)
        ],
    }
    (out / "metrics.json").write_text(json.dumps(_json_safe(metrics), indent=2))
    return metrics


def _preset_departures(preset: str) -> list[str]:
    """What a preset leaves different from the authors' code (empty for the project's defaults, whose departures
    are all in docs/departures.md)."""
    from cosnet_core.hparams import AUTHORS_PRESET_DEPARTURES

    return list(AUTHORS_PRESET_DEPARTURES) if preset == "authors" else []


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float | np.floating):
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def command_train(args: argparse.Namespace) -> int:
    """``train``: see the module docstring."""
    from cosnet_core.structure import GraphCache

    _apply_preset(args)
    samples = _read_samples(args, with_target=True, error_file=args.out / "input_errors.csv")
    _choose_split(samples, args)
    with tempfile.TemporaryDirectory(prefix="cosnet-graphs-") as folder:
        metrics = run_training(samples, args, args.mode, args.out, cache=GraphCache(folder))
    summary = metrics["test"].get("all", {})
    forest = metrics["baselines"].get("rf_magpie", {}).get("all", {})
    if metrics["ensemble"]:
        _say(
            f"ensemble of {len(args.seeds)} seed(s) (served): test MAE {metrics['ensemble']['all']['mae']:.4f}; "
            f"ensemble + forest (50/50): {metrics['ensemble_with_forest']['all']['mae']:.4f}",
            quiet=args.quiet,
        )
    _say(
        f"test MAE {summary.get('mae_mean', float('nan')):.4f} ± {summary.get('mae_std', float('nan')):.4f} "
        f"(R² {summary.get('r2_mean', float('nan')):.3f}) over {len(args.seeds)} seed(s); random forest on Magpie "
        f"{forest.get('mae_mean', float('nan')):.4f} (R² {forest.get('r2_mean', float('nan')):.3f}); "
        f"results in {args.out}",
        quiet=args.quiet,
    )
    return 0


def command_predict(args: argparse.Namespace) -> int:
    """``predict``: see the module docstring."""
    from cosnet_core.artifact import load_ensemble

    ensemble = load_ensemble(args.model)
    args.embedding = ensemble.members[0].config.embedding
    error_file = args.out.with_name(args.out.stem + ".errors.csv")
    row_warnings: dict[str, str] = {}
    samples = _read_samples(args, with_target=False, error_file=error_file, row_warnings=row_warnings)
    for member in ensemble.members:
        member.model.to(args.device)
    table = ensemble.predict(samples)
    _blank_unusable_predictions(table)
    table.insert(1, "composition", [s.formula.strip() or s.composition.formula for s in samples])
    table["warning"] = [row_warnings.get(s.id, "") for s in samples]
    columns = list(PREDICT_COLUMNS) + ["warning"]
    if args.with_forest is None:  # the preset's choice, when the training rows are there to re-fit the forest from
        from cosnet_core.hparams import PRESETS

        preset = PRESETS.get(_trained_preset(args.model), PRESETS["defaults"])
        args.with_forest = bool(preset["serve_with_forest"]) and _has_training_rows(args.model)
    if args.with_forest:
        from cosnet_core.baselines import add_forest_blend

        table = add_forest_blend(table, _training_sets(args.model), [s.composition for s in samples])
        columns += ["prediction_ensemble", "prediction_forest"]
    from cosnet_core.applicability import NO_TRAINING_ROWS_NOTE, assess, domain_of

    domain = domain_of(ensemble.training_rows())
    uses_structures = ensemble.members[0].mode != "composition"
    checks = assess([s.composition for s in samples], [s.structure if uses_structures else None for s in samples],
                    domain)
    table = pd.concat([table.reset_index(drop=True), checks], axis=1)
    columns += list(checks.columns)
    added = _add_unit_columns(table, args.model)
    at = columns.index("prediction_std") + 1
    columns[at:at] = added
    if domain is None:
        _say(f"note: {NO_TRAINING_ROWS_NOTE}")
    flagged = int((checks["applicability"] != "").sum())
    if flagged:
        _say(f"{flagged} row(s) have an applicability warning (structure composition differs from the formula, or "
             "elements absent from the training rows); see the applicability column")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    safe_to_csv(table[columns], args.out, index=False)
    spread = " (prediction_std is their spread)" if len(ensemble.members) > 1 else " (no spread from one model)"
    blend = (" averaged 50/50 with the random forest on Magpie (prediction_ensemble and prediction_forest are the two "
             "parts)" if args.with_forest else "")
    _say(f"{len(table)} prediction(s) from the ensemble of {len(ensemble.members)} model(s){spread}{blend} written to "
         f"{args.out}")
    return 0


def _predictions_file(model: Path) -> Path | None:
    folder = model if model.is_dir() else model.parent
    return next((p / "predictions.csv" for p in (folder, folder.parent) if (p / "predictions.csv").is_file()), None)


def _trained_metrics(model: Path) -> dict[str, Any]:
    """The ``metrics.json`` that ``train`` wrote beside the models of ``model`` ({} when absent or unreadable)."""
    folder = model if model.is_dir() else model.parent
    for candidate in (folder / "metrics.json", folder.parent / "metrics.json"):
        if candidate.is_file():
            try:
                found = json.loads(candidate.read_text())
            except (OSError, ValueError):
                return {}
            return found if isinstance(found, dict) else {}
    return {}


def _trained_preset(model: Path) -> str:
    """The ``--preset`` the models of ``model`` were trained with (its ``metrics.json``; "defaults" when unknown)."""
    return str(_trained_metrics(model).get("preset") or "defaults")


def _add_unit_columns(table: pd.DataFrame, model: Path) -> list[str]:
    """Insert the ``unit`` of the predictions (``log10(σ / S cm⁻¹)``-style, from the ``target`` of the model's
    ``metrics.json``) after ``prediction_std``, and for a log10 target ``10^prediction (<unit>)``; returns the columns
    added (none when the folder does not say)."""
    from cosnet_core.units import target_label

    target = _trained_metrics(model).get("target")
    if not isinstance(target, dict) or not (target.get("unit") or target.get("transform") == "log10"):
        return []
    table.insert(table.columns.get_loc("prediction_std") + 1, "unit",
                 target_label(target.get("name"), target.get("unit"), target.get("transform", "none")))
    if target.get("transform") != "log10":
        return ["unit"]
    linear = f"10^prediction ({target.get('unit') or 'linear'})"
    values = table["prediction"].astype(float)
    table.insert(table.columns.get_loc("unit") + 1, linear, np.where(values.abs() < 300, 10.0 ** values.clip(-300, 300),
                                                                       np.nan))
    return ["unit", linear]


def _has_training_rows(model: Path) -> bool:
    """Whether the folder written by ``train`` (with its predictions.csv) is there to re-fit the forest from."""
    return _predictions_file(model) is not None


def _training_sets(model: Path) -> list[tuple[list[str], list[float]]]:
    """Per seed, the formulas and targets of its training rows, from the ``predictions.csv`` that ``train`` wrote
    beside the models (the rows the seed's forest baseline was fitted on, in the same order)."""
    folder = model if model.is_dir() else model.parent
    path = _predictions_file(model)
    if path is None:
        raise CliError(f"--with-forest needs the folder written by 'train' (its predictions.csv lists the training "
                       f"rows); none found at {folder}")
    rows = pd.read_csv(path, dtype={"id": str, "composition": str}, keep_default_na=False)
    missing = {"seed", "split", "composition", "target"} - set(rows.columns)
    if missing:
        raise CliError(f"{path} lacks the columns {sorted(missing)}")
    train = rows[rows["split"] == "train"]
    sets = [(group["composition"].tolist(), group["target"].astype(float).tolist())
            for _, group in train.groupby("seed", sort=True)]
    if not sets:
        raise CliError(f"{path} lists no training row")
    return sets


def command_reproduce(args: argparse.Namespace) -> int:
    """``reproduce``: Table 1 and Table 2 rows per mode, and Figure 2."""
    from cosnet_core.baselines import BaselineCache
    from cosnet_core.evaluate import is_significant_difference, structure_fraction_experiment
    from cosnet_core.structure import GraphCache

    out: Path = args.out
    _apply_preset(args)
    samples = _read_samples(args, with_target=True, error_file=out / "input_errors.csv")
    _choose_split(samples, args)
    table1, table2 = [], []
    baseline_cache = BaselineCache()
    with tempfile.TemporaryDirectory(prefix="cosnet-graphs-") as folder:
        cache = GraphCache(folder)
        results = {}
        for mode in args.modes:
            results[mode] = run_training(samples, args, mode, out / mode, cache=cache, baseline_cache=baseline_cache)
            for subset, entry in results[mode]["test"].items():
                table1.append({"mode": mode, "kind": "model", "subset": subset, **entry})
            table2.append(
                {"mode": mode, "alignment_r2_mean": results[mode]["alignment_r2"],
                 "alignment_r2_std": results[mode]["alignment_r2_std"]}
            )
        baselines = next(iter(results.values()))["baselines"] if results else {}
        frame1 = pd.DataFrame(table1)
        if "composition" in results:
            reference = {row["subset"]: row for row in table1 if row["mode"] == "composition"}
            frame1["significant_vs_composition"] = [
                is_significant_difference(row["mae_mean"], row["mae_std"], reference[row["subset"]]["mae_mean"],
                                          reference[row["subset"]]["mae_std"])
                if row["mode"] != "composition" else False
                for row in table1
            ]
        extra_rows = pd.DataFrame(
            [{"mode": mode, "kind": kind, "subset": subset, "mae_mean": entry["mae"], "rmse_mean": entry["rmse"],
              "r2_mean": entry["r2"], "n": entry["n"], "members": entry["members"]}
             for mode, found in results.items() for kind in ("ensemble", "ensemble_with_forest")
             for subset, entry in (found[kind] or {}).items()]
            + [{"mode": name, "kind": "baseline", "subset": subset, **entry} for name, subsets in baselines.items()
               for subset, entry in subsets.items()]
        )
        if "significant_vs_composition" in frame1.columns and not extra_rows.empty:
            extra_rows["significant_vs_composition"] = False
        safe_to_csv(pd.concat([frame1, extra_rows], ignore_index=True), out / "table1.csv", index=False)
        safe_to_csv(pd.DataFrame(table2), out / "table2.csv", index=False)
        if args.structure_fractions is not None:
            hidden = [round(1.0 - kept, 12) for kept in args.structure_fractions]
        else:
            hidden = args.fractions if args.fractions is not None else [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
        if hidden:
            figure_modes = [m for m in args.modes if m != "composition"] or list(args.modes)
            split = _split(samples, args, args.seeds[0])
            figure = structure_fraction_experiment(
                split.train, split.val, split.test, _train_config(args, figure_modes[0]),
                fractions=hidden, modes=figure_modes, seeds=args.seeds, cache=cache,
            )
            # the x-axis is the share of structures kept, as the app's Figure 2 (hidden_fraction = 1 - it)
            figure.insert(0, "structure_fraction", (1.0 - figure["hidden_fraction"]).round(12))
            safe_to_csv(figure, out / "figure2.csv", index=False)
            summary = figure.groupby(["structure_fraction", "mode"])["test_mae"].agg(["mean", "std"]).reset_index()
            safe_to_csv(summary, out / "figure2_summary.csv", index=False)
            _plot_figure2(summary, out / "figure2.png")
    _say(f"Table 1, Table 2 and Figure 2 written to {out}", quiet=args.quiet)
    return 0


def _plot_figure2(summary: pd.DataFrame, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    figure, axis = plt.subplots(figsize=(5, 3.5))
    for mode, rows in summary.groupby("mode"):
        axis.errorbar(rows["structure_fraction"], rows["mean"], yerr=rows["std"].fillna(0), marker="o", label=mode)
    axis.set_xlabel("share of structures kept")
    axis.set_ylabel("test MAE")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def command_pretrain(args: argparse.Namespace) -> int:
    """``pretrain``: multi-task pretraining of g_C (:mod:`cosnet_core.pretrain`); prints each task's validation MAE."""
    import torch

    from cosnet_core.pretrain import (
        DEFAULT_TABLES,
        PretrainConfig,
        PretrainError,
        TaskTable,
        pretrain,
        register_shipped,
    )

    if args.threads:
        torch.set_num_threads(args.threads)
    tables = []
    for text in args.table or [f"{name}={path}" for name, path in DEFAULT_TABLES.items()]:
        name, separator, path = text.partition("=")
        if not separator or not name or not path:
            raise CliError(f"--table {text!r} must be NAME=PATH")
        tables.append(TaskTable(name, Path(path)))
    config = PretrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, val_fraction=args.val_fraction,
        max_rows_per_task=args.max_rows_per_task, seed=args.seed, embedding=args.embedding,
        hidden_dim=args.hidden_dim, device=args.device,
    )
    try:
        result = pretrain(tables, args.out, config, log=lambda message: _say(message, quiet=args.quiet))
    except PretrainError as error:
        raise CliError(str(error)) from error
    for task in result.tasks:
        _say(f"{task['name']}: validation MAE {task['val_mae']:.4g} on {task['n_val']} compositions")
    _say(f"encoder of epoch {result.best_epoch} written to {result.path}")
    if args.ship:
        command = "python -m cosnet_core " + " ".join(getattr(args, "argv", ["pretrain"]))
        try:
            register_shipped(result, args.ship, tables, command)
        except PretrainError as error:
            raise CliError(str(error)) from error
        _say(f"registered as {args.ship!r} in the manifest of shipped encoders")
    return 0


def command_tune(args: argparse.Namespace) -> int:
    """``tune``: :func:`cosnet_core.tune.search` on the split of the first seed; writes ``OUT/tune.json``."""
    from cosnet_core.tune import connect_local, search

    _apply_preset(args)
    samples = _read_samples(args, with_target=True, error_file=args.out / "input_errors.csv")
    _choose_split(samples, args)
    seed = args.seeds[0]
    split = _split(samples, args, seed)
    base = dataclasses.replace(_train_config(args, args.mode), seed=seed).to_dict()
    epochs = args.trial_epochs or min(args.epochs, 50)
    if args.trials < 1 or epochs < 1:
        raise CliError("--trials and --trial-epochs must be at least 1")
    connect_local()
    trials = "all 720 points of Table 3" if args.full_grid else f"{args.trials} random Table 3 points"
    _say(f"[{args.mode}] searching {trials}, {epochs} epochs each, on {len(split.train)} training and "
         f"{len(split.val)} validation rows (seed {seed}); trials are ranked by their best validation epoch",
         quiet=args.quiet)
    args.out.mkdir(parents=True, exist_ok=True)
    found = search(split.train, split.val, base, num_samples=args.trials, epochs=epochs,
                   grace_period=args.grace_period, full_grid=args.full_grid, storage_path=args.out / "ray",
                   name=f"tune-{args.mode}")
    chosen = found["best_config"]
    kept, skip = [], False
    for arg in args.argv[1:]:  # the same table and training options, without the search's own
        if skip or arg == "--full-grid":
            skip = False
            continue
        if arg in ("--trials", "--trial-epochs", "--grace-period", "--out", "--lr", "--weight-decay", "--lr-decay",
                   "--fusion", "--weight"):
            skip = True
            continue
        kept.append(shlex.quote(arg))
    command = " ".join([
        "python -m cosnet_core train", *kept, "--lr", f"{chosen['lr']:g}", "--weight-decay",
        f"{chosen['weight_decay']:g}", "--lr-decay", f"{chosen['lr_decay']:g}", "--fusion", chosen["fusion"],
        "--weight", chosen["weight"], "--out", "OUTDIR",
    ])
    report = {**found, "mode": args.mode, "preset": args.preset, "seed": seed,
              "split": "column" if args.split_col else args.split, "seed_protocol": args.seed_protocol,
              "train_config": {k: v for k, v in base.items() if k != "seed"},
              "train_command": command}
    (args.out / "tune.json").write_text(json.dumps(_json_safe(report), indent=2))
    _say(f"best: {chosen} (best validation MAE {found['best_val_mae']:.4f} at epoch {found['best_epoch']}, "
         f"{found['trials']} trials); written to {args.out / 'tune.json'}")
    return 0


COMMANDS = {
    "train": command_train, "tune": command_tune, "predict": command_predict, "reproduce": command_reproduce, "pretrain": command_pretrain,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m cosnet_core``.

    Args:
        argv: arguments (default ``sys.argv[1:]``).

    Returns:
        The exit status: 0 on success, 2 on a fatal error (one line ``error: ...`` on stderr).
    """
    from cosnet_core.artifact import ArtifactError
    from cosnet_core.formula import FormulaError
    from cosnet_core.splits import SplitError
    from cosnet_core.structure_io import StructureError
    from cosnet_core.tabular import TableError

    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        return COMMANDS[args.command](args)
    except (CliError, TableError, SplitError, ArtifactError, FormulaError, StructureError, ValueError, OSError) as error:
        if args.debug:
            raise
        print(f"error: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # never a traceback for the user unless asked
        if args.debug:
            raise
        print(f"error: unexpected {type(error).__name__}: {error} (rerun with --debug for details)", file=sys.stderr)
        return 2
