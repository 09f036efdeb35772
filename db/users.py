"""Built-in accounts for a lab without an identity provider: salted, slow (Argon2id) password hashes.

An administrator creates users; the first administrator comes from the command line
(``python -m db.users create-admin NAME``) or from ``COSNET_ADMIN_USER`` / ``COSNET_ADMIN_PASSWORD`` at the
first start. Passwords are never stored or logged, only their Argon2id hashes.
"""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select

from cosnet_core.settings import SETTINGS
from db.audit import count_since, last_time, record
from db.engine import session_scope, upgrade_database
from db.models import User, utcnow

MIN_PASSWORD_LENGTH = 10
# Brute force: every failed login of a name makes the next attempt wait longer (0.5 s, 1 s, 2 s ... up to 8 s), and
# LOCK_AFTER failures within LOCK_WINDOW (since the last successful login) lock the name for LOCK_FOR.
LOCK_AFTER = 5
LOCK_WINDOW = timedelta(minutes=15)
LOCK_FOR = timedelta(minutes=15)
DELAY_BASE_S, DELAY_MAX_S = 0.5, 8.0
_hasher = PasswordHasher()  # Argon2id, random 16-byte salt per hash


class AccountError(ValueError):
    """A user could not be created or changed (the message says why)."""


class AccountLocked(AccountError):
    """Too many failed logins: the account is locked for a while (the message says until when)."""


def login_delay_s(failures: int) -> float:
    """Seconds the next login attempt waits after ``failures`` recent failures (none after the first)."""
    return 0.0 if failures < 1 else min(DELAY_BASE_S * 2 ** (failures - 1), DELAY_MAX_S)


def _as_utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _recent_failures(session, username: str, now: datetime) -> tuple[int, datetime | None]:
    """Failed logins of ``username`` within LOCK_WINDOW and since its last successful login, and the last one."""
    since = now - LOCK_WINDOW
    last_success = _as_utc(last_time(session, username, ("login",)))
    if last_success is not None and last_success > since:
        since = last_success
    return count_since(session, username, "login_failed", since), _as_utc(last_time(session, username,
                                                                                   ("login_failed",)))


def hash_password(password: str) -> str:
    """The Argon2id hash (with its own random salt) of ``password``."""
    return _hasher.hash(password)


def create_user(username: str, password: str, *, is_admin: bool = False, url: str | None = None) -> int:
    """Create a built-in account and return its id.

    Raises:
        AccountError: empty or taken user name, or a password shorter than MIN_PASSWORD_LENGTH.
    """
    username = username.strip()
    if not username:
        raise AccountError("The user name is empty.")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"The password must have at least {MIN_PASSWORD_LENGTH} characters.")
    with session_scope(url) as session:
        if session.scalar(select(User.id).where(User.username == username)) is not None:
            raise AccountError(f"A user named '{username}' already exists.")
        user = User(username=username, password_hash=hash_password(password), is_admin=is_admin)
        session.add(user)
        record(session, "user_created", None, f"user {username}", administrator=is_admin)
        session.flush()
        return user.id


def authenticate(username: str, password: str, *, url: str | None = None) -> User | None:
    """The user whose name and password match, or None (same answer for a wrong name or password).

    Every attempt is in the audit log. After a failure the next attempt of that name waits
    (:func:`login_delay_s`); after LOCK_AFTER recent failures the name is locked for LOCK_FOR, even with the right
    password.

    Raises:
        AccountLocked: too many recent failures; nothing is checked until the lock ends.
    """
    name = username.strip()
    now = utcnow()
    with session_scope(url) as session:
        failures, last_failure = _recent_failures(session, name, now)
        locked_until = last_failure + LOCK_FOR if failures >= LOCK_AFTER and last_failure else None
        if locked_until is not None and now < locked_until:
            record(session, "login_locked", name, failures=failures)
    if locked_until is not None and now < locked_until:
        minutes = max(1, round((locked_until - now).total_seconds() / 60))
        raise AccountLocked(f"Too many failed logins: this account is locked for {minutes} more minute(s).")
    time.sleep(login_delay_s(failures))  # slows guessing down; the same for known and unknown names
    with session_scope(url) as session:
        user = session.scalar(select(User).where(User.username == name))
        ok = False
        if user is None or user.disabled or not user.password_hash:
            _hasher.hash("timing-equaliser")  # spend the same time as a real check
        else:
            try:
                ok = _hasher.verify(user.password_hash, password)
            except (VerificationError, InvalidHashError):
                ok = False
        if not ok:
            record(session, "login_failed", name, failures=failures + 1)
            user = None
        else:
            record(session, "login", name)
            if _hasher.check_needs_rehash(user.password_hash):
                user.password_hash = hash_password(password)
            session.flush()
            session.expunge(user)
    return user


def account_state(username: str, *, url: str | None = None) -> tuple[bool, bool]:
    """``(active, is_admin)`` of an account now: inactive when it was disabled or removed since login."""
    with session_scope(url) as session:
        user = session.scalar(select(User).where(User.username == username))
        return (user is not None and not user.disabled, bool(user and user.is_admin))


def record_logout(username: str, *, url: str | None = None) -> None:
    """Put a logout in the audit log."""
    with session_scope(url) as session:
        record(session, "logout", username)


def list_users(url: str | None = None) -> list[User]:
    """Every account, oldest first."""
    with session_scope(url) as session:
        users = list(session.scalars(select(User).order_by(User.id)))
        for user in users:
            session.expunge(user)
        return users


def set_disabled(username: str, disabled: bool, *, url: str | None = None, by: str | None = None) -> None:
    """Disable (or re-enable) an account without deleting what it owns; a disabled user's open sessions end at
    their next action (see ``ui.auth``)."""
    with session_scope(url) as session:
        user = session.scalar(select(User).where(User.username == username))
        if user is None:
            raise AccountError(f"There is no user named '{username}'.")
        user.disabled = disabled
        record(session, "user_disabled" if disabled else "user_enabled", by, f"user {username}")


def bootstrap_admin_from_environment(url: str | None = None) -> bool:
    """Create the first administrator from COSNET_ADMIN_USER/COSNET_ADMIN_PASSWORD when no user exists yet."""
    name, password = SETTINGS.admin_user.get(), SETTINGS.admin_password.get()
    if not name or not password:
        return False
    with session_scope(url) as session:
        if session.scalar(select(func.count()).select_from(User)):
            return False
    create_user(name, password, is_admin=True, url=url)
    return True


def main(argv: list[str] | None = None) -> int:
    """``python -m db.users create-admin NAME``: create an administrator (asks for the password)."""
    parser = argparse.ArgumentParser(prog="python -m db.users", description=main.__doc__)
    parser.add_argument("command", choices=["create-admin", "create-user"])
    parser.add_argument("username")
    args = parser.parse_args(argv)
    password = SETTINGS.new_password.get() or getpass.getpass("Password: ")
    upgrade_database()
    try:
        create_user(args.username, password, is_admin=args.command == "create-admin")
    except AccountError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"created {'administrator' if args.command == 'create-admin' else 'user'} {args.username}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
