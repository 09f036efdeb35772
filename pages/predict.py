"""Predict: a trained model or a study's seed ensemble on new compositions, with or without structures."""

import csv
import math

import pandas as pd
import streamlit as st
from pymatgen.core import Structure as PmgStructure

from cosnet_core.applicability import (
    NO_TRAINING_ROWS_NOTE,
    assess,
    describe_neighbours,
    distinct_rows,
    domain_of,
    structure_mismatch,
)
from cosnet_core.baselines import add_forest_blend
from cosnet_core.embeddings import load_element_embedding
from cosnet_core.exports import safe_to_csv
from cosnet_core.formula import FormulaError, parse_formula
from cosnet_core.hparams import DEFAULTS
from cosnet_core.ingest import IngestError, suggest_mapping
from cosnet_core.sample import Sample
from cosnet_core.structure_io import StructureError, load_structure
from cosnet_core.tabular import MAX_ABS_TARGET
from cosnet_core.units import back_transformed, target_label
from db.results import model_choices, target_of_runs, training_sets
from db.structures import structures_of_formula
from ui.predict_view import (
    ArtifactError,
    TableError,
    batch_result,
    bounded_structure,
    load_models,
    predict_in_chunks,
    read_batch,
)
from ui.state import database, visibility
from ui.structure_viewer import structure_viewer
from ui.text import md_escape, md_quote
from ui.uploads import upload_limit_mb

url = database()
st.title("Predict")

choices = model_choices(url, **visibility())
if not choices:
    st.info("No trained model yet. Train a study on the Training page; its models appear here.")
    st.page_link("pages/training.py", label="Go to Training", icon=":material/model_training:")
    st.stop()

labels = {c.label: c for c in choices}
choice = labels[st.selectbox(
    "Model", list(labels),
    help="Each study serves the ensemble of its seeds (listed first; per study, the mode with the lowest validation "
    "error first); single runs follow.",
)]
try:
    ensemble = load_models(choice.paths)
except ArtifactError as error:  # a damaged or altered model file: say which, never predict NaN with it
    st.error(f"This model cannot be used: {md_escape(error)}. Choose another one or train again.")
    st.stop()
uses_structures = choice.mode != "composition"
embedding_name = ensemble.members[0].config.embedding
st.caption(
    f"{len(ensemble.members)} model(s) in {choice.mode} mode. "
    + ("The prediction is the mean of the seeds and its uncertainty their spread (ensemble std). "
       if len(ensemble.members) > 1 else "A single model: no spread to estimate its uncertainty. ")
    + ("Structures are used when given." if uses_structures else "This model uses compositions only.")
)

forest_sets = training_sets(choice.run_ids, url)
with_forest = st.checkbox(
    "Average with a random forest on Magpie features (50/50)", disabled=not forest_sets,
    value=bool(forest_sets) and bool(DEFAULTS["serve_with_forest"]),
    help="Serves the 'ensemble + forest (50/50)' row of Table 1 (the Results page shows whether it beat the ensemble "
    "on the test rows): the mean of this model's prediction and of random forests re-fitted on the training rows of "
    "each of its seeds. The weight is fixed, not tuned.",
)

# the unit of the predictions: the target of the dataset the model was trained on
target = target_of_runs(choice.run_ids, url)
unit_label = target_label(target["name"], target["unit"], target["transform"])
unit_caption = (f"Predictions are in the unit of the model's dataset: {unit_label}."
                if target["unit"] or target["transform"] == "log10"
                else "The dataset of this model states no unit: predictions are in its target's unit.")

# the training compositions, for the applicability warnings: from the model files, else from the runs' stored rows
training_rows = ensemble.training_rows()
if training_rows is None and forest_sets:
    training_rows = distinct_rows(forest_sets)  # the seeds share most rows: each counts once
domain = domain_of(training_rows)
domain_note = None if domain is not None else f"No nearest training compositions: {NO_TRAINING_ROWS_NOTE}."

single, batch = st.tabs(["One material", "A table of materials"])

with single:
    formula = st.text_input("Formula", placeholder="e.g. Li7La3Zr2O12 or (Li2S)0.75(P2S5)0.25")
    structure: PmgStructure | None = None
    if uses_structures:
        source = st.radio("Crystal structure", ["none", "upload a CIF", "from the structure library"], horizontal=True)
        if source == "upload a CIF":
            cif = st.file_uploader("CIF file", type=["cif"], key="predict-cif", max_upload_size=upload_limit_mb())
            if cif is not None:
                try:
                    structure = bounded_structure(cif.getvalue().decode("utf-8", errors="replace"), cif.name)
                except StructureError as error:
                    st.error(f"The CIF cannot be used: {md_escape(error)}")
        elif source == "from the structure library" and formula:
            try:
                reduced = parse_formula(formula).reduced_formula
            except FormulaError:
                reduced = None
            # the lab's library and the Materials Project's, plus what came with datasets this user may see
            rows = structures_of_formula(url, reduced, **visibility()) if reduced else []
            if not rows:
                st.info(f"The library holds no structure of {md_escape(reduced or formula)}.")
            else:
                picked = st.selectbox(
                    "Structure", rows,
                    format_func=lambda r: f"{r['external_id'] or r['id']} ({r['spacegroup_symbol'] or '?'})",
                )
                structure = load_structure(picked["cif"])
        if structure is not None:
            structure_viewer(structure, key="predict-structure", height=360)

    if st.button("Predict", type="primary", disabled=not formula):
        try:
            composition = parse_formula(formula)
            missing = [e.symbol for e in composition.elements if e.symbol not in load_element_embedding(embedding_name)]
            if missing:
                raise FormulaError(formula, f"element(s) {', '.join(missing)} have no vector in {embedding_name}")
        except FormulaError as error:
            st.error(f"Cannot predict: {md_escape(error)}")
        else:
            sample = Sample(id="input", composition=composition, target=None, structure=structure, formula=formula)
            row = ensemble.predict([sample])
            row = (add_forest_blend(row, forest_sets, [composition]) if with_forest else row).iloc[0]
            if not math.isfinite(row["prediction"]) or abs(row["prediction"]) > MAX_ABS_TARGET:
                st.error("The model gives no usable prediction for this material (NaN, infinite or beyond ±1e15); "
                         "nothing is shown.")
                st.stop()
            columns = st.columns(3)
            columns[0].metric(f"Prediction, {unit_label}", f"{row['prediction']:.3f}")
            columns[1].metric("Ensemble std", f"{row['prediction_std']:.3f}")
            columns[2].metric("Composition weight w_C", f"{row['w_c']:.2f}")
            if with_forest:
                st.caption(f"Ensemble + forest (50/50): the ensemble predicts {row['prediction_ensemble']:.3f}, the "
                           f"forest {row['prediction_forest']:.3f}; the ensemble std is the seeds' spread.")
            linear = back_transformed(float(row["prediction"]), target["name"], target["unit"], target["transform"])
            if linear:
                st.markdown(f"**{linear}** (10 to the power of the prediction)")
            st.caption(
                f"{unit_caption} w_C = 1 means the "
                "composition network alone decided; a smaller w_C means the structure contributed."
            )
            mismatch = structure_mismatch(composition, structure if uses_structures else None)
            if mismatch:
                st.warning(f"Applicability: {md_escape(mismatch)}.")
            if domain is None:
                st.caption(domain_note)
            else:
                unseen = domain.unseen_elements(composition)
                if unseen:
                    st.warning(f"Applicability: element(s) {', '.join(unseen)} appear in no training row; the model "
                               "never learned how they act on the target.")
                st.caption("Nearest training compositions (cosine distance of the fractional compositions; measured "
                           f"values): {md_escape(describe_neighbours(domain.nearest(composition)))}.")

with batch:
    st.write("Upload a CSV or TSV with one formula per row (and, optionally, a zip of CIFs named in a column).")
    table_file = st.file_uploader("Table", type=["csv", "tsv"], key="predict-table", max_upload_size=upload_limit_mb())
    zip_file = st.file_uploader(
        "CIF zip (optional)", type=["zip"], key="predict-zip", max_upload_size=upload_limit_mb()
    ) if uses_structures else None
    if table_file is not None:
        if not table_file.getvalue().strip():
            st.error(f"The table {md_quote(table_file.name)} is empty: give a header line and one formula per row.")
            st.stop()
        separator = "\t" if table_file.name.lower().endswith(".tsv") else ","  # as the batch reader reads it
        try:
            header = pd.read_csv(table_file, nrows=0, sep=separator, encoding="utf-8-sig").columns
        except (ValueError, UnicodeDecodeError, pd.errors.ParserError, csv.Error) as error:
            st.error(f"The table cannot be read: {md_escape(error)}")
            st.stop()
        columns = list(header)
        suggested = suggest_mapping(columns)  # the Datasets page's suggestion, by column name
        formula_col = st.selectbox("Formula column", columns,
                                   index=columns.index(suggested.formula) if suggested.formula in columns else 0)
        id_col = st.selectbox("ID column (optional)", [None, *columns],
                              index=[None, *columns].index(suggested.id) if suggested.id in columns else 0)
        structure_col = st.selectbox(
            "Structure file column (optional)", [None, *columns],
            index=[None, *columns].index(suggested.structure_file) if suggested.structure_file in columns else 0,
        ) if zip_file else None
        if st.button("Predict the table", type="primary"):
            try:
                read = read_batch(
                    table_file.getvalue(), table_file.name, formula_col=formula_col, id_col=id_col,
                    structure_col=structure_col, cif_zip=zip_file.getvalue() if zip_file else None,
                    embedding_name=embedding_name,
                )
            except (IngestError, TableError) as error:
                st.error(f"The upload cannot be used: {md_escape(error)}")
                st.stop()
            samples = read.samples
            if not samples and read.errors.empty:
                st.error("The table has no data rows: add one formula per row below the header.")
                st.stop()
            bar = st.progress(0.0, text="Predicting…")
            predicted = predict_in_chunks(ensemble, samples, lambda f: bar.progress(f, text="Predicting…"))
            if with_forest and samples:
                predicted = add_forest_blend(predicted, forest_sets, [s.composition for s in samples])
            bar.progress(1.0, text=f"Predicted {len(samples)} row(s).")
            predicted = pd.concat([predicted.reset_index(drop=True), assess(
                [s.composition for s in samples], [s.structure if uses_structures else None for s in samples], domain,
            )], axis=1)
            result = batch_result(read, predicted)
            result.insert(result.columns.get_loc("prediction_std") + 1, "unit", unit_label)
            if target["transform"] == "log10":  # the back-transformed value beside the stored log10
                linear_column = f"10^prediction ({target['unit'] or 'linear'})"
                result.insert(result.columns.get_loc("unit") + 1, linear_column,
                              [10.0 ** v if pd.notna(v) and abs(v) < 300 else float("nan")
                               for v in result["prediction"]])
            st.caption(unit_caption)
            n_refused = int((result["reason"].fillna("") != "").sum())
            if n_refused:
                st.warning(f"{n_refused} row(s) could not be predicted; their reason is in the table.")
            for label, column in (("predicted from the composition alone (their CIF is not in the zip)", "warning"),
                                  ("with an applicability warning (structure ≠ formula, or elements never trained "
                                   "on)", "applicability")):
                flagged = result.loc[result[column].fillna("") != "", "line"]
                if len(flagged):
                    st.warning(f"{len(flagged)} row(s) {label}: line(s) {', '.join(map(str, flagged.head(20)))}"
                               + (" …" if len(flagged) > 20 else "") + f"; see the {column} column.")
            if domain_note:
                st.caption(domain_note)
            scientific = {c: st.column_config.NumberColumn(format="%.2e") for c in result.columns if c.startswith("10^")}
            st.dataframe(result, hide_index=True, width="stretch", column_config=scientific)  # 5.0e-08, never 0.00…
            st.download_button(
                "Download predictions as CSV", safe_to_csv(result, index=False).encode(), file_name="predictions.csv",
                mime="text/csv",
            )
