"""Pages of the sales plugin: market (placeholder until written)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

bp = Blueprint("sales_market", __name__, template_folder="templates")


@bp.get("/market/")
def index() -> Any:
    return "market"
