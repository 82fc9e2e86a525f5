"""JSON resources of daily management: each part declares its own in
``<part>_api.py``; this gathers them for ``portal_api_routes``."""

from __future__ import annotations

from portal.plugins import ApiRoute

from . import attendance_api, expense_reports_api, expenses_api, leave_api, meetings_api

PARTS = (attendance_api, leave_api, meetings_api, expenses_api, expense_reports_api)


def api_routes() -> list[ApiRoute]:
    """Every daily-management resource, part by part."""
    return [route for part in PARTS for route in part.routes()]
