"""Alembic environment for the portal: the app's engine and metadata, every enabled
plugin's revision folder, batch mode so SQLite can alter tables."""

from __future__ import annotations

import logging
import os
from logging.config import fileConfig

from alembic import context
from flask import current_app

config = context.config
if config.config_file_name is not None and not os.environ.get("PORTAL_QUIET_MIGRATIONS"):
    fileConfig(config.config_file_name, disable_existing_loggers=False)
log = logging.getLogger("alembic.env")

state = current_app.extensions["portal"]
config.set_main_option("version_locations", os.pathsep.join(state.migration_dirs))
metadata = current_app.extensions["migrate"].db.metadata


def run_migrations_offline() -> None:
    """Emit SQL to stdout instead of touching a database (`portal db upgrade --sql`)."""
    context.configure(
        url=str(current_app.extensions["migrate"].db.engine.url),
        target_metadata=metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run against the app's engine in one transaction."""

    def skip_empty(context_, revision, directives):  # noqa: ANN001 - Alembic's callback
        if getattr(config.cmd_opts, "autogenerate", False) and directives[0].upgrade_ops.is_empty():
            directives[:] = []
            log.info("No changes in schema detected.")

    connectable = current_app.extensions["migrate"].db.engine
    with connectable.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=True,
            compare_type=True,
            process_revision_directives=skip_empty,
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
