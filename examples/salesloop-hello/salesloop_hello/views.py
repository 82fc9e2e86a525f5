"""The greeting page (``/hello/``) and its API twin (``/api/v1/hello/greeting``)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, render_template
from flask_babel import gettext as _
from flask_login import current_user

from portal.api import current_api_user
from portal.auth.permissions import require_permission

# template_folder holds only templates/hello/: the core refuses anything else.
bp = Blueprint("hello", __name__, template_folder="templates")

GREETING_SCHEMA = {
    "type": "object",
    "properties": {"greeting": {"type": "string"}, "username": {"type": "string"}},
    "required": ["greeting", "username"],
}


def greeting_for(person: Any) -> str:
    """The greeting shown to ``person``, in the request's language."""
    return _("Hello, %(name)s!", name=person.display_name)


@bp.get("/")
@require_permission("hello.greet")
def index() -> str:
    """The greeting page."""
    return render_template("hello/index.html", greeting=greeting_for(current_user))


def greeting() -> Any:
    """API: the greeting for the token's owner."""
    person = current_api_user()
    return jsonify(greeting=greeting_for(person), username=person.username)
