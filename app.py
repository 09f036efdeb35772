"""COSNet Studio: composition-structure bimodal learning for experimental materials data.

Run with ``streamlit run app.py``. The flow reads top to bottom in the navigation:
Datasets -> Structures -> Training -> Results -> Predict.
"""

import streamlit as st

from ui.auth import login_gate, sidebar_identity
from ui.state import database, dataset_sidebar
from ui.structure_viewer import warm_up_in_background

st.set_page_config(page_title="COSNet Studio", page_icon="🧪", layout="wide")

url = database()
st.cache_resource(show_spinner=False)(warm_up_in_background)()  # crystal-toolkit loads once, in the background
user = login_gate(url)  # with authentication configured, nothing below runs until someone logs in

pages = [
    st.Page("pages/datasets.py", title="Datasets", icon=":material/table_chart:", default=True),
    st.Page("pages/structures.py", title="Structures", icon=":material/diamond:"),
    st.Page("pages/training.py", title="Training", icon=":material/model_training:"),
    st.Page("pages/results.py", title="Results", icon=":material/analytics:"),
    st.Page("pages/predict.py", title="Predict", icon=":material/online_prediction:"),
]
if user.is_admin and user.mode == "accounts":
    pages.append(st.Page("pages/admin.py", title="Admin", icon=":material/admin_panel_settings:"))
navigation = st.navigation(pages)
dataset_sidebar(url, user.username, user.is_admin)
sidebar_identity(user)
navigation.run()
