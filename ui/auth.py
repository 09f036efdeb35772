"""Who is using the app: single-user on localhost, built-in accounts, or OpenID Connect.

``COSNET_AUTH`` chooses the mode:

* ``none`` (default): one user, ``local``, for the scientist running the app on their own computer.
  The sidebar says so. Do not expose such an instance on a network: ``.streamlit/config.toml`` makes
  ``streamlit run app.py`` listen on 127.0.0.1 only, and the sidebar warns when the server listens on any other
  address (every interface, as in the Docker image) without a login.
* ``accounts``: built-in accounts (Argon2id hashes in the database, see ``db/users.py``); an administrator
  creates the users on the Admin page.
* ``oidc``: Streamlit's built-in OpenID Connect login (``st.login``) against the lab's identity provider,
  configured in ``.streamlit/secrets.toml`` under ``[auth]``. ``COSNET_ADMINS`` lists the administrators'
  e-mail addresses (comma-separated).

With authentication configured, :func:`login_gate` stops every script run until someone has logged in, so no
page and no data is reachable without a login.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import streamlit as st

from cosnet_core.settings import SETTINGS, SettingError
from db.access import Actor
from db.users import (
    AccountLocked,
    account_state,
    authenticate,
    bootstrap_admin_from_environment,
    record_logout,
)
from ui.text import md_escape

AUTH_ENV = SETTINGS.auth.variable  # its modes: cosnet_core.settings.AUTH_MODES
_SESSION_USER = "cosnet_user"
_ENDED_KEY = "cosnet_session_ended"  # why the session ended (shown once on the login form)
LOGOUT_COUNT_KEY = "cosnet_logouts"  # survives logout: widget keys that hold uploads include it, so none comes back


@dataclass(frozen=True)
class CurrentUser:
    """The person behind this browser session."""

    username: str
    is_admin: bool
    mode: str


def auth_mode() -> str:
    """The configured authentication mode (``none`` when unset or unknown values are refused)."""
    try:
        return SETTINGS.auth.get()
    except SettingError as error:
        raise RuntimeError(str(error)) from None


def _oidc_user() -> CurrentUser | None:
    if not st.user.is_logged_in:
        return None
    name = st.user.get("email") or st.user.get("sub") or "unknown"
    admins = SETTINGS.admins.get()
    return CurrentUser(str(name), str(name).lower() in admins, "oidc")


def current_user() -> CurrentUser | None:
    """The logged-in user, ``local`` in single-user mode, or None when nobody has logged in yet."""
    mode = auth_mode()
    if mode == "none":
        return CurrentUser("local", True, "none")
    if mode == "oidc":
        return _oidc_user()
    return _still_valid(st.session_state.get(_SESSION_USER))


def _still_valid(user: CurrentUser | None) -> CurrentUser | None:
    """The logged-in account as it is now: a disabled (or removed) account's session ends at its next action, and
    a changed administrator flag applies at once."""
    if user is None:
        return None
    active, is_admin = account_state(user.username)
    if not active:
        logout()
        st.session_state[_ENDED_KEY] = "This account has been disabled. Ask an administrator."
        return None
    if is_admin != user.is_admin:
        user = CurrentUser(user.username, is_admin, user.mode)
        st.session_state[_SESSION_USER] = user
    return user


def current_username() -> str:
    """The name recorded as reviewer/creator in provenance (``local`` in single-user mode)."""
    user = current_user()
    return user.username if user else "anonymous"


def current_actor() -> Actor | None:
    """The current user as the data layer's :class:`~db.access.Actor` (who every write is checked against)."""
    user = current_user()
    return Actor(user.username, user.is_admin) if user else None


def _accounts_login_form(url: str) -> None:
    bootstrap_admin_from_environment(url)
    st.title("COSNet Studio")
    st.write("This COSNet Studio instance is shared by a lab. Log in with the account your administrator made.")
    with st.form("login"):
        username = st.text_input("User name")
        password = st.text_input("Password", type="password")
        submitted = st.form_submit_button("Log in")
    ended = st.session_state.pop(_ENDED_KEY, None)
    if ended:
        st.error(ended)
    if submitted:
        try:
            user = authenticate(username, password, url=url)
        except AccountLocked as error:
            st.error(str(error))
            return
        if user is None:
            st.error("Unknown user name or wrong password.")
        else:
            st.session_state[_SESSION_USER] = CurrentUser(user.username, user.is_admin, "accounts")
            st.rerun()


def login_gate(url: str) -> CurrentUser:
    """Return the current user, or show the login screen and stop the script run when nobody is logged in."""
    user = current_user()
    if user is not None:
        return user
    if auth_mode() == "oidc":
        st.title("COSNet Studio")
        st.write("Log in with your lab's identity provider to reach the datasets and models.")
        st.button("Log in", on_click=st.login, type="primary")
    else:
        _accounts_login_form(url)
    st.stop()
    raise AssertionError("unreachable")  # st.stop() raises


def logout() -> None:
    """End this browser session's login and forget everything it held (uploads, choices, messages).

    The whole session state goes, not only the user: whoever logs in next in this tab starts from nothing.
    Only a logout counter stays, so that upload widgets get new keys and no uploaded file comes back.
    """
    logouts = int(st.session_state.get(LOGOUT_COUNT_KEY, 0)) + 1
    user = st.session_state.get(_SESSION_USER)
    if user is not None and auth_mode() == "accounts":
        record_logout(user.username)
    st.session_state.clear()
    st.session_state[LOGOUT_COUNT_KEY] = logouts
    if auth_mode() == "oidc":
        st.logout()


def listens_beyond_this_computer(address: str | None) -> bool:
    """Whether a Streamlit ``server.address`` lets other computers connect.

    Unset (Streamlit's own default), ``0.0.0.0`` or ``::`` mean every interface; a specific non-loopback address
    is a network too. Only ``localhost`` and loopback addresses (127.0.0.0/8, ``::1``) keep the app on this computer.
    """
    address = (address or "").strip().strip("[]")
    if address == "localhost":
        return False
    try:
        return not ipaddress.ip_address(address).is_loopback
    except ValueError:  # empty (every interface) or a host name that may resolve to any interface
        return True


def sidebar_identity(user: CurrentUser) -> None:
    """Say in the sidebar who is logged in, or that this is a single-user instance.

    In single-user mode the sidebar warns "do not expose it" only while the server listens beyond this computer
    (see :func:`listens_beyond_this_computer`): then anyone who reaches the port reads and changes every dataset.
    """
    if user.mode == "none":
        address = st.get_option("server.address")
        if listens_beyond_this_computer(address):
            where = f"on {address}" if address and address.strip() not in ("0.0.0.0", "::", "[::]") else (
                "on every network interface"
            )
            st.sidebar.warning(
                f"Single-user mode, no login is configured, and this server listens {md_escape(where)}: anyone who "
                "can reach it can read and change all data. Do not expose it on a network: set COSNET_AUTH "
                "(accounts or oidc) or listen on 127.0.0.1 (server.address in .streamlit/config.toml)."
            )
        else:
            st.sidebar.caption("Single-user mode on this computer: no login is configured.")
        return
    st.sidebar.caption(f"Logged in as {md_escape(user.username)}{' (administrator)' if user.is_admin else ''}.")
    if st.sidebar.button("Log out"):
        logout()
        st.rerun()
