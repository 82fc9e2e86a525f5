"""Fixtures come from ``portal.testing`` (a pytest plugin shipped with the portal, so
third-party plugins test the same way). This file only adds the suite's own helpers."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def org(make_person: Any, make_unit: Any) -> dict[str, int]:
    """A small organisation for scope tests (P2.1):

    company (manager) > East (sup_east) > Shanghai (li, wang)
                      > South (sup_south) > Guangzhou (zhao)
    plus an admin and a read-only auditor.
    """
    ids: dict[str, int] = {}
    ids["manager"] = make_person("manager", roles=["manager"])
    ids["company"] = make_unit("Company", "company", leader=ids["manager"])
    ids["sup_east"] = make_person("sup_east", roles=["supervisor"])
    ids["sup_south"] = make_person("sup_south", roles=["supervisor"])
    ids["east"] = make_unit("East", "region", parent=ids["company"], leader=ids["sup_east"])
    ids["south"] = make_unit("South", "region", parent=ids["company"], leader=ids["sup_south"])
    ids["shanghai"] = make_unit("Shanghai", "team", parent=ids["east"])
    ids["guangzhou"] = make_unit("Guangzhou", "team", parent=ids["south"])
    ids["li"] = make_person("li", roles=["salesperson"], unit=ids["shanghai"])
    ids["wang"] = make_person("wang", roles=["salesperson"], unit=ids["shanghai"])
    ids["zhao"] = make_person("zhao", roles=["salesperson"], unit=ids["guangzhou"])
    ids["admin"] = make_person("admin", roles=["admin"], unit=ids["company"])
    ids["auditor"] = make_person("auditor", roles=["auditor"], unit=ids["company"])
    return ids
