"""Rule versions, each ruleset's load status, and the decisions that changed records."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from ..models import utcnow


class RuleVersion(db.Model):
    """One version of a rule file. Published versions are the policy in force (the
    newest per ruleset); drafts wait for tests, simulation and publishing."""

    __tablename__ = "core_rule_version"
    __table_args__ = (
        sa.UniqueConstraint("ruleset", "version", name="uq_core_rule_version_ruleset_version"),
        sa.Index("ix_core_rule_version_ruleset_status", "ruleset", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ruleset: Mapped[str] = mapped_column(sa.String(64))
    version: Mapped[int | None] = mapped_column()
    sha: Mapped[str] = mapped_column(sa.String(64))
    source: Mapped[str] = mapped_column(sa.Text)
    status: Mapped[str] = mapped_column(sa.String(16), default="draft")
    origin: Mapped[str] = mapped_column(sa.String(16), default="browser")
    note: Mapped[str] = mapped_column(sa.String(500), default="")
    author_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("core_user.id", ondelete="SET NULL")
    )
    author: Mapped[str] = mapped_column(sa.String(120), default="")
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))


class RulesetStatus(db.Model):
    """The last problem met while loading a ruleset's file, shown on the admin page."""

    __tablename__ = "core_ruleset_status"

    ruleset: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    file_sha: Mapped[str] = mapped_column(sa.String(64), default="")
    last_error: Mapped[str] = mapped_column(sa.Text, default="")
    checked_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)


class RuleDecision(db.Model):
    """A decision that changed a record, with the version and inputs behind it: the answer
    to "why was this blocked / routed / awarded?", and the history simulation replays."""

    __tablename__ = "core_rule_decision"
    __audit__ = False  # a log itself
    __table_args__ = (
        sa.Index("ix_core_rule_decision_ruleset_at", "ruleset", "at"),
        sa.Index("ix_core_rule_decision_subject", "subject_table", "subject_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    ruleset: Mapped[str] = mapped_column(sa.String(64))
    version_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("core_rule_version.id", ondelete="SET NULL")
    )
    sha: Mapped[str] = mapped_column(sa.String(64))
    clause: Mapped[str] = mapped_column(sa.String(32), default="")
    rule: Mapped[str] = mapped_column(sa.String(80), default="")
    row: Mapped[int | None] = mapped_column()
    line: Mapped[int | None] = mapped_column()
    subject_table: Mapped[str] = mapped_column(sa.String(120), default="")
    subject_id: Mapped[str] = mapped_column(sa.String(120), default="")
    inputs: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    outputs: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    actions: Mapped[list[Any]] = mapped_column(sa.JSON, default=list)
    actor_id: Mapped[int | None] = mapped_column(sa.Integer)
