"""The ``portal`` command: Flask's CLI on the factory, plus the core's commands.

``portal run``, ``portal db ...`` (migrations), ``portal init-db``, ``portal demo``,
``portal users ...``, ``portal plugins list``, and whatever enabled plugins add.
"""

from __future__ import annotations

import sys
from typing import Any

import click
import sqlalchemy as sa
from flask import current_app
from flask.cli import FlaskGroup, with_appcontext

from .audit.recorder import acting_as
from .extensions import db


def _create_app() -> Any:
    from . import create_app

    return create_app()


def main() -> None:
    """Entry point of the ``portal`` console script."""
    group = FlaskGroup(create_app=_create_app, help="Salesloop portal.", add_version_option=False)
    group.main(prog_name="portal")


def _person(username: str) -> Any:
    from .auth.models import User

    user = db.session.scalars(sa.select(User).where(User.username == username)).first()
    if user is None:
        raise click.ClickException(f"no person with username '{username}'")
    return user


def _unit_id(unit: str | None) -> int | None:
    from .org.models import OrgUnit

    if not unit:
        return None
    if unit.isdigit():
        return int(unit)
    match = db.session.scalars(sa.select(OrgUnit.id).where(OrgUnit.name == unit)).all()
    if len(match) != 1:
        raise click.ClickException(f"unit '{unit}' matches {len(match)} units; give its id")
    return match[0]


@click.command("init-db")
@with_appcontext
def init_db() -> None:
    """Create or upgrade the database schema and seed roles and default grants."""
    from .database import sync_registry, upgrade_schema

    upgrade_schema()
    with acting_as("cli:init-db"):
        added = sync_registry()
    click.echo(
        f"Database ready ({current_app.config['SQLALCHEMY_DATABASE_URI'].split('@')[-1]}); "
        f"added {added['roles']} roles, {added['grants']} permission grants."
    )


@click.command("demo")
@with_appcontext
def demo() -> None:
    """Create the schema and the demo organisation; print the demo accounts."""
    from .database import sync_registry, upgrade_schema
    from .demo import DEMO_PASSWORD, run_demo

    upgrade_schema()
    with acting_as("cli:demo"):
        sync_registry()
        try:
            people = run_demo(current_app)
        except Exception as exc:
            raise click.ClickException(f"demo data failed: {exc}") from exc
    click.echo(f"\nDemo accounts (password for all: {DEMO_PASSWORD})\n")
    click.echo(f"  {'username':<14} {'role':<24} name")
    for person in people:
        role = person.top_role.name if person.top_role else "-"
        click.echo(f"  {person.username:<14} {role:<24} {person.display_name}")
    click.echo("\nStart the portal with `portal run`, then open http://127.0.0.1:5000 and log in.")


@click.group("users")
def users() -> None:
    """Manage people from the command line."""


@users.command("create")
@click.argument("username")
@click.option("--name", "display_name", required=True, help="Full name.")
@click.option("--role", "roles", multiple=True, required=True, help="Role code (repeatable).")
@click.option("--unit", help="Unit id or unique name.")
@click.option("--email")
@click.option("--password", help="Prefer --password-stdin or the prompt: shells keep history.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@with_appcontext
def users_create(
    username: str,
    display_name: str,
    roles: tuple[str, ...],
    unit: str | None,
    email: str | None,
    password: str | None,
    password_stdin: bool,
) -> None:
    """Create a person."""
    from .org.forms import UserForm
    from .org.services import ValidationFailed, create_user

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    elif not password:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    data = {
        "username": username,
        "display_name": display_name,
        "roles": list(roles),
        "unit_id": _unit_id(unit),
        "email": email or "",
        "password": password,
        "active": True,
    }
    from .api import ApiError, validated

    # The same form as the admin page and the API validate the input (they need a request).
    with current_app.test_request_context(), acting_as("cli:users create"):
        try:
            form = validated(UserForm, data, creating=True)
            user = create_user(**form.person_fields())
        except ApiError as error:
            raise click.ClickException(_field_messages(error.fields)) from None
        except ValidationFailed as error:
            db.session.rollback()
            raise click.ClickException(_field_messages(error.fields)) from None
        db.session.commit()
    click.echo(f"Created {user.username} (id {user.id}).")


def _field_messages(fields: Any) -> str:
    return "; ".join(
        f"{name}: {' '.join(str(m) for m in messages)}" for name, messages in fields.items()
    )


@users.command("token")
@click.argument("username")
@click.option("--name", default="cli", help="What the token is for.")
@with_appcontext
def users_token(username: str, name: str) -> None:
    """Print a new API token for a person (shown once; only its digest is kept)."""
    from .auth.services import issue_token

    user = _person(username)
    if not user.active:
        raise click.ClickException(f"{username} is disabled")
    with acting_as("cli:users token"):
        token = issue_token(user, name)
        db.session.commit()
    click.echo(token)


@users.command("revoke-tokens")
@click.argument("username")
@click.option("--name", default=None, help="Only the tokens with this name.")
@with_appcontext
def users_revoke_tokens(username: str, name: str | None) -> None:
    """Revoke a person's API tokens (all of them, or those with --name)."""
    from .auth.services import revoke_tokens

    user = _person(username)
    with acting_as("cli:users revoke-tokens"):
        count = revoke_tokens(user, name)
        db.session.commit()
    click.echo(f"Revoked {count} token(s) of {username}.")


@users.command("list")
@with_appcontext
def users_list() -> None:
    """List people (username, roles, unit, status)."""
    from .auth.models import User

    for user in db.session.scalars(sa.select(User).order_by(User.username).limit(10000)):
        unit = user.unit.name if user.unit else "-"
        state = "active" if user.active else "disabled"
        click.echo(
            f"{user.username:<16} {','.join(sorted(user.role_codes)):<24} {unit:<24} {state}"
        )


@users.command("set-active")
@click.argument("username")
@click.argument("active", type=click.BOOL)
@with_appcontext
def users_set_active(username: str, active: bool) -> None:
    """Enable (true) or disable (false) a person; disabling ends their sessions and tokens."""
    from .org.services import update_user

    user = _person(username)
    with acting_as("cli:users set-active"):
        update_user(user, {"active": active})
        db.session.commit()
    click.echo(f"{username} is now {'active' if active else 'disabled'}.")


@click.group("plugins")
def plugins_command() -> None:
    """Inspect plugins."""


@plugins_command.command("list")
@with_appcontext
def plugins_list() -> None:
    """Each plugin: name, version, source, enabled state, hooks, start-up error."""
    host = current_app.extensions["portal"].host
    for record in sorted(host.records.values(), key=lambda r: r.name):
        state = "loaded" if record.loaded else ("disabled" if not record.enabled else "FAILED")
        click.echo(f"{record.name}  {record.version or '-'}  source={record.source}  {state}")
        if record.hooks:
            click.echo(f"    hooks: {', '.join(record.hooks)}")
        if record.error:
            click.echo(f"    error: {record.error}")
