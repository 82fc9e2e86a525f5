"""Organisation units: a tree (company > region / product line > team) with a leader each."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from ..models import TimestampMixin


class OrgUnit(db.Model, TimestampMixin):
    """A unit of the organisation. ``path`` ("/1/4/9/") makes "the whole subtree" one
    indexed prefix match, so a supervisor's scope is a single query however deep."""

    __tablename__ = "core_org_unit"
    __table_args__ = (
        sa.UniqueConstraint("parent_id", "name", name="uq_core_org_unit_parent_name"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(120))
    kind: Mapped[str] = mapped_column(sa.String(40))
    parent_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("core_org_unit.id", ondelete="RESTRICT"), index=True
    )
    path: Mapped[str] = mapped_column(sa.String(512), index=True, default="/")
    leader_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("core_user.id", ondelete="SET NULL", use_alter=True), index=True
    )
    active: Mapped[bool] = mapped_column(default=True)

    parent: Mapped[OrgUnit | None] = relationship(remote_side=[id], lazy="joined", join_depth=1)
    leader = relationship("User", foreign_keys=[leader_id], lazy="joined")

    @property
    def depth(self) -> int:
        """How far below the root the unit sits (root = 0)."""
        return self.path.count("/") - 2
