"""Pages of the sales plugin: customers (placeholder until written)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

bp = Blueprint("sales_customers", __name__, template_folder="templates")


@bp.get("/customers/")
def index() -> Any:
    return "customers"
