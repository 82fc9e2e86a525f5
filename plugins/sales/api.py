"""JSON resources of the sales plugin (placeholder until written)."""

from __future__ import annotations

from portal.plugins import ApiRoute


def api_routes() -> list[ApiRoute]:
    return []
