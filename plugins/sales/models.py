"""Tables of the sales process (P3.1-P3.5) and its data (P6.3).

Money is stored as whole fen (``*_cents`` integer columns, 1 yuan = 100) so sums are
exact on SQLite and PostgreSQL alike; percentages as basis points (``*_bp``, 1 % = 100).
``portal/money.py`` converts both. Every business record is scoped through
``portal.scoping``: customers, opportunities, quotations, contracts, feedback and market
notes by their own ``owner_id``; activities, contact persons and lines through their
parent (see ``services.py``). A prospect in the shared pool has no owner.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.auth.models import User
from portal.extensions import db
from portal.models import OwnedMixin, TimestampMixin, utcnow

# Vocabularies. Labels live in vocabulary.py (translated); thresholds live in rule files.
CUSTOMER_STAGES = ("prospect", "customer")
CUSTOMER_GRADES = ("A", "B", "C", "D")
COMPANY_SIZES = ("micro", "small", "medium", "large", "enterprise")
CUSTOMER_SOURCES = ("referral", "exhibition", "website", "cold_call", "partner", "import", "other")
ACTIVITY_KINDS = ("call", "email", "visit", "meeting", "other")
MARKET_NOTE_KINDS = ("market", "competitor", "policy", "price")
OPPORTUNITY_STATUSES = ("open", "won", "lost")
QUOTE_STATUSES = (
    "draft",  # being written
    "pending",  # waiting for discount approval
    "approved",  # approved (or needed none): may be sent
    "rejected",  # refused by the rule file or an approver
    "sent",  # sent to the customer
    "accepted",  # the customer accepted: a contract may be made from it
    "declined",  # the customer declined
    "superseded",  # a later version replaced it
)
QUOTE_OPEN_STATUSES = ("draft", "pending", "approved", "sent")
DELIVERY_METHODS = ("pickup", "courier", "freight", "installation")
CONTRACT_STATUSES = (
    "draft",
    "in_review",  # contract review approval running (P3.4.1, P7.3)
    "approved",  # reviewed: may be signed
    "rejected",
    "signed",
    "executing",
    "completed",
    "cancelled",
)
MILESTONE_KINDS = ("delivery", "installation", "commissioning", "acceptance")
FEEDBACK_KINDS = ("feedback", "complaint")
FEEDBACK_CATEGORIES = ("quality", "usage", "service", "delivery", "billing", "other")
FEEDBACK_PRIORITIES = ("low", "normal", "high", "urgent")
FEEDBACK_STATUSES = ("open", "responded", "resolved", "closed")
IMPORT_STATUSES = ("queued", "checking", "failed", "importing", "done")


class Counter(db.Model):
    """The last number handed out per series and year (quotations, contracts,
    complaints): ``services.next_number`` bumps it with a conditional UPDATE."""

    __tablename__ = "sales_counter"

    series: Mapped[str] = mapped_column(sa.String(20), primary_key=True)
    year: Mapped[int] = mapped_column(primary_key=True)
    value: Mapped[int] = mapped_column(default=0)


class Product(TimestampMixin, db.Model):
    """The product list quotations are made from (P3.3). Not owned: everyone quotes it."""

    __tablename__ = "sales_product"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(sa.String(40), unique=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    category: Mapped[str] = mapped_column(sa.String(80), default="")
    unit: Mapped[str] = mapped_column(sa.String(20), default="")
    list_price_cents: Mapped[int] = mapped_column(sa.BigInteger)
    cost_cents: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    active: Mapped[bool] = mapped_column(default=True)


class MarketNote(OwnedMixin, TimestampMixin, db.Model):
    """Market information and competitor notes by industry and region (P3.1.1)."""

    __tablename__ = "sales_market_note"
    __table_args__ = (sa.Index("ix_sales_market_note_industry_region", "industry", "region"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(20), default="market")
    industry: Mapped[str] = mapped_column(sa.String(80), default="")
    region: Mapped[str] = mapped_column(sa.String(80), default="")
    competitor: Mapped[str] = mapped_column(sa.String(200), default="")
    title: Mapped[str] = mapped_column(sa.String(200))
    body: Mapped[str] = mapped_column(sa.Text, default="")
    observed_on: Mapped[date] = mapped_column(sa.Date)

    owner: Mapped[User] = relationship(foreign_keys="MarketNote.owner_id", lazy="joined")


class Customer(TimestampMixin, db.Model):
    """A prospect or customer file (P3.1.2-P3.1.3). ``owner_id`` is empty while the
    prospect sits in the shared pool (公海); the pool is read by its own query."""

    __tablename__ = "sales_customer"
    __portal_owner__ = "owner_id"
    __table_args__ = (
        sa.Index("ix_sales_customer_owner_name", "owner_id", "name"),
        sa.Index("ix_sales_customer_owner_last_contact", "owner_id", "last_contact_at"),
        sa.Index("ix_sales_customer_pool", "in_pool", "released_at"),
        sa.Index("ix_sales_customer_stage_last_contact", "stage", "last_contact_at"),
        sa.Index("ix_sales_customer_owner_next_follow_up", "owner_id", "next_follow_up_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int | None] = mapped_column(sa.ForeignKey("core_user.id"))
    stage: Mapped[str] = mapped_column(sa.String(16), default="prospect")
    name: Mapped[str] = mapped_column(sa.String(200))
    # Lower-cased, spaces and punctuation removed: the duplicate check compares these.
    name_key: Mapped[str] = mapped_column(sa.String(200), index=True)
    phone: Mapped[str] = mapped_column(sa.String(40), default="")
    phone_key: Mapped[str | None] = mapped_column(sa.String(40), index=True)
    tax_id: Mapped[str | None] = mapped_column(sa.String(40), index=True)
    email: Mapped[str] = mapped_column(sa.String(200), default="")
    industry: Mapped[str] = mapped_column(sa.String(80), default="")
    size: Mapped[str] = mapped_column(sa.String(20), default="")
    region: Mapped[str] = mapped_column(sa.String(80), default="")
    city: Mapped[str] = mapped_column(sa.String(80), default="")
    address: Mapped[str] = mapped_column(sa.String(300), default="")
    source: Mapped[str] = mapped_column(sa.String(20), default="other")
    need: Mapped[str] = mapped_column(sa.Text, default="")
    grade: Mapped[str] = mapped_column(sa.String(1), default="C")
    notes: Mapped[str] = mapped_column(sa.Text, default="")
    # The screening rule file's verdict (P3.1.2) when the record was last saved.
    qualified: Mapped[bool] = mapped_column(default=False)
    # Customer credit risk (P7.2): low, medium or high; read by the contract review.
    credit_risk: Mapped[str] = mapped_column(sa.String(8), default="low")
    last_contact_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    next_follow_up_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    # The open follow-up loop item for the next contact (P3.1.3), if any.
    follow_up_loop_id: Mapped[int | None] = mapped_column(sa.ForeignKey("core_loop_item.id"))
    in_pool: Mapped[bool] = mapped_column(default=False)
    released_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    previous_owner_id: Mapped[int | None] = mapped_column(sa.ForeignKey("core_user.id"))
    # Why it last went to the pool (its owner's reason, or the follow-up sweep's).
    release_reason: Mapped[str] = mapped_column(sa.String(500), default="")
    # When the present owner claimed it from the pool: the follow-up clock starts again
    # then, and the daily claim limit counts these.
    claimed_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("core_user.id"))
    became_customer_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    lock_version: Mapped[int] = mapped_column(default=1)

    owner: Mapped[User | None] = relationship(foreign_keys=[owner_id], lazy="joined")

    __mapper_args__ = {"version_id_col": lock_version}


class ContactPerson(TimestampMixin, db.Model):
    """A person at the customer (decision maker, buyer, user)."""

    __tablename__ = "sales_contact_person"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        sa.ForeignKey("sales_customer.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(sa.String(100))
    title: Mapped[str] = mapped_column(sa.String(100), default="")
    phone: Mapped[str] = mapped_column(sa.String(40), default="")
    email: Mapped[str] = mapped_column(sa.String(200), default="")
    is_primary: Mapped[bool] = mapped_column(default=False)


class Activity(TimestampMixin, db.Model):
    """A call, email or visit on the customer file (P3.1.3). Scoped through its customer:
    whoever may see the customer sees its whole timeline."""

    __tablename__ = "sales_activity"
    __table_args__ = (
        sa.Index("ix_sales_activity_customer_at", "customer_id", "occurred_at"),
        sa.Index("ix_sales_activity_owner_at", "owner_id", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(sa.ForeignKey("sales_customer.id"))
    opportunity_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("sales_opportunity.id"), index=True
    )
    owner_id: Mapped[int] = mapped_column(sa.ForeignKey("core_user.id"))  # who made contact
    kind: Mapped[str] = mapped_column(sa.String(16), default="call")
    occurred_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    summary: Mapped[str] = mapped_column(sa.String(300))
    details: Mapped[str] = mapped_column(sa.Text, default="")
    location_note: Mapped[str] = mapped_column(sa.String(200), default="")
    next_step: Mapped[str] = mapped_column(sa.String(300), default="")
    next_follow_up_on: Mapped[date | None] = mapped_column(sa.Date)
    follow_up_loop_id: Mapped[int | None] = mapped_column(sa.ForeignKey("core_loop_item.id"))

    owner: Mapped[User] = relationship(foreign_keys=[owner_id], lazy="joined")


class Opportunity(OwnedMixin, TimestampMixin, db.Model):
    """A deal being worked (P3.2): needs, solution, stage and amount."""

    __tablename__ = "sales_opportunity"
    __table_args__ = (
        sa.Index("ix_sales_opportunity_owner_status_stage", "owner_id", "status", "stage"),
        sa.Index("ix_sales_opportunity_customer", "customer_id"),
        sa.Index("ix_sales_opportunity_created", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(sa.ForeignKey("sales_customer.id"))
    name: Mapped[str] = mapped_column(sa.String(200))
    # Stage codes and probabilities come from rules/opportunity_stages.yaml.
    stage: Mapped[str] = mapped_column(sa.String(40))
    # The furthest stage reached (its position in the file's order): funnel counts read it.
    furthest_stage_index: Mapped[int] = mapped_column(default=0)
    probability_pct: Mapped[int] = mapped_column(default=0)
    status: Mapped[str] = mapped_column(sa.String(8), default="open")
    amount_cents: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    expected_close_on: Mapped[date | None] = mapped_column(sa.Date)
    need_analysis: Mapped[str] = mapped_column(sa.Text, default="")
    proposed_solution: Mapped[str] = mapped_column(sa.Text, default="")
    decision_maker: Mapped[str] = mapped_column(sa.String(200), default="")
    competitors: Mapped[str] = mapped_column(sa.String(300), default="")
    lost_reason: Mapped[str] = mapped_column(sa.String(40), default="")
    lost_note: Mapped[str] = mapped_column(sa.Text, default="")
    stage_changed_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    # Order of the card inside its kanban column.
    sequence: Mapped[int] = mapped_column(default=0)
    lock_version: Mapped[int] = mapped_column(default=1)

    owner: Mapped[User] = relationship(foreign_keys="Opportunity.owner_id", lazy="joined")
    customer: Mapped[Customer] = relationship(lazy="joined")

    __mapper_args__ = {"version_id_col": lock_version}


class StageChange(db.Model):
    """One move of an opportunity between stages: the funnel's history."""

    __tablename__ = "sales_stage_change"

    id: Mapped[int] = mapped_column(primary_key=True)
    opportunity_id: Mapped[int] = mapped_column(
        sa.ForeignKey("sales_opportunity.id", ondelete="CASCADE"), index=True
    )
    from_stage: Mapped[str] = mapped_column(sa.String(40), default="")
    to_stage: Mapped[str] = mapped_column(sa.String(40))
    changed_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("core_user.id"))
    changed_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)


class Quotation(OwnedMixin, TimestampMixin, db.Model):
    """One version of a quotation (P3.3). Revising copies it into a new version and marks
    this one superseded; ``root_id`` ties the versions together."""

    __tablename__ = "sales_quotation"
    __table_args__ = (
        sa.UniqueConstraint("number", "version", name="uq_sales_quotation_number_version"),
        sa.Index("ix_sales_quotation_owner_status", "owner_id", "status"),
        sa.Index("ix_sales_quotation_opportunity", "opportunity_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(sa.String(32))
    version: Mapped[int] = mapped_column(default=1)
    root_id: Mapped[int | None] = mapped_column(sa.ForeignKey("sales_quotation.id"), index=True)
    opportunity_id: Mapped[int] = mapped_column(sa.ForeignKey("sales_opportunity.id"))
    customer_id: Mapped[int] = mapped_column(sa.ForeignKey("sales_customer.id"), index=True)
    status: Mapped[str] = mapped_column(sa.String(16), default="draft")
    currency: Mapped[str] = mapped_column(sa.String(3), default="CNY")
    delivery_method: Mapped[str] = mapped_column(sa.String(20), default="courier")
    delivery_note: Mapped[str] = mapped_column(sa.String(300), default="")
    payment_terms: Mapped[str] = mapped_column(sa.String(300), default="")
    payment_terms_days: Mapped[int] = mapped_column(default=0)
    valid_until: Mapped[date] = mapped_column(sa.Date)
    list_total_cents: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    total_cents: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    cost_total_cents: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    discount_bp: Mapped[int] = mapped_column(default=0)  # overall discount off list
    margin_bp: Mapped[int] = mapped_column(default=0)  # gross margin after discount
    approval_request_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("core_approval_request.id")
    )
    notes: Mapped[str] = mapped_column(sa.Text, default="")
    sent_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    decided_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    lock_version: Mapped[int] = mapped_column(default=1)

    owner: Mapped[User] = relationship(foreign_keys="Quotation.owner_id", lazy="joined")
    lines: Mapped[list[QuoteLine]] = relationship(
        order_by="QuoteLine.position", cascade="all, delete-orphan", lazy="selectin"
    )

    __mapper_args__ = {"version_id_col": lock_version}


class QuoteLine(db.Model):
    """A line of a quotation: product, quantity, list price and discount."""

    __tablename__ = "sales_quote_line"

    id: Mapped[int] = mapped_column(primary_key=True)
    quotation_id: Mapped[int] = mapped_column(
        sa.ForeignKey("sales_quotation.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(default=0)
    product_id: Mapped[int | None] = mapped_column(sa.ForeignKey("sales_product.id"))
    description: Mapped[str] = mapped_column(sa.String(300))
    quantity: Mapped[int] = mapped_column(default=1)
    unit_price_cents: Mapped[int] = mapped_column(sa.BigInteger)
    unit_cost_cents: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    discount_bp: Mapped[int] = mapped_column(default=0)
    total_cents: Mapped[int] = mapped_column(sa.BigInteger, default=0)


class NegotiationNote(db.Model):
    """A note of the negotiation about one quotation (P3.3 negotiate price and terms)."""

    __tablename__ = "sales_negotiation_note"

    id: Mapped[int] = mapped_column(primary_key=True)
    quotation_id: Mapped[int] = mapped_column(
        sa.ForeignKey("sales_quotation.id", ondelete="CASCADE"), index=True
    )
    author_id: Mapped[int] = mapped_column(sa.ForeignKey("core_user.id"))
    body: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)

    author: Mapped[User] = relationship(lazy="joined")


class Contract(OwnedMixin, TimestampMixin, db.Model):
    """A contract made from an accepted quotation (P3.4), reviewed before signing."""

    __tablename__ = "sales_contract"
    __table_args__ = (
        sa.Index("ix_sales_contract_owner_status", "owner_id", "status"),
        sa.Index("ix_sales_contract_signed_on", "signed_on"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(sa.String(32), unique=True)
    title: Mapped[str] = mapped_column(sa.String(200))
    customer_id: Mapped[int] = mapped_column(sa.ForeignKey("sales_customer.id"), index=True)
    opportunity_id: Mapped[int | None] = mapped_column(sa.ForeignKey("sales_opportunity.id"))
    # One contract per accepted quotation.
    quotation_id: Mapped[int] = mapped_column(sa.ForeignKey("sales_quotation.id"), unique=True)
    status: Mapped[str] = mapped_column(sa.String(16), default="draft")
    amount_cents: Mapped[int] = mapped_column(sa.BigInteger)
    payment_terms_days: Mapped[int] = mapped_column(default=0)
    non_standard_clauses: Mapped[bool] = mapped_column(default=False)
    clauses_note: Mapped[str] = mapped_column(sa.Text, default="")
    # The review checklist: {item code: true/false}; items are listed in vocabulary.py.
    checklist: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    approval_request_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("core_approval_request.id")
    )
    signed_on: Mapped[date | None] = mapped_column(sa.Date)
    starts_on: Mapped[date | None] = mapped_column(sa.Date)
    ends_on: Mapped[date | None] = mapped_column(sa.Date)
    completed_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    # The satisfaction check after delivery (P3.4.2): a loop item, then the answer.
    satisfaction_loop_id: Mapped[int | None] = mapped_column(sa.ForeignKey("core_loop_item.id"))
    satisfaction_score: Mapped[int | None] = mapped_column()  # 1-5
    satisfaction_note: Mapped[str] = mapped_column(sa.Text, default="")
    # Why an unsigned contract was cancelled, and when.
    cancel_reason: Mapped[str] = mapped_column(sa.Text, default="")
    cancelled_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    lock_version: Mapped[int] = mapped_column(default=1)

    owner: Mapped[User] = relationship(foreign_keys="Contract.owner_id", lazy="joined")
    customer: Mapped[Customer] = relationship(lazy="joined")

    __mapper_args__ = {"version_id_col": lock_version}


class Milestone(db.Model):
    """An execution milestone of a contract (delivery, installation, commissioning,
    acceptance), each followed as a loop item (P3.4.2)."""

    __tablename__ = "sales_milestone"

    id: Mapped[int] = mapped_column(primary_key=True)
    contract_id: Mapped[int] = mapped_column(
        sa.ForeignKey("sales_contract.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(sa.String(20))
    due_on: Mapped[date] = mapped_column(sa.Date)
    loop_item_id: Mapped[int | None] = mapped_column(sa.ForeignKey("core_loop_item.id"))
    done_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))


class PaymentInstalment(db.Model):
    """One instalment of a contract's payment plan (P3.4.2 collect payment on time)."""

    __tablename__ = "sales_payment_instalment"
    __table_args__ = (sa.Index("ix_sales_payment_instalment_due", "due_on", "paid_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    contract_id: Mapped[int] = mapped_column(
        sa.ForeignKey("sales_contract.id", ondelete="CASCADE"), index=True
    )
    sequence: Mapped[int] = mapped_column(default=1)
    due_on: Mapped[date] = mapped_column(sa.Date)
    amount_cents: Mapped[int] = mapped_column(sa.BigInteger)
    paid_cents: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    paid_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    loop_item_id: Mapped[int | None] = mapped_column(sa.ForeignKey("core_loop_item.id"))


class Feedback(OwnedMixin, TimestampMixin, db.Model):
    """Customer feedback or a complaint (P3.5). A complaint closes only with cause,
    action and the customer's confirmation; its root cause and corrective action are a
    loop item of their own."""

    __tablename__ = "sales_feedback"
    __table_args__ = (
        sa.Index("ix_sales_feedback_owner_status", "owner_id", "status"),
        sa.Index("ix_sales_feedback_kind_status_received", "kind", "status", "received_at"),
        sa.Index("ix_sales_feedback_category_received", "category", "received_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(sa.String(32), unique=True)
    customer_id: Mapped[int] = mapped_column(sa.ForeignKey("sales_customer.id"), index=True)
    contract_id: Mapped[int | None] = mapped_column(sa.ForeignKey("sales_contract.id"))
    kind: Mapped[str] = mapped_column(sa.String(16), default="complaint")
    category: Mapped[str] = mapped_column(sa.String(16), default="other")
    priority: Mapped[str] = mapped_column(sa.String(8), default="normal")
    status: Mapped[str] = mapped_column(sa.String(16), default="open")
    title: Mapped[str] = mapped_column(sa.String(200))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    received_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    # Deadlines from rules/complaint_sla.yaml when the complaint was logged.
    first_response_due_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    resolution_due_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    first_responded_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    first_response: Mapped[str] = mapped_column(sa.Text, default="")
    escalated_to: Mapped[str] = mapped_column(sa.String(20), default="none")
    escalated_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    cause: Mapped[str] = mapped_column(sa.Text, default="")
    action_taken: Mapped[str] = mapped_column(sa.Text, default="")
    customer_confirmed_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    customer_confirmation: Mapped[str] = mapped_column(sa.Text, default="")
    # Who at the customer confirmed the complaint is resolved (name, role).
    customer_confirmed_by: Mapped[str] = mapped_column(sa.String(200), default="")
    resolved_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    # The complaint's own loop item (owned, due at the resolution deadline) and the root
    # cause / corrective action item (P3.5.2 "improve so it does not happen again").
    loop_item_id: Mapped[int | None] = mapped_column(sa.ForeignKey("core_loop_item.id"))
    corrective_loop_id: Mapped[int | None] = mapped_column(sa.ForeignKey("core_loop_item.id"))
    lock_version: Mapped[int] = mapped_column(default=1)

    owner: Mapped[User] = relationship(foreign_keys="Feedback.owner_id", lazy="joined")
    customer: Mapped[Customer] = relationship(lazy="joined")

    __mapper_args__ = {"version_id_col": lock_version}


class CustomerImport(OwnedMixin, TimestampMixin, db.Model):
    """One upload of a CSV or Excel file of prospects: checked row by row, then written
    in one transaction or not at all; its progress is shown while it runs."""

    __tablename__ = "sales_customer_import"

    id: Mapped[int] = mapped_column(primary_key=True)
    filename: Mapped[str] = mapped_column(sa.String(200))
    stored_name: Mapped[str] = mapped_column(sa.String(100))
    status: Mapped[str] = mapped_column(sa.String(16), default="queued")
    total_rows: Mapped[int] = mapped_column(default=0)
    processed_rows: Mapped[int] = mapped_column(default=0)
    created_count: Mapped[int] = mapped_column(default=0)
    # [{"row": 7, "field": "phone", "message": "..."}], capped (see services).
    errors: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON, default=list)
    finished_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
