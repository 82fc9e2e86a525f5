"""Salesloop portal core: the application factory.

The core is mechanism only (plugins, auth, organisation tree, scopes, audit, API,
layout); every chapter of the policy is a plugin found through the ``portal.plugins``
entry-point group.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.routing import IntegerConverter

from . import config as default_config
from .caches import TEMPLATE_CODE, LazyBuilderRule
from .extensions import babel, csrf, db, htmx, login_manager, migrate
from .listing import MAX_ID


class BoundedIntConverter(IntegerConverter):
    """``<int:id>`` that only matches ids a database column can hold."""

    def __init__(self, url_map: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", MAX_ID)
        super().__init__(url_map, *args, **kwargs)


MIGRATIONS_DIR = str(Path(__file__).resolve().parent.parent / "migrations")


def _secret_key(instance_path: str) -> str:
    """Read the installation's secret key, creating it on first start (never hard-coded).

    Created exclusively and private from the first byte, so two workers starting at once
    agree on one key and no other user can ever read it."""
    path = Path(instance_path) / "secret_key"
    try:
        descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_hex(32))
    for _ in range(50):  # another worker may be writing it this very moment
        key = path.read_text().strip()
        if key:
            return key
        time.sleep(0.01)
    raise RuntimeError(f"{path} is empty; delete it and start again")


def _configure(app: Flask, config: dict[str, Any] | None) -> None:
    app.config.from_object(default_config)
    if config is None or not config.get("TESTING"):
        app.config.from_pyfile("config.py", silent=True)
    # PORTAL_DATABASE_URL, PORTAL_SECRET_KEY ... (JSON values are parsed).
    app.config.from_prefixed_env("PORTAL")
    # PORTAL_PLUGINS / PORTAL_SETTINGS (and PORTAL_BASE_URL, PORTAL_QUEUE_URL of the
    # mailer and the job queue) keep their prefix in the config: the prefix is
    # part of their names. A comma-separated plugin list is accepted as well as JSON.
    for key in ("PLUGINS", "SETTINGS", "BASE_URL", "QUEUE_URL"):
        if key in app.config:
            app.config[f"PORTAL_{key}"] = app.config.pop(key)
    if isinstance(app.config.get("PORTAL_PLUGINS"), str):
        names = app.config["PORTAL_PLUGINS"].split(",")
        app.config["PORTAL_PLUGINS"] = [name.strip() for name in names if name.strip()]
    if os.environ.get("DATABASE_URL") and "DATABASE_URL" not in app.config:
        app.config["DATABASE_URL"] = os.environ["DATABASE_URL"]
    if config:
        app.config.update(config)
    os.makedirs(app.instance_path, exist_ok=True)
    database_url = app.config.get("DATABASE_URL") or (
        "sqlite:///" + os.path.join(app.instance_path, "portal.db")
    )
    if database_url.startswith("postgresql://"):
        database_url = "postgresql+psycopg://" + database_url.removeprefix("postgresql://")
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = _secret_key(app.instance_path)


def _plugin_version_locations(config: Any) -> Any:
    """Point Alembic at the core's and every enabled plugin's revision folders.

    Alembic reads ``version_locations`` when it builds the script directory, before
    ``env.py`` runs, so it is set here (a Flask-Migrate configure callback) for every
    ``portal db`` command: ``upgrade heads`` then applies each plugin's branch and
    ``revision --version-path=<plugin folder>`` accepts the plugin's folder.
    """
    from flask import current_app

    dirs = current_app.extensions["portal"].migration_dirs
    config.set_main_option("version_locations", os.pathsep.join(dirs))
    return config


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build one portal application.

    ``config`` overrides everything (tests pass ``TESTING`` and a database URL, and may
    pass ``PORTAL_EXTRA_PLUGINS``: (name, object) pairs registered as plugins).
    """
    app = Flask(
        __name__, instance_relative_config=True, instance_path=(config or {}).get("INSTANCE_PATH")
    )
    # Built once per app, the same way in every app of a process (see caches.py).
    app.url_rule_class = LazyBuilderRule
    app.jinja_options = {**app.jinja_options, "bytecode_cache": TEMPLATE_CODE}
    # Ids in URLs are bounded: a 30-digit id answers 404 instead of overflowing the database.
    app.url_map.converters["int"] = BoundedIntConverter
    _configure(app, config)
    logging.basicConfig(level=app.config.get("LOG_LEVEL", "INFO"))

    from . import core_plugin, database
    from .audit import recorder
    from .plugins.manager import PluginHost
    from .plugins.registry import install_plugins, run_startup

    db.init_app(app)
    database.install(app)
    recorder.install(database.session_class())

    host = PluginHost()
    host.load(
        core_plugin,
        enabled=app.config.get("PORTAL_PLUGINS"),
        extra=app.config.get("PORTAL_EXTRA_PLUGINS", ()),
    )
    state = install_plugins(app, host)
    app.extensions["portal"] = state

    migrate.init_app(app, db, directory=MIGRATIONS_DIR, render_as_batch=True)
    if _plugin_version_locations not in migrate.configure_callbacks:
        migrate.configure(_plugin_version_locations)
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = ";".join(
        [str(Path(__file__).parent / "translations"), *state.translation_dirs]
    )
    from . import i18n, security, web
    from .api import build_api

    babel.init_app(app, locale_selector=i18n.select_locale)
    login_manager.init_app(app)
    csrf.init_app(app)
    htmx.init_app(app)
    security.install(app)
    if app.config.get("PROXY_HOPS"):
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = int(app.config["PROXY_HOPS"])
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    web.install(app)
    from .rules.service import RuleService

    app.extensions["portal_rules"] = RuleService(app)
    app.register_blueprint(build_api(state))
    run_startup(app, state)
    return app
