"""Pages of the sales plugin: contracts (placeholder until written)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

bp = Blueprint("sales_contracts", __name__, template_folder="templates")


@bp.get("/contracts/")
def index() -> Any:
    return "contracts"
