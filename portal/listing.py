"""Paginated lists: every list in the portal goes through ``paginate`` so none is unbounded."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import current_app, request
from flask_sqlalchemy.pagination import Pagination

from .extensions import db


def paginate(statement: sa.Select, per_page: int | None = None, api: bool = False) -> Pagination:
    """One page of ``statement`` from ``?page=`` and ``?per_page=``, bounded by config."""
    maximum = current_app.config["API_MAX_PAGE_SIZE"] if api else 100
    return db.paginate(
        statement,
        page=request.args.get("page", 1, type=int),
        per_page=per_page
        or request.args.get("per_page", current_app.config["PAGE_SIZE"], type=int),
        max_per_page=maximum,
        error_out=False,
        count=True,
    )


def page_args(**overrides: Any) -> dict[str, Any]:
    """The current query string with some values replaced, for pager and filter links."""
    args = request.args.to_dict()
    args.update({key: value for key, value in overrides.items()})
    return {key: value for key, value in args.items() if value not in (None, "")}
