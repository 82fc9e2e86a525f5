"""Which days a person works, in the portal's local time: their schedule's weekdays,
less public holidays, plus the weekend days worked instead (调休). Attendance
classification and leave counting both ask here, so they never disagree."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta

import sqlalchemy as sa

from portal.extensions import db
from portal.loops.service import local_today, portal_zone

from .models import Holiday, PersonSchedule, WorkSchedule

__all__ = [
    "default_schedule",
    "fallback_schedule",
    "holidays_between",
    "is_workday",
    "local_minute",
    "local_today",
    "portal_zone",
    "schedule_of",
    "schedules_of",
    "working_half_days",
    "workdays_between",
]


def fallback_schedule() -> WorkSchedule:
    """Used only while HR has defined no schedule at all: Monday to Friday, 9:00 to
    18:00. A new unsaved object each time (never add it to the session)."""
    return WorkSchedule(
        name="standard",
        kind="standard",
        start_minute=9 * 60,
        end_minute=18 * 60,
        latest_start_minute=None,
        required_minutes=8 * 60,
        workdays="1,2,3,4,5",
        is_default=True,
        active=True,
    )


def default_schedule() -> WorkSchedule:
    """The schedule of everyone not put on another one."""
    found = db.session.scalars(
        sa.select(WorkSchedule)
        .where(WorkSchedule.is_default.is_(True), WorkSchedule.active.is_(True))
        .limit(1)
    ).first()
    return found or fallback_schedule()


def schedules_of(user_ids: Iterable[int]) -> dict[int, WorkSchedule]:
    """Each person's schedule in one query (the month-end sweep asks for hundreds)."""
    ids = list(user_ids)
    fallback = default_schedule()
    found: dict[int, WorkSchedule] = {}
    for start in range(0, len(ids), 500):
        rows = db.session.execute(
            sa.select(PersonSchedule.user_id, WorkSchedule)
            .join(WorkSchedule, PersonSchedule.schedule_id == WorkSchedule.id)
            .where(PersonSchedule.user_id.in_(ids[start : start + 500]))
        )
        found.update({user_id: schedule for user_id, schedule in rows})
    return {
        user_id: found[user_id] if user_id in found and found[user_id].active else fallback
        for user_id in ids
    }


def schedule_of(user_id: int) -> WorkSchedule:
    """One person's schedule."""
    return schedules_of([user_id])[user_id]


def holidays_between(first: date, last: date) -> dict[date, Holiday]:
    """The holidays and worked weekend days from ``first`` to ``last`` inclusive."""
    rows = db.session.scalars(sa.select(Holiday).where(Holiday.day.between(first, last)))
    return {row.day: row for row in rows}


def is_workday(schedule: WorkSchedule, day: date, holidays: dict[date, Holiday]) -> bool:
    """Whether ``day`` is a working day on ``schedule``: a holiday is not, a worked
    weekend day is, otherwise the schedule's weekdays decide."""
    holiday = holidays.get(day)
    if holiday is not None:
        return holiday.is_workday
    return str(day.isoweekday()) in schedule.workdays.split(",")


def workdays_between(
    schedule: WorkSchedule, first: date, last: date, holidays: dict[date, Holiday] | None = None
) -> list[date]:
    """The working days from ``first`` to ``last`` inclusive."""
    if holidays is None:
        holidays = holidays_between(first, last)
    days = []
    day = first
    while day <= last:
        if is_workday(schedule, day, holidays):
            days.append(day)
        day += timedelta(days=1)
    return days


def working_half_days(
    schedule: WorkSchedule,
    first: date,
    first_half: str,
    last: date,
    last_half: str,
    holidays: dict[date, Holiday] | None = None,
) -> int:
    """Working half days from the ``first_half`` ("am"/"pm") of ``first`` to the
    ``last_half`` of ``last``: what a leave request uses up. 0 when nothing is worked."""
    total = 0
    for day in workdays_between(schedule, first, last, holidays):
        halves = 2
        if day == first and first_half == "pm":
            halves -= 1
        if day == last and last_half == "am":
            halves -= 1
        total += max(halves, 0)
    return total


def local_minute(moment: datetime) -> tuple[date, int]:
    """The local day and minute after midnight of an instant (a punch)."""
    local = moment.astimezone(portal_zone())
    return local.date(), local.hour * 60 + local.minute
