"""P3.3 quotation and negotiation: the product list, quotations made from an
opportunity (lines, exact totals, margin), the discount approval routed by
rules/discount_approval.yaml through the core approvals, versions, negotiation notes,
the customer's answer, the printable quotation, scope, the API and bad input.

Organisation (``org``): manager > sup_east (East) > Shanghai: li, wang;
sup_south (South) > Guangzhou: zhao; admin; auditor.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask_babel import force_locale
from flask_babel import gettext as babel_gettext

from plugins.sales import quotes
from plugins.sales.models import (
    Counter,
    Customer,
    NegotiationNote,
    Opportunity,
    Product,
    Quotation,
    QuoteLine,
)
from portal.audit.recorder import acting_as
from portal.auth.models import User
from portal.extensions import db
from portal.loops import approvals
from portal.loops.models import ApprovalRequest, Notification
from portal.loops.service import local_today
from portal.org.services import ValidationFailed
from portal.rules.service import rules
from portal.testing import count_statements

# -- set-up ----------------------------------------------------------------------------------


def person(name: str) -> User:
    return db.session.scalars(sa.select(User).where(User.username == name)).one()


@pytest.fixture
def deals(app: Any, org: dict[str, int]) -> dict[str, int]:
    """Two products, a customer and an open opportunity each for li and wang."""
    ids: dict[str, int] = {}
    with app.app_context(), acting_as("test"):
        server = Product(
            code="SRV-100",
            name="Edge server",
            category="Hardware",
            unit="set",
            list_price_cents=1_000_000,
            cost_cents=600_000,
        )
        licence = Product(
            code="LIC-1Y",
            name="Monitoring licence, one year",
            category="Software",
            unit="year",
            list_price_cents=250_000,
            cost_cents=50_000,
        )
        db.session.add_all([server, licence])
        for owner in ("li", "wang"):
            customer = Customer(
                owner_id=org[owner],
                stage="prospect",
                name=f"{owner.title()} Precision Ltd",
                name_key=f"{owner}precisionltd",
                phone="021-5555-0101",
                address="88 Huaihai Road, Shanghai",
            )
            db.session.add(customer)
            db.session.flush()
            opportunity = Opportunity(
                owner_id=org[owner],
                customer_id=customer.id,
                name=f"Line automation for {owner}",
                stage="proposal",
            )
            db.session.add(opportunity)
            db.session.flush()
            ids[f"{owner}_customer"] = customer.id
            ids[f"{owner}_opportunity"] = opportunity.id
        db.session.commit()
        ids["server"], ids["licence"] = server.id, licence.id
    return ids


def signed_in(username: str) -> User:
    """A person to log in inside a test request (partials read ``current_user``)."""
    user = person(username)
    user.login_session_key = f"test-{username}"
    return user


def client_of(app: Any, login: Any, username: str) -> Any:
    client = app.test_client()
    login(client, username)
    return client


def auth(api_token: Any, username: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_token(username)}"}


def valid_day(days: int = 30) -> str:
    return (local_today() + timedelta(days=days)).isoformat()


def form_data(lines: list[dict[str, str]], **header: str) -> dict[str, str]:
    """The quotation form as a browser posts it."""
    data = {
        "valid_until": valid_day(),
        "delivery_method": "courier",
        "delivery_note": "Delivered to the plant in Kunshan",
        "payment_terms": "30 % on order, 70 % on acceptance",
        "payment_terms_days": "30",
        "notes": "",
        "action": "save",
    }
    data.update(header)
    for index, line in enumerate(lines):
        for key, value in line.items():
            data[f"lines-{index}-{key}"] = value
    return data


def server_line(discount: str = "0", **extra: str) -> dict[str, str]:
    return {"product_id": "", "quantity": "1", "discount": discount, **extra}


def make_quote(
    app: Any,
    deals: dict[str, int],
    owner: str = "li",
    discount: str = "0",
    quantity: int = 2,
    by: str | None = None,
) -> int:
    """A draft: ``quantity`` edge servers (list 10,000.00, cost 6,000.00) at ``discount`` %."""
    with app.test_request_context(), acting_as("test"):
        actor = person(by or owner)
        opportunity = db.session.get(Opportunity, deals[f"{owner}_opportunity"])
        quote = quotes.create_quotation(
            opportunity,
            {"valid_until": valid_day(), "delivery_method": "courier", "payment_terms_days": "30"},
            [
                {
                    "product_id": str(deals["server"]),
                    "quantity": str(quantity),
                    "discount": discount,
                }
            ],
            actor,
        )
        db.session.commit()
        return quote.id


def submit(app: Any, quote_id: int, username: str = "li") -> str:
    with app.test_request_context(), acting_as("test"):
        quote = db.session.get(Quotation, quote_id)
        quotes.submit_for_approval(quote, person(username))
        db.session.commit()
        return quote.status


def decide(app: Any, quote_id: int, username: str, action: str, comment: str = "") -> str:
    """An approver acts on the quotation's approval request (as the approvals page does)."""
    with app.test_request_context(), acting_as("test"):
        quote = db.session.get(Quotation, quote_id)
        request = db.session.get(ApprovalRequest, quote.approval_request_id)
        approvals.act(request, person(username), action, comment)
        db.session.commit()
        db.session.refresh(quote)
        return quote.status


def load(app: Any, quote_id: int) -> Quotation:
    with app.app_context():
        quote = db.session.get(Quotation, quote_id)
        db.session.expunge(quote)
        return quote


def counts(app: Any) -> tuple[int, int]:
    with app.app_context():
        return (
            db.session.scalar(sa.select(sa.func.count()).select_from(Quotation)),
            db.session.scalar(sa.select(sa.func.count()).select_from(QuoteLine)),
        )


# -- arithmetic ------------------------------------------------------------------------------


def test_p3_3_totals_discount_and_margin_are_exact_to_the_fen(app: Any, deals: Any) -> None:
    with app.test_request_context():
        lines = quotes.parse_lines(
            [
                # A free line: 3 x 333.33 less 7.5 % = 924.99075 -> 924.99 (half up)
                {
                    "description": "Commissioning, per day",
                    "quantity": "3",
                    "unit_price": "333.33",
                    "unit_cost": "100",
                    "discount": "7.5",
                },
                # A product line sold below its list price: the cut counts as discount.
                {"product_id": str(deals["server"]), "quantity": "1", "unit_price": "9500"},
                {"description": "", "unit_price": "", "quantity": "1"},  # blank row: skipped
            ]
        )
        assert [line.total_cents for line in lines] == [92_499, 950_000]
        assert lines[1].unit_cost_cents == 600_000  # from the product list, not the form
        assert lines[1].description == "Edge server"
        totals = quotes.compute_totals(lines)
    assert totals.list_total_cents == 99_999 + 1_000_000
    assert totals.total_cents == 92_499 + 950_000
    assert totals.cost_total_cents == 30_000 + 600_000
    # 1 - 1,042,499 / 1,099,999 = 5.2273 % ; (1,042,499 - 630,000) / 1,042,499 = 39.5683 %
    assert totals.discount_bp == 523
    assert totals.margin_bp == 3957
    assert quotes.line_total_cents(1, 1, 5000) == 1  # 0.5 fen rounds up
    assert quotes.line_total_cents(7, 14_285, 0) == 99_995


def test_p3_3_the_quotation_page_computes_and_stores_the_totals(
    app: Any, org: Any, deals: Any, login: Any
) -> None:
    client = client_of(app, login, "li")
    url = f"/sales/quotes/new?opportunity_id={deals['li_opportunity']}"
    page = client.get(url)
    assert page.status_code == 200
    assert page.text.count('data-testid="quote-line-row"') == 3  # blank rows without JS
    response = client.post(
        url,
        data=form_data(
            [
                {"product_id": str(deals["server"]), "quantity": "2", "discount": "4"},
                {
                    "description": "Training",
                    "quantity": "1",
                    "unit_price": "1,200.50",
                    "unit_cost": "300",
                },
            ]
        ),
    )
    assert response.status_code == 303, response.text
    with app.app_context():
        quote = db.session.scalars(sa.select(Quotation)).one()
        assert quote.number == f"QT-{local_today().year}-00001"
        assert (quote.version, quote.root_id, quote.status) == (1, quote.id, "draft")
        assert quote.owner_id == org["li"]
        assert [line.total_cents for line in quote.lines] == [1_920_000, 120_050]
        assert quote.list_total_cents == 2_120_050
        assert quote.total_cents == 2_040_050
        assert quote.cost_total_cents == 1_230_000
        assert quote.discount_bp == 377  # 80,000 / 2,120,050
        assert quote.margin_bp == 3971  # 810,050 / 2,040,050
        quote_id = quote.id
    detail = client.get(f"/sales/quotes/{quote_id}")
    assert detail.status_code == 200
    assert "20,400.50" in detail.text
    assert "3.77 %" in detail.text


# -- the discount approval (rules/discount_approval.yaml) ----------------------------------


def test_p3_3_a_five_percent_discount_needs_no_approval(app: Any, deals: Any, login: Any) -> None:
    quote_id = make_quote(app, deals, discount="5")
    client = client_of(app, login, "li")
    response = client.post(f"/sales/quotes/{quote_id}/submit")
    assert response.status_code == 303
    quote = load(app, quote_id)
    assert quote.status == "approved"
    with app.app_context():
        request = db.session.get(ApprovalRequest, quote.approval_request_id)
        assert (request.status, request.rule_id, request.steps) == (
            "approved",
            "within-authority#1",
            [],
        )
        assert request.facts["requested_by"] == "salesperson"
        assert request.facts["discount_pct"] == "5.0"
    page = client.get(f"/sales/quotes/{quote_id}").text
    assert f'href="/approvals/{quote.approval_request_id}"' in page
    assert "Mark as sent" in page


def test_p3_3_over_threshold_goes_to_the_supervisor_whose_approval_approves_it(
    app: Any, org: Any, deals: Any, login: Any
) -> None:
    quote_id = make_quote(app, deals, discount="8")
    assert submit(app, quote_id) == "pending"
    with app.app_context():
        quote = db.session.get(Quotation, quote_id)
        request = db.session.get(ApprovalRequest, quote.approval_request_id)
        assert [step.approver.username for step in request.steps] == ["sup_east"]
        assert request.facts["gross_margin_pct"] == "34.7"  # 1 - 6000 / 9200, rounded down
    client = client_of(app, login, "li")
    # Locked while it waits: no change, no second submission.
    assert client.get(f"/sales/quotes/{quote_id}/edit").status_code == 302
    changed = client.post(
        f"/sales/quotes/{quote_id}/edit",
        data=form_data([{"product_id": str(deals["server"]), "quantity": "1"}]),
    )
    assert changed.status_code == 409
    assert client.post(f"/sales/quotes/{quote_id}/submit").status_code == 409
    page = client.get(f"/sales/quotes/{quote_id}").text
    assert 'data-testid="approval-step" data-status="pending"' in page
    assert "Sup_East" in page

    assert decide(app, quote_id, "sup_east", "approve") == "approved"
    with app.app_context():
        told = db.session.scalars(
            sa.select(Notification).where(Notification.kind == "sales.quote_decided")
        ).all()
        assert [(n.user_id, n.link) for n in told] == [(org["li"], f"/sales/quotes/{quote_id}")]
    assert load(app, quote_id).decided_at is not None


def test_p3_3_the_approver_rejects_or_returns_for_changes(app: Any, deals: Any, login: Any) -> None:
    rejected = make_quote(app, deals, discount="9")
    submit(app, rejected)
    assert decide(app, rejected, "sup_east", "reject", "Too low for a first order") == "rejected"
    client = client_of(app, login, "li")
    page = client.get(f"/sales/quotes/{rejected}").text
    assert "Too low for a first order" in page
    assert 'data-testid="revise-quote"' in page

    returned = make_quote(app, deals, discount="9")
    submit(app, returned)
    assert decide(app, returned, "sup_east", "return", "Add the installation line") == "draft"
    # Back to draft: li changes it and sends the same request again (a new round).
    changed = client.post(
        f"/sales/quotes/{returned}/edit",
        data=form_data(
            [
                {"product_id": str(deals["server"]), "quantity": "2", "discount": "9"},
                {"description": "Installation", "quantity": "1", "unit_price": "800"},
            ],
            lock_version=str(load(app, returned).lock_version),
        ),
    )
    assert changed.status_code == 303, changed.text
    first_request = load(app, returned).approval_request_id
    assert client.post(f"/sales/quotes/{returned}/submit").status_code == 303
    quote = load(app, returned)
    assert (quote.status, quote.approval_request_id) == ("pending", first_request)
    with app.app_context():
        assert db.session.get(ApprovalRequest, first_request).round == 2
    with app.app_context():
        titles = db.session.scalars(
            sa.select(Notification.title).where(Notification.kind == "sales.quote_decided")
        ).all()
    assert len(titles) == 2


def test_p3_3_above_the_cap_is_rejected_at_once_with_the_reason(
    app: Any, deals: Any, login: Any
) -> None:
    quote_id = make_quote(app, deals, discount="30.1", by="manager")
    with app.test_request_context():
        facts = quotes.discount_facts(db.session.get(Quotation, quote_id), person("manager"))
    assert facts["requested_by"] == "manager"
    client = client_of(app, login, "li")
    response = client.post(f"/sales/quotes/{quote_id}/submit", follow_redirects=True)
    assert response.status_code == 200
    assert "Above the absolute discount cap" in response.text
    quote = load(app, quote_id)
    assert quote.status == "rejected"
    with app.app_context():
        request = db.session.get(ApprovalRequest, quote.approval_request_id)
        assert (request.status, request.rule_id) == ("rejected", "over-cap")


def test_p3_3_below_cost_is_rejected_at_once(app: Any, deals: Any) -> None:
    quote_id = make_quote(app, deals, discount="12", quantity=1)
    with app.test_request_context(), acting_as("test"):
        quote = db.session.get(Quotation, quote_id)
        quotes.update_quotation(
            quote,
            {},
            [
                {
                    "description": "Spare parts at cost",
                    "quantity": "1",
                    "unit_price": "1000",
                    "unit_cost": "1000.01",
                }
            ],
            person("li"),
        )
        db.session.commit()
        facts = quotes.discount_facts(quote, person("li"))
        assert str(facts["gross_margin_pct"]) == "-0.1"  # -0.001 % is below cost all the same
    assert submit(app, quote_id) == "rejected"
    with app.app_context():
        request = db.session.get(ApprovalRequest, load(app, quote_id).approval_request_id)
        assert request.rule_id == "below-cost"


def test_p3_3_a_new_version_of_the_rule_file_changes_the_routing_without_code(
    app: Any, deals: Any
) -> None:
    first = make_quote(app, deals, discount="4")
    assert submit(app, first) == "approved"
    with app.app_context():
        text = rules().active("discount_approval").rule_file.source
        lower = (
            text.replace(
                "salesperson_max_pct: {type: number, scale: 1, value: 5,",
                "salesperson_max_pct: {type: number, scale: 1, value: 3,",
            )
            .replace(
                "expect: {rule: within-authority, decision: approve, approvers: []}\n"
                "  - name: a salesperson's 5.1",
                "expect: {rule: above-authority, approvers: [supervisor]}\n"
                "  - name: a salesperson's 5.1",
            )
            .replace(
                "    given: {requested_by: salesperson, discount_pct: 5, deal_amount: 3000000, "
                "gross_margin_pct: 28}\n    expect: {rule: within-authority, approvers: []}",
                "    given: {requested_by: salesperson, discount_pct: 3, deal_amount: 3000000, "
                "gross_margin_pct: 28}\n    expect: {rule: within-authority, approvers: []}",
            )
        )
        assert lower != text
        rules().publish("discount_approval", lower, "cli", note="tighter", write_file=False)
    second = make_quote(app, deals, discount="4")
    assert submit(app, second) == "pending"
    with app.app_context():
        request = db.session.get(ApprovalRequest, load(app, second).approval_request_id)
        assert [step.approver.username for step in request.steps] == ["sup_east"]
        assert request.rule_version == 2


def test_p3_3_discount_facts_round_towards_the_stricter_side(app: Any, deals: Any) -> None:
    quote_id = make_quote(app, deals, discount="5.01")
    with app.test_request_context():
        facts = quotes.discount_facts(db.session.get(Quotation, quote_id), person("li"))
    assert str(facts["discount_pct"]) == "5.1"  # above five: not within a 5 % authority
    assert submit(app, quote_id) == "pending"


# -- versions ---------------------------------------------------------------------------------


def test_p3_3_revising_keeps_every_version(app: Any, deals: Any, login: Any) -> None:
    quote_id = make_quote(app, deals, discount="2")
    submit(app, quote_id)
    client = client_of(app, login, "li")
    response = client.post(f"/sales/quotes/{quote_id}/revise")
    assert response.status_code == 303
    with app.app_context():
        old = db.session.get(Quotation, quote_id)
        new = db.session.scalars(sa.select(Quotation).where(Quotation.version == 2)).one()
        assert response.headers["Location"] == f"/sales/quotes/{new.id}/edit"
        assert (old.status, new.status) == ("superseded", "draft")
        assert (new.number, new.root_id) == (old.number, old.id)
        assert [(line.product_id, line.quantity, line.discount_bp) for line in new.lines] == [
            (line.product_id, line.quantity, line.discount_bp) for line in old.lines
        ]
        assert new.total_cents == old.total_cents
        assert new.approval_request_id is None
        new_id = new.id
    # Only the newest version changes; the old one can be opened, not revised again.
    assert client.post(f"/sales/quotes/{quote_id}/revise").status_code == 409
    assert client.get(f"/sales/quotes/{quote_id}/edit").status_code == 302
    assert client.get(f"/sales/quotes/{new_id}/edit").status_code == 200
    page = client.get(f"/sales/quotes/{new_id}").text
    assert page.count('data-testid="quote-version"') == 2
    assert 'data-version="1"' in page and 'data-version="2"' in page
    assert client.get(f"/sales/quotes/{quote_id}").status_code == 200
    listing = client.get("/sales/quotes/").text
    assert listing.count('data-testid="quote-row"') == 1  # newest versions only
    assert client.get("/sales/quotes/?status=all").text.count('data-testid="quote-row"') == 2


# -- bad input ----------------------------------------------------------------------------------


def test_p3_3_bad_lines_and_a_past_validity_are_refused_per_field(
    app: Any, deals: Any, login: Any
) -> None:
    client = client_of(app, login, "li")
    url = f"/sales/quotes/new?opportunity_id={deals['li_opportunity']}"
    yesterday = (local_today() - timedelta(days=1)).isoformat()
    response = client.post(
        url,
        data=form_data(
            [
                {"description": "Cabinet", "quantity": "1", "unit_price": "-5"},
                {"product_id": str(deals["server"]), "quantity": "1", "discount": "150"},
                {"product_id": str(deals["licence"]), "quantity": "0"},
                {"description": "Cable", "quantity": "1.5", "unit_price": "12.345"},
            ],
            valid_until=yesterday,
        ),
    )
    assert response.status_code == 422
    page = response.text
    assert "Cannot be negative." in page
    assert "A discount is between 0 and 100 %." in page
    assert "The quantity must be at least 1." in page
    assert "The quantity is a whole number of at least 1." in page
    assert "At most two decimals (fen)." in page
    assert "The validity date cannot be in the past." in page
    # The typed rows come back as typed, each message next to its row's field.
    assert 'name="lines-0-unit_price" type="number" value="-5"' in page or 'value="-5"' in page
    assert page.count("is-invalid") >= 6
    assert counts(app) == (0, 0)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Counter)) == 0

    empty = client.post(url, data=form_data([]))
    assert empty.status_code == 422
    assert "Add at least one line." in empty.text
    assert counts(app) == (0, 0)

    with app.test_request_context():
        with pytest.raises(ValidationFailed) as refused:
            quotes.parse_lines([{"product_id": "999", "quantity": "1"}])
        assert refused.value.fields == {"lines-0-product_id": ["No such product."]}


def test_p3_3_without_javascript_rows_are_added_and_removed_by_the_server(
    app: Any, deals: Any, login: Any
) -> None:
    client = client_of(app, login, "li")
    url = f"/sales/quotes/new?opportunity_id={deals['li_opportunity']}"
    data = form_data([{"description": "Survey", "quantity": "1", "unit_price": "100"}])
    data["action"] = "more_lines"
    more = client.post(url, data=data)
    assert more.status_code == 200
    assert more.text.count('data-testid="quote-line-row"') == 4
    assert 'value="Survey"' in more.text
    data = form_data(
        [
            {"description": "Survey", "quantity": "1", "unit_price": "100"},
            {"description": "Mistake", "quantity": "1", "unit_price": "1"},
        ]
    )
    data["remove_line"] = "1"
    fewer = client.post(url, data=data)
    assert fewer.status_code == 200
    assert "Mistake" not in fewer.text
    data["action"] = "recalculate"
    del data["remove_line"]
    preview = client.post(url, data=data)
    assert preview.status_code == 200
    assert 'data-testid="total">101.00' in preview.text
    assert counts(app) == (0, 0)


def test_p3_3_the_line_row_fragment_adds_a_row_and_fills_in_the_product(
    app: Any, deals: Any, login: Any
) -> None:
    client = client_of(app, login, "li")
    added = client.get("/sales/quotes/line?index=3&add=1", headers={"HX-Request": "true"})
    assert added.status_code == 200
    assert 'name="lines-3-quantity"' in added.text
    assert 'hx-swap-oob="true"' in added.text and "index=4" in added.text
    filled = client.get(
        f"/sales/quotes/line?index=3&lines-3-product_id={deals['server']}&lines-3-quantity=4",
        headers={"HX-Request": "true", "HX-Trigger-Name": "lines-3-product_id"},
    )
    assert 'value="Edge server"' in filled.text
    assert 'value="10000.00"' in filled.text
    assert 'value="4"' in filled.text
    assert "hx-swap-oob" not in filled.text
    assert client.get("/sales/quotes/line?index=-1").status_code == 400
    assert client_of(app, login, "auditor").get("/sales/quotes/line?index=1").status_code == 403


def test_p3_3_a_stale_form_and_a_closed_opportunity_are_refused(
    app: Any, deals: Any, login: Any
) -> None:
    quote_id = make_quote(app, deals)
    client = client_of(app, login, "li")
    stale = client.post(
        f"/sales/quotes/{quote_id}/edit",
        data=form_data([{"product_id": str(deals["server"]), "quantity": "5"}], lock_version="999"),
    )
    assert stale.status_code == 409
    assert "Someone changed this quotation meanwhile" in stale.text
    with app.app_context():
        assert db.session.get(Quotation, quote_id).lines[0].quantity == 2
        opportunity = db.session.get(Opportunity, deals["li_opportunity"])
        opportunity.status = "lost"
        db.session.commit()
    closed = client.post(
        f"/sales/quotes/new?opportunity_id={deals['li_opportunity']}",
        data=form_data([{"product_id": str(deals["server"]), "quantity": "1"}]),
    )
    assert closed.status_code == 422
    assert "The opportunity is closed" in closed.text


# -- the customer's answer and negotiation -------------------------------------------------------


def test_p3_3_sent_accepted_declined_and_one_accepted_per_opportunity(
    app: Any, deals: Any, login: Any
) -> None:
    client = client_of(app, login, "li")
    first = make_quote(app, deals, discount="3")
    submit(app, first)
    assert (
        client.post(f"/sales/quotes/{first}/answer", data={"status": "accepted"}).status_code == 409
    )
    assert client.post(f"/sales/quotes/{first}/answer", data={"status": "sent"}).status_code == 303
    assert load(app, first).sent_at is not None
    declined = client.post(f"/sales/quotes/{first}/answer", data={"status": "declined"})
    assert declined.status_code == 422
    assert "Say why the customer declined." in declined.text
    accepted = client.post(
        f"/sales/quotes/{first}/answer", data={"status": "accepted", "note": "PO by Friday"}
    )
    assert accepted.status_code == 303
    with app.app_context():
        assert quotes.accepted_quotation_for(deals["li_opportunity"]).id == first
    second = make_quote(app, deals, discount="1")
    submit(app, second)
    client.post(f"/sales/quotes/{second}/answer", data={"status": "sent"})
    again = client.post(f"/sales/quotes/{second}/answer", data={"status": "accepted"})
    assert again.status_code == 409
    assert "was already accepted for this opportunity" in again.text
    gone = client.post(
        f"/sales/quotes/{second}/answer",
        data={"status": "declined", "note": "They took the first offer"},
    )
    assert gone.status_code == 303
    assert load(app, second).status == "declined"
    assert client.post(f"/sales/quotes/{first}/revise").status_code == 409  # accepted stays


def test_p3_3_negotiation_notes_are_added_with_htmx_newest_first(
    app: Any, deals: Any, login: Any
) -> None:
    quote_id = make_quote(app, deals)
    client = client_of(app, login, "li")
    headers = {"HX-Request": "true", "HX-Target": "quote-notes"}
    first = client.post(
        f"/sales/quotes/{quote_id}/notes", data={"body": "Asked for 12 % off"}, headers=headers
    )
    assert first.status_code == 200
    assert "<html" not in first.text  # the panel only
    assert 'id="quote-notes"' in first.text
    second = client.post(
        f"/sales/quotes/{quote_id}/notes", data={"body": "Offered free training"}, headers=headers
    )
    assert second.text.index("Offered free training") < second.text.index("Asked for 12 % off")
    empty = client.post(f"/sales/quotes/{quote_id}/notes", data={"body": " "}, headers=headers)
    assert empty.status_code == 422
    assert "Write the note." in empty.text
    plain = client.post(f"/sales/quotes/{quote_id}/notes", data={"body": "Call on Monday"})
    assert plain.status_code == 303
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(NegotiationNote)) == 3


# -- printing ----------------------------------------------------------------------------------


def test_p3_3_the_printable_quotation_in_chinese_and_english(
    app: Any, deals: Any, login: Any
) -> None:
    quote_id = make_quote(app, deals, discount="5", quantity=12)  # 114,000.00
    submit(app, quote_id)
    client = client_of(app, login, "li")
    english = client.get(f"/sales/quotes/{quote_id}/print?lang=en")
    assert english.status_code == 200
    page = english.text
    assert '<html lang="en">' in page
    assert "Quotation" in page and "Valid until" in page and "Total (CNY)" in page
    assert "114,000.00" in page and "120,000.00" in page
    assert "Li Precision Ltd" in page
    assert "Signature and company seal" in page
    assert 'data-testid="amount-in-words"' not in page
    assert 'data-testid="draft-mark"' not in page
    assert "<script>" not in page and "style=" not in page

    chinese = client.get(f"/sales/quotes/{quote_id}/print?lang=zh_CN")
    assert chinese.status_code == 200
    page = chinese.text
    assert '<html lang="zh-CN">' in page
    assert "壹拾壹万肆仟元整" in page
    assert "年" in page  # the dates in Chinese form
    with app.test_request_context(), force_locale("zh_CN"):
        for word in ("Quotation", "Valid until", "Amount in words"):
            assert babel_gettext(word) in page
    # The portal's own language does not change: the print language is chosen per page.
    assert '<html lang="en"' in client.get(f"/sales/quotes/{quote_id}").text


def test_p3_3_chinese_capital_amounts() -> None:
    cases = {
        0: "零元整",
        5: "伍分",
        50: "伍角",
        105: "壹元零伍分",
        100_000_00: "壹拾万元整",
        100_010_00: "壹拾万零壹拾元整",
        1_005_00: "壹仟零伍元整",
        1_000_000_001_00: "壹拾亿零壹元整",
        1_234_567_89: "壹佰贰拾叁万肆仟伍佰陆拾柒元捌角玖分",
        1_0200_0000_00: "壹亿零贰佰万元整",
    }
    for cents, words in cases.items():
        assert quotes.chinese_amount(cents) == words, cents


# -- scope, partials and the list ----------------------------------------------------------------


def test_p3_3_li_never_sees_wangs_quotation(
    app: Any, deals: Any, login: Any, api_token: Any
) -> None:
    wangs = make_quote(app, deals, owner="wang")
    lis = make_quote(app, deals, owner="li")
    li = client_of(app, login, "li")
    listing = li.get("/sales/quotes/").text
    assert f'data-quote-id="{lis}"' in listing and f'data-quote-id="{wangs}"' not in listing
    for url in (
        f"/sales/quotes/{wangs}",
        f"/sales/quotes/{wangs}/print?lang=en",
        f"/sales/quotes/{wangs}/edit",
    ):
        assert li.get(url).status_code == 404, url
    assert li.post(f"/sales/quotes/{wangs}/submit").status_code == 404
    assert li.post(f"/sales/quotes/{wangs}/notes", data={"body": "x"}).status_code == 404
    assert (
        li.get(f"/sales/quotes/new?opportunity_id={deals['wang_opportunity']}").status_code == 404
    )
    headers = auth(api_token, "li")
    api = app.test_client()
    assert api.get(f"/api/v1/sales/quotations/{wangs}", headers=headers).status_code == 404
    ids = [
        item["id"] for item in api.get("/api/v1/sales/quotations", headers=headers).json["items"]
    ]
    assert ids == [lis]
    with app.test_request_context():
        from flask_login import login_user

        login_user(signed_in("li"))
        wang_customer = db.session.get(Customer, deals["wang_customer"])
        from plugins.sales.quotes_views import sales_quotes_for_customer

        assert sales_quotes_for_customer(wang_customer) == []
    # The supervisor of both sees both; the auditor reads but cannot change.
    sup = client_of(app, login, "sup_east")
    assert sup.get(f"/sales/quotes/{wangs}").status_code == 200
    auditor = client_of(app, login, "auditor")
    assert auditor.get(f"/sales/quotes/{wangs}").status_code == 200
    assert auditor.post(f"/sales/quotes/{wangs}/submit").status_code == 403


def test_p3_3_partials_show_the_newest_versions_for_an_opportunity_and_customer(
    app: Any, deals: Any, login: Any
) -> None:
    quote_id = make_quote(app, deals, discount="1")
    submit(app, quote_id)
    client = client_of(app, login, "li")
    client.post(f"/sales/quotes/{quote_id}/revise")
    with app.test_request_context():
        from flask import render_template
        from flask_login import login_user

        login_user(signed_in("li"))
        opportunity = db.session.get(Opportunity, deals["li_opportunity"])
        customer = db.session.get(Customer, deals["li_customer"])
        html = render_template("sales/quotes/_for_opportunity.html", opportunity=opportunity)
        assert html.count('data-testid="quote-item"') == 1
        assert "v2" in html and 'data-testid="new-quote"' in html
        html = render_template("sales/quotes/_for_customer.html", customer=customer)
        assert html.count('data-testid="quote-item"') == 1


def test_p3_3_the_list_filters_and_its_statements_stay_flat(
    app: Any, deals: Any, login: Any, api_token: Any
) -> None:
    for _index in range(2):
        make_quote(app, deals, owner="li")
    make_quote(app, deals, owner="wang")
    sup = client_of(app, login, "sup_east")
    few = count_statements(app, sup, "/sales/quotes/")
    few_detail = count_statements(app, sup, f"/sales/quotes/{make_quote(app, deals)}")
    for _index in range(8):
        make_quote(app, deals, owner="wang", quantity=3)
    many = count_statements(app, sup, "/sales/quotes/")
    assert many == few
    with app.test_request_context(), acting_as("test"):
        quote = db.session.scalars(sa.select(Quotation).order_by(Quotation.id.desc())).first()
        rows = [{"description": f"Item {n}", "quantity": "1", "unit_price": "10"} for n in range(9)]
        rows.append({"product_id": str(deals["licence"]), "quantity": "2"})
        quotes.update_quotation(quote, {}, rows, person("wang"))
        quote_id = quote.id
        db.session.commit()
    assert count_statements(app, sup, f"/sales/quotes/{quote_id}") == few_detail
    headers = auth(api_token, "sup_east")
    api = app.test_client()
    count_statements(app, api, "/api/v1/sales/quotations", headers=headers)  # warm up
    assert count_statements(app, api, "/api/v1/sales/quotations", headers=headers) == (
        count_statements(app, api, "/api/v1/sales/quotations?per_page=2", headers=headers)
    )
    text = sup.get("/sales/quotes/?q=wang+precision").text
    assert text.count('data-testid="quote-row"') == 9
    with app.app_context():
        li_id = person("li").id
    assert sup.get(f"/sales/quotes/?owner={li_id}").text.count('data-testid="quote-row"') == 3
    assert sup.get("/sales/quotes/?status=approved").text.count('data-testid="quote-row"') == 0


# -- the product list -----------------------------------------------------------------------------


def test_p3_3_the_product_list_is_read_by_sellers_and_kept_by_the_manager(
    app: Any, deals: Any, login: Any
) -> None:
    li = client_of(app, login, "li")
    page = li.get("/sales/quotes/products?q=server")
    assert page.status_code == 200
    assert "SRV-100" in page.text and "LIC-1Y" not in page.text
    assert li.get("/sales/quotes/products/new").status_code == 403

    manager = client_of(app, login, "manager")
    bad = manager.post(
        "/sales/quotes/products/new",
        data={"code": "srv-100", "name": "", "list_price": "-1", "cost": "abc"},
    )
    assert bad.status_code == 422
    for message in (
        "Another product has this code.",
        "Give the product name.",
        "Cannot be negative.",
        "Write an amount in yuan",
    ):
        assert message in bad.text
    made = manager.post(
        "/sales/quotes/products/new",
        data={
            "code": "ups-3k",
            "name": "UPS 3 kVA",
            "category": "Power",
            "unit": "piece",
            "list_price": "4,800.00",
            "cost": "3100",
        },
    )
    assert made.status_code == 303
    with app.app_context():
        ups = db.session.scalars(sa.select(Product).where(Product.code == "UPS-3K")).one()
        assert (ups.list_price_cents, ups.cost_cents, ups.active) == (480_000, 310_000, True)
        ups_id = ups.id
    edit = manager.post(
        f"/sales/quotes/products/{ups_id}/edit",
        data={"code": "UPS-3K", "name": "UPS 3 kVA online", "list_price": "4900", "cost": "3100"},
    )
    assert edit.status_code == 303
    assert (
        manager.post(f"/sales/quotes/products/{ups_id}/active", data={"active": "0"}).status_code
        == 303
    )
    assert "UPS-3K" not in li.get("/sales/quotes/products").text
    assert "UPS-3K" in manager.get("/sales/quotes/products?inactive=1").text
    with app.test_request_context():
        with pytest.raises(ValidationFailed) as refused:
            quotes.parse_lines([{"product_id": str(ups_id), "quantity": "1"}])
        assert refused.value.fields == {"lines-0-product_id": ["This product is no longer sold."]}


# -- the API ------------------------------------------------------------------------------------


def test_p3_3_api_create_read_change_submit_revise_and_answer(
    app: Any, deals: Any, api_token: Any
) -> None:
    api = app.test_client()
    headers = auth(api_token, "li")
    body = {
        "opportunity_id": deals["li_opportunity"],
        "valid_until": valid_day(),
        "delivery_method": "installation",
        "payment_terms_days": 45,
        "lines": [
            {"product_id": deals["server"], "quantity": 3, "discount": "2.5"},
            {"description": "Site survey", "quantity": 1, "unit_price": "1500.00"},
        ],
    }
    created = api.post("/api/v1/sales/quotations", json=body, headers=headers)
    assert created.status_code == 201, created.json
    quote = created.json
    assert (quote["status"], quote["version"], quote["total"]) == ("draft", 1, "30750.00")
    assert quote["lines"][0]["total"] == "29250.00"
    assert quote["discount_pct"] == "2.38"
    quote_id = quote["id"]

    bad = api.post(
        "/api/v1/sales/quotations",
        json={
            **body,
            "lines": [{"description": "X", "quantity": 0, "unit_price": "-1", "discount": 150}],
        },
        headers=headers,
    )
    assert bad.status_code == 422
    assert set(bad.json["error"]["fields"]) == {
        "lines-0-quantity",
        "lines-0-unit_price",
        "lines-0-discount",
    }
    unknown = api.post(
        "/api/v1/sales/quotations",
        json={**body, "lines": [{"price": 1}]},
        headers=headers,
    )
    assert unknown.status_code == 400
    assert counts(app)[0] == 1

    read = api.get(f"/api/v1/sales/quotations/{quote_id}", headers=headers).json
    patched = api.patch(
        f"/api/v1/sales/quotations/{quote_id}",
        json={"notes": "Includes two days of training", "version": str(read["version_lock"])},
        headers=headers,
    )
    assert patched.status_code == 200, patched.json
    assert patched.json["notes"] == "Includes two days of training"
    assert len(patched.json["lines"]) == 2
    stale = api.patch(
        f"/api/v1/sales/quotations/{quote_id}", json={"notes": "x", "version": "1"}, headers=headers
    )
    assert stale.status_code == 409

    submitted = api.post(f"/api/v1/sales/quotations/{quote_id}/submit", headers=headers)
    assert submitted.status_code == 200
    assert submitted.json["status"] == "approved"
    assert submitted.json["approval"]["rule"] == "within-authority#1"
    locked = api.patch(f"/api/v1/sales/quotations/{quote_id}", json={"notes": "y"}, headers=headers)
    assert locked.status_code == 409
    sent = api.post(
        f"/api/v1/sales/quotations/{quote_id}/status", json={"status": "sent"}, headers=headers
    )
    assert sent.json["status"] == "sent"
    revised = api.post(f"/api/v1/sales/quotations/{quote_id}/revise", headers=headers)
    assert revised.status_code == 201
    assert (revised.json["version"], revised.json["status"]) == (2, "draft")
    assert [v["status"] for v in revised.json["versions"]] == ["draft", "superseded"]
    products = api.get("/api/v1/sales/products?q=LIC", headers=headers).json
    assert [p["code"] for p in products["items"]] == ["LIC-1Y"]
    assert "cost" not in products["items"][0]
    auditor = auth(api_token, "auditor")
    assert api.post("/api/v1/sales/quotations", json=body, headers=auditor).status_code == 403


def test_p3_3_a_withdrawn_request_unlocks_the_draft_and_an_expired_one_cannot_be_submitted(
    app: Any, deals: Any, login: Any
) -> None:
    quote_id = make_quote(app, deals, discount="7")
    assert submit(app, quote_id) == "pending"
    with app.test_request_context(), acting_as("test"):
        quote = db.session.get(Quotation, quote_id)
        request = db.session.get(ApprovalRequest, quote.approval_request_id)
        approvals.cancel(request, person("li"))
        db.session.commit()
        assert quote.status == "draft"
        quote.valid_until = local_today() - timedelta(days=1)
        db.session.commit()
    client = client_of(app, login, "li")
    refused = client.post(f"/sales/quotes/{quote_id}/submit")
    assert refused.status_code == 422
    assert "The validity date cannot be in the past." in refused.text
    assert load(app, quote_id).status == "draft"


def test_p3_3_the_api_keeps_to_the_write_scope(app: Any, deals: Any, api_token: Any) -> None:
    api = app.test_client()
    body = {
        "opportunity_id": deals["wang_opportunity"],
        "valid_until": valid_day(),
        "lines": [{"description": "Survey", "quantity": 1, "unit_price": "100"}],
    }
    refused = api.post("/api/v1/sales/quotations", json=body, headers=auth(api_token, "li"))
    assert refused.status_code == 404
    assert refused.json["error"]["code"] == "not_found"
    wangs = make_quote(app, deals, owner="wang")
    for path in ("submit", "revise"):
        answer = api.post(f"/api/v1/sales/quotations/{wangs}/{path}", headers=auth(api_token, "li"))
        assert answer.status_code == 404, path
    assert counts(app)[0] == 1


# -- found in review -------------------------------------------------------------------------------


def test_p3_3_a_decision_on_an_older_request_never_approves_the_changed_quotation(
    app: Any, deals: Any, login: Any
) -> None:
    """Returned for changes, the old request is sent again from the approvals page with
    its old facts (7 %), the quotation is raised to 25 % and submitted as a new request:
    approving the old one must not approve the 25 %."""
    quote_id = make_quote(app, deals, discount="7")
    assert submit(app, quote_id) == "pending"
    assert decide(app, quote_id, "sup_east", "return", "Check the price") == "draft"
    old_request = load(app, quote_id).approval_request_id
    with app.test_request_context(), acting_as("test"):
        approvals.resubmit(db.session.get(ApprovalRequest, old_request), person("li"))
        db.session.commit()
    client = client_of(app, login, "li")
    changed = client.post(
        f"/sales/quotes/{quote_id}/edit",
        data=form_data(
            [{"product_id": str(deals["server"]), "quantity": "2", "discount": "25"}],
            lock_version=str(load(app, quote_id).lock_version),
        ),
    )
    assert changed.status_code == 303, changed.text
    assert client.post(f"/sales/quotes/{quote_id}/submit").status_code == 303
    new_request = load(app, quote_id).approval_request_id
    assert new_request != old_request
    with app.test_request_context(), acting_as("test"):
        approvals.act(db.session.get(ApprovalRequest, old_request), person("sup_east"), "approve")
        db.session.commit()
    quote = load(app, quote_id)
    assert (quote.status, quote.approval_request_id) == ("pending", new_request)
    assert quote.discount_bp == 2500


def test_p3_3_a_request_decided_at_once_after_a_withdrawal_decides_the_quotation(
    app: Any, deals: Any
) -> None:
    """Withdrawn, changed to 5 % and submitted again: the new request is approved at once
    (inside ``submit``) and the quotation with it, not left waiting."""
    quote_id = make_quote(app, deals, discount="7")
    assert submit(app, quote_id) == "pending"
    with app.test_request_context(), acting_as("test"):
        quote = db.session.get(Quotation, quote_id)
        approvals.cancel(db.session.get(ApprovalRequest, quote.approval_request_id), person("li"))
        quotes.update_quotation(
            quote,
            {},
            [{"product_id": str(deals["server"]), "quantity": "2", "discount": "5"}],
            person("li"),
        )
        db.session.commit()
    assert submit(app, quote_id) == "approved"


def test_p3_3_huge_numbers_and_ids_are_refused_per_field_not_a_server_error(
    app: Any, deals: Any, login: Any, api_token: Any
) -> None:
    from portal.money import to_basis_points, to_cents

    for text in ("1e30", "1e309"):
        with pytest.raises(ValueError):
            to_cents(text)
        with pytest.raises(ValueError):
            to_basis_points(text)
    huge = "99999999999999999999"
    client = client_of(app, login, "li")
    url = f"/sales/quotes/new?opportunity_id={deals['li_opportunity']}"
    for price in ("1e30", "1e309"):
        response = client.post(
            url, data=form_data([server_line(description="x", unit_price=price)])
        )
        assert response.status_code == 422, price
        assert "Too large." in response.text
    response = client.post(url, data=form_data([{"product_id": huge, "quantity": "1"}]))
    assert response.status_code == 422
    assert "No such product." in response.text
    assert client.get(f"/sales/quotes/new?opportunity_id={huge}").status_code == 404
    fragment = client.get(
        f"/sales/quotes/line?index=1&lines-1-product_id={huge}",
        headers={"HX-Request": "true", "HX-Trigger-Name": "lines-1-product_id"},
    )
    assert fragment.status_code == 200
    leader = client_of(app, login, "sup_east")
    assert leader.get(f"/sales/quotes/?owner={huge}").status_code == 200
    api = app.test_client()
    listed = api.get(f"/api/v1/sales/quotations?owner={huge}", headers=auth(api_token, "sup_east"))
    assert listed.status_code == 200
    body = {
        "opportunity_id": deals["li_opportunity"],
        "valid_until": valid_day(),
        "lines": [{"description": "x", "quantity": 1, "unit_price": "1e30"}],
    }
    created = api.post("/api/v1/sales/quotations", json=body, headers=auth(api_token, "li"))
    assert created.status_code == 422
    assert "lines-0-unit_price" in created.json["error"]["fields"]
    body["opportunity_id"] = huge
    unknown = api.post("/api/v1/sales/quotations", json=body, headers=auth(api_token, "li"))
    assert unknown.status_code == 404
    assert counts(app) == (0, 0)


def test_p3_3_a_quotation_adding_up_beyond_a_trillion_yuan_is_refused_not_overflowed(
    app: Any, deals: Any, login: Any, api_token: Any
) -> None:
    """Each line is within its limits, but twelve of them (at 100 % discount, so the
    total is 0 and only the list total is huge) overflowed the 64-bit total columns."""
    line = {"quantity": "10000000", "unit_price": "1000000000", "discount": "100"}
    rows = [{"description": f"Part {n}", **line} for n in range(12)]
    client = client_of(app, login, "li")
    response = client.post(
        f"/sales/quotes/new?opportunity_id={deals['li_opportunity']}", data=form_data(rows)
    )
    assert response.status_code == 422
    assert "The quotation adds up to more than 1,000,000,000,000.00 yuan" in response.text
    body = {"opportunity_id": deals["li_opportunity"], "valid_until": valid_day(), "lines": rows}
    api = app.test_client().post(
        "/api/v1/sales/quotations", json=body, headers=auth(api_token, "li")
    )
    assert api.status_code == 422 and "lines" in api.json["error"]["fields"]
    assert counts(app) == (0, 0)


def test_p3_3_recalculating_a_draft_keeps_a_product_taken_off_the_list_as_saving_does(
    app: Any, deals: Any, login: Any
) -> None:
    quote_id = make_quote(app, deals, discount="3")
    with app.app_context():
        db.session.get(Product, deals["server"]).active = False
        db.session.commit()
    client = client_of(app, login, "li")
    rows = [{"product_id": str(deals["server"]), "quantity": "3", "discount": "3"}]
    version = str(load(app, quote_id).lock_version)
    url = f"/sales/quotes/{quote_id}/edit"
    again = client.post(url, data=form_data(rows, action="recalculate", lock_version=version))
    assert again.status_code == 200
    assert "This product is no longer sold." not in again.text
    assert client.post(url, data=form_data(rows, lock_version=version)).status_code == 303
    assert load(app, quote_id).total_cents == 2_910_000  # 3 x 10,000.00 less 3 %
