"""Training: launch COSNet studies (modes x seeds) as background jobs and watch them."""

import streamlit as st

from ui.state import active_version_id

st.title("Training")
st.write(
    "Train COSNet on the active dataset in the paper's three modes (composition only, bimodal with "
    "augmentation, bimodal without) over several seeds. Training runs in the background; you can leave the page."
)
if active_version_id() is None:
    st.info("There is nothing to train on yet. Import a dataset on the Datasets page first.")
    st.page_link("pages/datasets.py", label="Go to Datasets", icon="📄")
