"""Approvals in the browser: what waits for me, what I asked for, acting on a step, delegation."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("approvals", __name__, url_prefix="/approvals")
