"""Login and account forms; every message is translated and tied to its field."""

from __future__ import annotations

from flask import current_app
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length, ValidationError


class LoginForm(FlaskForm):
    """Username and password."""

    username = StringField(_l("Username"), validators=[DataRequired(), Length(max=64)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=256)])


def strong_enough(form: FlaskForm, field: PasswordField) -> None:
    """At least the configured length, not all digits, not the username."""
    value = field.data or ""
    minimum = current_app.config["PASSWORD_MIN_LENGTH"]
    if len(value) < minimum:
        raise ValidationError(_l("Use at least %(n)s characters.", n=minimum))
    if value.isdigit():
        raise ValidationError(_l("Use letters as well as digits."))
    username = getattr(getattr(form, "username", None), "data", None) or getattr(
        form, "_username", None
    )
    if username and value.lower() == str(username).lower():
        raise ValidationError(_l("The password must differ from the username."))


class PasswordChangeForm(FlaskForm):
    """Change one's own password: the current one proves it is really them."""

    current_password = PasswordField(_l("Current password"), validators=[DataRequired()])
    new_password = PasswordField(
        _l("New password"), validators=[DataRequired(), Length(max=256), strong_enough]
    )
    confirm = PasswordField(
        _l("Repeat the new password"),
        validators=[DataRequired(), EqualTo("new_password", message=_l("The passwords differ."))],
    )
