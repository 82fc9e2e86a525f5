"""P6.1 attendance: "no lateness, leaving early or absence".

A person checks in and out (the browser, a phone on the road with a location note);
each finished working day is classified by ``rules/attendance.yaml`` against the
person's schedule, holidays and approved leave; after a month ends, repeated
violations are counted and followed up (``rules/attendance_monthly.yaml``: loop items
for the supervisor, notifications). A missed punch is made good by a correction (补卡)
that goes through the core approvals (``rules/punch_correction.yaml``). HR reviews a
month, then locks it: a locked month takes no punch, correction or reclassification.

Every function here leaves the commit to its caller (a page, the API, the job).
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import lazyload

from portal.audit.recorder import record_access
from portal.auth.models import RolePermission, User, user_roles
from portal.exports import Column
from portal.extensions import db
from portal.loops.errors import StateConflict
from portal.models import as_utc, utcnow
from portal.org.models import OrgUnit
from portal.org.services import ValidationFailed
from portal.rules.service import evaluate_distinct, rules
from portal.scoping import scoped

from .calendar import (
    holidays_between,
    is_workday,
    local_today,
    portal_zone,
    schedules_of,
)
from .models import (
    PUNCH_KINDS,
    AttendanceDay,
    AttendanceMonth,
    AttendancePeriod,
    Holiday,
    LeaveRequest,
    PersonSchedule,
    PunchCorrection,
    WorkSchedule,
)
from .vocabulary import label

log = logging.getLogger(__name__)

RULESET = "attendance"
MONTHLY_RULESET = "attendance_monthly"
CORRECTION_RULESET = "punch_correction"
APPROVAL_KIND = "daily.punch_correction"
LOOP_TYPE = "daily.attendance_follow_up"
ATTEND_PERMISSION = "daily.attend"
DAY_TABLE = AttendanceDay.__tablename__
MONTH_TABLE = AttendanceMonth.__tablename__
CORRECTION_TABLE = PunchCorrection.__tablename__
MAX_NOTE = 200
MAX_REASON = 500
CHUNK = 500  # ids per IN list
# The inputs of attendance.yaml, in the order the sweep builds its keys.
DAY_FACTS = (
    "is_workday",
    "on_leave",
    "has_check_in",
    "has_check_out",
    "minutes_late",
    "minutes_early",
    "worked_minutes",
)
MONTH_FACTS = (
    "late_count_month",
    "early_leave_count_month",
    "missed_punch_count_month",
    "absent_days_month",
    "longest_absence_streak",
)
LATE_STATUSES = ("late", "seriously_late")
ABSENT_STATUSES = ("absent", "half_day_absence")
COUNTED_CORRECTIONS = ("pending", "approved")
PERIOD_MOVES = {
    "review": ("open", "reviewed"),
    "reopen": ("reviewed", "open"),
    "lock": ("reviewed", "locked"),
}
# Where each loop follow-up is urgent enough to stand out in My work.
FOLLOW_UP_PRIORITY = {"talk": "normal", "written_warning": "high", "hr_review": "urgent"}


# -- months and local time ---------------------------------------------------------------


def month_bounds(year: int, month: int) -> tuple[date, date]:
    """The first and last day of a month."""
    first = date(year, month, 1)
    following = date(year + month // 12, month % 12 + 1, 1)
    return first, following - timedelta(days=1)


def previous_month(day: date) -> tuple[int, int]:
    """The month before the one ``day`` is in."""
    last = day.replace(day=1) - timedelta(days=1)
    return last.year, last.month


def month_text(year: int, month: int) -> str:
    """2026-03: how a month is written in links, files and titles."""
    return f"{year:04d}-{month:02d}"


MONTH_PATTERN = re.compile(r"^(\d{4})-(\d{2})$")


def parse_month(text: str | None, today: date) -> tuple[int, int] | None:
    """``YYYY-MM`` as (year, month); empty is this month; anything else None."""
    if not text:
        return today.year, today.month
    found = MONTH_PATTERN.match(text.strip())
    if not found:
        return None
    year, month = int(found.group(1)), int(found.group(2))
    if not (2000 <= year <= 2100 and 1 <= month <= 12):
        return None
    return year, month


def days_between(first: date, last: date) -> Iterator[date]:
    """Each day from ``first`` to ``last`` inclusive."""
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


def at_local(day: date, minute: int) -> datetime:
    """The instant (UTC) of a local day and minute after midnight."""
    local = datetime.combine(day, time(minute // 60, minute % 60), tzinfo=portal_zone())
    return local.astimezone(UTC)


def minute_of_day(moment: datetime | None, day: date) -> int | None:
    """Minutes between the local midnight that starts ``day`` and ``moment`` (a
    check-out after midnight is more than 1440)."""
    if moment is None:
        return None
    local = as_utc(moment).astimezone(portal_zone())
    midnight = datetime.combine(day, time(0), tzinfo=portal_zone())
    return int((local - midnight).total_seconds() // 60)


def clock_text(moment: datetime | None) -> str:
    """A punch as the local time of day, 09:02."""
    if moment is None:
        return "—"
    local = as_utc(moment).astimezone(portal_zone())
    return local.strftime("%H:%M")


def _chunks(ids: list[int]) -> Iterator[list[int]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start : start + CHUNK]


# -- periods (open, reviewed, locked) ------------------------------------------------------


def locked_months(first: date, last: date) -> set[tuple[int, int]]:
    """The locked months between two days (one query)."""
    low, high = first.year * 100 + first.month, last.year * 100 + last.month
    key = AttendancePeriod.year * 100 + AttendancePeriod.month
    rows = db.session.execute(
        sa.select(AttendancePeriod.year, AttendancePeriod.month).where(
            AttendancePeriod.status == "locked", key.between(low, high)
        )
    )
    return {(row.year, row.month) for row in rows}


def is_locked(day: date) -> bool:
    """Whether the month of ``day`` is locked."""
    return bool(locked_months(day, day))


def locked_message(day: date) -> str:
    return _(
        "Attendance of %(month)s is locked: it can no longer be changed.",
        month=month_text(day.year, day.month),
    )


def period_of(year: int, month: int) -> AttendancePeriod | None:
    return db.session.get(AttendancePeriod, (year, month))


def move_period(
    year: int, month: int, action: str, actor: User, now: datetime | None = None
) -> AttendancePeriod:
    """Review a finished month, reopen a reviewed one, or lock a reviewed one (final:
    payroll and the appraisal read it). 409 when the month is not in the state for it."""
    if action not in PERIOD_MOVES:
        raise ValidationFailed({"action": [_("Choose review, reopen or lock.")]})
    moment = now or utcnow()
    _first, last = month_bounds(year, month)
    if last >= local_today(moment):
        raise StateConflict(_("A month is reviewed and locked only once it is over."))
    period = period_of(year, month)
    if period is None:
        period = AttendancePeriod(year=year, month=month, status="open")
        db.session.add(period)
    source, target = PERIOD_MOVES[action]
    if period.status != source:
        raise StateConflict(
            _(
                "This month is %(status)s: it cannot be changed that way.",
                status=label("period_status", period.status),
            )
        )
    period.status = target
    if target == "reviewed":
        period.reviewed_by_id, period.reviewed_at = actor.id, moment
    elif target == "locked":
        period.locked_by_id, period.locked_at = actor.id, moment
    else:
        period.reviewed_by_id, period.reviewed_at = None, None
    db.session.flush()
    return period


# -- checking in and out -------------------------------------------------------------------


def day_of(owner_id: int, day: date) -> AttendanceDay | None:
    """One person's row of one day, if any."""
    return db.session.scalars(
        sa.select(AttendanceDay).where(AttendanceDay.owner_id == owner_id, AttendanceDay.day == day)
    ).first()


def punch(user: User, kind: str, note: str = "", now: datetime | None = None) -> AttendanceDay:
    """Check in or out now, with an optional location note (a field visit).

    A second check-in is refused (409, nothing written; the table's key makes two
    simultaneous clicks safe too). A check-out without a check-in that day is refused.
    A second check-out replaces the first, as DingTalk's "update punch" (更新打卡)
    does: a person who checked out and then had to stay on records when they really
    left, and only the last check-out counts. The day is classified once it is over;
    a check-out after midnight belongs to the new day (schedules here are day shifts),
    so it is refused there and a correction records it."""
    errors: dict[str, list[str]] = {}
    if kind not in PUNCH_KINDS:
        errors["kind"] = [_("Choose check-in or check-out.")]
    note = (note or "").strip()
    if len(note) > MAX_NOTE:
        errors["note"] = [_("At most %(n)s characters.", n=MAX_NOTE)]
    if errors:
        raise ValidationFailed(errors)
    moment = now or utcnow()
    today = local_today(moment)
    if is_locked(today):
        raise StateConflict(locked_message(today))
    row = day_of(user.id, today)
    if kind == "in":
        if row is not None and row.check_in_at is not None:
            raise StateConflict(
                _("You already checked in today at %(time)s.", time=clock_text(row.check_in_at))
            )
        if row is None:
            row = AttendanceDay(owner_id=user.id, day=today, check_in_at=moment, check_in_note=note)
            try:
                with db.session.begin_nested():
                    db.session.add(row)
            except IntegrityError:
                raise StateConflict(_("You already checked in today.")) from None
        else:
            row.check_in_at, row.check_in_note = moment, note
    else:
        if row is None or row.check_in_at is None:
            raise StateConflict(_("Check in first: there is no check-in today to check out from."))
        row.check_out_at, row.check_out_note = moment, note
    db.session.flush()
    return row


# -- classifying days ----------------------------------------------------------------------


@dataclass(frozen=True)
class Expectation:
    """What a person's schedule asks of one day, after a half day of leave shortened
    it: arrive by ``late_after`` (None: lateness is not counted, field staff), leave
    at ``end`` (standard) or after ``required`` minutes from ``flex_start`` on
    (flexible)."""

    workday: bool
    on_leave: bool
    late_after: int | None = None
    end: int | None = None
    flex_start: int | None = None
    required: int = 0


def leave_halves(spans: Iterable[tuple[date, str, date, str]], day: date) -> set[str]:
    """The halves ("am", "pm") of ``day`` covered by approved leave."""
    covered: set[str] = set()
    for starts_on, start_half, ends_on, end_half in spans:
        if not (starts_on <= day <= ends_on):
            continue
        if not (day == starts_on and start_half == "pm"):
            covered.add("am")
        if not (day == ends_on and end_half == "am"):
            covered.add("pm")
    return covered


def expectation(schedule: WorkSchedule, workday: bool, halves: set[str]) -> Expectation:
    """The day's expectation: a whole day of leave is ``on_leave``; half a day moves
    the start (morning off) or the end (afternoon off) to the middle of the day, so the
    minutes are counted against what was left to work."""
    if not workday:
        return Expectation(workday=False, on_leave=False)
    if halves >= {"am", "pm"}:
        return Expectation(workday=True, on_leave=True)
    if schedule.kind == "field":
        return Expectation(workday=True, on_leave=False)
    if schedule.kind == "flexible":
        latest = schedule.latest_start_minute
        if latest is None:
            latest = schedule.start_minute
        required = schedule.required_minutes
        earliest = schedule.start_minute
        if halves:
            required //= 2
            if "am" in halves:
                latest += required
                earliest += required
        return Expectation(True, False, late_after=latest, flex_start=earliest, required=required)
    start, end = schedule.start_minute, schedule.end_minute
    middle = start + (end - start) // 2
    if "am" in halves:
        start = middle
    if "pm" in halves:
        end = middle
    return Expectation(True, False, late_after=start, end=end)


def day_key(
    expected: Expectation, check_in_at: datetime | None, check_out_at: datetime | None, day: date
) -> tuple[Any, ...]:
    """The facts attendance.yaml is asked with, in ``DAY_FACTS`` order."""
    arrived = minute_of_day(check_in_at, day)
    left = minute_of_day(check_out_at, day)
    late = early = worked = 0
    if arrived is not None and expected.late_after is not None:
        late = max(0, arrived - expected.late_after)
    if left is not None:
        if expected.end is not None:
            early = max(0, expected.end - left)
        elif expected.flex_start is not None and arrived is not None:
            early = max(0, max(arrived, expected.flex_start) + expected.required - left)
    if arrived is not None and left is not None:
        worked = min(1440, max(0, left - arrived))
    return (
        expected.workday,
        expected.on_leave,
        arrived is not None,
        left is not None,
        late,
        early,
        worked,
    )


def _day_values(key: tuple[Any, ...], evaluation: Any, now: datetime) -> dict[str, Any]:
    outputs = evaluation.outputs
    return {
        "status": outputs["status"],
        "severity": outputs["severity"],
        "penalty_points": int(outputs["penalty_points"]),
        "absence_half_days": int(Decimal(str(outputs["absence_days"])) * 2),
        "minutes_late": key[4],
        "minutes_early": key[5],
        "worked_minutes": key[6],
        "rule_version": evaluation.version,
        "classified_at": now,
    }


def approved_leave(
    owner_ids: list[int], first: date, last: date
) -> dict[int, list[tuple[date, str, date, str]]]:
    """Approved leave overlapping the days, per person (one query per 500 people)."""
    found: dict[int, list[tuple[date, str, date, str]]] = defaultdict(list)
    for ids in _chunks(owner_ids):
        rows = db.session.execute(
            sa.select(
                LeaveRequest.owner_id,
                LeaveRequest.starts_on,
                LeaveRequest.start_half,
                LeaveRequest.ends_on,
                LeaveRequest.end_half,
            ).where(
                LeaveRequest.status == "approved",
                LeaveRequest.owner_id.in_(ids),
                LeaveRequest.starts_on <= last,
                LeaveRequest.ends_on >= first,
            )
        )
        for row in rows:
            found[row.owner_id].append((row.starts_on, row.start_half, row.ends_on, row.end_half))
    return found


def joined_on(user: User) -> date:
    """The first day a person's attendance counts: the day their account was made."""
    return as_utc(user.created_at).astimezone(portal_zone()).date()


def attending_people() -> dict[int, date]:
    """Active people who check in (hold ``daily.attend``), with the day they joined."""
    holders = (
        sa.select(user_roles.c.user_id)
        .join(RolePermission, RolePermission.role_id == user_roles.c.role_id)
        .where(RolePermission.code == ATTEND_PERMISSION)
    )
    rows = db.session.execute(
        sa.select(User.id, User.created_at).where(User.active.is_(True), User.id.in_(holders))
    )
    return {row.id: as_utc(row.created_at).astimezone(portal_zone()).date() for row in rows}


def _classify(
    people: dict[int, date],
    first: date,
    last: date,
    now: datetime,
    *,
    only_open: bool,
    bulk: bool,
) -> int:
    """Classify the days ``first``..``last`` of ``people`` (id -> day joined): the
    sweep's unclassified days (``only_open``, written in bulk) or, for a
    reclassification, every day. Locked months are skipped; a working day without any
    row gets one (an absence); a rest day nobody worked gets none. Returns the days
    written."""
    if first > last or not people:
        return 0
    locked = locked_months(first, last)
    ids = sorted(people)
    schedules = schedules_of(ids)
    holidays = holidays_between(first, last)
    leaves = approved_leave(ids, first, last)
    rows: dict[tuple[int, date], Any] = {}
    for chunk in _chunks(ids):
        where = (
            AttendanceDay.owner_id.in_(chunk),
            AttendanceDay.day.between(first, last),
        )
        if bulk:
            found: Iterable[Any] = db.session.execute(
                sa.select(
                    AttendanceDay.id,
                    AttendanceDay.owner_id,
                    AttendanceDay.day,
                    AttendanceDay.status,
                    AttendanceDay.check_in_at,
                    AttendanceDay.check_out_at,
                ).where(*where)
            )
        else:
            found = db.session.scalars(
                sa.select(AttendanceDay).options(lazyload(AttendanceDay.owner)).where(*where)
            )
        rows.update({(row.owner_id, row.day): row for row in found})
    pending: list[tuple[int, date, Any, tuple[Any, ...]]] = []
    for owner_id in ids:
        schedule = schedules[owner_id]
        spans = leaves.get(owner_id, [])
        for day in days_between(max(first, people[owner_id]), last):
            if (day.year, day.month) in locked:
                continue
            row = rows.get((owner_id, day))
            if only_open and row is not None and row.status != "open":
                continue
            workday = is_workday(schedule, day, holidays)
            if row is None and not workday:
                continue
            expected = expectation(schedule, workday, leave_halves(spans, day))
            check_in = row.check_in_at if row is not None else None
            check_out = row.check_out_at if row is not None else None
            pending.append((owner_id, day, row, day_key(expected, check_in, check_out, day)))
    if not pending:
        return 0
    answers: dict[tuple[Any, ...], Any] = {}
    evaluate_distinct(rules().active(RULESET), DAY_FACTS, [item[3] for item in pending], answers)
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    for owner_id, day, row, key in pending:
        evaluation = answers.get(key)
        if evaluation is None:
            continue  # refused by the file: logged, the day stays open
        values = _day_values(key, evaluation, now)
        if row is None:
            inserts.append({"owner_id": owner_id, "day": day, **values})
        elif bulk:
            updates.append({"id": row.id, **values})
        else:
            for name, value in values.items():
                setattr(row, name, value)
    if bulk:
        if inserts:
            db.session.execute(sa.insert(AttendanceDay), inserts)
        if updates:
            db.session.execute(sa.update(AttendanceDay), updates)
        if inserts or updates:
            # Bulk inserts bypass the per-row audit: one accountable row says what ran.
            record_access(
                "classify",
                DAY_TABLE,
                {
                    "ruleset": RULESET,
                    "first": first.isoformat(),
                    "last": last.isoformat(),
                    "inserted": len(inserts),
                    "updated": len(updates),
                },
            )
    else:
        db.session.add_all(AttendanceDay(**values) for values in inserts)
    db.session.flush()
    return len(pending)


def reclassify(owner_id: int, first: date, last: date, now: datetime | None = None) -> int:
    """Classify one person's finished days ``first``..``last`` again (after leave was
    approved or cancelled, after a correction): days of locked months stay as they
    were, today and later are left for the sweep. Returns the days written."""
    moment = now or utcnow()
    last = min(last, local_today(moment) - timedelta(days=1))
    person = db.session.get(User, owner_id)
    if person is None or first > last:
        return 0
    written = _classify(
        {owner_id: joined_on(person)}, first, last, moment, only_open=False, bulk=False
    )
    started = attendance_started() or joined_on(person)
    recount_closed_months(owner_id, max(joined_on(person), started), first, last)
    return written


def recount_closed_months(owner_id: int, joined: date, first: date, last: date) -> int:
    """A month already closed (its AttendanceMonth written) is counted again when its
    days were reclassified later (leave approved or cancelled afterwards, a correction):
    the month's counts and appraisal deduction follow the days, unless it is locked.
    Follow-ups raised at month end stay as they were. Returns the months recounted."""
    low, high = first.year * 100 + first.month, last.year * 100 + last.month
    locked = locked_months(first, last)
    rows = [
        row
        for row in db.session.scalars(
            sa.select(AttendanceMonth).where(
                AttendanceMonth.owner_id == owner_id,
                (AttendanceMonth.year * 100 + AttendanceMonth.month).between(low, high),
            )
        )
        if (row.year, row.month) not in locked
    ]
    if not rows:
        return 0
    active = rules().active(MONTHLY_RULESET)
    for row in rows:
        found = _count_months({owner_id: joined}, row.year, row.month)[owner_id]
        answers: dict[tuple[Any, ...], Any] = {}
        evaluate_distinct(active, MONTH_FACTS, [found.key()], answers)
        evaluation = answers.get(found.key())
        row.workdays, row.late_count = found.workdays, found.late
        row.early_leave_count, row.missed_punch_count = found.early, found.missed
        row.absence_half_days, row.leave_half_days = found.absence_half_days, found.leave_half_days
        row.longest_absence_streak, row.penalty_points = found.streak, found.penalty_points
        if evaluation is not None:
            row.appraisal_deduction = int(evaluation.outputs.get("appraisal_deduction") or 0)
            row.rule_version = active.version
    db.session.flush()
    return len(rows)


# -- the month-end step --------------------------------------------------------------------


@dataclass
class MonthCounts:
    """One person's month, counted from the classified days."""

    workdays: int = 0
    late: int = 0
    early: int = 0
    missed: int = 0
    absence_half_days: int = 0
    leave_half_days: int = 0
    streak: int = 0
    penalty_points: int = 0

    def key(self) -> tuple[Any, ...]:
        """The facts of attendance_monthly.yaml, in ``MONTH_FACTS`` order."""
        return (
            min(self.late, 31),
            min(self.early, 31),
            min(self.missed, 62),
            Decimal(self.absence_half_days) / 2,
            min(self.streak, 31),
        )


def _count_months(people: dict[int, date], year: int, month: int) -> dict[int, MonthCounts]:
    """Each person's counts: schedules, holidays, leave (one query) and days (one
    query per 500 people)."""
    first, last = month_bounds(year, month)
    ids = sorted(people)
    schedules = schedules_of(ids)
    holidays = holidays_between(first, last)
    leaves = approved_leave(ids, first, last)
    statuses: dict[int, dict[date, tuple[str, int, int]]] = defaultdict(dict)
    for chunk in _chunks(ids):
        rows = db.session.execute(
            sa.select(
                AttendanceDay.owner_id,
                AttendanceDay.day,
                AttendanceDay.status,
                AttendanceDay.absence_half_days,
                AttendanceDay.penalty_points,
            ).where(AttendanceDay.owner_id.in_(chunk), AttendanceDay.day.between(first, last))
        )
        for row in rows:
            statuses[row.owner_id][row.day] = (
                row.status,
                row.absence_half_days,
                row.penalty_points,
            )
    counts: dict[int, MonthCounts] = {}
    for owner_id in ids:
        found = MonthCounts()
        streak = 0
        schedule = schedules[owner_id]
        spans = leaves.get(owner_id, [])
        days = statuses.get(owner_id, {})
        for day in days_between(max(first, people[owner_id]), last):
            status, absence, points = days.get(day, ("", 0, 0))
            found.absence_half_days += absence
            found.penalty_points += points
            if not is_workday(schedule, day, holidays):
                continue
            found.workdays += 1
            found.leave_half_days += len(leave_halves(spans, day))
            found.late += status in LATE_STATUSES
            found.early += status == "left_early"
            found.missed += status == "missed_punch"
            streak = streak + 1 if status == "absent" else 0
            found.streak = max(found.streak, streak)
        counts[owner_id] = found
    return counts


class _People:
    """The leaders and HR members of the people a month-end step follows up, loaded in
    a few queries for all of them (the step may follow up hundreds)."""

    def __init__(self, owner_ids: list[int]) -> None:
        from portal.loops.service import LeaderChains

        self.chains = LeaderChains().of_people(owner_ids)
        wanted = set(owner_ids) | {pid for chain in self.chains.values() for pid in chain}
        self.users: dict[int, User] = {}
        for chunk in _chunks(sorted(wanted)):
            self.users.update(
                (user.id, user)
                for user in db.session.scalars(sa.select(User).where(User.id.in_(chunk)))
            )
        self._hr: dict[int | None, list[User]] = {}

    def hr(self, person: User) -> list[User]:
        """HR members whose scope reaches the person (the same for a whole unit)."""
        from portal.loops.approvals import pool_members

        if person.unit_id not in self._hr:
            self._hr[person.unit_id] = pool_members("hr", person)
        return [member for member in self._hr[person.unit_id] if member.id != person.id]

    def leaders(self, person: User) -> list[User]:
        return [self.users[pid] for pid in self.chains.get(person.id, []) if pid in self.users]

    def follow_up_owner(self, person: User) -> User | None:
        """The person's supervisor (nearest leader); without one, an HR member."""
        leaders = self.leaders(person)
        if leaders:
            return leaders[0]
        pool = self.hr(person)
        return pool[0] if pool else None

    def recipients(self, person: User, routes: set[str]) -> list[User]:
        """Who attendance_monthly.yaml's ``notify`` names: the supervisor (nearest
        leader), the manager (the first leader up holding the manager role) and HR
        (holders of the hr role whose scope reaches the person)."""
        leaders = self.leaders(person)
        found: list[User] = []
        if "supervisor" in routes and leaders:
            found.append(leaders[0])
        if "manager" in routes:
            manager = next((user for user in leaders if "manager" in user.role_codes), None)
            if manager is not None:
                found.append(manager)
        if "hr" in routes:
            found.extend(self.hr(person))
        unique: dict[int, User] = {}
        for user in found:
            unique.setdefault(user.id, user)
        return list(unique.values())


def close_month(
    year: int, month: int, people: dict[int, date] | None = None, now: datetime | None = None
) -> dict[str, int]:
    """The month-end step once the month is over: one AttendanceMonth per person (a
    second run finds them and changes nothing), the month's counts asked of
    attendance_monthly.yaml, a loop item for each follow-up it opens (owned by the
    person's supervisor, the person as subject) and the notifications it names."""
    from portal.loops.notifications import notify, portal_path
    from portal.loops.service import raise_loop

    moment = now or utcnow()
    first, last = month_bounds(year, month)
    result = {"months": 0, "follow_ups": 0, "notified": 0}
    if last >= local_today(moment):
        return result
    people = attending_people() if people is None else people
    done = set(
        db.session.scalars(
            sa.select(AttendanceMonth.owner_id).where(
                AttendanceMonth.year == year, AttendanceMonth.month == month
            )
        )
    )
    todo = {pid: joined for pid, joined in people.items() if pid not in done and joined <= last}
    if not todo:
        return result
    counts = _count_months(todo, year, month)
    active = rules().active(MONTHLY_RULESET)
    answers: dict[tuple[Any, ...], Any] = {}
    evaluate_distinct(active, MONTH_FACTS, [found.key() for found in counts.values()], answers)
    written: list[tuple[AttendanceMonth, Any]] = []
    for owner_id, found in counts.items():
        evaluation = answers.get(found.key())
        row = AttendanceMonth(
            owner_id=owner_id,
            year=year,
            month=month,
            workdays=found.workdays,
            late_count=found.late,
            early_leave_count=found.early,
            missed_punch_count=found.missed,
            absence_half_days=found.absence_half_days,
            leave_half_days=found.leave_half_days,
            longest_absence_streak=found.streak,
            penalty_points=found.penalty_points,
            appraisal_deduction=int(evaluation.outputs.get("appraisal_deduction") or 0)
            if evaluation is not None
            else 0,
            follow_ups=[],
            rule_version=active.version,
        )
        written.append((row, evaluation))
    db.session.add_all(row for row, _evaluation in written)
    db.session.flush()
    result["months"] = len(written)
    period = month_text(year, month)
    followed = [(row, ev) for row, ev in written if ev is not None and ev.decisions]
    if not followed:
        return result
    known = _People([row.owner_id for row, _ev in followed])
    for row, evaluation in followed:
        rules().record(evaluation, (MONTH_TABLE, row.id), active.version_id)
        person = known.users[row.owner_id]
        link = portal_path("daily_attendance.month", person=row.owner_id, month=period)
        owner = known.follow_up_owner(person)
        routes: set[str] = set()
        loops: list[int] = []
        for decision in evaluation.decisions:
            routes.update(decision.outputs.get("notify") or [])
            follow_up = decision.outputs.get("open_loop")
            if not follow_up or owner is None:
                continue
            item = raise_loop(
                LOOP_TYPE,
                _(
                    "%(follow_up)s: %(person)s, attendance of %(month)s",
                    follow_up=label("attendance_follow_up", follow_up),
                    person=person.display_name,
                    month=period,
                )[:200],
                owner,
                priority=FOLLOW_UP_PRIORITY.get(follow_up, "normal"),
                subject=(MONTH_TABLE, row.id),
                subject_link=link,
                description=_(
                    "Rule %(rule)s of attendance_monthly: late %(late)s times, left early "
                    "%(early)s times, %(missed)s missed punches, %(absent)s days absent "
                    "(%(streak)s in a row).",
                    rule=decision.label,
                    late=row.late_count,
                    early=row.early_leave_count,
                    missed=row.missed_punch_count,
                    absent=f"{row.absence_half_days / 2:g}",
                    streak=row.longest_absence_streak,
                ),
                clause="P6.1",
                now=moment,
            )
            loops.append(item.id)
        row.follow_ups = loops
        result["follow_ups"] += len(loops)
        for recipient in known.recipients(person, routes):
            told = notify(
                recipient,
                "daily.attendance_violation",
                _l(
                    "Repeated attendance violations: %(person)s, %(month)s",
                    person=person.display_name,
                    month=period,
                ),
                _l(
                    "Late %(late)s times, left early %(early)s times, %(missed)s missed "
                    "punches, %(absent)s days absent; %(points)s appraisal points deducted.",
                    late=row.late_count,
                    early=row.early_leave_count,
                    missed=row.missed_punch_count,
                    absent=f"{row.absence_half_days / 2:g}",
                    points=row.appraisal_deduction,
                ),
                link,
            )
            result["notified"] += told is not None
    db.session.flush()
    return result


def run_attendance_sweep(now: datetime | None = None) -> dict[str, int]:
    """The hourly job: classify every finished day not yet classified, from the first
    day of last month (or the first punch ever) to yesterday (a bounded window; locked
    months are skipped), then
    run the month-end step for last month (once: its rows make a second run a no-op).
    The scheduler commits."""
    moment = now or utcnow()
    today = local_today(moment)
    year, month = previous_month(today)
    first, _last = month_bounds(year, month)
    started = attendance_started()
    if started is None:
        return {"classified": 0, "months": 0, "follow_ups": 0, "notified": 0}
    people = {pid: max(joined, started) for pid, joined in attending_people().items()}
    classified = _classify(
        people, first, today - timedelta(days=1), moment, only_open=True, bulk=True
    )
    closed = close_month(year, month, people, moment)
    return {"classified": classified, **closed}


def attendance_started() -> date | None:
    """The day of the first punch ever recorded: before it the portal's clock was not
    in use, so nobody is counted absent then (a new installation does not find a whole
    month of absences). None while nobody has punched."""
    return db.session.scalar(sa.select(sa.func.min(AttendanceDay.day)))


# -- missed-punch corrections ----------------------------------------------------------


def corrections_in_month(owner_id: int, day: date) -> int:
    """Corrections of the month of ``day`` that count against the cap."""
    first, last = month_bounds(day.year, day.month)
    return int(
        db.session.scalar(
            sa.select(sa.func.count())
            .select_from(PunchCorrection)
            .where(
                PunchCorrection.owner_id == owner_id,
                PunchCorrection.day.between(first, last),
                PunchCorrection.status.in_(COUNTED_CORRECTIONS),
            )
        )
        or 0
    )


def correction_facts(owner_id: int, day: date, kind: str, today: date) -> dict[str, Any]:
    """What punch_correction.yaml is asked with."""
    return {
        "corrections_this_month": min(corrections_in_month(owner_id, day), 62),
        "days_ago": min(max((today - day).days, 1), 366),
        "kind": kind,
    }


def request_correction(
    user: User,
    day: date | None,
    kind: str,
    minute: int | None,
    reason: str,
    now: datetime | None = None,
) -> PunchCorrection:
    """Ask to add a missing check-in or check-out of a past day (补卡). The rule file
    caps corrections per month and how far back they go (422 with its reason, nothing
    written); a locked month refuses (409); otherwise the correction waits for the
    approvers the file names."""
    from portal.loops import approvals
    from portal.loops.notifications import portal_path

    moment = now or utcnow()
    today = local_today(moment)
    errors: dict[str, list[str]] = {}
    reason = (reason or "").strip()
    if day is None:
        errors["day"] = [_("Give the day to correct.")]
    elif day >= today:
        errors["day"] = [_("Only a past day is corrected; today, check in or out instead.")]
    elif day < joined_on(user):
        errors["day"] = [_("That day is before you joined.")]
    if kind not in PUNCH_KINDS:
        errors["kind"] = [_("Choose check-in or check-out.")]
    if minute is None or not 0 <= minute < 1440:
        errors["minute"] = [_("Give the time as HH:MM.")]
    if not reason:
        errors["reason"] = [_("Say why the punch is missing.")]
    elif len(reason) > MAX_REASON:
        errors["reason"] = [_("At most %(n)s characters.", n=MAX_REASON)]
    if errors:
        raise ValidationFailed(errors)
    assert day is not None and minute is not None
    if is_locked(day):
        raise StateConflict(locked_message(day))
    row = day_of(user.id, day)
    if row is not None:
        present = row.check_in_at if kind == "in" else row.check_out_at
        if present is not None:
            raise ValidationFailed(
                {
                    "kind": [
                        _("That day already has this punch, at %(time)s.", time=clock_text(present))
                    ]
                }
            )
        other = minute_of_day(row.check_out_at if kind == "in" else row.check_in_at, day)
        if other is not None and (minute >= other if kind == "in" else minute <= other):
            message = (
                _("The check-in must be before the check-out.")
                if kind == "in"
                else _("The check-out must be after the check-in.")
            )
            raise ValidationFailed({"minute": [message]})
    waiting = db.session.scalar(
        sa.select(PunchCorrection.id).where(
            PunchCorrection.owner_id == user.id,
            PunchCorrection.day == day,
            PunchCorrection.kind == kind,
            PunchCorrection.status == "pending",
        )
    )
    if waiting is not None:
        raise StateConflict(_("A correction of this punch is already waiting for approval."))
    facts = correction_facts(user.id, day, kind, today)
    evaluation = rules().evaluate(CORRECTION_RULESET, facts)
    if evaluation.outputs.get("decision") == "reject":
        raise ValidationFailed(
            {"day": [correction_refusal(str(evaluation.outputs.get("reason") or ""))]}
        )
    correction = PunchCorrection(
        owner_id=user.id, day=day, kind=kind, punch_minute=minute, reason=reason, status="pending"
    )
    db.session.add(correction)
    db.session.flush()
    title = _(
        "Missed-punch correction: %(person)s, %(kind)s of %(day)s at %(time)s",
        person=user.display_name,
        kind=label("punch_kind", kind),
        day=day.isoformat(),
        time=f"{minute // 60:02d}:{minute % 60:02d}",
    )
    request = approvals.submit(
        APPROVAL_KIND,
        title,
        user,
        facts,
        subject=(CORRECTION_TABLE, correction.id),
        subject_link=portal_path("daily_attendance.corrections"),
        now=moment,
    )
    correction.approval_id = request.id
    db.session.flush()
    return correction


CORRECTION_REFUSALS = {
    "The month's missed-punch corrections are used up": _l(
        "The month's missed-punch corrections are used up"
    ),
    "Too long ago to correct a missed punch": _l("Too long ago to correct a missed punch"),
}


def correction_refusal(reason: str) -> str:
    """The rule file's reason in the reader's language when it is a known one."""
    if not reason:
        return _("The rules refuse this correction.")
    return str(CORRECTION_REFUSALS.get(reason, reason))


def apply_correction(correction: PunchCorrection, now: datetime | None = None) -> AttendanceDay:
    """Set the approved punch (marked corrected) and classify the day again."""
    if is_locked(correction.day):
        raise StateConflict(locked_message(correction.day))
    row = day_of(correction.owner_id, correction.day)
    if row is None:
        row = AttendanceDay(owner_id=correction.owner_id, day=correction.day)
        db.session.add(row)
    moment = at_local(correction.day, correction.punch_minute)
    if correction.kind == "in":
        if row.check_in_at is not None:
            raise StateConflict(_("That day has a check-in meanwhile."))
        row.check_in_at = moment
    else:
        if row.check_out_at is not None:
            raise StateConflict(_("That day has a check-out meanwhile."))
        row.check_out_at = moment
    row.corrected = True
    correction.status = "approved"
    db.session.flush()
    reclassify(correction.owner_id, correction.day, correction.day, now)
    return row


def on_correction_decided(request: Any) -> None:
    """The approval kind's callback, in the deciding transaction: an approved
    correction sets the punch and reclassifies the day (a locked month refuses the
    approval: 409); rejected or withdrawn frees its place in the month's cap; returned
    for changes stays pending. The person is told."""
    from portal.loops.notifications import notify, portal_path

    if request.subject_table != CORRECTION_TABLE or not request.subject_id:
        return
    correction = db.session.get(PunchCorrection, int(request.subject_id))
    if correction is None or correction.status != "pending":
        return
    if request.status == "approved":
        apply_correction(correction)
        title = _l("Punch correction approved: %(day)s", day=correction.day.isoformat())
    elif request.status in ("rejected", "cancelled"):
        correction.status = request.status
        title = _l("Punch correction not applied: %(day)s", day=correction.day.isoformat())
        if request.status == "cancelled":
            return  # the person withdrew it themselves
    else:
        return
    db.session.flush()
    notify(
        correction.owner_id,
        "daily.correction_decided",
        title,
        request.reason or "",
        portal_path(
            "daily_attendance.month",
            person=correction.owner_id,
            month=month_text(correction.day.year, correction.day.month),
        ),
    )


# -- reports ---------------------------------------------------------------------------------


def _count(condition: Any) -> Any:
    return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)


def team_people(viewer: User, year: int, month: int) -> sa.Select:
    """The people of the viewer's scope with days in the month, by name: what the team
    page pages through (its counts come from ``team_statement`` for one page)."""
    first, last = month_bounds(year, month)
    with_days = sa.select(AttendanceDay.owner_id).where(AttendanceDay.day.between(first, last))
    statement = sa.select(User).where(User.id.in_(with_days)).order_by(User.display_name, User.id)
    return scoped(statement, User, viewer)


def team_rows(people: list[User], year: int, month: int, viewer: User) -> list[Any]:
    """The counts of one page of people, in the page's order (one grouped query)."""
    if not people:
        return []
    ids = [person.id for person in people]
    found = {
        row.owner_id: row
        for row in db.session.execute(
            team_statement(viewer, year, month).where(AttendanceDay.owner_id.in_(ids))
        )
    }
    return [found[person_id] for person_id in ids if person_id in found]


def team_statement(viewer: User, year: int, month: int, unit_id: int | None = None) -> sa.Select:
    """Per person of the viewer's scope, one grouped query of the month's days:
    workdays, late, left early, missed punches, absences, leave, penalty points."""
    first, last = month_bounds(year, month)
    status = AttendanceDay.status
    statement = (
        sa.select(
            User.id.label("owner_id"),
            User.display_name.label("name"),
            _count(status.not_in(("rest_day", "open"))).label("workdays"),
            _count(status.in_(LATE_STATUSES)).label("late"),
            _count(status == "left_early").label("early"),
            _count(status == "missed_punch").label("missed"),
            _count(status == "absent").label("absent"),
            sa.func.coalesce(sa.func.sum(AttendanceDay.absence_half_days), 0).label(
                "absence_half_days"
            ),
            _count(status == "on_leave").label("leave"),
            sa.func.coalesce(sa.func.sum(AttendanceDay.penalty_points), 0).label("points"),
        )
        .join(User, User.id == AttendanceDay.owner_id)
        .where(AttendanceDay.day.between(first, last))
        .group_by(User.id, User.display_name)
        .order_by(User.display_name, User.id)
    )
    if unit_id is not None:
        unit = db.session.get(OrgUnit, unit_id)
        if unit is not None:
            inside = sa.select(OrgUnit.id).where(
                OrgUnit.path.startswith(unit.path, autoescape=True)
            )
            statement = statement.where(User.unit_id.in_(inside))
    return scoped(statement, AttendanceDay, viewer)


def reachable_person(viewer: User, person_id: int) -> User | None:
    """The person if the viewer may read their attendance (always themselves)."""
    if person_id == viewer.id:
        return viewer
    if not viewer.can("daily.view_attendance"):
        return None
    statement = scoped(sa.select(User).where(User.id == person_id), User, viewer)
    return db.session.scalars(statement).first()


@dataclass
class DayLine:
    """One calendar day of a person's month."""

    day: date
    row: AttendanceDay | None
    workday: bool
    holiday: Holiday | None


def person_month(person: User, year: int, month: int) -> list[DayLine]:
    """Every day of the month with its row (three queries)."""
    first, last = month_bounds(year, month)
    rows = {
        row.day: row
        for row in db.session.scalars(
            sa.select(AttendanceDay)
            .options(lazyload(AttendanceDay.owner))
            .where(AttendanceDay.owner_id == person.id, AttendanceDay.day.between(first, last))
        )
    }
    schedule = schedules_of([person.id])[person.id]
    holidays = holidays_between(first, last)
    return [
        DayLine(day, rows.get(day), is_workday(schedule, day, holidays), holidays.get(day))
        for day in days_between(first, last)
    ]


def month_record(person_id: int, year: int, month: int) -> AttendanceMonth | None:
    return db.session.scalars(
        sa.select(AttendanceMonth).where(
            AttendanceMonth.owner_id == person_id,
            AttendanceMonth.year == year,
            AttendanceMonth.month == month,
        )
    ).first()


# -- exports -------------------------------------------------------------------------------

# The file itself (formula-injection guard, CSV with BOM, .xlsx) is portal.exports'.
MAX_EXPORT_ROWS = 50_000
EXPORT_COLUMNS = [
    Column(_l("Person"), width=20),
    Column(_l("Month"), width=10),
    Column(_l("Workdays"), "int", 10),
    Column(_l("Late"), "int", 8),
    Column(_l("Left early"), "int", 10),
    Column(_l("Missed punches"), "int", 10),
    Column(_l("Absent days"), "number", 10),
    Column(_l("Days on leave"), "int", 10),
    Column(_l("Penalty points"), "int", 10),
]


def export_table(
    viewer: User, year: int, month: int, unit_id: int | None = None
) -> list[list[Any]]:
    """The team's month, one row per person (in the viewer's scope; the columns are
    ``EXPORT_COLUMNS``), audited."""
    period = month_text(year, month)
    found = db.session.execute(
        team_statement(viewer, year, month, unit_id).limit(MAX_EXPORT_ROWS)
    ).all()
    rows = [
        [
            row.name,
            period,
            int(row.workdays),
            int(row.late),
            int(row.early),
            int(row.missed),
            Decimal(int(row.absence_half_days)) / 2,
            int(row.leave),
            int(row.points),
        ]
        for row in found
    ]
    record_access(
        "export",
        DAY_TABLE,
        {"dataset": "attendance_month", "month": period, "unit": unit_id, "rows": len(rows)},
    )
    return rows


# -- settings: schedules, holidays, who works to which ---------------------------------------


def save_schedule(schedule: WorkSchedule | None, values: dict[str, Any]) -> WorkSchedule:
    """Create or change a schedule; the one marked default is the only default."""
    name = (values.get("name") or "").strip()
    taken = db.session.scalar(
        sa.select(WorkSchedule.id).where(
            WorkSchedule.name == name,
            WorkSchedule.id != (schedule.id if schedule is not None and schedule.id else 0),
        )
    )
    if taken is not None:
        raise ValidationFailed({"name": [_("Another schedule has this name.")]})
    if schedule is None:
        schedule = WorkSchedule()
        db.session.add(schedule)
    schedule.name = name
    schedule.kind = values["kind"]
    schedule.start_minute = values["start"]
    schedule.end_minute = values["end"]
    schedule.latest_start_minute = values.get("latest_start")
    schedule.required_minutes = values["required_minutes"]
    schedule.workdays = ",".join(sorted(set(values["workdays"])))
    schedule.active = bool(values.get("active", True))
    schedule.is_default = bool(values.get("is_default")) and schedule.active
    db.session.flush()
    if schedule.is_default:
        db.session.execute(
            sa.update(WorkSchedule)
            .where(WorkSchedule.id != schedule.id, WorkSchedule.is_default.is_(True))
            .values(is_default=False)
        )
    return schedule


def save_holiday(day: date, name: str, workday: bool) -> Holiday:
    """Add or change the holiday of a day (a locked month is not changed)."""
    if is_locked(day):
        raise StateConflict(locked_message(day))
    holiday = db.session.get(Holiday, day)
    if holiday is None:
        holiday = Holiday(day=day)
        db.session.add(holiday)
    holiday.name = name.strip()
    holiday.is_workday = workday
    db.session.flush()
    return holiday


def delete_holiday(day: date) -> None:
    """Remove a day from the holiday calendar."""
    if is_locked(day):
        raise StateConflict(locked_message(day))
    holiday = db.session.get(Holiday, day)
    if holiday is not None:
        db.session.delete(holiday)
        db.session.flush()


def assign_schedule(person_id: int, schedule_id: int) -> None:
    """Put a person on a schedule; 0 puts them back on the default."""
    current = db.session.get(PersonSchedule, person_id)
    if schedule_id == 0:
        if current is not None:
            db.session.delete(current)
        db.session.flush()
        return
    schedule = db.session.get(WorkSchedule, schedule_id)
    if schedule is None or not schedule.active:
        raise ValidationFailed({"schedule": [_("Choose a schedule in use.")]})
    if current is None:
        db.session.add(PersonSchedule(user_id=person_id, schedule_id=schedule_id))
    else:
        current.schedule_id = schedule_id
    db.session.flush()
