"""P3.4 Contract signing and execution, P7.3 review before signing.

A contract is made only from an accepted quotation (one per quotation), planned
(checklist, milestones, a payment plan that adds up to the fen), reviewed through the
core approvals as ``rules/contract_review.yaml`` routes it, signed (milestones and
instalments become loop items, the customer is promoted, the deal won), executed
(payments, milestones, the satisfaction check after delivery) and completed.

Organisation (``org`` fixture): manager leads Company > sup_east leads East > Shanghai
(li, wang); sup_south leads South > Guangzhou (zhao); fin (finance) sits in Company.
The prerequisite rows (customer, opportunity, accepted quotation with lines) are
written directly with the models.
"""

from __future__ import annotations

import itertools
import re
from datetime import date, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from plugins.sales import contracts
from plugins.sales.models import (
    Contract,
    Counter,
    Customer,
    Milestone,
    Opportunity,
    PaymentInstalment,
    Quotation,
    QuoteLine,
)
from portal.auth.models import User
from portal.extensions import db
from portal.loops import approvals
from portal.loops.models import ApprovalRequest, LoopItem, Notification
from portal.loops.service import local_today, portal_zone
from portal.rules.service import rules
from portal.testing import count_statements

_sequence = itertools.count(1)
ITEMS = (
    "parties_verified",
    "scope_clear",
    "price_matches_quote",
    "delivery_terms",
    "liability_lawful",
)
HIGH_RISK_MESSAGE = "High credit risk: only prepaid or cash-on-delivery contracts (P7.2)"


@pytest.fixture
def people(org: dict[str, int], make_person: Any) -> dict[str, int]:
    ids = dict(org)
    ids["fin"] = make_person("fin", roles=["finance"], unit=org["company"])
    return ids


def user(name: str) -> User:
    return db.session.scalars(sa.select(User).where(User.username == name)).one()


def today() -> date:
    return local_today()


def count(model: Any) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(model))


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- prerequisite rows, written with the models -----------------------------------------------


def make_deal(
    owner: str = "li",
    amount: int = 100_000,
    status: str = "accepted",
    terms: int = 30,
    risk: str = "low",
    method: str = "courier",
    customer_id: int | None = None,
) -> int:
    """A customer (a prospect unless given), an open opportunity in negotiation and its
    quotation with one line, in ``status``; returns the quotation's id."""
    n = next(_sequence)
    person = user(owner)
    if customer_id is None:
        customer = Customer(
            owner_id=person.id,
            name=f"Huadong Pumps {n}",
            name_key=f"huadongpumps{n}",
            stage="prospect",
            credit_risk=risk,
        )
        db.session.add(customer)
        db.session.flush()
        customer_id = customer.id
    opportunity = Opportunity(
        owner_id=person.id,
        customer_id=customer_id,
        name=f"Pump station {n}",
        stage="negotiation",
        status="open",
        amount_cents=amount * 100,
        proposed_solution="Two pumps",
    )
    db.session.add(opportunity)
    db.session.flush()
    quotation = Quotation(
        owner_id=person.id,
        number=f"QT-2026-{n:05d}",
        version=1,
        opportunity_id=opportunity.id,
        customer_id=customer_id,
        status=status,
        delivery_method=method,
        payment_terms_days=terms,
        valid_until=today() + timedelta(days=30),
        list_total_cents=amount * 100,
        total_cents=amount * 100,
    )
    quotation.lines.append(
        QuoteLine(
            position=1,
            description="Centrifugal pump",
            quantity=2,
            unit_price_cents=amount * 50,
            total_cents=amount * 100,
        )
    )
    db.session.add(quotation)
    db.session.commit()
    return quotation.id


def draft(quote_id: int, actor: str = "li", tick: bool = True, **changes: Any) -> int:
    """A draft contract from the quotation as the rule file plans it."""
    quotation = db.session.get(Quotation, quote_id)
    values = contracts.default_values(quotation, today())
    values.checklist = {code: tick for code in contracts.checklist_items()}
    for name, value in changes.items():
        setattr(values, name, value)
    contract = contracts.create_contract(quotation, user(actor), values)
    db.session.commit()
    return contract.id


def load(contract_id: int) -> Contract:
    db.session.expire_all()
    return db.session.get(Contract, contract_id)


def signed_earlier(customer_id: int, owner: str = "li") -> None:
    """An earlier contract with the customer, signed and completed: not a new customer."""
    contract_id = draft(make_deal(owner, amount=10_000, customer_id=customer_id), owner)
    contract = load(contract_id)
    contract.status, contract.signed_on = "completed", today() - timedelta(days=200)
    db.session.commit()


def submit(contract_id: int, actor: str = "li") -> ApprovalRequest:
    request = contracts.submit_for_review(load(contract_id), user(actor))
    db.session.commit()
    return request


def route_of(request_id: int) -> list[tuple[str | None, str | None, str]]:
    db.session.expire_all()
    request = db.session.get(ApprovalRequest, request_id)
    return [
        (step.approver.username if step.approver else None, step.role_code, step.status)
        for step in request.steps
    ]


def approve_all(request_id: int) -> None:
    """Each reviewer in turn approves (the finance pool through fin)."""
    for _round in range(6):
        db.session.expire_all()
        request = db.session.get(ApprovalRequest, request_id)
        step = approvals.current_step(request)
        if step is None:
            return
        actor = step.approver if step.approver is not None else user("fin")
        approvals.act(request, actor, "approve", "ok")
        db.session.commit()


def approved_contract(amount: int = 100_000, owner: str = "li", **deal: Any) -> int:
    contract_id = draft(make_deal(owner, amount=amount, **deal), owner)
    approve_all(submit(contract_id, owner).id)
    assert load(contract_id).status == "approved"
    return contract_id


def executing_contract(amount: int = 100_000, owner: str = "li", **deal: Any) -> int:
    contract_id = approved_contract(amount, owner, **deal)
    contracts.sign_contract(load(contract_id), user(owner), today())
    db.session.commit()
    return contract_id


def form_data(values: contracts.ContractValues) -> dict[str, str]:
    """The contract form as a browser posts it."""
    data = {
        "title": values.title,
        "starts_on": values.starts_on.isoformat() if values.starts_on else "",
        "ends_on": values.ends_on.isoformat() if values.ends_on else "",
        "payment_terms_days": str(values.payment_terms_days),
        "clauses_note": values.clauses_note,
    }
    if values.non_standard_clauses:
        data["non_standard_clauses"] = "y"
    for code, ticked in values.checklist.items():
        if ticked:
            data[f"checklist-{code}"] = "y"
    for kind, day in values.milestones.items():
        data[f"milestones-{kind}"] = day.isoformat() if day else ""
    for index, row in enumerate(values.instalments):
        data[f"instalments-{index}-due_on"] = row.due_on.isoformat() if row.due_on else ""
        data[f"instalments-{index}-amount"] = (
            f"{row.amount_cents / 100:.2f}" if row.amount_cents is not None else ""
        )
    return data


def text_of(response: Any) -> str:
    return response.get_data(as_text=True)


# -- P3.4.1 a contract only from an accepted quotation ------------------------------------------


@pytest.mark.parametrize(
    "status", ["draft", "pending", "approved", "sent", "rejected", "superseded"]
)
def test_p3_4_1_contract_from_a_quote_not_accepted_is_refused_and_nothing_written(
    app: Any, client: Any, login: Any, people: dict[str, int], api_token: Any, status: str
) -> None:
    with app.app_context():
        quote_id = make_deal(status=status)
        values = contracts.default_values(db.session.get(Quotation, quote_id), today())
    token = api_token("li")
    login(client, "li")
    page = client.get(f"/sales/contracts/new?quote_id={quote_id}")
    assert page.status_code == 409
    assert "only from a quotation the customer accepted" in text_of(page)
    posted = client.post(f"/sales/contracts/new?quote_id={quote_id}", data=form_data(values))
    assert posted.status_code == 409
    api = client.post("/api/v1/sales/contracts", json={"quote_id": quote_id}, headers=_auth(token))
    assert api.status_code == 409
    assert "accepted" in api.get_json()["error"]["message"]
    with app.app_context():
        assert count(Contract) == 0 and count(Milestone) == 0 and count(PaymentInstalment) == 0
        assert count(Counter) == 0  # not even a number was used


def test_p3_4_1_a_new_contract_is_prefilled_from_the_accepted_quotation(
    app: Any, client: Any, login: Any, people: dict[str, int]
) -> None:
    with app.app_context():
        quote_id = make_deal(amount=123_456, terms=45, method="installation")
        values = contracts.default_values(db.session.get(Quotation, quote_id), today())
    login(client, "li")
    page = client.get(f"/sales/contracts/new?quote_id={quote_id}")
    assert page.status_code == 200
    html = text_of(page)
    assert "123,456.00" in html
    assert 'value="45"' in html  # the quotation's payment terms
    # Installation on site: every milestone is planned, from the rule file's offsets.
    assert all(values.milestones[kind] is not None for kind in values.milestones)
    assert values.milestones["delivery"] == today() + timedelta(days=14)
    assert values.milestones["acceptance"] == today() + timedelta(days=35)
    # A deposit (30 %) and the rest after acceptance and the payment terms.
    assert [row.amount_cents for row in values.instalments] == [3_703_680, 8_641_920]
    assert values.instalments[1].due_on == today() + timedelta(days=35 + 45)

    response = client.post(f"/sales/contracts/new?quote_id={quote_id}", data=form_data(values))
    assert response.status_code == 303
    with app.app_context():
        contract = db.session.scalars(sa.select(Contract)).one()
        quotation = db.session.get(Quotation, quote_id)
        assert response.location.endswith(f"/sales/contracts/{contract.id}")
        assert re.fullmatch(r"HT-\d{4}-00001", contract.number)
        assert contract.status == "draft" and contract.amount_cents == 12_345_600
        assert contract.owner_id == people["li"]
        assert (contract.customer_id, contract.opportunity_id) == (
            quotation.customer_id,
            quotation.opportunity_id,
        )
        assert contract.payment_terms_days == 45
        assert sum(row.amount_cents for row in contracts.instalments_of(contract)) == 12_345_600
        assert [row.kind for row in contracts.milestones_of(contract)] == [
            "delivery",
            "installation",
            "commissioning",
            "acceptance",
        ]
    detail = client.get(response.location)
    assert detail.status_code == 200
    assert "123,456.00" in text_of(detail)


def test_p3_4_1_one_contract_per_quotation(
    app: Any, client: Any, login: Any, people: dict[str, int]
) -> None:
    with app.app_context():
        quote_id = make_deal()
        contract_id = draft(quote_id)
        number = load(contract_id).number
        values = contracts.default_values(db.session.get(Quotation, quote_id), today())
    login(client, "li")
    again = client.post(f"/sales/contracts/new?quote_id={quote_id}", data=form_data(values))
    assert again.status_code == 409
    html = text_of(again)
    assert f"Contract {number} was already made from this quotation" in html
    assert f"/sales/contracts/{contract_id}" in html
    with app.app_context():
        assert count(Contract) == 1
        # The database refuses a second one too, whatever the code path.
        first = load(contract_id)
        db.session.add(
            Contract(
                number="HT-TEST-1",
                title="Copy",
                customer_id=first.customer_id,
                quotation_id=first.quotation_id,
                owner_id=first.owner_id,
                amount_cents=1,
            )
        )
        with pytest.raises(sa.exc.IntegrityError):
            db.session.flush()
        db.session.rollback()


def test_p3_4_1_instalments_that_do_not_add_up_are_refused_per_row_and_nothing_written(
    app: Any, client: Any, login: Any, people: dict[str, int]
) -> None:
    with app.app_context():
        quote_id = make_deal(amount=100_000)
        values = contracts.default_values(db.session.get(Quotation, quote_id), today())
    data = form_data(values)
    data["instalments-0-amount"] = "30000.00"
    data["instalments-1-amount"] = "69999.99"  # one fen short
    login(client, "li")
    response = client.post(f"/sales/contracts/new?quote_id={quote_id}", data=data)
    assert response.status_code == 422
    html = text_of(response)
    assert "0.01 short of the contract amount 100,000.00" in html
    assert "Row 1: the rows must add up to the contract amount." in html
    assert "Row 2: the rows must add up to the contract amount." in html

    # Broken rows: each says what is wrong with it, the others keep their input.
    data["instalments-0-amount"] = "12.345"
    data["instalments-1-amount"] = "-5"
    data["instalments-2-due_on"] = ""
    data["instalments-2-amount"] = "100"
    broken = client.post(f"/sales/contracts/new?quote_id={quote_id}", data=data)
    assert broken.status_code == 422
    html = text_of(broken)
    assert "at most two decimals" in html
    assert "Row 2: the amount must be more than zero." in html
    assert "Row 3: give the due date." in html
    # No delivery date: refused on the field.
    data = form_data(values)
    data["milestones-delivery"] = ""
    no_delivery = client.post(f"/sales/contracts/new?quote_id={quote_id}", data=data)
    assert no_delivery.status_code == 422
    assert "Give the delivery date" in text_of(no_delivery)
    with app.app_context():
        assert count(Contract) == 0 and count(PaymentInstalment) == 0


def test_p3_4_1_add_a_row_without_javascript_keeps_the_input(
    app: Any, client: Any, login: Any, people: dict[str, int]
) -> None:
    with app.app_context():
        quote_id = make_deal()
        values = contracts.default_values(db.session.get(Quotation, quote_id), today())
    data = form_data(values) | {"add_instalment": "1", "title": "Kept title"}
    login(client, "li")
    response = client.post(f"/sales/contracts/new?quote_id={quote_id}", data=data)
    assert response.status_code == 200
    html = text_of(response)
    assert 'value="Kept title"' in html
    assert 'name="instalments-2-amount"' in html  # two rows and a new blank one
    with app.app_context():
        assert count(Contract) == 0


# -- P7.3 review before signing ----------------------------------------------------------------


def test_p7_3_an_unticked_checklist_refuses_review_per_field(
    app: Any, client: Any, login: Any, people: dict[str, int]
) -> None:
    with app.app_context():
        contract_id = draft(make_deal(), tick=False)
        contract = load(contract_id)
        contract.checklist = {code: code in ("parties_verified", "scope_clear") for code in ITEMS}
        db.session.commit()
    login(client, "li")
    response = client.post(f"/sales/contracts/{contract_id}/submit", data={})
    assert response.status_code == 422
    html = text_of(response)
    assert html.count("Tick this item: it must be checked before the contract is reviewed.") == 3
    for code in ("price_matches_quote", "delivery_terms", "liability_lawful"):
        assert re.search(rf'name="checklist-{code}"[^>]*class="[^"]*is-invalid', html) or re.search(
            rf'class="[^"]*is-invalid[^"]*"[^>]*name="checklist-{code}"', html
        )
    with app.app_context():
        assert load(contract_id).status == "draft"
        assert count(ApprovalRequest) == 0


def test_p7_3_a_small_contract_with_a_known_customer_goes_to_the_supervisor_only(
    app: Any, client: Any, login: Any, people: dict[str, int]
) -> None:
    with app.app_context():
        quote_id = make_deal(amount=50_000)
        customer_id = db.session.get(Quotation, quote_id).customer_id
        signed_earlier(customer_id)
        contract_id = draft(quote_id)
        facts = contracts.review_facts(load(contract_id))
        assert facts["new_customer"] is False and facts["credit_risk"] == "low"
        request = submit(contract_id)
        assert request.routes == ["supervisor"]
        assert route_of(request.id) == [("sup_east", None, "pending")]
        contract = load(contract_id)
        assert contract.status == "in_review" and contract.approval_request_id == request.id
    # Not editable while in review.
    login(client, "li")
    assert client.get(f"/sales/contracts/{contract_id}/edit").status_code == 409
    assert client.post(f"/sales/contracts/{contract_id}/edit", data={}).status_code == 409
    page = text_of(client.get(f"/sales/contracts/{contract_id}"))
    assert 'data-route="supervisor"' in page and "Submit for review" not in page


def test_p7_3_above_200000_yuan_adds_the_manager_and_a_new_customer_adds_finance(
    app: Any, people: dict[str, int]
) -> None:
    with app.app_context():
        big = make_deal(amount=200_001)
        signed_earlier(db.session.get(Quotation, big).customer_id)
        request = submit(draft(big))
        assert request.routes == ["supervisor", "manager"]
        assert route_of(request.id) == [
            ("sup_east", None, "pending"),
            ("manager", None, "waiting"),
        ]
        exactly = make_deal(amount=200_000)
        signed_earlier(db.session.get(Quotation, exactly).customer_id)
        assert submit(draft(exactly)).routes == ["supervisor"]
        # First contract with this customer: finance reviews too, with the rule's warning.
        fresh = submit(draft(make_deal(amount=80_000)))
        assert fresh.routes == ["supervisor", "finance"]
        assert route_of(fresh.id) == [("sup_east", None, "pending"), (None, "finance", "waiting")]
        messages = contracts.review_messages(db.session.get(ApprovalRequest, fresh.id))
        assert {"kind": "flag", "message": messages[0]["message"]} in messages
        assert "New customer" in messages[0]["message"]


def test_p7_3_a_high_risk_customer_on_credit_is_refused_with_the_rule_files_reason(
    app: Any, client: Any, login: Any, people: dict[str, int]
) -> None:
    with app.app_context():
        contract_id = draft(make_deal(amount=80_000, terms=30, risk="high"))
    login(client, "li")
    page = text_of(client.get(f"/sales/contracts/{contract_id}"))
    assert "The rule file would refuse this contract" in page  # said before submitting
    response = client.post(f"/sales/contracts/{contract_id}/submit", data={})
    assert response.status_code == 303
    with app.app_context():
        contract = load(contract_id)
        request = db.session.get(ApprovalRequest, contract.approval_request_id)
        assert contract.status == "rejected" and request.status == "rejected"
        assert request.reason == HIGH_RISK_MESSAGE and request.steps == []
    page = text_of(client.get(f"/sales/contracts/{contract_id}"))
    assert HIGH_RISK_MESSAGE in page
    assert 'data-status="rejected"' in page
    # Prepaid instead: the rejected contract is changed and reviewed by manager and finance.
    with app.app_context():
        values = contracts.values_of(load(contract_id))
        values.payment_terms_days = 0
    response = client.post(
        f"/sales/contracts/{contract_id}/edit", data=form_data(values) | {"submit_review": "1"}
    )
    assert response.status_code == 303
    with app.app_context():
        contract = load(contract_id)
        assert contract.status == "in_review"
        again = db.session.get(ApprovalRequest, contract.approval_request_id)
        assert again.routes == ["supervisor", "manager", "finance"]


def _with_manager_threshold(source: str, yuan: int) -> str:
    """The shipped contract_review with another manager threshold; its own test cases
    pin the shipped number, so the changed version goes out with the cases that still
    hold (publishing runs them)."""
    old = "manager_review_above: {type: money, value: 200000,"
    assert old in source
    changed = source.replace(old, f"manager_review_above: {{type: money, value: {yuan},")
    head, _sep, tests = changed.partition("\ntests:\n")
    cases = tests.split("\n  - name: ")
    kept = [cases[0]] + [c for c in cases[1:] if "200,000" not in c and "200000" not in c]
    return head + "\ntests:\n" + "\n  - name: ".join(kept)


def test_p7_3_publishing_another_manager_threshold_reroutes_without_a_code_change(
    app: Any, people: dict[str, int]
) -> None:
    with app.app_context():
        before = make_deal(amount=150_000)
        signed_earlier(db.session.get(Quotation, before).customer_id)
        first = submit(draft(before))
        assert first.routes == ["supervisor"]
        version = first.rule_version

        source = rules().active("contract_review").rule_file.source
        rules().publish(
            "contract_review", _with_manager_threshold(source, 100_000), "cli", write_file=False
        )

        after = make_deal(amount=150_000)
        signed_earlier(db.session.get(Quotation, after).customer_id)
        second = submit(draft(after))
        assert second.routes == ["supervisor", "manager"]
        assert second.rule_version == version + 1
        assert route_of(second.id)[1] == ("manager", None, "waiting")
        # The earlier request keeps the version that routed it.
        assert db.session.get(ApprovalRequest, first.id).rule_version == version


def test_p7_3_reviewers_approve_in_turn_and_the_owner_is_told(
    app: Any, client: Any, login: Any, people: dict[str, int]
) -> None:
    with app.app_context():
        contract_id = draft(make_deal(amount=250_000))  # new customer: supervisor, manager, finance
        request = submit(contract_id)
        assert request.routes == ["supervisor", "manager", "finance"]
        approvals.act(request, user("sup_east"), "approve", "Terms fine")
        db.session.commit()
        assert load(contract_id).status == "in_review"
        approve_all(request.id)
        contract = load(contract_id)
        assert contract.status == "approved"
        told = db.session.scalars(
            sa.select(Notification).where(
                Notification.user_id == people["li"], Notification.kind == "sales.contract_decided"
            )
        ).all()
        assert len(told) == 1 and contract.number in told[0].title
        assert told[0].link == f"/sales/contracts/{contract_id}"


def test_p7_3_returned_for_changes_goes_back_to_draft_and_is_sent_again_as_a_new_round(
    app: Any, people: dict[str, int]
) -> None:
    with app.app_context():
        quote_id = make_deal(amount=50_000)
        signed_earlier(db.session.get(Quotation, quote_id).customer_id)
        contract_id = draft(quote_id)
        request = submit(contract_id)
        approvals.act(request, user("sup_east"), "return", "Add the warranty clause")
        db.session.commit()
        assert load(contract_id).status == "draft"
        again = submit(contract_id)
        assert again.id == request.id and again.round == 2
        assert load(contract_id).status == "in_review"
        approvals.act(db.session.get(ApprovalRequest, request.id), user("sup_east"), "reject", "No")
        db.session.commit()
        assert load(contract_id).status == "rejected"


# -- P3.4.2 signing and execution --------------------------------------------------------------


def test_p3_4_2_signing_raises_milestone_and_payment_loops_and_wins_the_customer(
    app: Any, client: Any, login: Any, people: dict[str, int]
) -> None:
    with app.app_context():
        contract_id = approved_contract(amount=100_000, method="installation")
        contract = load(contract_id)
        customer_id, opportunity_id = contract.customer_id, contract.opportunity_id
        assert db.session.get(Customer, customer_id).stage == "prospect"
    login(client, "li")
    future = client.post(
        f"/sales/contracts/{contract_id}/sign",
        data={"sign-signed_on": (today() + timedelta(days=1)).isoformat()},
    )
    assert future.status_code == 422
    assert "cannot be in the future" in text_of(future)
    with app.app_context():
        assert load(contract_id).status == "approved" and count(LoopItem) == 0

    response = client.post(
        f"/sales/contracts/{contract_id}/sign", data={"sign-signed_on": today().isoformat()}
    )
    assert response.status_code == 303
    with app.app_context():
        contract = load(contract_id)
        assert contract.status == "executing" and contract.signed_on == today()
        milestones = contracts.milestones_of(contract)
        plan = contracts.instalments_of(contract)
        items = contracts.loop_items_by_id([m.loop_item_id for m in milestones + plan])
        assert len(milestones) == 4 and len(plan) == 2
        for row in milestones:
            item = items[row.loop_item_id]
            assert item.type == "sales.milestone" and item.owner_id == people["li"]
            assert (item.subject_table, item.subject_id) == ("sales_contract", str(contract_id))
            assert item.due_at.astimezone(portal_zone()).date() == row.due_on
            assert contract.number in item.title
        for row in plan:
            item = items[row.loop_item_id]
            assert item.type == "sales.payment" and item.owner_id == people["li"]
            assert item.due_at.astimezone(portal_zone()).date() == max(row.due_on, today())
        assert db.session.get(Customer, customer_id).stage == "customer"
        assert db.session.get(Opportunity, opportunity_id).status == "won"
    page = text_of(client.get(f"/sales/contracts/{contract_id}"))
    assert page.count('data-testid="loop-status"') >= 6
    assert "Mark done" in page


def test_p3_4_2_payments_partial_then_full_close_the_loop_and_overpayment_is_refused(
    app: Any, client: Any, login: Any, people: dict[str, int]
) -> None:
    with app.app_context():
        contract_id = executing_contract(amount=100_000)
        first, second = contracts.instalments_of(load(contract_id))
        assert (first.amount_cents, second.amount_cents) == (3_000_000, 7_000_000)
        first_id, first_item = first.id, first.loop_item_id
    url = f"/sales/contracts/{contract_id}/payments"
    day = today().isoformat()
    login(client, "li")  # a salesperson does not record payments
    assert (
        client.post(url, data={"payment-amount": "10", "payment-received_on": day}).status_code
        == 403
    )

    finance = client.application.test_client()
    login(finance, "fin")
    part = finance.post(url, data={"payment-amount": "10000", "payment-received_on": day})
    assert part.status_code == 303
    with app.app_context():
        assert db.session.get(PaymentInstalment, first_id).paid_cents == 1_000_000
        assert db.session.get(LoopItem, first_item).status in ("open", "in_progress")
    too_much = finance.post(
        url,
        data={
            "payment-amount": "20000.01",
            "payment-received_on": day,
            "payment-instalment_id": str(first_id),
        },
    )
    assert too_much.status_code == 422
    assert "At most 20,000.00 is outstanding" in text_of(too_much)
    over_all = finance.post(url, data={"payment-amount": "90000.01", "payment-received_on": day})
    assert over_all.status_code == 422
    future = finance.post(
        url,
        data={
            "payment-amount": "1",
            "payment-received_on": (today() + timedelta(days=2)).isoformat(),
        },
    )
    assert future.status_code == 422
    bad = finance.post(url, data={"payment-amount": "abc", "payment-received_on": day})
    assert bad.status_code == 422
    with app.app_context():
        assert db.session.get(PaymentInstalment, first_id).paid_cents == 1_000_000
    rest = finance.post(url, data={"payment-amount": "20000", "payment-received_on": day})
    assert rest.status_code == 303
    with app.app_context():
        row = db.session.get(PaymentInstalment, first_id)
        assert row.paid_cents == row.amount_cents and row.paid_at is not None
        item = db.session.get(LoopItem, first_item)
        assert item.status in ("done", "verified")
        assert "Paid in full" in item.closure_note and "Fin" in item.closure_note


def test_p3_4_2_delivery_done_raises_the_satisfaction_check_which_the_form_closes(
    app: Any, client: Any, login: Any, people: dict[str, int]
) -> None:
    with app.app_context():
        contract_id = executing_contract()
        delivery = contracts.milestones_of(load(contract_id))[0]
        assert delivery.kind == "delivery"
        delivery_id, delivery_item = delivery.id, delivery.loop_item_id
        delay = contracts.satisfaction_delay_days()
        assert delay == 7  # rules/contract_execution.yaml
    login(client, "li")
    url = f"/sales/contracts/{contract_id}/milestones/{delivery_id}/done"
    no_note = client.post(url, data={f"m{delivery_id}-note": ""})
    assert no_note.status_code == 422
    assert "a closing note is required" in text_of(no_note)
    done = client.post(url, data={f"m{delivery_id}-note": "Delivered, note signed by the buyer"})
    assert done.status_code == 303
    with app.app_context():
        contract = load(contract_id)
        assert db.session.get(Milestone, delivery_id).done_at is not None
        assert db.session.get(LoopItem, delivery_item).status in ("done", "verified")
        check = db.session.get(LoopItem, contract.satisfaction_loop_id)
        assert check.type == "sales.satisfaction" and check.owner_id == people["li"]
        assert check.due_at.astimezone(portal_zone()).date() == today() + timedelta(days=delay)
    assert client.post(url, data={f"m{delivery_id}-note": "again"}).status_code == 409

    low = client.post(
        f"/sales/contracts/{contract_id}/satisfaction", data={"satisfaction-score": "2"}
    )
    assert low.status_code == 422 and "A low score needs a note" in text_of(low)
    answer = client.post(
        f"/sales/contracts/{contract_id}/satisfaction",
        data={"satisfaction-score": "4", "satisfaction-note": "Happy with the installation"},
    )
    assert answer.status_code == 303
    with app.app_context():
        contract = load(contract_id)
        assert contract.satisfaction_score == 4
        assert db.session.get(LoopItem, contract.satisfaction_loop_id).status in (
            "done",
            "verified",
        )


def test_p3_4_2_a_milestone_closed_from_its_loop_item_counts_as_done(
    app: Any, client: Any, login: Any, people: dict[str, int]
) -> None:
    from portal.loops import service as loops

    with app.app_context():
        contract_id = executing_contract()
        delivery = contracts.milestones_of(load(contract_id))[0]
        item = db.session.get(LoopItem, delivery.loop_item_id)
        loops.close(item, user("li"), "Delivered (closed from My work)")
        db.session.commit()
        # The plugin's core.loop_changed handler marked the milestone done at once and
        # started the satisfaction check.
        contract = load(contract_id)
        assert db.session.get(Milestone, delivery.id).done_at is not None
        assert contract.satisfaction_loop_id is not None
        contracts.sync_from_loop(delivery.loop_item_id)  # a second call is harmless
        db.session.commit()
        assert count(LoopItem) == 2 + 2 + 1  # delivery, acceptance, two instalments, the check


def test_p3_4_2_completed_only_when_every_milestone_is_done_and_everything_paid(
    app: Any, client: Any, login: Any, people: dict[str, int]
) -> None:
    with app.app_context():
        contract_id = executing_contract(amount=10_000)
    login(client, "li")
    early = client.post(f"/sales/contracts/{contract_id}/complete", data={})
    assert early.status_code == 409
    assert "still to be paid" in text_of(early)
    with app.app_context():
        contract = load(contract_id)
        for row in contracts.milestones_of(contract):
            contracts.mark_milestone_done(contract, row, user("li"), "done")
        contracts.record_payment(contract, user("fin"), 1_000_000, today())
        db.session.commit()
    response = client.post(f"/sales/contracts/{contract_id}/complete", data={})
    assert response.status_code == 303
    with app.app_context():
        contract = load(contract_id)
        assert contract.status == "completed" and contract.completed_at is not None


def test_p3_4_1_only_an_unsigned_contract_is_cancelled_and_with_a_reason(
    app: Any, client: Any, login: Any, people: dict[str, int]
) -> None:
    with app.app_context():
        unsigned = draft(make_deal())
        running = executing_contract()
    login(client, "li")
    empty = client.post(f"/sales/contracts/{unsigned}/cancel", data={"cancel-reason": " "})
    assert empty.status_code == 422
    done = client.post(
        f"/sales/contracts/{unsigned}/cancel", data={"cancel-reason": "Customer chose to wait"}
    )
    assert done.status_code == 303
    refused = client.post(f"/sales/contracts/{running}/cancel", data={"cancel-reason": "Oops"})
    assert refused.status_code == 409
    with app.app_context():
        assert load(unsigned).status == "cancelled"
        assert load(unsigned).cancel_reason == "Customer chose to wait"
        assert load(running).status == "executing"


def test_p3_4_a_stale_page_is_a_conflict_not_an_overwrite(
    app: Any, client: Any, login: Any, people: dict[str, int]
) -> None:
    with app.app_context():
        contract_id = draft(make_deal())
        version = load(contract_id).lock_version
        contract = load(contract_id)
        contract.title = "Changed elsewhere"
        db.session.commit()
    login(client, "li")
    response = client.post(
        f"/sales/contracts/{contract_id}/cancel",
        data={"cancel-reason": "x", "cancel-version": str(version)},
    )
    assert response.status_code == 409
    # With htmx (which swaps no 409) the page is reloaded with the message.
    boosted = client.post(
        f"/sales/contracts/{contract_id}/cancel",
        data={"cancel-reason": "x", "cancel-version": str(version)},
        headers={"HX-Request": "true"},
    )
    assert boosted.status_code == 409
    assert boosted.headers["HX-Redirect"] == f"/sales/contracts/{contract_id}"
    with app.app_context():
        assert load(contract_id).status == "draft"


# -- scope, lists, API ----------------------------------------------------------------------------


def test_p3_4_li_never_sees_wangs_contract_in_list_detail_or_api(
    app: Any, client: Any, login: Any, people: dict[str, int], api_token: Any
) -> None:
    with app.app_context():
        wang_quote = make_deal(owner="wang")
        wang_contract = draft(wang_quote, actor="wang")
        wang_number = load(wang_contract).number
        mine = draft(make_deal(owner="li"))
        my_number = load(mine).number
    token = api_token("li")
    login(client, "li")
    listing = text_of(client.get("/sales/contracts/"))
    assert my_number in listing and wang_number not in listing
    searched = text_of(client.get(f"/sales/contracts/?q={wang_number}"))
    assert searched.count("data-contract-id=") == 0
    assert client.get(f"/sales/contracts/{wang_contract}").status_code == 404
    assert client.get(f"/sales/contracts/{wang_contract}/edit").status_code == 404
    assert client.post(f"/sales/contracts/{wang_contract}/submit", data={}).status_code == 404
    assert client.get(f"/sales/contracts/new?quote_id={wang_quote}").status_code == 404
    api = client.get("/api/v1/sales/contracts", headers=_auth(token)).get_json()
    assert [item["number"] for item in api["items"]] == [my_number]
    assert (
        client.get(f"/api/v1/sales/contracts/{wang_contract}", headers=_auth(token)).status_code
        == 404
    )
    assert (
        client.post(
            f"/api/v1/sales/contracts/{wang_contract}/submit", json={}, headers=_auth(token)
        ).status_code
        == 404
    )
    # Their supervisor sees both.
    boss = client.application.test_client()
    login(boss, "sup_east")
    both = text_of(boss.get("/sales/contracts/"))
    assert my_number in both and wang_number in both
    only_wang = text_of(boss.get(f"/sales/contracts/?owner={people['wang']}"))
    assert wang_number in only_wang and my_number not in only_wang


def test_p3_4_the_contract_list_filters_and_its_statements_stay_flat(
    app: Any, client: Any, login: Any, people: dict[str, int]
) -> None:
    with app.app_context():
        for _n in range(2):
            draft(make_deal())
    login(client, "li")
    few = count_statements(app, client, "/sales/contracts/")
    with app.app_context():
        for _n in range(10):
            draft(make_deal())
        signed = executing_contract()
        signed_number = load(signed).number
    many = count_statements(app, client, "/sales/contracts/")
    assert many == few
    month = today().strftime("%Y-%m")
    filtered = text_of(client.get(f"/sales/contracts/?status=executing&month={month}"))
    assert signed_number in filtered and filtered.count("data-contract-id=") == 1
    assert text_of(client.get("/sales/contracts/?status=completed")).count("data-contract-id=") == 0


def test_p3_4_the_customer_page_lists_the_customers_contracts_in_scope(
    app: Any, client: Any, login: Any, people: dict[str, int]
) -> None:
    with app.app_context():
        quote_id = make_deal()
        customer_id = db.session.get(Quotation, quote_id).customer_id
        mine = load(draft(quote_id)).number
        # A colleague's contract with the same customer stays out of li's view.
        theirs = load(draft(make_deal(owner="wang", customer_id=customer_id), "wang")).number
    login(client, "li")
    page = client.get(f"/sales/customers/{customer_id}")
    assert page.status_code == 200
    html = text_of(page)
    assert 'data-testid="customer-contracts"' in html
    assert mine in html and theirs not in html


def test_p3_4_api_creates_submits_signs_and_records_payments(
    app: Any, client: Any, people: dict[str, int], api_token: Any
) -> None:
    with app.app_context():
        quote_id = make_deal(amount=50_000, terms=0)
        signed_earlier(db.session.get(Quotation, quote_id).customer_id)
    li, fin = _auth(api_token("li")), _auth(api_token("fin"))
    bad = client.post(
        "/api/v1/sales/contracts",
        json={
            "quote_id": quote_id,
            "instalments": [{"due_on": today().isoformat(), "amount": "1"}],
        },
        headers=li,
    )
    assert bad.status_code == 422
    assert "instalments-0-amount" in bad.get_json()["error"]["fields"]
    created = client.post(
        "/api/v1/sales/contracts",
        json={"quote_id": quote_id, "checklist": dict.fromkeys(ITEMS, True)},
        headers=li,
    )
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    contract_id = body["id"]
    assert body["amount"] == "50000.00" and body["status"] == "draft"
    assert sum(float(row["amount"]) for row in body["instalments"]) == 50000.0
    submitted = client.post(f"/api/v1/sales/contracts/{contract_id}/submit", json={}, headers=li)
    assert submitted.status_code == 200 and submitted.get_json()["status"] == "in_review"
    assert submitted.get_json()["review"]["routes"] == ["supervisor"]
    with app.app_context():
        approve_all(load(contract_id).approval_request_id)
    future = (today() + timedelta(days=3)).isoformat()
    refused = client.post(
        f"/api/v1/sales/contracts/{contract_id}/sign", json={"signed_on": future}, headers=li
    )
    assert refused.status_code == 422 and "signed_on" in refused.get_json()["error"]["fields"]
    signed = client.post(
        f"/api/v1/sales/contracts/{contract_id}/sign",
        json={"signed_on": today().isoformat()},
        headers=li,
    )
    assert signed.status_code == 200 and signed.get_json()["status"] == "executing"
    assert all(row["loop_status"] == "open" for row in signed.get_json()["milestones"])
    pay = {"amount": "100.00", "received_on": today().isoformat()}
    assert (
        client.post(
            f"/api/v1/sales/contracts/{contract_id}/payments", json=pay, headers=li
        ).status_code
        == 403
    )
    paid = client.post(f"/api/v1/sales/contracts/{contract_id}/payments", json=pay, headers=fin)
    assert paid.status_code == 200 and paid.get_json()["outstanding"] == "49900.00"
    over = client.post(
        f"/api/v1/sales/contracts/{contract_id}/payments",
        json={"amount": "49900.01", "received_on": today().isoformat()},
        headers=fin,
    )
    assert over.status_code == 422 and "amount" in over.get_json()["error"]["fields"]
    detail = client.get(f"/api/v1/sales/contracts/{contract_id}", headers=li).get_json()
    assert detail["outstanding"] == "49900.00"


def test_p3_4_every_contract_form_carries_csrf_and_the_templates_keep_the_csp(
    make_app: Any, people: dict[str, int], login: Any
) -> None:
    from pathlib import Path

    app = make_app(WTF_CSRF_ENABLED=True)
    with app.app_context():
        contract_id = draft(make_deal())
    client = app.test_client()
    page = client.get("/login")
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', text_of(page))
    assert token is not None
    client.post(
        "/login",
        data={"username": "li", "password": "correct-horse-42", "csrf_token": token.group(1)},
    )
    html = text_of(client.get(f"/sales/contracts/{contract_id}"))
    forms = re.findall(r"<form method=\"post\".*?</form>", html, re.S)
    assert len(forms) >= 3 and all(re.search(r'name="[a-z-]*csrf_token"', f) for f in forms)
    refused = client.post(f"/sales/contracts/{contract_id}/cancel", data={"cancel-reason": "x"})
    assert refused.status_code == 400
    with app.app_context():
        assert load(contract_id).status == "draft"
    folder = Path(contracts.__file__).parent / "templates" / "sales" / "contracts"
    for template in folder.glob("*.html"):
        text = template.read_text(encoding="utf-8")
        assert "style=" not in text and "<script" not in text and "hx-on" not in text, template


# -- found in review -------------------------------------------------------------------------------


def test_p7_3_a_contract_refused_at_once_a_second_time_is_rejected_not_stuck_in_review(
    app: Any, people: dict[str, int]
) -> None:
    """Resubmitted unchanged, the high-risk contract on credit is refused at once again by
    the new request: the contract follows it (rejected, editable), instead of waiting in
    review for a request that was already decided."""
    with app.app_context():
        contract_id = draft(make_deal(amount=80_000, terms=30, risk="high"))
        first = submit(contract_id)
        assert (first.status, load(contract_id).status) == ("rejected", "rejected")
        second = submit(contract_id)
        contract = load(contract_id)
        assert second.id != first.id and second.status == "rejected"
        assert (contract.status, contract.approval_request_id) == ("rejected", second.id)
        contracts.update_contract(contract, user("li"), contracts.values_of(contract))


def test_p3_4_2_a_payment_of_1e30_yuan_is_refused_per_field_not_a_server_error(
    app: Any, client: Any, login: Any, people: dict[str, int]
) -> None:
    with app.app_context():
        contract_id = executing_contract(amount=100_000)
    login(client, "fin")
    for amount in ("1e30", "1e309"):
        response = client.post(
            f"/sales/contracts/{contract_id}/payments",
            data={"payment-amount": amount, "payment-received_on": today().isoformat()},
        )
        assert response.status_code == 422, amount
        assert "The amount is too large." in text_of(response)
    with app.app_context():
        assert all(row.paid_cents == 0 for row in contracts.instalments_of(load(contract_id)))


def test_p3_4_1_a_cancelled_contract_frees_its_quotation_to_be_revised_and_contracted_again(
    app: Any, client: Any, login: Any, people: dict[str, int]
) -> None:
    """One contract per quotation and one accepted quotation per opportunity: without
    this, cancelling the contract left the deal unable to get any contract again."""
    from plugins.sales import quotes
    from plugins.sales.models import NegotiationNote

    with app.app_context():
        quote_id = make_deal()
        contract_id = draft(quote_id)
    login(client, "li")
    done = client.post(
        f"/sales/contracts/{contract_id}/cancel", data={"cancel-reason": "Scope changes"}
    )
    assert done.status_code == 303
    with app.app_context():
        quotation = db.session.get(Quotation, quote_id)
        assert quotation.status == "declined"
        notes = db.session.scalars(
            sa.select(NegotiationNote.body).where(NegotiationNote.quotation_id == quote_id)
        ).all()
        assert any("Scope changes" in note for note in notes)
        fresh = quotes.revise(quotation, user("li"))
        quotes.submit_for_approval(fresh, user("li"))
        quotes.record_answer(fresh, "sent", user("li"))
        quotes.record_answer(fresh, "accepted", user("li"))
        db.session.commit()
        again = draft(fresh.id)
        assert load(again).status == "draft" and load(again).quotation_id == fresh.id


def test_p3_4_2_the_suggested_deposit_rounds_half_a_fen_up_like_every_amount(
    app: Any, people: dict[str, int]
) -> None:
    """30 % of 100.15 yuan is 30.045 yuan: 30.05 (half up, as money.py rounds), not the
    banker's 30.04; the rest makes the plan add up to the contract amount."""
    with app.app_context():
        quotation = db.session.get(Quotation, make_deal(amount=100))
        quotation.total_cents = 10_015
        plan = contracts.default_values(quotation, today()).instalments
        assert [row.amount_cents for row in plan] == [3_005, 7_010]
