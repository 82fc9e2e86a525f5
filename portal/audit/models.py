"""The audit log table: who changed what, when, from which address, before and after."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from ..models import utcnow


class AuditEvent(db.Model):
    """One row per written record per flush. Append-only: nothing updates or deletes it."""

    __tablename__ = "core_audit_event"
    __audit__ = False
    __table_args__ = (
        sa.Index("ix_core_audit_event_table_record", "table_name", "record_id"),
        sa.Index("ix_core_audit_event_at", "at"),
        sa.Index("ix_core_audit_event_actor_at", "actor_id", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(sa.Integer)
    actor: Mapped[str] = mapped_column(sa.String(120), default="")
    address: Mapped[str] = mapped_column(sa.String(64), default="")
    action: Mapped[str] = mapped_column(sa.String(16))
    table_name: Mapped[str] = mapped_column(sa.String(120))
    record_id: Mapped[str] = mapped_column(sa.String(120))
    before: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
