"""Results: did structure help, and where? Table 1, parity plots, w_C (Figure 3), alignment (Table 2), Figure 2."""

import pandas as pd
import streamlit as st

from cosnet_core.exports import safe_to_csv
from cosnet_core.report import MODE_LABELS, figure2, per_sample, seed_protocol_text, table1
from db.access import AccessDenied, may_change
from db.datasets import get_version
from db.results import (
    finished_runs,
    list_studies,
    preferred_study,
    study_entries,
    study_epochs,
    study_predictions,
    study_runs,
)
from db.studies import StudyBusy, StudyStoreError, delete_study, study_contents
from ui.auth import current_actor
from ui.results_view import (
    best_epoch_at_end,
    composition_weight_chart,
    figure2_chart,
    parity_chart,
    representations_frame,
    residual_histogram,
    run_labels,
    train_longer_hint,
    training_curves,
)
from ui.state import active_version_id, database, visibility
from ui.text import md_escape

STUDY_KEY = "results_study_id"
FLASH_KEY = "results_flash"

url = database()
st.title("Results")
if st.session_state.get(FLASH_KEY):
    st.success(st.session_state.pop(FLASH_KEY))

studies = list_studies(url, **visibility())
if not studies:
    st.info("No study has been launched yet. Launch one on the Training page; its results appear here.")
    st.page_link("pages/training.py", label="Go to Training", icon=":material/model_training:")
    st.stop()

by_id = {s.id: s for s in studies}
ids = list(by_id)
active_version = active_version_id()
active_info = get_version(url, active_version) if active_version is not None else None
linked = st.query_params.get("study")
linked = int(linked) if linked and str(linked).isdigit() else None
remembered = st.session_state.get(STUDY_KEY)
if remembered in by_id and active_version is not None and by_id[remembered].dataset_version_id != active_version:
    remembered = None  # another dataset version was chosen in the sidebar since: open on one of its studies
wanted = next((i for i in (linked, remembered) if i in by_id), None)
if wanted is None:  # the active dataset's latest finished study
    wanted = preferred_study(studies, active_version, active_info.dataset_id if active_info else None).id
study_id = st.selectbox("Study", ids, index=ids.index(wanted), format_func=lambda i: by_id[i].label)
st.session_state[STUDY_KEY] = study_id
study = by_id[study_id]
st.caption(
    f"Dataset {md_escape(study.dataset)} v{study.dataset_version} · modes {', '.join(study.modes)} · "
    f"seeds {', '.join(map(str, study.seeds))} · launched by {md_escape(study.created_by)} · status {study.status}"
)
if may_change(url, current_actor(), study_id=study_id):  # owner or administrator; delete_study checks again
    with st.expander("Delete this study"):
        st.warning(md_escape(study_contents(url, study_id, actor=current_actor()).describe()) + " This cannot be "
                   "undone; the dataset stays.")
        confirmed = st.checkbox("I understand; delete this study", key=f"delete_study_confirm_{study_id}")
        if st.button("Delete study permanently", disabled=not confirmed, key=f"delete_study_{study_id}"):
            try:
                delete_study(url, study_id, actor=current_actor())
            except StudyBusy as error:
                st.warning(md_escape(error))
            except (StudyStoreError, AccessDenied) as error:
                st.error(f"Nothing was deleted: {md_escape(error)}")
            else:
                st.session_state.pop(STUDY_KEY, None)
                st.session_state[FLASH_KEY] = f"Deleted study #{study_id} {md_escape(study.name)}."
                st.rerun()


@st.cache_data(show_spinner="Loading predictions…", max_entries=8)
def _load(study_id: int, n_finished: int, db_url: str, owner: str = "", created: object = None) -> tuple[pd.DataFrame, ...]:
    # keyed on the study's creator and creation time too, never on a bare id
    return (study_predictions(study_id, db_url), study_entries(study_id, db_url), study_epochs(study_id, db_url),
            study_runs(study_id, db_url))


predictions, entries, epochs, runs = _load(study_id, finished_runs(study_id, url), url, study.created_by, study.created_at)  # new finished runs show up while the study goes on
if predictions.empty:
    if study.status in ("queued", "running"):
        st.info("No run of this study has finished yet. Progress is shown on the Training page.")
    else:  # cancelled, cancelling or failed: never "in progress"
        st.info(f"This study is {study.status} and no run of it finished, so it has no results. Its runs and logs "
                "are on the Training page.")
    st.page_link("pages/training.py", label="Go to Training", icon=":material/model_training:")
    st.stop()
target = study.target_label

st.header("Table 1: test error by mode")
t1 = table1(predictions, baselines=study.results.get("baselines"), baseline_rows=study.results.get("baseline_rows"))
st.dataframe(t1.display(), width="stretch")
st.caption(
    f"Mean absolute error on the test split ({target}), mean ± standard deviation over seeds. ★ marks the best model "
    "of each row; † marks a difference from composition-only learning larger than the sum of the two standard "
    "deviations (the paper's significance criterion). Look at the w/o-structure row: a lower error there means "
    "structures helped rows that have none. The baselines (the training-set mean, and a random forest on Magpie "
    "composition statistics) are fitted on each seed's training rows and scored on its test rows. Where every seed "
    "was tested on the same rows, each mode also shows the ensemble of its seeds (their mean prediction: the model "
    "served on the Predict page) and that ensemble averaged 50/50 with the forest (a fixed weight, not tuned)."
)
st.caption(seed_protocol_text(study.results.get("seed_protocol") or (study.config.get("split") or {}).get("protocol")))
if t1.n_censored_excluded:
    st.info(
        f"{t1.n_censored_excluded} test row(s) hold a bound (a censored value such as <1E-10), not a measurement: "
        "they are left out of every number above and drawn as triangles in the parity plot below.",
        icon=":material/info:",
    )
for warning in t1.warnings():
    st.warning(warning, icon=":material/warning:")
if study.results.get("baselines_error"):
    st.warning(f"The baselines could not be fitted: {study.results['baselines_error']}")
elif not study.results.get("baselines"):
    st.info("The baselines appear here once the study has fitted them (studies launched before they existed have none).")
st.dataframe(t1.metrics(), width="stretch")
st.caption(
    f"MAE, root-mean-square error (both in {target}) and R² (1 is perfect, 0 is no better than the mean of the test "
    "targets, below 0 is worse) of every model, means over seeds (an ensemble's own numbers for an ensemble)."
)

st.header("Predictions per sample")
modes = [m for m in study.modes if m in set(predictions["mode"])]
mode = st.selectbox(
    "Model", modes, index=modes.index("bimodal-aug") if "bimodal-aug" in modes else 0,
    format_func=lambda m: MODE_LABELS.get(m, m),
)
samples = per_sample(predictions, mode).merge(entries, on="entry_id", how="left")

filters = st.columns(4)
splits = filters[0].multiselect("Split", ["train", "val", "test"], default=["test"])
has_structure = filters[1].selectbox("Rows", ["all rows", "with structure", "without structure"])
formula_text = filters[2].text_input("Formula contains")
min_error = filters[3].number_input(f"|error| at least ({target})", min_value=0.0, value=0.0)
shown = samples[samples["split"].isin(splits) & (samples["abs_error"] >= min_error)]
if has_structure != "all rows":
    shown = shown[shown["has_structure"] == (has_structure == "with structure")]
if formula_text:
    shown = shown[shown["formula"].str.contains(formula_text, case=False, regex=False, na=False)]

left, right = st.columns(2)
if shown.empty:
    st.info("No row matches these filters.")
else:
    left.altair_chart(parity_chart(shown, target), width="content")  # square: one scale on both axes
    left.caption("Points near the dashed line (y = x) are well predicted; compare red (with structure) and blue "
                 "points.")
    right.altair_chart(residual_histogram(shown, target), width="stretch")
    right.caption("A narrow histogram centred on zero means small, unbiased errors.")

table_columns = {
    "id": "id", "formula": "formula", "split": "split", "target": "measured", "prediction": "predicted",
    "prediction_std": "ensemble std", "error": "error", "w_c": "w_C", "has_structure": "has structure",
    "structure_ref": "structure id", "structure_source": "structure source", "n_seeds": "seeds",
}
table = shown[[c for c in table_columns if c in shown.columns]].rename(columns=table_columns)
st.dataframe(table, hide_index=True, width="stretch")
st.download_button(
    "Download these rows as CSV", safe_to_csv(table.assign(unit=target), index=False).encode(),  # with its unit
    file_name=f"study-{study_id}-{mode}.csv",
    mime="text/csv",
)

st.header("Figure 3: composition weight of rows with a structure")
bimodal = predictions[
    predictions["mode"].isin(["bimodal-aug", "bimodal"]) & predictions["has_structure"]
    & (predictions["split"] == "test") & predictions["structure_fraction"].isna()
]
if bimodal.empty:
    st.info("Figure 3 needs a bimodal mode and test rows with a structure.")
else:
    weights = bimodal.groupby(["mode", "entry_id"], as_index=False)["w_c"].mean()
    st.altair_chart(composition_weight_chart(weights), width="stretch")
    st.caption(
        "Rows without a structure always have w_C = 1. For rows with one, a w_C far below 0.5 means the model leans "
        "on the structure network; the paper finds augmentation keeps w_C higher."
    )

st.header("Table 2: alignment of the composition representation")
alignment = study.results.get("table2") or {}
if alignment:
    def _r2(v: dict) -> str:
        if v.get("r2_mean") is None:  # too few test rows with a structure for a cross-validated fit
            return "not enough rows"
        return f"{v['r2_mean']:.3f} ± {v.get('r2_std') or 0:.3f}"

    rows = [{"model": MODE_LABELS.get(m, m), "R² (C → volume per atom)": _r2(v), "seeds": v.get("n_runs")}
            for m, v in alignment.items()]
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    st.caption(
        "Cross-validated R² of a linear regression from the composition representation C to the volume per atom, "
        "over test rows with a structure. Higher means C carries more structural information."
    )
else:
    st.info("The alignment score is computed when all runs of the study have finished.")

fig2 = figure2(predictions)
if not fig2.empty:
    st.header("Figure 2: error against the share of structures")
    st.altair_chart(figure2_chart(fig2, target), width="stretch")
    st.caption("Each point hides the structures of a random share of rows; falling lines mean structures help.")

st.header("Training curves and provenance")
if not epochs.empty:
    st.altair_chart(training_curves(epochs, target), width="stretch")
    st.caption("The checkpoint kept for each run is its epoch with the lowest validation MAE.")
    hint = train_longer_hint(best_epoch_at_end(epochs.assign(run=run_labels(epochs)),
                                               set(runs.loc[runs["status"] == "succeeded", "run"])))
    if hint:
        st.info(hint, icon=":material/trending_down:")
st.dataframe(runs.drop(columns=["hyper-parameters", "artifact", "representations"]), hide_index=True)
with st.expander("Hyper-parameters of each run"):
    for record in runs.itertuples():
        st.write(f"Run {record.run} ({record.mode}, seed {record.seed})")
        st.json(runs.loc[record.Index, "hyper-parameters"], expanded=False)

st.header("Export the learned representations")
st.write(
    "The composition representation C (and the structure representation S, zero for rows without a structure) of "
    "every row, for every run, as used for Table 2. The file is prepared when you click."
)
if runs["representations"].notna().any():
    export = st.columns(2)
    export[0].download_button(
        "Representations as CSV", lambda: safe_to_csv(representations_frame(runs, entries), index=False).encode(),
        file_name=f"study-{study_id}-representations.csv", mime="text/csv", on_click="ignore",
    )
    export[1].download_button(
        "Representations as Parquet", lambda: representations_frame(runs, entries).to_parquet(index=False),
        file_name=f"study-{study_id}-representations.parquet", mime="application/octet-stream", on_click="ignore",
    )
else:
    st.info("No run of this study stored its representations.")
