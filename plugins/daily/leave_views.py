"""Pages of daily management: leave (being built)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("daily_leave", __name__, url_prefix="/daily/leave", template_folder="templates")
