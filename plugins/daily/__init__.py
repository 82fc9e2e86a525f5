"""P6 Daily management: attendance and leave (P6.1), meetings (P6.2), expenses (P6.4).

Hook implementations only. The parts, one set of files each (services ``<part>.py``,
pages ``<part>_views.py``, forms ``<part>_forms.py``, JSON ``<part>_api.py``):
attendance (check-in, schedules and holidays, classification, missed-punch
corrections, the monthly report and the month-end sweep), leave (types, balances,
requests), meetings (agenda, materials, attendance, minutes, resolutions) and expenses
(claims, lines, receipts, payment) with expense_reports (analysis against budget).
``calendar.py`` knows which days are worked; ``demo.py`` makes a month of it.
P6.3 (sales data) lives in the sales plugin, next to the data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask
from flask_babel import lazy_gettext as _l

from portal.plugins import (
    ApiRoute,
    ApprovalKind,
    Job,
    LoopType,
    NavItem,
    NotificationKind,
    Permission,
    PluginMeta,
    Widget,
    hookimpl,
)

NAME = "daily"

EMPLOYEES = ("salesperson", "supervisor", "manager", "finance", "hr", "admin")
LEADERS = ("supervisor", "manager")


@hookimpl
def portal_plugin_meta() -> PluginMeta:
    return PluginMeta(
        name=NAME,
        title=_l("Daily management"),
        version="0.1.0",
        clause="P6",
        description=_l("Attendance and leave, team meetings, expense claims."),
        requires=("organisation",),
    )


@hookimpl
def portal_models() -> None:
    from . import models  # noqa: F401


@hookimpl
def portal_migrations() -> str:
    return str(Path(__file__).resolve().parent / "migrations")


@hookimpl
def portal_permissions() -> list[Permission]:
    # The admin holds every right a role it hands out carries (nobody grants more than
    # they hold), so "admin" is in every list.
    overseers = (*LEADERS, "hr", "admin", "auditor")
    return [
        Permission(
            "daily.attend", _l("Check in and out, ask for leave and corrections"), EMPLOYEES
        ),
        Permission("daily.view_attendance", _l("See the team's attendance and leave"), overseers),
        Permission(
            "daily.manage_attendance",
            _l("Set schedules, holidays, leave types and balances; lock a month"),
            ("hr", "admin"),
        ),
        Permission("daily.meet", _l("See the meetings one is asked to"), EMPLOYEES),
        Permission("daily.run_meetings", _l("Call and run team meetings"), (*LEADERS, "admin")),
        Permission("daily.claim", _l("Claim expenses"), EMPLOYEES),
        Permission("daily.pay", _l("Mark approved expense claims paid"), ("finance", "admin")),
        Permission(
            "daily.view_expenses",
            _l("See expense analysis and budgets"),
            (*LEADERS, "finance", "admin", "auditor"),
        ),
        Permission(
            "daily.manage_budgets", _l("Set expense budgets"), ("finance", "manager", "admin")
        ),
        Permission(
            "daily.export",
            _l("Export attendance and expense data"),
            (*LEADERS, "hr", "finance", "admin", "auditor"),
        ),
    ]


@hookimpl
def portal_loop_types() -> list[LoopType]:
    return [
        LoopType(
            "daily.attendance_follow_up",
            _l("Attendance follow-up (talk, warning, HR review)"),
            clause="P6.1",
        ),
        LoopType("daily.resolution", _l("Meeting resolution"), clause="P6.2"),
    ]


def _on_leave_decided(request: Any) -> None:
    from .leave import on_leave_decided

    on_leave_decided(request)


def _on_correction_decided(request: Any) -> None:
    from .attendance import on_correction_decided

    on_correction_decided(request)


def _on_claim_decided(request: Any) -> None:
    from .expenses import on_claim_decided

    on_claim_decided(request)


@hookimpl
def portal_approval_kinds() -> list[ApprovalKind]:
    return [
        ApprovalKind(
            "daily.leave",
            _l("Leave request"),
            ruleset="leave_approval",
            clause="P6.1",
            on_decided=_on_leave_decided,
        ),
        ApprovalKind(
            "daily.punch_correction",
            _l("Missed-punch correction"),
            ruleset="punch_correction",
            clause="P6.1",
            on_decided=_on_correction_decided,
        ),
        ApprovalKind(
            "daily.expense_claim",
            _l("Expense claim"),
            ruleset="expense_approval",
            clause="P6.4",
            on_decided=_on_claim_decided,
        ),
    ]


@hookimpl
def portal_notification_kinds() -> list[NotificationKind]:
    return [
        NotificationKind("daily.attendance_violation", _l("Repeated attendance violations")),
        NotificationKind("daily.leave_decided", _l("A leave request was decided")),
        NotificationKind("daily.correction_decided", _l("A punch correction was decided")),
        NotificationKind("daily.meeting_called", _l("You are asked to a meeting")),
        NotificationKind("daily.resolution_assigned", _l("A meeting resolution is yours")),
        NotificationKind("daily.minutes_published", _l("A meeting's minutes are published")),
        NotificationKind("daily.meeting_reminder", _l("Materials for a meeting are due soon")),
        NotificationKind("daily.claim_decided", _l("An expense claim was decided")),
        NotificationKind("daily.claim_paid", _l("An expense claim was paid")),
    ]


def _attendance_sweep() -> Any:
    from .attendance import run_attendance_sweep

    return run_attendance_sweep()


def _meeting_reminders() -> Any:
    from .meetings import send_meeting_reminders

    return send_meeting_reminders()


@hookimpl
def portal_jobs() -> list[Job]:
    return [
        Job(
            "daily.meeting_reminders",
            _meeting_reminders,
            every_seconds=900,
            description=(
                "Remind the attendees of planned meetings that their materials are due "
                "(rules/meetings.yaml: remind_hours_before)"
            ),
        ),
        Job(
            "daily.attendance_sweep",
            _attendance_sweep,
            every_seconds=3600,
            description=(
                "Classify finished working days (rules/attendance.yaml); after a month ends, "
                "count repeated violations and open follow-ups (rules/attendance_monthly.yaml)"
            ),
        ),
    ]


@hookimpl
def portal_blueprints() -> list[Any]:
    from .attendance_views import bp as attendance_bp
    from .expense_reports_views import bp as expense_reports_bp
    from .expenses_views import bp as expenses_bp
    from .leave_views import bp as leave_bp
    from .meetings_views import bp as meetings_bp
    from .template_helpers import bp as templates_bp

    return [attendance_bp, leave_bp, meetings_bp, expenses_bp, expense_reports_bp, templates_bp]


@hookimpl
def portal_api_routes() -> list[ApiRoute]:
    from .api import api_routes

    return api_routes()


@hookimpl
def portal_nav_items(user: Any) -> list[NavItem]:
    return [
        NavItem("daily_attendance.today", _l("Attendance"), order=50, permission="daily.attend"),
        NavItem("daily_leave.index", _l("Leave"), order=51, permission="daily.attend"),
        NavItem("daily_meetings.index", _l("Meetings"), order=52, permission="daily.meet"),
        NavItem("daily_expenses.index", _l("Expenses"), order=53, permission="daily.claim"),
        NavItem(
            "daily_expense_reports.index",
            _l("Expense analysis"),
            order=54,
            permission="daily.view_expenses",
        ),
    ]


@hookimpl
def portal_dashboard_widgets(user: Any) -> list[Widget]:
    return [
        Widget(
            "daily.punch",
            _l("Check in"),
            "daily_attendance.widget_punch",
            order=5,
            permission="daily.attend",
        )
    ]


@hookimpl
def portal_on_event(event: Any) -> None:
    # A resolution's loop item closed anywhere (My work, the API) leaves the next agenda;
    # a reopened one comes back. A won deal counts for the cost per won deal (P6.4).
    if event.name == "core.loop_changed" and event.payload.get("type") == "daily.resolution":
        from .meetings import sync_from_loop

        sync_from_loop(event.payload["loop_id"])
    elif event.name == "sales.opportunity_closed" and event.payload.get("outcome") == "won":
        from .expense_reports import record_won_deal

        record_won_deal(event)
    elif event.name == "sales.opportunity_closed" and event.payload.get("outcome") == "lost":
        # Won, reopened, then lost: it no longer counts as a won deal.
        from .expense_reports import forget_won_deal

        forget_won_deal(event)


@hookimpl
def portal_demo_data(app: Flask) -> None:
    from .demo import create_demo_daily

    create_demo_daily()
