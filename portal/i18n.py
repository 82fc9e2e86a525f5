"""Choosing the language: the person's choice, then the session's, then the browser's."""

from __future__ import annotations

from flask import current_app, has_request_context, request, session
from flask_login import current_user


def _supported(value: str | None) -> str | None:
    """Map a language tag (zh-CN, zh_Hans, en-GB ...) to a supported locale, or None."""
    if not value:
        return None
    tag = value.replace("-", "_").lower()
    for locale in current_app.config["PORTAL_LOCALES"]:
        if tag == locale.lower() or tag.split("_")[0] == locale.lower().split("_")[0]:
            return locale
    return None


def select_locale() -> str:
    """The locale for this request (Flask-Babel's locale selector)."""
    if not has_request_context():  # CLI and jobs: the installation's default
        return current_app.config["BABEL_DEFAULT_LOCALE"]
    if current_user and current_user.is_authenticated and _supported(current_user.locale):
        return _supported(current_user.locale)  # type: ignore[return-value]
    chosen = _supported(session.get("locale"))
    if chosen:
        return chosen
    for value, _quality in request.accept_languages:
        chosen = _supported(value)
        if chosen:
            return chosen
    return current_app.config["BABEL_DEFAULT_LOCALE"]


def supported_locales() -> list[tuple[str, str]]:
    """(code, name in its own language) for the language switch."""
    names = {"en": "English", "zh_CN": "简体中文"}
    return [(code, names.get(code, code)) for code in current_app.config["PORTAL_LOCALES"]]
