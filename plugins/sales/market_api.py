"""JSON resources of the sales plugin: market (placeholder until written)."""

from __future__ import annotations

from portal.plugins import ApiRoute


def routes() -> list[ApiRoute]:
    """The market resources, mounted under /api/v1/sales."""
    return []
