"""My work: one inbox per person, the team view, and the loop metrics with their charts
(P1.3.2, P1.3.4)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("work", __name__, url_prefix="/work")
