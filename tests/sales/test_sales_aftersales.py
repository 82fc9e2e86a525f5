"""After-sales (P3.5): logging feedback and complaints (P3.5.1), handling a complaint to
its close with cause, action and the customer's confirmation, the corrective action as a
loop item of its own (P3.5.2); the pages, the JSON API and the scopes."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from plugins.sales import aftersales
from plugins.sales.models import Contract, Customer, Feedback, Opportunity, Quotation
from portal.audit.recorder import acting_as
from portal.auth.models import User
from portal.extensions import db
from portal.loops.models import LoopItem, Notification
from portal.loops.service import due_at_from_date
from portal.models import as_utc, utcnow
from portal.org.services import ValidationFailed
from portal.testing import DEMO_TEST_PASSWORD, count_statements, throwaway_plugin

HOUR = timedelta(hours=1)


@pytest.fixture
def org(org: dict[str, int], app: Any) -> dict[str, int]:
    """The suite's organisation with the leaders placed in the units they lead."""
    with app.app_context():
        for name, unit in (("manager", "company"), ("sup_east", "east"), ("sup_south", "south")):
            db.session.get(User, org[name]).unit_id = org[unit]
        db.session.commit()
    return org


def make_customer(app: Any, owner: int | None, name: str = "Hangzhou Pumps Ltd") -> int:
    with app.app_context(), acting_as("test"):
        customer = Customer(name=name, name_key=name.lower(), owner_id=owner, stage="customer")
        db.session.add(customer)
        db.session.commit()
        return customer.id


def make_contract(app: Any, customer_id: int, owner: int, number: str = "HT-2030-00001") -> int:
    with app.app_context(), acting_as("test"):
        opportunity = Opportunity(
            customer_id=customer_id, name="Pumps", stage="won", status="won", owner_id=owner
        )
        db.session.add(opportunity)
        db.session.flush()
        quote = Quotation(
            number=number.replace("HT", "QT"),
            opportunity_id=opportunity.id,
            customer_id=customer_id,
            owner_id=owner,
            status="accepted",
            valid_until=date(2031, 1, 1),
        )
        db.session.add(quote)
        db.session.flush()
        contract = Contract(
            number=number,
            title="Pump supply",
            customer_id=customer_id,
            opportunity_id=opportunity.id,
            quotation_id=quote.id,
            amount_cents=1_000_000,
            owner_id=owner,
            status="signed",
        )
        db.session.add(contract)
        db.session.commit()
        return contract.id


def log(app: Any, actor: int, customer: int, **values: Any) -> int:
    values = {
        "customer_id": customer,
        "kind": "complaint",
        "category": "service",
        "priority": "normal",
        "title": "The installer did not come",
        **values,
    }
    with app.test_request_context(), acting_as("test"):
        found = aftersales.log_feedback(values, db.session.get(User, actor))
        db.session.commit()
        return found.id


def get(app: Any, model: Any, record_id: int) -> Any:
    with app.app_context():
        found = db.session.get(model, record_id)
        db.session.expunge(found)
        return found


# -- logging ---------------------------------------------------------------------------------


def test_p3_5_1_log_a_complaint_from_the_page(
    app: Any, client: Any, login: Any, org: dict[str, int]
) -> None:
    customer = make_customer(app, org["li"])
    contract = make_contract(app, customer, org["li"])
    login(client, "li")
    page = client.get(f"/sales/aftersales/new?customer_id={customer}&contract_id={contract}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Hangzhou Pumps Ltd" in html and "Results in use" in html
    assert re.search(rf'<option selected value="{contract}">|value="{contract}" selected', html)
    response = client.post(
        f"/sales/aftersales/new?customer_id={customer}",
        data={
            "customer_id": customer,
            "contract_id": contract,
            "kind": "complaint",
            "category": "usage",
            "priority": "high",
            "title": "Pump output below the promised rate",
            "description": "Measured 40 m3/h instead of 55.",
            "received_at": "",
        },
    )
    assert response.status_code == 303
    feedback_id = int(response.headers["Location"].rsplit("/", 1)[1])
    found = get(app, Feedback, feedback_id)
    assert (found.owner_id, found.contract_id, found.category) == (org["li"], contract, "usage")
    assert found.first_response_due_at is not None
    detail = client.get(f"/sales/aftersales/{feedback_id}")
    assert detail.status_code == 200
    text = detail.get_data(as_text=True)
    assert "Pump output below the promised rate" in text and "HT-2030-00001" in text
    assert 'data-testid="subject-loops"' in text and "data-deadline=" in text
    assert 'data-testid="form-respond"' in text and 'data-testid="form-close"' in text


def test_p3_5_1_bad_input_is_refused_per_field_and_nothing_is_written(
    app: Any, client: Any, login: Any, org: dict[str, int]
) -> None:
    customer = make_customer(app, org["li"])
    others = make_customer(app, org["zhao"], "Guangzhou Valves")
    their_contract = make_contract(app, others, org["zhao"], "HT-2030-00009")
    login(client, "li")
    future = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    response = client.post(
        f"/sales/aftersales/new?customer_id={customer}",
        data={
            "customer_id": customer,
            "contract_id": their_contract,
            "kind": "complaint",
            "category": "weather",
            "priority": "normal",
            "title": "",
            "received_at": future,
        },
    )
    assert response.status_code == 422
    text = response.get_data(as_text=True)
    assert "Say in a few words what the customer reports." in text
    assert "Not a valid choice" in text  # the category
    # The form passes; the service refuses the contract and the future time per field.
    response = client.post(
        f"/sales/aftersales/new?customer_id={customer}",
        data={
            "customer_id": customer,
            "contract_id": their_contract,
            "kind": "complaint",
            "category": "quality",
            "priority": "normal",
            "title": "Leaks",
            "received_at": future,
        },
    )
    assert response.status_code == 422
    text = response.get_data(as_text=True)
    assert "Choose a contract of this customer, or none." in text
    assert "The time received cannot be in the future." in text
    response = client.post(
        f"/sales/aftersales/new?customer_id={customer}",
        data={"customer_id": customer, "kind": "complaint", "category": "quality",
              "priority": "normal", "title": "Leaks", "received_at": "yesterday"},
    )  # fmt: skip
    assert response.status_code == 422
    assert "Give a date and time" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Feedback)) == 0
        assert db.session.scalar(sa.select(sa.func.count()).select_from(LoopItem)) == 0


def test_p3_5_1_owner_is_the_customers_owner(app: Any, org: dict[str, int]) -> None:
    customer = make_customer(app, org["li"])
    # The supervisor logs it; li looks after the customer, so li owns the complaint.
    feedback_id = log(app, org["sup_east"], customer)
    found = get(app, Feedback, feedback_id)
    assert found.owner_id == org["li"]
    item = get(app, LoopItem, found.loop_item_id)
    assert item.owner_id == org["li"] and item.raised_by_id == org["sup_east"]
    with app.app_context():
        told = db.session.scalars(
            sa.select(Notification).where(Notification.user_id == org["li"])
        ).all()
        assert [n.kind for n in told] == ["core.loop_assigned"]
    # A pool prospect (no owner) reached by the manager: the manager owns it.
    pool = make_customer(app, None, "Pool Prospect Co")
    assert get(app, Feedback, log(app, org["manager"], pool)).owner_id == org["manager"]


def test_p3_5_1_only_customers_in_write_scope(app: Any, org: dict[str, int]) -> None:
    theirs = make_customer(app, org["zhao"])
    with pytest.raises(ValidationFailed) as refused:
        log(app, org["li"], theirs)
    assert set(refused.value.fields) == {"customer_id"}


def test_p3_5_1_choose_the_customer_first(
    app: Any, client: Any, login: Any, org: dict[str, int]
) -> None:
    make_customer(app, org["li"], "Suzhou Motors")
    make_customer(app, org["zhao"], "Shenzhen Motors")
    login(client, "li")
    page = client.get("/sales/aftersales/new?q=Motors")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "Suzhou Motors" in text and "Shenzhen Motors" not in text
    theirs = make_customer(app, org["zhao"], "Foshan Gears")
    assert client.get(f"/sales/aftersales/new?customer_id={theirs}").status_code == 404
    assert client.get("/sales/aftersales/new?customer_id=abc").status_code == 404


# -- handling to the close ------------------------------------------------------------------------


def test_p3_5_2_closing_without_cause_action_and_confirmation_is_refused_per_field(
    app: Any, client: Any, login: Any, org: dict[str, int]
) -> None:
    customer = make_customer(app, org["li"])
    feedback_id = log(app, org["li"], customer)
    login(client, "li")
    version = get(app, Feedback, feedback_id).lock_version
    response = client.post(
        f"/sales/aftersales/{feedback_id}/close", data={"close-version": version}
    )
    assert response.status_code == 422
    text = response.get_data(as_text=True)
    assert "Record the cause before closing the complaint." in text
    assert "Record the action taken before closing." in text
    assert "Record the customer&#39;s confirmation before closing." in text
    found = get(app, Feedback, feedback_id)
    assert found.status == "open" and found.closed_at is None
    assert get(app, LoopItem, found.loop_item_id).status == "open"
    # The same through the service: one message per missing field, nothing changed.
    with app.test_request_context(), acting_as("test"):
        record = db.session.get(Feedback, feedback_id)
        aftersales.record_cause(record, db.session.get(User, org["li"]), "Wrong part", "Replaced")
        with pytest.raises(ValidationFailed) as refused:
            aftersales.close_record(record, db.session.get(User, org["li"]))
        assert set(refused.value.fields) == {"customer_confirmation"}
        db.session.rollback()
    assert get(app, Feedback, feedback_id).cause == ""


def test_p3_5_2_the_full_close_path_closes_the_loop_item(
    make_app: Any, org: dict[str, int], login: Any
) -> None:
    seen: list[Any] = []
    spy = throwaway_plugin("spy", portal_on_event=lambda event: seen.append(event))
    app = make_app(plugins=[("spy", spy)])
    client = app.test_client()
    customer = make_customer(app, org["li"])
    feedback_id = log(app, org["li"], customer, category="delivery")
    login(client, "li")
    url = f"/sales/aftersales/{feedback_id}"

    def post(slug: str, **data: Any) -> Any:
        version = get(app, Feedback, feedback_id).lock_version
        fields = {f"{slug}-{name}": value for name, value in data.items()}
        return client.post(f"{url}/{slug}", data={f"{slug}-version": version, **fields})

    assert post("respond", first_response="We are sending a technician.").status_code == 303
    found = get(app, Feedback, feedback_id)
    assert found.status == "responded" and found.first_responded_at is not None
    assert get(app, LoopItem, found.loop_item_id).status == "in_progress"
    assert post("respond", first_response="Again").status_code == 409  # once only
    refused = post("cause", cause="", action_taken="")
    assert refused.status_code == 422
    assert "Say what was done about it." in refused.get_data(as_text=True)
    assert "Say what caused the problem." in refused.get_data(as_text=True)
    response = post("cause", cause="Courier lost the parcel", action_taken="Resent by air")
    assert response.status_code == 303
    assert get(app, Feedback, feedback_id).status == "resolved"
    response = post(
        "confirm",
        customer_confirmed_by="Mr Chen, purchasing",
        customer_confirmation="Received and installed, confirmed by phone.",
    )
    assert response.status_code == 303
    stale = client.post(f"{url}/close", data={"close-version": 1})
    assert stale.status_code == 409  # an out-of-date page
    assert post("close").status_code == 303
    found = get(app, Feedback, feedback_id)
    assert found.status == "closed" and found.closed_at is not None
    item = get(app, LoopItem, found.loop_item_id)
    assert item.status == "done"
    assert "Courier lost the parcel" in item.closure_note and "Resent by air" in item.closure_note
    assert "Mr Chen, purchasing" in item.evidence and "confirmed by phone" in item.evidence
    closed = [e for e in seen if e.name == "sales.complaint_closed"]
    assert [e.payload for e in closed] == [{"feedback_id": feedback_id}]
    # Verification follows the core: li raised it for herself, so her supervisor verifies.
    with app.app_context():
        told = db.session.scalars(
            sa.select(Notification).where(
                Notification.user_id == org["sup_east"], Notification.kind == "core.loop_to_verify"
            )
        ).all()
        assert len(told) == 1
    page = client.get(url).get_data(as_text=True)
    assert 'data-testid="feedback-actions"' not in page  # nothing more to do once closed
    assert post("cause", cause="x", action_taken="y").status_code == 409


def test_p3_5_2_quality_complaint_needs_its_corrective_action_loop_item(
    app: Any, client: Any, login: Any, org: dict[str, int]
) -> None:
    customer = make_customer(app, org["li"])
    feedback_id = log(app, org["li"], customer, category="quality")
    with app.test_request_context(), acting_as("test"):
        li = db.session.get(User, org["li"])
        record = db.session.get(Feedback, feedback_id)
        aftersales.record_cause(record, li, "Seal batch 7 too soft", "Seals replaced")
        aftersales.record_confirmation(record, li, "Ms Wu", "Tested, no leak")
        db.session.commit()
    login(client, "li")
    url = f"/sales/aftersales/{feedback_id}"
    page = client.get(url).get_data(as_text=True)
    assert 'data-testid="form-corrective"' in page and "Required" in page
    version = get(app, Feedback, feedback_id).lock_version
    refused = client.post(f"{url}/close", data={"close-version": version})
    assert refused.status_code == 422
    assert "root cause and corrective action" in refused.get_data(as_text=True)
    assert get(app, Feedback, feedback_id).status == "resolved"

    due = (date.today() + timedelta(days=30)).isoformat()
    bad = client.post(
        f"{url}/corrective",
        data={"corrective-version": version, "corrective-owner_id": org["zhao"]},
    )
    assert bad.status_code == 422  # not someone li may give an item to
    past = client.post(
        f"{url}/corrective",
        data={
            "corrective-version": version,
            "corrective-owner_id": org["li"],
            "corrective-due_on": "2001-01-01",
        },
    )
    assert past.status_code == 422
    assert "The due date cannot be in the past." in past.get_data(as_text=True)
    response = client.post(
        f"{url}/corrective",
        data={
            "corrective-version": version,
            "corrective-title": "Incoming inspection of seal hardness",
            "corrective-owner_id": org["li"],
            "corrective-due_on": due,
            "corrective-description": "Test Shore hardness on every batch.",
        },
    )
    assert response.status_code == 303
    found = get(app, Feedback, feedback_id)
    item = get(app, LoopItem, found.corrective_loop_id)
    assert item.type == "sales.corrective_action" and item.clause == "P3.5.2"
    assert item.title == "Incoming inspection of seal hardness" and item.owner_id == org["li"]
    assert (item.subject_table, item.subject_id) == ("sales_feedback", str(feedback_id))
    assert item.subject_link == url
    with app.app_context():
        assert as_utc(item.due_at) == due_at_from_date(date.fromisoformat(due))
    assert f"/loops/{item.id}" in client.get(url).get_data(as_text=True)
    version = get(app, Feedback, feedback_id).lock_version
    assert client.post(f"{url}/close", data={"close-version": version}).status_code == 303
    found = get(app, Feedback, feedback_id)
    assert found.status == "closed"
    # The corrective action lives on as its own item until it is done and verified.
    assert get(app, LoopItem, found.corrective_loop_id).status == "open"
    assert get(app, LoopItem, found.loop_item_id).status == "done"


def test_p3_5_2_corrective_action_defaults_to_the_owners_supervisor(
    app: Any, org: dict[str, int]
) -> None:
    customer = make_customer(app, org["li"])
    feedback_id = log(app, org["li"], customer, category="quality")
    with app.test_request_context(), acting_as("test"):
        record = db.session.get(Feedback, feedback_id)
        sup = db.session.get(User, org["sup_east"])
        li = db.session.get(User, org["li"])
        assert aftersales.corrective_owner_default(record, sup) == org["sup_east"]
        assert aftersales.corrective_owner_default(record, li) == org["li"]  # li's own scope
        item = aftersales.raise_corrective_action(record, sup)
        assert item.owner_id == org["sup_east"] and item.raised_by_id == org["sup_east"]
        assert record.corrective_loop_id == item.id
        db.session.commit()
        with pytest.raises(aftersales.StateConflict):
            aftersales.raise_corrective_action(record, sup)


def test_p3_5_1_feedback_closes_with_a_response(app: Any, org: dict[str, int]) -> None:
    customer = make_customer(app, org["li"])
    feedback_id = log(app, org["li"], customer, kind="feedback", category="usage")
    with app.test_request_context(), acting_as("test"):
        li = db.session.get(User, org["li"])
        record = db.session.get(Feedback, feedback_id)
        with pytest.raises(ValidationFailed) as refused:
            aftersales.close_record(record, li)
        assert set(refused.value.fields) == {"action_taken"}
        aftersales.respond(record, li, "Thanks, passed to product management.")
        aftersales.close_record(record, li)
        db.session.commit()
        assert record.status == "closed"
        assert db.session.get(LoopItem, record.loop_item_id).status == "done"


# -- the pages -------------------------------------------------------------------------------


def test_p3_5_1_the_list_filters_and_puts_overdue_first(
    app: Any, client: Any, login: Any, org: dict[str, int]
) -> None:
    customer = make_customer(app, org["li"], "Ningbo Castings")
    other = make_customer(app, org["li"], "Wuxi Bearings")
    fresh = log(app, org["li"], customer, title="Fresh complaint")
    late = log(
        app,
        org["li"],
        other,
        title="Late complaint",
        priority="urgent",
        received_at=utcnow() - 3 * HOUR,
    )
    log(app, org["li"], customer, kind="feedback", category="usage", title="Nice feedback")
    login(client, "li")
    text = client.get("/sales/aftersales/").get_data(as_text=True)
    assert text.index("Late complaint") < text.index("Fresh complaint")
    assert 'data-testid="feedback-overdue"' in text
    overdue = client.get("/sales/aftersales/?overdue=1").get_data(as_text=True)
    assert "Late complaint" in overdue and "Fresh complaint" not in overdue
    assert f'data-feedback-id="{late}"' in overdue
    feedback = client.get("/sales/aftersales/?kind=feedback").get_data(as_text=True)
    assert "Nice feedback" in feedback and "Late complaint" not in feedback
    by_customer = client.get("/sales/aftersales/?q=ningbo").get_data(as_text=True)
    assert f'data-feedback-id="{fresh}"' in by_customer and "Late complaint" not in by_customer
    urgent = client.get("/sales/aftersales/?priority=urgent&status=open&category=service")
    assert "Late complaint" in urgent.get_data(as_text=True)
    assert client.get("/sales/aftersales/?status=bogus&page=999999999999").status_code == 200


def test_p3_5_1_list_statements_stay_flat(
    app: Any, client: Any, login: Any, org: dict[str, int]
) -> None:
    login(client, "sup_east")
    for owner in ("li", "wang"):
        log(app, org[owner], make_customer(app, org[owner], f"{owner} Co"))
    few = count_statements(app, client, "/sales/aftersales/")
    for number in range(10):
        owner = ("li", "wang")[number % 2]
        customer = make_customer(app, org[owner], f"{owner} Co {number}")
        log(app, org[owner], customer, kind=("complaint", "feedback")[number % 2])
    many = count_statements(app, client, "/sales/aftersales/")
    assert many == few


def test_p3_5_1_partials_for_customer_and_contract(app: Any, org: dict[str, int]) -> None:
    from flask import render_template
    from flask_login import login_user

    customer = make_customer(app, org["li"])
    contract = make_contract(app, customer, org["li"])
    on_contract = log(app, org["li"], customer, contract_id=contract, title="About the pumps")
    log(app, org["li"], customer, title="General remark", kind="feedback")
    with app.test_request_context():
        user = db.session.get(User, org["li"])
        user.login_session_key = "test"
        login_user(user)
        record = db.session.get(Customer, customer)
        html = render_template("sales/aftersales/_for_customer.html", customer=record)
        assert "About the pumps" in html and "General remark" in html
        assert f"/sales/aftersales/new?customer_id={customer}" in html
        html = render_template(
            "sales/aftersales/_for_contract.html", contract=db.session.get(Contract, contract)
        )
        assert f"/sales/aftersales/{on_contract}" in html and "General remark" not in html
        assert f"contract_id={contract}" in html


def test_p3_5_2_trends_page_and_chart(
    app: Any, client: Any, login: Any, org: dict[str, int]
) -> None:
    customer = make_customer(app, org["li"])
    log(app, org["li"], customer, category="quality")
    login(client, "sup_east")
    page = client.get("/sales/aftersales/trends")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert 'data-testid="total-received">1<' in text
    chart = client.get("/sales/aftersales/trends/categories.svg")
    assert chart.status_code == 200 and chart.mimetype == "image/svg+xml"
    assert b"<script" not in chart.data and b"Product quality" in chart.data
    assert client.get("/sales/aftersales/trends/sla.svg?kind=complaint").status_code == 200
    assert client.get("/sales/aftersales/trends/nope.svg").status_code == 404
    seller = app.test_client()
    login(seller, "li")
    assert seller.get("/sales/aftersales/trends").status_code == 403  # no report permission


def test_p3_5_2_the_detail_shows_deadlines_and_why(
    app: Any, client: Any, login: Any, org: dict[str, int]
) -> None:
    customer = make_customer(app, org["li"])
    feedback_id = log(app, org["li"], customer, priority="urgent")
    login(client, "admin")
    text = client.get(f"/sales/aftersales/{feedback_id}").get_data(as_text=True)
    assert f"/admin/rules/decisions/sales_feedback/{feedback_id}" in text
    assert 'data-testid="deadline-countdown"' in text
    seller = app.test_client()
    login(seller, "li")
    text = seller.get(f"/sales/aftersales/{feedback_id}").get_data(as_text=True)
    assert "/admin/rules/decisions/" not in text  # li may not read rule files
    assert re.search(r"in (59|60) minutes", text) and "in 24 hours" in text


def test_p3_5_1_every_form_carries_the_csrf_token(
    make_app: Any, org: dict[str, int], login: Any
) -> None:
    app = make_app(WTF_CSRF_ENABLED=True)
    client = app.test_client()
    customer = make_customer(app, org["li"])
    feedback_id = log(app, org["li"], customer, category="quality")
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    token = token or re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token is not None
    response = client.post(
        "/login", data={"username": "li", "password": DEMO_TEST_PASSWORD, "csrf_token": token[1]}
    )
    assert response.status_code == 302
    new = client.get(f"/sales/aftersales/new?customer_id={customer}").get_data(as_text=True)
    assert new.count('name="csrf_token"') >= 2  # the form's own, and the language switch's
    detail = client.get(f"/sales/aftersales/{feedback_id}").get_data(as_text=True)
    forms = re.findall(r'<form class="card-body"[^>]*>(.*?)</form>', detail, re.S)
    assert len(forms) == 4  # respond, cause, corrective, close: confirmation follows the cause
    assert all(re.search(r'name="[a-z_]+-csrf_token" type="hidden"', form) for form in forms)
    refused = client.post(f"/sales/aftersales/{feedback_id}/close", data={"close-version": 1})
    assert refused.status_code == 400  # no token
    assert get(app, Feedback, feedback_id).status == "open"
    token = re.search(r'name="respond-csrf_token" type="hidden" value="([^"]+)"', detail)
    answered = client.post(
        f"/sales/aftersales/{feedback_id}/respond",
        data={"respond-csrf_token": token[1], "respond-first_response": "Checking the batch."},
    )
    assert answered.status_code == 303
    assert get(app, Feedback, feedback_id).status == "responded"


# -- scope ----------------------------------------------------------------------------------


def test_p3_5_2_li_never_sees_zhaos_complaint(
    app: Any, client: Any, login: Any, org: dict[str, int], api_token: Any
) -> None:
    theirs = make_customer(app, org["zhao"], "Guangzhou Valves")
    secret = log(app, org["zhao"], theirs, title="Zhao secret complaint")
    mine = log(app, org["li"], make_customer(app, org["li"]), title="Complaint of Li")
    login(client, "li")
    listing = client.get("/sales/aftersales/").get_data(as_text=True)
    assert "Complaint of Li" in listing and "secret" not in listing
    assert "secret" not in client.get("/sales/aftersales/?q=Guangzhou").get_data(as_text=True)
    assert client.get(f"/sales/aftersales/{secret}").status_code == 404
    assert client.post(f"/sales/aftersales/{secret}/close").status_code == 404
    token = api_token("li")
    headers = {"Authorization": f"Bearer {token}"}
    listed = client.get("/api/v1/sales/feedback", headers=headers).get_json()
    assert [item["id"] for item in listed["items"]] == [mine]
    assert client.get(f"/api/v1/sales/feedback/{secret}", headers=headers).status_code == 404
    acted = client.post(
        f"/api/v1/sales/feedback/{secret}/actions", headers=headers, json={"action": "close"}
    )
    assert acted.status_code == 404
    # Trends: li has no report permission; her supervisor's trends leave zhao's out.
    assert client.get("/sales/aftersales/trends").status_code == 403
    with app.test_request_context():
        sup = aftersales.trends(db.session.get(User, org["sup_east"]))
        assert sup.total.total == 1
    # A read-only reader (auditor) sees it but may not act on it.
    auditor = {"Authorization": f"Bearer {api_token('auditor')}"}
    assert client.get(f"/api/v1/sales/feedback/{secret}", headers=auditor).status_code == 200
    refused = client.post(
        f"/api/v1/sales/feedback/{secret}/actions", headers=auditor, json={"action": "close"}
    )
    assert refused.status_code == 403


# -- the API ------------------------------------------------------------------------------------


def test_p3_5_2_api_logs_and_handles_a_complaint(
    app: Any, client: Any, org: dict[str, int], api_token: Any
) -> None:
    customer = make_customer(app, org["li"])
    headers = {"Authorization": f"Bearer {api_token('li')}"}
    bad = client.post(
        "/api/v1/sales/feedback",
        headers=headers,
        json={"customer_id": customer, "kind": "complaint", "category": "x", "title": ""},
    )
    assert bad.status_code == 422
    assert {"category", "title"} <= set(bad.get_json()["error"]["fields"])
    future = client.post(
        "/api/v1/sales/feedback",
        headers=headers,
        json={
            "customer_id": customer,
            "kind": "complaint",
            "category": "quality",
            "priority": "normal",
            "title": "Leaks",
            "received_at": "2099-01-01T10:00:00+08:00",
        },
    )
    assert future.status_code == 422
    assert list(future.get_json()["error"]["fields"]) == ["received_at"]
    created = client.post(
        "/api/v1/sales/feedback",
        headers=headers,
        json={
            "customer_id": customer,
            "kind": "complaint",
            "category": "quality",
            "priority": "normal",
            "title": "Leaks",
            "received_at": (datetime.now(UTC) - HOUR).isoformat(),
        },
    )
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    feedback_id = body["id"]
    assert body["corrective_action_required"] is True
    assert set(body["closing_problems"]) == {
        "cause",
        "action_taken",
        "customer_confirmation",
        "corrective_action",
    }
    url = f"/api/v1/sales/feedback/{feedback_id}/actions"
    refused = client.post(url, headers=headers, json={"action": "close"})
    assert refused.status_code == 422
    assert set(refused.get_json()["error"]["fields"]) == set(body["closing_problems"])
    assert client.post(url, headers=headers, json={"action": "fly"}).status_code == 422
    missing = client.post(url, headers=headers, json={"action": "confirm"})
    assert set(missing.get_json()["error"]["fields"]) == {
        "customer_confirmed_by",
        "customer_confirmation",
    }
    steps = [
        {"action": "respond", "first_response": "We will check the seals today."},
        {"action": "record_cause", "cause": "Soft seals", "action_taken": "Replaced"},
        {"action": "confirm", "customer_confirmed_by": "Ms Wu", "customer_confirmation": "OK"},
        {"action": "raise_corrective", "description": "Inspect seal hardness"},
    ]
    for data in steps:
        response = client.post(url, headers=headers, json=data)
        assert response.status_code == 200, response.get_json()
    stale = client.post(url, headers=headers, json={"action": "close", "version": 1})
    assert stale.status_code == 409
    closed = client.post(url, headers=headers, json={"action": "close"})
    assert closed.status_code == 200
    assert closed.get_json()["status"] == "closed" and closed.get_json()["allowed_actions"] == []
    detail = client.get(f"/api/v1/sales/feedback/{feedback_id}", headers=headers).get_json()
    assert detail["corrective_loop_id"] and detail["customer_confirmed_by"] == "Ms Wu"
    listed = client.get("/api/v1/sales/feedback?kind=complaint&status=closed", headers=headers)
    assert [item["id"] for item in listed.get_json()["items"]] == [feedback_id]


# -- found in review -------------------------------------------------------------------------------


def test_p3_5_2_the_customer_confirms_what_was_done_so_no_confirmation_before_or_of_another_cause(
    app: Any, client: Any, org: dict[str, int], api_token: Any
) -> None:
    """Through the API a complaint could be "confirmed" before any cause or action, or
    confirmed and then given another cause and action, and still close: the customer's
    confirmation must be of the cause and action the complaint closes with."""
    customer = make_customer(app, org["li"])
    feedback_id = log(app, org["li"], customer, category="delivery")
    headers = {"Authorization": f"Bearer {api_token('li')}"}
    url = f"/api/v1/sales/feedback/{feedback_id}/actions"
    confirm = {"action": "confirm", "customer_confirmed_by": "Ms Wu", "customer_confirmation": "OK"}
    early = client.post(url, headers=headers, json=confirm)
    assert early.status_code == 422
    assert "Record the cause and the action taken first" in str(
        early.get_json()["error"]["fields"]["customer_confirmation"]
    )
    assert get(app, Feedback, feedback_id).customer_confirmed_at is None
    detail = client.get(f"/api/v1/sales/feedback/{feedback_id}", headers=headers).get_json()
    assert "confirm" not in detail["allowed_actions"]
    cause = {"action": "record_cause", "cause": "Wrong address", "action_taken": "Resent"}
    assert client.post(url, headers=headers, json=cause).status_code == 200
    confirmed = client.post(url, headers=headers, json=confirm)
    assert confirmed.status_code == 200 and "confirm" in confirmed.get_json()["allowed_actions"]
    assert get(app, Feedback, feedback_id).customer_confirmed_at is not None
    # The same cause and action again keep the confirmation; another action needs a new one.
    assert client.post(url, headers=headers, json=cause).status_code == 200
    assert get(app, Feedback, feedback_id).customer_confirmed_at is not None
    other = {**cause, "action_taken": "Credit note instead"}
    assert client.post(url, headers=headers, json=other).status_code == 200
    assert get(app, Feedback, feedback_id).customer_confirmed_at is None
    refused = client.post(url, headers=headers, json={"action": "close"})
    assert refused.status_code == 422
    assert set(refused.get_json()["error"]["fields"]) == {"customer_confirmation"}
    assert get(app, Feedback, feedback_id).status == "resolved"
