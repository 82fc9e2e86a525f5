"""JSON resources of daily management: leave (being built)."""

from __future__ import annotations

from portal.plugins import ApiRoute


def routes() -> list[ApiRoute]:
    """The leave resources under /api/v1/daily."""
    return []
