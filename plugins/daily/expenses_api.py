"""JSON resources of daily management: expenses (being built)."""

from __future__ import annotations

from portal.plugins import ApiRoute


def routes() -> list[ApiRoute]:
    """The expenses resources under /api/v1/daily."""
    return []
