"""JSON API of loop items: list, read, raise and act (/api/v1/loops).

The same service, scoping, forms and status codes as the pages: 422 with per-field
messages, 403 when the caller may read but not act, 404 outside their scope, 409 when
the item is not in a state for the action or changed meanwhile (``version``).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import abort, jsonify, request
from flask_babel import gettext as _

from ..api import (
    TIME_SCHEMA,
    current_api_user,
    iso_time,
    json_body,
    page_response,
    service_errors,
    validated,
)
from ..extensions import db
from ..listing import paginate
from ..plugins.types import ApiRoute
from . import service
from .errors import StateConflict
from .forms import LoopActionForm, LoopRaiseForm
from .loop_views import FORM_FIELD, raise_from_form, send_attachment
from .models import LOOP_STATUSES, PRIORITIES, LoopAttachment, LoopItem

_NULLABLE_STRING = {"type": ["string", "null"]}
LOOP_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "type": {"type": "string"},
        "clause": {"type": "string"},
        "title": {"type": "string"},
        "description": {"type": "string"},
        "subject_table": _NULLABLE_STRING,
        "subject_id": _NULLABLE_STRING,
        "subject_link": {"type": "string"},
        "owner_id": {"type": "integer"},
        "raised_by_id": {"type": ["integer", "null"]},
        "due_at": {"type": "string", "format": "date-time"},
        "overdue": {"type": "boolean"},
        "priority": {"type": "string", "enum": list(PRIORITIES)},
        "status": {"type": "string", "enum": list(LOOP_STATUSES)},
        "closure_note": {"type": "string"},
        "evidence": {"type": "string"},
        "started_at": TIME_SCHEMA,
        "closed_at": TIME_SCHEMA,
        "verified_at": TIME_SCHEMA,
        "verified_by_id": {"type": ["integer", "null"]},
        "escalation_level": {"type": "integer"},
        "reopen_count": {"type": "integer"},
        "version": {"type": "integer"},
        "created_at": {"type": "string", "format": "date-time"},
    },
}
LOOP_DETAIL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        **LOOP_SCHEMA["properties"],
        "allowed_actions": {"type": "array", "items": {"type": "string"}},
        "history": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "at": {"type": "string", "format": "date-time"},
                    "actor_id": {"type": ["integer", "null"]},
                    "action": {"type": "string"},
                    "from_status": _NULLABLE_STRING,
                    "to_status": _NULLABLE_STRING,
                    "note": {"type": "string"},
                    "details": {"type": "object"},
                },
            },
        },
        "attachments": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "filename": {"type": "string"},
                    "content_type": {"type": "string"},
                    "size": {"type": "integer"},
                    "sha256": {"type": "string"},
                    "url": {"type": "string"},
                },
            },
        },
    },
}


def loop_json(item: LoopItem) -> dict[str, Any]:
    """A loop item as the API shows it."""
    return {
        "id": item.id,
        "type": item.type,
        "clause": item.clause,
        "title": item.title,
        "description": item.description,
        "subject_table": item.subject_table,
        "subject_id": item.subject_id,
        "subject_link": item.subject_link,
        "owner_id": item.owner_id,
        "raised_by_id": item.raised_by_id,
        "due_at": iso_time(item.due_at),
        "overdue": service.is_overdue(item),
        "priority": item.priority,
        "status": item.status,
        "closure_note": item.closure_note,
        "evidence": item.evidence,
        "started_at": iso_time(item.started_at),
        "closed_at": iso_time(item.closed_at),
        "verified_at": iso_time(item.verified_at),
        "verified_by_id": item.verified_by_id,
        "escalation_level": item.escalation_level,
        "reopen_count": item.reopen_count,
        "version": item.lock_version,
        "created_at": iso_time(item.created_at),
    }


def loop_detail_json(item: LoopItem) -> dict[str, Any]:
    """An item with its history, attachments and what the caller may do with it."""
    events = service.history_of(item)
    files = db.session.scalars(
        sa.select(LoopAttachment)
        .where(LoopAttachment.loop_id == item.id)
        .order_by(LoopAttachment.id)
    )
    return {
        **loop_json(item),
        "allowed_actions": service.allowed_actions(item, current_api_user()),
        "history": [
            {
                "at": iso_time(event.at),
                "actor_id": event.actor_id,
                "action": event.action,
                "from_status": event.from_status,
                "to_status": event.to_status,
                "note": event.note,
                "details": event.details or {},
            }
            for event in events
        ],
        "attachments": [
            {
                "id": row.id,
                "filename": row.filename,
                "content_type": row.content_type,
                "size": row.size,
                "sha256": row.sha256,
                "url": f"/api/v1/loops/{item.id}/attachments/{row.id}",
            }
            for row in files
        ],
    }


def _item(loop_id: int) -> LoopItem:
    item = service.get_loop(loop_id, current_api_user())
    if item is None:
        abort(404)
    return item


def list_loops() -> Any:
    """Loop items in your scope (and those you raised); filters: type, clause (and the
    clauses below it), status (or active), priority, owner, raised_by, due (overdue,
    today, week, later), overdue=1, escalated=1, subject_table with subject_id, q. Due
    first."""
    statement = service.visible_loops(sa.select(LoopItem), current_api_user())
    statement = service.filter_loops(statement, request.args)
    statement = statement.order_by(LoopItem.due_at, LoopItem.id)
    return page_response(paginate(statement, api=True), loop_json)


def raise_item() -> Any:
    """Raise a loop item for yourself or someone in your write scope."""
    user = current_api_user()
    form = validated(LoopRaiseForm, json_body(), actor=user)
    with service_errors(renamed=FORM_FIELD):
        item = raise_from_form(form, user)
    db.session.commit()
    response = jsonify(loop_detail_json(item))
    response.status_code = 201
    return response


def get_item(loop_id: int) -> Any:
    """One loop item with its history (404 outside your scope)."""
    return jsonify(loop_detail_json(_item(loop_id)))


def act_on_item(loop_id: int) -> Any:
    """Act on an item: start, close (note required), verify, reopen (note = the
    reason), comment (note), reassign (owner_id, optional due_on). Send ``version`` to
    refuse acting on an item that changed since you read it (409)."""
    user = current_api_user()
    item = _item(loop_id)
    form = validated(LoopActionForm, json_body())
    action = form.action.data
    with service_errors(_("Someone changed this item meanwhile; read it again."), FORM_FIELD):
        service.check_action(item, user, action)
        if form.version.data is not None and form.version.data != item.lock_version:
            raise StateConflict(_("The item changed since you read it."))
        service.act(
            item,
            user,
            action,
            note=form.note.data or "",
            evidence=form.evidence.data or "",
            new_owner=form.owner_id.data,
            due_at=service.due_at_from_date(form.due_on.data) if form.due_on.data else None,
        )
        db.session.commit()
    fresh = service.get_loop(loop_id, user)
    return jsonify(loop_detail_json(fresh if fresh is not None else item))


def download_attachment(loop_id: int, attachment_id: int) -> Any:
    """An evidence file of an item in your scope."""
    return send_attachment(_item(loop_id), attachment_id)


ROUTES = [
    ApiRoute(
        "/loops",
        list_loops,
        summary="Loop items in your scope",
        paginated=True,
        schema=LOOP_SCHEMA,
        tag="loops",
    ),
    ApiRoute(
        "/loops",
        raise_item,
        methods=("POST",),
        summary="Raise a loop item",
        form=LoopRaiseForm,
        schema=LOOP_DETAIL_SCHEMA,
        tag="loops",
    ),
    ApiRoute(
        "/loops/<int:loop_id>",
        get_item,
        summary="One loop item with its history",
        schema=LOOP_DETAIL_SCHEMA,
        tag="loops",
    ),
    ApiRoute(
        "/loops/<int:loop_id>/actions",
        act_on_item,
        methods=("POST",),
        summary="Act on a loop item: start, close, verify, reopen, comment, reassign",
        form=LoopActionForm,
        schema=LOOP_DETAIL_SCHEMA,
        tag="loops",
    ),
    ApiRoute(
        "/loops/<int:loop_id>/attachments/<int:attachment_id>",
        download_attachment,
        summary="Download an evidence file",
        schema={"type": "string", "format": "binary"},
        tag="loops",
    ),
]
