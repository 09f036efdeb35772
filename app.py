"""COSNet Studio: composition-structure bimodal learning for experimental materials data.

Run with ``streamlit run app.py``. The flow reads top to bottom in the navigation:
Datasets -> Structures -> Training -> Results -> Predict.
"""

import streamlit as st

from ui.state import database, dataset_sidebar

st.set_page_config(page_title="COSNet Studio", page_icon="🧪", layout="wide")

url = database()

pages = [
    st.Page("pages/datasets.py", title="Datasets", icon="📄", default=True),
    st.Page("pages/structures.py", title="Structures", icon="💎"),
    st.Page("pages/training.py", title="Training", icon="⚙️"),
    st.Page("pages/results.py", title="Results", icon="📊"),
    st.Page("pages/predict.py", title="Predict", icon="🔮"),
]
navigation = st.navigation(pages)
dataset_sidebar(url)
st.sidebar.caption("Single-user mode on this computer: no login is configured.")
navigation.run()
