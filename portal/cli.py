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
    group.add_command(_run_with_scheduler())  # replaces Flask's `run`
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


# -- scheduled jobs ------------------------------------------------------------------


class _UnknownJobError(click.ClickException):
    """Exit code 2 (a usage mistake), with the known job names in the message."""

    exit_code = 2


def _every(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _when(moment: Any) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "-"


def _echo_result(result: Any) -> None:
    detail = f"  {result.detail}" if result.detail else ""
    click.echo(f"{result.name}: {result.status}{detail}", err=result.failed)


def _queue_choice(enqueue: bool | None) -> bool:
    from .loops.scheduler import QueueNotConfigured, wants_queue

    try:
        return wants_queue(enqueue)
    except QueueNotConfigured as error:
        raise click.UsageError(str(error)) from None


@click.group("jobs")
def jobs_command() -> None:
    """Scheduled jobs: list them, run one, or run those that are due (for cron)."""


@jobs_command.command("list")
@with_appcontext
def jobs_list() -> None:
    """Each job: name, period, next run, last status and when it last finished."""
    from .loops.scheduler import job_states
    from .models import utcnow

    now = utcnow()
    click.echo(f"{'name':<32} {'every':>6}  {'next run':<23}  {'last':<8} last finished")
    for info in job_states():
        status = info.last_status or "never"
        if info.lease_owner and info.lease_until and info.lease_until >= now:
            status = "running"
        click.echo(
            f"{info.name:<32} {_every(info.every_seconds):>6}  {_when(info.next_run_at):<23}  "
            f"{status:<8} {_when(info.last_finished_at)}"
        )


@jobs_command.command("run")
@click.argument("name")
@click.option("--if-due", is_flag=True, help="Only if it is due (default: run it now).")
@click.option("--enqueue", is_flag=True, help="Put it on the RQ queue instead of running it here.")
@with_appcontext
def jobs_run(name: str, if_due: bool, enqueue: bool) -> None:
    """Run the job NAME now (never while another run of it holds the lease)."""
    from .loops.scheduler import UnknownJob, run_job

    try:
        result = run_job(name, force=not if_due, enqueue=enqueue and _queue_choice(True))
    except UnknownJob as error:
        raise _UnknownJobError(str(error)) from None
    _echo_result(result)
    if result.failed:
        raise click.ClickException(f"job {name} failed")
    if result.status == "busy":
        sys.exit(1)


@jobs_command.command("run-due")
@click.option(
    "--enqueue/--in-process",
    default=None,
    help="Put due jobs on the RQ queue (PORTAL_QUEUE_URL), or run them here "
    "(default: the queue when configured).",
)
@with_appcontext
def jobs_run_due(enqueue: bool | None) -> None:
    """Run (or enqueue) every job that is due; for cron, every minute. Exits 1 when a job
    failed, so cron reports it."""
    from .loops.scheduler import run_due

    results = run_due(enqueue=_queue_choice(enqueue))
    for result in results:
        _echo_result(result)
    if any(result.failed for result in results):
        raise click.ClickException("some jobs failed")


@jobs_command.command("worker")
@click.option(
    "--interval", type=click.IntRange(1, 3600), default=None, help="Seconds between rounds."
)
@click.option("--enqueue/--in-process", default=None, help="As for run-due.")
@with_appcontext
def jobs_worker(interval: int | None, enqueue: bool | None) -> None:
    """Run due jobs in a foreground loop (instead of cron); stop with Ctrl-C."""
    import time

    from .loops.scheduler import run_due

    use_queue = _queue_choice(enqueue)
    pause = interval or int(current_app.config.get("SCHEDULER_INTERVAL_SECONDS", 30))
    click.echo(f"Running due jobs every {pause}s; Ctrl-C stops.")
    try:
        while True:
            try:
                for result in run_due(enqueue=use_queue):
                    _echo_result(result)
            except Exception as error:  # a database restart must not end the worker
                db.session.rollback()
                click.echo(f"round failed: {error}", err=True)
            time.sleep(pause)
    except KeyboardInterrupt:
        click.echo("Stopped.")


def _run_with_scheduler() -> click.Command:
    """Flask's ``run`` plus the one embedded scheduler thread of the served process
    (in the reloader's child only, so a debug run does not start two)."""
    from flask.cli import ScriptInfo, get_debug_flag, run_command
    from werkzeug.serving import is_running_from_reloader

    @click.pass_context
    def run(ctx: click.Context, **options: Any) -> None:
        reload = options.get("reload")
        if reload is None:
            reload = get_debug_flag()
        if not reload or is_running_from_reloader():
            from .loops.scheduler import start_embedded_scheduler

            start_embedded_scheduler(ctx.ensure_object(ScriptInfo).load_app())
        ctx.invoke(run_command, **options)

    return click.Command(
        "run",
        callback=run,
        params=list(run_command.params),
        help=(run_command.help or "")
        + "\n\nAlso runs the scheduled jobs in one background thread (SCHEDULER_EMBEDDED).",
        short_help="Run the portal (development/intranet server) with its job scheduler.",
    )
