"""Admin pages. Each change goes through the org services (same validation as API/CLI)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user

from ..auth.models import Role, RolePermission, User, user_roles
from ..auth.permissions import require_permission
from ..extensions import db
from ..listing import like_pattern, paginate
from ..org import services
from ..org.forms import RoleForm, UnitForm, UserForm
from ..org.models import OrgUnit
from ..settings import SettingValueError, declared_settings, get_setting, set_setting

bp = Blueprint("admin", __name__, url_prefix="/admin")


def _apply_field_errors(form: Any, error: services.ValidationFailed) -> None:
    for name, messages in error.fields.items():
        field = getattr(form, name, None)
        if field is None:
            form.form_errors.extend(messages)
        else:
            field.errors = list(field.errors) + list(messages)


# -- people ------------------------------------------------------------------


@bp.get("/users")
@require_permission("core.users.manage")
def users() -> Any:
    """Everyone, filterable by name, unit, role and status."""
    statement = sa.select(User).order_by(User.display_name, User.id)
    query = request.args.get("q", "").strip()[:64]
    if query:
        statement = statement.where(
            sa.or_(
                User.display_name.ilike(like_pattern(query), escape="\\"),
                User.username.ilike(like_pattern(query), escape="\\"),
                User.email.ilike(like_pattern(query), escape="\\"),
            )
        )
    unit_id = request.args.get("unit", type=int)
    if unit_id and 0 < unit_id < 2**62:
        unit = db.session.get(OrgUnit, unit_id)
        if unit:
            statement = statement.join(OrgUnit, User.unit_id == OrgUnit.id).where(
                OrgUnit.path.startswith(unit.path, autoescape=True)
            )
    role_code = request.args.get("role", "")
    if role_code:
        statement = statement.where(User.roles.any(Role.code == role_code))
    status = request.args.get("status", "active")
    if status in ("active", "disabled"):
        statement = statement.where(User.active.is_(status == "active"))
    page = paginate(statement)
    roles = db.session.scalars(sa.select(Role).order_by(Role.rank.desc())).all()
    units = db.session.scalars(sa.select(OrgUnit).order_by(OrgUnit.path).limit(2000)).all()
    return render_template(
        "admin/users.html",
        page=page,
        query=query,
        roles=roles,
        units=units,
        role_code=role_code,
        unit_id=unit_id,
        status=status,
    )


@bp.route("/users/new", methods=["GET", "POST"])
@require_permission("core.users.manage")
def user_new() -> Any:
    """Create a person."""
    form = UserForm(creating=True)
    if form.is_submitted():
        if form.validate():
            try:
                user = services.create_user(**form.person_fields(), actor=current_user)
                db.session.commit()
                flash(_("%(name)s was created.", name=user.display_name), "success")
                return redirect(url_for("admin.users"), 303)
            except services.ValidationFailed as error:
                db.session.rollback()
                _apply_field_errors(form, error)
        return render_template("admin/user_form.html", form=form, person=None), 422
    return render_template("admin/user_form.html", form=form, person=None)


@bp.route("/users/<int:user_id>", methods=["GET", "POST"])
@require_permission("core.users.manage")
def user_edit(user_id: int) -> Any:
    """Edit a person: details, unit, roles, status, password reset."""
    person = db.session.get(User, user_id) or abort(404)
    form = UserForm(obj=person)
    if request.method == "GET":
        form.roles.data = [role.code for role in person.roles]
        form.unit_id.data = person.unit_id
    if form.is_submitted():
        if form.validate():
            if person.id == current_user.id and not form.active.data:
                form.active.errors = [_("You cannot disable your own account.")]
            else:
                changes = {
                    key: getattr(form, key).data
                    for key in (
                        "username",
                        "display_name",
                        "email",
                        "phone",
                        "title",
                        "unit_id",
                        "roles",
                        "active",
                        "password",
                    )
                }
                try:
                    services.update_user(person, changes, actor=current_user)
                    db.session.commit()
                    flash(_("%(name)s was saved.", name=person.display_name), "success")
                    return redirect(url_for("admin.users"), 303)
                except services.ValidationFailed as error:
                    db.session.rollback()
                    _apply_field_errors(form, error)
        return render_template("admin/user_form.html", form=form, person=person), 422
    return render_template("admin/user_form.html", form=form, person=person)


# -- roles -------------------------------------------------------------------


@bp.get("/roles")
@require_permission("core.roles.manage")
def roles() -> Any:
    """Roles with their scopes and how many people hold each."""
    rows = db.session.execute(
        sa.select(Role, sa.func.count(user_roles.c.user_id))
        .outerjoin(user_roles, user_roles.c.role_id == Role.id)
        .group_by(Role.id)
        .order_by(Role.rank.desc(), Role.name)
    ).all()
    return render_template("admin/roles.html", rows=rows)


@bp.route("/roles/new", methods=["GET", "POST"])
@bp.route("/roles/<int:role_id>", methods=["GET", "POST"])
@require_permission("core.roles.manage")
def role_edit(role_id: int | None = None) -> Any:
    """Create or edit a role: scopes and permission grants."""
    role = (db.session.get(Role, role_id) or abort(404)) if role_id else None
    form = RoleForm(obj=role)
    if role is not None:
        form.code.render_kw = {"readonly": True}
        if request.method == "GET":
            form.permissions.data = sorted(role.permission_codes)
    if form.is_submitted():
        if form.validate():
            clash = db.session.scalars(
                sa.select(Role.id).where(Role.code == form.code.data)
            ).first()
            if role is None and clash:
                form.code.errors = [_("This code is taken.")]
            elif (
                role is not None
                and role.code == "admin"
                and "core.roles.manage" not in (form.permissions.data or [])
            ):
                form.permissions.errors = [_("The admin role must keep the right to manage roles.")]
            else:
                if role is None:
                    role = Role(code=form.code.data)
                    db.session.add(role)
                role.name = form.name.data.strip()
                role.read_scope = form.read_scope.data
                role.write_scope = form.write_scope.data
                role.duties = form.duties.data or ""
                wanted = set(form.permissions.data or [])
                role.grants = [g for g in role.grants if g.code in wanted] + [
                    RolePermission(code=code) for code in sorted(wanted - role.permission_codes)
                ]
                db.session.commit()
                flash(_("Role %(name)s was saved.", name=role.name), "success")
                return redirect(url_for("admin.roles"), 303)
        return render_template("admin/role_form.html", form=form, role=role), 422
    return render_template("admin/role_form.html", form=form, role=role)


# -- units -------------------------------------------------------------------


@bp.get("/units")
@require_permission("core.org.manage")
def units() -> Any:
    """The organisation tree with leaders and head counts."""
    counts = services.head_counts()
    tree = db.session.scalars(sa.select(OrgUnit).order_by(OrgUnit.path).limit(2000)).all()
    kinds = current_app.extensions["portal"].unit_kinds
    return render_template("admin/units.html", tree=tree, counts=counts, kinds=kinds)


@bp.route("/units/new", methods=["GET", "POST"])
@bp.route("/units/<int:unit_id>", methods=["GET", "POST"])
@require_permission("core.org.manage")
def unit_edit(unit_id: int | None = None) -> Any:
    """Create or edit a unit (moving it moves its whole subtree)."""
    unit = (db.session.get(OrgUnit, unit_id) or abort(404)) if unit_id else None
    form = UnitForm(obj=unit)
    if unit is None and request.method == "GET":
        form.parent_id.data = request.args.get("parent", type=int)
    if form.is_submitted():
        if form.validate():
            try:
                services.save_unit(
                    unit,
                    form.name.data,
                    form.kind.data,
                    form.parent_id.data,
                    form.leader_id.data,
                    form.active.data,
                    known_kinds=set(current_app.extensions["portal"].unit_kinds),
                )
                db.session.commit()
                flash(_("Unit %(name)s was saved.", name=form.name.data), "success")
                return redirect(url_for("admin.units"), 303)
            except services.ValidationFailed as error:
                db.session.rollback()
                _apply_field_errors(form, error)
        return render_template("admin/unit_form.html", form=form, unit=unit), 422
    return render_template("admin/unit_form.html", form=form, unit=unit)


# -- settings and plugins ------------------------------------------------------


@bp.route("/settings", methods=["GET", "POST"])
@require_permission("core.settings.manage")
def settings() -> Any:
    """Every declared setting with its value in force; saved all together or not at all."""
    specs = sorted(declared_settings().values(), key=lambda spec: spec.key)
    errors: dict[str, str] = {}
    values = {spec.key: get_setting(spec.key) for spec in specs}
    if request.method == "POST":
        submitted = {}
        for spec in specs:
            raw = (
                request.form.get(spec.key, "")
                if spec.type != "bool"
                else ("yes" if request.form.get(spec.key) else "no")
            )
            submitted[spec.key] = raw
            try:
                values[spec.key] = set_setting(spec.key, raw)
            except SettingValueError as error:
                errors[spec.key] = str(error)
                values[spec.key] = raw
        if errors:
            db.session.rollback()
            return render_template(
                "admin/settings.html", specs=specs, values=values, errors=errors
            ), 422
        db.session.commit()
        flash(_("Settings saved."), "success")
        return redirect(url_for("admin.settings"), 303)
    return render_template("admin/settings.html", specs=specs, values=values, errors=errors)


@bp.get("/plugins")
@require_permission("core.plugins.view")
def plugins() -> Any:
    """Installed plugins, their state, hooks and start-up errors."""
    records = sorted(current_app.extensions["portal"].host.records.values(), key=lambda r: r.name)
    return render_template("admin/plugins.html", records=records)
