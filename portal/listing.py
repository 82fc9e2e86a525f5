"""Paginated lists: every list in the portal goes through ``paginate`` so none is unbounded."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import current_app, request
from flask_sqlalchemy.pagination import Pagination

from .extensions import db

MAX_PAGE = 1_000_000  # beyond any real list; a larger number would overflow the database
# Ids a URL, filter or body may name: what a database id column (INTEGER) holds;
# ``<int:id>`` in URLs is bounded alike. A larger number is no record, and PostgreSQL
# would refuse it ("integer out of range") instead of finding nothing.
MAX_ID = 2**31


def like_pattern(text: str) -> str:
    """``%text%`` for LIKE with the user's own % and _ taken literally (escape char \\)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def id_arg(value: Any) -> int | None:
    """A record id from a query string, a form or a JSON body (an int, or text of
    digits): a whole number from 1 to below ``MAX_ID``, else None. A bad value is no
    id, so a filter given one narrows nothing and nothing fails."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    else:
        text = "" if value is None else str(value).strip()
        if not (text.isascii() and text.isdigit()):
            return None
        number = int(text)
    return number if 0 < number < MAX_ID else None


def paginate(statement: sa.Select, per_page: int | None = None, api: bool = False) -> Pagination:
    """One page of ``statement`` from ``?page=`` and ``?per_page=``, bounded by config."""
    maximum = current_app.config["API_MAX_PAGE_SIZE"] if api else 100
    page = request.args.get("page", 1, type=int) or 1
    return db.paginate(
        statement,
        page=min(max(page, 1), MAX_PAGE),
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
