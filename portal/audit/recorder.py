"""Writes the audit log from SQLAlchemy's flush, so no write path can forget it.

Every insert, update and delete of an ORM object is recorded in the same transaction
as the change itself: if the change rolls back, so does its audit row, and an audit row
never exists for a change that did not happen. Models opt out only by being logs
themselves (``__audit__ = False``); a column opts out of its values (``info={"audit":
False}``, e.g. password hashes) and is shown as changed without the value.
"""

from __future__ import annotations

import contextvars
import datetime
import decimal
import enum
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from flask import has_request_context, request
from sqlalchemy import event
from sqlalchemy.orm import MANYTOONE, Session

from .models import AuditEvent

HIDDEN = "***"

# Who is acting outside a request (CLI, jobs, demo data): set with ``acting_as``.
_actor: contextvars.ContextVar[tuple[int | None, str] | None] = contextvars.ContextVar(
    "portal_audit_actor", default=None
)


@contextmanager
def acting_as(label: str, user_id: int | None = None) -> Iterator[None]:
    """Attribute writes in this block to ``label`` (e.g. ``cli:users create``)."""
    token = _actor.set((user_id, label))
    try:
        yield
    finally:
        _actor.reset(token)


def current_actor() -> tuple[int | None, str, str]:
    """Who is acting now: (user id, label, address), from ``acting_as`` or the request."""
    explicit = _actor.get()
    address = ""
    if has_request_context():
        address = request.remote_addr or ""
        from flask_login import current_user

        if explicit is None:
            # On the API the token's owner acts, whatever cookie the client also sends.
            api_user = getattr(request, "api_user", None)
            if api_user is not None:
                return api_user.id, f"api:{api_user.username}", address
            if current_user and current_user.is_authenticated:
                return current_user.id, current_user.username, address
            return None, "anonymous", address
    if explicit is None:
        return None, "system", address
    return explicit[0], explicit[1], address


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def _audited(obj: Any) -> bool:
    return getattr(type(obj), "__audit__", True) and hasattr(type(obj), "__table__")


def _record_id(obj: Any) -> str:
    # Read the key columns themselves: a new object has its key values after the INSERT
    # but gets its identity only after after_flush.
    state = sa.inspect(obj)
    values = state.mapper.primary_key_from_instance(obj)
    return ",".join("" if part is None else str(part) for part in values)


def _column_value(column: Any, value: Any) -> Any:
    return HIDDEN if column.info.get("audit", True) is False else _jsonable(value)


def _snapshot(obj: Any, load: bool = False) -> dict[str, Any]:
    """All column values; ``load`` refreshes expired ones first (a record about to be
    deleted after a commit has nothing loaded)."""
    state = sa.inspect(obj)
    values: dict[str, Any] = {}
    for attr in state.mapper.column_attrs:
        column = attr.columns[0]
        value = getattr(obj, attr.key) if load else state.dict.get(attr.key)
        values[attr.key] = _column_value(column, value)
    return values


def _changes(obj: Any) -> tuple[dict[str, Any], dict[str, Any], bool]:
    """Before/after of the changed columns, and whether any audited column changed."""
    state = sa.inspect(obj)
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    audited_change = False
    for attr in state.mapper.column_attrs:
        history = state.attrs[attr.key].history
        if not history.has_changes():
            continue
        column = attr.columns[0]
        audited_change = audited_change or column.info.get("audit", True) is not False
        old = history.deleted[0] if history.deleted else None
        new = history.added[0] if history.added else None
        before[attr.key] = _column_value(column, old)
        after[attr.key] = _column_value(column, new)
    # A reference changed through its relationship (person.unit = east) shows as the
    # foreign key it will write (unit_id), which the column history does not hold yet.
    for rel in state.mapper.relationships:
        if rel.direction is not MANYTOONE or rel.viewonly:
            continue
        history = state.attrs[rel.key].history
        if not history.has_changes():
            continue
        old_target = history.deleted[0] if history.deleted else None
        new_target = history.added[0] if history.added else None
        for local, remote in rel.local_remote_pairs:
            key = state.mapper.get_property_by_column(local).key
            before.setdefault(key, _jsonable(_attribute_of(old_target, remote)))
            after[key] = _jsonable(_attribute_of(new_target, remote))
            audited_change = True
    return before, after, audited_change


def _attribute_of(target: Any, column: Any) -> Any:
    if target is None:
        return None
    mapper = sa.inspect(target).mapper
    return getattr(target, mapper.get_property_by_column(column).key)


def _collection_changes(obj: Any) -> dict[str, Any]:
    """Many-to-many changes (e.g. a person's roles) as lists of identities."""
    state = sa.inspect(obj)
    changes: dict[str, Any] = {}
    for rel in state.mapper.relationships:
        if rel.secondary is None:
            continue
        history = state.attrs[rel.key].history
        if history.has_changes():
            changes[rel.key] = {
                "added": [_record_id(o) for o in history.added],
                "removed": [_record_id(o) for o in history.deleted],
            }
    return changes


def _before_flush(session: Session, flush_context: Any, instances: Any) -> None:
    # Updates and deletes must be read before the flush: afterwards history is reset.
    pending: list[dict[str, Any]] = session.info.setdefault("portal_audit_pending", [])
    for obj in list(session.dirty):
        if not _audited(obj) or not session.is_modified(obj, include_collections=True):
            continue
        before, after, audited_change = _changes(obj)
        collections = _collection_changes(obj)
        if collections:
            after.update({key: value for key, value in collections.items()})
            audited_change = True
        if not audited_change:
            continue
        pending.append({"obj": obj, "action": "update", "before": before, "after": after})
    for obj in list(session.deleted):
        if _audited(obj):
            pending.append(
                {
                    "obj": obj,
                    "action": "delete",
                    "before": _snapshot(obj, load=True),
                    "after": None,
                    "record_id": _record_id(obj),
                }
            )
    session.info["portal_audit_new"] = [obj for obj in session.new if _audited(obj)]


def _after_flush(session: Session, flush_context: Any) -> None:
    pending = session.info.pop("portal_audit_pending", [])
    new_objects = session.info.pop("portal_audit_new", [])
    if not pending and not new_objects:
        return
    actor_id, actor, address = current_actor()
    now = datetime.datetime.now(datetime.UTC)
    rows = []
    for obj in new_objects:
        rows.append(
            {
                "action": "create",
                "table_name": obj.__table__.name,
                "record_id": _record_id(obj),
                "before": None,
                "after": _snapshot(obj),
            }
        )
    for item in pending:
        obj = item["obj"]
        rows.append(
            {
                "action": item["action"],
                "table_name": obj.__table__.name,
                "record_id": item.get("record_id") or _record_id(obj),
                "before": item["before"],
                "after": item["after"],
            }
        )
    for row in rows:
        row.update(at=now, actor_id=actor_id, actor=actor[:120], address=address[:64])
    # Core-level insert on the flush's own connection: same transaction, no re-flush.
    session.connection().execute(AuditEvent.__table__.insert(), rows)


def _after_rollback(session: Session) -> None:
    session.info.pop("portal_audit_pending", None)
    session.info.pop("portal_audit_new", None)


def _bulk_statement(orm_execute_state: Any) -> None:
    """Bulk UPDATE/DELETE statements skip the flush; record them as one row each, with
    the statement and its parameters (secret columns' values hidden)."""
    if not (orm_execute_state.is_update or orm_execute_state.is_delete):
        return
    mapper = orm_execute_state.bind_mapper
    if mapper is None or not _audited_class(mapper.class_):
        return
    statement = orm_execute_state.statement
    hidden = {c.key for c in mapper.columns if c.info.get("audit", True) is False}
    values = {}
    for column, value in (getattr(statement, "_values", None) or {}).items():
        name = getattr(column, "key", str(column))
        if name in hidden:
            values[name] = HIDDEN
        elif isinstance(value, sa.sql.elements.BindParameter):
            values[name] = _jsonable(value.value)
        else:  # an SQL expression such as ``value + 1``: kept as its text
            values[name] = str(value.compile(compile_kwargs={"literal_binds": True}))
    where, parameters = "", {}
    if statement.whereclause is not None:
        compiled = statement.whereclause.compile()
        where = str(compiled)
        # The bound values say which rows: ``id IN (...)`` keeps its list of ids.
        parameters = {
            key: HIDDEN if key.rsplit("_", 1)[0] in hidden else _jsonable(value)
            for key, value in compiled.params.items()
        }
    actor_id, actor, address = current_actor()
    orm_execute_state.session.connection().execute(
        AuditEvent.__table__.insert(),
        [
            {
                "at": datetime.datetime.now(datetime.UTC),
                "actor_id": actor_id,
                "actor": actor[:120],
                "address": address[:64],
                "action": "bulk_update" if orm_execute_state.is_update else "bulk_delete",
                "table_name": mapper.local_table.name,
                "record_id": "*",
                "before": {"where": where, "parameters": parameters}
                if parameters
                else {"where": where},
                "after": {"values": values} if values else None,
            }
        ],
    )


def _audited_class(cls: Any) -> bool:
    return getattr(cls, "__audit__", True) and hasattr(cls, "__table__")


def install(session_class: Any) -> None:
    """Attach the recorder to every session of ``session_class`` (idempotent)."""
    if not event.contains(session_class, "before_flush", _before_flush):
        event.listen(session_class, "do_orm_execute", _bulk_statement)
        event.listen(session_class, "before_flush", _before_flush)
        event.listen(session_class, "after_flush", _after_flush)
        event.listen(session_class, "after_soft_rollback", lambda s, t: _after_rollback(s))


def record_access(
    action: str, table_name: str, details: dict[str, Any], record_id: str = "*"
) -> AuditEvent:
    """One audit row for something that reads rather than writes but must still be
    accountable (P6.3 data kept secure): an export, a bulk download. ``details`` says
    what (dataset, filters, row count). Added to the session; the caller commits."""
    from ..extensions import db
    from ..models import utcnow

    actor_id, actor, address = current_actor()
    row = AuditEvent(
        at=utcnow(),
        actor_id=actor_id,
        actor=actor[:120],
        address=address[:64],
        action=action[:16],
        table_name=table_name[:120],
        record_id=record_id[:120],
        before=None,
        after=_jsonable(details),
    )
    db.session.add(row)
    return row
