"""JSON resources of daily management: attendance (being built)."""

from __future__ import annotations

from portal.plugins import ApiRoute


def routes() -> list[ApiRoute]:
    """The attendance resources under /api/v1/daily."""
    return []
