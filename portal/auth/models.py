"""People, roles and permission grants. Roles are data: plugins seed them, admins edit them."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from flask_login import UserMixin
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from ..models import TimestampMixin, utcnow
from ..plugins.types import SCOPE_LEVELS

user_roles = sa.Table(
    "core_user_role",
    db.metadata,
    sa.Column("user_id", sa.ForeignKey("core_user.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("role_id", sa.ForeignKey("core_role.id", ondelete="CASCADE"), primary_key=True),
)


class Role(db.Model, TimestampMixin):
    """A role: a name, the data scopes it reaches and the permissions granted to it."""

    __tablename__ = "core_role"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(sa.String(64), unique=True)
    name: Mapped[str] = mapped_column(sa.String(120))
    read_scope: Mapped[str] = mapped_column(sa.String(8), default="own")
    write_scope: Mapped[str] = mapped_column(sa.String(8), default="own")
    rank: Mapped[int] = mapped_column(default=0)
    duties: Mapped[str] = mapped_column(sa.Text, default="")
    grants: Mapped[list[RolePermission]] = relationship(
        back_populates="role", cascade="all, delete-orphan", lazy="selectin"
    )

    @property
    def label(self) -> str:
        """The name to show. While an admin has not renamed a role that a plugin offers,
        the plugin's label is shown in the reader's language; a renamed role keeps the
        admin's wording."""
        from flask import current_app, has_app_context

        from ..i18n import untranslated

        if has_app_context():
            offered = current_app.extensions["portal"].roles.get(self.code)
            if offered is not None and self.name == untranslated(offered[1].label):
                return str(offered[1].label)
        return self.name

    @property
    def permission_codes(self) -> set[str]:
        """Codes granted to this role."""
        return {grant.code for grant in self.grants}


class RolePermission(db.Model):
    """One permission code granted to one role."""

    __tablename__ = "core_role_permission"

    role_id: Mapped[int] = mapped_column(
        sa.ForeignKey("core_role.id", ondelete="CASCADE"), primary_key=True
    )
    code: Mapped[str] = mapped_column(sa.String(120), primary_key=True)
    role: Mapped[Role] = relationship(back_populates="grants")


class KnownPermission(db.Model):
    """Permission codes the installation has seen. Default grants are applied only the
    first time a code is seen, so an admin who revokes a grant is never overruled."""

    __tablename__ = "core_known_permission"
    __audit__ = False

    code: Mapped[str] = mapped_column(sa.String(120), primary_key=True)
    first_seen_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)


class User(db.Model, UserMixin, TimestampMixin):
    """A person who logs in. Their unit places them in the organisation tree."""

    __tablename__ = "core_user"
    __portal_owner__ = "id"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(sa.String(64), unique=True)
    display_name: Mapped[str] = mapped_column(sa.String(120))
    email: Mapped[str | None] = mapped_column(sa.String(254), unique=True)
    phone: Mapped[str | None] = mapped_column(sa.String(32))
    title: Mapped[str | None] = mapped_column(sa.String(120))
    password_hash: Mapped[str] = mapped_column(sa.String(255), info={"audit": False})
    active: Mapped[bool] = mapped_column(default=True)
    locale: Mapped[str | None] = mapped_column(sa.String(16))
    unit_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("core_org_unit.id", ondelete="SET NULL"), index=True
    )
    last_login_at: Mapped[datetime | None] = mapped_column(
        sa.DateTime(timezone=True), info={"audit": False}
    )
    password_changed_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))

    roles: Mapped[list[Role]] = relationship(secondary=user_roles, lazy="selectin")
    unit = relationship("OrgUnit", foreign_keys=[unit_id], lazy="joined")

    # flask-login stores this in the cookie: the key of the server-side login session (so a
    # logout, a password change or the absolute lifetime really ends it), never the id.
    login_session_key = None  # not a column: set per request by the user loader

    def get_id(self) -> str:
        if not self.login_session_key:
            raise RuntimeError("log people in with portal.auth.services.start_session")
        return self.login_session_key

    @property
    def is_active(self) -> bool:  # type: ignore[override]
        return self.active

    @property
    def role_codes(self) -> set[str]:
        """Codes of the person's roles."""
        return {role.code for role in self.roles}

    @property
    def permissions(self) -> set[str]:
        """Every permission code the person holds through any role."""
        codes: set[str] = set()
        for role in self.roles:
            codes |= role.permission_codes
        return codes

    def can(self, code: str) -> bool:
        """Whether the person holds permission ``code``."""
        return code in self.permissions

    def scope_for(self, verb: str) -> str:
        """The widest data scope any of the person's roles gives for ``verb``
        (``read`` or ``write``): none < own < team < all."""
        attribute = "read_scope" if verb == "read" else "write_scope"
        best = 0
        for role in self.roles:
            level = getattr(role, attribute)
            if level in SCOPE_LEVELS:
                best = max(best, SCOPE_LEVELS.index(level))
        return SCOPE_LEVELS[best]

    @property
    def top_role(self) -> Role | None:
        """The highest-ranked role, shown as the person's main role."""
        return max(self.roles, key=lambda role: role.rank, default=None)


class ApiToken(db.Model):
    """A bearer token for the JSON API; only its SHA-256 digest is stored."""

    __tablename__ = "core_api_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(
        sa.ForeignKey("core_user.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(sa.String(120), default="")
    digest: Mapped[str] = mapped_column(sa.String(64), unique=True, info={"audit": False})
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(
        sa.DateTime(timezone=True), info={"audit": False}
    )
    revoked: Mapped[bool] = mapped_column(default=False)
    user: Mapped[User] = relationship(lazy="joined")


class LoginAttempt(db.Model):
    """Every login attempt, for throttling. A log itself, so not written to the audit log."""

    __tablename__ = "core_login_attempt"
    __audit__ = False
    __table_args__ = (
        sa.Index("ix_core_login_attempt_username_at", "username", "at"),
        sa.Index("ix_core_login_attempt_address_at", "address", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    username: Mapped[str] = mapped_column(sa.String(64))
    address: Mapped[str] = mapped_column(sa.String(64))
    success: Mapped[bool] = mapped_column(default=False)


class UserSession(db.Model):
    """One login on one device. The cookie carries only its random key; ending the row
    (logout, password change, disabling the person, age) ends that login everywhere."""

    __tablename__ = "core_user_session"
    __audit__ = False  # a log itself; logins and logouts are also in the login attempts

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(sa.String(64), unique=True)
    user_id: Mapped[int] = mapped_column(
        sa.ForeignKey("core_user.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    address: Mapped[str] = mapped_column(sa.String(64), default="")
    user_agent: Mapped[str] = mapped_column(sa.String(200), default="")
