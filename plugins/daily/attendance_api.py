"""JSON resources of attendance (P6.1), under ``/api/v1/daily``: checking in and out,
my days, missed-punch corrections and the monthly report.

The same services, scopes and messages as the pages: 422 with per-field messages, 404
for a person outside the caller's scope, 409 when the state refuses (checking in twice,
checking out before checking in, a locked month).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import jsonify, request
from flask_babel import gettext as _

from portal.api import (
    DATE_SCHEMA,
    TIME_SCHEMA,
    ApiError,
    current_api_user,
    iso_day,
    iso_time,
    json_body,
    page_response,
    service_errors,
    validated,
)
from portal.extensions import db
from portal.listing import paginate
from portal.loops.service import local_today
from portal.plugins import ApiRoute

from . import attendance as service
from .attendance_forms import CorrectionForm, PunchForm
from .models import AttendanceDay, PunchCorrection

DAY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "owner_id": {"type": "integer"},
        "day": DATE_SCHEMA,
        "check_in_at": TIME_SCHEMA,
        "check_out_at": TIME_SCHEMA,
        "check_in_note": {"type": "string"},
        "check_out_note": {"type": "string"},
        "corrected": {"type": "boolean"},
        "status": {"type": "string"},
        "severity": {"type": "string"},
        "penalty_points": {"type": "integer"},
        "absence_days": {"type": "number"},
        "minutes_late": {"type": "integer"},
        "minutes_early": {"type": "integer"},
        "worked_minutes": {"type": "integer"},
        "rule_version": {"type": ["integer", "null"]},
    },
}
CORRECTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "day": DATE_SCHEMA,
        "kind": {"type": "string", "enum": ["in", "out"]},
        "time": {"type": "string"},
        "reason": {"type": "string"},
        "status": {"type": "string"},
        "approval_id": {"type": ["integer", "null"]},
        "created_at": TIME_SCHEMA,
    },
}
REPORT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "person_id": {"type": "integer"},
        "name": {"type": "string"},
        "month": {"type": "string"},
        "workdays": {"type": "integer"},
        "late": {"type": "integer"},
        "left_early": {"type": "integer"},
        "missed_punches": {"type": "integer"},
        "absent_days": {"type": "number"},
        "days_on_leave": {"type": "integer"},
        "penalty_points": {"type": "integer"},
    },
}


def day_json(row: AttendanceDay) -> dict[str, Any]:
    """One day as the API shows it."""
    return {
        "id": row.id,
        "owner_id": row.owner_id,
        "day": iso_day(row.day),
        "check_in_at": iso_time(row.check_in_at),
        "check_out_at": iso_time(row.check_out_at),
        "check_in_note": row.check_in_note,
        "check_out_note": row.check_out_note,
        "corrected": row.corrected,
        "status": row.status,
        "severity": row.severity,
        "penalty_points": row.penalty_points,
        "absence_days": row.absence_half_days / 2,
        "minutes_late": row.minutes_late,
        "minutes_early": row.minutes_early,
        "worked_minutes": row.worked_minutes,
        "rule_version": row.rule_version,
    }


def correction_json(item: PunchCorrection) -> dict[str, Any]:
    """One correction as the API shows it."""
    return {
        "id": item.id,
        "day": iso_day(item.day),
        "kind": item.kind,
        "time": f"{item.punch_minute // 60:02d}:{item.punch_minute % 60:02d}",
        "reason": item.reason,
        "status": item.status,
        "approval_id": item.approval_id,
        "created_at": iso_time(item.created_at),
    }


def _month() -> tuple[int, int]:
    found = service.parse_month(request.args.get("month"), local_today())
    if found is None:
        raise ApiError(
            422,
            "validation_failed",
            _("Some fields are not valid."),
            {"month": [_("Give the month as YYYY-MM.")]},
        )
    return found


def punch() -> Any:
    """Check in (``kind`` in) or out now; 409 when refused."""
    form = validated(PunchForm, json_body())
    with service_errors():
        row = service.punch(current_api_user(), form.kind.data, form.note.data or "")
        db.session.commit()
    response = jsonify(day_json(row))
    response.status_code = 201
    return response


def my_days() -> Any:
    """My days of a month (``month`` YYYY-MM, default this month), oldest first."""
    year, month = _month()
    first, last = service.month_bounds(year, month)
    statement = (
        sa.select(AttendanceDay)
        .where(
            AttendanceDay.owner_id == current_api_user().id, AttendanceDay.day.between(first, last)
        )
        .order_by(AttendanceDay.day)
    )
    return page_response(paginate(statement, api=True), day_json)


def list_corrections() -> Any:
    """My missed-punch corrections, newest day first."""
    statement = (
        sa.select(PunchCorrection)
        .where(PunchCorrection.owner_id == current_api_user().id)
        .order_by(PunchCorrection.day.desc(), PunchCorrection.id.desc())
    )
    return page_response(paginate(statement, api=True), correction_json)


def create_correction() -> Any:
    """Ask to add a missed punch (``day``, ``kind``, ``time`` HH:MM, ``reason``)."""
    form = validated(CorrectionForm, json_body())
    with service_errors(renamed={"minute": "time"}):
        item = service.request_correction(
            current_api_user(), form.day.data, form.kind.data, form.time.data, form.reason.data
        )
        db.session.commit()
    response = jsonify(correction_json(item))
    response.status_code = 201
    return response


def team_report() -> Any:
    """Per person in your scope: the month's counts (one grouped query)."""
    year, month = _month()
    period = service.month_text(year, month)

    def row_json(row: Any) -> dict[str, Any]:
        return {
            "person_id": row.owner_id,
            "name": row.name,
            "month": period,
            "workdays": int(row.workdays),
            "late": int(row.late),
            "left_early": int(row.early),
            "missed_punches": int(row.missed),
            "absent_days": int(row.absence_half_days) / 2,
            "days_on_leave": int(row.leave),
            "penalty_points": int(row.points),
        }

    viewer = current_api_user()
    page = paginate(service.team_people(viewer, year, month), api=True)
    rows = {row.owner_id: row for row in service.team_rows(list(page.items), year, month, viewer)}
    return page_response(page, lambda person: row_json(rows[person.id]))


def person_report(person_id: int) -> Any:
    """One person's days of a month (404 outside your scope; yourself always)."""
    year, month = _month()
    person = service.reachable_person(current_api_user(), person_id)
    if person is None:
        raise ApiError(404, "not_found", _("Not found."))
    first, last = service.month_bounds(year, month)
    statement = (
        sa.select(AttendanceDay)
        .where(AttendanceDay.owner_id == person.id, AttendanceDay.day.between(first, last))
        .order_by(AttendanceDay.day)
    )
    return page_response(paginate(statement, api=True), day_json)


def routes() -> list[ApiRoute]:
    """The attendance resources under /api/v1/daily."""
    tag = "daily attendance"
    return [
        ApiRoute(
            "/check-ins",
            punch,
            methods=("POST",),
            summary="Check in or out now (a second check-in is refused: 409)",
            permission="daily.attend",
            form=PunchForm,
            schema=DAY_SCHEMA,
            tag=tag,
        ),
        ApiRoute(
            "/check-ins",
            my_days,
            summary="My days of a month (month=YYYY-MM)",
            permission="daily.attend",
            paginated=True,
            schema=DAY_SCHEMA,
            tag=tag,
        ),
        ApiRoute(
            "/punch-corrections",
            list_corrections,
            summary="My missed-punch corrections",
            permission="daily.attend",
            paginated=True,
            schema=CORRECTION_SCHEMA,
            tag=tag,
        ),
        ApiRoute(
            "/punch-corrections",
            create_correction,
            methods=("POST",),
            summary="Ask to add a missed punch (rules/punch_correction.yaml)",
            permission="daily.attend",
            form=CorrectionForm,
            schema=CORRECTION_SCHEMA,
            tag=tag,
        ),
        ApiRoute(
            "/attendance-report",
            team_report,
            summary="The month per person in your scope (month=YYYY-MM)",
            permission="daily.view_attendance",
            paginated=True,
            schema=REPORT_SCHEMA,
            tag=tag,
        ),
        ApiRoute(
            "/attendance-report/<int:person_id>",
            person_report,
            summary="One person's days of a month (month=YYYY-MM; yourself or your scope)",
            permission=None,
            paginated=True,
            schema=DAY_SCHEMA,
            tag=tag,
        ),
    ]
