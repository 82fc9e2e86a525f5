"""Forms for people, units and roles. The API validates request bodies with the same
classes, so a browser and a script get the same per-field messages."""

from __future__ import annotations

import re

import sqlalchemy as sa
from flask import current_app
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    EmailField,
    PasswordField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Email, Length, Optional, Regexp

from ..auth.forms import strong_enough
from ..auth.models import Role, User
from ..extensions import db
from ..plugins.types import SCOPE_LEVELS
from ..scoping import SCOPE_LABELS
from .models import OrgUnit

USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{1,63}$")


def _optional_int(value: object) -> int | None:
    if value in (None, "", "None"):
        return None
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(_l("Not a valid choice.")) from None


def unit_choices() -> list[tuple[int | None, str]]:
    """Active units, indented by depth, for select boxes (bounded: org trees are small)."""
    units = db.session.scalars(
        sa.select(OrgUnit).where(OrgUnit.active.is_(True)).order_by(OrgUnit.path).limit(2000)
    )
    return [(None, "—")] + [(u.id, "\u2003" * u.depth + u.name) for u in units]


def person_choices() -> list[tuple[int | None, str]]:
    """Active people for the leader select box."""
    people = db.session.execute(
        sa.select(User.id, User.display_name, User.username)
        .where(User.active.is_(True))
        .order_by(User.display_name)
        .limit(5000)
    )
    return [(None, "—")] + [(pid, f"{name} ({login})") for pid, name, login in people]


def role_choices() -> list[tuple[str, str]]:
    """Roles by rank, for the roles multi-select."""
    roles = db.session.scalars(sa.select(Role).order_by(Role.rank.desc(), Role.name))
    return [(role.code, role.name) for role in roles]


class UserForm(FlaskForm):
    """Create or edit a person."""

    username = StringField(
        _l("Username"),
        validators=[
            DataRequired(),
            Length(min=2, max=64),
            Regexp(
                USERNAME_PATTERN,
                message=_l("Use 2-64 letters, digits, dots, dashes or underscores."),
            ),
        ],
    )
    display_name = StringField(_l("Full name"), validators=[DataRequired(), Length(max=120)])
    email = EmailField(
        _l("Email"),
        validators=[Optional(), Length(max=254), Email(check_deliverability=False)],
    )
    phone = StringField(
        _l("Phone"),
        validators=[
            Optional(),
            Length(max=32),
            Regexp(r"^[0-9+() -]{3,32}$", message=_l("Digits, spaces, +, -, ( and ) only.")),
        ],
    )
    title = StringField(_l("Job title"), validators=[Optional(), Length(max=120)])
    unit_id = SelectField(_l("Unit"), coerce=_optional_int, validate_choice=True)
    roles = SelectMultipleField(
        _l("Roles"), validators=[DataRequired(message=_l("Choose at least one role."))]
    )
    active = BooleanField(_l("Active"), default=True)
    password = PasswordField(
        _l("Password"),
        validators=[Optional(), Length(max=256), strong_enough],
        description=_l("Leave empty to keep the current password."),
    )

    def __init__(self, *args: object, creating: bool = False, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.creating = creating
        self.unit_id.choices = unit_choices()
        self.roles.choices = role_choices()
        if creating:
            # A new person needs a first password. (An inline validate_password never ran:
            # Optional() stops the chain on an empty field, so "" became the password.)
            self.password.description = ""
            self.password.validators = [DataRequired(), Length(max=256), strong_enough]
            self.password.flags.required = True

    def person_fields(self) -> dict[str, object]:
        """The validated fields as ``services.create_user`` takes them."""
        return {
            name: getattr(self, name).data
            for name in (
                "username",
                "display_name",
                "password",
                "roles",
                "unit_id",
                "email",
                "phone",
                "title",
                "active",
            )
        }


class UnitForm(FlaskForm):
    """Create or edit an organisation unit."""

    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=120)])
    kind = SelectField(_l("Kind"), validators=[DataRequired()])
    parent_id = SelectField(_l("Part of"), coerce=_optional_int, validate_choice=True)
    leader_id = SelectField(_l("Leader"), coerce=_optional_int, validate_choice=True)
    active = BooleanField(_l("Active"), default=True)

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        kinds = sorted(current_app.extensions["portal"].unit_kinds.values(), key=lambda k: k.order)
        self.kind.choices = [(kind.code, kind.label) for kind in kinds]
        self.parent_id.choices = unit_choices()
        self.leader_id.choices = person_choices()


class RoleForm(FlaskForm):
    """Create or edit a role: its name, scopes and permissions."""

    code = StringField(
        _l("Code"),
        validators=[
            DataRequired(),
            Length(min=2, max=64),
            Regexp(
                r"^[a-z][a-z0-9_]{1,63}$", message=_l("Lower-case letters, digits and underscores.")
            ),
        ],
    )
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=120)])
    read_scope = SelectField(_l("Sees records of"), validators=[DataRequired()])
    write_scope = SelectField(_l("Changes records of"), validators=[DataRequired()])
    duties = TextAreaField(_l("Duties (one per line)"), validators=[Optional(), Length(max=4000)])
    permissions = SelectMultipleField(_l("Permissions"))

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        labels = SCOPE_LABELS
        self.read_scope.choices = [(s, labels[s]) for s in SCOPE_LEVELS if s != "none"]
        self.write_scope.choices = [(s, labels[s]) for s in SCOPE_LEVELS]
        declared = current_app.extensions["portal"].permissions
        self.permissions.choices = [
            (code, f"{permission.label} ({code})")
            for code, (_plugin, permission) in sorted(declared.items())
        ]
