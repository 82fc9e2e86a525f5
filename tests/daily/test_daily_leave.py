"""P6.1 "leave is requested in advance through the procedure": leave types and yearly
balances, requests counted in working half days, refused per field when they overlap,
come too late for their type (the rule file decides notice), exceed the balance or
cover no working day, routed by rules/leave_approval.yaml through the core approvals
(the chain changes when the rule file does), balances used and given back, hospital
certificates, scope and the API.

Organisation (``org``): manager > sup_east (East) > Shanghai: li, wang;
sup_south (South) > Guangzhou: zhao; admin; auditor; plus an HR officer.
"""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from plugins.daily import leave
from plugins.daily.models import AttendanceDay, LeaveBalance, LeaveDocument, LeaveRequest, LeaveType
from portal.audit.models import AuditEvent
from portal.audit.recorder import acting_as
from portal.auth.models import User
from portal.extensions import db
from portal.files import upload_folder
from portal.loops import approvals
from portal.loops.models import ApprovalRequest, Notification
from portal.loops.service import local_today
from portal.rules.service import rules
from portal.testing import count_statements

PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 64

# -- set-up ----------------------------------------------------------------------------------


def person(name: str) -> User:
    return db.session.scalars(sa.select(User).where(User.username == name)).one()


def monday(weeks: int = 3) -> date:
    """A Monday at least ``weeks`` weeks ahead: notice is never the question."""
    today = local_today()
    return today + timedelta(days=7 - today.weekday() + 7 * (weeks - 1))


def last_workday() -> date:
    """The most recent Monday-to-Friday day before today."""
    day = local_today() - timedelta(days=1)
    while day.weekday() > 4:
        day -= timedelta(days=1)
    return day


@pytest.fixture
def staff(app: Any, org: dict[str, int], make_person: Any) -> dict[str, int]:
    """The org, an HR officer, the default leave types and this and next year's
    entitlement (annual leave: 10 days) for everyone."""
    ids = dict(org)
    ids["hr"] = make_person("hr", roles=["hr"], unit=org["company"])
    with app.test_request_context(), acting_as("test"):
        # Everyone joined a month ago: last week's attendance counts.
        joined = datetime.now(UTC) - timedelta(days=30)
        db.session.execute(sa.update(User).values(created_at=joined))
        leave.ensure_leave_types()
        for year in {local_today().year, monday(6).year}:
            leave.grant_year(year)
        db.session.commit()
    return ids


def client_of(app: Any, login: Any, username: str) -> Any:
    client = app.test_client()
    login(client, username)
    return client


def auth(api_token: Any, username: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_token(username)}"}


def ask(client: Any, first: date | str, last: date | None = None, **extra: Any) -> Any:
    """Post the leave form as a browser does."""
    data = {
        "leave_type": "annual",
        "starts_on": str(first),
        "start_half": "am",
        "ends_on": str(last or first),
        "end_half": "pm",
        "reason": "Family trip",
    }
    data.update(extra)
    return client.post("/daily/leave/new", data=data, content_type="multipart/form-data")


def only_request(app: Any, owner: str = "li") -> LeaveRequest:
    with app.app_context():
        found = db.session.scalars(
            sa.select(LeaveRequest)
            .join(User, User.id == LeaveRequest.owner_id)
            .where(User.username == owner)
            .order_by(LeaveRequest.id.desc())
        ).first()
        assert found is not None
        db.session.expunge(found)
        return found


def approvers(app: Any, leave_id: int) -> list[str]:
    with app.app_context():
        found = db.session.get(LeaveRequest, leave_id)
        request = db.session.get(ApprovalRequest, found.approval_id)
        return [step.approver.username for step in request.steps if step.approver]


def decide(app: Any, leave_id: int, username: str, action: str = "approve") -> str:
    with app.test_request_context(), acting_as("test"):
        found = db.session.get(LeaveRequest, leave_id)
        request = db.session.get(ApprovalRequest, found.approval_id)
        approvals.act(request, person(username), action, "" if action == "approve" else "No")
        db.session.commit()
        db.session.refresh(found)
        return found.status


def balance(app: Any, owner: str, year: int, code: str = "annual") -> tuple[int, int]:
    with app.app_context():
        row = db.session.scalars(
            sa.select(LeaveBalance).where(
                LeaveBalance.owner_id == person(owner).id,
                LeaveBalance.leave_type == code,
                LeaveBalance.year == year,
            )
        ).one()
        return row.granted_half_days, row.used_half_days


def day_status(app: Any, owner: str, day: date) -> str | None:
    with app.app_context():
        return db.session.scalar(
            sa.select(AttendanceDay.status).where(
                AttendanceDay.owner_id == person(owner).id, AttendanceDay.day == day
            )
        )


def count_requests(app: Any) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(LeaveRequest))


# -- routing by length ------------------------------------------------------------------------


def test_p6_1_one_day_goes_to_the_supervisor_and_uses_the_balance(
    app: Any, staff: Any, login: Any
) -> None:
    client = client_of(app, login, "li")
    day = monday()
    response = ask(client, day)
    assert response.status_code == 303
    found = only_request(app)
    assert (found.status, found.half_days) == ("pending", 2)
    assert response.headers["Location"] == f"/daily/leave/{found.id}"
    assert approvers(app, found.id) == ["sup_east"]
    page = client.get(f"/daily/leave/{found.id}").get_data(as_text=True)
    assert f"/approvals/{found.approval_id}" in page  # the requester follows every step
    assert decide(app, found.id, "sup_east") == "approved"
    assert balance(app, "li", day.year) == (20, 2)
    with app.app_context():
        told = db.session.scalars(
            sa.select(Notification).where(
                Notification.user_id == staff["li"], Notification.kind == "daily.leave_decided"
            )
        ).all()
        assert [n.link for n in told] == [f"/daily/leave/{found.id}"]


def test_p6_1_four_days_go_to_the_supervisor_and_the_manager(
    app: Any, staff: Any, login: Any
) -> None:
    first = monday()
    response = ask(client_of(app, login, "li"), first, first + timedelta(days=3))
    assert response.status_code == 303
    found = only_request(app)
    assert found.half_days == 8
    assert approvers(app, found.id) == ["sup_east", "manager"]
    assert decide(app, found.id, "sup_east") == "pending"  # the manager is next
    assert decide(app, found.id, "manager") == "approved"


def test_p6_1_half_days_and_weekends_count_as_the_schedule_says(
    app: Any, staff: Any, login: Any
) -> None:
    first = monday()  # Monday afternoon to next Monday morning: 4.5 + 0.5 working days
    response = ask(
        client_of(app, login, "li"),
        first,
        first + timedelta(days=7),
        start_half="pm",
        end_half="am",
    )
    assert response.status_code == 303
    assert only_request(app).half_days == 10


def test_p6_1_editing_the_rule_file_changes_the_chain_without_code(
    app: Any, staff: Any, login: Any
) -> None:
    client = client_of(app, login, "li")
    first = monday()
    assert ask(client, first, first + timedelta(days=3)).status_code == 303
    assert approvers(app, only_request(app).id) == ["sup_east", "manager"]
    with app.app_context():
        text = rules().active("leave_approval").rule_file.source
        wider = text.replace(
            "supervisor_max_days: {type: number, scale: 1, value: 3,",
            "supervisor_max_days: {type: number, scale: 1, value: 4,",
        ).replace(
            "given: {leave_type: annual, days: 3.5, days_in_advance: 7, balance_days: 5}\n"
            "    expect: {rule: by-length, decision: route, approvers: [supervisor, manager]}",
            "given: {leave_type: annual, days: 3.5, days_in_advance: 7, balance_days: 5}\n"
            "    expect: {rule: by-length, decision: route, approvers: [supervisor]}",
        )
        assert (
            wider.count("value: 4,") == 1 and "approvers: [supervisor]}\n  - name: exactly" in wider
        )
        rules().publish("leave_approval", wider, "cli", note="supervisors approve 4 days")
    later = first + timedelta(days=7)
    assert ask(client, later, later + timedelta(days=3)).status_code == 303
    assert approvers(app, only_request(app).id) == ["sup_east"]


def test_p6_1_long_leave_also_goes_to_hr(app: Any, staff: Any, login: Any) -> None:
    first = monday(4)  # personal leave of three weeks: more than the HR limit of 10 days
    response = ask(
        client_of(app, login, "li"), first, first + timedelta(days=18), leave_type="personal"
    )
    assert response.status_code == 303
    found = only_request(app)
    assert found.half_days == 30
    with app.app_context():
        request = db.session.get(ApprovalRequest, found.approval_id)
        assert request.routes == ["supervisor", "manager", "hr"]
        assert request.steps[-1].approver_id == staff["hr"] or request.steps[-1].role_code == "hr"


# -- refusals ---------------------------------------------------------------------


def test_p6_1_an_overlapping_request_is_refused(app: Any, staff: Any, login: Any) -> None:
    client = client_of(app, login, "li")
    first = monday()
    assert ask(client, first, first + timedelta(days=1)).status_code == 303
    response = ask(client, first + timedelta(days=1), start_half="pm", leave_type="personal")
    assert response.status_code == 422
    assert "these dates overlap" in response.get_data(as_text=True)
    assert count_requests(app) == 1
    # The morning after the first request's last day is free: Wednesday.
    assert ask(client, first + timedelta(days=2), leave_type="personal").status_code == 303


def test_p6_1_annual_leave_in_the_past_is_refused_but_sick_leave_is_not(
    app: Any, staff: Any, login: Any
) -> None:
    client = client_of(app, login, "li")
    day = last_workday()
    response = ask(client, day)
    assert response.status_code == 422
    assert "Not requested far enough in advance" in response.get_data(as_text=True)
    assert count_requests(app) == 0
    response = ask(client, day, leave_type="sick", reason="Fever")
    assert response.status_code == 303
    found = only_request(app)
    assert found.status == "pending"
    with app.app_context():
        facts = db.session.get(ApprovalRequest, found.approval_id).facts
        assert int(facts["days_in_advance"]) < 0


def test_p6_1_more_than_the_balance_is_refused_by_the_rule_file(
    app: Any, staff: Any, login: Any
) -> None:
    client = client_of(app, login, "li")
    first = monday()
    # Ten days granted: eleven working days are refused, with the rule's reason.
    response = ask(client, first, first + timedelta(days=15))
    assert response.status_code == 422
    assert "More days than the remaining balance" in response.get_data(as_text=True)
    # A pending request holds its days: two requests cannot overdraw together.
    assert ask(client, first, first + timedelta(days=4)).status_code == 303
    later = first + timedelta(days=7)
    assert ask(client, later, later + timedelta(days=4)).status_code == 303
    response = ask(client, later + timedelta(days=7))
    assert response.status_code == 422
    assert count_requests(app) == 2


def test_p6_1_bad_dates_and_types_are_refused_per_field(app: Any, staff: Any, login: Any) -> None:
    client = client_of(app, login, "li")
    first = monday()
    response = ask(client, first, first - timedelta(days=1))
    assert response.status_code == 422
    assert "cannot end before it starts" in response.get_data(as_text=True)
    saturday = first + timedelta(days=5)
    response = ask(client, saturday, saturday + timedelta(days=1))
    assert response.status_code == 422
    assert "cover no working day" in response.get_data(as_text=True)
    response = ask(client, first, leave_type="sabbatical")
    assert response.status_code == 422
    assert "Choose a leave type from the list." in response.get_data(as_text=True)
    with app.app_context():
        db.session.get(LeaveType, "personal").active = False
        db.session.commit()
    assert ask(client, first, leave_type="personal").status_code == 422
    response = ask(client, "someday")
    assert response.status_code == 422
    assert count_requests(app) == 0


# -- balances used and given back; cancelling ----------------------------------------------------


def test_p6_1_cancelling_returns_the_balance(app: Any, staff: Any, login: Any) -> None:
    client = client_of(app, login, "li")
    first = monday()
    assert ask(client, first, first + timedelta(days=1)).status_code == 303
    found = only_request(app)
    assert decide(app, found.id, "sup_east") == "approved"
    assert balance(app, "li", first.year) == (20, 4)
    response = client.post(f"/daily/leave/{found.id}/cancel")
    assert response.status_code == 303
    assert only_request(app).status == "cancelled"
    assert balance(app, "li", first.year) == (20, 0)
    again = client.post(f"/daily/leave/{found.id}/cancel")
    assert again.status_code == 409


def test_p6_1_withdrawing_a_pending_request_cancels_its_approval(
    app: Any, staff: Any, login: Any
) -> None:
    client = client_of(app, login, "li")
    assert ask(client, monday()).status_code == 303
    found = only_request(app)
    assert (
        client_of(app, login, "sup_east").post(f"/daily/leave/{found.id}/cancel").status_code == 403
    )  # readable, but only the requester withdraws
    assert client.post(f"/daily/leave/{found.id}/cancel").status_code == 303
    with app.app_context():
        assert db.session.get(LeaveRequest, found.id).status == "cancelled"
        assert db.session.get(ApprovalRequest, found.approval_id).status == "cancelled"
    assert balance(app, "li", monday().year) == (20, 0)


def test_p6_1_started_leave_is_cancelled_by_hr_not_by_the_requester(
    app: Any, staff: Any, login: Any
) -> None:
    client = client_of(app, login, "li")
    assert ask(client, last_workday(), leave_type="sick", reason="Fever").status_code == 303
    found = only_request(app)
    assert decide(app, found.id, "sup_east") == "approved"
    assert day_status(app, "li", last_workday()) == "on_leave"  # attendance follows at once
    assert client.post(f"/daily/leave/{found.id}/cancel").status_code == 403
    assert only_request(app).status == "approved"
    hr = client_of(app, login, "hr")
    assert hr.post(f"/daily/leave/{found.id}/cancel").status_code == 303
    assert only_request(app).status == "cancelled"
    assert day_status(app, "li", last_workday()) not in (None, "on_leave")
    with app.app_context():
        told = db.session.scalars(
            sa.select(Notification.title).where(Notification.kind == "daily.leave_decided")
        ).all()
        assert any("cancelled by HR" in str(title) for title in told)


def test_p6_1_a_rejected_request_is_closed_and_the_requester_told(
    app: Any, staff: Any, login: Any
) -> None:
    assert ask(client_of(app, login, "li"), monday()).status_code == 303
    found = only_request(app)
    assert decide(app, found.id, "sup_east", "reject") == "rejected"
    assert balance(app, "li", monday().year) == (20, 0)
    with app.app_context():
        assert (
            db.session.scalar(
                sa.select(sa.func.count())
                .select_from(Notification)
                .where(Notification.kind == "daily.leave_decided")
            )
            == 1
        )


def test_p6_1_a_returned_request_waits_for_the_requester(app: Any, staff: Any, login: Any) -> None:
    client = client_of(app, login, "li")
    assert ask(client, monday(), leave_type="sick").status_code == 303
    found = only_request(app)
    assert decide(app, found.id, "sup_east", "return") == "pending"  # holds its days
    page = client.get(f"/daily/leave/{found.id}").get_data(as_text=True)
    assert 'data-testid="leave-returned"' in page
    url = f"/daily/leave/{found.id}/documents"
    upload = {"documents": (io.BytesIO(PDF), "note.pdf")}
    assert client_of(app, login, "wang").post(url, data=upload).status_code == 404
    upload = {"documents": (io.BytesIO(PDF), "note.pdf")}
    assert client_of(app, login, "sup_east").post(url, data=upload).status_code == 403
    assert client.post(url, data={}).status_code == 422
    upload = {"documents": (io.BytesIO(PDF), "note.pdf")}
    assert client.post(url, data=upload).status_code == 303
    with app.app_context():
        assert [d.filename for d in db.session.get(LeaveRequest, found.id).documents] == [
            "note.pdf"
        ]
        told = db.session.scalars(
            sa.select(Notification.title).where(Notification.kind == "daily.leave_decided")
        ).all()
        assert [str(title).split(":")[0] for title in told] == ["Leave returned to you"]
    assert client.post(f"/daily/leave/{found.id}/cancel").status_code == 303
    assert only_request(app).status == "cancelled"
    upload = {"documents": (io.BytesIO(PDF), "late.pdf")}
    assert client.post(url, data=upload).status_code == 409


# -- certificates ---------------------------------------------------------------------


def _files(app: Any) -> list[Path]:
    with app.app_context():
        folder = upload_folder(leave.UPLOAD_AREA)
        return list(folder.iterdir()) if folder.exists() else []


def test_p6_1_longer_sick_leave_needs_a_certificate_that_only_readers_get(
    app: Any, staff: Any, login: Any
) -> None:
    client = client_of(app, login, "li")
    first = monday()
    response = ask(client, first, first + timedelta(days=1), leave_type="sick")
    assert response.status_code == 422
    assert "needs a hospital certificate" in response.get_data(as_text=True)
    response = ask(
        client,
        first,
        first + timedelta(days=1),
        leave_type="sick",
        documents=(io.BytesIO(PDF), "certificate.pdf"),
    )
    assert response.status_code == 303
    found = only_request(app)
    with app.app_context():
        document = db.session.scalars(sa.select(LeaveDocument)).one()
        facts = db.session.get(ApprovalRequest, found.approval_id).facts
        assert facts["has_medical_certificate"] is True
    url = f"/daily/leave/{found.id}/documents/{document.id}"
    download = client.get(url)
    assert (download.status_code, download.data) == (200, PDF)
    assert client_of(app, login, "sup_east").get(url).status_code == 200
    assert client_of(app, login, "wang").get(url).status_code == 404
    assert client_of(app, login, "sup_south").get(url).status_code == 404


def test_p6_1_a_renamed_executable_or_a_too_big_file_saves_nothing(
    app: Any, staff: Any, login: Any
) -> None:
    client = client_of(app, login, "li")
    first = monday()
    response = ask(
        client,
        first,
        first + timedelta(days=1),
        leave_type="sick",
        documents=(io.BytesIO(EXE), "certificate.jpg"),
    )
    assert response.status_code == 422
    assert "does not contain what its name says" in response.get_data(as_text=True)
    app.config["DAILY_UPLOAD_MAX_BYTES"] = 1024
    response = ask(
        client,
        first,
        first + timedelta(days=1),
        leave_type="sick",
        documents=(io.BytesIO(PDF + b"0" * 4096), "certificate.pdf"),
    )
    assert response.status_code == 422
    assert "is larger than" in response.get_data(as_text=True)
    assert count_requests(app) == 0
    assert _files(app) == []
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(ApprovalRequest)) == 0


# -- scope ---------------------------------------------------------------------


def test_p6_1_leave_is_seen_by_its_owner_and_their_leaders_only(
    app: Any, staff: Any, login: Any
) -> None:
    first = monday()
    assert ask(client_of(app, login, "li"), first).status_code == 303
    assert ask(client_of(app, login, "zhao"), first).status_code == 303
    li_leave, zhao_leave = only_request(app, "li"), only_request(app, "zhao")
    url = f"/daily/leave/{li_leave.id}"
    assert client_of(app, login, "wang").get(url).status_code == 404
    assert client_of(app, login, "sup_south").get(url).status_code == 404
    assert client_of(app, login, "sup_east").get(url).status_code == 200
    month = first.strftime("%Y-%m")
    east = client_of(app, login, "sup_east").get(f"/daily/leave/team?month={month}")
    assert east.status_code == 200
    page = east.get_data(as_text=True)
    assert f'data-leave-id="{li_leave.id}"' in page
    assert f'data-leave-id="{zhao_leave.id}"' not in page
    south = client_of(app, login, "sup_south").get(f"/daily/leave/team?month={month}")
    assert f'data-leave-id="{zhao_leave.id}"' in south.get_data(as_text=True)
    assert client_of(app, login, "wang").get("/daily/leave/team").status_code == 403
    mine = client_of(app, login, "wang").get("/daily/leave/").get_data(as_text=True)
    assert f'data-leave-id="{li_leave.id}"' not in mine


def test_p6_1_the_team_page_and_the_api_list_have_no_n_plus_1(
    app: Any, staff: Any, login: Any, api_token: Any
) -> None:
    first = monday()
    client = client_of(app, login, "manager")
    api = app.test_client()
    headers = auth(api_token, "manager")
    month = first.strftime("%Y-%m")
    api_url = "/api/v1/daily/leave-requests"
    assert ask(client_of(app, login, "li"), first).status_code == 303
    count_statements(app, api, api_url, headers=headers)  # the token's first use is noted
    few = count_statements(app, client, f"/daily/leave/team?month={month}")
    few_api = count_statements(app, api, api_url, headers=headers)
    for name in ("wang", "zhao"):
        assert ask(client_of(app, login, name), first + timedelta(days=1)).status_code == 303
    assert count_statements(app, client, f"/daily/leave/team?month={month}") == few
    assert count_statements(app, api, api_url, headers=headers) == few_api


# -- settings ---------------------------------------------------------------------


def test_p6_1_leave_types_must_be_codes_of_the_rule_file(app: Any, staff: Any, login: Any) -> None:
    hr = client_of(app, login, "hr")
    assert hr.get("/daily/leave/types/").status_code == 200
    with app.app_context():
        db.session.delete(db.session.get(LeaveType, "bereavement"))
        db.session.commit()
    data = {"name_en": "Study leave", "name_zh": "学习假", "yearly_days": "0", "position": "5"}
    response = hr.post("/daily/leave/types/new", data={**data, "code": "study"})
    assert response.status_code == 422
    assert "rule file in force (leave_approval)" in response.get_data(as_text=True)
    response = hr.post(
        "/daily/leave/types/new",
        data={**data, "code": "bereavement", "name_en": "Bereavement", "active": "y"},
    )
    assert response.status_code == 303
    response = hr.post(
        "/daily/leave/types/annual/edit",
        data={
            "name_en": "Annual leave",
            "name_zh": "年假",
            "paid": "y",
            "uses_balance": "y",
            "yearly_days": "12.5",
            "position": "1",
            "active": "y",
        },
    )
    assert response.status_code == 303
    with app.app_context():
        assert db.session.get(LeaveType, "annual").yearly_half_days == 25
    assert client_of(app, login, "li").get("/daily/leave/types/").status_code == 403


def test_p6_1_hr_grants_the_year_and_adjusts_one_balance_with_a_reason(
    app: Any, staff: Any, login: Any
) -> None:
    hr = client_of(app, login, "hr")
    year = local_today().year + 2
    response = hr.post("/daily/leave/balances/grant", data={"year": str(year)})
    assert response.status_code == 303
    with app.app_context():
        rows = db.session.scalars(sa.select(LeaveBalance).where(LeaveBalance.year == year)).all()
        assert {row.granted_half_days for row in rows} == {20}
        assert staff["li"] in {row.owner_id for row in rows}
        assert staff["auditor"] not in {row.owner_id for row in rows}  # not an employee
        count = len(rows)
    assert hr.post("/daily/leave/balances/grant", data={"year": str(year)}).status_code == 303
    with app.app_context():
        assert (
            db.session.scalar(
                sa.select(sa.func.count())
                .select_from(LeaveBalance)
                .where(LeaveBalance.year == year)
            )
            == count
        )  # twice grants nothing twice
    adjust = {
        "owner_id": str(staff["li"]),
        "leave_type": "annual",
        "year": str(year),
        "change_days": "1.5",
    }
    response = hr.post("/daily/leave/balances/adjust", data=adjust)
    assert response.status_code == 422
    assert "Say why the balance changes." in response.get_data(as_text=True)
    response = hr.post(
        "/daily/leave/balances/adjust", data={**adjust, "reason": "Worked two Saturdays"}
    )
    assert response.status_code == 303
    assert balance(app, "li", year) == (23, 0)
    with app.app_context():
        event = db.session.scalars(
            sa.select(AuditEvent).where(
                AuditEvent.action == "adjust", AuditEvent.table_name == "daily_leave_balance"
            )
        ).one()
        assert event.after["reason"] == "Worked two Saturdays"
    response = hr.post(
        "/daily/leave/balances/adjust",
        data={**adjust, "change_days": "-20", "reason": "Typo"},
    )
    assert response.status_code == 422  # below zero
    assert client_of(app, login, "li").get("/daily/leave/balances/").status_code == 403


# -- API ---------------------------------------------------------------------


def test_p6_1_the_api_asks_reads_and_cancels_leave(app: Any, staff: Any, api_token: Any) -> None:
    client = app.test_client()
    li = auth(api_token, "li")
    first = monday()
    body = {
        "leave_type": "annual",
        "starts_on": first.isoformat(),
        "start_half": "am",
        "ends_on": (first + timedelta(days=1)).isoformat(),
        "end_half": "am",
        "reason": "Moving house",
    }
    created = client.post("/api/v1/daily/leave-requests", json=body, headers=li)
    assert created.status_code == 201, created.get_json()
    data = created.get_json()
    assert (data["days"], data["status"]) == ("1.5", "pending")
    assert data["approval"]["url"] == f"/approvals/{data['approval']['id']}"
    overlap = client.post("/api/v1/daily/leave-requests", json=body, headers=li)
    assert overlap.status_code == 422
    assert "starts_on" in overlap.get_json()["error"]["fields"]
    late = client.post(
        "/api/v1/daily/leave-requests",
        json={
            **body,
            "starts_on": last_workday().isoformat(),
            "ends_on": last_workday().isoformat(),
        },
        headers=li,
    )
    assert late.status_code == 422
    assert late.get_json()["error"]["fields"]["starts_on"] == [
        "Not requested far enough in advance"
    ]
    unknown = client.post("/api/v1/daily/leave-requests", json={**body, "days": 3}, headers=li)
    assert unknown.status_code == 400
    listing = client.get("/api/v1/daily/leave-requests", headers=li).get_json()
    assert [item["id"] for item in listing["items"]] == [data["id"]]
    wang = auth(api_token, "wang")
    assert client.get(f"/api/v1/daily/leave-requests/{data['id']}", headers=wang).status_code == 404
    assert client.get("/api/v1/daily/leave-requests", headers=wang).get_json()["items"] == []
    east = auth(api_token, "sup_east")
    assert client.get(f"/api/v1/daily/leave-requests/{data['id']}", headers=east).status_code == 200
    balances = client.get("/api/v1/daily/leave-balances", headers=li).get_json()["items"]
    annual = next(item for item in balances if item["leave_type"] == "annual")
    if first.year == local_today().year:
        assert (annual["available_days"], annual["pending_days"]) == ("8.5", "1.5")
    assert (
        client.get(f"/api/v1/daily/leave-balances?owner={staff['li']}", headers=wang).status_code
        == 404
    )
    assert (
        client.get(f"/api/v1/daily/leave-balances?owner={staff['li']}", headers=east).status_code
        == 200
    )
    types = client.get("/api/v1/daily/leave-types", headers=li).get_json()["items"]
    assert {item["code"] for item in types} >= {"annual", "sick", "compensatory"}
    cancelled = client.post(f"/api/v1/daily/leave-requests/{data['id']}/cancel", headers=li)
    assert (cancelled.status_code, cancelled.get_json()["status"]) == (200, "cancelled")
    assert (
        client.post(f"/api/v1/daily/leave-requests/{data['id']}/cancel", headers=li).status_code
        == 409
    )


def test_p6_1_every_leave_page_renders_for_who_may_see_it(app: Any, staff: Any, login: Any) -> None:
    li = client_of(app, login, "li")
    assert ask(li, monday(), leave_type="personal").status_code == 303
    found = only_request(app)
    for url in ("/daily/leave/", "/daily/leave/new", f"/daily/leave/{found.id}"):
        response = li.get(url)
        assert response.status_code == 200, url
    page = li.get("/daily/leave/").get_data(as_text=True)
    assert 'data-type="annual"' in page and f'data-leave-id="{found.id}"' in page
    assert "/daily/leave/team" not in page  # a salesperson has no team view
    hr = client_of(app, login, "hr")
    for url in (
        "/daily/leave/types/",
        "/daily/leave/types/new",
        "/daily/leave/types/annual/edit",
        "/daily/leave/balances/",
        "/daily/leave/balances/?year=1999",
        f"/daily/leave/{found.id}",
        "/daily/leave/team?month=garbage",
    ):
        assert hr.get(url).status_code == 200, url
    assert hr.get("/daily/leave/types/nothing/edit").status_code == 404
    with app.app_context():
        person("hr").locale = "zh_CN"
        db.session.commit()
    chinese = hr.get(f"/daily/leave/{found.id}")
    assert chinese.status_code == 200 and "事假" in chinese.get_data(as_text=True)
    assert hr.get("/daily/leave/team").status_code == 200
    auditor = client_of(app, login, "auditor")  # oversees, does not ask for leave
    assert auditor.get(f"/daily/leave/{found.id}").status_code == 200
    overview = auditor.get("/daily/leave/").get_data(as_text=True)
    assert "/daily/leave/team" in overview and "/daily/leave/new" not in overview
    assert auditor.get("/daily/leave/new").status_code == 403
    assert auditor.post(f"/daily/leave/{found.id}/cancel").status_code == 403


def test_p6_1_the_default_types_follow_the_rule_file(app: Any, org: Any) -> None:
    with app.test_request_context(), acting_as("test"):
        kinds = {kind.code: kind for kind in leave.ensure_leave_types()}
        db.session.commit()
        assert set(kinds) == set(leave.rule_leave_codes())
        assert (kinds["annual"].uses_balance, kinds["annual"].yearly_half_days) == (True, 20)
        assert kinds["compensatory"].uses_balance and not kinds["sick"].uses_balance
        assert not kinds["personal"].paid
        assert len(leave.ensure_leave_types()) == len(kinds)  # seeded once


def test_p6_1_team_calendar_of_a_month_at_the_edge_of_the_calendar_does_not_fail(
    app: Any, staff: Any, login: Any
) -> None:
    """Year 9999 or 0001 has no next or previous month: the page falls back to this
    month instead of failing on the pager's links."""
    east = client_of(app, login, "sup_east")
    with app.app_context():  # the portal's month (Asia/Shanghai), not UTC's
        this_month = local_today().strftime("%Y-%m")
    for month in ("9999-12", "0001-01", "99999-01", "2026-13"):
        response = east.get(f"/daily/leave/team?month={month}")
        assert response.status_code == 200, month
        assert this_month in response.get_data(as_text=True)


def test_p6_1_a_huge_number_of_days_is_refused_per_field(app: Any, staff: Any, login: Any) -> None:
    """1e999999999 days overflowed the half-day arithmetic (500): now a 422 with the
    message next to the field, and nothing is written."""
    hr = client_of(app, login, "hr")
    with app.app_context():
        year = local_today().year
    before = balance(app, "li", year)
    for typed in ("1e999999999", "-1e999999999", "1e400"):
        response = hr.post(
            "/daily/leave/balances/adjust",
            data={
                "owner_id": str(staff["li"]),
                "leave_type": "annual",
                "year": str(year),
                "change_days": typed,
                "reason": "Typo",
            },
        )
        assert response.status_code == 422, typed
        assert "Between -366 and 366 days." in response.get_data(as_text=True)
    assert balance(app, "li", year) == before
    response = hr.post(
        "/daily/leave/types/annual/edit",
        data={"name_en": "Annual leave", "name_zh": "年假", "yearly_days": "1e999999999"},
    )
    assert response.status_code == 422
    with app.app_context():
        assert db.session.get(LeaveType, "annual").yearly_half_days == 20
