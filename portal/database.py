"""Database plumbing: SQLite pragmas, schema upgrade and the registry sync."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Flask, current_app
from flask_sqlalchemy.session import Session
from sqlalchemy import event
from sqlalchemy.engine import Engine

from .extensions import db


def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.close()


WROTE = "portal_wrote"


def _mark_written(session: Any, *args: Any) -> None:
    session.info[WROTE] = True


def _mark_bulk_written(orm_execute_state: Any) -> None:
    if orm_execute_state.is_update or orm_execute_state.is_delete:
        orm_execute_state.session.info[WROTE] = True


def _transaction_ended(session: Any, *args: Any) -> None:
    session.info.pop(WROTE, None)


def has_uncommitted_writes() -> bool:
    """Whether this request's session has written in its open transaction. On SQLite it
    then holds the write lock, so work in a second session of the same thread (the rules
    service publishing a changed file) would wait for it until the busy timeout."""
    return bool(db.session().info.get(WROTE))


def install(app: Flask) -> None:
    """Foreign keys, WAL and a busy timeout on every SQLite connection; remember which
    sessions have written in their open transaction."""
    if not event.contains(Engine, "connect", _sqlite_pragmas):
        event.listen(Engine, "connect", _sqlite_pragmas)
    if not event.contains(Session, "after_flush", _mark_written):
        event.listen(Session, "after_flush", _mark_written)
        event.listen(Session, "do_orm_execute", _mark_bulk_written)
        event.listen(Session, "after_commit", _transaction_ended)
        event.listen(Session, "after_rollback", _transaction_ended)


def session_class() -> type:
    """The session class Flask-SQLAlchemy uses (the audit recorder listens on it)."""
    return Session


def upgrade_schema() -> None:
    """Apply every migration of the core and of each enabled plugin (all branch heads)."""
    from flask_migrate import upgrade

    upgrade(revision="heads")


def schema_ready() -> bool:
    """Whether the core tables exist (the registry sync needs them)."""
    return sa.inspect(db.engine).has_table("core_role")


def sync_registry() -> dict[str, int]:
    """Seed roles the plugins offer and default permission grants, once per code.

    A role or permission seen before is never touched again, so an admin's edits
    (renamed role, revoked grant) survive upgrades. Returns counts of what was added.
    """
    from .auth.models import KnownPermission, Role, RolePermission

    state = current_app.extensions["portal"]
    added = {"roles": 0, "grants": 0}
    roles = {role.code: role for role in db.session.scalars(sa.select(Role))}
    for code, (_plugin, spec) in state.roles.items():
        if code in roles:
            continue
        role = Role(
            code=code,
            name=str(spec.label),
            read_scope=spec.read_scope,
            write_scope=spec.write_scope,
            rank=spec.rank,
            duties="\n".join(str(duty) for duty in spec.duties),
        )
        db.session.add(role)
        roles[code] = role
        added["roles"] += 1
    known = set(db.session.scalars(sa.select(KnownPermission.code)))
    for code, (_plugin, permission) in state.permissions.items():
        if code in known:
            continue
        db.session.add(KnownPermission(code=code))
        for role_code in permission.default_roles:
            role = roles.get(role_code)
            if role is not None:
                role.grants.append(RolePermission(code=code))
                added["grants"] += 1
    db.session.commit()
    return added
