"""Shared Streamlit widgets for the pages (thin; logic lives in cosnet_core, db and jobs)."""
