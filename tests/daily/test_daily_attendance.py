"""P6.1 attendance services: checking in and out, classification by
rules/attendance.yaml (schedules, holidays, approved leave), reclassification, the
month-end sweep (rules/attendance_monthly.yaml), missed-punch corrections
(rules/punch_correction.yaml) through the core approvals, and locked months.

Times are fixed: "now" is passed to the services, people joined on 1 January 2026, and
October 2026 is the month looked at (1 October to 8 October are public holidays in
China, 10 October, a Saturday, is worked instead: that is added per test)."""

from __future__ import annotations

import time as timer
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from plugins.daily import attendance
from plugins.daily.models import (
    AttendanceDay,
    AttendanceMonth,
    AttendancePeriod,
    Holiday,
    LeaveRequest,
    LeaveType,
    PersonSchedule,
    PunchCorrection,
    WorkSchedule,
)
from portal.audit.recorder import acting_as
from portal.auth.models import User, user_roles
from portal.extensions import db
from portal.loops import approvals
from portal.loops.errors import StateConflict
from portal.loops.models import ApprovalRequest, LoopItem, Notification
from portal.org.services import ValidationFailed
from portal.rules.service import rules

ZONE_OFFSET = timedelta(hours=8)  # Asia/Shanghai
JOINED = datetime(2026, 1, 1, tzinfo=UTC)


def local(day: date, hour: int, minute: int = 0) -> datetime:
    """A local time (Asia/Shanghai) as UTC."""
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC) - ZONE_OFFSET


@pytest.fixture(autouse=True)
def context(app: Any) -> Any:
    """Every test runs in the app's context (helpers below use the session)."""
    with app.app_context():
        yield


@pytest.fixture
def people(app: Any, org: dict[str, int], make_person: Any) -> dict[str, int]:
    """The org, plus an HR officer; everybody joined on 1 January 2026."""
    ids = dict(org)
    ids["hr"] = make_person("hr", roles=["hr"], unit=org["company"])
    with app.app_context():
        db.session.execute(sa.update(User).values(created_at=JOINED))
        db.session.commit()
    return ids


def user(username_or_id: Any) -> User:
    if isinstance(username_or_id, int):
        return db.session.get(User, username_or_id)
    return db.session.scalars(sa.select(User).where(User.username == username_or_id)).one()


def row_of(owner_id: int, day: date) -> AttendanceDay | None:
    db.session.expire_all()
    return attendance.day_of(owner_id, day)


def worked(owner_id: int, day: date, arrive: tuple[int, int], leave: tuple[int, int]) -> None:
    with acting_as("test"):
        attendance.punch(user(owner_id), "in", now=local(day, *arrive))
        attendance.punch(user(owner_id), "out", now=local(day, *leave))
        db.session.commit()


def classify(owner_id: int, day: date) -> AttendanceDay:
    with acting_as("test"):
        attendance.reclassify(owner_id, day, day, now=local(day + timedelta(days=1), 9))
        db.session.commit()
    found = row_of(owner_id, day)
    assert found is not None
    return found


MONDAY = date(2026, 10, 12)


# -- checking in and out -----------------------------------------------------------------


def test_p6_1_check_in_and_out_with_a_location_note(app: Any, people: dict[str, int]) -> None:
    with app.app_context(), acting_as("test"):
        row = attendance.punch(user("li"), "in", "Customer site, Pudong", now=local(MONDAY, 8, 55))
        db.session.commit()
        assert row.day == MONDAY and row.check_in_note == "Customer site, Pudong"
        attendance.punch(user("li"), "out", now=local(MONDAY, 18, 5))
        db.session.commit()
        found = row_of(people["li"], MONDAY)
        assert attendance.clock_text(found.check_in_at) == "08:55"
        assert attendance.clock_text(found.check_out_at) == "18:05"
        assert found.status == "open"  # classified once the day is over


def test_p6_1_checking_in_twice_is_refused_and_nothing_is_written(
    app: Any, people: dict[str, int]
) -> None:
    with app.app_context(), acting_as("test"):
        attendance.punch(user("li"), "in", "first", now=local(MONDAY, 8, 55))
        db.session.commit()
        with pytest.raises(StateConflict, match="already checked in today at 08:55"):
            attendance.punch(user("li"), "in", "second", now=local(MONDAY, 9, 30))
        db.session.rollback()
        found = row_of(people["li"], MONDAY)
        assert found.check_in_note == "first"
        assert attendance.clock_text(found.check_in_at) == "08:55"


def test_p6_1_check_out_before_check_in_is_refused(app: Any, people: dict[str, int]) -> None:
    with app.app_context(), acting_as("test"):
        with pytest.raises(StateConflict, match="Check in first"):
            attendance.punch(user("li"), "out", now=local(MONDAY, 18))
        db.session.rollback()
        assert row_of(people["li"], MONDAY) is None


def test_p6_1_a_second_check_out_replaces_the_first(app: Any, people: dict[str, int]) -> None:
    """DingTalk's 更新打卡: the last check-out of the day counts."""
    worked(people["li"], MONDAY, (8, 50), (17, 30))
    with app.app_context(), acting_as("test"):
        attendance.punch(user("li"), "out", "stayed for a customer call", now=local(MONDAY, 18, 10))
        db.session.commit()
        found = classify(people["li"], MONDAY)
        assert attendance.clock_text(found.check_out_at) == "18:10"
        assert found.check_out_note == "stayed for a customer call"
        assert found.status == "normal"


def test_p6_1_a_note_too_long_is_refused_per_field(app: Any, people: dict[str, int]) -> None:
    with app.app_context(), acting_as("test"):
        with pytest.raises(ValidationFailed) as refused:
            attendance.punch(user("li"), "in", "x" * 201, now=local(MONDAY, 9))
        assert set(refused.value.fields) == {"note"}


# -- classification ----------------------------------------------------------------------


CASES = [
    # (arrive, leave, status, penalty points, minutes late, minutes early)
    ((9, 5), (18, 0), "normal", 0, 5, 0),  # within the 5 grace minutes
    ((9, 6), (18, 0), "late", 1, 6, 0),
    ((9, 31), (18, 0), "seriously_late", 2, 31, 0),
    ((11, 1), (18, 0), "half_day_absence", 3, 121, 0),
    ((9, 0), (17, 59), "left_early", 1, 0, 1),
    ((9, 0), (12, 59), "absent", 5, 0, 301),  # worked 239 minutes
]


def test_p6_1_a_day_is_classified_by_the_rule_file(app: Any, people: dict[str, int]) -> None:
    """One week of li's days, each a boundary of attendance.yaml (one app for all)."""
    days = [MONDAY + timedelta(days=offset) for offset in (0, 1, 2, 3, 4, 7)]
    for day, (arrive, leave, *_expected) in zip(days, CASES, strict=True):
        worked(people["li"], day, arrive, leave)
    with acting_as("test"):
        attendance.reclassify(
            people["li"], days[0], days[-1], now=local(days[-1], 23, 59) + timedelta(days=1)
        )
        db.session.commit()
    for day, (_arrive, _leave, status, points, late, early) in zip(days, CASES, strict=True):
        found = row_of(people["li"], day)
        assert (day, found.status, found.penalty_points) == (day, status, points)
        assert (found.minutes_late, found.minutes_early) == (late, early)
        assert found.rule_version is not None and found.classified_at is not None


def test_p6_1_missing_punches_and_no_show_days(app: Any, people: dict[str, int]) -> None:
    with app.app_context(), acting_as("test"):
        attendance.punch(user("li"), "in", now=local(MONDAY, 8, 50))
        db.session.commit()
        assert classify(people["li"], MONDAY).status == "missed_punch"
        # wang did nothing at all: the classification writes the day, absent.
        found = classify(people["wang"], MONDAY)
        assert (found.status, found.absence_half_days, found.severity) == ("absent", 2, "serious")


def test_p6_1_holidays_and_worked_weekend_days(app: Any, people: dict[str, int]) -> None:
    saturday = date(2026, 10, 10)
    holiday = date(2026, 10, 5)
    with app.app_context(), acting_as("test"):
        db.session.add_all(
            [
                Holiday(day=holiday, name="National Day", is_workday=False),
                Holiday(day=saturday, name="National Day (worked)", is_workday=True),
            ]
        )
        db.session.commit()
        attendance.reclassify(people["li"], date(2026, 10, 4), saturday, now=local(MONDAY, 9))
        db.session.commit()
        assert row_of(people["li"], holiday) is None  # a rest day nobody worked: no row
        assert row_of(people["li"], date(2026, 10, 4)) is None  # a Sunday
        assert row_of(people["li"], saturday).status == "absent"  # worked instead


def test_p6_1_schedules_flexible_and_field_staff(app: Any, people: dict[str, int]) -> None:
    with app.app_context(), acting_as("test"):
        flexible = WorkSchedule(
            name="Flexible",
            kind="flexible",
            start_minute=8 * 60,
            end_minute=19 * 60,
            latest_start_minute=10 * 60,
            required_minutes=9 * 60,
        )
        field = WorkSchedule(name="Field", kind="field")
        db.session.add_all([flexible, field])
        db.session.flush()
        db.session.add_all(
            [
                PersonSchedule(user_id=people["li"], schedule_id=flexible.id),
                PersonSchedule(user_id=people["zhao"], schedule_id=field.id),
            ]
        )
        db.session.commit()
    # Flexible: arriving at 9:50 is fine, leaving at 18:40 is 10 minutes early.
    worked(people["li"], MONDAY, (9, 50), (18, 40))
    # Field staff: arriving at 10:30 is not late.
    worked(people["zhao"], MONDAY, (10, 30), (18, 30))
    # wang keeps the default 9:00-18:00.
    worked(people["wang"], MONDAY, (9, 50), (18, 40))
    with app.app_context():
        li = classify(people["li"], MONDAY)
        assert (li.status, li.minutes_late, li.minutes_early) == ("left_early", 0, 10)
        zhao = classify(people["zhao"], MONDAY)
        assert (zhao.status, zhao.minutes_late) == ("normal", 0)
        assert classify(people["wang"], MONDAY).status == "seriously_late"


def add_leave(
    owner_id: int, first: date, last: date, start_half: str = "am", end_half: str = "pm"
) -> None:
    if db.session.get(LeaveType, "annual") is None:
        db.session.add(LeaveType(code="annual", name_en="Annual leave", name_zh="年假"))
        db.session.flush()
    db.session.add(
        LeaveRequest(
            owner_id=owner_id,
            leave_type="annual",
            starts_on=first,
            start_half=start_half,
            ends_on=last,
            end_half=end_half,
            half_days=2,
            status="approved",
        )
    )
    db.session.commit()


def test_p6_1_approved_leave_whole_and_half_days(app: Any, people: dict[str, int]) -> None:
    tuesday = MONDAY + timedelta(days=1)
    # Monday: the whole day off; Tuesday morning off: arriving at 13:30 is on time.
    worked(people["li"], tuesday, (13, 30), (18, 0))
    with app.app_context(), acting_as("test"):
        add_leave(people["li"], MONDAY, tuesday, end_half="am")
        assert classify(people["li"], MONDAY).status == "on_leave"
        found = classify(people["li"], tuesday)
        assert (found.status, found.minutes_late) == ("normal", 0)


def test_p6_1_reclassify_after_leave_is_approved_later(app: Any, people: dict[str, int]) -> None:
    with app.app_context(), acting_as("test"):
        assert classify(people["li"], MONDAY).status == "absent"
        add_leave(people["li"], MONDAY, MONDAY)
        assert attendance.reclassify(people["li"], MONDAY, MONDAY, now=local(MONDAY, 23)) == 0
        # today is not finished: left for the sweep; a day later it is reclassified.
        changed = attendance.reclassify(
            people["li"],
            MONDAY,
            MONDAY + timedelta(days=30),
            now=local(MONDAY + timedelta(days=1), 9),
        )
        db.session.commit()
        assert changed == 1
        found = row_of(people["li"], MONDAY)
        assert (found.status, found.penalty_points, found.absence_half_days) == ("on_leave", 0, 0)


def test_p6_1_grace_minutes_come_from_the_rule_file(
    make_app: Any, org: dict[str, int], tmp_path: Any
) -> None:
    """Publishing grace_minutes 10 makes 9:08 on time, without a code change."""
    app = make_app(RULES_REFRESH_SECONDS=0, RULES_INSTANCE_DIR=str(tmp_path / "rules"))
    with app.app_context():
        db.session.execute(sa.update(User).values(created_at=JOINED))
        db.session.commit()
    worked(org["li"], MONDAY, (9, 8), (18, 0))
    with app.app_context(), acting_as("test"):
        assert classify(org["li"], MONDAY).status == "late"
        text = rules().file_text("attendance")[1]
        changed = (
            text.replace(
                "grace_minutes: {type: int, value: 5,", "grace_minutes: {type: int, value: 10,"
            )
            .replace(
                """  - name: one minute over the grace is late
    given: {is_workday: true, on_leave: false, has_check_in: true, has_check_out: true,
            minutes_late: 6,""",
                """  - name: one minute over the grace is late
    given: {is_workday: true, on_leave: false, has_check_in: true, has_check_out: true,
            minutes_late: 11,""",
            )
            .replace(
                "minutes_late: 10, minutes_early: 10, worked_minutes: 460",
                "minutes_late: 11, minutes_early: 10, worked_minutes: 459",
            )
        )
        assert changed != text
        rules().publish("attendance", changed, "cli", note="ten grace minutes")
        db.session.commit()
        found = classify(org["li"], MONDAY)
        assert (found.status, found.minutes_late) == ("normal", 8)


# -- locked months -------------------------------------------------------------------------


def lock(year: int, month: int, actor: int, now: datetime) -> None:
    with acting_as("test"):
        attendance.move_period(year, month, "review", user(actor), now=now)
        attendance.move_period(year, month, "lock", user(actor), now=now)
        db.session.commit()


def test_p6_1_a_locked_month_refuses_punches_corrections_and_reclassification(
    app: Any, people: dict[str, int]
) -> None:
    with app.app_context(), acting_as("test"):
        assert classify(people["li"], MONDAY).status == "absent"
        with pytest.raises(StateConflict, match="only once it is over"):
            attendance.move_period(2026, 10, "review", user("hr"), now=local(MONDAY, 12))
        lock(2026, 10, people["hr"], local(date(2026, 11, 3), 9))
        with pytest.raises(StateConflict):
            attendance.move_period(2026, 10, "reopen", user("hr"), now=local(date(2026, 11, 3), 9))
        db.session.rollback()
        add_leave(people["li"], MONDAY, MONDAY)
        assert (
            attendance.reclassify(people["li"], MONDAY, MONDAY, now=local(date(2026, 11, 3), 9))
            == 0
        )
        assert row_of(people["li"], MONDAY).status == "absent"
        with pytest.raises(StateConflict, match="locked"):
            attendance.request_correction(
                user("li"), MONDAY, "in", 9 * 60, "forgot", now=local(MONDAY + timedelta(days=2), 9)
            )
        db.session.rollback()
        # A punch on a day of a locked month (the clock set back) is refused too.
        with pytest.raises(StateConflict, match="locked"):
            attendance.punch(user("wang"), "in", now=local(date(2026, 10, 30), 9))
        db.session.rollback()
        assert db.session.scalar(sa.select(sa.func.count()).select_from(PunchCorrection)) == 0


# -- missed-punch corrections ---------------------------------------------------------------


def correct(owner: str, day: date, kind: str, minute: int, now: datetime) -> PunchCorrection:
    with acting_as("test"):
        found = attendance.request_correction(
            user(owner), day, kind, minute, "Phone battery", now=now
        )
        db.session.commit()
        return found


def test_p6_1_an_approved_correction_sets_the_punch_and_reclassifies(
    app: Any, people: dict[str, int]
) -> None:
    with app.app_context(), acting_as("test"):
        attendance.punch(user("li"), "in", now=local(MONDAY, 8, 58))
        db.session.commit()
        assert classify(people["li"], MONDAY).status == "missed_punch"
        asked = correct("li", MONDAY, "out", 18 * 60 + 3, local(MONDAY + timedelta(days=1), 9))
        request = db.session.get(ApprovalRequest, asked.approval_id)
        assert request.status == "pending"
        assert approvals.current_step(request).approver_id == people["sup_east"]
        approvals.act(
            request, user("sup_east"), "approve", now=local(MONDAY + timedelta(days=1), 10)
        )
        db.session.commit()
        found = row_of(people["li"], MONDAY)
        assert found.corrected and found.status == "normal"
        assert attendance.clock_text(found.check_out_at) == "18:03"
        assert db.session.get(PunchCorrection, asked.id).status == "approved"
        told = db.session.scalars(
            sa.select(Notification).where(
                Notification.user_id == people["li"],
                Notification.kind == "daily.correction_decided",
            )
        ).all()
        assert len(told) == 1


def test_p6_1_corrections_are_capped_per_month_and_in_time(
    app: Any, people: dict[str, int]
) -> None:
    now = local(date(2026, 10, 20), 9)
    with app.app_context():
        for day in (13, 14, 15):
            correct("li", date(2026, 10, day), "in", 9 * 60, now)
        with pytest.raises(ValidationFailed) as refused:
            correct("li", date(2026, 10, 16), "in", 9 * 60, now)
        assert refused.value.fields["day"] == ["The month's missed-punch corrections are used up"]
        db.session.rollback()
        with pytest.raises(ValidationFailed) as refused:
            correct("wang", date(2026, 10, 12), "in", 9 * 60, now)  # eight days back
        assert refused.value.fields["day"] == ["Too long ago to correct a missed punch"]
        db.session.rollback()
        assert db.session.scalar(sa.select(sa.func.count()).select_from(PunchCorrection)) == 3
        # A rejected correction gives its place back.
        first = db.session.scalars(sa.select(PunchCorrection).order_by(PunchCorrection.id)).first()
        request = db.session.get(ApprovalRequest, first.approval_id)
        with acting_as("test"):
            approvals.act(request, user("sup_east"), "reject", "No sign of it", now=now)
            db.session.commit()
        assert db.session.get(PunchCorrection, first.id).status == "rejected"
        correct("li", date(2026, 10, 16), "in", 9 * 60, now)


def test_p6_1_a_month_locked_meanwhile_refuses_the_approval(
    app: Any, people: dict[str, int]
) -> None:
    asked = correct("li", date(2026, 10, 30), "in", 540, local(date(2026, 11, 2), 9))
    with acting_as("test"):
        db.session.add(AttendancePeriod(year=2026, month=10, status="locked"))
        db.session.commit()
        request = db.session.get(ApprovalRequest, asked.approval_id)
        with pytest.raises(StateConflict, match="locked"):
            approvals.act(request, user("sup_east"), "approve", now=local(date(2026, 11, 2), 10))
        db.session.rollback()
    assert db.session.get(PunchCorrection, asked.id).status == "pending"
    assert row_of(people["li"], date(2026, 10, 30)) is None


def test_p6_1_correction_bad_input(app: Any, people: dict[str, int]) -> None:
    now = local(MONDAY + timedelta(days=1), 9)
    with app.app_context(), acting_as("test"):
        with pytest.raises(ValidationFailed) as refused:
            attendance.request_correction(
                user("li"), MONDAY + timedelta(days=1), "up", 2000, "", now=now
            )
        assert set(refused.value.fields) == {"day", "kind", "minute", "reason"}
        attendance.punch(user("li"), "in", now=local(MONDAY, 9))
        db.session.commit()
        with pytest.raises(ValidationFailed) as refused:
            attendance.request_correction(user("li"), MONDAY, "in", 540, "again", now=now)
        assert "kind" in refused.value.fields
        with pytest.raises(ValidationFailed) as refused:
            attendance.request_correction(user("li"), MONDAY, "out", 8 * 60, "before in", now=now)
        assert "minute" in refused.value.fields
        correct("li", MONDAY, "out", 18 * 60, now)
        with pytest.raises(StateConflict, match="already waiting"):
            attendance.request_correction(user("li"), MONDAY, "out", 18 * 60, "twice", now=now)


def test_p6_1_cap_from_the_rule_file(make_app: Any, org: dict[str, int], tmp_path: Any) -> None:
    """monthly_cap 1 in a published copy: the second correction is refused."""
    app = make_app(RULES_REFRESH_SECONDS=0, RULES_INSTANCE_DIR=str(tmp_path / "rules"))
    now = local(date(2026, 10, 20), 9)
    with app.app_context(), acting_as("test"):
        db.session.execute(sa.update(User).values(created_at=JOINED))
        db.session.commit()
        text = rules().file_text("punch_correction")[1]
        changed = text.replace(
            "monthly_cap: {type: int, value: 3,", "monthly_cap: {type: int, value: 1,"
        )
        # The case of the third correction now expects the refusal.
        changed = changed.replace(
            "{corrections_this_month: 2, days_ago: 3, kind: out}",
            "{corrections_this_month: 0, days_ago: 3, kind: out}",
        )
        assert changed != text
        rules().publish("punch_correction", changed, "cli", note="one a month")
        db.session.commit()
        correct("li", date(2026, 10, 19), "in", 540, now)
        with pytest.raises(ValidationFailed):
            correct("li", date(2026, 10, 16), "in", 540, now)


# -- the sweep and the month-end step -----------------------------------------------------------


def test_p6_1_the_sweep_classifies_and_closes_the_month_once(
    app: Any, people: dict[str, int]
) -> None:
    november_first = local(date(2026, 11, 2), 10)  # a Monday, October is over
    with app.app_context(), acting_as("test"):
        # li: late on four days, on time otherwise; wang always on time; zhao never came.
        for day in range(1, 32):
            if date(2026, 10, day).isoweekday() <= 5:
                arrive = (9, 20) if day in (12, 13, 14, 15) else (8, 55)
                worked(people["li"], date(2026, 10, day), arrive, (18, 0))
                worked(people["wang"], date(2026, 10, day), (8, 55), (18, 5))
        result = attendance.run_attendance_sweep(now=november_first)
        db.session.commit()
        assert result["months"] >= 3 and result["classified"] > 0
        li = db.session.scalars(
            sa.select(AttendanceMonth).where(AttendanceMonth.owner_id == people["li"])
        ).one()
        assert (li.year, li.month, li.late_count, li.workdays) == (2026, 10, 4, 22)
        assert li.appraisal_deduction == 2  # a talk for the lateness
        li_loops = db.session.scalars(
            sa.select(LoopItem).where(LoopItem.subject_id == str(li.id))
        ).all()
        assert [item.owner_id for item in li_loops] == [people["sup_east"]]
        assert li.follow_ups == [li_loops[0].id]
        wang = db.session.scalars(
            sa.select(AttendanceMonth).where(AttendanceMonth.owner_id == people["wang"])
        ).one()
        assert (wang.late_count, wang.appraisal_deduction, wang.follow_ups) == (0, 0, [])
        zhao = db.session.scalars(
            sa.select(AttendanceMonth).where(AttendanceMonth.owner_id == people["zhao"])
        ).one()
        assert zhao.longest_absence_streak >= 3 and zhao.absence_half_days == 44
        loops = db.session.scalars(
            sa.select(LoopItem).where(LoopItem.type == "daily.attendance_follow_up")
        ).all()
        zhao_loop = [item for item in loops if item.subject_id == str(zhao.id)]
        assert zhao_loop and zhao_loop[0].owner_id == people["sup_south"]
        assert set(zhao.follow_ups) == {item.id for item in zhao_loop}
        told = {
            n.user_id
            for n in db.session.scalars(
                sa.select(Notification).where(Notification.kind == "daily.attendance_violation")
            )
        }
        # zhao's serious absence: supervisor, manager and HR.
        assert {people["sup_south"], people["manager"], people["hr"]} <= told
        counts = (
            db.session.scalar(sa.select(sa.func.count()).select_from(AttendanceMonth)),
            db.session.scalar(sa.select(sa.func.count()).select_from(AttendanceDay)),
            len(loops),
            db.session.scalar(sa.select(sa.func.count()).select_from(Notification)),
        )
        # A second run (the job is hourly) changes nothing.
        again = attendance.run_attendance_sweep(now=november_first + timedelta(hours=1))
        db.session.commit()
        assert again == {"classified": 0, "months": 0, "follow_ups": 0, "notified": 0}
        assert counts == (
            db.session.scalar(sa.select(sa.func.count()).select_from(AttendanceMonth)),
            db.session.scalar(sa.select(sa.func.count()).select_from(AttendanceDay)),
            db.session.scalar(
                sa.select(sa.func.count())
                .select_from(LoopItem)
                .where(LoopItem.type == "daily.attendance_follow_up")
            ),
            db.session.scalar(sa.select(sa.func.count()).select_from(Notification)),
        )


def test_p6_1_the_sweep_is_fast_for_500_people(app: Any, org: dict[str, int]) -> None:
    """500 people with a month of punches (one in ten late four times): the sweep
    classifies about 11,000 days and closes the month in a few batched queries."""
    with acting_as("test"):
        template = user("li")
        rows = [
            {
                "username": f"p{index}",
                "display_name": f"Person {index}",
                "password_hash": template.password_hash,
                "active": True,
                "unit_id": org["shanghai"],
                "created_at": JOINED,
                "updated_at": JOINED,
            }
            for index in range(500)
        ]
        db.session.execute(sa.insert(User), rows)
        ids = db.session.scalars(sa.select(User.id).where(User.username.like("p%"))).all()
        role_id = template.roles[0].id
        db.session.execute(user_roles.insert(), [{"user_id": i, "role_id": role_id} for i in ids])
        punches = []
        for number, person_id in enumerate(ids):
            for day in attendance.days_between(date(2026, 10, 1), date(2026, 10, 31)):
                if day.isoweekday() > 5:
                    continue
                late = number % 10 == 0 and day.day in (12, 13, 14, 15)
                punches.append(
                    {
                        "owner_id": person_id,
                        "day": day,
                        "check_in_at": local(day, 9, 20) if late else local(day, 8, 55),
                        "check_out_at": local(day, 18, 5),
                    }
                )
        db.session.execute(sa.insert(AttendanceDay), punches)
        db.session.commit()
        rules().active("attendance")  # the rule files are synced once per installation
        rules().active("attendance_monthly")
        started = timer.perf_counter()
        result = attendance.run_attendance_sweep(now=local(date(2026, 11, 2), 10))
        db.session.commit()
        took = timer.perf_counter() - started
        print(f"\nattendance sweep, 500 people: {took:.2f} s, {result}")
        assert result["months"] >= 500 and result["follow_ups"] >= 50
        late = db.session.scalars(
            sa.select(AttendanceMonth).where(AttendanceMonth.late_count == 4)
        ).all()
        assert len(late) == 50
        assert took < 20


def test_p6_1_a_new_installation_is_not_a_month_of_absences(
    app: Any, people: dict[str, int]
) -> None:
    """Before the first punch ever, the clock was not in use: nobody is counted absent."""
    result = attendance.run_attendance_sweep(now=local(date(2026, 11, 2), 10))
    assert result == {"classified": 0, "months": 0, "follow_ups": 0, "notified": 0}
    worked(people["li"], date(2026, 10, 29), (8, 55), (18, 0))  # the first punch
    with acting_as("test"):
        result = attendance.run_attendance_sweep(now=local(date(2026, 11, 2), 10))
        db.session.commit()
    wang = db.session.scalars(
        sa.select(AttendanceDay).where(AttendanceDay.owner_id == people["wang"])
    ).all()
    assert sorted(row.day.day for row in wang) == [29, 30]  # Thursday and Friday
    assert {row.status for row in wang} == {"absent"}


def test_p6_1_leave_approved_after_month_end_recounts_the_closed_month(
    app: Any, people: dict[str, int]
) -> None:
    """Leave approved (or a correction) for days of a month already closed: the month's
    record follows its days (absence and deduction fall), unless the month is locked."""
    november_first = local(date(2026, 11, 2), 10)
    with app.app_context(), acting_as("test"):
        worked(people["wang"], date(2026, 10, 1), (8, 55), (18, 0))  # the clock is in use
        attendance.run_attendance_sweep(now=november_first)
        db.session.commit()

        def zhao_month() -> AttendanceMonth:
            db.session.expire_all()
            return db.session.scalars(
                sa.select(AttendanceMonth).where(
                    AttendanceMonth.owner_id == people["zhao"], AttendanceMonth.month == 10
                )
            ).one()

        before = zhao_month()
        absent, deduction = before.absence_half_days, before.appraisal_deduction
        assert absent == 44 and deduction > 0
        add_leave(people["zhao"], date(2026, 10, 12), date(2026, 10, 16))
        attendance.reclassify(
            people["zhao"], date(2026, 10, 12), date(2026, 10, 16), now=november_first
        )
        db.session.commit()
        after = zhao_month()
        assert (after.absence_half_days, after.leave_half_days) == (absent - 10, 10)
        # A locked month stays as it was.
        lock(2026, 10, people["hr"], november_first)
        add_leave(people["zhao"], date(2026, 10, 19), date(2026, 10, 19))
        attendance.reclassify(
            people["zhao"], date(2026, 10, 19), date(2026, 10, 19), now=november_first
        )
        db.session.commit()
        assert zhao_month().absence_half_days == absent - 10
