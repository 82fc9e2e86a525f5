"""Tables of the closed loop: loop items and their history, approval requests and
their steps, delegations, notifications, queued emails and the scheduler's job state."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..auth.models import User
from ..extensions import db
from ..models import TimestampMixin, utcnow

# Loop item states, in the order an item normally passes through them.
LOOP_STATUSES = ("open", "in_progress", "done", "verified")
OPEN_STATUSES = ("open", "in_progress")
PRIORITIES = ("low", "normal", "high", "urgent")

# Approval request and step states.
REQUEST_STATUSES = ("pending", "approved", "rejected", "returned", "cancelled")
STEP_STATUSES = ("waiting", "pending", "approved", "rejected", "returned", "skipped")


class LoopItem(TimestampMixin, db.Model):
    """Something raised that must be owned, done by a due date, closed with evidence
    and verified. Scoped by its owner; whoever raised it may also read it."""

    __tablename__ = "core_loop_item"
    __portal_owner__ = "owner_id"
    __table_args__ = (
        sa.Index("ix_core_loop_item_owner_status_due", "owner_id", "status", "due_at"),
        # The sweeps walk open items past (or near) their due date in (due_at, id) order.
        sa.Index("ix_core_loop_item_status_due", "status", "due_at", "id"),
        sa.Index("ix_core_loop_item_subject", "subject_table", "subject_id"),
        sa.Index("ix_core_loop_item_raised_status", "raised_by_id", "status"),
        # The metrics count the items raised in a period within a scope of owners
        # (portal/loops/metrics.py): a range on created_at, owner checked in the index.
        sa.Index("ix_core_loop_item_created_owner", "created_at", "owner_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    type: Mapped[str] = mapped_column(sa.String(80), index=True)
    clause: Mapped[str] = mapped_column(sa.String(32), default="")
    title: Mapped[str] = mapped_column(sa.String(200))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    subject_table: Mapped[str | None] = mapped_column(sa.String(64))
    subject_id: Mapped[str | None] = mapped_column(sa.String(64))
    # Where the raising plugin shows the subject (a path inside the portal): the link
    # from the item back to its record; the record finds its items by subject_table/id.
    subject_link: Mapped[str] = mapped_column(sa.String(500), default="")
    owner_id: Mapped[int] = mapped_column(sa.ForeignKey("core_user.id"))
    raised_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("core_user.id"))
    due_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    priority: Mapped[str] = mapped_column(sa.String(16), default="normal")
    status: Mapped[str] = mapped_column(sa.String(16), default="open")
    closure_note: Mapped[str] = mapped_column(sa.Text, default="")
    evidence: Mapped[str] = mapped_column(sa.Text, default="")
    started_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    verified_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    verified_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("core_user.id"))
    escalation_level: Mapped[int] = mapped_column(default=0)
    escalated_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    reopen_count: Mapped[int] = mapped_column(default=0)
    # The due date the owner was last reminded of: one reminder per item and due date.
    reminded_due_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    # Optimistic lock: two people acting on the same item at once cannot both win.
    lock_version: Mapped[int] = mapped_column(default=1)

    owner: Mapped[User] = relationship(foreign_keys=[owner_id], lazy="joined")
    raised_by: Mapped[User | None] = relationship(foreign_keys=[raised_by_id], lazy="joined")
    verified_by: Mapped[User | None] = relationship(foreign_keys=[verified_by_id])

    __mapper_args__ = {"version_id_col": lock_version}

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


class LoopEvent(db.Model):
    """One change of a loop item: the history that survives closing and reopening."""

    __tablename__ = "core_loop_event"
    __audit__ = False  # the history is itself the record of the change

    id: Mapped[int] = mapped_column(primary_key=True)
    loop_id: Mapped[int] = mapped_column(
        sa.ForeignKey("core_loop_item.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(sa.ForeignKey("core_user.id"))
    action: Mapped[str] = mapped_column(sa.String(32))
    from_status: Mapped[str | None] = mapped_column(sa.String(16))
    to_status: Mapped[str | None] = mapped_column(sa.String(16))
    note: Mapped[str] = mapped_column(sa.Text, default="")
    details: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)

    actor: Mapped[User | None] = relationship(lazy="joined")


class LoopAttachment(db.Model):
    """A file attached as closure evidence, stored under ``instance/uploads/loops``."""

    __tablename__ = "core_loop_attachment"

    id: Mapped[int] = mapped_column(primary_key=True)
    loop_id: Mapped[int] = mapped_column(
        sa.ForeignKey("core_loop_item.id", ondelete="CASCADE"), index=True
    )
    filename: Mapped[str] = mapped_column(sa.String(255))
    stored_name: Mapped[str] = mapped_column(sa.String(80), unique=True)
    content_type: Mapped[str] = mapped_column(sa.String(120), default="application/octet-stream")
    size: Mapped[int] = mapped_column(default=0)
    sha256: Mapped[str] = mapped_column(sa.String(64), default="")
    uploaded_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("core_user.id"))
    uploaded_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)


class ApprovalRequest(TimestampMixin, db.Model):
    """One thing submitted for approval, routed by the rule file of its kind."""

    __tablename__ = "core_approval_request"
    __portal_owner__ = "requester_id"
    __table_args__ = (
        sa.Index("ix_core_approval_request_subject", "subject_table", "subject_id"),
        sa.Index("ix_core_approval_request_requester_status", "requester_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(80), index=True)
    title: Mapped[str] = mapped_column(sa.String(200))
    subject_table: Mapped[str | None] = mapped_column(sa.String(64))
    subject_id: Mapped[str | None] = mapped_column(sa.String(64))
    requester_id: Mapped[int] = mapped_column(sa.ForeignKey("core_user.id"))
    # Where the plugin shows the record this request is about (its own page).
    subject_link: Mapped[str] = mapped_column(sa.String(500), default="")
    status: Mapped[str] = mapped_column(sa.String(16), default="pending", index=True)
    # Position of the step now waiting (1-based); 0 once decided.
    current_position: Mapped[int] = mapped_column(default=1)
    # 1 for the first submission, +1 for each resubmission after a return.
    round: Mapped[int] = mapped_column(default=1)
    facts: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    # The route names exactly as the rule file gave them, before people were resolved
    # (collapsed or escalated steps stay explainable).
    routes: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    # Which rule file version routed it, and which rule matched: the explanation.
    ruleset: Mapped[str] = mapped_column(sa.String(64), default="")
    rule_version: Mapped[int | None] = mapped_column()
    rule_sha: Mapped[str] = mapped_column(sa.String(64), default="")
    rule_id: Mapped[str] = mapped_column(sa.String(120), default="")
    reason: Mapped[str] = mapped_column(sa.Text, default="")
    decided_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    lock_version: Mapped[int] = mapped_column(default=1)

    requester: Mapped[User] = relationship(lazy="joined")
    steps: Mapped[list[ApprovalStep]] = relationship(
        back_populates="request",
        order_by="ApprovalStep.position",
        cascade="all, delete-orphan",
        lazy="selectin",
    )

    __mapper_args__ = {"version_id_col": lock_version}


class ApprovalStep(db.Model):
    """One approver's turn. ``approver_id`` names a person; ``role_code`` a pool (any
    holder of the role whose scope reaches the requester may act)."""

    __tablename__ = "core_approval_step"
    __table_args__ = (
        sa.UniqueConstraint("request_id", "position", name="uq_core_approval_step_position"),
        sa.Index("ix_core_approval_step_approver_status", "approver_id", "status"),
        sa.Index("ix_core_approval_step_role_status", "role_code", "status"),
        sa.Index("ix_core_approval_step_acted_by", "acted_by_id", "acted_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(
        sa.ForeignKey("core_approval_request.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column()
    route: Mapped[str] = mapped_column(sa.String(64))
    approver_id: Mapped[int | None] = mapped_column(sa.ForeignKey("core_user.id"))
    role_code: Mapped[str | None] = mapped_column(sa.String(64))
    status: Mapped[str] = mapped_column(sa.String(16), default="waiting")
    # Which submission of the request the step belongs to (old rounds stay as history).
    round: Mapped[int] = mapped_column(default=1)
    # Why the step is not what the route name says (skipped requester, escalated, pooled).
    note: Mapped[str] = mapped_column(sa.Text, default="")
    acted_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("core_user.id"))
    # Set when a delegate acted for the step's approver while they were away.
    on_behalf_of_id: Mapped[int | None] = mapped_column(sa.ForeignKey("core_user.id"))
    comment: Mapped[str] = mapped_column(sa.Text, default="")
    acted_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))

    request: Mapped[ApprovalRequest] = relationship(back_populates="steps")
    approver: Mapped[User | None] = relationship(foreign_keys=[approver_id], lazy="joined")
    acted_by: Mapped[User | None] = relationship(foreign_keys=[acted_by_id], lazy="joined")
    on_behalf_of: Mapped[User | None] = relationship(foreign_keys=[on_behalf_of_id])


class Delegation(db.Model):
    """While ``user`` is away (on leave) from ``starts_on`` to ``ends_on`` inclusive,
    ``delegate`` may act on the approvals waiting for ``user``."""

    __tablename__ = "core_delegation"
    __portal_owner__ = "user_id"
    __table_args__ = (
        sa.Index("ix_core_delegation_delegate_dates", "delegate_id", "starts_on", "ends_on"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("core_user.id"), index=True)
    delegate_id: Mapped[int] = mapped_column(sa.ForeignKey("core_user.id"), index=True)
    starts_on: Mapped[date] = mapped_column(sa.Date)
    ends_on: Mapped[date] = mapped_column(sa.Date)
    reason: Mapped[str] = mapped_column(sa.String(200), default="")
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    # Ended early (back from leave): the row stays, as the record of who could act when.
    ended_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))

    user: Mapped[User] = relationship(foreign_keys=[user_id], lazy="joined")
    delegate: Mapped[User] = relationship(foreign_keys=[delegate_id], lazy="joined")


class Notification(db.Model):
    """An in-app message to one person (the bell)."""

    __tablename__ = "core_notification"
    __portal_owner__ = "user_id"
    __audit__ = False  # a message, not a business record; its cause is audited
    __table_args__ = (
        # The bell's one COUNT (unread of one person) and the list (newest first).
        sa.Index("ix_core_notification_user_read", "user_id", "read_at"),
        sa.Index("ix_core_notification_user_created", "user_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("core_user.id"))
    kind: Mapped[str] = mapped_column(sa.String(80))
    title: Mapped[str] = mapped_column(sa.String(200))
    body: Mapped[str] = mapped_column(sa.Text, default="")
    link: Mapped[str] = mapped_column(sa.String(500), default="")
    created_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), default=utcnow, index=True
    )
    read_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))


class NotificationPreference(db.Model):
    """Whether one kind of notification also reaches one person by email."""

    __tablename__ = "core_notification_preference"

    user_id: Mapped[int] = mapped_column(
        sa.ForeignKey("core_user.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(sa.String(80), primary_key=True)
    email: Mapped[bool] = mapped_column(default=True)


class OutboundEmail(db.Model):
    """An email waiting to be sent: requests only queue it, a sender delivers it, so a
    slow or absent SMTP server never blocks a page, and nothing is lost on a crash."""

    __tablename__ = "core_outbound_email"
    __audit__ = False
    __table_args__ = (sa.Index("ix_core_outbound_email_status_next", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    notification_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("core_notification.id", ondelete="SET NULL")
    )
    to_address: Mapped[str] = mapped_column(sa.String(254))
    subject: Mapped[str] = mapped_column(sa.String(250))
    body: Mapped[str] = mapped_column(sa.Text)
    status: Mapped[str] = mapped_column(sa.String(16), default="queued")
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str] = mapped_column(sa.Text, default="")
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    # Which sender's batch holds the row while it is "sending" (one conditional UPDATE
    # claims a batch; the sender then reads back its own rows by this token).
    claim_token: Mapped[str | None] = mapped_column(sa.String(40))


class JobState(db.Model):
    """When a scheduled job is next due and who holds its lease. Claiming a job is one
    conditional UPDATE, so any number of workers or cron runs never run it twice."""

    __tablename__ = "core_job_state"
    __audit__ = False

    name: Mapped[str] = mapped_column(sa.String(120), primary_key=True)
    next_run_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    lease_owner: Mapped[str | None] = mapped_column(sa.String(120))
    lease_until: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    last_started_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    last_finished_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    last_status: Mapped[str] = mapped_column(sa.String(16), default="")
    last_result: Mapped[str] = mapped_column(sa.Text, default="")
    run_count: Mapped[int] = mapped_column(default=0)
