"""JSON resources of the sales plugin: contracts (placeholder until written)."""

from __future__ import annotations

from portal.plugins import ApiRoute


def routes() -> list[ApiRoute]:
    """The contracts resources, mounted under /api/v1/sales."""
    return []
