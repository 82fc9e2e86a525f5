"""JSON resources of the sales plugin: aftersales (placeholder until written)."""

from __future__ import annotations

from portal.plugins import ApiRoute


def routes() -> list[ApiRoute]:
    """The aftersales resources, mounted under /api/v1/sales."""
    return []
