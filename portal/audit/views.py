"""The audit log page: filterable by table, record, person, action and date."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask import Blueprint, current_app, render_template, request
from flask_babel import lazy_gettext as _l

from ..auth.permissions import require_permission
from ..listing import paginate
from .models import AuditEvent

bp = Blueprint("audit", __name__, url_prefix="/admin/audit")

ACTIONS = ("create", "update", "delete", "bulk_update", "bulk_delete", "export")
ACTION_LABELS = {
    "create": _l("created"),
    "update": _l("changed"),
    "delete": _l("deleted"),
    "bulk_update": _l("changed in bulk"),
    "bulk_delete": _l("deleted in bulk"),
    "export": _l("exported"),
}


def _date(value: str | None) -> datetime | None:
    """Midnight of a YYYY-MM-DD day in the portal's time zone (the one pages show times in)."""
    try:
        day = datetime.strptime(value or "", "%Y-%m-%d")
    except ValueError:
        return None
    if not 1900 <= day.year <= 9000:
        return None
    zone = ZoneInfo(current_app.config.get("BABEL_DEFAULT_TIMEZONE") or "UTC")
    return day.replace(tzinfo=zone).astimezone(UTC)


def filtered_events(args: Any) -> tuple[sa.Select, dict[str, Any]]:
    """The audit query for filter arguments (shared by the page and the API)."""
    statement = sa.select(AuditEvent).order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
    filters: dict[str, Any] = {}
    table = (args.get("table") or "").strip()[:120]
    if table:
        statement = statement.where(AuditEvent.table_name == table)
        filters["table"] = table
    record = (args.get("record") or "").strip()[:120]
    if record:
        statement = statement.where(AuditEvent.record_id == record)
        filters["record"] = record
    actor = (args.get("actor") or "").strip()[:120]
    if actor:
        statement = statement.where(AuditEvent.actor == actor)
        filters["actor"] = actor
    action = args.get("action") or ""
    if action in ACTIONS:
        statement = statement.where(AuditEvent.action == action)
        filters["action"] = action
    since = _date(args.get("since"))
    if since:
        statement = statement.where(AuditEvent.at >= since)
        filters["since"] = args.get("since")
    until = _date(args.get("until"))
    if until:
        statement = statement.where(AuditEvent.at < until + timedelta(days=1))
        filters["until"] = args.get("until")
    return statement, filters


@bp.get("/")
@require_permission("core.audit.read")
def index() -> Any:
    """Newest first, paginated."""
    statement, filters = filtered_events(request.args)
    page = paginate(statement)
    return render_template(
        "admin/audit.html", page=page, filters=filters, actions=ACTIONS, action_labels=ACTION_LABELS
    )
