"""P6 end to end, through the pages, with the sales and daily plugins loaded: a
salesperson's day (she checks in, logs a visit on her customer, claims the taxi fare
there with its receipt linked to the customer) and her supervisor's week (he approves
the claim and a leave request in /approvals/, runs the weekly meeting - attendance,
minutes, a resolution - and reads the team's attendance and the expense analysis);
finance pays the claim.

Organisation (``org``): manager > sup_east (East) > Shanghai: li, wang; South >
Guangzhou: zhao; plus a finance officer "fin" in the company unit."""

from __future__ import annotations

import io
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from plugins.daily.demo import png_bytes
from plugins.daily.models import (
    AttendanceDay,
    ExpenseClaim,
    LeaveRequest,
    Meeting,
    MeetingAttendee,
    Resolution,
)
from plugins.sales.models import Activity, Customer
from portal.extensions import db
from portal.loops.models import ApprovalRequest, LoopItem
from portal.loops.service import local_today, portal_zone
from portal.models import utcnow


def location(response: Any) -> str:
    assert response.status_code == 303, (response.status_code, response.get_data(as_text=True))
    return response.headers["Location"]


def last_id(target: str) -> int:
    return int(target.split("?")[0].split("#")[0].rstrip("/").rsplit("/", 1)[1])


def fresh(model: Any, record_id: int) -> Any:
    db.session.expire_all()
    return db.session.get(model, record_id)


def test_p6_salespersons_day_and_supervisors_week_end_to_end(
    app: Any, org: dict[str, int], make_person: Any, login: Any
) -> None:
    make_person("fin", roles=["finance"], unit=org["company"])
    li, zhang, fin = (app.test_client() for _ in range(3))
    login(li, "li")
    login(zhang, "sup_east")
    login(fin, "fin")
    with app.app_context():
        today = local_today()  # the portal's day (its time zone, not UTC)

    # -- Li's day -----------------------------------------------------------------------------
    # 1. She checks in at the office (P6.1).
    location(li.post("/daily/attendance/punch", data={"kind": "in", "note": "Shanghai office"}))
    page = li.get("/daily/attendance/").get_data(as_text=True)
    assert "Checked in at" in page
    with app.app_context():
        row = db.session.scalars(
            sa.select(AttendanceDay).where(AttendanceDay.owner_id == org["li"])
        ).one()
        assert row.day == today and row.check_in_at is not None and row.check_out_at is None

    # 2. She records her customer and logs the visit there (the sales plugin's pages).
    customer_id = last_id(
        location(
            li.post(
                "/sales/customers/new",
                data={
                    "name": "上海东海精密机械有限公司",
                    "phone": "021-5988 4321",
                    "industry": "machinery",
                    "size": "medium",
                    "region": "east",
                    "city": "上海",
                    "address": "上海市嘉定区华江路 18 号",
                    "source": "exhibition",
                    "need": "A new machining centre",
                    "grade": "",
                    "stage": "prospect",
                    "owner_id": "",
                    "notes": "",
                },
            )
        )
    )
    location(
        li.post(
            f"/sales/customers/{customer_id}/log",
            data={
                "kind": "visit",
                "summary": "Toured the workshop with the production manager",
                "details": "Two old machines to replace this year.",
                "location_note": "Huajiang Road, Jiading",
                "opportunity_id": "",
                "next_step": "Send the proposal",
                "next_follow_up_on": (today + timedelta(days=3)).isoformat(),
            },
        )
    )
    customer_page = li.get(f"/sales/customers/{customer_id}").get_data(as_text=True)
    assert "Toured the workshop with the production manager" in customer_page
    with app.app_context():
        visit = db.session.scalars(
            sa.select(Activity).where(Activity.customer_id == customer_id)
        ).one()
        assert visit.kind == "visit" and visit.owner_id == org["li"]

    # 3. She claims the taxi fare to the customer from her phone, receipt photo attached,
    #    linked to the customer, and submits it at once (P6.4).
    location(
        li.post(
            "/daily/expenses/quick",
            data={
                "spent_on": today.isoformat(),
                "category": "taxi",
                "amount": "46.50",
                "city": "上海",
                "vendor": "DiDi",
                "purpose": "Taxi to the customer's workshop",
                "link_kind": "sales.customer",
                "link_id": str(customer_id),
                "submit_now": "y",
                "receipts": (io.BytesIO(png_bytes(7)), "didi.png"),
            },
            content_type="multipart/form-data",
        )
    )
    with app.app_context():
        claim = db.session.scalars(sa.select(ExpenseClaim)).one()
        claim_id, claim_number = claim.id, claim.number
        assert claim.status == "pending" and claim.total_cents == 4650
        line = claim.lines[0]
        assert (line.link_kind, line.link_id, line.decision) == (
            "sales.customer",
            customer_id,
            "approve",
        )
        assert line.receipts[0].content_type == "image/png"
        claim_approval = claim.approval_id
        customer_name = db.session.get(Customer, customer_id).name
    claim_page = li.get(f"/daily/expenses/{claim_id}").get_data(as_text=True)
    assert claim_number in claim_page and customer_name in claim_page
    assert f'href="/sales/customers/{customer_id}"' in claim_page

    # 4. She asks for a personal day off next week (P6.1).
    li.get("/daily/leave/new")  # the leave types are made on first use
    off = today + timedelta(days=(7 - today.weekday()) + 2)  # next week's Wednesday
    location(
        li.post(
            "/daily/leave/new",
            data={
                "leave_type": "personal",
                "starts_on": off.isoformat(),
                "start_half": "am",
                "ends_on": off.isoformat(),
                "end_half": "pm",
                "reason": "Moving house",
            },
            content_type="multipart/form-data",
        )
    )
    with app.app_context():
        leave = db.session.scalars(sa.select(LeaveRequest)).one()
        leave_id, leave_approval = leave.id, leave.approval_id
        assert leave.status == "pending"

    # -- Zhang's week ---------------------------------------------------------------------------
    # 5. Both wait for him in /approvals/; he approves them there.
    inbox = zhang.get("/approvals/").get_data(as_text=True)
    assert claim_number in inbox and "Personal leave" in inbox
    assert li.post(f"/approvals/{claim_approval}/act", data={"action": "approve"}).status_code in (
        403,
        404,
    )
    for request_id in (claim_approval, leave_approval):
        assert zhang.get(f"/approvals/{request_id}").status_code == 200
        location(zhang.post(f"/approvals/{request_id}/act", data={"action": "approve"}))
    with app.app_context():
        assert fresh(ExpenseClaim, claim_id).status == "approved"
        assert fresh(LeaveRequest, leave_id).status == "approved"
        assert fresh(ApprovalRequest, claim_approval).status == "approved"
    assert "Approved" in li.get(f"/daily/expenses/{claim_id}").get_data(as_text=True)
    assert "Approved" in li.get(f"/daily/leave/{leave_id}").get_data(as_text=True)

    # 6. He runs the weekly meeting: called, attendance, minutes, a resolution, published.
    starts = utcnow().astimezone(portal_zone()).replace(second=0, microsecond=0)
    target = location(
        zhang.post(
            "/daily/meetings/new",
            data={
                "unit_id": org["east"],
                "title": "East weekly sales meeting",
                "cadence": "weekly",
                "starts_at": starts.strftime("%Y-%m-%dT%H:%M"),
                "ends_at": (starts + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
                "location": "Room 3",
                "attendee_ids": [org["sup_east"], org["li"], org["wang"]],
                "agenda-0-title": "Last week's visits",
                "agenda-0-presenter_id": org["li"],
            },
        )
    )
    meeting_id = last_id(target)
    location(
        zhang.post(
            f"/daily/meetings/{meeting_id}/attendance/{org['li']}", data={"status": "present"}
        )
    )
    location(
        zhang.post(
            f"/daily/meetings/{meeting_id}/attendance/{org['wang']}", data={"status": "late"}
        )
    )
    location(
        zhang.post(
            f"/daily/meetings/{meeting_id}/minutes",
            data={"minutes": "Li visited Donghai: two machines to replace this year."},
        )
    )
    due = today + timedelta(days=5)
    resolution = zhang.post(
        f"/daily/meetings/{meeting_id}/resolutions",
        data={"text": "Send Donghai the proposal", "owner_id": org["li"], "due_on": str(due)},
    )
    assert resolution.status_code in (200, 303), resolution.status_code
    location(zhang.post(f"/daily/meetings/{meeting_id}/close", data={}))
    with app.app_context():
        meeting = fresh(Meeting, meeting_id)
        assert meeting.status == "closed" and meeting.minutes.startswith("Li visited Donghai")
        marks = {
            row.user_id: row.status
            for row in db.session.scalars(
                sa.select(MeetingAttendee).where(MeetingAttendee.meeting_id == meeting_id)
            )
        }
        assert marks[org["li"]] == "present" and marks[org["wang"]] == "late"
        taken = db.session.scalars(sa.select(Resolution)).one()
        item = db.session.get(LoopItem, taken.loop_id)
        assert (item.type, item.owner_id, item.status) == ("daily.resolution", org["li"], "open")
    meeting_page = li.get(f"/daily/meetings/{meeting_id}").get_data(as_text=True)
    assert "Send Donghai the proposal" in meeting_page and "Li visited Donghai" in meeting_page

    # 7. He reads the team's attendance this month (Li checked in today) ...
    report = zhang.get(f"/daily/attendance/team?month={today:%Y-%m}")
    assert report.status_code == 200
    with app.app_context():
        li_name = db.session.get(AttendanceDay, row.id).owner.display_name
    assert li_name in report.get_data(as_text=True)
    # ... and the expense analysis, where the approved taxi fare counts.
    analysis = zhang.get(f"/daily/expenses/analysis/?since={today:%Y-%m}&until={today:%Y-%m}")
    assert analysis.status_code == 200
    assert "46.50" in analysis.get_data(as_text=True)

    # -- Finance pays -------------------------------------------------------------------------
    to_pay = fin.get("/daily/expenses/to-pay").get_data(as_text=True)
    assert claim_number in to_pay and f'href="/daily/expenses/{claim_id}"' in to_pay
    location(fin.post(f"/daily/expenses/{claim_id}/pay", data={"reference": "CMB-0001"}))
    with app.app_context():
        paid = fresh(ExpenseClaim, claim_id)
        assert (paid.status, paid.payment_reference) == ("paid", "CMB-0001")
    assert "CMB-0001" in li.get(f"/daily/expenses/{claim_id}").get_data(as_text=True)
    assert f'href="/daily/expenses/{claim_id}"' not in fin.get("/daily/expenses/to-pay").get_data(
        as_text=True
    )
