"""Predict: use a trained model or a seed ensemble on new compositions (with or without structures)."""

import streamlit as st

st.title("Predict")
st.write(
    "Predict the property of new materials from their formula, optionally with a crystal structure, using a "
    "trained model or the ensemble of a study's seeds (mean and spread)."
)
st.info("No trained model yet. Train one on the Training page first.")
st.page_link("pages/training.py", label="Go to Training", icon="⚙️")
