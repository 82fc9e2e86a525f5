"""Shared model helpers: timestamps and the owner column every scoped record carries."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, declared_attr, mapped_column


def utcnow() -> datetime:
    """Timezone-aware now; stored as UTC."""
    return datetime.now(UTC)


class TimestampMixin:
    """created_at / updated_at on every business record."""

    created_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), default=utcnow, nullable=False
    )
    updated_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), default=utcnow, onupdate=utcnow, nullable=False
    )


class OwnedMixin:
    """A business record owned by one person. ``portal.scoping.scoped`` filters on
    ``owner_id``, so every list, detail, export, chart and API call sees the same rows."""

    __portal_owner__ = "owner_id"

    @declared_attr
    def owner_id(cls) -> Mapped[int]:  # noqa: N805 - declared_attr takes the class
        return mapped_column(sa.ForeignKey("core_user.id"), index=True, nullable=False)


def as_utc(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything is stored in UTC, so say so."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)
