"""Pages of the sales plugin: quotes (placeholder until written)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

bp = Blueprint("sales_quotes", __name__, template_folder="templates")


@bp.get("/quotes/")
def index() -> Any:
    return "quotes"
