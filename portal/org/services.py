"""Changing people and the organisation tree. The admin pages, the API and the CLI all
call these, so validation, events and audit are the same whichever door is used."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask_babel import gettext as _

from ..auth.models import Role, RolePermission, User
from ..auth.services import end_sessions, revoke_tokens, set_password
from ..events import emit
from ..extensions import db
from .models import OrgUnit


class ValidationFailed(ValueError):
    """Per-field messages for a rejected change; nothing was written."""

    def __init__(self, fields: dict[str, list[str]]):
        super().__init__("; ".join(f"{k}: {', '.join(v)}" for k, v in fields.items()))
        self.fields = fields

    def show_on(self, form: Any, renamed: dict[str, str] | None = None) -> None:
        """Put the messages on the form's fields (``renamed`` maps a service's field
        name to the form's), the rest above the form: one way for every page."""
        for name, messages in self.fields.items():
            field = getattr(form, (renamed or {}).get(name, name), None)
            if field is None:
                form.form_errors.extend(messages)
            else:
                field.errors = list(field.errors) + list(messages)


def _roles_by_code(codes: list[str]) -> list[Role]:
    roles = list(db.session.scalars(sa.select(Role).where(Role.code.in_(codes or []))))
    unknown = sorted(set(codes or []) - {role.code for role in roles})
    if unknown:
        raise ValidationFailed({"roles": [_("Unknown role: %(codes)s", codes=", ".join(unknown))]})
    return roles


def _unit(unit_id: int | None, field: str = "unit_id") -> OrgUnit | None:
    if unit_id in (None, "", 0):
        return None
    unit = db.session.get(OrgUnit, int(unit_id))
    if unit is None or not unit.active:
        raise ValidationFailed({field: [_("No such unit.")]})
    return unit


def _check_unique(user: User | None, username: str | None, email: str | None) -> None:
    errors: dict[str, list[str]] = {}
    if username:
        clash = db.session.scalars(sa.select(User.id).where(User.username == username)).first()
        if clash and (user is None or clash != user.id):
            errors["username"] = [_("This username is taken.")]
    if email:
        clash = db.session.scalars(
            sa.select(User.id).where(sa.func.lower(User.email) == email.lower())
        ).first()
        if clash and (user is None or clash != user.id):
            errors["email"] = [_("Another person already uses this email address.")]
    if errors:
        raise ValidationFailed(errors)


def create_user(
    username: str,
    display_name: str,
    password: str,
    roles: list[str] | None = None,
    unit_id: int | None = None,
    email: str | None = None,
    phone: str | None = None,
    title: str | None = None,
    active: bool = True,
    actor: User | None = None,
) -> User:
    """Create a person; the caller commits. Raises ValidationFailed before any write.
    ``actor`` (None for the command line) may only hand out roles within their own rights."""
    username = username.strip()
    email = (email or "").strip() or None
    _check_unique(None, username, email)
    role_rows = _roles_by_code(roles or [])
    _check_grantable(actor, role_rows)
    unit = _unit(unit_id)
    user = User(
        username=username,
        display_name=display_name.strip(),
        email=email,
        phone=(phone or "").strip() or None,
        title=(title or "").strip() or None,
        active=active,
        unit=unit,
        roles=role_rows,
        password_hash="",
    )
    set_password(user, password)
    db.session.add(user)
    try:
        with db.session.begin_nested():
            db.session.flush()
    except sa.exc.IntegrityError:  # the same name taken by a concurrent request
        raise ValidationFailed({"username": [_("This username is taken.")]}) from None
    emit("core.user_created", actor_id=getattr(actor, "id", None), user_id=user.id)
    return user


def _check_grantable(actor: User | None, roles: list[Role], current: list[Role] = ()) -> None:
    """Nobody hands out more than they hold: a new role's permissions and scopes must be
    within the actor's own (the command line, ``actor=None``, is the machine's owner)."""
    if actor is None:
        return
    from ..plugins.types import SCOPE_LEVELS

    held = actor.permissions
    refused = []
    for role in roles:
        if role in current:
            continue
        wider = any(
            SCOPE_LEVELS.index(getattr(role, f"{verb}_scope"))
            > SCOPE_LEVELS.index(actor.scope_for(verb))
            for verb in ("read", "write")
        )
        if wider or not role.permission_codes <= held:
            refused.append(role.name)
    if refused:
        raise ValidationFailed(
            {
                "roles": [
                    _(
                        "You cannot give these roles, they carry rights you do not have: %(names)s",
                        names=", ".join(refused),
                    )
                ]
            }
        )


def _keeps_a_role_manager(user: User, roles: list[Role], active: bool) -> None:
    """Someone active must keep the right to manage roles, or nobody could fix them."""
    if "core.roles.manage" not in user.permissions:
        return
    still = active and any("core.roles.manage" in role.permission_codes for role in roles)
    if still:
        return
    others = db.session.scalar(
        sa.select(sa.func.count(sa.distinct(User.id)))
        .join(User.roles)
        .join(Role.grants)
        .where(
            RolePermission.code == "core.roles.manage", User.active.is_(True), User.id != user.id
        )
    )
    if not others:
        raise ValidationFailed(
            {"roles": [_("At least one active person must keep the right to manage roles.")]}
        )


def update_user(user: User, changes: dict[str, Any], actor: User | None = None) -> User:
    """Apply validated changes to a person; the caller commits.

    Moving a person to another unit takes effect on the next query: scopes are computed
    from the unit tree at query time, so their new supervisor sees them at once.
    """
    if "username" in changes or "email" in changes:
        email = (changes.get("email") or "").strip() or None
        _check_unique(user, changes.get("username"), email)
    role_rows = _roles_by_code(changes["roles"]) if "roles" in changes else None
    if role_rows is not None:
        _check_grantable(actor, role_rows, current=list(user.roles))
    _keeps_a_role_manager(
        user,
        role_rows if role_rows is not None else list(user.roles),
        bool(changes.get("active", user.active)),
    )
    actor_id = getattr(actor, "id", None)
    unit = _unit(changes.get("unit_id")) if "unit_id" in changes else user.unit
    old_unit_id = user.unit_id
    for key in ("username", "display_name"):
        if key in changes:
            setattr(user, key, changes[key].strip())
    for key in ("phone", "title"):
        if key in changes:
            setattr(user, key, (changes[key] or "").strip() or None)
    if "email" in changes:
        user.email = (changes["email"] or "").strip() or None
    if "locale" in changes:
        user.locale = changes["locale"] or None
    if role_rows is not None:
        user.roles = role_rows
    if "active" in changes and bool(changes["active"]) != user.active:
        user.active = bool(changes["active"])
        if not user.active:
            # A disabled person keeps no way in: sessions end, API tokens are revoked.
            end_sessions(user)
            revoke_tokens(user)
            emit("core.user_disabled", actor_id=actor_id, user_id=user.id)
    if changes.get("password"):
        set_password(user, changes["password"])
    user.unit = unit
    db.session.flush()
    if user.unit_id != old_unit_id:
        emit(
            "core.user_moved",
            actor_id=actor_id,
            user_id=user.id,
            from_unit_id=old_unit_id,
            to_unit_id=user.unit_id,
        )
    return user


def _descendant_ids(unit: OrgUnit) -> set[int]:
    return set(
        db.session.scalars(
            sa.select(OrgUnit.id).where(OrgUnit.path.startswith(unit.path, autoescape=True))
        )
    )


def save_unit(
    unit: OrgUnit | None,
    name: str,
    kind: str,
    parent_id: int | None,
    leader_id: int | None,
    active: bool = True,
    known_kinds: set[str] | None = None,
) -> OrgUnit:
    """Create or change a unit, keeping every descendant's path right; the caller commits."""
    errors: dict[str, list[str]] = {}
    name = name.strip()
    if known_kinds is not None and kind not in known_kinds:
        errors["kind"] = [_("Unknown kind of unit.")]
    parent = None
    try:
        parent = _unit(parent_id, "parent_id")
    except ValidationFailed as exc:
        errors.update(exc.fields)
    if unit is not None and parent is not None and parent.id in _descendant_ids(unit):
        errors["parent_id"] = [_("A unit cannot be placed inside itself or its own sub-units.")]
    leader = None
    if leader_id not in (None, "", 0):
        leader = db.session.get(User, int(leader_id))
        if leader is None or not leader.active:
            errors["leader_id"] = [_("Choose an active person as leader.")]
    siblings = sa.select(OrgUnit.id).where(
        OrgUnit.name == name,
        OrgUnit.parent_id.is_(None) if parent is None else OrgUnit.parent_id == parent.id,
    )
    clash = db.session.scalars(siblings).first()
    if clash and (unit is None or clash != unit.id):
        errors["name"] = [_("Another unit with this name already exists here.")]
    if unit is not None and not active and unit.active:
        members = db.session.scalar(
            sa.select(sa.func.count())
            .select_from(User)
            .where(User.unit_id.in_(_descendant_ids(unit)), User.active.is_(True))
        )
        if members:
            errors["active"] = [_("Move the %(n)s people in this unit first.", n=members)]
    if errors:
        raise ValidationFailed(errors)
    creating = unit is None
    if creating:
        unit = OrgUnit(name=name, kind=kind, path="/")
        db.session.add(unit)
    old_path = unit.path
    unit.name, unit.kind, unit.parent, unit.leader, unit.active = name, kind, parent, leader, active
    db.session.flush()
    new_path = f"{parent.path if parent else '/'}{unit.id}/"
    if new_path != old_path:
        if not creating:
            for child in db.session.scalars(
                sa.select(OrgUnit).where(
                    OrgUnit.path.startswith(old_path, autoescape=True), OrgUnit.id != unit.id
                )
            ):
                child.path = new_path + child.path[len(old_path) :]
        unit.path = new_path
        db.session.flush()
    return unit


def subordinates(user: User, viewer: User) -> list[User]:
    """Active people in the units ``user`` leads (whole subtree), as far as ``viewer`` may
    see them: a team list must not show more than the viewer's own scope."""
    from ..scoping import led_unit_paths, scoped

    paths = led_unit_paths(user)
    if not paths:
        return []
    in_subtree = sa.or_(*(OrgUnit.path.startswith(p, autoescape=True) for p in paths))
    statement = (
        sa.select(User)
        .join(OrgUnit, User.unit_id == OrgUnit.id)
        .where(in_subtree, User.active.is_(True), User.id != user.id)
        .order_by(OrgUnit.path, User.display_name)
        .limit(500)
    )
    return list(db.session.scalars(scoped(statement, User, viewer)))


def supervisor_of(user: User) -> User | None:
    """Who a person reports to: the leader of their unit, or of the nearest unit above
    with a leader (for a unit's own leader, the next leader up)."""
    unit = user.unit
    if unit is None:
        return None
    ancestor_ids = [int(part) for part in unit.path.strip("/").split("/") if part]
    leaders = dict(
        db.session.execute(
            sa.select(OrgUnit.id, OrgUnit.leader_id).where(OrgUnit.id.in_(ancestor_ids))
        ).all()
    )
    for unit_id in reversed(ancestor_ids):
        leader_id = leaders.get(unit_id)
        if leader_id and leader_id != user.id:
            return db.session.get(User, leader_id)
    return None


def head_counts() -> dict[int | None, int]:
    """Active people per unit id (one grouped query), for the tree and the chart."""
    return dict(
        db.session.execute(
            sa.select(User.unit_id, sa.func.count())
            .where(User.active.is_(True))
            .group_by(User.unit_id)
        ).all()
    )
