"""JSON resources of the sales plugin: each part declares its own in ``<part>_api.py``;
this gathers them for ``portal_api_routes``."""

from __future__ import annotations

from portal.plugins import ApiRoute

from . import (
    aftersales_api,
    contracts_api,
    customers_api,
    imports_api,
    market_api,
    pipeline_api,
    quotes_api,
    reports_api,
)

PARTS = (
    customers_api,
    imports_api,
    market_api,
    pipeline_api,
    quotes_api,
    contracts_api,
    aftersales_api,
    reports_api,
)


def api_routes() -> list[ApiRoute]:
    """Every sales resource, part by part."""
    return [route for part in PARTS for route in part.routes()]
