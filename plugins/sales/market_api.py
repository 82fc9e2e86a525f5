"""JSON resources of market research (P3.1.1): list and record notes, the summary.

Same scope, form and messages as the pages: 422 with per-field messages, 404 for a
note outside one's scope, 403 for one that may be read but not changed.
"""

from __future__ import annotations

from typing import Any

from flask import jsonify, request

from portal.api import (
    current_api_user,
    iso_time,
    json_body,
    page_response,
    service_errors,
    validated,
)
from portal.extensions import db
from portal.listing import paginate
from portal.plugins import ApiRoute

from . import market
from .market_forms import MarketNoteForm
from .models import MARKET_NOTE_KINDS, MarketNote

NOTE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "kind": {"type": "string", "enum": list(MARKET_NOTE_KINDS)},
        "industry": {"type": "string"},
        "region": {"type": "string"},
        "competitor": {"type": "string"},
        "title": {"type": "string"},
        "body": {"type": "string"},
        "observed_on": {"type": "string", "format": "date"},
        "owner_id": {"type": "integer"},
        "owner_name": {"type": "string"},
        "created_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"},
    },
}
SUMMARY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "since": {"type": "string", "format": "date"},
        "until": {"type": "string", "format": "date"},
        "days": {"type": "integer"},
        "total": {"type": "integer"},
        "by_kind": {"type": "object", "additionalProperties": {"type": "integer"}},
        "by_industry_region": {"type": "array", "items": {"type": "object"}},
        "by_competitor": {"type": "array", "items": {"type": "object"}},
    },
}


def note_json(note: MarketNote) -> dict[str, Any]:
    """A note as the API shows it."""
    return {
        "id": note.id,
        "kind": note.kind,
        "industry": note.industry,
        "region": note.region,
        "competitor": note.competitor,
        "title": note.title,
        "body": note.body,
        "observed_on": note.observed_on.isoformat(),
        "owner_id": note.owner_id,
        "owner_name": note.owner.display_name if note.owner else "",
        "created_at": iso_time(note.created_at),
        "updated_at": iso_time(note.updated_at),
    }


def list_notes() -> Any:
    """Market notes in your scope, newest observation first; filters: kind, industry,
    region, competitor, q, since, until (YYYY-MM-DD)."""
    statement = market.filter_notes(market.notes_for(current_api_user()), request.args)
    statement = statement.order_by(MarketNote.observed_on.desc(), MarketNote.id.desc())
    return page_response(paginate(statement, api=True), note_json)


def create_note() -> Any:
    """Record a market note (yours)."""
    user = current_api_user()
    form = validated(MarketNoteForm, json_body())
    with service_errors():
        note = market.create_note(form.values(), user)
    db.session.commit()
    response = jsonify(note_json(note))
    response.status_code = 201
    return response


def get_note(note_id: int) -> Any:
    """One market note."""
    return jsonify(note_json(market.get_note_or_404(note_id, current_api_user())))


def delete_note(note_id: int) -> Any:
    """Delete a note you may change."""
    user = current_api_user()
    note = market.get_note_or_404(note_id, user, "write")
    market.delete_note(note, user)
    db.session.commit()
    return "", 204


def get_summary() -> Any:
    """Counts by kind, industry x region and competitor over ``days`` (30, 90, 180 or
    365; default 90), within your scope."""
    days = market.period_days(request.args.get("days"))
    return jsonify(market.summary(current_api_user(), days).as_json())


def routes() -> list[ApiRoute]:
    """The market resources, mounted under /api/v1/sales."""
    return [
        ApiRoute(
            "/market-notes",
            list_notes,
            ("GET",),
            summary="Market and competitor notes in your scope",
            permission="sales.view",
            schema=NOTE_SCHEMA,
            paginated=True,
            tag="sales",
        ),
        ApiRoute(
            "/market-notes",
            create_note,
            ("POST",),
            summary="Record a market note",
            permission="sales.edit",
            form=MarketNoteForm,
            schema=NOTE_SCHEMA,
            tag="sales",
        ),
        ApiRoute(
            "/market-notes/summary",
            get_summary,
            ("GET",),
            summary="Market notes counted by industry, region and competitor",
            permission="sales.view_reports",
            schema=SUMMARY_SCHEMA,
            tag="sales",
        ),
        ApiRoute(
            "/market-notes/<int:note_id>",
            get_note,
            ("GET",),
            summary="One market note",
            permission="sales.view",
            schema=NOTE_SCHEMA,
            tag="sales",
        ),
        ApiRoute(
            "/market-notes/<int:note_id>",
            delete_note,
            ("DELETE",),
            summary="Delete a market note you may change",
            permission="sales.edit",
            tag="sales",
        ),
    ]
