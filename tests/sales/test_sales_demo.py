"""The demo quarter (``portal demo``, plugins/sales/demo.py): built on a fresh database
through the areas' services, it tells the story a visitor should see: every pipeline
stage, overdue follow-ups, an open complaint past its first-response deadline, a
discount waiting for a supervisor, a signed contract with an overdue instalment, the
shared pool; and a salesperson sees only her own customers."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from plugins.sales.demo import FIRMS, POOL, PRODUCTS
from plugins.sales.models import (
    Activity,
    ContactPerson,
    Contract,
    Customer,
    Feedback,
    MarketNote,
    Opportunity,
    PaymentInstalment,
    Product,
    Quotation,
)
from portal.auth.models import User
from portal.demo import DEMO_PASSWORD
from portal.extensions import db
from portal.loops.approvals import current_step
from portal.loops.models import ApprovalRequest, LoopItem
from portal.loops.service import local_today
from portal.models import as_utc, utcnow

SALES_TABLES = (
    Product,
    Customer,
    ContactPerson,
    Activity,
    Opportunity,
    Quotation,
    Contract,
    PaymentInstalment,
    Feedback,
    MarketNote,
)


@pytest.fixture
def demo(app: Any) -> Any:
    """The portal after ``portal demo`` (the command people run)."""
    result = app.test_cli_runner().invoke(args=["demo"])
    assert result.exit_code == 0, result.output
    return app


def user(username: str) -> User:
    return db.session.scalars(sa.select(User).where(User.username == username)).one()


def counts() -> dict[str, int]:
    return {
        model.__tablename__: db.session.scalar(sa.select(sa.func.count()).select_from(model))
        for model in SALES_TABLES
    }


def test_p3_demo_builds_a_believable_quarter_once(demo: Any) -> None:
    with demo.app_context():
        first = counts()
        assert first["sales_product"] == len(PRODUCTS)
        assert first["sales_customer"] == len(FIRMS) + len(POOL)
        assert first["sales_activity"] >= 140
        assert first["sales_contact_person"] >= first["sales_customer"]
        assert first["sales_market_note"] >= 10
        kinds = set(db.session.scalars(sa.select(MarketNote.kind).distinct()))
        assert {"market", "competitor"} <= kinds
        # The quarter: activities over the last 90 days, none in the future.
        now = utcnow()
        times = [as_utc(at) for at in db.session.scalars(sa.select(Activity.occurred_at))]
        assert max(times) <= now
        assert (now - min(times)).days <= 92
        assert {"call", "visit", "email"} <= set(
            db.session.scalars(sa.select(Activity.kind).distinct())
        )
        visits = db.session.scalars(sa.select(Activity).where(Activity.kind == "visit")).all()
        assert visits and all(visit.location_note for visit in visits)
        # Every salesperson has a book of customers, with grades and industries.
        owners = dict(
            db.session.execute(
                sa.select(User.username, sa.func.count(Customer.id))
                .join(Customer, Customer.owner_id == User.id)
                .group_by(User.username)
            ).all()
        )
        for name in ("sales_li", "sales_wang", "sales_zhao", "sales_liu"):
            assert owners[name] >= 12
        assert set(db.session.scalars(sa.select(Customer.grade).distinct())) == set("ABCD")
        assert len(set(db.session.scalars(sa.select(Customer.industry).distinct()))) >= 6
    # Running the demo again changes nothing.
    again = demo.test_cli_runner().invoke(args=["demo"])
    assert again.exit_code == 0, again.output
    with demo.app_context():
        assert counts() == first


def test_p3_demo_has_every_stage_and_the_deals_waiting(demo: Any) -> None:
    with demo.app_context():
        from plugins.sales.common import stages

        by_stage = dict(
            db.session.execute(
                sa.select(Opportunity.stage, sa.func.count()).group_by(Opportunity.stage)
            ).all()
        )
        for stage in stages():
            assert by_stage.get(stage.code, 0) >= 1, stage.code
        lost = db.session.scalars(sa.select(Opportunity).where(Opportunity.status == "lost")).all()
        assert lost and all(deal.lost_reason for deal in lost)
        # Quotations: revised (a superseded version and a later accepted one).
        statuses = set(db.session.scalars(sa.select(Quotation.status)))
        assert {"pending", "sent", "accepted", "superseded", "declined"} <= statuses
        revised = db.session.scalars(
            sa.select(Quotation).where(Quotation.version > 1, Quotation.status == "accepted")
        ).all()
        assert revised
        # A discount above the salesperson's authority waits for her supervisor.
        pending = db.session.scalars(
            sa.select(ApprovalRequest).where(
                ApprovalRequest.kind == "sales.discount", ApprovalRequest.status == "pending"
            )
        ).all()
        assert pending
        step = current_step(pending[0])
        assert step is not None and step.approver_id == user("sup_east").id
        assert pending[0].requester_id == user("sales_wang").id
        quote = db.session.scalars(
            sa.select(Quotation).where(Quotation.approval_request_id == pending[0].id)
        ).one()
        assert quote.status == "pending" and quote.discount_bp > 500
        # One approved by a supervisor and sent.
        approved_and_sent = db.session.scalars(
            sa.select(Quotation)
            .join(ApprovalRequest, ApprovalRequest.id == Quotation.approval_request_id)
            .where(Quotation.status == "sent", ApprovalRequest.status == "approved")
            .where(Quotation.discount_bp > 500)
        ).all()
        assert approved_and_sent


def test_p3_demo_contracts_and_after_sales_tell_the_story(demo: Any) -> None:
    with demo.app_context():
        now = utcnow()
        today = local_today()
        contracts = {c.status: c for c in db.session.scalars(sa.select(Contract))}
        assert {"in_review", "executing", "completed"} <= set(contracts)
        review = db.session.get(ApprovalRequest, contracts["in_review"].approval_request_id)
        assert review.status == "pending"
        assert contracts["completed"].satisfaction_score is not None
        # The signed contract: an instalment paid, one overdue.
        running = contracts["executing"]
        plan = db.session.scalars(
            sa.select(PaymentInstalment).where(PaymentInstalment.contract_id == running.id)
        ).all()
        assert any(row.paid_cents == row.amount_cents for row in plan)
        overdue = [row for row in plan if row.paid_cents < row.amount_cents and row.due_on < today]
        assert overdue
        payment_item = db.session.get(LoopItem, overdue[0].loop_item_id)
        assert payment_item.status in ("open", "in_progress")
        assert as_utc(payment_item.due_at) < now
        # Overdue follow-ups are loop items past due.
        late = db.session.scalars(
            sa.select(LoopItem).where(
                LoopItem.type == "sales.follow_up",
                LoopItem.status.in_(("open", "in_progress")),
            )
        ).all()
        assert len([item for item in late if as_utc(item.due_at) < now]) >= 3
        # An open quality complaint, high priority, past its first-response deadline.
        complaint = db.session.scalars(
            sa.select(Feedback).where(Feedback.kind == "complaint", Feedback.status == "open")
        ).one()
        assert (complaint.category, complaint.priority) == ("quality", "high")
        assert complaint.first_responded_at is None
        assert as_utc(complaint.first_response_due_at) < now
        # A closed complaint with cause, action, confirmation and a verified corrective action.
        closed = db.session.scalars(
            sa.select(Feedback).where(Feedback.kind == "complaint", Feedback.status == "closed")
        ).one()
        assert closed.cause and closed.action_taken and closed.customer_confirmed_at
        corrective = db.session.get(LoopItem, closed.corrective_loop_id)
        assert (corrective.type, corrective.status) == ("sales.corrective_action", "verified")
        assert db.session.get(LoopItem, closed.loop_item_id).status == "verified"
        assert db.session.scalar(
            sa.select(sa.func.count()).select_from(Feedback).where(Feedback.kind == "feedback")
        )
        # The shared pool: prospects without owner, some returned by the follow-up rules.
        pool = db.session.scalars(sa.select(Customer).where(Customer.in_pool.is_(True))).all()
        assert len(pool) == len(POOL)
        assert all(prospect.owner_id is None for prospect in pool)
        returned = [p for p in pool if p.previous_owner_id and p.release_reason]
        assert len(returned) >= 3


def test_p3_demo_salesperson_sees_only_her_customers(demo: Any, login: Any) -> None:
    client = demo.test_client()
    login(client, "sales_li", DEMO_PASSWORD)
    response = client.get("/sales/customers/?per_page=100")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    mine = [firm.name for firm in FIRMS if firm.owner == "sales_li"]
    others = [firm.name for firm in FIRMS if firm.owner != "sales_li"]
    others += [entry[2] for entry in POOL]
    assert all(name in page for name in mine)
    assert not [name for name in others if name in page]
