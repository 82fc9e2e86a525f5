"""The helpers every daily-management template uses, registered once for the whole app
by the ``daily_templates`` blueprint (no routes): vocabulary labels, money, half days
and times of day. A part's own helpers stay in its views module."""

from __future__ import annotations

from flask import Blueprint

from portal.money import format_money

from .vocabulary import label

bp = Blueprint("daily_templates", __name__)


@bp.app_template_global()
def daily_label(group: str, code: str | None) -> str:
    """A code of the daily vocabulary (a status, kind, category ...) in the reader's
    language; an unknown code as written."""
    return label(group, code)


@bp.app_template_global()
def daily_money(cents: int | None, currency: bool = False) -> str:
    """Fen as yuan with thousands separators, 1,234.50 (``currency``: ¥1,234.50)."""
    return ("¥" if currency else "") + format_money(cents)


@bp.app_template_global()
def daily_days(half_days: int | None) -> str:
    """Half days as days: 3 -> "1.5", 4 -> "2"."""
    value = (half_days or 0) / 2
    return f"{value:g}"


@bp.app_template_global()
def daily_clock(minute: int | None) -> str:
    """Minutes after midnight as a time of day: 545 -> "09:05"; none as a dash."""
    if minute is None:
        return "—"
    return f"{minute // 60:02d}:{minute % 60:02d}"
