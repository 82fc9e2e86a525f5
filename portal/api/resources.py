"""The core's API resources: people, organisation units, the audit log."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import abort, current_app, jsonify, request

from ..audit.models import AuditEvent
from ..audit.views import filtered_events
from ..auth.models import User
from ..extensions import db
from ..listing import like_pattern, paginate
from ..org import services
from ..org.forms import UnitForm, UserForm
from ..org.models import OrgUnit
from ..plugins.types import ApiRoute
from ..scoping import get_scoped_or_404, scoped
from . import ApiError, current_api_user, json_body, page_response, service_errors, validated

USER_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "username": {"type": "string"},
        "display_name": {"type": "string"},
        "email": {"type": ["string", "null"]},
        "phone": {"type": ["string", "null"]},
        "title": {"type": ["string", "null"]},
        "active": {"type": "boolean"},
        "unit_id": {"type": ["integer", "null"]},
        "roles": {"type": "array", "items": {"type": "string"}},
        "locale": {"type": ["string", "null"]},
    },
}

UNIT_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": "string"},
        "kind": {"type": "string"},
        "parent_id": {"type": ["integer", "null"]},
        "leader_id": {"type": ["integer", "null"]},
        "path": {"type": "string"},
        "active": {"type": "boolean"},
    },
}

AUDIT_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "at": {"type": "string", "format": "date-time"},
        "actor_id": {"type": ["integer", "null"]},
        "actor": {"type": "string"},
        "action": {"type": "string", "enum": ["create", "update", "delete"]},
        "table": {"type": "string"},
        "record_id": {"type": "string"},
        "before": {"type": ["object", "null"]},
        "after": {"type": ["object", "null"]},
    },
}


def user_json(user: User) -> dict[str, Any]:
    """A person as the API shows them (no secrets)."""
    return {
        "id": user.id,
        "username": user.username,
        "display_name": user.display_name,
        "email": user.email,
        "phone": user.phone,
        "title": user.title,
        "active": user.active,
        "unit_id": user.unit_id,
        "roles": sorted(user.role_codes),
        "locale": user.locale,
    }


def unit_json(unit: OrgUnit) -> dict[str, Any]:
    """A unit as the API shows it."""
    return {
        "id": unit.id,
        "name": unit.name,
        "kind": unit.kind,
        "parent_id": unit.parent_id,
        "leader_id": unit.leader_id,
        "path": unit.path,
        "active": unit.active,
    }


def list_users() -> Any:
    """People in the caller's read scope."""
    statement = scoped(sa.select(User), User, current_api_user()).order_by(User.id)
    if request.args.get("q"):
        statement = statement.where(
            User.username.ilike(like_pattern(request.args["q"][:64]), escape="\\")
        )
    return page_response(paginate(statement, api=True), user_json)


def get_user(user_id: int) -> Any:
    """One person, if in scope (404 otherwise)."""
    return jsonify(user_json(get_scoped_or_404(User, user_id, current_api_user())))


def me() -> Any:
    """The token's owner, with permissions."""
    user = current_api_user()
    return jsonify({**user_json(user), "permissions": sorted(user.permissions)})


def create_user() -> Any:
    """Create a person (needs core.users.manage)."""
    form = validated(UserForm, json_body(), creating=True)
    with service_errors():
        fields = form.person_fields()
        fields["active"] = fields["active"] if "active" in request.get_json() else True
        user = services.create_user(**fields, actor=current_api_user())
    db.session.commit()
    response = jsonify(user_json(user))
    response.status_code = 201
    return response


def patch_user(user_id: int) -> Any:
    """Change some fields of a person (needs core.users.manage)."""
    user = db.session.get(User, user_id) or abort(404)
    body = json_body()
    current = {**user_json(user), "password": ""}
    current.pop("id")
    current.pop("locale")
    merged = {**current, **body}
    form = validated(UserForm, merged)
    if user.id == current_api_user().id and not form.active.data:
        raise ApiError(
            422,
            "validation_failed",
            "cannot disable yourself",
            {"active": ["You cannot disable your own account."]},
        )
    changes = {key: getattr(form, key).data for key in body}
    with service_errors():
        services.update_user(user, changes, actor=current_api_user())
    db.session.commit()
    return jsonify(user_json(user))


def list_units() -> Any:
    """The organisation tree in path order (units are visible to everyone)."""
    statement = sa.select(OrgUnit).order_by(OrgUnit.path)
    return page_response(paginate(statement, api=True), unit_json)


def get_unit(unit_id: int) -> Any:
    """One unit."""
    return jsonify(unit_json(db.session.get(OrgUnit, unit_id) or abort(404)))


def _save_unit(unit: OrgUnit | None, data: dict[str, Any]) -> OrgUnit:
    form = validated(UnitForm, data)
    with service_errors():
        saved = services.save_unit(
            unit,
            form.name.data,
            form.kind.data,
            form.parent_id.data,
            form.leader_id.data,
            form.active.data,
            known_kinds=set(current_app.extensions["portal"].unit_kinds),
        )
    return saved


def create_unit() -> Any:
    """Create a unit (needs core.org.manage)."""
    body = json_body()
    unit = _save_unit(None, {"active": True, **body})
    db.session.commit()
    response = jsonify(unit_json(unit))
    response.status_code = 201
    return response


def patch_unit(unit_id: int) -> Any:
    """Change a unit; moving it moves its subtree (needs core.org.manage)."""
    unit = db.session.get(OrgUnit, unit_id) or abort(404)
    current = unit_json(unit)
    for key in ("id", "path"):
        current.pop(key)
    unit = _save_unit(unit, {**current, **json_body()})
    db.session.commit()
    return jsonify(unit_json(unit))


def audit_json(event: AuditEvent) -> dict[str, Any]:
    """An audit row."""
    return {
        "id": event.id,
        "at": event.at.isoformat(),
        "actor_id": event.actor_id,
        "actor": event.actor,
        "action": event.action,
        "table": event.table_name,
        "record_id": event.record_id,
        "before": event.before,
        "after": event.after,
    }


def list_audit() -> Any:
    """The audit log, newest first; filters: table, record, actor, action, since, until."""
    statement, _filters = filtered_events(request.args)
    return page_response(paginate(statement, api=True), audit_json)


ROUTES = [
    ApiRoute("/me", me, summary="The token's owner", schema=USER_SCHEMA, tag="people"),
    ApiRoute(
        "/users",
        list_users,
        summary="People in your scope",
        paginated=True,
        schema=USER_SCHEMA,
        tag="people",
    ),
    ApiRoute(
        "/users",
        create_user,
        methods=("POST",),
        summary="Create a person",
        permission="core.users.manage",
        form=UserForm,
        schema=USER_SCHEMA,
        tag="people",
    ),
    ApiRoute(
        "/users/<int:user_id>", get_user, summary="One person", schema=USER_SCHEMA, tag="people"
    ),
    ApiRoute(
        "/users/<int:user_id>",
        patch_user,
        methods=("PATCH",),
        summary="Change a person",
        permission="core.users.manage",
        form=UserForm,
        schema=USER_SCHEMA,
        tag="people",
    ),
    ApiRoute(
        "/org-units",
        list_units,
        summary="Organisation units",
        paginated=True,
        schema=UNIT_SCHEMA,
        tag="organisation",
    ),
    ApiRoute(
        "/org-units",
        create_unit,
        methods=("POST",),
        summary="Create a unit",
        permission="core.org.manage",
        form=UnitForm,
        schema=UNIT_SCHEMA,
        tag="organisation",
    ),
    ApiRoute(
        "/org-units/<int:unit_id>",
        get_unit,
        summary="One unit",
        schema=UNIT_SCHEMA,
        tag="organisation",
    ),
    ApiRoute(
        "/org-units/<int:unit_id>",
        patch_unit,
        methods=("PATCH",),
        summary="Change a unit",
        permission="core.org.manage",
        form=UnitForm,
        schema=UNIT_SCHEMA,
        tag="organisation",
    ),
    ApiRoute(
        "/audit",
        list_audit,
        summary="The audit log",
        permission="core.audit.read",
        paginated=True,
        schema=AUDIT_SCHEMA,
        tag="audit",
    ),
]
