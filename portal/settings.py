"""Settings plugins declare and admins change without code.

A value comes from, in order of precedence: an admin's saved value (database), the
installation's ``PORTAL_SETTINGS`` mapping in instance config, the declared default.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from flask import current_app, g, has_request_context
from sqlalchemy.orm import Mapped, mapped_column

from .extensions import db
from .plugins.types import SettingSpec


class Setting(db.Model):
    """An admin's value for a declared setting, stored as JSON."""

    __tablename__ = "core_setting"

    key: Mapped[str] = mapped_column(sa.String(120), primary_key=True)
    value: Mapped[str] = mapped_column(sa.Text)


class SettingValueError(ValueError):
    """A value that does not fit its declaration; the message is for the admin."""


def declared_settings() -> dict[str, SettingSpec]:
    """Every declared setting by key."""
    return current_app.extensions["portal"].settings


def coerce(spec: SettingSpec, raw: Any) -> Any:
    """Turn ``raw`` (form text or JSON) into the declared type, or raise SettingValueError."""
    from flask_babel import gettext as _

    if spec.type == "bool":
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("1", "true", "yes", "on", "y"):
            return True
        if text in ("0", "false", "no", "off", "n", ""):
            return False
        raise SettingValueError(_("Enter yes or no."))
    if spec.type == "int":
        try:
            value = int(str(raw).strip())
        except ValueError:
            raise SettingValueError(_("Enter a whole number.")) from None
        if spec.minimum is not None and value < spec.minimum:
            raise SettingValueError(_("Must be at least %(n)s.", n=spec.minimum))
        if spec.maximum is not None and value > spec.maximum:
            raise SettingValueError(_("Must be at most %(n)s.", n=spec.maximum))
        return value
    text = str(raw).strip()
    if spec.type == "choice" and text not in spec.choices:
        raise SettingValueError(_("Choose one of: %(choices)s.", choices=", ".join(spec.choices)))
    if len(text) > 2000:
        raise SettingValueError(_("At most 2000 characters."))
    return text


def get_setting(key: str) -> Any:
    """The value in force for a declared setting (cached for the request)."""
    specs = declared_settings()
    if key not in specs:
        raise KeyError(f"setting '{key}' is not declared by any enabled plugin")
    cache: dict[str, Any] | None = (
        g.setdefault("_portal_settings", {}) if has_request_context() else None
    )
    if cache is not None and key in cache:
        return cache[key]
    row = db.session.get(Setting, key)
    if row is not None:
        value = json.loads(row.value)
    else:
        value = current_app.config.get("PORTAL_SETTINGS", {}).get(key, specs[key].default)
    if cache is not None:
        cache[key] = value
    return value


def set_setting(key: str, raw: Any) -> Any:
    """Validate and store an admin's value; the caller commits."""
    spec = declared_settings()[key]
    value = coerce(spec, raw)
    row = db.session.get(Setting, key)
    if row is None:
        db.session.add(Setting(key=key, value=json.dumps(value)))
    else:
        row.value = json.dumps(value)
    if has_request_context():
        g.pop("_portal_settings", None)
    return value
