"""Pages of daily management: expense_reports (being built)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint(
    "daily_expense_reports",
    __name__,
    url_prefix="/daily/expense-reports",
    template_folder="templates",
)
