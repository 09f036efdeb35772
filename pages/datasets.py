"""Datasets: upload an experimental table, map its columns, clean it, and keep every version."""

import streamlit as st

st.title("Datasets")
st.write(
    "Upload a CSV, TSV or Excel table of experimental measurements (one composition per row, a target "
    "property, optionally crystal structures as CIF files). COSNet Studio checks every row, tells you why any "
    "row was rejected, and stores the cleaned table as a new dataset version."
)
st.info("No dataset has been imported yet. Start by uploading a table below.")
