"""Results: error tables (Table 1), parity plots, modality weights (Figure 3) and alignment (Table 2)."""

import streamlit as st

st.title("Results")
st.write(
    "Compare composition-only and bimodal learning on held-out rows: mean absolute errors over seeds, "
    "parity plots, per-sample composition weights and the representation-alignment score."
)
st.info("No study has finished yet. Launch one on the Training page.")
st.page_link("pages/training.py", label="Go to Training", icon="⚙️")
