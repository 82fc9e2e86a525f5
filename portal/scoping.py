"""The one data-scope mechanism (P2.1-P2.4, P6.3 "data kept secure").

A salesperson reaches records they own, a supervisor those owned by anyone in the
subtree of the units they lead, a manager everything. Lists, details, exports, charts
and the API all call ``scoped`` so they can never disagree. Out-of-scope details answer
404, not 403, so a URL does not even confirm that a record exists.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import abort, g, has_request_context
from flask_babel import lazy_gettext as _l

from .auth.models import User
from .extensions import db
from .org.models import OrgUnit

# How each scope level reads to an admin (role pages, role form).
SCOPE_LABELS = {
    "none": _l("nobody"),
    "own": _l("their own"),
    "team": _l("their team (whole subtree)"),
    "all": _l("everyone"),
}


def led_unit_paths(user: User) -> list[str]:
    """Paths of the units ``user`` leads (cached for the request)."""
    cache_key = f"_led_paths_{user.id}"
    if has_request_context() and cache_key in g:
        return g.get(cache_key)
    paths = list(db.session.scalars(sa.select(OrgUnit.path).where(OrgUnit.leader_id == user.id)))
    if has_request_context():
        setattr(g, cache_key, paths)
    return paths


def visible_owner_ids(user: User, verb: str = "read") -> sa.Select | None:
    """A SELECT of the user ids whose records ``user`` may reach for ``verb``; None = all."""
    level = user.scope_for(verb)
    if level == "all":
        return None
    if level == "none":
        return sa.select(User.id).where(sa.false())
    if level == "own":
        return sa.select(sa.literal(user.id))
    paths = led_unit_paths(user)
    if not paths:
        return sa.select(sa.literal(user.id))
    in_subtree = sa.or_(*(OrgUnit.path.startswith(path, autoescape=True) for path in paths))
    team = sa.select(User.id).join(OrgUnit, User.unit_id == OrgUnit.id).where(in_subtree)
    return sa.union(team, sa.select(sa.literal(user.id)))


def owner_column(model: Any) -> Any:
    """The column a model is scoped by (declared by ``__portal_owner__``)."""
    name = getattr(model, "__portal_owner__", None)
    if name is None:
        raise TypeError(f"{model.__name__} has no __portal_owner__: it cannot be scoped")
    return getattr(model, name)


def scoped(statement: sa.Select, model: Any, user: User, verb: str = "read") -> sa.Select:
    """Restrict a SELECT of ``model`` to the rows ``user`` may reach for ``verb``."""
    owners = visible_owner_ids(user, verb)
    if owners is None:
        return statement
    return statement.where(owner_column(model).in_(owners))


def people_in_scope(user: User, verb: str = "read", limit: int = 500) -> list[tuple[int, str]]:
    """(id, name) of the active people whose records ``user`` may reach for ``verb``, by
    name (at most ``limit``): the choices of an owner filter or an assignee picker."""
    statement = (
        sa.select(User.id, User.display_name)
        .where(User.active.is_(True))
        .order_by(User.display_name, User.id)
        .limit(limit)
    )
    return [
        (row.id, row.display_name)
        for row in db.session.execute(scoped(statement, User, user, verb))
    ]


def can_reach(record: Any, user: User, verb: str = "read") -> bool:
    """Whether ``user`` may reach one already-loaded record for ``verb``."""
    model = type(record)
    primary_key = sa.inspect(model).primary_key[0]
    statement = scoped(sa.select(sa.literal(1)).select_from(model), model, user, verb).where(
        primary_key == getattr(record, primary_key.key)
    )
    return db.session.execute(statement).first() is not None


def get_scoped_or_404(model: Any, record_id: Any, user: User, verb: str = "read") -> Any:
    """Load one record in ``user``'s scope, or abort: 404 when it is outside the read
    scope (its existence stays hidden), 403 when it is readable but not writable."""
    primary_key = sa.inspect(model).primary_key[0]
    statement = scoped(sa.select(model), model, user, "read").where(primary_key == record_id)
    record = db.session.scalars(statement).first()
    if record is None:
        abort(404)
    if verb != "read" and not can_reach(record, user, verb):
        abort(403)
    return record
