"""Pages of the sales plugin: aftersales (placeholder until written)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

bp = Blueprint("sales_aftersales", __name__, template_folder="templates")


@bp.get("/aftersales/")
def index() -> Any:
    return "aftersales"
