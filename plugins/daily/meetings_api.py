"""JSON resources of team meetings (P6.2): list, call and read meetings; list and record
their resolutions (each also a loop item).

Same scope, forms and messages as the pages: 422 with per-field messages, 404 for a
meeting one may not read, 403 for one that may be read but not run, 409 once the
minutes are published.
"""

from __future__ import annotations

from typing import Any

from flask import jsonify, request
from flask_babel import gettext as _

from portal.api import (
    DATE_SCHEMA,
    TIME_SCHEMA,
    ApiError,
    current_api_user,
    invalid,
    iso_day,
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

from . import meetings as service
from .meetings_forms import MeetingForm, ResolutionForm
from .models import MEETING_CADENCES, MEETING_STATUSES, Meeting, Resolution

RESOLUTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "meeting_id": {"type": "integer"},
        "text": {"type": "string"},
        "owner_id": {"type": "integer"},
        "owner_name": {"type": "string"},
        "due_on": DATE_SCHEMA,
        "closed": {"type": "boolean"},
        "loop_id": {"type": ["integer", "null"]},
        "created_at": TIME_SCHEMA,
    },
}
MEETING_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "title": {"type": "string"},
        "unit_id": {"type": ["integer", "null"]},
        "cadence": {"type": "string", "enum": list(MEETING_CADENCES)},
        "status": {"type": "string", "enum": list(MEETING_STATUSES)},
        "starts_at": TIME_SCHEMA,
        "ends_at": TIME_SCHEMA,
        "location": {"type": "string"},
        "materials_due_at": TIME_SCHEMA,
        "owner_id": {"type": "integer"},
        "owner_name": {"type": "string"},
        "version": {"type": "integer"},
    },
}
MEETING_DETAIL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        **MEETING_SCHEMA["properties"],
        "minutes": {"type": "string"},
        "agenda": {"type": "array", "items": {"type": "object"}},
        "attendees": {"type": "array", "items": {"type": "object"}},
        "materials": {"type": "array", "items": {"type": "object"}},
        "resolutions": {"type": "array", "items": RESOLUTION_SCHEMA},
    },
}


def meeting_json(meeting: Meeting) -> dict[str, Any]:
    """A meeting as the list shows it."""
    return {
        "id": meeting.id,
        "title": meeting.title,
        "unit_id": meeting.unit_id,
        "cadence": meeting.cadence,
        "status": meeting.status,
        "starts_at": iso_time(meeting.starts_at),
        "ends_at": iso_time(meeting.ends_at),
        "location": meeting.location,
        "materials_due_at": iso_time(meeting.materials_due_at),
        "owner_id": meeting.owner_id,
        "owner_name": meeting.owner.display_name if meeting.owner else "",
        "version": meeting.version_id,
    }


def resolution_json(resolution: Resolution) -> dict[str, Any]:
    """A resolution as the API shows it."""
    return {
        "id": resolution.id,
        "meeting_id": resolution.meeting_id,
        "text": resolution.text,
        "owner_id": resolution.owner_id,
        "owner_name": resolution.owner.display_name if resolution.owner else "",
        "due_on": iso_day(resolution.due_on),
        "closed": resolution.closed,
        "loop_id": resolution.loop_id,
        "created_at": iso_time(resolution.created_at),
    }


def meeting_detail_json(meeting: Meeting) -> dict[str, Any]:
    """A meeting with its agenda, attendees, materials, minutes and resolutions."""
    carried = service.resolutions_by_id(item.resolution_id for item in meeting.agenda)
    data = meeting_json(meeting)
    data["minutes"] = meeting.minutes
    data["agenda"] = [
        {
            "id": item.id,
            "position": item.position,
            "title": item.title,
            "presenter_id": item.presenter_id,
            "source": item.source,
            "resolution_id": item.resolution_id,
            "resolution_closed": carried[item.resolution_id].closed
            if item.resolution_id in carried
            else None,
            "notes": item.notes,
        }
        for item in meeting.agenda
    ]
    data["attendees"] = [
        {
            "user_id": row.user_id,
            "name": row.user.display_name,
            "status": row.status,
            "note": row.note,
        }
        for row in service.attendees_of(meeting)
    ]
    data["materials"] = [
        {
            "id": material.id,
            "agenda_item_id": material.agenda_item_id,
            "filename": material.filename,
            "content_type": material.content_type,
            "size": material.size,
            "uploaded_by_id": material.uploaded_by_id,
            "uploaded_at": iso_time(material.uploaded_at),
            "late": material.late,
        }
        for material in service.materials_of(meeting)
    ]
    data["resolutions"] = [resolution_json(row) for row in service.resolutions_of(meeting)]
    return data


def list_meetings() -> Any:
    """Meetings you may read (organised in your scope, or you are asked); filters:
    when (upcoming, past; default every one, newest first), unit_id, cadence, status."""
    statement = service.filter_meetings(
        service.meetings_for(current_api_user()), request.args, utcnow()
    )
    return page_response(paginate(statement, api=True), meeting_json)


AGENDA_KEYS = ("title", "presenter_id")


def _agenda(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``agenda`` of a body: a list of {title, presenter_id}."""
    rows = body.pop("agenda", None)
    if rows is None:
        return []
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise invalid({"agenda": [_("Use a list of objects with title and presenter_id.")]})
    for row in rows:
        unknown = sorted(set(row) - set(AGENDA_KEYS))
        if unknown:
            raise invalid({"agenda": [_("Unknown fields: %(names)s", names=", ".join(unknown))]})
    return rows


def create_meeting() -> Any:
    """Call a meeting of a team you lead. ``attendee_ids`` left out: everyone of the
    team; ``agenda``: a list of {title, presenter_id}."""
    user = current_api_user()
    body = dict(json_body())
    agenda = _agenda(body)
    attendees = body.get("attendee_ids")
    if isinstance(attendees, list):
        body["attendee_ids"] = [str(value) for value in attendees]
    form = validated(MeetingForm, body)
    values = {**form.values(), "agenda": agenda}
    if attendees is None:
        values["attendee_ids"] = None
    with service_errors():
        meeting = service.create_meeting(values, user)
        db.session.commit()
    response = jsonify(meeting_detail_json(meeting))
    response.status_code = 201
    return response


def get_meeting(meeting_id: int) -> Any:
    """One meeting with agenda, attendees, materials, minutes and resolutions."""
    meeting = service.get_meeting_or_404(meeting_id, current_api_user())
    return jsonify(meeting_detail_json(meeting))


def list_resolutions(meeting_id: int) -> Any:
    """The resolutions of a meeting you may read."""
    meeting = service.get_meeting_or_404(meeting_id, current_api_user())
    return jsonify({"items": [resolution_json(row) for row in service.resolutions_of(meeting)]})


def create_resolution(meeting_id: int) -> Any:
    """Record a resolution of a meeting you run: owner_id (an attendee or someone of
    your team), text, due_on (default from rules/meetings.yaml). A loop item is raised."""
    user = current_api_user()
    meeting = service.get_meeting_or_404(meeting_id, user, "write")
    form = validated(ResolutionForm, json_body())
    if form.owner_id.data is None:
        raise ApiError(422, "validation_failed", _("Choose who carries it out."))
    with service_errors():
        resolution = service.add_resolution(
            meeting, user, form.text.data or "", form.owner_id.data, form.due_on.data
        )
        db.session.commit()
    response = jsonify(resolution_json(resolution))
    response.status_code = 201
    return response


def routes() -> list[ApiRoute]:
    """The meetings resources under /api/v1/daily."""
    return [
        ApiRoute(
            "/meetings",
            list_meetings,
            ("GET",),
            summary="Team meetings you may read",
            permission="daily.meet",
            schema=MEETING_SCHEMA,
            paginated=True,
            tag="daily",
        ),
        ApiRoute(
            "/meetings",
            create_meeting,
            ("POST",),
            summary="Call a team meeting (agenda: a list of {title, presenter_id})",
            permission="daily.run_meetings",
            form=MeetingForm,
            schema=MEETING_DETAIL_SCHEMA,
            tag="daily",
        ),
        ApiRoute(
            "/meetings/<int:meeting_id>",
            get_meeting,
            ("GET",),
            summary="One team meeting",
            permission="daily.meet",
            schema=MEETING_DETAIL_SCHEMA,
            tag="daily",
        ),
        ApiRoute(
            "/meetings/<int:meeting_id>/resolutions",
            list_resolutions,
            ("GET",),
            summary="The resolutions of a meeting",
            permission="daily.meet",
            schema=RESOLUTION_SCHEMA,
            tag="daily",
        ),
        ApiRoute(
            "/meetings/<int:meeting_id>/resolutions",
            create_resolution,
            ("POST",),
            summary="Record a resolution (raises a loop item for its owner)",
            permission="daily.run_meetings",
            form=ResolutionForm,
            schema=RESOLUTION_SCHEMA,
            tag="daily",
        ),
    ]
