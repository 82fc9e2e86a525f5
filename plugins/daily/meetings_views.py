"""Pages of daily management: meetings (being built)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint(
    "daily_meetings", __name__, url_prefix="/daily/meetings", template_folder="templates"
)
