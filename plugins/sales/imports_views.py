"""Pages of the sales plugin: imports (placeholder until written)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

bp = Blueprint("sales_imports", __name__, template_folder="templates")


@bp.get("/imports/")
def index() -> Any:
    return "imports"
