"""Loop items: raise, read, act on one item, its history and evidence (P1.3.2)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("loops", __name__, url_prefix="/loops")
