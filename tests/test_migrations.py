"""Schema changes go through migrations: upgrade from empty, models match, downgrade."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from portal import create_app
from portal.database import upgrade_schema
from portal.extensions import db
from portal.testing import base_config


@pytest.fixture
def empty_database(tmp_path: Path) -> Any:
    """A brand-new database on the same kind of server as the suite's."""
    url = os.environ.get("TEST_DATABASE_URL", "")
    if "postgresql" not in url:
        yield "sqlite:///" + str(tmp_path / "fresh.db")
        return
    admin = sa.create_engine(
        url.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT"
    )
    name = "salesloop_migration_check"
    with admin.connect() as connection:
        connection.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        connection.execute(sa.text(f"CREATE DATABASE {name}"))
    yield url.rsplit("/", 1)[0] + "/" + name
    with admin.connect() as connection:
        connection.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    admin.dispose()


def test_upgrade_from_empty_matches_the_models_and_downgrades_cleanly(
    empty_database: str, tmp_path: Path
) -> None:
    from flask_migrate import downgrade

    app = create_app(base_config(empty_database, tmp_path))
    with app.app_context():
        upgrade_schema()
        with db.engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), db.metadata)
        assert differences == [], differences
        tables = set(sa.inspect(db.engine).get_table_names())
        assert {"core_user", "core_org_unit", "core_audit_event", "alembic_version"} <= tables
        downgrade(revision="base")
        remaining = set(sa.inspect(db.engine).get_table_names()) - {"alembic_version"}
        assert remaining == set()
        db.engine.dispose()


def test_sqlite_runs_with_foreign_keys_and_wal(app: Any) -> None:
    with app.app_context():
        if db.engine.dialect.name != "sqlite":
            pytest.skip("SQLite pragmas")
        with db.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
