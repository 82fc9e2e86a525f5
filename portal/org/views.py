"""People: the directory (within one's scope) and a person's profile."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, current_app, render_template, request
from flask_login import current_user

from ..auth.models import User
from ..extensions import db
from ..listing import like_pattern, paginate
from ..scoping import get_scoped_or_404, scoped
from .models import OrgUnit
from .services import subordinates, supervisor_of

bp = Blueprint("people", __name__, url_prefix="/people")


@bp.get("/")
def directory() -> Any:
    """People the viewer may see (own / team / all), searchable, paginated."""
    statement = scoped(sa.select(User), User, current_user).order_by(User.display_name, User.id)
    query = request.args.get("q", "").strip()
    if query:
        pattern = like_pattern(query[:64])
        statement = statement.where(
            sa.or_(
                User.display_name.ilike(pattern, escape="\\"),
                User.username.ilike(pattern, escape="\\"),
            )
        )
    page = paginate(statement)
    template = (
        "org/_people_rows.html"
        if request.headers.get("HX-Target") == "people-rows"
        else "org/directory.html"
    )
    return render_template(template, page=page, query=query)


@bp.get("/<int:user_id>")
def profile(user_id: int) -> Any:
    """A person's profile: unit, supervisor, roles with their duties (P2.2-P2.4)."""
    person = get_scoped_or_404(User, user_id, current_user)
    role_specs = current_app.extensions["portal"].roles
    duties = []
    for role in sorted(person.roles, key=lambda r: -r.rank):
        spec = role_specs.get(role.code)
        lines = (
            [str(line) for line in spec[1].duties]
            if spec and spec[1].duties
            else [line for line in role.duties.splitlines() if line.strip()]
        )
        clause = spec[1].clause if spec else ""
        duties.append({"role": role, "lines": lines, "clause": clause})
    team = subordinates(person, viewer=current_user)
    return render_template(
        "org/profile.html",
        person=person,
        duties=duties,
        supervisor=supervisor_of(person),
        team=team,
        led_units=list(
            db.session.scalars(
                sa.select(OrgUnit).where(OrgUnit.leader_id == person.id).order_by(OrgUnit.path)
            )
        ),
    )


@bp.get("/me")
def me() -> Any:
    """One's own profile."""
    return profile(current_user.id)
