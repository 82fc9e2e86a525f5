"""P6.1 attendance pages and API: checking in from the page, the dashboard tile and the
API (twice is a 409), missed-punch corrections (cap, too far back, locked month), a
person's month and the team's month in scope (404 outside it, no N+1), reviewing and
locking a month, the export (audited, formula injection guarded) and HR's settings."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from plugins.daily import attendance
from plugins.daily.models import (
    AttendanceDay,
    AttendancePeriod,
    Holiday,
    PersonSchedule,
    PunchCorrection,
    WorkSchedule,
)
from portal.audit.models import AuditEvent
from portal.auth.models import User
from portal.extensions import db
from portal.loops.service import local_today
from portal.testing import count_statements

JOINED = datetime(2026, 1, 1, tzinfo=UTC)
OCTOBER = "2026-10"


@pytest.fixture
def people(app: Any, org: dict[str, int], make_person: Any) -> dict[str, int]:
    ids = dict(org)
    ids["hr"] = make_person("hr", roles=["hr"], unit=org["company"])
    with app.app_context():
        db.session.execute(sa.update(User).values(created_at=JOINED))
        db.session.commit()
    return ids


def auth(api_token: Any, username: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_token(username)}"}


def add_days(app: Any, owner_id: int, statuses: dict[int, str]) -> None:
    """October days of one person with a status (as the sweep leaves them)."""
    with app.app_context():
        for day, status in statuses.items():
            db.session.add(
                AttendanceDay(
                    owner_id=owner_id,
                    day=date(2026, 10, day),
                    status=status,
                    penalty_points=1 if status in ("late", "missed_punch") else 0,
                    absence_half_days=2 if status == "absent" else 0,
                )
            )
        db.session.commit()


# -- checking in -----------------------------------------------------------------------------


def test_p6_1_check_in_from_the_page_and_twice_is_a_409(
    app: Any, client: Any, login: Any, people: dict[str, int]
) -> None:
    login(client, "li")
    page = client.get("/daily/attendance/")
    assert page.status_code == 200 and b'data-testid="punch-button"' in page.data
    done = client.post(
        "/daily/attendance/punch", data={"kind": "in", "note": "Client visit, Minhang"}
    )
    assert done.status_code == 303
    again = client.post("/daily/attendance/punch", data={"kind": "in", "note": "again"})
    assert again.status_code == 409
    assert b"You already checked in today" in again.data
    with app.app_context():
        row = attendance.day_of(people["li"], local_today())
        assert row.check_in_note == "Client visit, Minhang"
    bad = client.post("/daily/attendance/punch", data={"kind": "sideways"})
    assert bad.status_code == 422


def test_p6_1_the_dashboard_tile_checks_in_with_htmx(
    app: Any, client: Any, login: Any, people: dict[str, int]
) -> None:
    login(client, "wang")
    tile = client.get("/daily/attendance/widget", headers={"HX-Request": "true"})
    assert tile.status_code == 200 and b"Check in" in tile.data
    assert b"<html" not in tile.data
    out_first = client.post(
        "/daily/attendance/punch", data={"kind": "out"}, headers={"HX-Request": "true"}
    )
    assert out_first.status_code == 409 and out_first.headers["HX-Redirect"] == "/daily/attendance/"
    done = client.post(
        "/daily/attendance/punch", data={"kind": "in"}, headers={"HX-Request": "true"}
    )
    assert done.status_code == 200 and b"Checked in at" in done.data and b"Check out" in done.data
    home = client.get("/")
    assert b"/daily/attendance/widget" in home.data


def test_p6_1_check_in_through_the_api(
    app: Any, client: Any, api_token: Any, people: dict[str, int]
) -> None:
    headers = auth(api_token, "li")
    out_first = client.post("/api/v1/daily/check-ins", json={"kind": "out"}, headers=headers)
    assert out_first.status_code == 409
    done = client.post(
        "/api/v1/daily/check-ins", json={"kind": "in", "note": "Pudong site"}, headers=headers
    )
    assert done.status_code == 201 and done.json["check_in_note"] == "Pudong site"
    again = client.post("/api/v1/daily/check-ins", json={"kind": "in"}, headers=headers)
    assert again.status_code == 409 and "already checked in" in again.json["error"]["message"]
    assert (
        client.post(
            "/api/v1/daily/check-ins", json={"kind": "in", "x": 1}, headers=headers
        ).status_code
        == 400
    )
    bad = client.post("/api/v1/daily/check-ins", json={"kind": "up"}, headers=headers)
    assert bad.status_code == 422 and "kind" in bad.json["error"]["fields"]
    mine = client.get("/api/v1/daily/check-ins", headers=headers)
    assert mine.status_code == 200 and mine.json["total"] == 1
    assert client.get("/api/v1/daily/check-ins?month=2026-13", headers=headers).status_code == 422


# -- corrections --------------------------------------------------------------------------------


def test_p6_1_corrections_page_cap_too_far_back_and_locked(
    app: Any, client: Any, login: Any, people: dict[str, int]
) -> None:
    with app.app_context():  # the portal's today (Asia/Shanghai), not UTC's
        yesterday = local_today() - timedelta(days=1)
    login(client, "li")
    form = {"day": yesterday.isoformat(), "kind": "in", "time": "09:02", "reason": "Phone died"}
    done = client.post("/daily/attendance/corrections", data=form)
    assert done.status_code == 303
    listed = client.get("/daily/attendance/corrections")
    assert b"09:02" in listed.data
    far = client.post(
        "/daily/attendance/corrections",
        data={**form, "day": (local_today() - timedelta(days=30)).isoformat()},
    )
    assert far.status_code == 422 and b"Too long ago" in far.data
    bad = client.post("/daily/attendance/corrections", data={**form, "time": "25:99", "reason": ""})
    assert bad.status_code == 422
    assert b"HH:MM" in bad.data and b"Say why the punch is missing" in bad.data
    with app.app_context():
        for _ in range(2):
            db.session.add(
                PunchCorrection(
                    owner_id=people["li"],
                    day=yesterday,
                    kind="out",
                    punch_minute=1080,
                    status="approved",
                )
            )
        db.session.commit()
    capped = client.post("/daily/attendance/corrections", data={**form, "kind": "out"})
    assert capped.status_code == 422 and b"used up" in capped.data
    with app.app_context():
        db.session.add(
            AttendancePeriod(year=yesterday.year, month=yesterday.month, status="locked")
        )
        db.session.commit()
    client = app.test_client()
    login(client, "wang")
    locked = client.post("/daily/attendance/corrections", data=form)
    assert locked.status_code == 409 and b"locked" in locked.data
    with app.app_context():
        owners = db.session.scalars(sa.select(PunchCorrection.owner_id)).all()
        assert people["wang"] not in owners


def test_p6_1_corrections_through_the_api(
    app: Any, client: Any, api_token: Any, people: dict[str, int]
) -> None:
    headers = auth(api_token, "li")
    with app.app_context():  # the portal's today (Asia/Shanghai), not UTC's
        today = local_today()
    yesterday = today - timedelta(days=1)
    body = {"day": yesterday.isoformat(), "kind": "out", "time": "18:01", "reason": "Forgot"}
    done = client.post("/api/v1/daily/punch-corrections", json=body, headers=headers)
    assert done.status_code == 201 and done.json["status"] == "pending"
    assert done.json["approval_id"]
    twice = client.post("/api/v1/daily/punch-corrections", json=body, headers=headers)
    assert twice.status_code == 409
    today = client.post(
        "/api/v1/daily/punch-corrections",
        json={**body, "day": today.isoformat()},
        headers=headers,
    )
    assert today.status_code == 422 and "day" in today.json["error"]["fields"]
    listed = client.get("/api/v1/daily/punch-corrections", headers=headers)
    assert listed.json["total"] == 1


# -- reports and scope ----------------------------------------------------------------------------


def test_p6_1_a_person_sees_their_own_month_and_nobody_elses(
    app: Any, client: Any, login: Any, people: dict[str, int]
) -> None:
    add_days(app, people["li"], {12: "late", 13: "normal", 14: "absent"})
    add_days(app, people["zhao"], {12: "absent"})
    login(client, "li")
    mine = client.get(f"/daily/attendance/month?month={OCTOBER}")
    assert mine.status_code == 200
    assert b'data-testid="day-2026-10-12"' in mine.data and b"Late" in mine.data
    assert b'data-testid="total-points">1<' in mine.data
    assert (
        client.get(f"/daily/attendance/month?month={OCTOBER}&person={people['wang']}").status_code
        == 404
    )
    assert client.get("/daily/attendance/month?month=nonsense").status_code == 404
    assert client.get("/daily/attendance/team").status_code == 403
    client = app.test_client()
    login(client, "sup_east")
    assert (
        client.get(f"/daily/attendance/month?month={OCTOBER}&person={people['li']}").status_code
        == 200
    )
    assert (
        client.get(f"/daily/attendance/month?month={OCTOBER}&person={people['zhao']}").status_code
        == 404
    )


def test_p6_1_team_month_is_scoped_and_one_grouped_query(
    app: Any, client: Any, login: Any, people: dict[str, int], make_person: Any
) -> None:
    add_days(app, people["li"], {12: "late", 13: "late", 14: "absent", 15: "on_leave"})
    add_days(app, people["wang"], {12: "normal"})
    add_days(app, people["zhao"], {12: "absent"})
    login(client, "sup_east")
    team = client.get(f"/daily/attendance/team?month={OCTOBER}")
    assert team.status_code == 200
    assert b"Li" in team.data and b"Wang" in team.data and b"Zhao" not in team.data
    few = count_statements(app, client, f"/daily/attendance/team?month={OCTOBER}")
    for index in range(8):
        person = make_person(f"extra{index}", unit=people["shanghai"])
        add_days(app, person, {12: "late", 13: "absent"})
    assert count_statements(app, client, f"/daily/attendance/team?month={OCTOBER}") == few


def test_p6_1_report_through_the_api_is_scoped(
    app: Any, client: Any, api_token: Any, people: dict[str, int]
) -> None:
    add_days(app, people["li"], {12: "late", 14: "absent"})
    add_days(app, people["zhao"], {12: "absent"})
    headers = auth(api_token, "sup_east")
    report = client.get(f"/api/v1/daily/attendance-report?month={OCTOBER}", headers=headers)
    assert report.status_code == 200
    rows = {row["name"]: row for row in report.json["items"]}
    assert set(rows) == {"Li"}
    assert (rows["Li"]["late"], rows["Li"]["absent_days"], rows["Li"]["penalty_points"]) == (
        1,
        1.0,
        1,
    )
    other = client.get(
        f"/api/v1/daily/attendance-report/{people['zhao']}?month={OCTOBER}", headers=headers
    )
    assert other.status_code == 404
    li = auth(api_token, "li")
    assert (
        client.get(
            f"/api/v1/daily/attendance-report/{people['li']}?month={OCTOBER}", headers=li
        ).json["total"]
        == 2
    )
    assert (
        client.get(
            f"/api/v1/daily/attendance-report/{people['wang']}?month={OCTOBER}", headers=li
        ).status_code
        == 404
    )
    assert client.get("/api/v1/daily/attendance-report", headers=li).status_code == 403


def test_p6_1_export_is_audited_and_guards_formulas(
    app: Any, client: Any, login: Any, people: dict[str, int]
) -> None:
    with app.app_context():
        db.session.get(User, people["li"]).display_name = "=HYPERLINK(1)"
        db.session.commit()
    add_days(app, people["li"], {12: "late"})
    login(client, "sup_east")
    csv_file = client.post(
        "/daily/attendance/team/export", data={"format": "csv", "month": OCTOBER}
    )
    assert csv_file.status_code == 200 and csv_file.mimetype == "text/csv"
    text = csv_file.data.decode("utf-8-sig")
    assert "'=HYPERLINK(1)" in text and "Zhao" not in text
    xlsx = client.post("/daily/attendance/team/export", data={"format": "xlsx", "month": OCTOBER})
    from openpyxl import load_workbook

    sheet = load_workbook(io.BytesIO(xlsx.data)).active
    assert sheet["A2"].value == "'=HYPERLINK(1)" and sheet["A2"].data_type == "s"
    with app.app_context():
        audited = db.session.scalars(
            sa.select(AuditEvent).where(
                AuditEvent.action == "export", AuditEvent.table_name == "daily_attendance_day"
            )
        ).all()
        assert len(audited) == 2
    client = app.test_client()
    login(client, "li")
    assert (
        client.post(
            "/daily/attendance/team/export", data={"format": "csv", "month": OCTOBER}
        ).status_code
        == 403
    )


def test_p6_1_hr_reviews_then_locks_a_finished_month(
    app: Any, client: Any, login: Any, people: dict[str, int]
) -> None:
    login(client, "li")
    assert (
        client.post("/daily/attendance/periods/2026/10", data={"action": "review"}).status_code
        == 403
    )
    client = app.test_client()
    login(client, "hr")
    page = client.get(f"/daily/attendance/team?month={OCTOBER}")
    assert b'data-testid="period-review"' in page.data
    assert (
        client.post("/daily/attendance/periods/2026/10", data={"action": "lock"}).status_code == 303
    )
    with app.app_context():
        assert db.session.get(AttendancePeriod, (2026, 10)) is None  # open cannot be locked
    client.post("/daily/attendance/periods/2026/10", data={"action": "review"})
    client.post("/daily/attendance/periods/2026/10", data={"action": "lock"})
    with app.app_context():
        period = db.session.get(AttendancePeriod, (2026, 10))
        assert period.status == "locked" and period.locked_by_id == people["hr"]


def test_p6_1_hr_sets_schedules_holidays_and_who_works_to_which(
    app: Any, client: Any, login: Any, people: dict[str, int]
) -> None:
    login(client, "li")
    assert client.get("/daily/attendance/settings").status_code == 403
    client = app.test_client()
    login(client, "hr")
    assert client.get("/daily/attendance/settings").status_code == 200
    bad = client.post(
        "/daily/attendance/settings/schedules/new",
        data={
            "name": "Late shift",
            "kind": "standard",
            "start": "18:00",
            "end": "09:00",
            "required_hours": "480",
            "workdays": ["1", "2"],
        },
    )
    assert bad.status_code == 422 and b"The end must be after the start" in bad.data
    done = client.post(
        "/daily/attendance/settings/schedules/new",
        data={
            "name": "Flexible",
            "kind": "flexible",
            "start": "08:00",
            "end": "19:00",
            "latest_start": "10:00",
            "required_hours": "540",
            "workdays": ["1", "2", "3"],
            "active": "y",
        },
    )
    assert done.status_code == 303
    with app.app_context():
        schedule = db.session.scalars(sa.select(WorkSchedule)).one()
        assert (schedule.latest_start_minute, schedule.workdays) == (600, "1,2,3")
    assigned = client.post(
        "/daily/attendance/settings/people", data={"person": people["li"], "schedule": schedule.id}
    )
    assert assigned.status_code == 303
    holiday = client.post(
        "/daily/attendance/settings/holidays", data={"day": "2026-12-31", "name": "New Year's Eve"}
    )
    assert holiday.status_code == 303
    assert (
        client.post("/daily/attendance/settings/holidays", data={"day": "", "name": ""}).status_code
        == 422
    )
    with app.app_context():
        assert db.session.get(PersonSchedule, people["li"]).schedule_id == schedule.id
        assert db.session.get(Holiday, date(2026, 12, 31)).is_workday is False
