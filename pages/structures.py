"""Structures: match each composition to candidate crystal structures and review the matches."""

import streamlit as st

from db.access import may_change
from ui import structures_view as view
from ui.auth import current_actor
from ui.state import active_version_id, database

url = database()

st.title("Structures")
st.write(
    "Match each composition of the active dataset to crystal structures from the Materials Project, your own "
    "structure library or the CIFs that came with the dataset, then accept or reject each match. Every decision "
    "is recorded with its reviewer and time, and can be reverted."
)
version_id = active_version_id()
if version_id is None:
    st.info("There is no dataset to match yet. Import one on the Datasets page first.")
    st.page_link("pages/datasets.py", label="Go to Datasets", icon=":material/table_chart:")
    st.stop()

view.show_flash()
view.library_import_notice(url)
view.coverage_metrics(url, version_id)
if not may_change(url, current_actor(), version_id=version_id):  # the data layer refuses anyway
    st.info("This dataset belongs to another user and is shared with the lab: you can read its structure "
            "decisions; only its owner or an administrator can match or review it.")
    view.history_panel(url, version_id, None)
    st.stop()
view.sources_panel(url)
view.matching_panel(url, version_id)

st.subheader("Review")
entry_id = view.review_list(url, version_id)
if entry_id is not None:
    view.entry_panel(url, version_id, entry_id)
view.history_panel(url, version_id, entry_id)
