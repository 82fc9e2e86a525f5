"""Pages of daily management: expenses (being built)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint(
    "daily_expenses", __name__, url_prefix="/daily/expenses", template_folder="templates"
)
