"""Datasets: upload an experimental table, map its columns, clean it, and keep every version."""

import streamlit as st

from cosnet_core.ingest import IngestLimits
from db.datasets import list_datasets
from ui import datasets_view as view
from ui.state import database, visibility

url = database()

st.title("Datasets")
st.write(
    "Upload a CSV, TSV or Excel table of experimental measurements (one composition per row, a target "
    "property, optionally crystal structures as CIF files). COSNet Studio checks every row, tells you why any "
    "row was rejected, and stores the cleaned table as a new dataset version."
)
view.show_flash()

try:
    limits = IngestLimits.from_env()
except ValueError as error:
    st.error(f"The upload limits are misconfigured: {error}")
    st.stop()

if not list_datasets(url, **visibility()) and view.TABLE_KEY not in st.session_state:
    st.info("No dataset has been imported yet. Start by uploading a table below.")

view.upload_section(url, limits)
view.versions_section(url)
