"""Built-in accounts for a lab without an identity provider: salted, slow (Argon2id) password hashes.

An administrator creates users; the first administrator comes from the command line
(``python -m db.users create-admin NAME``) or from ``COSNET_ADMIN_USER`` / ``COSNET_ADMIN_PASSWORD`` at the
first start. Passwords are never stored or logged, only their Argon2id hashes.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select

from db.engine import session_scope, upgrade_database
from db.models import User

MIN_PASSWORD_LENGTH = 10
_hasher = PasswordHasher()  # Argon2id, random 16-byte salt per hash


class AccountError(ValueError):
    """A user could not be created or changed (the message says why)."""


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
        session.flush()
        return user.id


def authenticate(username: str, password: str, *, url: str | None = None) -> User | None:
    """The user whose name and password match, or None (same answer for a wrong name or password)."""
    with session_scope(url) as session:
        user = session.scalar(select(User).where(User.username == username.strip()))
        if user is None or user.disabled or not user.password_hash:
            _hasher.hash("timing-equaliser")  # spend the same time as a real check
            return None
        try:
            _hasher.verify(user.password_hash, password)
        except (VerificationError, InvalidHashError):
            return None
        if _hasher.check_needs_rehash(user.password_hash):
            user.password_hash = hash_password(password)
        session.expunge(user)
        return user


def list_users(url: str | None = None) -> list[User]:
    """Every account, oldest first."""
    with session_scope(url) as session:
        users = list(session.scalars(select(User).order_by(User.id)))
        for user in users:
            session.expunge(user)
        return users


def set_disabled(username: str, disabled: bool, *, url: str | None = None) -> None:
    """Disable (or re-enable) an account without deleting what it owns."""
    with session_scope(url) as session:
        user = session.scalar(select(User).where(User.username == username))
        if user is None:
            raise AccountError(f"There is no user named '{username}'.")
        user.disabled = disabled


def bootstrap_admin_from_environment(url: str | None = None) -> bool:
    """Create the first administrator from COSNET_ADMIN_USER/COSNET_ADMIN_PASSWORD when no user exists yet."""
    name, password = os.environ.get("COSNET_ADMIN_USER"), os.environ.get("COSNET_ADMIN_PASSWORD")
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
    password = os.environ.get("COSNET_NEW_PASSWORD") or getpass.getpass("Password: ")
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
