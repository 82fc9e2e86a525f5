"""Database plumbing: SQLite pragmas, schema upgrade, the registry sync, and reading a
large table in keyset batches."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
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


def keyset_batches(
    statement: sa.Select, order: Sequence[Any], batch_size: int
) -> Iterator[Sequence[sa.Row]]:
    """The rows of ``statement`` in batches of ``batch_size``, ordered by the columns
    ``order`` (the last one unique, e.g. ``(due_at, id)``; the rows must carry them).
    Each batch starts after the last row of the one before (keyset, no OFFSET), so a
    job may change and commit the rows of a batch before asking for the next: none is
    skipped or read twice, and memory stays bounded however large the table.

    ::

        for rows in keyset_batches(sa.select(Item.id, Item.due_at), (Item.due_at, Item.id), 500):
            handle(rows)
            db.session.commit()
    """
    after: tuple[Any, ...] | None = None
    while True:
        page = statement.order_by(*order).limit(batch_size)
        if after is not None:
            page = page.where(
                order[0] > after[0] if len(order) == 1 else sa.tuple_(*order) > sa.tuple_(*after)
            )
        rows = db.session.execute(page).all()
        if not rows:
            return
        after = tuple(getattr(rows[-1], column.key) for column in order)
        yield rows
        if len(rows) < batch_size:
            return


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
