"""The core's own contributions, made through the same hooks plugins use.

Dogfooding the contract keeps it honest: if a hook cannot carry what the core needs,
it cannot carry what a plugin needs either. The core is registered as plugin "core".
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Flask
from flask_babel import lazy_gettext as _l

from .plugins import (
    EventType,
    Job,
    LoopType,
    NavItem,
    NotificationKind,
    Permission,
    PluginMeta,
    RoleSpec,
    RuleAction,
    SettingSpec,
    hookimpl,
)


@hookimpl
def portal_plugin_meta() -> PluginMeta:
    return PluginMeta(name="core", title=_l("Portal core"), version="0.1.0", clause="P1, P2.1")


@hookimpl
def portal_models() -> None:
    from . import settings  # noqa: F401
    from .audit import models as audit_models  # noqa: F401
    from .auth import models as auth_models  # noqa: F401
    from .loops import models as loop_models  # noqa: F401
    from .org import models as org_models  # noqa: F401
    from .rules import models as rule_models  # noqa: F401


@hookimpl
def portal_migrations() -> str:
    return str(Path(__file__).resolve().parent.parent / "migrations" / "versions")


@hookimpl
def portal_blueprints() -> list[Any]:
    from . import web
    from .admin.views import bp as admin_bp
    from .audit.views import bp as audit_bp
    from .auth import services  # noqa: F401  (registers the session user loader)
    from .auth.views import bp as auth_bp
    from .loops.approval_views import bp as approvals_bp
    from .loops.loop_views import bp as loops_bp
    from .loops.notification_views import bp as notifications_bp
    from .loops.work_views import bp as work_bp
    from .org.views import bp as people_bp
    from .rules.views import bp as rules_bp

    return [
        web.bp,
        auth_bp,
        people_bp,
        admin_bp,
        audit_bp,
        rules_bp,
        work_bp,
        loops_bp,
        approvals_bp,
        notifications_bp,
    ]


@hookimpl
def portal_roles() -> list[RoleSpec]:
    # Administration and audit are mechanism; the sales roles come from the organisation plugin.
    return [
        RoleSpec(
            "admin",
            _l("Administrator"),
            read_scope="all",
            write_scope="all",
            rank=100,
            duties=[_l("Manage people, roles, units, settings and rule files")],
        ),
        RoleSpec(
            "auditor",
            _l("Auditor (read-only)"),
            read_scope="all",
            write_scope="none",
            rank=5,
            duties=[_l("Review records and the audit log without changing them")],
        ),
    ]


@hookimpl
def portal_permissions() -> list[Permission]:
    return [
        Permission("core.users.manage", _l("Manage people"), default_roles=("admin",)),
        Permission(
            "core.roles.manage", _l("Manage roles and permissions"), default_roles=("admin",)
        ),
        Permission("core.org.manage", _l("Manage organisation units"), default_roles=("admin",)),
        Permission("core.settings.manage", _l("Change settings"), default_roles=("admin",)),
        Permission("core.plugins.view", _l("See installed plugins"), default_roles=("admin",)),
        Permission("core.audit.read", _l("Read the audit log"), default_roles=("admin", "auditor")),
        Permission(
            "core.rules.read",
            _l("Read the rule files and their decisions"),
            default_roles=("admin", "auditor"),
        ),
        Permission(
            "core.rules.manage",
            _l("Edit, test, simulate and publish rule files"),
            default_roles=("admin",),
        ),
    ]


@hookimpl
def portal_settings() -> list[SettingSpec]:
    return [
        SettingSpec(
            "core.company_name",
            _l("Company name"),
            default="Salesloop",
            help=_l("Shown in the header of every page."),
        ),
        SettingSpec(
            "core.login_attempts_kept_days",
            _l("Keep login attempts for (days)"),
            type="int",
            default=90,
            minimum=1,
            maximum=3650,
        ),
    ]


@hookimpl
def portal_cli_commands() -> list[Any]:
    from . import cli
    from .rules.cli import rules_command

    return [cli.users, cli.plugins_command, cli.init_db, cli.demo, rules_command, cli.jobs_command]


def purge_login_attempts() -> int:
    """Delete login attempts older than the configured number of days."""
    from .auth.models import LoginAttempt
    from .extensions import db
    from .settings import get_setting

    cutoff = datetime.now(UTC) - timedelta(days=int(get_setting("core.login_attempts_kept_days")))
    result = db.session.execute(sa.delete(LoginAttempt).where(LoginAttempt.at < cutoff))
    db.session.commit()
    return result.rowcount or 0


def escalate_overdue_loops() -> Any:
    """Job: escalate overdue loop items as the rule file ``loop_escalation`` says."""
    from .loops.service import escalate_overdue

    return escalate_overdue()


def remind_due_loops() -> Any:
    """Job: remind owners of loop items falling due soon."""
    from .loops.service import remind_due_soon

    return remind_due_soon()


def send_queued_emails() -> Any:
    """Job: deliver the queued notification emails over SMTP."""
    from .loops.mailer import send_queued

    return send_queued()


@hookimpl
def portal_jobs() -> list[Job]:
    return [
        Job(
            "core.purge_login_attempts",
            purge_login_attempts,
            every_seconds=86400,
            description="Delete old login attempts",
        ),
        Job(
            "core.escalate_overdue_loops",
            escalate_overdue_loops,
            every_seconds=3600,
            description="Escalate overdue loop items to the owner's supervisors (P1.3.2)",
        ),
        Job(
            "core.remind_due_loops",
            remind_due_loops,
            every_seconds=86400,
            description="Remind owners of loop items falling due soon",
        ),
        Job(
            "core.send_emails",
            send_queued_emails,
            every_seconds=60,
            description="Send queued notification emails",
        ),
    ]


@hookimpl
def portal_loop_types() -> list[LoopType]:
    # The one mechanism-level type: an action raised by hand (P1.3.4 improvement).
    # Chapter plugins declare their own (follow-up, complaint, risk warning ...).
    return [
        LoopType(
            "core.action",
            _l("Action item"),
            clause="P1.3.2",
            description=_l("Something raised by hand that must be done and verified"),
        )
    ]


@hookimpl
def portal_notification_kinds() -> list[NotificationKind]:
    return [
        NotificationKind("core.loop_assigned", _l("A loop item was given to me")),
        NotificationKind("core.loop_due_soon", _l("A loop item of mine is due soon")),
        NotificationKind("core.loop_overdue", _l("A loop item is overdue or escalated to me")),
        NotificationKind("core.loop_to_verify", _l("A loop item I raised is done: verify it")),
        NotificationKind("core.loop_reopened", _l("A loop item of mine was reopened")),
        NotificationKind("core.approval_waiting", _l("An approval waits for me")),
        NotificationKind(
            "core.approval_decided", _l("My request was approved, rejected or returned")
        ),
    ]


def flag_action(context: dict[str, Any], decision: Any, message: str) -> None:
    """Rule action ``flag``: attach a warning the page shows next to the record."""
    context.setdefault("flags", []).append({"rule": decision.label, "message": message})


def block_action(context: dict[str, Any], decision: Any, message: str) -> None:
    """Rule action ``block``: refuse the change with the rule's message."""
    from .rules.service import RuleBlocked

    raise RuleBlocked(message)


@hookimpl
def portal_rule_actions() -> list[RuleAction]:
    return [
        RuleAction(
            "core.flag",
            flag_action,
            arguments={"message": str},
            description="Attach a warning to the record",
        ),
        RuleAction(
            "core.block",
            block_action,
            arguments={"message": str},
            description="Refuse the change with a message",
        ),
    ]


@hookimpl
def portal_event_types() -> list[EventType]:
    return [
        EventType("core.user_created", "A person was created", payload=("user_id",)),
        EventType(
            "core.user_moved",
            "A person moved to another unit",
            payload=("user_id", "from_unit_id", "to_unit_id"),
        ),
        EventType("core.user_disabled", "A person was disabled", payload=("user_id",)),
        EventType(
            "core.loop_raised",
            "A loop item was raised",
            payload=("loop_id", "type", "subject_table", "subject_id"),
        ),
        EventType(
            "core.loop_changed",
            "A loop item changed status (started, done, verified, reopened, escalated)",
            payload=(
                "loop_id",
                "type",
                "action",
                "from_status",
                "to_status",
                "subject_table",
                "subject_id",
            ),
        ),
        EventType(
            "core.approval_decided",
            "An approval request was approved, rejected, returned or cancelled",
            payload=("request_id", "kind", "status", "subject_table", "subject_id"),
        ),
    ]


@hookimpl
def portal_api_routes() -> list[Any]:
    from .api.resources import ROUTES
    from .loops.approval_api import ROUTES as APPROVAL_ROUTES
    from .loops.loop_api import ROUTES as LOOP_ROUTES

    return [*ROUTES, *LOOP_ROUTES, *APPROVAL_ROUTES]


@hookimpl(trylast=True)
def portal_nav_items(user: Any) -> list[NavItem]:
    return [
        NavItem("web.home", _l("Home"), order=0),
        NavItem("work.inbox", _l("My work"), order=5),
        NavItem("approvals.index", _l("Approvals"), order=6),
        NavItem("work.metrics", _l("Loop metrics"), order=85),
        NavItem("people.directory", _l("People"), order=90),
        NavItem(
            "admin.users", _l("People"), order=10, section="admin", permission="core.users.manage"
        ),
        NavItem(
            "admin.units",
            _l("Organisation units"),
            order=20,
            section="admin",
            permission="core.org.manage",
        ),
        NavItem(
            "admin.roles",
            _l("Roles and permissions"),
            order=30,
            section="admin",
            permission="core.roles.manage",
        ),
        NavItem(
            "admin.settings",
            _l("Settings"),
            order=40,
            section="admin",
            permission="core.settings.manage",
        ),
        NavItem(
            "admin.plugins",
            _l("Plugins"),
            order=50,
            section="admin",
            permission="core.plugins.view",
        ),
        NavItem(
            "audit.index", _l("Audit log"), order=60, section="admin", permission="core.audit.read"
        ),
        NavItem(
            "rules.index",
            _l("Rule files"),
            order=70,
            section="admin",
            permission="core.rules.read",
        ),
        NavItem("people.me", _l("My profile"), order=10, section="user"),
        NavItem("notifications.index", _l("Notifications"), order=12, section="user"),
        NavItem("notifications.preferences", _l("Email preferences"), order=14, section="user"),
        NavItem("approvals.delegations", _l("Delegation while away"), order=16, section="user"),
        NavItem("auth.change_password", _l("Change password"), order=20, section="user"),
    ]


@hookimpl
def portal_demo_data(app: Flask) -> None:
    from .demo import ensure_person

    ensure_person("admin", "Alex Admin / 管理员", roles=["admin"], title="IT administrator")
    ensure_person("auditor", "Audrey Auditor / 审计员", roles=["auditor"], title="Internal audit")
