"""Training: launch COSNet studies (modes x seeds) as background jobs and watch them."""

import os
import shutil
import sys
from pathlib import Path

import pandas as pd
import streamlit as st

import jobs
from cosnet_core.hparams import (
    AUTHORS_PRESET_DEPARTURES,
    CENSORED_TRAINING_DEFAULT,
    DEFAULTS,
    MODES,
    PRESETS,
    SEARCH_SPACE,
    Mode,
    search_space_size,
)
from cosnet_core.settings import SETTINGS
from cosnet_core.splits import (
    PlannedRow,
    bare_test_rows,
    plan_problems,
    recommended_split,
    validation_source,
)
from db.access import AccessDenied, may_change
from jobs import store
from jobs.estimate import estimate_study_seconds, format_duration, measured_rates, remaining_study_seconds
from ui.auth import current_actor
from ui.results_view import best_epoch_at_end, epoch_curves, train_longer_hint
from ui.state import active_version_id, database
from ui.text import md_escape

SPLIT_LABELS = {
    "random": "Random 60/20/20 (the paper)",
    "grouped": "Grouped by composition 60/20/20 (recommended when compositions repeat)",
    "column": "The split column of the dataset",
}
STRUCTURE_FEATURE_LABELS = {
    "none": "None: the crystal graph and cell descriptors only (the paper)",
    "chgnet": "CHGNet crystal features beside S (a pretrained universal potential)",
}
DESCRIPTOR_LABELS = {
    "none": "None: the learned element embedding only (the paper)",
    "magpie": "Magpie statistics of the composition beside C",
}
PRESET_LABELS = {
    "defaults": "Project defaults (pretrained g_C, L1 loss, weight decay 1e-4, decay 0.99)",
    "authors": "The authors' code (MSE loss, weight decay 0.1, decay 0.96, their ROOST MLPs, head and cell features)",
}
FIGURE2_KEPT = [0.0, 0.2, 0.4, 0.6, 0.8]
STATUS_ICONS = {
    "queued": "⏳", "running": "🏃", "stopping": "⏹️", "cancelling": "⏹️", "succeeded": "✅", "failed": "❌",
    "cancelled": "⏹️",
}


def _who() -> str:
    """The user recorded as the study's creator."""
    try:
        from ui.auth import current_username

        return current_username()
    except Exception:  # single-user installs without the auth module
        return jobs.current_user()


def _gpu_status() -> tuple[bool, str]:
    """Whether runs can get a GPU, and why not."""
    status = jobs.executor_status()
    if status and status.get("resources"):
        if status["resources"].get("GPU", 0) >= 1:
            return True, ""
        return False, "the Ray cluster the executor uses has no GPU"
    if SETTINGS.ray_address.get():
        return False, "the Ray cluster's resources are known once the executor runs; launch on auto to use its GPUs"
    if "torch" in sys.modules:  # already imported by another page: ask it
        has_gpu = sys.modules["torch"].cuda.is_available()
    else:  # importing torch here would take seconds: look for the NVIDIA driver instead
        has_gpu = Path("/dev/nvidiactl").exists() or shutil.which("nvidia-smi") is not None
    if has_gpu:
        return True, ""
    return False, "this computer has no CUDA GPU (set RAY_ADDRESS to train on a Ray cluster with GPUs)"


def _encoder_fits(name: str, hidden_dim: int, preset: dict | None = None) -> bool:
    """Whether a shipped encoder fits the chosen width and the preset's g_C (the page trains with the preset's
    embedding, depth and ROOST MLP width)."""
    from cosnet_core.pretrained import is_compatible

    preset = preset or DEFAULTS
    return is_compatible(name, embedding=preset["embedding"],
                         hidden_dim=hidden_dim, roost_layers=preset["roost_layers"],
                         roost_heads=preset["roost_heads"], roost_mlp_hidden=preset["roost_mlp_hidden"])


def _shipped_encoders() -> list[str]:
    """Names of the pretrained composition encoders shipped in ``cosnet_core/pretrained/`` (torch-free); none when
    nothing is shipped or the manifest cannot be read."""
    from cosnet_core.pretrained import shipped_checkpoints

    try:
        return shipped_checkpoints()
    except (OSError, ValueError, KeyError, TypeError):
        return []


def _planned_rows(db_url: str, version_id: int) -> list[PlannedRow]:
    """The active version's trainable rows as the split sees them (composition, label, structure or not)."""
    from cosnet_core.formula import FormulaError, parse_formula

    planned = []
    for row in store.version_rows(db_url, version_id):
        try:
            composition = parse_formula(row["composition"] or row["raw_formula"])
        except FormulaError:
            continue  # the run names it; the split does not depend on it
        planned.append(PlannedRow(id=str(row["entry_id"]), composition=composition, split=row["split"],
                                  has_structure=row["structure_id"] is not None))
    return planned


@st.cache_data(max_entries=32, show_spinner="Checking the split of every seed…")
def _split_check(db_url: str, version_id: int, method: str, n_seeds: int, bimodal: bool,
                 counts: tuple) -> tuple[list[str], str, int | None]:
    """The split problems, where validation comes from, and the test rows without a structure of a drawn split;
    cached per database, version (its rows never change), choice and row counts (structures accepted since change
    them; drawing a grouped split of 600 rows for 5 seeds takes about a second)."""
    planned = _planned_rows(db_url, version_id)
    fractions = DEFAULTS["split_fractions"]
    return (plan_problems(planned, method, seeds=range(n_seeds), fractions=fractions, bimodal=bimodal),
            validation_source(method, planned, fractions).capitalize() + ".",
            bare_test_rows(planned, method, fractions=fractions))


def _parallel_runs() -> int:
    status = jobs.executor_status() or {}
    cpus = (status.get("resources") or {}).get("CPU") or os.cpu_count() or 1
    per_run = SETTINGS.jobs_cpus_per_run.get()
    return max(1, int(cpus // per_run))


url = database()

st.title("Training")
st.write(
    "Train COSNet on the active dataset in the paper's three modes (composition only, bimodal with "
    "augmentation, bimodal without) over several seeds. Training runs in the background; you can leave the page."
)
version_id = active_version_id()
if version_id is None:
    st.info("There is nothing to train on yet. Import a dataset on the Datasets page first.")
    st.page_link("pages/datasets.py", label="Go to Datasets", icon=":material/table_chart:")
    st.stop()

counts = store.version_counts(url, version_id)
st.caption(
    f"The active dataset version has {counts['rows']} rows with a target, {counts['with_structure']} of them with "
    "an accepted crystal structure (accept structures on the Structures page)."
)

# ------------------------------------------------------------------------------------------------ launch
st.subheader("Launch a study")
problems = []
if not may_change(url, current_actor(), version_id=version_id):  # the data layer refuses anyway
    problems.append("this dataset belongs to another user: only its owner or an administrator can train on it")
if counts["rows"] < 10:
    problems.append(f"only {counts['rows']} rows have a target; a study needs at least 10")
left, right = st.columns(2)
modes = left.multiselect(
    "Modes", list(MODES), default=list(MODES), format_func=lambda mode: Mode(mode).label.capitalize()
)
n_seeds = left.number_input(
    "Seeds per mode", min_value=1, max_value=20, value=len(DEFAULTS["seeds"]),
    help="Each mode is trained once per seed (0, 1, …); Table 1 reports mean ± std over seeds.",
)
epochs = right.number_input(
    "Epochs", min_value=1, max_value=5000, value=int(DEFAULTS["epochs"]),
    help="The weights of the epoch with the lowest validation MAE are kept.",
)
recommended, split_reason = recommended_split(counts["rows"], counts["compositions"])
split_method = right.selectbox(
    "Split", list(SPLIT_LABELS), index=list(SPLIT_LABELS).index(recommended), format_func=SPLIT_LABELS.__getitem__
)
right.caption(f"Default {recommended}: {split_reason}.")
if split_method == "random" and recommended == "grouped":
    st.warning("A random split puts the same composition in training and test: the test errors will be optimistic.")
if split_method == "column" and counts["with_split"] == 0:
    problems.append("the dataset has no split column (no row is labelled train/val/test)")
if not modes:
    problems.append("choose at least one mode")
elif counts["rows"] >= 10 and not (split_method == "column" and counts["with_split"] == 0):
    # the split of every seed, drawn as the runs will draw it: refused here, not after a run fails
    split_problems, validation_text, n_bare_test = _split_check(
        url, version_id, split_method, int(n_seeds), any(m != "composition" for m in modes), tuple(sorted(counts.items())))
    problems += split_problems
    right.caption(validation_text)
    if n_bare_test and any(m != "composition" for m in modes):
        st.warning(f"None of the {n_bare_test} test rows of this {split_method} split has a structure: the bimodal "
                   "modes will be scored on compositions only (accept more structures to compare the modes).")
if counts["with_structure"] == 0 and any(m != "composition" for m in modes):
    st.warning("No row has an accepted structure yet: the bimodal modes would train on compositions only.")

gpu_ok, gpu_reason = _gpu_status()
devices = ["auto", "cpu", "gpu"] if gpu_ok else ["auto", "cpu"]
device = st.radio(
    "Device", devices, horizontal=True,
    format_func={"auto": "Auto (GPU when available)", "cpu": "CPU", "gpu": "GPU"}.__getitem__,
)
if not gpu_ok:
    st.caption(f"GPU is not offered: {gpu_reason}.")

preset_name = st.radio(
    "Preset", list(PRESET_LABELS), format_func=PRESET_LABELS.__getitem__,
    help="The settings below start from the chosen preset; what you change overrides it. The preset is recorded "
    "with the study. Every departure of the project's defaults from the paper and the authors' code: "
    "docs/departures.md.",
)
PRESET = PRESETS[preset_name]
if preset_name == "authors":
    st.caption(
        "The authors' published code (shenggong1996/COSNet @ 2c472c7) as far as this network can reproduce it. "
        "Still different: " + "; ".join(AUTHORS_PRESET_DEPARTURES) + "."
    )

composition_side = st.columns(2)
descriptor_choices = list(DESCRIPTOR_LABELS)
descriptors = composition_side[0].selectbox(
    "Composition descriptors", descriptor_choices,
    index=descriptor_choices.index(PRESET["descriptors"]), format_func=DESCRIPTOR_LABELS.__getitem__,
    help="Standardised Magpie statistics (22 element properties x 6 statistics) fed to the composition side next to "
    "the learned representation C; w_C keeps its meaning and is exactly 1 for rows without a structure.",
)
encoder_choices = ["none", *_shipped_encoders()]
default_encoder = PRESET["init_from"] or "none"
init_from = composition_side[1].selectbox(
    "Start g_C from a pretrained encoder", encoder_choices,
    index=encoder_choices.index(default_encoder) if default_encoder in encoder_choices else 0,
    format_func=lambda name: "none: train g_C from scratch (the paper)" if name == "none" else name,
    help="A composition encoder pretrained on large computed tables (shipped in cosnet_core/pretrained/), then "
    "fine-tuned on this dataset.",
)

structure_feature_choices = list(STRUCTURE_FEATURE_LABELS)
structure_features = st.selectbox(
    "Structure features", structure_feature_choices,
    index=structure_feature_choices.index(PRESET["structure_features"]),
    format_func=STRUCTURE_FEATURE_LABELS.__getitem__,
    help="The 64 crystal features of CHGNet (pretrained on ~1.5 million Materials Project calculations, shipped "
    "with the chgnet package) fed to the structure side next to g_S's S; used only by bimodal modes. Disordered "
    "sites are given their majority species for CHGNet. Featurising takes about a second per 100-site cell, once.",
)

target_side = st.columns(2)
NONNEGATIVE_LABELS = {
    "auto": "Automatic: bounded at 0 when every training value is ≥ 0 (e.g. band gaps)",
    "on": "Always bounded at 0 (refused if a training value is negative)",
    "off": "Never bounded",
}
nonnegative = target_side[0].selectbox(
    "Non-negative predictions", list(NONNEGATIVE_LABELS), format_func=NONNEGATIVE_LABELS.__getitem__,
    help="The authors' network ends in a ReLU that keeps band gaps ≥ 0. Here the prediction is bounded at 0 in the "
    "target's unit (the loss sees the unbounded output, so no row stops learning); decided from the training rows "
    "and recorded with each run.",
)
CENSORED_TRAINING_LABELS = {
    "bound": "Censored loss: penalised only when the prediction is above the bound",
    "drop": "Drop them from training",
}
censored_training = target_side[1].selectbox(
    "Rows whose value is a bound (e.g. <1E-10, kept as bounds on the Datasets page)",
    list(CENSORED_TRAINING_LABELS), index=list(CENSORED_TRAINING_LABELS).index(CENSORED_TRAINING_DEFAULT),
    format_func=CENSORED_TRAINING_LABELS.__getitem__,
    help="Bounds are never scored as measurements (not in the validation error that picks the epoch, not in "
    "Table 1). The default was chosen on validation error (bench/README.md).",
)

with st.expander("Hyper-parameters (from the preset)"):
    st.caption(
        "The project defaults follow the authors' code (Adamax, 64-wide encoders, batch 128), except weight decay 1e-4 and decay "
        "0.99, the Table 3 values that gave lower errors than the authors' 0.1 and 0.96 in our benchmarks, and the L1 "
        "loss (theirs is MSE); the lists are Table 3's values. Every departure from the paper and from the authors' "
        "code (loss, head, MLP widths, cell descriptors, vacancies, …), with its reason and measured effect, is listed "
        "in `docs/departures.md` in the project's repository."
    )
    h1, h2, h3 = st.columns(3)
    lr = h1.selectbox("Learning rate", SEARCH_SPACE["lr"], index=SEARCH_SPACE["lr"].index(PRESET["lr"]))
    weight_decay = h2.selectbox(
        "Weight decay", SEARCH_SPACE["weight_decay"],
        index=SEARCH_SPACE["weight_decay"].index(PRESET["weight_decay"]),
    )
    lr_decay = h3.selectbox(
        "Learning-rate decay per epoch", SEARCH_SPACE["lr_decay"],
        index=SEARCH_SPACE["lr_decay"].index(PRESET["lr_decay"]),
    )
    fusion = h1.selectbox("Fusion", SEARCH_SPACE["fusion"], index=SEARCH_SPACE["fusion"].index(PRESET["fusion"]))
    weight = h2.selectbox(
        "Modality weight", SEARCH_SPACE["weight"], index=SEARCH_SPACE["weight"].index(PRESET["weight"])
    )
    batch_size = h3.number_input("Batch size", min_value=2, max_value=4096, value=int(PRESET["batch_size"]))
    hidden_dim = h1.number_input("Encoder width", min_value=4, max_value=512, value=int(PRESET["hidden_dim"]))
    search = st.checkbox(
        "First search Table 3's space with Ray Tune (an ASHA scheduler stops bad trials early), then train the best "
        "configuration of each mode over the seeds"
    )
    s1, s2, s3 = st.columns(3)
    full_grid = s3.checkbox(
        f"Full Table 3 grid ({search_space_size()} points per mode)", disabled=not search,
        help="Every combination of Table 3's values instead of random draws; long, meant for small datasets.",
    )
    trials = s1.number_input(
        "Search trials per mode", min_value=1, max_value=search_space_size(), value=16,
        disabled=not search or full_grid,
        help="Random Table 3 points tried per mode (ASHA stops the poor ones early).",
    )
    search_epochs = int(s2.number_input(
        "Epochs per trial", min_value=1, max_value=5000, value=min(int(epochs), 50), disabled=not search,
        help="Each trial is ranked by its best validation epoch within these epochs, as the final runs keep "
        "their best validation epoch.",
    ))
    search_trials = search_space_size() if full_grid else int(trials)
    if search:
        st.caption(
            f"Search budget: {search_trials} trial(s) × {search_epochs} epochs per mode, on the first seed's "
            "split; trials are ranked by their best validation MAE (the same epoch choice as the final runs)."
        )
    figure2 = st.checkbox(
        "Figure 2: also train the bimodal modes with 0, 20, 40, 60 and 80 % of the structures kept",
        disabled=counts["with_structure"] == 0,
    )

if init_from != "none" and not _encoder_fits(init_from, int(hidden_dim), PRESET):
    problems.append(
        f"the pretrained encoder {init_from} was trained for {int(DEFAULTS['hidden_dim'])}-wide encoders with the "
        f"{DEFAULTS['embedding']} embedding; choose 'none' or keep the encoder width at {int(DEFAULTS['hidden_dim'])}"
    )

n_main = len(modes) * int(n_seeds)
n_figure2 = len([m for m in modes if m != "composition"]) * int(n_seeds) * len(FIGURE2_KEPT) if figure2 else 0
estimate = estimate_study_seconds(  # from this installation's measured epochs (jobs.estimate)
    counts["rows"],
    {m: int(n_seeds) * (1 + (len(FIGURE2_KEPT) if figure2 and m != "composition" else 0)) for m in modes},
    int(epochs),
    rates=measured_rates(url, hidden_dim=int(hidden_dim)),
    parallel=_parallel_runs(),
    gpu=device == "gpu" or (device == "auto" and gpu_ok),
    search_trial_epochs={m: search_trials * search_epochs for m in modes} if search else None,
)
st.caption(
    f"{n_main + n_figure2} runs of {int(epochs)} epochs on {counts['rows']} rows"
    + (f", after a search of {search_trials} trials × {search_epochs} epochs per mode" if search else "")
    + ": estimated "
    f"{format_duration(estimate)} ({_parallel_runs()} at a time; from this installation's finished runs of the "
    "same encoder width and mode when there are any, else from a reference speed; corrected from the study's own "
    "epochs once it runs)."
)
for problem in problems:
    st.error(f"Cannot launch: {problem}.")
if st.button("Launch study", type="primary", disabled=bool(problems)):
    payload = {
        "dataset_version_id": version_id,
        "name": f"{', '.join(modes)} × {int(n_seeds)} seeds, {int(epochs)} epochs"
        + (", authors' preset" if preset_name == "authors" else ""),
        "preset": preset_name,
        "modes": modes,
        "seeds": list(range(int(n_seeds))),
        "device": device,
        "split": {"method": split_method, "fractions": list(DEFAULTS["split_fractions"]), "seed": 0},
        "train": {
            "epochs": int(epochs), "lr": lr, "weight_decay": weight_decay, "lr_decay": lr_decay, "fusion": fusion,
            "weight": weight, "batch_size": int(batch_size), "hidden_dim": int(hidden_dim),
            "descriptors": descriptors, "init_from": None if init_from == "none" else init_from,
            "structure_features": structure_features, "nonnegative": nonnegative, "censored": censored_training,
        },
        "structure_fractions": FIGURE2_KEPT if figure2 else [],
        "search": {"enabled": bool(search), "num_samples": search_trials, "epochs": search_epochs,
                   "full_grid": bool(full_grid)},
    }
    try:
        job_id = jobs.submit("study", payload, created_by=_who(), actor=current_actor())
    except (ValueError, AccessDenied) as error:
        st.error(f"The study was not launched: {md_escape(error)}")
    else:
        jobs.ensure_executor()
        st.success(f"Study queued (job {job_id}). It appears below and starts within a few seconds.")

# ------------------------------------------------------------------------------------------------ queue
st.subheader("Studies")
studies = store.studies_of_version(url, version_id)
pending = store.pending_study_jobs(url, version_id)
active = any(s["job_status"] in store.ACTIVE for s in studies) or any(p["status"] in store.ACTIVE for p in pending)
if active and jobs.executor_status() is None:
    jobs.ensure_executor()  # e.g. after a restart of the computer: the executor resumes what was running


def _log_tail(path: str | None, lines: int = 40) -> str:
    if not path or not Path(path).is_file():
        return "(no log yet)"
    return "\n".join(Path(path).read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


def _curves(runs: list[dict], target_unit: str) -> None:
    metrics = pd.DataFrame(store.epoch_metrics(url, [r["id"] for r in runs]))
    if metrics.empty:
        st.caption("Loss curves appear after the first epoch.")
        return
    labels = {
        r["id"]: f"{r['mode']} · seed {r['seed']}"
        + (f" · {r['structure_fraction']:.0%} structures" if r["structure_fraction"] is not None else "")
        for r in runs
    }
    metrics["run"] = metrics["run_id"].map(labels)
    val_chart = epoch_curves(metrics, "val_mae", "Validation MAE per epoch", f"Validation MAE ({target_unit})",
                             points=True)
    loss_chart = epoch_curves(metrics[metrics["train_loss"] < float("inf")], "train_loss", "Training loss per epoch",
                              "Training loss (standardised target)")
    left_chart, right_chart = st.columns(2)
    left_chart.altair_chart(val_chart, width="stretch")
    right_chart.altair_chart(loss_chart, width="stretch")
    hint = train_longer_hint(best_epoch_at_end(metrics, {r["id"] for r in runs if r["state"] == "succeeded"}))
    if hint:
        st.info(hint, icon=":material/trending_down:")
    st.caption(
        "Look for a validation MAE that falls and then flattens; one that rises while the training loss keeps "
        "falling means over-fitting (the best-validation epoch is kept anyway)."
    )


def _run_label(run: dict) -> str:
    return f"Run {run['id']} ({run['mode']}, seed {run['seed']}, {run['state']})"


def _cancel(job_id: int, message: str) -> None:
    """Button callback: ask a job to stop before the page is drawn again, so the counters show it at once."""
    jobs.cancel(job_id, actor=current_actor())  # the data layer refuses other users' studies and runs
    st.toast(message)


def _cancel_chosen_run(study_id: int) -> None:
    chosen = st.session_state.get(f"cancel-run-choice-{study_id}")
    if chosen is not None:
        _cancel(chosen["job_id"], f"Cancelling run {chosen['id']} only; the other runs of study {study_id} go on.")


def _cancel_one_run(runs: list[dict], study_id: int) -> None:
    """Cancel one queued or running run of a study; the others go on (the study summarises those that finish)."""
    active = [r for r in runs if r["state"] in ("queued", "running") and r["job_id"] is not None]
    if not active:
        return
    left, right = st.columns([3, 1], vertical_alignment="bottom")
    left.selectbox(
        "Cancel one run", active, format_func=_run_label, key=f"cancel-run-choice-{study_id}",
        help="Only this run stops (a running one after its current epoch); the study's other runs go on.",
    )
    right.button("Cancel run", key=f"cancel-run-{study_id}", on_click=_cancel_chosen_run, args=(study_id,))


def _remaining(runs: list[dict]) -> None:
    """The time left of a running study, from the epochs it has already timed (jobs.estimate)."""
    left = remaining_study_seconds(runs, store.epoch_metrics(url, [r["id"] for r in runs]),
                                   parallel=_parallel_runs())
    if left is None:
        st.caption("Time left: known after the first epoch of this study.")
        return
    per_epoch = ", ".join(f"{mode} {seconds:.2g} s" for mode, seconds in left.seconds_per_epoch.items()
                          if mode != "all")
    st.caption(f"Time left: {format_duration(left.seconds)} at most ({left.epochs_left} epochs to go; from the "
               f"{left.epochs_timed} epochs this study has timed, median per epoch: {per_epoch}; early stopping "
               "may end runs sooner).")


def _study_card(study: dict, target_unit: str) -> None:
    status = study["job_status"] or study["status"]
    if status in store.ACTIVE and study.get("cancel_requested"):
        status = "cancelling"  # asked to stop; running runs end after their current epoch
    with st.container(border=True):
        st.markdown(f"**{STATUS_ICONS.get(status, '')} Study {study['id']}** · {status}")
        st.caption(md_escape(study["name"]))
        st.progress(float(study["progress"] or 0.0), text=study["message"] or status)
        runs = store.runs_of_study(url, study["id"])
        if status in store.ACTIVE:
            _remaining(runs)
        if status in store.ACTIVE:
            st.button(
                "Cancel study", key=f"cancel-{study['job_id']}", on_click=_cancel,
                args=(study["job_id"], f"Cancelling study {study['id']}: queued runs never start, running runs "
                      "stop after their current epoch."),
            )
        if study["error"]:
            st.error(f"The study failed: {md_escape(study['error'])}")
        if runs:
            counts = store.run_counts(runs)
            st.caption(
                "Runs: " + " · ".join(
                    f"{counts[state]} {state}" for state in store.RUN_STATES
                    if counts[state] or state in ("queued", "running")
                )
            )
            if status in store.ACTIVE:
                _cancel_one_run(runs, study["id"])
            table = pd.DataFrame(
                {
                    "Run": [r["id"] for r in runs],
                    "Mode": [r["mode"] for r in runs],
                    "Seed": [r["seed"] for r in runs],
                    "Structures kept": [r["structure_fraction"] if r["structure_fraction"] is not None else 1.0
                                        for r in runs],
                    "Status": [f"{STATUS_ICONS.get(r['state'], '')} {r['state']}" for r in runs],
                    "Progress": [r["epochs_done"] / max(r["n_epochs"], 1) for r in runs],
                    "Epochs": [f"{r['epochs_done']}/{r['n_epochs']}" for r in runs],
                    "Best val. MAE": [r["best_val_mae"] for r in runs],
                    "Device": [r["device"] or "" for r in runs],
                    "Reason": [r["error"] or (r["message"] if r["state"] in ("queued", "cancelled") else "") or ""
                               for r in runs],
                }
            )
            st.dataframe(
                table,
                hide_index=True,
                column_config={
                    "Progress": st.column_config.ProgressColumn("Progress", min_value=0.0, max_value=1.0),
                    "Structures kept": st.column_config.NumberColumn(format="percent"),
                },
            )
            for run in runs:
                if run["status"] == "failed":
                    st.error(f"Run {run['id']} ({run['mode']}, seed {run['seed']}) failed: {run['error']}")
            _curves(runs, target_unit)
        with st.expander("Logs"):
            sources = {"The study": study["log_path"]}
            for run in runs:
                if run["job_id"] is not None:
                    sources[f"Run {run['id']} ({run['mode']}, seed {run['seed']})"] = (
                        store.job_row(url, run["job_id"]) or {}
                    ).get("log_path")
            chosen = st.selectbox("Log of", list(sources), key=f"log-{study['id']}")
            st.code(_log_tail(sources[chosen]), language=None)
        if status == "succeeded":
            st.page_link("pages/results.py", label="See the results", icon=":material/analytics:")


@st.fragment(run_every=2.0 if active else None)
def queue() -> None:
    """The studies of this dataset version, refreshed every 2 s while one is active."""
    target_unit = store.target_unit(url, version_id) or "target units"
    for job in store.pending_study_jobs(url, version_id):
        with st.container(border=True):
            st.markdown(f"**{STATUS_ICONS.get(job['status'], '')} Study job {job['id']}** · {job['status']}")
            if job["status"] in store.ACTIVE:
                st.progress(0.0, text=job["message"] or "waiting for the executor")
                if st.button("Cancel study", key=f"cancel-{job['id']}"):
                    jobs.cancel(job["id"], actor=current_actor())
            if job["error"]:
                st.error(f"The study could not start: {job['error']}")
    shown = store.studies_of_version(url, version_id)
    if not shown and not store.pending_study_jobs(url, version_id):
        st.info("No study on this dataset version yet. Launch one above.")
    for study in shown:
        _study_card(study, target_unit)


queue()
