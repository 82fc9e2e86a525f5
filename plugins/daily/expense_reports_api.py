"""JSON resources of daily management: expense_reports (being built)."""

from __future__ import annotations

from portal.plugins import ApiRoute


def routes() -> list[ApiRoute]:
    """The expense_reports resources under /api/v1/daily."""
    return []
