"""JSON API of after-sales (P3.5): feedback and complaints under
``/api/v1/sales/feedback``. The same service, scoping, forms and status codes as the
pages: 422 per field, 403 when the caller may read but not act, 404 outside their
scope, 409 when the record is not in a state for the action or changed meanwhile."""

from __future__ import annotations

from typing import Any

from flask import jsonify, request
from flask_babel import gettext as _

from portal.api import (
    TIME_SCHEMA,
    current_api_user,
    iso_time,
    json_body,
    page_response,
    service_errors,
    validated,
)
from portal.extensions import db
from portal.listing import paginate
from portal.models import utcnow
from portal.plugins import ApiRoute

from . import aftersales as service
from .aftersales_forms import FeedbackActionForm, FeedbackForm
from .common import may_edit
from .models import (
    FEEDBACK_CATEGORIES,
    FEEDBACK_KINDS,
    FEEDBACK_PRIORITIES,
    FEEDBACK_STATUSES,
    Feedback,
)

_ID = {"type": ["integer", "null"]}
FEEDBACK_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "number": {"type": "string"},
        "customer_id": {"type": "integer"},
        "customer_name": {"type": "string"},
        "contract_id": _ID,
        "owner_id": {"type": "integer"},
        "kind": {"type": "string", "enum": list(FEEDBACK_KINDS)},
        "category": {"type": "string", "enum": list(FEEDBACK_CATEGORIES)},
        "priority": {"type": "string", "enum": list(FEEDBACK_PRIORITIES)},
        "status": {"type": "string", "enum": list(FEEDBACK_STATUSES)},
        "title": {"type": "string"},
        "received_at": {"type": "string", "format": "date-time"},
        "first_response_due_at": TIME_SCHEMA,
        "resolution_due_at": TIME_SCHEMA,
        "first_responded_at": TIME_SCHEMA,
        "overdue": {"type": "boolean"},
        "escalated_to": {"type": "string", "enum": list(service.ESCALATION_LEVELS)},
        "escalated_at": TIME_SCHEMA,
        "resolved_at": TIME_SCHEMA,
        "closed_at": TIME_SCHEMA,
        "loop_item_id": _ID,
        "corrective_loop_id": _ID,
        "version": {"type": "integer"},
    },
}
FEEDBACK_DETAIL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        **FEEDBACK_SCHEMA["properties"],
        "description": {"type": "string"},
        "first_response": {"type": "string"},
        "cause": {"type": "string"},
        "action_taken": {"type": "string"},
        "customer_confirmed_by": {"type": "string"},
        "customer_confirmation": {"type": "string"},
        "customer_confirmed_at": TIME_SCHEMA,
        "corrective_action_required": {"type": "boolean"},
        "closing_problems": {
            "type": "object",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        },
        "allowed_actions": {"type": "array", "items": {"type": "string"}},
    },
}


def feedback_json(record: Feedback) -> dict[str, Any]:
    """A record as the API lists it."""
    return {
        "id": record.id,
        "number": record.number,
        "customer_id": record.customer_id,
        "customer_name": record.customer.name if record.customer is not None else "",
        "contract_id": record.contract_id,
        "owner_id": record.owner_id,
        "kind": record.kind,
        "category": record.category,
        "priority": record.priority,
        "status": record.status,
        "title": record.title,
        "received_at": iso_time(record.received_at),
        "first_response_due_at": iso_time(record.first_response_due_at),
        "resolution_due_at": iso_time(record.resolution_due_at),
        "first_responded_at": iso_time(record.first_responded_at),
        "overdue": service.is_overdue(record),
        "escalated_to": record.escalated_to,
        "escalated_at": iso_time(record.escalated_at),
        "resolved_at": iso_time(record.resolved_at),
        "closed_at": iso_time(record.closed_at),
        "loop_item_id": record.loop_item_id,
        "corrective_loop_id": record.corrective_loop_id,
        "version": record.lock_version,
    }


def feedback_detail_json(record: Feedback) -> dict[str, Any]:
    """A record with its handling, what closing still needs and what the caller may do."""
    user = current_api_user()
    now = utcnow()
    required = service.corrective_action_required(record, now)
    may_write = may_edit(record, user)
    return {
        **feedback_json(record),
        "description": record.description,
        "first_response": record.first_response,
        "cause": record.cause,
        "action_taken": record.action_taken,
        "customer_confirmed_by": record.customer_confirmed_by,
        "customer_confirmation": record.customer_confirmation,
        "customer_confirmed_at": iso_time(record.customer_confirmed_at),
        "corrective_action_required": required,
        "closing_problems": service.closing_problems(record, now, required=required)
        if record.status != "closed"
        else {},
        "allowed_actions": service.allowed_actions(record, may_write),
    }


def list_feedback() -> Any:
    """Feedback and complaints in your scope; filters: kind, status (or active),
    category, priority, overdue=1, customer_id, contract_id, q. Overdue first, then the
    newest received."""
    now = utcnow()
    statement = service.feedback_for(current_api_user()).options(*service.list_options())
    statement = service.filter_feedback(statement, request.args, now)
    return page_response(paginate(service.ordered(statement, now), api=True), feedback_json)


def create_feedback() -> Any:
    """Log feedback or a complaint for a customer in your write scope."""
    user = current_api_user()
    form = validated(FeedbackForm, json_body())
    with service_errors():
        record = service.log_feedback(form.values(), user)
    db.session.commit()
    response = jsonify(feedback_detail_json(record))
    response.status_code = 201
    return response


def get_feedback(feedback_id: int) -> Any:
    """One record with its handling (404 outside your scope)."""
    record = service.get_feedback_or_404(feedback_id, current_api_user())
    return jsonify(feedback_detail_json(record))


def act_on_feedback(feedback_id: int) -> Any:
    """Handle a record: respond (first_response), record_cause (cause, action_taken),
    confirm (customer_confirmed_by, customer_confirmation), raise_corrective (title,
    owner_id, due_on, description), close. Send ``version`` to refuse acting on a record
    that changed since you read it (409)."""
    user = current_api_user()
    record = service.get_feedback_or_404(feedback_id, user, "write")
    form = validated(FeedbackActionForm, json_body())
    with service_errors(_("Someone changed this record meanwhile; read it again.")):
        service.act(record, user, form.action.data, form.data_for_service())
        db.session.commit()
    return jsonify(feedback_detail_json(service.get_feedback_or_404(feedback_id, user)))


def routes() -> list[ApiRoute]:
    """The after-sales resources, mounted under /api/v1/sales."""
    return [
        ApiRoute(
            "/feedback",
            list_feedback,
            summary="Feedback and complaints in your scope",
            permission="sales.view",
            paginated=True,
            schema=FEEDBACK_SCHEMA,
            tag="sales",
        ),
        ApiRoute(
            "/feedback",
            create_feedback,
            methods=("POST",),
            summary="Log feedback or a complaint",
            permission="sales.edit",
            form=FeedbackForm,
            schema=FEEDBACK_DETAIL_SCHEMA,
            tag="sales",
        ),
        ApiRoute(
            "/feedback/<int:feedback_id>",
            get_feedback,
            summary="One feedback or complaint with its handling",
            permission="sales.view",
            schema=FEEDBACK_DETAIL_SCHEMA,
            tag="sales",
        ),
        ApiRoute(
            "/feedback/<int:feedback_id>/actions",
            act_on_feedback,
            methods=("POST",),
            summary="Handle feedback or a complaint: respond, record_cause, confirm, "
            "raise_corrective, close",
            permission="sales.edit",
            form=FeedbackActionForm,
            schema=FEEDBACK_DETAIL_SCHEMA,
            tag="sales",
        ),
    ]
