"""P6.2 team meetings: calling one (attendees, agenda, the materials deadline from
rules/meetings.yaml), materials, attendance, minutes, resolutions as loop items, the
unfinished ones carried onto the team's next agenda (once), who may see what, the API
and the list's query count.

Meetings are placed a few days ahead of the real clock (the services refuse nothing in
the near past or future); the org is the suite's: East (sup_east) > Shanghai (li, wang),
South (sup_south) > Guangzhou (zhao)."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from plugins.daily import meetings
from plugins.daily.models import AgendaItem, Meeting, MeetingAttendee, MeetingMaterial, Resolution
from portal.audit.recorder import acting_as
from portal.auth.models import User
from portal.extensions import db
from portal.files import upload_folder
from portal.loops.models import LoopItem, Notification
from portal.models import as_utc
from portal.rules.service import rules
from portal.testing import DEMO_TEST_PASSWORD, count_statements

PDF = b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n"
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 64


def soon(days: int = 3, hour: int = 2) -> datetime:
    """A whole hour ``days`` from now, in UTC (10:00 in Shanghai with the default hour)."""
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    return base.replace(hour=hour) + timedelta(days=days)


def local_text(moment: datetime, app: Any) -> str:
    """What the browser's date-time picker sends for ``moment`` (portal time zone)."""
    with app.app_context():
        return moment.astimezone(meetings.portal_zone()).strftime("%Y-%m-%dT%H:%M")


def make_meeting(app: Any, organiser: int, unit: int, starts: datetime, **values: Any) -> int:
    """Call a meeting through the service (as the pages do), committed."""
    with app.app_context(), acting_as("test"):
        actor = db.session.get(User, organiser)
        meeting = meetings.create_meeting(
            {
                "unit_id": unit,
                "title": values.pop("title", "Weekly sales meeting"),
                "cadence": values.pop("cadence", "weekly"),
                "starts_at": starts,
                "ends_at": starts + timedelta(hours=1),
                "location": "Room 3",
                "attendee_ids": values.pop("attendee_ids", None),
                "agenda": values.pop("agenda", []),
            },
            actor,
        )
        db.session.commit()
        return meeting.id


def add_resolution(app: Any, meeting_id: int, actor: int, owner: int, text: str) -> int:
    with app.app_context(), acting_as("test"):
        meeting = db.session.get(Meeting, meeting_id)
        resolution = meetings.add_resolution(
            meeting, db.session.get(User, actor), text, owner, None
        )
        db.session.commit()
        return resolution.id


def carried(app: Any, meeting_id: int) -> list[tuple[int | None, str]]:
    with app.app_context():
        rows = db.session.execute(
            sa.select(AgendaItem.resolution_id, AgendaItem.title)
            .where(AgendaItem.meeting_id == meeting_id, AgendaItem.source == "carried")
            .order_by(AgendaItem.id)
        )
        return [(row.resolution_id, row.title) for row in rows]


def notes_of(app: Any, user_id: int, kind: str) -> list[Notification]:
    with app.app_context():
        return list(
            db.session.scalars(
                sa.select(Notification).where(
                    Notification.user_id == user_id, Notification.kind == kind
                )
            )
        )


@pytest.fixture
def as_user(client: Any, login: Any) -> Any:
    """Log the test client in as someone else (out first)."""

    def switch(username: str) -> None:
        client.post("/logout")
        login(client, username)

    return switch


def bearer(api_token: Any, username: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_token(username)}"}


# -- calling, running, closing ---------------------------------------------------------------


def test_p6_2_meeting_with_agenda_attendance_minutes_and_published_minutes(
    app: Any, client: Any, org: dict[str, int], as_user: Any
) -> None:
    as_user("sup_east")
    page = client.get(f"/daily/meetings/new?unit_id={org['east']}")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert f'id="att-{org["li"]}" checked' in text and f'id="att-{org["wang"]}" checked' in text
    assert f'id="att-{org["zhao"]}"' not in text  # South is not offered to East's leader
    starts = soon()
    response = client.post(
        "/daily/meetings/new",
        data={
            "unit_id": org["east"],
            "title": "Week 48 sales meeting",
            "cadence": "weekly",
            "starts_at": local_text(starts, app),
            "ends_at": local_text(starts + timedelta(hours=1), app),
            "location": "Room 3",
            "attendee_ids": [org["sup_east"], org["li"], org["wang"]],
            "agenda-0-title": "Work reports",
            "agenda-0-presenter_id": org["li"],
            "agenda-1-title": "Market analysis",
            "agenda-1-presenter_id": "",
            "agenda-2-title": "",
        },
    )
    assert response.status_code == 303, response.get_data(as_text=True)
    meeting_id = int(response.headers["Location"].rsplit("/", 1)[1])
    with app.app_context():
        meeting = db.session.get(Meeting, meeting_id)
        assert meeting.owner_id == org["sup_east"] and meeting.status == "planned"
        # weekly: materials due 24 hours before (rules/meetings.yaml)
        assert as_utc(meeting.materials_due_at) == starts - timedelta(hours=24)
        assert [(i.title, i.presenter_id) for i in meeting.agenda] == [
            ("Work reports", org["li"]),
            ("Market analysis", None),
        ]
        attendees = {row.user_id for row in meetings.attendees_of(meeting)}
        assert attendees == {org["sup_east"], org["li"], org["wang"]}
        items = [item.id for item in meeting.agenda]
    for name in ("li", "wang"):
        called = notes_of(app, org[name], "daily.meeting_called")
        assert len(called) == 1 and called[0].link == f"/daily/meetings/{meeting_id}"
    assert notes_of(app, org["sup_east"], "daily.meeting_called") == []

    # Attendance: htmx gets the row back; a plain post redirects; nonsense is 422.
    marked = client.post(
        f"/daily/meetings/{meeting_id}/attendance/{org['li']}",
        data={"status": "present"},
        headers={"HX-Request": "true"},
    )
    assert marked.status_code == 200 and 'id="attendee-' in marked.get_data(as_text=True)
    assert "Present" in marked.get_data(as_text=True)
    plain = client.post(
        f"/daily/meetings/{meeting_id}/attendance/{org['wang']}", data={"status": "late"}
    )
    assert plain.status_code == 303
    bad = client.post(
        f"/daily/meetings/{meeting_id}/attendance/{org['wang']}", data={"status": "asleep"}
    )
    assert bad.status_code == 422
    stranger = client.post(
        f"/daily/meetings/{meeting_id}/attendance/{org['zhao']}", data={"status": "present"}
    )
    assert stranger.status_code == 422
    # Closing without minutes is refused with the reason.
    early = client.post(f"/daily/meetings/{meeting_id}/close", data={})
    assert early.status_code == 409 and "minutes" in early.get_data(as_text=True)
    saved = client.post(
        f"/daily/meetings/{meeting_id}/minutes",
        data={
            "minutes": "Targets reviewed.\nNext week: focus on Shanghai.",
            f"item-{items[0]}-notes": "Li: 3 new customers",
        },
    )
    assert saved.status_code == 303
    closed = client.post(f"/daily/meetings/{meeting_id}/close", data={})
    assert closed.status_code == 303
    with app.app_context():
        meeting = db.session.get(Meeting, meeting_id)
        assert meeting.status == "closed"
        assert meeting.minutes.startswith("Targets reviewed.")
        assert meeting.agenda[0].notes == "Li: 3 new customers"
        statuses = {
            row.user_id: row.status
            for row in db.session.scalars(
                sa.select(MeetingAttendee).where(MeetingAttendee.meeting_id == meeting_id)
            )
        }
        assert statuses == {org["li"]: "present", org["wang"]: "late", org["sup_east"]: "invited"}
    for name in ("li", "wang"):
        assert len(notes_of(app, org[name], "daily.minutes_published")) == 1
    # Published minutes are locked.
    assert (
        client.post(f"/daily/meetings/{meeting_id}/minutes", data={"minutes": "x"}).status_code
        == 409
    )
    locked = client.post(
        f"/daily/meetings/{meeting_id}/attendance/{org['li']}", data={"status": "absent"}
    )
    assert locked.status_code == 409
    detail = client.get(f"/daily/meetings/{meeting_id}")
    assert detail.status_code == 200
    assert "Next week: focus on Shanghai." in detail.get_data(as_text=True)


def test_p6_2_form_errors_are_shown_per_field_with_422(
    app: Any, client: Any, org: dict[str, int], as_user: Any
) -> None:
    as_user("sup_east")
    starts = soon()
    response = client.post(
        "/daily/meetings/new",
        data={
            "unit_id": org["south"],  # not a unit sup_east leads
            "title": "",
            "cadence": "weekly",
            "starts_at": local_text(starts, app),
            "ends_at": local_text(starts - timedelta(hours=1), app),
            "attendee_ids": [org["li"]],
        },
    )
    assert response.status_code == 422
    text = response.get_data(as_text=True)
    assert "Give the meeting a title." in text
    response = client.post(
        "/daily/meetings/new",
        data={
            "unit_id": org["south"],
            "title": "Sneaky",
            "cadence": "weekly",
            "starts_at": local_text(starts, app),
            "ends_at": local_text(starts - timedelta(hours=1), app),
            "attendee_ids": [org["li"], org["zhao"]],
            "agenda-0-title": "Topic",
            "agenda-0-presenter_id": org["wang"],  # not an attendee
        },
    )
    assert response.status_code == 422
    text = response.get_data(as_text=True)
    assert "Choose one of the teams you lead." in text
    assert "The meeting must end after it starts." in text
    assert "Choose attendees from the people offered." in text
    assert "the presenter must be an attendee" in text
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Meeting)) == 0
    # A salesperson calls no meetings.
    as_user("li")
    assert client.get("/daily/meetings/new").status_code == 403


# -- resolutions and the closed loop -------------------------------------------------------


def test_p6_2_a_resolution_is_a_loop_item_owned_and_notified_due_from_the_rule_file(
    app: Any, client: Any, org: dict[str, int], as_user: Any
) -> None:
    starts = soon()
    meeting_id = make_meeting(app, org["sup_east"], org["east"], starts)
    as_user("sup_east")
    response = client.post(
        f"/daily/meetings/{meeting_id}/resolutions",
        data={"text": "Visit the three A customers in Pudong", "owner_id": org["li"]},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200
    assert "Visit the three A customers in Pudong" in response.get_data(as_text=True)
    with app.app_context():
        resolution = db.session.scalars(sa.select(Resolution)).one()
        held_on = as_utc(starts).astimezone(meetings.portal_zone()).date()
        assert resolution.due_on == held_on + timedelta(days=7)  # weekly: 7 days
        assert resolution.unit_id == org["east"] and not resolution.closed
        item = db.session.get(LoopItem, resolution.loop_id)
        assert item.type == "daily.resolution" and item.owner_id == org["li"]
        assert (item.subject_table, item.subject_id) == ("daily_resolution", str(resolution.id))
        assert item.subject_link == f"/daily/meetings/{meeting_id}" and item.clause == "P6.2"
        assert item.raised_by_id == org["sup_east"]
        assert db.session.get(Meeting, meeting_id).status == "held"
    assigned = notes_of(app, org["li"], "daily.resolution_assigned")
    assert len(assigned) == 1 and assigned[0].link == f"/daily/meetings/{meeting_id}"
    # An owner outside the attendees and the organiser's scope is refused per field.
    refused = client.post(
        f"/daily/meetings/{meeting_id}/resolutions",
        data={"text": "Poach Guangzhou", "owner_id": org["zhao"]},
    )
    assert refused.status_code == 422
    assert "Choose an attendee or someone of your team." in refused.get_data(as_text=True)
    past = client.post(
        f"/daily/meetings/{meeting_id}/resolutions",
        data={"text": "Too late", "owner_id": org["li"], "due_on": "2020-01-01"},
    )
    assert past.status_code == 422
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Resolution)) == 1
        assert db.session.scalar(sa.select(sa.func.count()).select_from(LoopItem)) == 1


def test_p6_2_open_resolutions_are_carried_once_and_a_closed_loop_leaves_the_next_agenda(
    app: Any, client: Any, org: dict[str, int], as_user: Any, api_token: Any
) -> None:
    first = make_meeting(app, org["sup_east"], org["east"], soon(2))
    visit = add_resolution(app, first, org["sup_east"], org["li"], "Visit Pudong customers")
    report = add_resolution(app, first, org["sup_east"], org["wang"], "Competitor price report")
    # A meeting of another team carries nothing of East's.
    south = make_meeting(app, org["sup_south"], org["south"], soon(4))
    assert carried(app, south) == []

    second = make_meeting(app, org["sup_east"], org["east"], soon(4))
    assert [rid for rid, _title in carried(app, second)] == [visit, report]
    as_user("sup_east")
    for _ in range(2):  # showing the page carries again, but never twice
        assert client.get(f"/daily/meetings/{second}").status_code == 200
    assert [rid for rid, _title in carried(app, second)] == [visit, report]

    # Li closes the loop item from the core's loop API (My work).
    with app.app_context():
        loop_id = db.session.get(Resolution, visit).loop_id
    done = client.post(
        f"/api/v1/loops/{loop_id}/actions",
        json={"action": "close", "note": "Visited all three"},
        headers=bearer(api_token, "li"),
    )
    assert done.status_code == 200, done.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Resolution, visit).closed is True
        assert db.session.get(Resolution, report).closed is False
    third = make_meeting(app, org["sup_east"], org["east"], soon(6))
    assert [rid for rid, _title in carried(app, third)] == [report]
    # The one already carried stays on the second agenda, shown as done.
    page = client.get(f"/daily/meetings/{second}").get_data(as_text=True)
    assert page.count('data-testid="carried-done"') == 1

    # Reopened by the organiser: open again, and back on the planned agenda by itself.
    reopened = client.post(
        f"/api/v1/loops/{loop_id}/actions",
        json={"action": "reopen", "note": "One customer was not visited"},
        headers=bearer(api_token, "sup_east"),
    )
    assert reopened.status_code == 200, reopened.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Resolution, visit).closed is False
    assert client.get(f"/daily/meetings/{third}").status_code == 200
    assert sorted(rid for rid, _title in carried(app, third)) == sorted([report, visit])


def test_p6_2_a_rule_file_edit_changes_deadlines_and_late_uploads_without_code(
    make_app: Any, org: dict[str, int], tmp_path: Any
) -> None:
    app = make_app(RULES_REFRESH_SECONDS=0, RULES_INSTANCE_DIR=str(tmp_path / "rules"))
    before = make_meeting(app, org["sup_east"], org["east"], soon(3))
    with app.app_context(), acting_as("test"):
        text = rules().file_text("meetings")[1]
        changed = text.replace(
            "then: {materials_due_hours_before: 24, late_materials: accept, "
            "resolution_due_days: 7,",
            "then: {materials_due_hours_before: 48, late_materials: refuse, "
            "resolution_due_days: 3,",
        ).replace(
            "expect: {rule: weekly, materials_due_hours_before: 24, late_materials: accept, "
            "resolution_due_days: 7,",
            "expect: {rule: weekly, materials_due_hours_before: 48, late_materials: refuse, "
            "resolution_due_days: 3,",
        )
        assert changed != text
        rules().publish("meetings", changed, "cli", note="stricter weekly meetings")
    starts = soon(3)
    after = make_meeting(app, org["sup_east"], org["east"], starts)
    resolution_id = add_resolution(app, after, org["sup_east"], org["li"], "Call back Acme")
    with app.app_context():
        assert as_utc(db.session.get(Meeting, after).materials_due_at) == starts - timedelta(
            hours=48
        )
        assert as_utc(db.session.get(Meeting, before).materials_due_at) == soon(3) - timedelta(
            hours=24
        )
        held_on = starts.astimezone(meetings.portal_zone()).date()
        assert db.session.get(Resolution, resolution_id).due_on == held_on + timedelta(days=3)
        # Past the deadline a file is now refused (it was accepted and marked late).
        db.session.get(Meeting, after).materials_due_at = datetime.now(UTC) - timedelta(hours=1)
        db.session.commit()
    client = app.test_client()
    client.post("/login", data={"username": "li", "password": DEMO_TEST_PASSWORD})
    response = client.post(
        f"/daily/meetings/{after}/materials",
        data={"files": [(io.BytesIO(PDF), "figures.pdf")]},
        content_type="multipart/form-data",
    )
    assert response.status_code == 422
    assert "no longer taken" in response.get_data(as_text=True)


# -- who sees what -----------------------------------------------------------------------------


def test_p6_2_scope_other_teams_get_404_attendees_and_leaders_read(
    app: Any, client: Any, org: dict[str, int], as_user: Any, make_person: Any, api_token: Any
) -> None:
    chen = make_person("chen", roles=["salesperson"], unit=org["shanghai"])
    meeting_id = make_meeting(
        app,
        org["sup_east"],
        org["east"],
        soon(),
        attendee_ids=[org["sup_east"], org["li"], org["wang"]],
        title="East only",
    )
    for name in ("zhao", "sup_south", "chen"):
        as_user(name)
        assert client.get(f"/daily/meetings/{meeting_id}").status_code == 404, name
        assert "East only" not in client.get("/daily/meetings/?when=all").get_data(as_text=True)
    assert (
        client.get(
            f"/api/v1/daily/meetings/{meeting_id}", headers=bearer(api_token, "zhao")
        ).status_code
        == 404
    )
    as_user("sup_south")
    assert client.get(f"/daily/meetings/{meeting_id}/run").status_code == 404
    assert client.post(f"/daily/meetings/{meeting_id}/close").status_code == 404
    # An attendee reads it (the organiser is outside their own scope), but does not run it.
    as_user("li")
    assert client.get(f"/daily/meetings/{meeting_id}").status_code == 200
    assert "East only" in client.get("/daily/meetings/?when=all").get_data(as_text=True)
    assert client.get(f"/daily/meetings/{meeting_id}/run").status_code == 403
    # The organiser's leaders read it through scope; the manager may run it too.
    as_user("manager")
    assert client.get(f"/daily/meetings/{meeting_id}").status_code == 200
    assert client.get(f"/daily/meetings/{meeting_id}/run").status_code == 200
    assert chen  # created, in Shanghai, but not asked


def test_p6_2_materials_checked_stored_whole_late_marked_and_downloaded_in_scope(
    app: Any, client: Any, org: dict[str, int], as_user: Any
) -> None:
    meeting_id = make_meeting(app, org["sup_east"], org["east"], soon())
    as_user("li")
    good = client.post(
        f"/daily/meetings/{meeting_id}/materials",
        data={"files": [(io.BytesIO(PDF), "figures.pdf")]},
        content_type="multipart/form-data",
    )
    assert good.status_code == 303
    with app.app_context():
        folder = upload_folder(meetings.MATERIALS_AREA)
        stored_before = sorted(path.name for path in folder.iterdir())
    # An executable renamed .pdf, sent with a good file: refused, nothing half-saved.
    bad = client.post(
        f"/daily/meetings/{meeting_id}/materials",
        data={"files": [(io.BytesIO(PDF), "ok.pdf"), (io.BytesIO(EXE), "setup.pdf")]},
        content_type="multipart/form-data",
    )
    assert bad.status_code == 422
    assert "setup.pdf does not contain what its name says." in bad.get_data(as_text=True)
    with app.app_context():
        assert sorted(path.name for path in folder.iterdir()) == stored_before
        rows = list(db.session.scalars(sa.select(MeetingMaterial)))
        assert [row.filename for row in rows] == ["figures.pdf"] and not rows[0].late
        material_id = rows[0].id
    # Too large for the configured cap: a clear message.
    app.config["DAILY_UPLOAD_MAX_BYTES"] = 1024
    big = client.post(
        f"/daily/meetings/{meeting_id}/materials",
        data={"files": [(io.BytesIO(PDF + b"0" * 4096), "big.pdf")]},
        content_type="multipart/form-data",
    )
    assert big.status_code == 422 and "big.pdf is larger than" in big.get_data(as_text=True)
    app.config.pop("DAILY_UPLOAD_MAX_BYTES")
    # After the deadline the file is taken and marked late (rules/meetings.yaml: accept).
    with app.app_context():
        db.session.get(Meeting, meeting_id).materials_due_at = datetime.now(UTC) - timedelta(
            minutes=5
        )
        db.session.commit()
    late = client.post(
        f"/daily/meetings/{meeting_id}/materials",
        data={"files": [(io.BytesIO(PDF), "late.pdf")]},
        content_type="multipart/form-data",
    )
    assert late.status_code == 303
    with app.app_context():
        row = db.session.scalars(
            sa.select(MeetingMaterial).where(MeetingMaterial.filename == "late.pdf")
        ).one()
        assert row.late is True and row.uploaded_by_id == org["li"]
    # Who may read the meeting downloads; anyone else is told nothing.
    as_user("wang")
    download = client.get(f"/daily/meetings/{meeting_id}/materials/{material_id}")
    assert download.status_code == 200 and download.data == PDF
    as_user("zhao")
    assert client.get(f"/daily/meetings/{meeting_id}/materials/{material_id}").status_code == 404


# -- the API and the list ---------------------------------------------------------------------


def test_p6_2_api_calls_meetings_and_records_resolutions(
    app: Any, client: Any, org: dict[str, int], api_token: Any
) -> None:
    sup = bearer(api_token, "sup_east")
    starts = soon()
    created = client.post(
        "/api/v1/daily/meetings",
        json={
            "unit_id": org["east"],
            "title": "Monthly review",
            "cadence": "monthly",
            "starts_at": starts.isoformat(),
            "agenda": [{"title": "Targets", "presenter_id": org["li"]}],
        },
        headers=sup,
    )
    assert created.status_code == 201, created.get_data(as_text=True)
    body = created.get_json()
    meeting_id = body["id"]
    assert {row["user_id"] for row in body["attendees"]} == {
        org["sup_east"],
        org["li"],
        org["wang"],
    }
    due = datetime.fromisoformat(body["materials_due_at"])
    assert due == starts - timedelta(hours=48)  # monthly
    assert body["agenda"][0]["title"] == "Targets"
    listed = client.get("/api/v1/daily/meetings", headers=sup).get_json()
    assert [row["id"] for row in listed["items"]] == [meeting_id]
    assert client.get(f"/api/v1/daily/meetings/{meeting_id}", headers=sup).status_code == 200

    resolution = client.post(
        f"/api/v1/daily/meetings/{meeting_id}/resolutions",
        json={"text": "Raise prices 3 points", "owner_id": org["wang"]},
        headers=sup,
    )
    assert resolution.status_code == 201, resolution.get_data(as_text=True)
    assert resolution.get_json()["loop_id"] and resolution.get_json()["closed"] is False
    listed = client.get(f"/api/v1/daily/meetings/{meeting_id}/resolutions", headers=sup)
    assert [row["text"] for row in listed.get_json()["items"]] == ["Raise prices 3 points"]

    # Bad input: 422 per field; a salesperson may not run it (403); outside scope 404.
    bad = client.post(
        "/api/v1/daily/meetings",
        json={"unit_id": org["south"], "title": "", "cadence": "yearly", "starts_at": "soon"},
        headers=sup,
    )
    assert bad.status_code == 422 and {"title", "cadence", "starts_at"} <= set(
        bad.get_json()["error"]["fields"]
    )
    typo = client.post(
        "/api/v1/daily/meetings", json={"unit_id": org["east"], "tittle": "x"}, headers=sup
    )
    assert typo.status_code == 400
    li = bearer(api_token, "li")
    assert client.get(f"/api/v1/daily/meetings/{meeting_id}", headers=li).status_code == 200
    assert (
        client.post(
            f"/api/v1/daily/meetings/{meeting_id}/resolutions",
            json={"text": "x", "owner_id": org["li"]},
            headers=li,
        ).status_code
        == 403
    )
    zhao = bearer(api_token, "zhao")
    assert (
        client.get(f"/api/v1/daily/meetings/{meeting_id}/resolutions", headers=zhao).status_code
        == 404
    )


def test_p6_2_the_meeting_list_has_no_n_plus_one(
    app: Any, client: Any, org: dict[str, int], as_user: Any
) -> None:
    for day in range(2):
        make_meeting(app, org["sup_east"], org["east"], soon(day + 1))
    as_user("li")
    few = count_statements(app, client, "/daily/meetings/?when=all")
    for day in range(8):
        make_meeting(app, org["sup_east"], org["east"], soon(day + 3), title=f"Meeting {day}")
    many = count_statements(app, client, "/daily/meetings/?when=all")
    assert many == few
    page = client.get("/daily/meetings/?when=all").get_data(as_text=True)
    assert page.count("data-meeting-id=") == 10
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Meeting)) == 10


def test_p6_2_every_cadence_gets_its_materials_deadline_from_the_rule_file(
    app: Any, org: dict[str, int]
) -> None:
    expected = {"weekly": 24, "monthly": 48, "quarterly": 72, "ad_hoc": 2}
    starts = soon(5)
    for cadence, hours in expected.items():
        meeting_id = make_meeting(app, org["sup_east"], org["east"], starts, cadence=cadence)
        with app.app_context():
            due = as_utc(db.session.get(Meeting, meeting_id).materials_due_at)
            assert due == starts - timedelta(hours=hours), cadence


def test_p6_2_a_planned_meeting_is_changed_newcomers_told_and_stale_edits_refused(
    app: Any, client: Any, org: dict[str, int], as_user: Any, make_person: Any
) -> None:
    chen = make_person("chen", roles=["salesperson"], unit=org["shanghai"])
    starts = soon(4)
    meeting_id = make_meeting(
        app,
        org["sup_east"],
        org["east"],
        starts,
        attendee_ids=[org["sup_east"], org["li"], org["wang"]],
        agenda=[{"title": "Targets", "presenter_id": org["li"]}],
    )
    as_user("sup_east")
    page = client.get(f"/daily/meetings/{meeting_id}/edit")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert f'value="{local_text(starts, app)}"' in text  # shown in local time
    with app.app_context():
        version = db.session.get(Meeting, meeting_id).version_id
    later = starts + timedelta(days=1)
    form = {
        "unit_id": org["east"],
        "title": "Weekly sales meeting (moved)",
        "cadence": "weekly",
        "starts_at": local_text(later, app),
        "attendee_ids": [org["sup_east"], org["li"], chen],
        "agenda-0-title": "Targets and forecast",
        "agenda-0-presenter_id": org["li"],
        "agenda-1-title": "Competitor prices",
        "version": str(version),
    }
    changed = client.post(f"/daily/meetings/{meeting_id}/edit", data=form)
    assert changed.status_code == 303, changed.get_data(as_text=True)
    with app.app_context():
        meeting = db.session.get(Meeting, meeting_id)
        assert as_utc(meeting.starts_at) == later
        assert as_utc(meeting.materials_due_at) == later - timedelta(hours=24)
        assert [item.title for item in meeting.agenda] == [
            "Targets and forecast",
            "Competitor prices",
        ]
        assert {row.user_id for row in meetings.attendees_of(meeting)} == {
            org["sup_east"],
            org["li"],
            chen,
        }
    assert len(notes_of(app, chen, "daily.meeting_called")) == 1
    assert len(notes_of(app, org["li"], "daily.meeting_called")) == 1  # not told twice
    # The same form again carries the old version: someone changed it meanwhile.
    stale = client.post(f"/daily/meetings/{meeting_id}/edit", data=form)
    assert stale.status_code == 409
    # Wang, taken off, no longer reads it; calling it off tells the attendees.
    as_user("wang")
    assert client.get(f"/daily/meetings/{meeting_id}").status_code == 404
    as_user("sup_east")
    assert client.post(f"/daily/meetings/{meeting_id}/cancel").status_code == 303
    assert len(notes_of(app, chen, "daily.meeting_called")) == 2
    assert client.get(f"/daily/meetings/{meeting_id}/edit").status_code == 409


def test_p6_2_attendees_are_reminded_of_the_materials_deadline_once(
    app: Any, org: dict[str, int]
) -> None:
    starts = soon(3)
    meeting_id = make_meeting(app, org["sup_east"], org["east"], starts)  # weekly
    adhoc_id = make_meeting(app, org["sup_east"], org["east"], starts, cadence="ad_hoc")
    due = starts - timedelta(hours=24)
    with app.app_context(), acting_as("test"):
        # More than a day (weekly: remind_hours_before 24) before the deadline: nothing.
        early = meetings.send_meeting_reminders(due - timedelta(hours=25))
        assert early == {"reminded": 0, "notified": 0}
        first = meetings.send_meeting_reminders(due - timedelta(hours=23))
        db.session.commit()
        assert first == {"reminded": 1, "notified": 3}
        again = meetings.send_meeting_reminders(due - timedelta(hours=1))
        assert again == {"reminded": 0, "notified": 0}
        assert db.session.get(Meeting, meeting_id).reminded_at is not None
        assert db.session.get(Meeting, adhoc_id).reminded_at is None  # ad hoc: 0, none
    reminders = notes_of(app, org["li"], "daily.meeting_reminder")
    assert len(reminders) == 1 and reminders[0].link == f"/daily/meetings/{meeting_id}"


def test_p6_2_a_start_before_year_one_in_utc_is_refused_per_field(
    app: Any, client: Any, org: dict[str, int], as_user: Any
) -> None:
    """0001-01-01 00:00 in Shanghai is before year 1 in UTC: converting it failed (500);
    now the field says what to give, and no meeting is written."""
    as_user("sup_east")
    for typed in ("0001-01-01T00:00", "0001-01-01 07:59"):
        response = client.post(
            "/daily/meetings/new",
            data={
                "unit_id": org["east"],
                "title": "Weekly",
                "cadence": "weekly",
                "starts_at": typed,
                "ends_at": typed,
                "attendee_ids": [org["li"]],
            },
        )
        assert response.status_code == 422, typed
        assert "Give the date and time the meeting starts." in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Meeting)) == 0


def test_p6_2_a_resolution_owner_id_beyond_the_id_range_is_refused_per_field(
    app: Any, client: Any, org: dict[str, int], as_user: Any, api_token: Any
) -> None:
    """An owner id of 2**70 reached the database (500 on SQLite and PostgreSQL): now it
    is no person, refused next to the field, and nothing is written."""
    meeting_id = make_meeting(app, org["sup_east"], org["east"], soon())
    as_user("sup_east")
    for owner in (str(2**70), str(2**31), "-5"):
        response = client.post(
            f"/daily/meetings/{meeting_id}/resolutions",
            data={"text": "Visit Pudong", "owner_id": owner},
            headers={"HX-Request": "true"},
        )
        assert response.status_code == 422, owner
        assert "Choose who carries it out." in response.get_data(as_text=True)
    response = client.post(
        f"/api/v1/daily/meetings/{meeting_id}/resolutions",
        json={"text": "Visit Pudong", "owner_id": 2**70},
        headers=bearer(api_token, "sup_east"),
    )
    assert response.status_code == 422
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Resolution)) == 0


def test_p6_2_a_meeting_moved_to_another_team_drops_the_old_teams_carried_resolutions(
    app: Any, org: dict[str, int]
) -> None:
    """East's open resolutions carried onto a planned meeting do not follow it when the
    organiser moves it to South: South's attendees would read East's resolutions."""
    first = make_meeting(app, org["manager"], org["east"], soon(2))
    visit = add_resolution(app, first, org["manager"], org["li"], "Visit Pudong customers")
    later = make_meeting(app, org["manager"], org["east"], soon(4))
    assert [rid for rid, _title in carried(app, later)] == [visit]
    with app.app_context(), acting_as("test"):
        meeting = db.session.get(Meeting, later)
        starts = as_utc(meeting.starts_at)
        meetings.update_meeting(
            meeting,
            {
                "unit_id": org["south"],
                "title": meeting.title,
                "cadence": meeting.cadence,
                "starts_at": starts,
                "ends_at": starts + timedelta(hours=1),
                "attendee_ids": [org["zhao"]],
                "agenda": [],
            },
            db.session.get(User, org["manager"]),
        )
        db.session.commit()
    assert carried(app, later) == []


def test_p6_2_a_removed_material_leaves_the_disk_too(
    app: Any, client: Any, org: dict[str, int], as_user: Any
) -> None:
    """Removing a file dropped its row but left the file on disk, unreachable and never
    cleaned: now it is deleted once the removal commits."""
    meeting_id = make_meeting(app, org["sup_east"], org["east"], soon())
    as_user("li")
    added = client.post(
        f"/daily/meetings/{meeting_id}/materials",
        data={"files": [(io.BytesIO(PDF), "figures.pdf")]},
        content_type="multipart/form-data",
    )
    assert added.status_code == 303
    with app.app_context():
        folder = upload_folder(meetings.MATERIALS_AREA)
        material = db.session.scalars(sa.select(MeetingMaterial)).one()
        material_id, stored = material.id, folder / material.stored_name
    assert stored.exists()
    as_user("wang")  # neither the uploader nor the organiser: refused, the file stays
    refused = client.post(f"/daily/meetings/{meeting_id}/materials/{material_id}/delete")
    assert refused.status_code == 403 and stored.exists()
    as_user("li")
    removed = client.post(f"/daily/meetings/{meeting_id}/materials/{material_id}/delete")
    assert removed.status_code in (200, 303)
    with app.app_context():
        assert db.session.get(MeetingMaterial, material_id) is None
    assert not stored.exists()
