"""Pages of the sales plugin: pipeline (placeholder until written)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

bp = Blueprint("sales_pipeline", __name__, template_folder="templates")


@bp.get("/pipeline/")
def index() -> Any:
    return "pipeline"
