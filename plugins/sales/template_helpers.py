"""The helpers every sales template uses, registered once for the whole app by the
``sales_templates`` blueprint (no routes): vocabulary labels, whether the viewer may
change a record, links to other parts, money and percentages. A part's own helpers
(its records for another part's page, its badges) stay in its views module."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, url_for
from flask_login import current_user
from werkzeug.routing import BuildError

from portal.money import format_money, percent

from .common import may_edit
from .vocabulary import label

bp = Blueprint("sales_templates", __name__)


@bp.app_template_global()
def sales_label(group: str, code: str | None) -> str:
    """A code of the sales vocabulary (a status, stage, kind, category, field ...) in
    the reader's language; an unknown code as written."""
    return label(group, code)


@bp.app_template_global()
def sales_may_edit(record: Any) -> bool:
    """Whether the viewer may change ``record`` (``common.may_edit``): to show the
    buttons and forms that change it, or make a record for it."""
    return bool(current_user.is_authenticated and may_edit(record, current_user))


@bp.app_template_global()
def sales_link(endpoint: str, **values: Any) -> str | None:
    """``url_for``, or None when the endpoint does not exist (a part left out of the
    installation): the page then shows the name without a link instead of breaking."""
    try:
        return url_for(endpoint, **values)
    except BuildError:
        return None


@bp.app_template_global()
def sales_money(cents: int | None, currency: bool = False) -> str:
    """Fen as yuan with thousands separators, 1,234,567.50 (with ``currency``:
    ¥1,234,567.50)."""
    return ("¥" if currency else "") + format_money(cents)


@bp.app_template_global()
def sales_percent(basis_points: int | None) -> str:
    """A stored percentage (basis points) with two decimals: 1250 -> 12.50."""
    return f"{percent(basis_points)}"


@bp.app_template_global()
def sales_share(share: float | None, decimals: int = 1) -> str:
    """A share (0..1: a win rate, a conversion) as a percentage, ``12.5 %``, or a dash
    when it is undefined (nothing to divide by)."""
    return "—" if share is None else f"{share * 100:.{decimals}f} %"
