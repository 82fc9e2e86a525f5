"""Notifications in the browser: the bell, the list, marking read, email preferences."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("notifications", __name__, url_prefix="/notifications")
