"""JSON resources of the leave area (P6.1), under ``/api/v1/daily``: leave requests
(yours, and those of your scope when you oversee attendance), asking for leave,
cancelling, balances and leave types.

The same services, scopes and messages as the pages: 422 with per-field messages (a
request the rule file rejects is not saved and says why under the field to change), 404
outside the caller's scope, 403 not allowed, 409 when the request is not in a state for
the change. Documents (a hospital certificate) are attached on the page.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm
from flask import jsonify, request
from flask_babel import gettext as _

from portal.api import (
    DATE_SCHEMA,
    ApiError,
    current_api_user,
    iso_day,
    iso_time,
    json_body,
    page_response,
    service_errors,
    validated,
)
from portal.auth.models import User
from portal.extensions import db
from portal.listing import id_arg, paginate
from portal.loops.models import ApprovalRequest
from portal.plugins import ApiRoute
from portal.scoping import visible_owner_ids

from . import leave as service
from .calendar import local_today
from .leave_forms import LeaveRequestApiForm
from .models import HALVES, REQUEST_STATUSES, LeaveRequest, LeaveType

LEAVE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "owner_id": {"type": "integer"},
        "owner": {"type": "string"},
        "leave_type": {"type": "string"},
        "starts_on": DATE_SCHEMA,
        "start_half": {"type": "string", "enum": list(HALVES)},
        "ends_on": DATE_SCHEMA,
        "end_half": {"type": "string", "enum": list(HALVES)},
        "days": {"type": "string", "description": "Working days, halves as .5"},
        "reason": {"type": "string"},
        "status": {"type": "string", "enum": list(REQUEST_STATUSES)},
        "approval": {
            "type": ["object", "null"],
            "properties": {
                "id": {"type": "integer"},
                "status": {"type": "string"},
                "rule": {"type": "string"},
                "url": {"type": "string"},
            },
        },
        "documents": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "filename": {"type": "string"},
                    "size": {"type": "integer"},
                    "url": {"type": "string"},
                },
            },
        },
        "created_at": {"type": "string", "format": "date-time"},
        "decided_at": {"type": ["string", "null"], "format": "date-time"},
    },
}
BALANCE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "leave_type": {"type": "string"},
        "year": {"type": "integer"},
        "granted_days": {"type": "string"},
        "used_days": {"type": "string"},
        "pending_days": {"type": "string"},
        "available_days": {"type": "string"},
    },
}
TYPE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "code": {"type": "string"},
        "name_en": {"type": "string"},
        "name_zh": {"type": "string"},
        "paid": {"type": "boolean"},
        "uses_balance": {"type": "boolean"},
        "yearly_days": {"type": "string"},
        "active": {"type": "boolean"},
    },
}


def _days(half_days: int) -> str:
    return f"{half_days / 2:g}"


def leave_json(leave: LeaveRequest, approval: Any = False) -> dict[str, Any]:
    """A request as the API shows it (days as text, halves as .5); ``approval`` when
    the caller has loaded it already (a list loads all of a page's at once)."""
    if approval is False:
        approval = service.approval_of(leave)
    return {
        "id": leave.id,
        "owner_id": leave.owner_id,
        "owner": leave.owner.display_name,
        "leave_type": leave.leave_type,
        "starts_on": iso_day(leave.starts_on),
        "start_half": leave.start_half,
        "ends_on": iso_day(leave.ends_on),
        "end_half": leave.end_half,
        "days": _days(leave.half_days),
        "reason": leave.reason,
        "status": leave.status,
        "approval": None
        if approval is None
        else {
            "id": approval.id,
            "status": approval.status,
            "rule": approval.rule_id,
            "url": f"/approvals/{approval.id}",
        },
        "documents": [
            {
                "id": doc.id,
                "filename": doc.filename,
                "size": doc.size,
                "url": f"/daily/leave/{leave.id}/documents/{doc.id}",
            }
            for doc in leave.documents
        ],
        "created_at": iso_time(leave.created_at),
        "decided_at": iso_time(leave.decided_at),
    }


def _reader() -> Any:
    user = current_api_user()
    if not (user.can("daily.attend") or user.can("daily.view_attendance")):
        raise ApiError(403, "forbidden", _("You may not see leave."))
    return user


def _changed_text() -> str:
    return _("Someone changed this leave request meanwhile; read it again.")


def _day_arg(name: str) -> date | None:
    text = request.args.get(name, "")
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ApiError(400, "bad_request", _("Write %(name)s as YYYY-MM-DD.", name=name)) from None


def list_requests() -> Any:
    """Your requests, and with ``daily.view_attendance`` those of your scope; filters:
    status, owner, from and to (requests touching those days), newest first."""
    user = _reader()
    statement = service.readable_requests(user)
    status = request.args.get("status", "")
    if status:
        if status not in REQUEST_STATUSES:
            raise ApiError(400, "bad_request", _("Unknown status."))
        statement = statement.where(LeaveRequest.status == status)
    owner_id = id_arg(request.args.get("owner"))
    if owner_id:
        statement = statement.where(LeaveRequest.owner_id == owner_id)
    first, last = _day_arg("from"), _day_arg("to")
    if first:
        statement = statement.where(LeaveRequest.ends_on >= first)
    if last:
        statement = statement.where(LeaveRequest.starts_on <= last)
    statement = statement.order_by(LeaveRequest.starts_on.desc(), LeaveRequest.id.desc())
    page = paginate(statement, api=True)
    wanted = {item.approval_id for item in page.items if item.approval_id}
    found = {
        row.id: row
        for row in db.session.scalars(
            sa.select(ApprovalRequest)
            .where(ApprovalRequest.id.in_(wanted))
            .options(sa.orm.lazyload("*"))
        )
    }
    return page_response(page, lambda item: leave_json(item, found.get(item.approval_id)))


def create_request() -> Any:
    """Ask for leave; the rule file in force routes it (or refuses it: 422, not saved)."""
    user = current_api_user()
    types = [(kind.code, kind.code) for kind in service.leave_types()]
    form = validated(LeaveRequestApiForm, json_body(), types=types)
    with service_errors(_changed_text()):
        leave = service.create_request(form.data, user)
        db.session.commit()
    response = jsonify(leave_json(leave))
    response.status_code = 201
    return response


def get_request(request_id: int) -> Any:
    """One request with its approval and documents (404 outside your scope)."""
    return jsonify(leave_json(service.get_request_or_404(request_id, _reader())))


def cancel_request(request_id: int) -> Any:
    """Withdraw a pending request, or cancel approved leave not yet started."""
    user = _reader()
    leave = service.get_request_or_404(request_id, user)
    with service_errors(_changed_text()):
        service.cancel_request(leave, user)
        db.session.commit()
    return jsonify(leave_json(leave))


def list_balances() -> Any:
    """Balances of a year (default this year): yours, or ``owner``'s within your scope
    when you oversee attendance."""
    user = _reader()
    year = request.args.get("year", type=int) or local_today().year
    if not 2000 <= year <= 2100:
        raise ApiError(400, "bad_request", _("Choose a year from 2000 to 2100."))
    owner_id = id_arg(request.args.get("owner")) or user.id
    if owner_id != user.id and not (service.sees_team(user) and _in_scope(owner_id, user)):
        raise ApiError(404, "not_found", _("Not found."))
    lines = service.balances_for(owner_id, year)
    db.session.commit()  # default types seeded on first use
    return jsonify(
        items=[
            {
                "leave_type": line.kind.code,
                "year": year,
                "granted_days": _days(line.granted),
                "used_days": _days(line.used),
                "pending_days": _days(line.pending),
                "available_days": _days(line.available),
            }
            for line in lines
        ]
    )


def _in_scope(owner_id: int, user: Any) -> bool:
    """Whether ``owner_id``'s records are in ``user``'s read scope."""
    owners = visible_owner_ids(user)
    statement = sa.select(User.id).where(User.id == owner_id)
    if owners is not None:
        statement = statement.where(User.id.in_(owners))
    return db.session.scalar(statement) is not None


def list_types() -> Any:
    """The leave types on offer."""
    _reader()
    kinds = service.leave_types()
    db.session.commit()
    return jsonify(items=[type_json(kind) for kind in kinds])


def type_json(kind: LeaveType) -> dict[str, Any]:
    return {
        "code": kind.code,
        "name_en": kind.name_en,
        "name_zh": kind.name_zh,
        "paid": kind.paid,
        "uses_balance": kind.uses_balance,
        "yearly_days": _days(kind.yearly_half_days),
        "active": kind.active,
    }


def routes() -> list[ApiRoute]:
    """The leave resources under /api/v1/daily."""
    tag = "daily leave"
    return [
        ApiRoute(
            "/leave-requests",
            list_requests,
            summary="Leave requests: yours, and your scope's when you oversee attendance",
            paginated=True,
            schema=LEAVE_SCHEMA,
            tag=tag,
        ),
        ApiRoute(
            "/leave-requests",
            create_request,
            methods=("POST",),
            summary="Ask for leave (rules/leave_approval.yaml routes or refuses it)",
            permission="daily.attend",
            form=LeaveRequestApiForm,
            schema=LEAVE_SCHEMA,
            tag=tag,
        ),
        ApiRoute(
            "/leave-requests/<int:request_id>",
            get_request,
            summary="One leave request with its approval and documents",
            schema=LEAVE_SCHEMA,
            tag=tag,
        ),
        ApiRoute(
            "/leave-requests/<int:request_id>/cancel",
            cancel_request,
            methods=("POST",),
            summary="Withdraw a pending request or cancel leave not yet started",
            schema=LEAVE_SCHEMA,
            tag=tag,
        ),
        ApiRoute(
            "/leave-balances",
            list_balances,
            summary="Leave balances of a year (yours, or owner= in your scope)",
            schema=BALANCE_SCHEMA,
            tag=tag,
        ),
        ApiRoute(
            "/leave-types",
            list_types,
            summary="The leave types on offer",
            schema=TYPE_SCHEMA,
            tag=tag,
        ),
    ]
