"""Authentication services used by the login page, the API and the CLI alike."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from flask import current_app
from werkzeug.security import check_password_hash, generate_password_hash

from ..extensions import db, login_manager
from ..models import as_utc, utcnow
from .models import ApiToken, LoginAttempt, User, UserSession

# A hash to compare against when the username is unknown, so both paths take as long.
_DUMMY_HASH: dict[str, str] = {}


@login_manager.user_loader
def load_user(session_key: str) -> User | None:
    """The person of a live login session: not ended, younger than the absolute lifetime
    (PERMANENT_SESSION_LIFETIME, however active it was), the person still active."""
    oldest = datetime.now(UTC) - current_app.config["PERMANENT_SESSION_LIFETIME"]
    user = db.session.scalars(
        sa.select(User)
        .join(UserSession, UserSession.user_id == User.id)
        .where(
            UserSession.key == session_key,
            UserSession.ended_at.is_(None),
            UserSession.created_at >= oldest,
            User.active.is_(True),
        )
    ).first()
    if user is not None:
        user.login_session_key = session_key
    return user


def start_session(user: User, address: str = "", user_agent: str = "") -> str:
    """Open a login session for ``user`` and commit; returns its key (for flask-login)."""
    key = secrets.token_urlsafe(32)
    db.session.add(
        UserSession(key=key, user_id=user.id, address=address[:64], user_agent=user_agent[:200])
    )
    db.session.commit()
    user.login_session_key = key
    return key


def end_session(key: str | None) -> None:
    """End one login session (logout); the caller commits."""
    if key:
        db.session.execute(
            sa.update(UserSession).where(UserSession.key == key).values(ended_at=utcnow())
        )


def end_sessions(user: User, keep: str | None = None) -> int:
    """End the person's login sessions (all, or all but ``keep``); the caller commits."""
    statement = sa.update(UserSession).where(
        UserSession.user_id == user.id, UserSession.ended_at.is_(None)
    )
    if keep:
        statement = statement.where(UserSession.key != keep)
    return db.session.execute(statement.values(ended_at=utcnow())).rowcount or 0


def hash_password(password: str) -> str:
    """Hash with the configured method (scrypt in production)."""
    return generate_password_hash(password, method=current_app.config["PASSWORD_HASH_METHOD"])


def set_password(user: User, password: str) -> None:
    """Set a new password and end every other login session of the person."""
    user.password_hash = hash_password(password)
    user.password_changed_at = utcnow()
    if user.id is not None:
        end_sessions(user, keep=user.login_session_key)


def is_throttled(username: str, address: str) -> bool:
    """Too many recent failures for this username or this address."""
    window_start = datetime.now(UTC) - timedelta(seconds=current_app.config["LOGIN_WINDOW_SECONDS"])
    limit = current_app.config["LOGIN_MAX_FAILURES"]
    failures = db.session.scalar(
        sa.select(sa.func.count())
        .select_from(LoginAttempt)
        .where(
            LoginAttempt.success.is_(False),
            LoginAttempt.at >= window_start,
            sa.or_(LoginAttempt.username == username, LoginAttempt.address == address),
        )
    )
    return bool(failures and failures >= limit)


def authenticate(username: str, password: str, address: str) -> User | None:
    """Check a username and password; record the attempt either way."""
    username = username.strip()
    user = db.session.scalars(sa.select(User).where(User.username == username)).first()
    if user is None:
        if "hash" not in _DUMMY_HASH:
            _DUMMY_HASH["hash"] = hash_password(secrets.token_hex(8))
        check_password_hash(_DUMMY_HASH["hash"], password)
        valid = False
    else:
        valid = check_password_hash(user.password_hash, password) and user.active
    db.session.add(LoginAttempt(username=username[:64], address=address[:64], success=valid))
    if valid and user is not None:
        user.last_login_at = utcnow()
    db.session.commit()
    return user if valid else None


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(user: User, name: str = "") -> str:
    """Create an API token for ``user``; the caller commits. Only its digest is stored."""
    token = "sl_" + secrets.token_urlsafe(32)
    db.session.add(ApiToken(user=user, name=name[:120], digest=_digest(token)))
    return token


def revoke_tokens(user: User, name: str | None = None) -> int:
    """Revoke the person's API tokens (all, or those called ``name``); the caller commits."""
    statement = sa.update(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked.is_(False))
    if name is not None:
        statement = statement.where(ApiToken.name == name)
    return db.session.execute(statement.values(revoked=True)).rowcount or 0


def user_for_token(token: str) -> User | None:
    """The active person behind a valid, unrevoked token."""
    api_token = db.session.scalars(
        sa.select(ApiToken).where(ApiToken.digest == _digest(token), ApiToken.revoked.is_(False))
    ).first()
    if api_token is None or not api_token.user.active:
        return None
    now = utcnow()
    last = as_utc(api_token.last_used_at)
    # Written at most once a minute, so a busy client does not write on every call.
    if last is None or (now - last).total_seconds() > 60:
        api_token.last_used_at = now
        db.session.commit()
    return api_token.user
