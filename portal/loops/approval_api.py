"""JSON API of approvals (/api/v1/approvals): the boxes, one request with its steps and
explanation, and acting on it. The same service and rules as the pages: 404 outside
what the caller may read, 403 when it is not their step, 409 when already decided,
422 per field."""

from __future__ import annotations

from typing import Any

from flask import jsonify, request
from flask_babel import gettext as _

from ..api import (
    ApiError,
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
from . import approvals as service
from .approval_forms import ApiActionForm
from .models import REQUEST_STATUSES, STEP_STATUSES, ApprovalRequest

PERSON_SCHEMA = {
    "type": ["object", "null"],
    "properties": {"id": {"type": "integer"}, "display_name": {"type": "string"}},
}
STEP_SCHEMA = {
    "type": "object",
    "properties": {
        "position": {"type": "integer"},
        "round": {"type": "integer"},
        "route": {"type": "string"},
        "approver": PERSON_SCHEMA,
        "role": {"type": ["string", "null"]},
        "status": {"type": "string", "enum": list(STEP_STATUSES)},
        "acted_by": PERSON_SCHEMA,
        "on_behalf_of": PERSON_SCHEMA,
        "acted_at": {"type": ["string", "null"], "format": "date-time"},
        "comment": {"type": "string"},
        "note": {"type": "string"},
        "current": {"type": "boolean"},
    },
}
REQUEST_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "kind": {"type": "string"},
        "kind_label": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "string", "enum": list(REQUEST_STATUSES)},
        "requester": PERSON_SCHEMA,
        "subject_table": {"type": ["string", "null"]},
        "subject_id": {"type": ["string", "null"]},
        "subject_link": {"type": "string"},
        "round": {"type": "integer"},
        "created_at": {"type": "string", "format": "date-time"},
        "decided_at": {"type": ["string", "null"], "format": "date-time"},
        "facts": {"type": "object"},
        "explanation": {
            "type": "object",
            "description": "Which rule file version routed it, and which rule matched",
            "properties": {
                "ruleset": {"type": "string"},
                "version": {"type": ["integer", "null"]},
                "sha": {"type": "string"},
                "rule": {"type": "string"},
                "reason": {"type": "string"},
                "routes": {"type": "array", "items": {"type": "string"}},
                "decisions": {"type": "string", "description": "The rules' 'why?' page"},
            },
        },
        "can_act": {"type": "boolean"},
        "steps": {"type": "array", "items": STEP_SCHEMA, "description": "One request only"},
    },
}


def _person(person: Any) -> dict[str, Any] | None:
    if person is None:
        return None
    return {"id": person.id, "display_name": person.display_name}


def request_json(found: ApprovalRequest, with_steps: bool = False) -> dict[str, Any]:
    """A request as the API shows it; ``with_steps`` adds the timeline."""
    data: dict[str, Any] = {
        "id": found.id,
        "kind": found.kind,
        "kind_label": service.kind_label(found.kind),
        "title": found.title,
        "status": found.status,
        "requester": _person(found.requester),
        "subject_table": found.subject_table,
        "subject_id": found.subject_id,
        "subject_link": found.subject_link,
        "round": found.round,
        "created_at": iso_time(found.created_at),
        "decided_at": iso_time(found.decided_at),
        "facts": dict(found.facts or {}),
        "explanation": {
            "ruleset": found.ruleset,
            "version": found.rule_version,
            "sha": found.rule_sha,
            "rule": found.rule_id,
            "reason": found.reason,
            "routes": list(found.routes or []),
            "decisions": f"/admin/rules/decisions/{service.SUBJECT_TABLE}/{found.id}",
        },
    }
    if with_steps:
        data["can_act"] = service.can_act(found, current_api_user())
        data["steps"] = [
            {
                "position": entry.position,
                "round": entry.round,
                "route": entry.route,
                "approver": _person(entry.approver),
                "role": entry.role_code,
                "status": entry.status,
                "acted_by": _person(entry.acted_by),
                "on_behalf_of": _person(entry.on_behalf_of),
                "acted_at": iso_time(entry.acted_at),
                "comment": entry.comment,
                "note": entry.note,
                "current": entry.current,
            }
            for entry in service.timeline(found)
        ]
    return data


def list_approvals() -> Any:
    """``box=waiting`` (default): what waits for the caller; ``mine``: the caller's own
    requests (``status`` filters); ``decided``: what the caller decided."""
    user = current_api_user()
    box = request.args.get("box", "waiting")
    status = request.args.get("status", "")
    if box not in service.BOXES:
        message = _("Use box=waiting, box=mine or box=decided.")
        raise ApiError(400, "bad_box", message, {"box": [message]})
    if status and status not in REQUEST_STATUSES:
        message = _("Use one of: %(values)s", values=", ".join(REQUEST_STATUSES))
        raise ApiError(400, "bad_status", message, {"status": [message]})
    return page_response(paginate(service.box(user, box, status or None), api=True), request_json)


def get_approval(request_id: int) -> Any:
    """One request with its steps and the explanation of its route."""
    return jsonify(
        request_json(service.get_readable_or_404(request_id, current_api_user()), with_steps=True)
    )


def act_on_approval(request_id: int) -> Any:
    """Approve, reject or return the step waiting for the caller (comment required for
    reject and return); the requester may resubmit a returned request or cancel."""
    found = service.get_readable_or_404(request_id, current_api_user())
    form = validated(ApiActionForm, json_body())
    user = current_api_user()
    action = form.action.data
    with service_errors(_("This request was changed by someone else meanwhile.")):
        if action == "resubmit":
            service.resubmit(found, user)
        elif action == "cancel":
            service.cancel(found, user)
        else:
            service.act(found, user, action, form.comment.data or "")
        db.session.commit()
    return jsonify(request_json(found, with_steps=True))


ROUTES = [
    ApiRoute(
        "/approvals",
        list_approvals,
        summary="Approval requests: waiting for me (box=waiting), mine (box=mine), decided",
        paginated=True,
        schema=REQUEST_SCHEMA,
        tag="approvals",
    ),
    ApiRoute(
        "/approvals/<int:request_id>",
        get_approval,
        summary="One approval request with its steps and explanation",
        schema=REQUEST_SCHEMA,
        tag="approvals",
    ),
    ApiRoute(
        "/approvals/<int:request_id>/actions",
        act_on_approval,
        methods=("POST",),
        summary="Approve, reject or return a step; resubmit or cancel one's own request",
        form=ApiActionForm,
        schema=REQUEST_SCHEMA,
        tag="approvals",
    ),
]
