"""The demo month of daily management (``portal demo``, plugins/daily/demo.py): built on a
fresh database through the daily services after the organisation and sales demos, it
shows a visitor a month of attendance with its violations and follow-ups, meetings
whose open resolution is carried onto the next agenda, claims under and over the
limits in every state, and the pages render for the people who use them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import url_for

from plugins.daily.demo import FIELD, STANDARD, WANG_LATE
from plugins.daily.expenses import RECEIPT_AREA
from plugins.daily.models import (
    AgendaItem,
    AttendanceDay,
    AttendanceMonth,
    ExpenseBudget,
    ExpenseClaim,
    ExpenseLine,
    ExpenseReceipt,
    Holiday,
    LeaveBalance,
    LeaveRequest,
    Meeting,
    PersonSchedule,
    PunchCorrection,
    Resolution,
    WorkSchedule,
)
from portal.auth.models import User
from portal.demo import DEMO_PASSWORD
from portal.extensions import db
from portal.files import upload_folder
from portal.loops.approvals import current_step
from portal.loops.models import ApprovalRequest, LoopItem
from portal.loops.service import local_today

DAILY_TABLES = (
    WorkSchedule,
    PersonSchedule,
    Holiday,
    AttendanceDay,
    AttendanceMonth,
    PunchCorrection,
    LeaveBalance,
    LeaveRequest,
    Meeting,
    AgendaItem,
    Resolution,
    ExpenseBudget,
    ExpenseClaim,
    ExpenseLine,
    ExpenseReceipt,
    LoopItem,
    ApprovalRequest,
)


@pytest.fixture
def demo(app: Any) -> Any:
    """The portal after ``portal demo`` (the command people run)."""
    result = app.test_cli_runner().invoke(args=["demo"])
    assert result.exit_code == 0, result.output
    return app


def uid(username: str) -> int:
    return db.session.scalar(sa.select(User.id).where(User.username == username))


def counts() -> dict[str, int]:
    return {
        model.__tablename__: db.session.scalar(sa.select(sa.func.count()).select_from(model))
        for model in DAILY_TABLES
    }


def statuses(username: str, first: Any, last: Any) -> list[str]:
    return list(
        db.session.scalars(
            sa.select(AttendanceDay.status).where(
                AttendanceDay.owner_id == uid(username), AttendanceDay.day.between(first, last)
            )
        )
    )


def test_p6_1_demo_month_of_attendance_with_violations_once(demo: Any) -> None:
    with demo.app_context():
        first = counts()
        today = local_today()
        month_start = today.replace(day=1)
        last_first = (month_start - timedelta(days=1)).replace(day=1)
        last_end = month_start - timedelta(days=1)
        # Schedules: the default standard one, Zhao Lei on the field schedule; holidays.
        standard = db.session.scalars(
            sa.select(WorkSchedule).where(WorkSchedule.name == STANDARD)
        ).one()
        assert standard.is_default and (standard.start_minute, standard.end_minute) == (540, 1080)
        field = db.session.get(PersonSchedule, uid("sales_zhao"))
        assert field is not None and field.schedule.name == FIELD
        assert field.schedule.kind == "field"
        assert first["daily_holiday"] >= 3
        # A month and more of punches for the salespeople and supervisors.
        for name in ("sales_li", "sales_wang", "sales_zhao", "sales_liu", "sup_east", "sup_south"):
            days = statuses(name, last_first, last_end)
            assert len(days) >= 15, name
            assert "open" not in days, name  # last month is classified
        assert statuses("sales_wang", last_first, last_end).count("late") == WANG_LATE
        assert "absent" in statuses("sales_liu", last_first, last_end)
        assert "on_leave" in statuses("sales_li", last_first, last_end)
        assert "missed_punch" in statuses("sales_li", last_first, today)
        assert statuses("sales_li", month_start, today)  # this month so far too
        # The month-end sweep: Wang's lateness opens a talk with her supervisor.
        month = db.session.scalars(
            sa.select(AttendanceMonth).where(AttendanceMonth.owner_id == uid("sales_wang"))
        ).one()
        assert (month.year, month.month) == (last_first.year, last_first.month)
        talk = db.session.scalars(
            sa.select(LoopItem).where(
                LoopItem.type == "daily.attendance_follow_up",
                LoopItem.subject_table == AttendanceMonth.__tablename__,
                LoopItem.subject_id == str(month.id),
            )
        ).one()
        assert talk.owner_id == uid("sup_east") and talk.status == "open"
        assert "talk" in talk.title.lower()
        # The forgotten check-out waits for approval; one leave approved, one pending.
        correction = db.session.scalars(sa.select(PunchCorrection)).one()
        assert correction.status == "pending" and correction.owner_id == uid("sales_li")
        leave = {r.status: r for r in db.session.scalars(sa.select(LeaveRequest))}
        assert set(leave) == {"approved", "pending"}
        assert leave["pending"].owner_id == uid("sales_zhao")
        assert first["daily_leave_balance"] >= 9
    # Running the demo again changes nothing.
    again = demo.test_cli_runner().invoke(args=["demo"])
    assert again.exit_code == 0, again.output
    with demo.app_context():
        assert counts() == first


def test_p6_2_demo_meetings_carry_the_open_resolution(demo: Any) -> None:
    with demo.app_context():
        meetings = list(db.session.scalars(sa.select(Meeting).order_by(Meeting.starts_at)))
        east = [m for m in meetings if m.unit_id == db.session.get(User, uid("sup_east")).unit_id]
        held, planned = east
        assert held.status == "closed" and held.minutes
        assert planned.status == "planned" and planned.starts_at > held.starts_at
        resolutions = {r.closed: r for r in db.session.scalars(sa.select(Resolution))}
        assert set(resolutions) == {True, False}
        assert db.session.get(LoopItem, resolutions[True].loop_id).status == "done"
        still_open = resolutions[False]
        assert db.session.get(LoopItem, still_open.loop_id).status == "open"
        carried = [item for item in planned.agenda if item.source == "carried"]
        assert [item.resolution_id for item in carried] == [still_open.id]
        south = [m for m in meetings if m not in east]
        assert [(m.cadence, m.status) for m in south] == [("monthly", "planned")]


def test_p6_4_demo_claims_over_and_under_limits(demo: Any) -> None:
    with demo.app_context():
        claims = list(db.session.scalars(sa.select(ExpenseClaim)))
        assert {c.status for c in claims} == {"paid", "approved", "pending", "draft", "rejected"}
        paid = next(c for c in claims if c.status == "paid")
        assert paid.payment_reference and paid.paid_by_id == uid("finance")
        lines = list(db.session.scalars(sa.select(ExpenseLine)))
        assert any(line.decision == "approve" for line in lines)  # under the limits
        over = [line for line in lines if line.decision == "escalate"]
        assert over and over[0].category == "meal"
        escalated = db.session.get(ExpenseClaim, over[0].claim_id)
        assert escalated.status == "pending"
        step = current_step(db.session.get(ApprovalRequest, escalated.approval_id))
        assert step is not None and step.approver_id == uid("manager")
        draft = next(c for c in claims if c.status == "draft")
        assert [line.category for line in draft.lines] == ["taxi"]
        duplicate = [line for line in lines if line.duplicate_of_id]
        assert len(duplicate) == 1
        original = db.session.get(ExpenseLine, duplicate[0].duplicate_of_id)
        assert original.receipts[0].sha256 == duplicate[0].receipts[0].sha256
        # Every receipt is a stored file (PNG or PDF).
        receipts = list(db.session.scalars(sa.select(ExpenseReceipt)))
        assert receipts and {r.content_type for r in receipts} == {"image/png", "application/pdf"}
        folder = upload_folder(RECEIPT_AREA)
        assert all((folder / r.stored_name).is_file() for r in receipts)
        units = set(db.session.scalars(sa.select(ExpenseBudget.unit_id)))
        assert units == {
            db.session.get(User, uid("sup_east")).unit_id,
            db.session.get(User, uid("sup_south")).unit_id,
        }


PAGES = {
    "sales_li": ("daily_attendance.today", "daily_leave.index", "daily_expenses.index"),
    "sup_east": ("daily_attendance.team", "daily_meetings.index", "daily_expense_reports.index"),
    "finance": ("daily_expenses.to_pay", "daily_expense_reports.index"),
}


def test_p6_demo_pages_render_for_the_people_who_use_them(demo: Any, login: Any) -> None:
    for username, endpoints in PAGES.items():
        client = demo.test_client()
        login(client, username, DEMO_PASSWORD)
        with demo.test_request_context():
            urls = [url_for(endpoint) for endpoint in endpoints]
        for url in urls:
            response = client.get(url)
            assert response.status_code == 200, (username, url, response.status_code)
        if username == "sup_east":
            with demo.app_context():
                month = db.session.scalars(
                    sa.select(AttendanceMonth).where(AttendanceMonth.owner_id == uid("sales_wang"))
                ).one()
            page = client.get(f"{urls[0]}?month={month.year}-{month.month:02d}")
            assert "Wang Fang" in page.get_data(as_text=True)
