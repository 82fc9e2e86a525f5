"""JSON resources of daily management: meetings (being built)."""

from __future__ import annotations

from portal.plugins import ApiRoute


def routes() -> list[ApiRoute]:
    """The meetings resources under /api/v1/daily."""
    return []
