"""Choosing the language: the person's choice, then the session's, then the browser's."""

from __future__ import annotations

from babel import support
from flask import current_app, has_request_context, request, session
from flask_babel import Babel, Domain, get_locale
from flask_login import current_user
from werkzeug.utils import cached_property


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


def current_locale() -> str:
    """The supported code of this request's locale ("zh_CN"), for ``<html lang>`` and the
    language switch. Babel expands zh_CN to "zh_Hans_CN", which matches no option."""
    locale = get_locale()
    if locale is None:
        return current_app.config["BABEL_DEFAULT_LOCALE"]
    code = f"{locale.language}_{locale.territory}" if locale.territory else locale.language
    return _supported(code) or str(locale)


class CatalogDomain(Domain):
    """Loads the catalogs from the folders named by the portal's codes (translations/zh_CN).

    Babel expands zh_CN to zh_Hans_CN, and gettext then looks only in zh_Hans_CN/ and zh/,
    so a zh_CN catalog was never loaded: also try language_TERRITORY. The cache is keyed
    by the translation folders too, since apps with different plugins share this object.
    """

    def get_translations(self) -> support.NullTranslations:
        locale = get_locale()
        if locale is None:
            return support.NullTranslations()
        names = [str(locale)]
        if locale.territory:
            names.append(f"{locale.language}_{locale.territory}")
        directories = tuple(self.translation_directories)
        key = (directories, tuple(names), tuple(self.domain))
        translations = self.cache.get(key)
        if translations is None:
            translations = support.Translations()
            for index, dirname in enumerate(directories):
                domain = self.domain[0] if len(self.domain) == 1 else self.domain[index]
                catalog = support.Translations.load(dirname, names, domain)
                translations.merge(catalog)
                if hasattr(catalog, "plural"):  # merge() does not copy it
                    translations.plural = catalog.plural
            self.cache[key] = translations
        return translations


class PortalBabel(Babel):
    """Flask-Babel with the portal's catalog lookup."""

    @cached_property
    def domain_instance(self) -> Domain:
        return CatalogDomain(domain=self.domain)


def untranslated(text: object) -> str:
    """The source (English) text of a lazy string, whatever the request's language."""
    arguments = getattr(text, "_args", None)
    if arguments and isinstance(arguments[0], str) and not getattr(text, "_kwargs", None):
        return arguments[0]
    return str(text)
