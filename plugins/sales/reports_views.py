"""Pages of the sales plugin: reports (placeholder until written)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

bp = Blueprint("sales_reports", __name__, template_folder="templates")


@bp.get("/reports/")
def index() -> Any:
    return "reports"
