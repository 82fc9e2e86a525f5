"""Pages of daily management: attendance (being built)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint(
    "daily_attendance", __name__, url_prefix="/daily/attendance", template_folder="templates"
)
