"""Flask extensions, created unbound and attached in ``create_app`` (the init_app pattern).

Keeping them here lets models and plugins import ``db`` without importing the app.
"""

from typing import Any

import sqlalchemy as sa
from flask import Flask
from flask_htmx import HTMX
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

from .caches import shared_engine
from .i18n import PortalBabel

# One naming convention so SQLite batch migrations and PostgreSQL produce the same names.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base shared by the core and every plugin."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class PortalSQLAlchemy(SQLAlchemy):
    """Flask-SQLAlchemy, with engines shared between the apps of one process when their
    config gives a dict as ``PORTAL_SHARED_ENGINES`` (the test suite builds an app per
    test: see ``caches.shared_engine``)."""

    def _make_engine(
        self, bind_key: str | None, options: dict[str, Any], app: Flask
    ) -> sa.engine.Engine:
        engines = app.config.get("PORTAL_SHARED_ENGINES")
        if engines is None:
            return super()._make_engine(bind_key, options, app)

        def make() -> sa.engine.Engine:
            return super(PortalSQLAlchemy, self)._make_engine(bind_key, options, app)

        return shared_engine(engines, options, make)


db = PortalSQLAlchemy(model_class=Base)
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
babel = PortalBabel()  # finds zh_CN catalogs (see i18n.CatalogDomain)
htmx = HTMX()
