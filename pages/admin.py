"""Admin: create and disable the lab's built-in accounts (only in COSNET_AUTH=accounts mode)."""

import pandas as pd
import streamlit as st

from db.audit import recent_events
from db.users import (
    LOCK_AFTER,
    LOCK_FOR,
    MIN_PASSWORD_LENGTH,
    AccountError,
    create_user,
    list_users,
    set_disabled,
)
from ui.auth import current_user
from ui.state import database
from ui.text import md_escape

url = database()
user = current_user()
st.title("Admin")
if user is None or not user.is_admin or user.mode != "accounts":
    st.error("Only an administrator of a lab instance with built-in accounts can manage users.")
    st.stop()

users = list_users(url)
st.dataframe(
    pd.DataFrame(
        [{"user": u.username, "administrator": u.is_admin, "disabled": u.disabled, "created": u.created_at}
         for u in users]
    ),
    hide_index=True,
)

with st.form("new-user", clear_on_submit=True):
    st.subheader("New account")
    name = st.text_input("User name")
    password = st.text_input("Initial password", type="password")
    admin = st.checkbox("Administrator")
    if st.form_submit_button("Create account"):
        try:
            create_user(name, password, is_admin=admin, url=url)
        except AccountError as error:
            st.error(md_escape(error))
        else:
            st.success(f"Created {md_escape(name.strip())}.")
            st.rerun()

others = [u.username for u in users if u.username != user.username]
if others:
    st.subheader("Disable or re-enable an account")
    chosen = st.selectbox("Account", others)
    disabled = next(u.disabled for u in users if u.username == chosen)
    if st.button("Re-enable" if disabled else "Disable"):
        set_disabled(chosen, not disabled, url=url, by=user.username)
        st.rerun()

st.subheader("Audit log")
st.caption(
    f"Logins (failed ones too), shares, deletions and account changes, newest first. After a failed login the "
    f"next attempt of that name waits longer; {LOCK_AFTER} failures lock it for "
    f"{LOCK_FOR.total_seconds() / 60:.0f} minutes. Passwords need at least {MIN_PASSWORD_LENGTH} characters."
)
st.dataframe(recent_events(url), hide_index=True, width="stretch")
