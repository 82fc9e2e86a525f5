"""P3 as one closed loop, driven through the pages by the people who do it: Li (a
salesperson in Shanghai) finds a prospect, visits, opens an opportunity and works it
through the stages, quotes above her discount authority, her supervisor Zhang (sup_east)
approves, the customer accepts, the contract is reviewed (supervisor and finance, as
rules/contract_review.yaml routes a new customer) and signed, delivery is done, the
customer complains about quality, Li answers, finds the cause, raises the corrective
action, which is closed and verified, the customer confirms, the complaint closes and
its loop item is verified by the one who must verify it (docs/loops.md: an item its
owner raised is verified by the owner's supervisor).

Organisation (``org`` fixture): manager > sup_east > Shanghai (li, wang); fin (finance)
and the manager sit in the company unit."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from plugins.sales.models import (
    Activity,
    Contract,
    Customer,
    Feedback,
    Milestone,
    Opportunity,
    PaymentInstalment,
    Product,
    Quotation,
)
from portal.auth.models import User
from portal.extensions import db
from portal.loops.approvals import current_step
from portal.loops.models import ApprovalRequest, LoopItem, Notification
from portal.loops.service import local_today
from portal.models import as_utc
from portal.testing import throwaway_plugin

EVENTS: list[tuple[str, dict[str, Any]]] = []
CHECKLIST = (
    "parties_verified",
    "scope_clear",
    "price_matches_quote",
    "delivery_terms",
    "liability_lawful",
)


@pytest.fixture
def app(make_app: Any) -> Any:
    """The portal with a listener that records the events the sales plugin emits."""
    EVENTS.clear()
    listener = throwaway_plugin(
        "listener", portal_on_event=lambda event: EVENTS.append((event.name, event.payload))
    )
    return make_app(plugins=[("listener", listener)])


def one(model: Any, *where: Any) -> Any:
    db.session.expire_all()
    return db.session.scalars(sa.select(model).where(*where)).one()


def get(model: Any, record_id: int) -> Any:
    db.session.expire_all()
    return db.session.get(model, record_id)


def user_id(username: str) -> int:
    return db.session.scalar(sa.select(User.id).where(User.username == username))


def emitted(name: str, **payload: Any) -> bool:
    return any(
        event == name and all(data.get(k) == v for k, v in payload.items())
        for event, data in EVENTS
    )


def notified(username: str, kind: str, link: str = "") -> bool:
    statement = sa.select(Notification.id).where(
        Notification.user_id == user_id(username), Notification.kind == kind
    )
    if link:
        statement = statement.where(Notification.link == link)
    return db.session.scalar(statement.limit(1)) is not None


def location(response: Any) -> str:
    assert response.status_code == 303, (response.status_code, response.get_data(as_text=True))
    return response.headers["Location"]


def last_id(target: str) -> int:
    return int(target.split("?")[0].split("#")[0].rstrip("/").rsplit("/", 1)[1])


def test_p3_whole_path_prospect_to_verified_corrective_action(
    app: Any, org: dict[str, int], make_person: Any, login: Any
) -> None:
    make_person("fin", roles=["finance"], unit=org["company"])
    li, zhang, fin, boss = (app.test_client() for _ in range(4))
    login(li, "li")
    login(zhang, "sup_east")
    login(fin, "fin")
    login(boss, "manager")
    today = local_today()

    # The product list: the manager keeps it.
    target = location(
        boss.post(
            "/sales/quotes/products/new",
            data={
                "code": "VMC-850",
                "name": "立式加工中心 VMC850 / Vertical machining centre",
                "category": "Machining centres",
                "unit": "unit",
                "list_price": "368000",
                "cost": "245000",
            },
        )
    )
    assert "/sales/quotes/products" in target
    with app.app_context():
        product = one(Product, Product.code == "VMC-850")
        product_id = product.id
        assert product.list_price_cents == 36_800_000

    # 1. Li records a prospect (P3.1.2): screened, hers.
    target = location(
        li.post(
            "/sales/customers/new",
            data={
                "name": "上海华东精密机械有限公司",
                "phone": "021-5988 1234",
                "tax_id": "91310114MA1GT3XK2P",
                "industry": "machinery",
                "size": "large",
                "region": "east",
                "city": "上海",
                "address": "上海市嘉定区华江路 88 号",
                "source": "exhibition",
                "need": "Two new machining centres for workshop 2",
                "grade": "",
                "stage": "prospect",
                "owner_id": "",
                "notes": "Met at the Shanghai industry fair",
            },
        )
    )
    customer_id = last_id(target)
    with app.app_context():
        customer = get(Customer, customer_id)
        assert (customer.stage, customer.owner_id) == ("prospect", org["li"])
        assert customer.qualified and customer.grade == "A"
    assert li.get(target).status_code == 200
    assert zhang.get(target).status_code == 200  # her supervisor reads it
    # A colleague's duplicate is refused, naming the field.
    wang = app.test_client()
    login(wang, "wang")
    duplicate = wang.post(
        "/sales/customers/new",
        data={"name": "上海华东精密机械有限公司", "source": "other", "stage": "prospect"},
    )
    assert duplicate.status_code == 422
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Customer)) == 1
    assert wang.get(target).status_code == 404  # and never sees Li's customer

    # 2. She visits and sets the next follow-up (P3.1.3): a loop item for her.
    follow_up_on = today + timedelta(days=3)
    location(
        li.post(
            f"/sales/customers/{customer_id}/log",
            data={
                "kind": "visit",
                "summary": "Toured workshop 2: six ageing machining centres",
                "details": "Zhou Jianhua decides; budget approved for this year.",
                "location_note": "Huajiang Road, Jiading, workshop 2",
                "opportunity_id": "",
                "next_step": "Send the proposal",
                "next_follow_up_on": follow_up_on.isoformat(),
            },
        )
    )
    with app.app_context():
        visit = one(Activity, Activity.customer_id == customer_id)
        assert visit.kind == "visit" and visit.location_note
        follow_up = get(LoopItem, visit.follow_up_loop_id)
        assert (follow_up.type, follow_up.status, follow_up.owner_id) == (
            "sales.follow_up",
            "open",
            org["li"],
        )
        assert local_today(as_utc(follow_up.due_at)) == follow_up_on
        assert get(Customer, customer_id).last_contact_at is not None

    # 3. She opens an opportunity (P3.2).
    target = location(
        li.post(
            f"/sales/pipeline/new?customer_id={customer_id}",
            data={
                "name": "Two VMC850 for workshop 2",
                "owner_id": str(org["li"]),
                "amount": "",
                "expected_close_on": (today + timedelta(days=45)).isoformat(),
                "decision_maker": "",
                "competitors": "",
                "need_analysis": "",
                "proposed_solution": "",
            },
        )
    )
    deal_id = last_id(target)
    with app.app_context():
        deal = get(Opportunity, deal_id)
        assert (deal.stage, deal.status, deal.owner_id) == ("lead", "open", org["li"])

    def move(stage: str, **values: str) -> Any:
        with app.app_context():
            version = get(Opportunity, deal_id).lock_version
        return li.post(
            f"/sales/pipeline/{deal_id}/move",
            data={"stage": stage, "next": "detail", "version": str(version), **values},
        )

    # 4. Needs analysis and solution, stage by stage; a stage's required fields first.
    location(move("qualified"))
    refused = move("proposal")
    assert refused.status_code == 422
    with app.app_context():
        assert get(Opportunity, deal_id).stage == "qualified"
    with app.app_context():
        version = get(Opportunity, deal_id).lock_version
    location(
        li.post(
            f"/sales/pipeline/{deal_id}/edit",
            data={
                "name": "Two VMC850 for workshop 2",
                "owner_id": str(org["li"]),
                "amount": "736000",
                "expected_close_on": (today + timedelta(days=45)).isoformat(),
                "decision_maker": "Zhou Jianhua, head of equipment",
                "competitors": "Dongfang CNC",
                "need_analysis": "30 % more parts a month; 0.008 mm positioning accuracy.",
                "proposed_solution": "",
                "version": str(version),
            },
        )
    )
    location(move("needs_analysis"))
    location(
        move(
            "proposal",
            proposed_solution="Two VMC850 prepared for a fourth axis, with training.",
        )
    )
    assert move("negotiation").status_code == 422  # no quotation yet
    with app.app_context():
        deal = get(Opportunity, deal_id)
        assert (deal.stage, deal.probability_pct) == ("proposal", 60)
        assert deal.proposed_solution and deal.need_analysis
    assert li.get(f"/sales/pipeline/{deal_id}").status_code == 200

    # 5. A quotation with 8 % off: above a salesperson's 5 % (rules/discount_approval.yaml).
    target = location(
        li.post(
            f"/sales/quotes/new?opportunity_id={deal_id}",
            data={
                "valid_until": (today + timedelta(days=30)).isoformat(),
                "delivery_method": "installation",
                "delivery_note": "Delivered and installed in workshop 2",
                "payment_terms": "30 % with the order, 70 % after acceptance",
                "payment_terms_days": "30",
                "notes": "Prices include VAT",
                "lines-0-product_id": str(product_id),
                "lines-0-description": "",
                "lines-0-quantity": "2",
                "lines-0-unit_price": "",
                "lines-0-unit_cost": "",
                "lines-0-discount": "8",
                "action": "save",
            },
        )
    )
    quote_id = last_id(target)
    with app.app_context():
        quote = get(Quotation, quote_id)
        assert (quote.status, quote.owner_id) == ("draft", org["li"])
        assert quote.list_total_cents == 73_600_000
        assert quote.total_cents == 67_712_000
        assert quote.discount_bp == 800

    # 6. Submitted, it waits for her supervisor; she cannot approve it herself.
    location(li.post(f"/sales/quotes/{quote_id}/submit"))
    with app.app_context():
        quote = get(Quotation, quote_id)
        assert quote.status == "pending"
        request_id = quote.approval_request_id
        request = get(ApprovalRequest, request_id)
        assert (request.kind, request.status) == ("sales.discount", "pending")
        assert request.routes == ["supervisor"]
        assert current_step(request).approver_id == org["sup_east"]
        assert notified("sup_east", "core.approval_waiting")
    assert li.post(f"/approvals/{request_id}/act", data={"action": "approve"}).status_code == 403
    assert move("negotiation").status_code == 303  # a quotation exists now

    # 7. Zhang finds it waiting for him and approves it on the approval's page.
    with app.app_context():
        number = get(Quotation, quote_id).number
    assert number in zhang.get("/approvals/").get_data(as_text=True)
    page = zhang.get(f"/approvals/{request_id}")
    assert page.status_code == 200 and number in page.get_data(as_text=True)
    location(
        zhang.post(
            f"/approvals/{request_id}/act",
            data={"action": "approve", "comment": "Approved: strategic customer."},
        )
    )
    with app.app_context():
        assert get(ApprovalRequest, request_id).status == "approved"
        assert get(Quotation, quote_id).status == "approved"
        assert notified("li", "sales.quote_decided")
    assert emitted("core.approval_decided", request_id=request_id, status="approved")

    # 8. Sent to the customer, who accepts.
    location(li.post(f"/sales/quotes/{quote_id}/answer", data={"status": "sent", "note": ""}))
    location(
        li.post(
            f"/sales/quotes/{quote_id}/answer",
            data={"status": "accepted", "note": "Accepted by email from their purchasing"},
        )
    )
    with app.app_context():
        quote = get(Quotation, quote_id)
        assert quote.status == "accepted" and quote.sent_at is not None
        total = quote.total_cents

    # 9. The contract from the accepted quotation: checklist ticked, sent to review.
    assert li.get(f"/sales/contracts/new?quote_id={quote_id}").status_code == 200
    deposit = total * 30 // 100
    contract_form = {
        "title": "Purchase of two VMC850",
        "starts_on": today.isoformat(),
        "ends_on": (today + timedelta(days=90)).isoformat(),
        "payment_terms_days": "30",
        "clauses_note": "",
        "milestones-delivery": (today + timedelta(days=14)).isoformat(),
        "milestones-installation": (today + timedelta(days=21)).isoformat(),
        "milestones-commissioning": "",
        "milestones-acceptance": (today + timedelta(days=35)).isoformat(),
        "instalments-0-due_on": today.isoformat(),
        "instalments-0-amount": f"{deposit / 100:.2f}",
        "instalments-1-due_on": (today + timedelta(days=65)).isoformat(),
        "instalments-1-amount": f"{(total - deposit) / 100:.2f}",
        **{f"checklist-{code}": "y" for code in CHECKLIST},
    }
    target = location(li.post(f"/sales/contracts/new?quote_id={quote_id}", data=contract_form))
    contract_id = last_id(target)
    with app.app_context():
        contract = get(Contract, contract_id)
        assert (contract.status, contract.amount_cents, contract.owner_id) == (
            "draft",
            total,
            org["li"],
        )
        assert all(contract.checklist.values())
        version = contract.lock_version
    location(li.post(f"/sales/contracts/{contract_id}/submit", data={"submit-version": version}))
    with app.app_context():
        contract = get(Contract, contract_id)
        assert contract.status == "in_review"
        review_id = contract.approval_request_id
        review = get(ApprovalRequest, review_id)
        # Over 500,000 yuan and a first contract with this customer: supervisor,
        # manager, finance (rules/contract_review.yaml).
        assert review.routes == ["supervisor", "manager", "finance"]
        assert current_step(review).approver_id == org["sup_east"]

    # 10. The reviewers approve in turn (finance cannot jump the queue).
    assert fin.post(f"/approvals/{review_id}/act", data={"action": "approve"}).status_code in (
        403,
        404,
    )
    location(zhang.post(f"/approvals/{review_id}/act", data={"action": "approve"}))
    location(boss.post(f"/approvals/{review_id}/act", data={"action": "approve"}))
    with app.app_context():
        assert get(Contract, contract_id).status == "in_review"
    location(fin.post(f"/approvals/{review_id}/act", data={"action": "approve"}))
    with app.app_context():
        assert get(ApprovalRequest, review_id).status == "approved"
        contract = get(Contract, contract_id)
        assert contract.status == "approved"
        assert notified("li", "sales.contract_decided")
        version = contract.lock_version

    # 11. Li signs: execution starts; the prospect is a customer, the deal won.
    location(
        li.post(
            f"/sales/contracts/{contract_id}/sign",
            data={"sign-signed_on": today.isoformat(), "sign-version": version},
        )
    )
    with app.app_context():
        contract = get(Contract, contract_id)
        assert contract.status == "executing" and contract.signed_on == today
        customer = get(Customer, customer_id)
        assert customer.stage == "customer" and customer.became_customer_at is not None
        deal = get(Opportunity, deal_id)
        assert (deal.stage, deal.status, deal.probability_pct) == ("won", "won", 100)
        milestones = {
            row.kind: row
            for row in db.session.scalars(
                sa.select(Milestone).where(Milestone.contract_id == contract_id)
            )
        }
        assert set(milestones) == {"delivery", "installation", "acceptance"}
        for row in milestones.values():
            item = get(LoopItem, row.loop_item_id)
            assert (item.type, item.status, item.owner_id) == ("sales.milestone", "open", org["li"])
        plan = db.session.scalars(
            sa.select(PaymentInstalment).where(PaymentInstalment.contract_id == contract_id)
        ).all()
        assert len(plan) == 2 and sum(row.amount_cents for row in plan) == total
        assert all(get(LoopItem, row.loop_item_id).type == "sales.payment" for row in plan)
        delivery_id = milestones["delivery"].id
        delivery_item_id = milestones["delivery"].loop_item_id
        version = contract.lock_version
    assert emitted("sales.contract_signed", contract_id=contract_id)
    assert emitted("sales.customer_won", customer_id=customer_id)
    assert emitted("sales.opportunity_closed", opportunity_id=deal_id, outcome="won")

    # 12. Delivery is done: its loop item closes, the satisfaction check is raised.
    location(
        li.post(
            f"/sales/contracts/{contract_id}/milestones/{delivery_id}/done",
            data={
                f"m{delivery_id}-note": "Both machines delivered; delivery note signed.",
                f"m{delivery_id}-version": version,
            },
        )
    )
    with app.app_context():
        assert get(Milestone, delivery_id).done_at is not None
        assert get(LoopItem, delivery_item_id).status == "done"
        contract = get(Contract, contract_id)
        satisfaction = get(LoopItem, contract.satisfaction_loop_id)
        assert (satisfaction.type, satisfaction.status) == ("sales.satisfaction", "open")
    assert li.get(f"/sales/contracts/{contract_id}").status_code == 200

    # 13. The customer complains about quality (P3.5): deadlines from complaint_sla.yaml.
    target = location(
        li.post(
            "/sales/aftersales/new",
            data={
                "customer_id": str(customer_id),
                "contract_id": str(contract_id),
                "kind": "complaint",
                "category": "quality",
                "priority": "normal",
                "title": "Spindle noise on machine no. 2",
                "description": "Noisy above 8,000 rpm during the trial run.",
                "received_at": "",
            },
        )
    )
    feedback_id = last_id(target)
    with app.app_context():
        record = get(Feedback, feedback_id)
        assert (record.status, record.owner_id, record.contract_id) == (
            "open",
            org["li"],
            contract_id,
        )
        # A quality complaint is handled as high priority: 4 hours to answer, 48 to resolve.
        received = as_utc(record.received_at)
        assert as_utc(record.first_response_due_at) - received == timedelta(hours=4)
        assert as_utc(record.resolution_due_at) - received == timedelta(hours=48)
        complaint_item_id = record.loop_item_id
        item = get(LoopItem, complaint_item_id)
        assert (item.type, item.status, item.owner_id) == ("sales.complaint", "open", org["li"])

    def act(slug: str, client: Any = li, **fields: str) -> Any:
        with app.app_context():
            version = get(Feedback, feedback_id).lock_version
        data = {f"{slug}-{name}": value for name, value in fields.items()}
        return client.post(
            f"/sales/aftersales/{feedback_id}/{slug}", data={f"{slug}-version": version, **data}
        )

    # 14. Li answers, then records cause and action.
    location(act("respond", first_response="Engineer on site tomorrow at 9."))
    with app.app_context():
        assert get(Feedback, feedback_id).status == "responded"
        assert get(LoopItem, complaint_item_id).status == "in_progress"
    location(
        act(
            "cause",
            cause="Spindle bearing preload set too low at the factory.",
            action_taken="Bearing replaced and preload reset; run-in test passed.",
        )
    )
    with app.app_context():
        assert get(Feedback, feedback_id).status == "resolved"
    # It cannot close yet: no confirmation, no corrective action (quality).
    refused = act("close")
    assert refused.status_code == 422
    with app.app_context():
        assert get(Feedback, feedback_id).status == "resolved"

    # 15. The root cause and corrective action as a loop item of its own.
    location(
        act(
            "corrective",
            title="Add a preload check to final inspection",
            owner_id=str(org["li"]),
            due_on=(today + timedelta(days=10)).isoformat(),
            description="Final inspection measures spindle preload on every machine.",
        )
    )
    with app.app_context():
        corrective_id = get(Feedback, feedback_id).corrective_loop_id
        corrective = get(LoopItem, corrective_id)
        assert (corrective.type, corrective.status, corrective.owner_id) == (
            "sales.corrective_action",
            "open",
            org["li"],
        )
        assert corrective.subject_table == "sales_feedback"

    # 16. Closed by Li with evidence; nobody verifies their own work; Zhang verifies.
    location(
        li.post(
            f"/loops/{corrective_id}/close",
            data={
                "close-note": "Inspection sheet QA-017 now includes the preload check.",
                "close-evidence": "QA-017 rev. 3",
            },
        )
    )
    with app.app_context():
        assert get(LoopItem, corrective_id).status == "done"
        assert notified("sup_east", "core.loop_to_verify", f"/loops/{corrective_id}")
    assert li.post(f"/loops/{corrective_id}/verify", data={}).status_code == 403
    location(zhang.post(f"/loops/{corrective_id}/verify", data={"verify-note": "Checked."}))
    with app.app_context():
        corrective = get(LoopItem, corrective_id)
        assert corrective.status == "verified" and corrective.verified_by_id == org["sup_east"]

    # 17. The customer confirms; the complaint closes with its loop item.
    location(
        act(
            "confirm",
            customer_confirmed_by="Zhou Jianhua, head of equipment",
            customer_confirmation="Confirmed by phone: no noise after 3 days' running.",
        )
    )
    location(act("close"))
    with app.app_context():
        record = get(Feedback, feedback_id)
        assert record.status == "closed" and record.closed_at is not None
        assert record.customer_confirmed_at is not None
        item = get(LoopItem, complaint_item_id)
        assert item.status == "done"
        assert "preload" in item.closure_note
    assert emitted("sales.complaint_closed", feedback_id=feedback_id)
    page = li.get(f"/sales/aftersales/{feedback_id}")
    assert page.status_code == 200
    assert "Add a preload check to final inspection" in page.get_data(as_text=True)

    # 18. The complaint's loop item is verified by Li's supervisor, not by Li.
    assert li.post(f"/loops/{complaint_item_id}/verify", data={}).status_code == 403
    location(zhang.post(f"/loops/{complaint_item_id}/verify", data={"verify-note": "OK."}))
    with app.app_context():
        item = get(LoopItem, complaint_item_id)
        assert item.status == "verified" and item.verified_by_id == org["sup_east"]
        # The whole loop, as it stands at the end.
        assert get(Customer, customer_id).stage == "customer"
        assert get(Opportunity, deal_id).status == "won"
        assert get(Quotation, quote_id).status == "accepted"
        assert get(Contract, contract_id).status == "executing"
        assert get(ApprovalRequest, request_id).status == "approved"
        assert get(ApprovalRequest, review_id).status == "approved"
