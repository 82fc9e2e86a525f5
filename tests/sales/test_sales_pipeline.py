"""P3.2 Needs analysis and solution design: opportunities, stages from the rule file,
required fields per stage, lost reasons, the kanban board (card form, htmx, the 422
missing-fields panel), the funnel with its chart, the JSON API, scope and N+1."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import render_template_string

from plugins.sales import pipeline
from plugins.sales.models import Customer, Opportunity, Quotation, StageChange
from portal.audit.recorder import acting_as
from portal.auth.models import User
from portal.extensions import db
from portal.loops.service import local_today
from portal.models import utcnow
from portal.org.services import ValidationFailed
from portal.plugins import EventType
from portal.rules.service import rules
from portal.testing import count_statements, throwaway_plugin

CARD = re.compile(r'data-testid="card-name">([^<]+)<')


@contextmanager
def acting(app: Any) -> Iterator[None]:
    """A request context (url_for, i18n) with writes attributed to the test."""
    with app.test_request_context(), acting_as("test"):
        yield


def person(user_id: int) -> User:
    return db.session.get(User, user_id)


def make_customer(app: Any, owner_id: int | None, name: str) -> int:
    with app.app_context(), acting_as("test"):
        customer = Customer(owner_id=owner_id, name=name, name_key=name.lower().replace(" ", ""))
        db.session.add(customer)
        db.session.commit()
        return customer.id


def open_deal(app: Any, owner_id: int, customer_id: int, name: str, **values: Any) -> int:
    """An opportunity through the service (first stage, history row)."""
    with acting(app):
        opportunity = pipeline.create_opportunity(
            db.session.get(Customer, customer_id), {"name": name, **values}, person(owner_id)
        )
        db.session.commit()
        return opportunity.id


def add_rows(app: Any, *specs: dict[str, Any]) -> list[int]:
    """Opportunities written directly (board, funnel and statement counts read what is
    stored)."""
    with app.app_context(), acting_as("test"):
        rows = []
        for spec in specs:
            values = {"stage": "lead", "status": "open", "furthest_stage_index": 0, **spec}
            row = Opportunity(**values)
            db.session.add(row)
            rows.append(row)
        db.session.commit()
        return [row.id for row in rows]


def load(app: Any, opportunity_id: int) -> Opportunity:
    with app.app_context():
        opportunity = db.session.get(Opportunity, opportunity_id)
        db.session.expunge(opportunity)
        return opportunity


def changes(app: Any, opportunity_id: int) -> list[tuple[str, str]]:
    with app.app_context():
        rows = db.session.scalars(
            sa.select(StageChange)
            .where(StageChange.opportunity_id == opportunity_id)
            .order_by(StageChange.id)
        )
        return [(row.from_stage, row.to_stage) for row in rows]


def move(app: Any, opportunity_id: int, stage: str, actor: int, **values: Any) -> Any:
    with acting(app):
        opportunity = db.session.get(Opportunity, opportunity_id)
        change = pipeline.move_to_stage(opportunity, stage, person(actor), values)
        db.session.commit()
        return change


def position(app: Any, code: str) -> int:
    with app.app_context():
        return pipeline.stage_by_code()[code].position


def add_quotation(app: Any, opportunity_id: int, status: str) -> int:
    with app.app_context(), acting_as("test"):
        opportunity = db.session.get(Opportunity, opportunity_id)
        quote = Quotation(
            number=f"QT-2030-{opportunity_id:05d}-{status}",
            opportunity_id=opportunity_id,
            customer_id=opportunity.customer_id,
            owner_id=opportunity.owner_id,
            status=status,
            valid_until=date(2031, 1, 1),
            total_cents=10_000_00,
        )
        db.session.add(quote)
        db.session.commit()
        return quote.id


@pytest.fixture
def sales(org: dict[str, int], app: Any) -> dict[str, int]:
    """li and wang (Shanghai) and zhao (Guangzhou) each with a customer."""
    ids = dict(org)
    ids["li_customer"] = make_customer(app, org["li"], "Donghai Machinery")
    ids["wang_customer"] = make_customer(app, org["wang"], "Wang Secret Textiles")
    ids["zhao_customer"] = make_customer(app, org["zhao"], "Pearl River Foods")
    return ids


def logged_in(app: Any, login: Any, username: str) -> Any:
    client = app.test_client()
    login(client, username)
    return client


FULL = {
    "need_analysis": "Line 3 stops twice a week; wants predictive maintenance by Q3.",
    "proposed_solution": "Sensors on 12 motors and the monitoring service.",
    "decision_maker": "Mr Zhou, plant manager",
    "competitors": "Siemens",
    "amount": "250000",
    "expected_close_on": date(2031, 6, 30),
}


# -- creating and editing -------------------------------------------------------------------


def test_p3_2_a_salesperson_opens_an_opportunity_from_their_customer(
    app: Any, sales: dict[str, int], login: Any
) -> None:
    client = logged_in(app, login, "li")
    url = f"/sales/pipeline/new?customer_id={sales['li_customer']}"
    page = client.get(url)
    assert page.status_code == 200
    assert "Donghai Machinery" in page.get_data(as_text=True)
    response = client.post(
        url,
        data={
            "name": "Predictive maintenance line 3",
            "amount": "250,000.50",
            "expected_close_on": "2031-06-30",
            "need_analysis": "Stops twice a week.",
            "decision_maker": "Mr Zhou",
        },
    )
    assert response.status_code == 303
    opportunity_id = int(response.headers["Location"].rstrip("/").split("/")[-1])
    opportunity = load(app, opportunity_id)
    assert opportunity.owner_id == sales["li"]
    assert opportunity.stage == "lead" and opportunity.status == "open"
    assert opportunity.probability_pct == 10
    assert opportunity.amount_cents == 25_000_050
    assert opportunity.expected_close_on == date(2031, 6, 30)
    assert changes(app, opportunity_id) == [("", "lead")]
    detail = client.get(f"/sales/pipeline/{opportunity_id}").get_data(as_text=True)
    assert "Predictive maintenance line 3" in detail and "¥250,000.50" in detail
    assert 'data-testid="step-lead"' in detail and 'aria-current="step"' in detail


def test_p3_2_the_customer_must_be_in_the_write_scope(
    app: Any, sales: dict[str, int], login: Any
) -> None:
    client = logged_in(app, login, "li")
    assert (
        client.get(f"/sales/pipeline/new?customer_id={sales['wang_customer']}").status_code == 404
    )
    response = client.post(
        f"/sales/pipeline/new?customer_id={sales['wang_customer']}", data={"name": "Steal it"}
    )
    assert response.status_code == 404
    pool = make_customer(app, None, "Pool prospect")
    assert client.get(f"/sales/pipeline/new?customer_id={pool}").status_code == 404
    # Without a customer the page sends one to the customers.
    assert client.get("/sales/pipeline/new").status_code == 303
    with acting(app):
        with pytest.raises(ValidationFailed) as refused:
            pipeline.create_opportunity(
                db.session.get(Customer, sales["wang_customer"]), {"name": "x"}, person(sales["li"])
            )
        assert "customer_id" in refused.value.fields
        assert db.session.scalar(sa.select(sa.func.count(Opportunity.id))) == 0


def test_p3_2_a_supervisor_opens_a_deal_for_their_salesperson(
    app: Any, sales: dict[str, int], login: Any
) -> None:
    client = logged_in(app, login, "sup_east")
    response = client.post(
        f"/sales/pipeline/new?customer_id={sales['li_customer']}",
        data={"name": "Spare parts 2031", "owner_id": str(sales["li"])},
    )
    assert response.status_code == 303
    with app.app_context():
        opportunity = db.session.scalars(sa.select(Opportunity)).one()
        assert opportunity.owner_id == sales["li"]
    # Nobody outside the supervisor's write scope can be made the owner.
    response = client.post(
        f"/sales/pipeline/new?customer_id={sales['li_customer']}",
        data={"name": "Spare parts 2032", "owner_id": str(sales["zhao"])},
    )
    assert response.status_code == 422


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("amount", "abc", "Enter an amount in yuan"),
        ("amount", "-5", "cannot be negative"),
        ("amount", "12.345", "at most two decimals"),
        ("amount", "99999999999999999", "too large"),
        ("expected_close_on", "2031-02-30", "Not a valid date"),
        ("expected_close_on", "2099-01-01", "too far away"),
        ("name", "", "Give the opportunity a name"),
        ("decision_maker", "x" * 201, "200"),
    ],
)
def test_p3_2_bad_input_gets_a_message_on_the_field_and_422(
    app: Any, sales: dict[str, int], login: Any, field: str, value: str, message: str
) -> None:
    client = logged_in(app, login, "li")
    data = {"name": "Valid name", field: value}
    response = client.post(f"/sales/pipeline/new?customer_id={sales['li_customer']}", data=data)
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert "is-invalid" in body and message.lower() in body.lower().replace("&#39;", "'")
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(Opportunity.id))) == 0


@pytest.mark.parametrize("amount", ["1e26", "1e309", "9e999999", "99999999999999999999999999999"])
def test_p3_2_a_huge_amount_is_refused_on_the_field_never_a_500(
    app: Any, sales: dict[str, int], login: Any, api_token: Any, amount: str
) -> None:
    client = logged_in(app, login, "li")
    page = client.post(
        f"/sales/pipeline/new?customer_id={sales['li_customer']}",
        data={"name": "Huge", "amount": amount},
    )
    assert page.status_code == 422 and "The amount is too large." in page.text
    headers = {"Authorization": f"Bearer {api_token('li')}"}
    created = client.post(
        "/api/v1/sales/opportunities",
        json={"customer_id": sales["li_customer"], "name": "Huge", "amount": amount},
        headers=headers,
    )
    assert created.status_code == 422 and "amount" in created.get_json()["error"]["fields"]
    deal = open_deal(app, sales["li"], sales["li_customer"], "Deal")
    moved = client.post(
        f"/api/v1/sales/opportunities/{deal}/move",
        json={"stage": "proposal", "values": {"amount": amount}},
        headers=headers,
    )
    assert moved.status_code == 422 and "amount" in moved.get_json()["error"]["fields"]
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(Opportunity.id))) == 1
    with app.test_request_context(), pytest.raises(ValueError, match="too large"):
        pipeline.parse_amount(amount)


def test_p3_2_an_api_customer_id_beyond_any_row_is_refused_on_the_field(
    app: Any, sales: dict[str, int], client: Any, api_token: Any
) -> None:
    headers = {"Authorization": f"Bearer {api_token('li')}"}
    response = client.post(
        "/api/v1/sales/opportunities",
        json={"customer_id": 10**22, "name": "Overflow"},
        headers=headers,
    )
    assert response.status_code == 422
    assert "customer_id" in response.get_json()["error"]["fields"]


@pytest.mark.parametrize(
    "url",
    [
        "/sales/pipeline/?close_month=9999-12",
        "/sales/pipeline/?close_month=0001-01",
        "/sales/pipeline/funnel?since=9999-12-31",
        "/sales/pipeline/funnel?since=0001-01-01&until=0001-01-02",
        "/sales/pipeline/funnel/chart.svg?since=9999-12-31",
        "/sales/pipeline/funnel/chart.svg?since=0001-01-01&until=0001-01-01",
        "/api/v1/sales/opportunities?close_month=9999-12",
        "/api/v1/sales/opportunities/funnel?since=9999-12-31",
        "/api/v1/sales/opportunities/funnel?owner_id=99999999999999999999",
    ],
)
def test_p3_2_dates_at_the_ends_of_the_calendar_in_a_query_never_answer_500(
    app: Any, sales: dict[str, int], login: Any, api_token: Any, url: str
) -> None:
    client = logged_in(app, login, "li")
    headers = {"Authorization": f"Bearer {api_token('li')}"}
    assert client.get(url, headers=headers).status_code == 200


def test_p3_2_an_expected_close_date_can_be_given_on_29_february() -> None:
    leap_day = date(2028, 2, 29)
    assert pipeline.parse_day(date(2028, 6, 30), today=leap_day) == date(2028, 6, 30)
    with pytest.raises(ValueError, match="too far away"):
        pipeline.parse_day(date(2039, 1, 1), today=leap_day)


def test_p3_2_editing_records_needs_and_solution_with_an_optimistic_lock(
    app: Any, sales: dict[str, int], login: Any
) -> None:
    opportunity_id = open_deal(app, sales["li"], sales["li_customer"], "Line 3")
    client = logged_in(app, login, "li")
    form = client.get(f"/sales/pipeline/{opportunity_id}/edit").get_data(as_text=True)
    version = re.search(r'name="version" type="hidden" value="(\d+)"', form).group(1)
    data = {
        "name": "Line 3 monitoring",
        "version": version,
        "need_analysis": "Downtime costs 40,000 yuan a day.",
        "proposed_solution": "Vibration sensors and alerts.",
        "decision_maker": "Mr Zhou",
        "competitors": "none",
        "amount": "180000",
        "expected_close_on": "2031-03-31",
    }
    response = client.post(f"/sales/pipeline/{opportunity_id}/edit", data=data)
    assert response.status_code == 303
    saved = load(app, opportunity_id)
    assert saved.need_analysis == "Downtime costs 40,000 yuan a day."
    assert saved.proposed_solution == "Vibration sensors and alerts."
    assert saved.amount_cents == 18_000_000 and saved.competitors == "none"
    # The same (now stale) version again: refused, nothing changed.
    stale = client.post(f"/sales/pipeline/{opportunity_id}/edit", data={**data, "name": "Late"})
    assert stale.status_code == 409
    assert "changed this opportunity meanwhile" in stale.get_data(as_text=True)
    assert load(app, opportunity_id).name == "Line 3 monitoring"


def test_p3_2_a_field_the_current_stage_needs_cannot_be_emptied(
    app: Any, sales: dict[str, int]
) -> None:
    opportunity_id = open_deal(app, sales["li"], sales["li_customer"], "Line 3", **FULL)
    move(app, opportunity_id, "proposal", sales["li"])
    with acting(app):
        opportunity = db.session.get(Opportunity, opportunity_id)
        with pytest.raises(ValidationFailed) as refused:
            pipeline.update_opportunity(
                opportunity, {"need_analysis": "", "amount": "0"}, person(sales["li"])
            )
        assert set(refused.value.fields) == {"need_analysis", "amount"}
        assert "Proposal" in refused.value.fields["need_analysis"][0]
        # Fields the stage does not need may be emptied.
        pipeline.update_opportunity(opportunity, {"competitors": ""}, person(sales["li"]))
        db.session.commit()


# -- stages and required fields ----------------------------------------------------------------


def test_p3_2_moving_to_proposal_with_an_empty_needs_analysis_is_refused_per_field(
    app: Any, sales: dict[str, int], login: Any
) -> None:
    opportunity_id = open_deal(
        app, sales["li"], sales["li_customer"], "Line 3", expected_close_on=date(2031, 6, 30)
    )
    client = logged_in(app, login, "li")
    before = load(app, opportunity_id)
    response = client.post(
        f"/sales/pipeline/{opportunity_id}/move",
        data={"stage": "proposal", "version": str(before.lock_version), "next": "board"},
    )
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert 'data-testid="missing-panel"' in body
    assert "Write the needs analysis before moving to Proposal." in body
    assert "Describe the proposed solution before moving to Proposal." in body
    assert "Enter an expected amount above zero before moving to Proposal." in body
    asked = body.split('data-testid="missing-form"')[1].split("</form>")[0]
    assert 'name="need_analysis"' in asked and 'name="amount"' in asked
    assert 'name="expected_close_on"' not in asked  # it is filled: not asked again
    after = load(app, opportunity_id)
    assert after.stage == "lead" and after.probability_pct == 10
    assert after.lock_version == before.lock_version
    assert changes(app, opportunity_id) == [("", "lead")]  # no StageChange row


def test_p3_2_the_missing_fields_can_be_given_in_the_same_move(
    app: Any, sales: dict[str, int], login: Any
) -> None:
    opportunity_id = open_deal(app, sales["li"], sales["li_customer"], "Line 3")
    client = logged_in(app, login, "li")
    version = str(load(app, opportunity_id).lock_version)
    response = client.post(
        f"/sales/pipeline/{opportunity_id}/move",
        data={
            "stage": "proposal",
            "version": version,
            "next": "detail",
            "need_analysis": "Stops twice a week.",
            "proposed_solution": "Sensors.",
            "amount": "abc",
            "expected_close_on": "2031-06-30",
        },
    )
    assert response.status_code == 422  # the amount is not an amount: nothing moves
    assert "Enter an amount in yuan" in response.get_data(as_text=True)
    assert load(app, opportunity_id).need_analysis == ""
    response = client.post(
        f"/sales/pipeline/{opportunity_id}/move",
        data={
            "stage": "proposal",
            "version": version,
            "next": "detail",
            "need_analysis": "Stops twice a week.",
            "proposed_solution": "Sensors.",
            "amount": "90000",
            "expected_close_on": "2031-06-30",
        },
    )
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/sales/pipeline/{opportunity_id}")
    moved = load(app, opportunity_id)
    assert (moved.stage, moved.probability_pct, moved.amount_cents) == ("proposal", 60, 9_000_000)
    assert moved.need_analysis == "Stops twice a week."
    assert moved.furthest_stage_index == position(app, "proposal")
    assert changes(app, opportunity_id) == [("", "lead"), ("lead", "proposal")]


def test_p3_2_lost_needs_a_reason_from_the_list_and_announces_the_loss(
    make_app: Any, org: dict[str, int]
) -> None:
    seen: list[Any] = []
    probe = throwaway_plugin(
        "probe",
        portal_on_event=lambda event: seen.append(event),
        portal_event_types=lambda: [EventType("probe.nothing", "Nothing", ())],
    )
    app = make_app(plugins=[("probe", probe)])
    customer = make_customer(app, org["li"], "Donghai")
    opportunity_id = open_deal(app, org["li"], customer, "Line 3", **FULL)
    with pytest.raises(ValidationFailed) as refused:
        move(app, opportunity_id, "lost", org["li"])
    assert refused.value.fields == {"lost_reason": ["Choose why the deal was lost."]}
    with pytest.raises(ValidationFailed) as refused:
        move(app, opportunity_id, "lost", org["li"], lost_reason="weather")
    assert "lost_reason" in refused.value.fields
    assert load(app, opportunity_id).status == "open" and not seen
    move(
        app,
        opportunity_id,
        "lost",
        org["li"],
        lost_reason="competitor",
        lost_note="Siemens was 15% cheaper.",
    )
    lost = load(app, opportunity_id)
    assert (lost.stage, lost.status, lost.probability_pct) == ("lost", "lost", 0)
    assert lost.lost_reason == "competitor" and lost.lost_note == "Siemens was 15% cheaper."
    assert lost.closed_at is not None
    assert lost.furthest_stage_index == 0  # lost is an outcome, not progress
    closed = [e for e in seen if e.name == "sales.opportunity_closed"]
    assert [(e.payload["opportunity_id"], e.payload["outcome"]) for e in closed] == [
        (opportunity_id, "lost")
    ]
    assert closed[0].actor_id == org["li"]


def test_p3_2_won_needs_an_accepted_quotation(app: Any, sales: dict[str, int]) -> None:
    opportunity_id = open_deal(app, sales["li"], sales["li_customer"], "Line 3", **FULL)
    with pytest.raises(ValidationFailed) as refused:
        move(app, opportunity_id, "won", sales["li"])
    assert set(refused.value.fields) == {"accepted_quotation"}
    assert "accepted a quotation" in refused.value.fields["accepted_quotation"][0]
    add_quotation(app, opportunity_id, "sent")
    with pytest.raises(ValidationFailed):
        move(app, opportunity_id, "won", sales["li"])
    assert load(app, opportunity_id).status == "open"
    add_quotation(app, opportunity_id, "accepted")
    move(app, opportunity_id, "won", sales["li"])
    won = load(app, opportunity_id)
    assert (won.stage, won.status, won.probability_pct) == ("won", "won", 100)
    assert won.closed_at is not None
    assert won.furthest_stage_index == position(app, "won")


def test_p3_2_negotiation_needs_a_quotation_that_is_not_superseded(
    app: Any, sales: dict[str, int]
) -> None:
    opportunity_id = open_deal(app, sales["li"], sales["li_customer"], "Line 3", **FULL)
    add_quotation(app, opportunity_id, "superseded")
    with pytest.raises(ValidationFailed) as refused:
        move(app, opportunity_id, "negotiation", sales["li"])
    assert set(refused.value.fields) == {"quotation"}
    add_quotation(app, opportunity_id, "draft")
    move(app, opportunity_id, "negotiation", sales["li"])
    assert load(app, opportunity_id).probability_pct == 80


def test_p3_2_probabilities_come_from_the_rule_file(app: Any, sales: dict[str, int]) -> None:
    opportunity_id = open_deal(app, sales["li"], sales["li_customer"], "Line 3", **FULL)
    add_quotation(app, opportunity_id, "accepted")
    seen = {}
    for stage in ("qualified", "needs_analysis", "proposal", "negotiation", "won"):
        move(app, opportunity_id, stage, sales["li"])
        seen[stage] = load(app, opportunity_id).probability_pct
    assert seen == {
        "qualified": 20,
        "needs_analysis": 40,
        "proposal": 60,
        "negotiation": 80,
        "won": 100,
    }
    with app.app_context():
        assert [(s.code, s.probability_pct) for s in pipeline.stages()][:3] == [
            ("lead", 10),
            ("qualified", 20),
            ("needs_analysis", 40),
        ]


def test_p3_2_a_published_stage_file_changes_probability_and_requirements_without_code(
    make_app: Any, org: dict[str, int], tmp_path: Any
) -> None:
    app = make_app(RULES_REFRESH_SECONDS=0, RULES_INSTANCE_DIR=str(tmp_path / "rules"))
    customer = make_customer(app, org["li"], "Donghai")
    opportunity_id = open_deal(
        app, org["li"], customer, "Line 3", expected_close_on=date(2031, 6, 30)
    )
    with app.app_context():
        qualified = pipeline.stage_by_code()["qualified"]
        assert (qualified.probability_pct, qualified.required_fields) == (
            20,
            ("expected_close_on",),
        )
        opportunity = db.session.get(Opportunity, opportunity_id)
        assert pipeline.missing_fields(opportunity, qualified) == {}
    with app.app_context(), acting_as("test"):
        text = rules().active("opportunity_stages").rule_file.source
        changed = text.replace(
            "- [qualified, 20, [expected_close_on], open]",
            "- [qualified, 25, [expected_close_on, decision_maker], open]",
        ).replace(
            "{probability_pct: 20, required_fields: [expected_close_on], outcome: open}",
            "{probability_pct: 25, required_fields: [expected_close_on, decision_maker]}",
        )
        assert changed != text
        rules().publish("opportunity_stages", changed, "cli", note="qualify with a decider")
    with pytest.raises(ValidationFailed) as refused:
        move(app, opportunity_id, "qualified", org["li"])
    assert set(refused.value.fields) == {"decision_maker"}
    move(app, opportunity_id, "qualified", org["li"], decision_maker="Mr Zhou")
    qualified = load(app, opportunity_id)
    assert (qualified.stage, qualified.probability_pct) == ("qualified", 25)


def test_p3_2_reopening_a_lost_deal_is_the_owners_call_a_won_one_a_leaders(
    app: Any, sales: dict[str, int], login: Any
) -> None:
    lost_id = open_deal(app, sales["li"], sales["li_customer"], "Lost then revived", **FULL)
    move(app, lost_id, "lost", sales["li"], lost_reason="no_budget", lost_note="Next year")
    move(app, lost_id, "needs_analysis", sales["li"])
    revived = load(app, lost_id)
    assert (revived.status, revived.closed_at, revived.lost_reason) == ("open", None, "")
    assert revived.probability_pct == 40

    won_id = open_deal(app, sales["li"], sales["li_customer"], "Won deal", **FULL)
    add_quotation(app, won_id, "accepted")
    move(app, won_id, "won", sales["li"])
    with pytest.raises(ValidationFailed) as refused:
        move(app, won_id, "negotiation", sales["li"])
    assert "supervisor or manager" in refused.value.fields["stage"][0]
    client = logged_in(app, login, "li")
    response = client.post(
        f"/sales/pipeline/{won_id}/move", data={"stage": "lost", "lost_reason": "price"}
    )
    assert response.status_code == 422 and load(app, won_id).status == "won"
    move(app, won_id, "negotiation", sales["sup_east"])
    reopened = load(app, won_id)
    assert (reopened.status, reopened.closed_at, reopened.stage) == ("open", None, "negotiation")
    assert reopened.furthest_stage_index == position(app, "won")  # the furthest stays


def test_p3_2_close_as_won_is_what_a_signed_contract_calls(app: Any, sales: dict[str, int]) -> None:
    opportunity_id = open_deal(app, sales["li"], sales["li_customer"], "Line 3", **FULL)
    with acting(app):
        opportunity = db.session.get(Opportunity, opportunity_id)
        with pytest.raises(ValidationFailed) as refused:
            pipeline.close_as_won(opportunity, person(sales["sup_east"]))
        assert "accepted_quotation" in refused.value.fields
        db.session.rollback()
    add_quotation(app, opportunity_id, "accepted")
    with acting(app):
        opportunity = db.session.get(Opportunity, opportunity_id)
        change = pipeline.close_as_won(opportunity, person(sales["sup_east"]))
        assert (change.from_stage, change.to_stage) == ("lead", "won")
        db.session.commit()
        assert pipeline.close_as_won(opportunity, person(sales["sup_east"])) is None
    assert changes(app, opportunity_id) == [("", "lead"), ("lead", "won")]


def test_p3_2_a_stale_move_answers_409_and_moves_nothing(
    app: Any, sales: dict[str, int], login: Any
) -> None:
    opportunity_id = open_deal(app, sales["li"], sales["li_customer"], "Line 3", **FULL)
    version = load(app, opportunity_id).lock_version
    move(app, opportunity_id, "qualified", sales["sup_east"])  # someone else moved it
    client = logged_in(app, login, "li")
    response = client.post(
        f"/sales/pipeline/{opportunity_id}/move",
        data={"stage": "proposal", "version": str(version), "next": "detail"},
    )
    assert response.status_code == 409
    assert "changed this opportunity meanwhile" in response.get_data(as_text=True)
    assert load(app, opportunity_id).stage == "qualified"
    htmx = client.post(
        f"/sales/pipeline/{opportunity_id}/move",
        data={"stage": "proposal", "version": str(version), "next": "board"},
        headers={"HX-Request": "true", "HX-Target": "pipeline-board"},
    )
    assert htmx.status_code == 409 and htmx.headers["HX-Redirect"].endswith("/sales/pipeline/board")


def test_p3_2_the_detail_page_shows_progress_history_and_links_only_that_exist(
    app: Any, sales: dict[str, int], login: Any
) -> None:
    opportunity_id = open_deal(app, sales["li"], sales["li_customer"], "Line 3", **FULL)
    move(app, opportunity_id, "needs_analysis", sales["li"])
    client = logged_in(app, login, "li")
    body = client.get(f"/sales/pipeline/{opportunity_id}").get_data(as_text=True)
    assert 'data-testid="step-lead"' in body
    assert re.search(
        r'pipeline-step-current" aria-current="step" data-testid="step-needs_analysis"', body
    )
    assert "Lead → Needs analysis" in body and "Opened in Lead" in body
    assert body.count('data-testid="history-row"') == 2
    assert "Line 3 stops twice a week" in body
    with app.test_request_context():
        from plugins.sales.template_helpers import sales_link

        assert sales_link("sales_no_such.endpoint", opportunity_id=1) is None
        assert sales_link("sales_pipeline.board") == "/sales/pipeline/board"
    # The links to other parts appear only when their pages exist.
    with app.test_request_context():
        from flask import url_for
        from werkzeug.routing import BuildError

        try:
            url_for("sales_quotes.new", opportunity_id=opportunity_id)
            quotes_exist = True
        except BuildError:
            quotes_exist = False
    assert ('data-testid="new-quote-link"' in body) == quotes_exist
    # Read-only for someone who may see but not change it.
    auditor = logged_in(app, login, "auditor").get(f"/sales/pipeline/{opportunity_id}")
    assert auditor.status_code == 200
    assert 'data-testid="detail-move-form"' not in auditor.get_data(as_text=True)


def test_p3_2_the_list_filters_by_stage_status_owner_month_and_words(
    app: Any, sales: dict[str, int], login: Any
) -> None:
    now = utcnow()
    add_rows(
        app,
        {
            "owner_id": sales["li"],
            "customer_id": sales["li_customer"],
            "name": "Alpha pumps",
            "expected_close_on": date(2031, 5, 3),
        },
        {
            "owner_id": sales["li"],
            "customer_id": sales["li_customer"],
            "name": "Beta valves",
            "stage": "proposal",
            "furthest_stage_index": 3,
            "expected_close_on": date(2031, 6, 3),
        },
        {
            "owner_id": sales["wang"],
            "customer_id": sales["wang_customer"],
            "name": "Gamma looms",
            "stage": "won",
            "status": "won",
            "closed_at": now,
        },
    )
    client = logged_in(app, login, "sup_east")

    def names(query: str) -> list[str]:
        response = client.get("/sales/pipeline/?" + query)
        assert response.status_code == 200
        return sorted(
            re.findall(r'data-testid="row-name">([^<]+)<', response.get_data(as_text=True))
        )

    assert names("") == ["Alpha pumps", "Beta valves", "Gamma looms"]
    assert names("stage=proposal") == ["Beta valves"]
    assert names("status=won") == ["Gamma looms"]
    assert names(f"owner={sales['wang']}") == ["Gamma looms"]
    assert names("close_month=2031-05") == ["Alpha pumps"]
    assert names("q=Secret") == ["Gamma looms"]  # by customer name
    assert names("q=valves") == ["Beta valves"]
    assert names("stage=nonsense&status=nonsense&owner=abc&close_month=x") == [
        "Alpha pumps",
        "Beta valves",
        "Gamma looms",
    ]
    # li sees only li's, whatever the owner filter says.
    li = logged_in(app, login, "li")
    body = li.get(f"/sales/pipeline/?owner={sales['wang']}").get_data(as_text=True)
    assert "Gamma looms" not in body
    assert sorted(re.findall(r'data-testid="row-name">([^<]+)<', body)) == [
        "Alpha pumps",
        "Beta valves",
    ]


# -- the board -----------------------------------------------------------------------------------


def test_p3_2_the_board_shows_counts_sums_and_recent_closed_cards(
    app: Any, sales: dict[str, int], login: Any
) -> None:
    now = utcnow()
    today = local_today()
    li, customer = sales["li"], sales["li_customer"]
    add_rows(
        app,
        {"owner_id": li, "customer_id": customer, "name": "Open A", "amount_cents": 100_00},
        {
            "owner_id": li,
            "customer_id": customer,
            "name": "Open B",
            "amount_cents": 250_00,
            "expected_close_on": today - timedelta(days=3),
        },
        {
            "owner_id": li,
            "customer_id": customer,
            "name": "Prop C",
            "stage": "proposal",
            "amount_cents": 1_000_00,
            "furthest_stage_index": 3,
        },
        {
            "owner_id": li,
            "customer_id": customer,
            "name": "Won recently",
            "stage": "won",
            "status": "won",
            "closed_at": now - timedelta(days=5),
            "amount_cents": 7_00,
        },
        {
            "owner_id": li,
            "customer_id": customer,
            "name": "Won long ago",
            "stage": "won",
            "status": "won",
            "closed_at": now - timedelta(days=45),
            "amount_cents": 9_00,
        },
    )
    client = logged_in(app, login, "li")
    body = client.get("/sales/pipeline/board").get_data(as_text=True)
    columns = {
        code: body.split(f'data-testid="column-{code}"')[1].split("</section>")[0]
        for code in ("lead", "proposal", "won", "lost")
    }
    assert re.search(r'column-count"[^>]*>2<', columns["lead"])
    assert "¥350.00" in columns["lead"]
    assert sorted(CARD.findall(columns["lead"])) == ["Open A", "Open B"]
    assert columns["lead"].index("Open B") < columns["lead"].index("Open A")  # soonest first
    assert 'data-testid="card-overdue"' in columns["lead"].split("Open A")[0]
    assert CARD.findall(columns["proposal"]) == ["Prop C"]
    assert CARD.findall(columns["won"]) == ["Won recently"]
    assert "¥7.00" in columns["won"] and "Won long ago" not in body
    assert CARD.findall(columns["lost"]) == []
    # A salesperson sees no owner filter and no owner on cards.
    assert 'data-testid="filter-owner"' not in body and 'data-testid="card-owner"' not in body


def test_p3_2_a_column_shows_at_most_its_cap_and_links_to_the_rest(
    app: Any, sales: dict[str, int], login: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr(pipeline, "CARDS_PER_COLUMN", 3)
    add_rows(
        app,
        *[
            {
                "owner_id": sales["li"],
                "customer_id": sales["li_customer"],
                "name": f"Deal {n}",
                "amount_cents": 100 * n,
            }
            for n in range(1, 8)
        ],
    )
    client = logged_in(app, login, "li")
    body = client.get("/sales/pipeline/board").get_data(as_text=True)
    lead = body.split('data-testid="column-lead"')[1].split("</section>")[0]
    assert len(CARD.findall(lead)) == 3
    assert re.search(r'column-count"[^>]*>7<', lead)
    assert "¥28.00" in lead  # the sum covers all seven
    more = re.search(
        r'href="([^"]+)"[^>]*>4 more<|data-testid="column-more"\s+href="([^"]+)">4 more', lead
    )
    assert more is not None
    link = (more.group(1) or more.group(2)).replace("&amp;", "&")
    assert "stage=lead" in link and "recent=1" in link
    listed = client.get(link).get_data(as_text=True)
    assert len(re.findall(r'data-testid="opportunity-row"', listed)) == 7


def test_p3_2_a_card_moves_by_its_form_with_htmx_and_the_board_is_swapped(
    app: Any, sales: dict[str, int], login: Any
) -> None:
    opportunity_id = open_deal(app, sales["li"], sales["li_customer"], "Line 3", **FULL)
    client = logged_in(app, login, "li")
    board = client.get("/sales/pipeline/board").get_data(as_text=True)
    assert f'hx-post="/sales/pipeline/{opportunity_id}/move"' in board
    assert 'hx-target="#pipeline-board"' in board
    version = load(app, opportunity_id).lock_version
    htmx = {"HX-Request": "true", "HX-Target": "pipeline-board"}
    response = client.post(
        f"/sales/pipeline/{opportunity_id}/move",
        data={"stage": "proposal", "version": str(version), "next": "board", "back": "q=Line"},
        headers=htmx,
    )
    assert response.status_code == 200
    assert "HX-Request" in response.headers.get("Vary", "")
    fragment = response.get_data(as_text=True)
    assert fragment.lstrip().startswith('<div id="pipeline-board"')
    assert "<html" not in fragment
    assert "Line 3 moved to Proposal." in fragment
    proposal = fragment.split('data-testid="column-proposal"')[1].split("</section>")[0]
    assert CARD.findall(proposal) == ["Line 3"]
    assert 'name="back" value="q=Line"' in fragment  # the filters are kept
    # Without JavaScript: a redirect back to the same board.
    version = load(app, opportunity_id).lock_version
    plain = client.post(
        f"/sales/pipeline/{opportunity_id}/move",
        data={"stage": "qualified", "version": str(version), "next": "board", "back": "q=Line"},
    )
    assert plain.status_code == 303
    assert plain.headers["Location"].endswith("/sales/pipeline/board?q=Line")
    assert load(app, opportunity_id).stage == "qualified"


def test_p3_2_dropping_a_card_on_lost_asks_for_the_reason_in_the_board(
    app: Any, sales: dict[str, int], login: Any
) -> None:
    opportunity_id = open_deal(app, sales["li"], sales["li_customer"], "Line 3", **FULL)
    client = logged_in(app, login, "li")
    htmx = {"HX-Request": "true", "HX-Target": "pipeline-board"}
    version = str(load(app, opportunity_id).lock_version)
    response = client.post(
        f"/sales/pipeline/{opportunity_id}/move",
        data={"stage": "lost", "version": version, "next": "board"},
        headers=htmx,
    )
    assert response.status_code == 422
    fragment = response.get_data(as_text=True)
    assert fragment.lstrip().startswith('<div id="pipeline-board"')
    panel = fragment.split('data-testid="missing-panel"')[1].split("</section>")[0]
    assert "Choose why the deal was lost." in panel
    assert 'name="lost_reason"' in panel and 'name="lost_note"' in panel
    assert f'hx-post="/sales/pipeline/{opportunity_id}/move"' in panel
    assert load(app, opportunity_id).stage == "lead"
    response = client.post(
        f"/sales/pipeline/{opportunity_id}/move",
        data={
            "stage": "lost",
            "version": version,
            "next": "board",
            "lost_reason": "price",
            "lost_note": "Twice our price was too much.",
        },
        headers=htmx,
    )
    assert response.status_code == 200
    assert 'data-testid="missing-panel"' not in response.get_data(as_text=True)
    lost = load(app, opportunity_id)
    assert (lost.status, lost.lost_reason) == ("lost", "price")


def test_p3_2_the_board_filters_by_owner_and_team_for_leaders(
    app: Any, sales: dict[str, int], login: Any
) -> None:
    add_rows(
        app,
        {"owner_id": sales["li"], "customer_id": sales["li_customer"], "name": "Li deal"},
        {"owner_id": sales["wang"], "customer_id": sales["wang_customer"], "name": "Wang deal"},
        {"owner_id": sales["zhao"], "customer_id": sales["zhao_customer"], "name": "Zhao deal"},
    )
    manager = logged_in(app, login, "manager")

    def cards(query: str = "") -> list[str]:
        response = manager.get("/sales/pipeline/board?" + query)
        assert response.status_code == 200
        return sorted(CARD.findall(response.get_data(as_text=True)))

    assert cards() == ["Li deal", "Wang deal", "Zhao deal"]
    assert cards(f"owner={sales['wang']}") == ["Wang deal"]
    assert cards(f"team={sales['east']}") == ["Li deal", "Wang deal"]
    assert cards(f"team={sales['guangzhou']}") == ["Zhao deal"]
    body = manager.get("/sales/pipeline/board").get_data(as_text=True)
    assert 'data-testid="card-owner"' in body and 'data-testid="filter-team"' in body
    # A supervisor's team filter offers only their subtree and cannot widen the scope.
    supervisor = logged_in(app, login, "sup_east")
    body = supervisor.get(f"/sales/pipeline/board?team={sales['guangzhou']}").get_data(as_text=True)
    assert sorted(CARD.findall(body)) == ["Li deal", "Wang deal"]
    assert ">Guangzhou<" not in body
    # Someone who may read everything but change nothing gets cards without move forms.
    auditor = logged_in(app, login, "auditor").get("/sales/pipeline/board")
    body = auditor.get_data(as_text=True)
    assert sorted(CARD.findall(body)) == ["Li deal", "Wang deal", "Zhao deal"]
    assert 'data-testid="card-move-form"' not in body and 'draggable="true"' not in body


def test_p3_2_board_statements_stay_flat_with_many_opportunities(
    app: Any, sales: dict[str, int], login: Any
) -> None:
    client = logged_in(app, login, "sup_east")
    stages = ["lead", "qualified", "needs_analysis", "proposal", "negotiation"]

    def rows(count: int, offset: int) -> list[dict[str, Any]]:
        return [
            {
                "owner_id": sales["li"] if n % 2 else sales["wang"],
                "customer_id": sales["li_customer"] if n % 2 else sales["wang_customer"],
                "name": f"Deal {offset + n}",
                "stage": stages[n % 5],
                "furthest_stage_index": n % 5,
                "amount_cents": 1000 * n,
                "expected_close_on": date(2031, 1 + n % 12, 1),
            }
            for n in range(count)
        ]

    add_rows(app, *rows(5, 0))
    count_statements(app, client, "/sales/pipeline/board")  # warm the caches
    few = count_statements(app, client, "/sales/pipeline/board")
    add_rows(app, *rows(55, 5))
    many = count_statements(app, client, "/sales/pipeline/board")
    assert many == few, (few, many)
    body = client.get("/sales/pipeline/board").get_data(as_text=True)
    assert len(CARD.findall(body)) == 60
    # The list and the funnel too.
    assert count_statements(app, client, "/sales/pipeline/") <= few + 2
    assert count_statements(app, client, "/sales/pipeline/funnel?period=this_year") < 30


# -- the funnel ---------------------------------------------------------------------------------


def funnel_data(app: Any, sales: dict[str, int]) -> None:
    """A known quarter: ten deals created in Q1 2031 (and one outside it).

    li: 4 reached lead only (1 of them lost), 2 reached proposal (1 lost there),
        1 won (amount 500);  wang: 1 at needs analysis, 1 won (amount 300), 1 lost
        at qualified.  furthest index: lead 0, qualified 1, needs 2, proposal 3,
        negotiation 4, won 5.
    """
    q1 = datetime(2031, 2, 10, 4, 0, tzinfo=UTC)
    li, wang = sales["li"], sales["wang"]
    lc, wc = sales["li_customer"], sales["wang_customer"]

    def deal(owner: int, customer: int, furthest: int, status: str = "open", amount: int = 100):
        stage = {0: "lead", 1: "qualified", 2: "needs_analysis", 3: "proposal", 5: "won"}[furthest]
        if status == "lost":
            stage = "lost"
        return {
            "owner_id": owner,
            "customer_id": customer,
            "name": f"d{owner}-{furthest}-{status}",
            "stage": stage,
            "status": status,
            "furthest_stage_index": furthest,
            "amount_cents": amount,
            "created_at": q1,
            "closed_at": q1 if status != "open" else None,
        }

    add_rows(
        app,
        deal(li, lc, 0),
        deal(li, lc, 0),
        deal(li, lc, 0),
        deal(li, lc, 0, "lost"),
        deal(li, lc, 3),
        deal(li, lc, 3, "lost"),
        deal(li, lc, 5, "won", 500),
        deal(wang, wc, 2),
        deal(wang, wc, 5, "won", 300),
        deal(wang, wc, 1, "lost"),
        {**deal(li, lc, 5, "won", 999), "created_at": datetime(2030, 12, 1, tzinfo=UTC)},
    )


def test_p3_2_funnel_counts_conversion_and_win_rate_for_a_known_quarter(
    app: Any, sales: dict[str, int]
) -> None:
    funnel_data(app, sales)
    with app.test_request_context():
        result = pipeline.funnel(person(sales["manager"]), date(2031, 1, 1), date(2031, 3, 31))
        assert [step.code for step in result.steps] == [
            "lead",
            "qualified",
            "needs_analysis",
            "proposal",
            "negotiation",
            "won",
        ]
        total = result.total
        assert total.created == 10
        assert total.reached == [10, 6, 5, 4, 2, 2]
        assert total.amounts[0] == 8 * 100 + 500 + 300 and total.amounts[5] == 800
        assert (total.won, total.lost, total.open) == (2, 3, 5)
        assert total.won_amount_cents == 800
        assert total.conversion(0) is None
        assert total.conversion(1) == pytest.approx(0.6)
        assert total.conversion(2) == pytest.approx(5 / 6)
        assert total.conversion(3) == pytest.approx(0.8)
        assert total.conversion(4) == pytest.approx(0.5)
        assert total.conversion(5) == pytest.approx(1.0)
        assert total.from_first(5) == pytest.approx(0.2)
        assert total.win_rate == pytest.approx(2 / 5)
        people = {row.label: row for row in result.rows}
        assert people["Li"].reached == [7, 3, 3, 3, 1, 1]
        assert people["Wang"].reached == [3, 3, 2, 1, 1, 1]
        assert people["Li"].win_rate == pytest.approx(1 / 3)
        assert people["Wang"].win_rate == pytest.approx(1 / 2)
        by_team = pipeline.funnel(
            person(sales["manager"]), date(2031, 1, 1), date(2031, 3, 31), "team"
        )
        teams = {row.label: (row.created, row.won, row.depth) for row in by_team.rows}
        assert teams["Company"] == (10, 2, 0)
        assert teams["East"] == (10, 2, 1)
        assert teams["Shanghai"] == (10, 2, 2)
        assert "South" not in teams  # only units with deals in their subtree


def test_p3_2_the_funnel_page_chart_and_api_show_the_same_numbers(
    app: Any, sales: dict[str, int], login: Any, api_token: Any
) -> None:
    funnel_data(app, sales)
    client = logged_in(app, login, "sup_east")
    query = "since=2031-01-01&until=2031-03-31"
    body = client.get("/sales/pipeline/funnel?" + query).get_data(as_text=True)
    assert re.search(r'funnel-created">10<', body)
    assert re.findall(r'data-testid="funnel-reached">(\d+)<', body) == [
        "10",
        "6",
        "5",
        "4",
        "2",
        "2",
    ]
    assert re.findall(r'data-testid="funnel-conversion">([^<]+)<', body)[1:3] == [
        "60.0 %",
        "83.3 %",
    ]
    assert re.search(r'funnel-win-rate">40.0 %<', body)
    assert "How the funnel counts" in body
    assert 'src="/sales/pipeline/funnel/chart.svg?since=2031-01-01&amp;until=2031-03-31"' in body
    chart = client.get("/sales/pipeline/funnel/chart.svg?" + query)
    assert chart.status_code == 200 and chart.mimetype == "image/svg+xml"
    svg = chart.get_data(as_text=True)
    assert "<script" not in svg and "Negotiation" in svg
    headers = {"Authorization": f"Bearer {api_token('sup_east')}"}
    data = client.get("/api/v1/sales/opportunities/funnel?" + query, headers=headers).get_json()
    assert [step["reached"] for step in data["steps"]] == [10, 6, 5, 4, 2, 2]
    assert data["steps"][1]["conversion"] == 0.6 and data["total"]["win_rate"] == 0.4
    assert data["total"]["won_amount"] == "8.00"
    assert {row["label"] for row in data["groups"]} == {"Li", "Wang"}
    by_team = client.get("/sales/pipeline/funnel?group=team&" + query).get_data(as_text=True)
    labels = re.findall(r'data-testid="funnel-group-label">([^<]+)<', by_team)
    assert labels == ["East", "Shanghai"]  # the supervisor's subtree only


def test_p3_2_the_funnel_chart_of_a_period_without_deals_says_so(
    app: Any, sales: dict[str, int], login: Any
) -> None:
    """A salesperson's first quarter: the funnel page's image is drawn, not a 500."""
    client = logged_in(app, login, "li")
    chart = client.get("/sales/pipeline/funnel/chart.svg?period=this_quarter")
    assert chart.status_code == 200 and chart.mimetype == "image/svg+xml"
    assert "No opportunities were created in this period" in chart.get_data(as_text=True)


def test_p3_2_the_funnel_chart_starts_from_the_core_chart_config(
    app: Any, sales: dict[str, int], login: Any, monkeypatch: Any
) -> None:
    """One way to draw a chart: portal.loops.charts.chart_config (safe for the CSP, the
    portal's colours and fonts), not a copy of it."""
    from portal.loops import charts

    titles: list[str] = []
    original = charts.chart_config

    def spy(title: str, **options: Any) -> Any:
        titles.append(title)
        return original(title, **options)

    monkeypatch.setattr(charts, "chart_config", spy)
    client = logged_in(app, login, "li")
    assert client.get("/sales/pipeline/funnel/chart.svg").status_code == 200
    assert titles == ["Deals reaching each stage"]


# -- scope ----------------------------------------------------------------------------------------


def test_p3_2_li_never_sees_wangs_opportunity_anywhere(
    app: Any, sales: dict[str, int], login: Any, api_token: Any
) -> None:
    created = datetime.now(UTC) - timedelta(days=1)
    [mine, secret] = add_rows(
        app,
        {
            "owner_id": sales["li"],
            "customer_id": sales["li_customer"],
            "name": "Li visible",
            "created_at": created,
        },
        {
            "owner_id": sales["wang"],
            "customer_id": sales["wang_customer"],
            "name": "Wang secret deal",
            "amount_cents": 123_456_00,
            "created_at": created,
        },
    )
    client = logged_in(app, login, "li")
    for url in ("/sales/pipeline/board", "/sales/pipeline/", "/sales/pipeline/funnel"):
        body = client.get(url).get_data(as_text=True)
        assert "Wang secret deal" not in body and "Wang Secret Textiles" not in body, url
        assert "123,456" not in body, url
    assert client.get(f"/sales/pipeline/{secret}").status_code == 404
    assert client.get(f"/sales/pipeline/{secret}/edit").status_code == 404
    assert (
        client.post(f"/sales/pipeline/{secret}/move", data={"stage": "qualified"}).status_code
        == 404
    )
    funnel = client.get("/sales/pipeline/funnel").get_data(as_text=True)
    assert re.search(r'funnel-created">1<', funnel)
    svg = client.get("/sales/pipeline/funnel/chart.svg").get_data(as_text=True)
    with app.test_request_context():
        result = pipeline.funnel(
            person(sales["li"]), *pipeline.period_bounds("this_quarter", local_today())
        )
        assert result.total.created == 1 and [row.label for row in result.rows] == ["Li"]
    assert "Wang" not in svg
    headers = {"Authorization": f"Bearer {api_token('li')}"}
    listed = client.get("/api/v1/sales/opportunities", headers=headers).get_json()
    assert [item["id"] for item in listed["items"]] == [mine]
    assert client.get(f"/api/v1/sales/opportunities/{secret}", headers=headers).status_code == 404
    moved = client.post(
        f"/api/v1/sales/opportunities/{secret}/move", json={"stage": "qualified"}, headers=headers
    )
    assert moved.status_code == 404
    patched = client.patch(
        f"/api/v1/sales/opportunities/{secret}",
        json={"lock_version": 1, "name": "x"},
        headers=headers,
    )
    assert patched.status_code == 404
    funnel_api = client.get("/api/v1/sales/opportunities/funnel", headers=headers).get_json()
    assert funnel_api["total"]["created"] == 1
    assert load(app, secret).stage == "lead" and load(app, secret).name == "Wang secret deal"
    # The supervisor of both sees both; the customer partial lists only what one may see.
    supervisor = logged_in(app, login, "sup_east")
    assert supervisor.get(f"/sales/pipeline/{secret}").status_code == 200
    with app.test_request_context():
        from flask_login import login_user

        li = person(sales["li"])
        li.login_session_key = "test"
        login_user(li)
        html = render_template_string(
            '{% include "sales/pipeline/_for_customer.html" %}',
            customer=db.session.get(Customer, sales["wang_customer"]),
        )
        assert "Wang secret deal" not in html and "new-opportunity-link" not in html
        html = render_template_string(
            '{% include "sales/pipeline/_for_customer.html" %}',
            customer=db.session.get(Customer, sales["li_customer"]),
        )
        assert "Li visible" in html and "new-opportunity-link" in html


# -- the API --------------------------------------------------------------------------------------


def test_p3_2_the_api_creates_reads_patches_and_moves_with_per_field_errors(
    app: Any, sales: dict[str, int], api_token: Any
) -> None:
    client = app.test_client()
    headers = {"Authorization": f"Bearer {api_token('li')}"}
    bad = client.post(
        "/api/v1/sales/opportunities",
        json={"customer_id": sales["li_customer"], "name": "", "amount": "-1"},
        headers=headers,
    )
    assert bad.status_code == 422
    assert set(bad.get_json()["error"]["fields"]) == {"name", "amount"}
    unknown = client.post(
        "/api/v1/sales/opportunities",
        json={"customer_id": sales["li_customer"], "name": "x", "stage": "won"},
        headers=headers,
    )
    assert unknown.status_code == 400
    foreign = client.post(
        "/api/v1/sales/opportunities",
        json={"customer_id": sales["wang_customer"], "name": "x"},
        headers=headers,
    )
    assert foreign.status_code == 404
    created = client.post(
        "/api/v1/sales/opportunities",
        json={
            "customer_id": sales["li_customer"],
            "name": "API deal",
            "amount": 1200.5,
            "expected_close_on": "2031-06-30",
        },
        headers=headers,
    )
    assert created.status_code == 201, created.get_json()
    deal = created.get_json()
    assert (deal["stage"], deal["probability_pct"], deal["amount"]) == ("lead", 10, "1200.50")
    url = f"/api/v1/sales/opportunities/{deal['id']}"
    assert client.get(url, headers=headers).get_json()["name"] == "API deal"
    missing_version = client.patch(url, json={"name": "Renamed"}, headers=headers)
    assert missing_version.status_code == 422
    assert "lock_version" in missing_version.get_json()["error"]["fields"]
    patched = client.patch(
        url,
        json={"name": "Renamed", "need_analysis": "Needs X", "lock_version": deal["lock_version"]},
        headers=headers,
    )
    assert patched.status_code == 200
    after = patched.get_json()
    assert (after["name"], after["need_analysis"], after["amount"]) == (
        "Renamed",
        "Needs X",
        "1200.50",
    )
    stale = client.patch(
        url, json={"name": "Late", "lock_version": deal["lock_version"]}, headers=headers
    )
    assert stale.status_code == 409
    refused = client.post(url + "/move", json={"stage": "proposal"}, headers=headers)
    assert refused.status_code == 422
    assert set(refused.get_json()["error"]["fields"]) == {"proposed_solution"}
    assert client.get(url, headers=headers).get_json()["stage"] == "lead"
    moved = client.post(
        url + "/move",
        json={
            "stage": "proposal",
            "values": {"proposed_solution": "Y"},
            "lock_version": after["lock_version"],
        },
        headers=headers,
    )
    assert moved.status_code == 200
    assert (moved.get_json()["stage"], moved.get_json()["probability_pct"]) == ("proposal", 60)
    lost = client.post(
        url + "/move", json={"stage": "lost", "values": {"lost_reason": "x"}}, headers=headers
    )
    assert lost.status_code == 422 and "lost_reason" in lost.get_json()["error"]["fields"]
    bad_stage = client.post(url + "/move", json={"stage": "heaven"}, headers=headers)
    assert bad_stage.status_code == 422 and "stage" in bad_stage.get_json()["error"]["fields"]
    listed = client.get("/api/v1/sales/opportunities?stage=proposal", headers=headers).get_json()
    assert [item["name"] for item in listed["items"]] == ["Renamed"]
    auditor = {"Authorization": f"Bearer {api_token('auditor')}"}
    assert client.post(url + "/move", json={"stage": "lead"}, headers=auditor).status_code == 403
