"""Tables of daily management (P6.1 attendance and leave, P6.2 meetings, P6.4 expenses).

Conventions (as in the sales plugin): money in whole fen (``*_cents``), leave and
absence in half days (``*_half_days``: 1 day = 2) so sums are exact on SQLite and
PostgreSQL; times of day as minutes after local midnight (``*_minute``); instants in
UTC, calendar days as the portal's local date (``BABEL_DEFAULT_TIMEZONE``). Every
business record is scoped by its ``owner_id`` through ``portal.scoping``: a day's
attendance, a leave request, a punch correction, a claim by the person it belongs to; a
meeting by its organiser (attendees also read it); lines, receipts, agenda items and
resolutions through their parent. Thresholds live in rule files, never here.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.auth.models import User
from portal.extensions import db
from portal.models import OwnedMixin, TimestampMixin

# -- vocabularies (labels in vocabulary.py, thresholds in rule files) ----------------

SCHEDULE_KINDS = ("standard", "flexible", "field")
PUNCH_KINDS = ("in", "out")
# attendance.yaml's ``status`` output values, plus "open" for a day not yet classified.
DAY_STATUSES = (
    "open",
    "normal",
    "rest_day",
    "on_leave",
    "late",
    "seriously_late",
    "left_early",
    "missed_punch",
    "half_day_absence",
    "absent",
)
PERIOD_STATUSES = ("open", "reviewed", "locked")
REQUEST_STATUSES = ("pending", "approved", "rejected", "cancelled")
HALVES = ("am", "pm")
ATTENDANCE_FOLLOW_UPS = ("talk", "written_warning", "hr_review")  # attendance_monthly.yaml
MEETING_CADENCES = ("weekly", "monthly", "quarterly", "ad_hoc")
MEETING_STATUSES = ("planned", "held", "closed", "cancelled")
ATTENDEE_STATUSES = ("invited", "present", "late", "absent", "excused")
AGENDA_SOURCES = ("topic", "carried")  # carried: an unfinished resolution of an earlier meeting
CLAIM_STATUSES = ("draft", "pending", "approved", "rejected", "paid", "cancelled")
CLAIM_COUNTED_STATUSES = ("approved", "paid")  # what the expense analysis adds up
# expenses.yaml's ``category`` input values.
EXPENSE_CATEGORIES = ("meal", "hotel", "taxi", "travel", "entertainment", "office", "other")
LINE_DECISIONS = ("approve", "reject", "escalate")


# -- P6.1 attendance -------------------------------------------------------------------


class WorkSchedule(TimestampMixin, db.Model):
    """A working-time pattern people are put on (standard hours, flexible, field staff).
    HR edits these on the settings page; a person without one follows the default."""

    __tablename__ = "daily_work_schedule"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(80), unique=True)
    kind: Mapped[str] = mapped_column(sa.String(20), default="standard")
    # Standard: the day runs start..end. Flexible: arrive by the latest start, stay the
    # required minutes. Field: the punches are kept, lateness is not counted.
    start_minute: Mapped[int] = mapped_column(default=9 * 60)
    end_minute: Mapped[int] = mapped_column(default=18 * 60)
    latest_start_minute: Mapped[int | None] = mapped_column()
    required_minutes: Mapped[int] = mapped_column(default=8 * 60)
    workdays: Mapped[str] = mapped_column(sa.String(20), default="1,2,3,4,5")  # ISO weekdays
    is_default: Mapped[bool] = mapped_column(default=False)
    active: Mapped[bool] = mapped_column(default=True)


class PersonSchedule(db.Model):
    """Which schedule a person works to (none: the default schedule)."""

    __tablename__ = "daily_person_schedule"

    user_id: Mapped[int] = mapped_column(sa.ForeignKey("core_user.id"), primary_key=True)
    schedule_id: Mapped[int] = mapped_column(sa.ForeignKey("daily_work_schedule.id"), index=True)
    schedule: Mapped[WorkSchedule] = relationship(lazy="joined")


class Holiday(db.Model):
    """A public holiday, or a weekend day that is worked instead (调休, ``is_workday``)."""

    __tablename__ = "daily_holiday"

    day: Mapped[date] = mapped_column(sa.Date, primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(80))
    is_workday: Mapped[bool] = mapped_column(default=False)


class AttendanceDay(OwnedMixin, TimestampMixin, db.Model):
    """One person's working day: the punches and, once classified by attendance.yaml,
    the outcome. One row per person and day (a second check-in is refused by the key)."""

    __tablename__ = "daily_attendance_day"
    __table_args__ = (
        sa.UniqueConstraint("owner_id", "day", name="uq_daily_attendance_day_owner_day"),
        sa.Index("ix_daily_attendance_day_day_status", "day", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(sa.Date)
    check_in_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    check_out_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    check_in_note: Mapped[str] = mapped_column(sa.String(200), default="")  # field visit
    check_out_note: Mapped[str] = mapped_column(sa.String(200), default="")
    corrected: Mapped[bool] = mapped_column(default=False)  # a punch came from a correction
    # The classification (attendance.yaml) and the facts it was made from.
    status: Mapped[str] = mapped_column(sa.String(20), default="open")
    severity: Mapped[str] = mapped_column(sa.String(10), default="none")
    penalty_points: Mapped[int] = mapped_column(default=0)
    absence_half_days: Mapped[int] = mapped_column(default=0)
    minutes_late: Mapped[int] = mapped_column(default=0)
    minutes_early: Mapped[int] = mapped_column(default=0)
    worked_minutes: Mapped[int] = mapped_column(default=0)
    rule_version: Mapped[int | None] = mapped_column()
    classified_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))

    owner: Mapped[User] = relationship(foreign_keys="AttendanceDay.owner_id", lazy="joined")


class PunchCorrection(OwnedMixin, TimestampMixin, db.Model):
    """A request to add a missed punch (补卡), capped per month by punch_correction.yaml
    and approved through the core approvals."""

    __tablename__ = "daily_punch_correction"
    __table_args__ = (sa.Index("ix_daily_punch_correction_owner_day", "owner_id", "day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(sa.Date)
    kind: Mapped[str] = mapped_column(sa.String(3))  # in / out
    punch_minute: Mapped[int] = mapped_column()  # the local time the person says they punched
    reason: Mapped[str] = mapped_column(sa.Text, default="")
    status: Mapped[str] = mapped_column(sa.String(20), default="pending")
    approval_id: Mapped[int | None] = mapped_column(sa.ForeignKey("core_approval_request.id"))

    owner: Mapped[User] = relationship(foreign_keys="PunchCorrection.owner_id", lazy="joined")


class AttendancePeriod(db.Model):
    """A month of attendance: open, reviewed, then locked (no punch, correction or
    reclassification changes a locked month)."""

    __tablename__ = "daily_attendance_period"

    year: Mapped[int] = mapped_column(primary_key=True)
    month: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[str] = mapped_column(sa.String(20), default="open")
    reviewed_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("core_user.id"))
    reviewed_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    locked_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("core_user.id"))
    locked_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))


class AttendanceMonth(OwnedMixin, TimestampMixin, db.Model):
    """One person's month as the month-end sweep found it: the counts attendance_monthly
    .yaml was asked with and what it answered. One row per person and month, so a
    second sweep changes nothing."""

    __tablename__ = "daily_attendance_month"
    __table_args__ = (
        sa.UniqueConstraint("owner_id", "year", "month", name="uq_daily_attendance_month"),
        sa.Index("ix_daily_attendance_month_year_month", "year", "month"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    year: Mapped[int] = mapped_column()
    month: Mapped[int] = mapped_column()
    workdays: Mapped[int] = mapped_column(default=0)
    late_count: Mapped[int] = mapped_column(default=0)
    early_leave_count: Mapped[int] = mapped_column(default=0)
    missed_punch_count: Mapped[int] = mapped_column(default=0)
    absence_half_days: Mapped[int] = mapped_column(default=0)
    leave_half_days: Mapped[int] = mapped_column(default=0)
    longest_absence_streak: Mapped[int] = mapped_column(default=0)
    penalty_points: Mapped[int] = mapped_column(default=0)
    appraisal_deduction: Mapped[int] = mapped_column(default=0)
    follow_ups: Mapped[list[Any]] = mapped_column(sa.JSON, default=list)  # loop item ids
    rule_version: Mapped[int | None] = mapped_column()

    owner: Mapped[User] = relationship(foreign_keys="AttendanceMonth.owner_id", lazy="joined")


# -- P6.1 leave --------------------------------------------------------------------------


class LeaveType(db.Model):
    """A kind of leave offered. ``code`` is one of leave_approval.yaml's ``leave_type``
    values (a new kind is added to the rule file first); balances are kept for the kinds
    with ``uses_balance``."""

    __tablename__ = "daily_leave_type"

    code: Mapped[str] = mapped_column(sa.String(30), primary_key=True)
    name_en: Mapped[str] = mapped_column(sa.String(80))
    name_zh: Mapped[str] = mapped_column(sa.String(80))
    paid: Mapped[bool] = mapped_column(default=True)
    uses_balance: Mapped[bool] = mapped_column(default=False)
    yearly_half_days: Mapped[int] = mapped_column(default=0)  # granted each year
    position: Mapped[int] = mapped_column(default=0)
    active: Mapped[bool] = mapped_column(default=True)


class LeaveBalance(OwnedMixin, TimestampMixin, db.Model):
    """A person's entitlement of one kind of leave for one year, and what is used."""

    __tablename__ = "daily_leave_balance"
    __table_args__ = (
        sa.UniqueConstraint("owner_id", "leave_type", "year", name="uq_daily_leave_balance"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    leave_type: Mapped[str] = mapped_column(sa.ForeignKey("daily_leave_type.code"))
    year: Mapped[int] = mapped_column()
    granted_half_days: Mapped[int] = mapped_column(default=0)
    used_half_days: Mapped[int] = mapped_column(default=0)  # approved requests
    version_id: Mapped[int] = mapped_column(default=1)

    __mapper_args__ = {"version_id_col": version_id}


class LeaveRequest(OwnedMixin, TimestampMixin, db.Model):
    """Leave asked for in advance (sick leave may come afterwards), routed by
    leave_approval.yaml through the core approvals."""

    __tablename__ = "daily_leave_request"
    __table_args__ = (
        sa.Index("ix_daily_leave_request_owner_dates", "owner_id", "starts_on", "ends_on"),
        sa.Index("ix_daily_leave_request_status_starts", "status", "starts_on"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    leave_type: Mapped[str] = mapped_column(sa.ForeignKey("daily_leave_type.code"))
    starts_on: Mapped[date] = mapped_column(sa.Date)
    start_half: Mapped[str] = mapped_column(sa.String(2), default="am")
    ends_on: Mapped[date] = mapped_column(sa.Date)
    end_half: Mapped[str] = mapped_column(sa.String(2), default="pm")
    half_days: Mapped[int] = mapped_column()  # working half days between the two ends
    reason: Mapped[str] = mapped_column(sa.Text, default="")
    status: Mapped[str] = mapped_column(sa.String(20), default="pending")
    approval_id: Mapped[int | None] = mapped_column(sa.ForeignKey("core_approval_request.id"))
    decided_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))

    owner: Mapped[User] = relationship(foreign_keys="LeaveRequest.owner_id", lazy="joined")
    documents: Mapped[list[LeaveDocument]] = relationship(
        back_populates="request", order_by="LeaveDocument.id", lazy="selectin"
    )


class LeaveDocument(db.Model):
    """A file supporting a leave request (a hospital certificate)."""

    __tablename__ = "daily_leave_document"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(sa.ForeignKey("daily_leave_request.id"), index=True)
    filename: Mapped[str] = mapped_column(sa.String(255))
    stored_name: Mapped[str] = mapped_column(sa.String(64))
    content_type: Mapped[str] = mapped_column(sa.String(120))
    size: Mapped[int] = mapped_column()
    sha256: Mapped[str] = mapped_column(sa.String(64))
    uploaded_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("core_user.id"))
    uploaded_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))

    request: Mapped[LeaveRequest] = relationship(back_populates="documents")


# -- P6.2 meetings -----------------------------------------------------------------------


class Meeting(OwnedMixin, TimestampMixin, db.Model):
    """A team meeting (weekly, monthly, quarterly). The organiser owns it; its attendees
    read it too. Unfinished resolutions of the team's earlier meetings are carried onto
    its agenda."""

    __tablename__ = "daily_meeting"
    __table_args__ = (
        sa.Index("ix_daily_meeting_unit_starts", "unit_id", "starts_at"),
        sa.Index("ix_daily_meeting_owner_starts", "owner_id", "starts_at"),
        sa.Index("ix_daily_meeting_status_due", "status", "materials_due_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int | None] = mapped_column(sa.ForeignKey("core_org_unit.id"))
    cadence: Mapped[str] = mapped_column(sa.String(20), default="weekly")
    title: Mapped[str] = mapped_column(sa.String(200))
    starts_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    ends_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    location: Mapped[str] = mapped_column(sa.String(200), default="")
    status: Mapped[str] = mapped_column(sa.String(20), default="planned")
    minutes: Mapped[str] = mapped_column(sa.Text, default="")
    materials_due_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    # When the attendees were reminded of the materials deadline (meetings.yaml).
    reminded_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    version_id: Mapped[int] = mapped_column(default=1)

    __mapper_args__ = {"version_id_col": version_id}

    owner: Mapped[User] = relationship(foreign_keys="Meeting.owner_id", lazy="joined")
    agenda: Mapped[list[AgendaItem]] = relationship(
        back_populates="meeting", order_by="AgendaItem.position", lazy="selectin"
    )


class AgendaItem(db.Model):
    """A point on a meeting's agenda, with its minutes. ``source`` is ``carried`` for an
    unfinished resolution of an earlier meeting (``resolution_id``)."""

    __tablename__ = "daily_agenda_item"
    __table_args__ = (
        sa.UniqueConstraint("meeting_id", "resolution_id", name="uq_daily_agenda_resolution"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    meeting_id: Mapped[int] = mapped_column(sa.ForeignKey("daily_meeting.id"), index=True)
    position: Mapped[int] = mapped_column(default=0)
    title: Mapped[str] = mapped_column(sa.String(200))
    presenter_id: Mapped[int | None] = mapped_column(sa.ForeignKey("core_user.id"))
    source: Mapped[str] = mapped_column(sa.String(10), default="topic")
    resolution_id: Mapped[int | None] = mapped_column(sa.ForeignKey("daily_resolution.id"))
    notes: Mapped[str] = mapped_column(sa.Text, default="")

    meeting: Mapped[Meeting] = relationship(back_populates="agenda")


class MeetingAttendee(db.Model):
    """Who is asked to a meeting and whether they came."""

    __tablename__ = "daily_meeting_attendee"
    __table_args__ = (sa.Index("ix_daily_meeting_attendee_user", "user_id", "meeting_id"),)

    meeting_id: Mapped[int] = mapped_column(sa.ForeignKey("daily_meeting.id"), primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("core_user.id"), primary_key=True)
    status: Mapped[str] = mapped_column(sa.String(20), default="invited")
    note: Mapped[str] = mapped_column(sa.String(200), default="")

    user: Mapped[User] = relationship(lazy="joined")


class MeetingMaterial(db.Model):
    """A file prepared for a meeting (figures, slides), uploaded before it."""

    __tablename__ = "daily_meeting_material"

    id: Mapped[int] = mapped_column(primary_key=True)
    meeting_id: Mapped[int] = mapped_column(sa.ForeignKey("daily_meeting.id"), index=True)
    agenda_item_id: Mapped[int | None] = mapped_column(sa.ForeignKey("daily_agenda_item.id"))
    filename: Mapped[str] = mapped_column(sa.String(255))
    stored_name: Mapped[str] = mapped_column(sa.String(64))
    content_type: Mapped[str] = mapped_column(sa.String(120))
    size: Mapped[int] = mapped_column()
    sha256: Mapped[str] = mapped_column(sa.String(64))
    uploaded_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("core_user.id"))
    uploaded_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    late: Mapped[bool] = mapped_column(default=False)  # after the materials deadline

    uploaded_by: Mapped[User | None] = relationship(lazy="joined")


class Resolution(db.Model):
    """A decision taken in a meeting: a loop item with an owner and a due date, until it
    is done and verified it comes back on the team's next agenda."""

    __tablename__ = "daily_resolution"
    __table_args__ = (sa.Index("ix_daily_resolution_unit_open", "unit_id", "closed"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    meeting_id: Mapped[int] = mapped_column(sa.ForeignKey("daily_meeting.id"), index=True)
    unit_id: Mapped[int | None] = mapped_column(sa.ForeignKey("core_org_unit.id"))
    text: Mapped[str] = mapped_column(sa.Text)
    owner_id: Mapped[int] = mapped_column(sa.ForeignKey("core_user.id"))
    due_on: Mapped[date] = mapped_column(sa.Date)
    loop_id: Mapped[int | None] = mapped_column(sa.ForeignKey("core_loop_item.id"), index=True)
    closed: Mapped[bool] = mapped_column(default=False)  # its loop item is done or verified
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))

    owner: Mapped[User] = relationship(foreign_keys="Resolution.owner_id", lazy="joined")


# -- P6.4 expenses -----------------------------------------------------------------------


class ExpenseClaim(OwnedMixin, TimestampMixin, db.Model):
    """An expense claim: lines with receipts, checked line by line against expenses.yaml,
    approved through the core approvals (expense_approval.yaml), then paid by finance."""

    __tablename__ = "daily_expense_claim"
    __table_args__ = (
        sa.Index("ix_daily_expense_claim_owner_status", "owner_id", "status"),
        sa.Index("ix_daily_expense_claim_status_submitted", "status", "submitted_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str | None] = mapped_column(sa.String(30), unique=True)  # on submit
    title: Mapped[str] = mapped_column(sa.String(200))
    status: Mapped[str] = mapped_column(sa.String(20), default="draft")
    total_cents: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    approval_id: Mapped[int | None] = mapped_column(sa.ForeignKey("core_approval_request.id"))
    submitted_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    decided_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    paid_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    paid_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("core_user.id"))
    payment_reference: Mapped[str] = mapped_column(sa.String(80), default="")
    version_id: Mapped[int] = mapped_column(default=1)

    __mapper_args__ = {"version_id_col": version_id}

    owner: Mapped[User] = relationship(foreign_keys="ExpenseClaim.owner_id", lazy="joined")
    lines: Mapped[list[ExpenseLine]] = relationship(
        back_populates="claim",
        order_by="ExpenseLine.position",
        lazy="selectin",
        cascade="all, delete-orphan",
    )


class ExpenseLine(db.Model):
    """One expense. ``owner_id`` repeats the claim's so the analysis groups 100,000
    lines by person, team and month without a join per line; ``link_kind``/``link_id``
    point at another plugin's record (a customer, an opportunity) through the core's
    link targets, never by importing it."""

    __tablename__ = "daily_expense_line"
    __portal_owner__ = "owner_id"
    __table_args__ = (
        sa.Index("ix_daily_expense_line_owner_spent", "owner_id", "spent_on"),
        sa.Index("ix_daily_expense_line_spent_category", "spent_on", "category"),
        # Covering index of the expense analysis (P6.4): a period's lines are read from
        # the index alone (no table row per line), then grouped by person, month, category.
        sa.Index(
            "ix_daily_expense_line_analysis",
            "spent_on",
            "claim_id",
            "owner_id",
            "category",
            "amount_cents",
        ),
        sa.Index("ix_daily_expense_line_duplicate_key", "amount_cents", "spent_on", "vendor"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    claim_id: Mapped[int] = mapped_column(sa.ForeignKey("daily_expense_claim.id"), index=True)
    owner_id: Mapped[int] = mapped_column(sa.ForeignKey("core_user.id"))
    position: Mapped[int] = mapped_column(default=0)
    spent_on: Mapped[date] = mapped_column(sa.Date)
    category: Mapped[str] = mapped_column(sa.String(20))
    amount_cents: Mapped[int] = mapped_column(sa.BigInteger)
    city: Mapped[str] = mapped_column(sa.String(80), default="")
    city_tier: Mapped[int] = mapped_column(default=3)
    vendor: Mapped[str] = mapped_column(sa.String(120), default="")
    purpose: Mapped[str] = mapped_column(sa.String(300), default="")
    link_kind: Mapped[str | None] = mapped_column(sa.String(60))
    link_id: Mapped[int | None] = mapped_column()
    link_label: Mapped[str] = mapped_column(sa.String(200), default="")  # as it read then
    # expenses.yaml's verdict on this line when the claim was last checked.
    decision: Mapped[str | None] = mapped_column(sa.String(20))
    decision_reason: Mapped[str] = mapped_column(sa.String(300), default="")
    rule_version: Mapped[int | None] = mapped_column()
    duplicate_of_id: Mapped[int | None] = mapped_column(sa.ForeignKey("daily_expense_line.id"))

    claim: Mapped[ExpenseClaim] = relationship(back_populates="lines")
    receipts: Mapped[list[ExpenseReceipt]] = relationship(
        back_populates="line", order_by="ExpenseReceipt.id", lazy="selectin"
    )


class ExpenseReceipt(db.Model):
    """A receipt for one line (an image or a PDF), stored outside the web root."""

    __tablename__ = "daily_expense_receipt"

    id: Mapped[int] = mapped_column(primary_key=True)
    line_id: Mapped[int] = mapped_column(sa.ForeignKey("daily_expense_line.id"), index=True)
    filename: Mapped[str] = mapped_column(sa.String(255))
    stored_name: Mapped[str] = mapped_column(sa.String(64))
    content_type: Mapped[str] = mapped_column(sa.String(120))
    size: Mapped[int] = mapped_column()
    sha256: Mapped[str] = mapped_column(sa.String(64), index=True)  # the same file twice
    uploaded_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("core_user.id"))
    uploaded_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))

    line: Mapped[ExpenseLine] = relationship(back_populates="receipts")


class ExpenseBudget(TimestampMixin, db.Model):
    """What a unit may spend in a month, in all or in one category (finance sets it)."""

    __tablename__ = "daily_expense_budget"
    __table_args__ = (
        sa.UniqueConstraint("unit_id", "year", "month", "category", name="uq_daily_expense_budget"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(sa.ForeignKey("core_org_unit.id"))
    year: Mapped[int] = mapped_column()
    month: Mapped[int] = mapped_column()
    category: Mapped[str] = mapped_column(sa.String(20), default="")  # "": every category
    amount_cents: Mapped[int] = mapped_column(sa.BigInteger)


class WonDeal(db.Model):
    """A deal another plugin reported won (event ``sales.opportunity_closed``): what the
    cost per won deal is divided by, kept here because plugins never import each other."""

    __tablename__ = "daily_won_deal"
    __portal_owner__ = "owner_id"
    __table_args__ = (sa.Index("ix_daily_won_deal_owner_won", "owner_id", "won_on"),)

    source: Mapped[str] = mapped_column(sa.String(60), primary_key=True)  # the event's plugin
    record_id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(sa.ForeignKey("core_user.id"))
    won_on: Mapped[date] = mapped_column(sa.Date)
