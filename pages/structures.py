"""Structures: match each composition to candidate crystal structures and review the matches."""

import streamlit as st

from ui.state import active_version_id

st.title("Structures")
st.write(
    "Match each composition of the active dataset to crystal structures from the Materials Project, your own "
    "structure library or the CIFs that came with the dataset, then accept or reject each match."
)
if active_version_id() is None:
    st.info("There is no dataset to match yet. Import one on the Datasets page first.")
    st.page_link("pages/datasets.py", label="Go to Datasets", icon="📄")
