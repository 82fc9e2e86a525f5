"""Demo data helpers shared by the core and plugins' ``portal_demo_data``."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Flask

from .auth.models import Role, User
from .auth.services import set_password
from .extensions import db
from .org.models import OrgUnit

DEMO_EMAIL_DOMAIN = "demo.example.com"  # reserved for examples; a valid address to edit
# Demo accounts are for trying the portal out; the password is printed by `portal demo`.
DEMO_PASSWORD = "demo-pass-2026"  # noqa: S105 - printed demo password, by design


def ensure_person(
    username: str,
    display_name: str,
    roles: list[str],
    unit: OrgUnit | None = None,
    title: str | None = None,
    email: str | None = None,
) -> User:
    """The demo person ``username``, created once (a second run changes nothing)."""
    user = db.session.scalars(sa.select(User).where(User.username == username)).first()
    if user is not None:
        return user
    role_rows = list(db.session.scalars(sa.select(Role).where(Role.code.in_(roles))))
    user = User(
        username=username,
        display_name=display_name,
        roles=role_rows,
        unit=unit,
        title=title,
        email=email or f"{username}@{DEMO_EMAIL_DOMAIN}",
        password_hash="",
    )
    set_password(user, DEMO_PASSWORD)
    db.session.add(user)
    db.session.flush()
    return user


def ensure_unit(
    name: str, kind: str, parent: OrgUnit | None = None, leader: User | None = None
) -> OrgUnit:
    """The demo unit ``name`` under ``parent``, created once, with its path set."""
    from .org.services import save_unit

    existing = db.session.scalars(
        sa.select(OrgUnit).where(
            OrgUnit.name == name,
            OrgUnit.parent_id.is_(None) if parent is None else OrgUnit.parent_id == parent.id,
        )
    ).first()
    if existing is not None:
        return existing
    return save_unit(None, name, kind, parent.id if parent else None, leader.id if leader else None)


def run_demo(app: Flask) -> list[User]:
    """Every enabled plugin's demo data in dependency order, in one transaction."""
    state = app.extensions["portal"]
    # Publish changed rule files before writing: demo data that asks a rule file would
    # otherwise wait for a publication in a session of its own while this transaction
    # holds SQLite's write lock.
    from .rules.service import rules

    rules().refresh(force=True)
    try:
        for record in state.host.loaded():
            state.host.call_one("portal_demo_data", record.name, app=app)
        # The core's loop items need the people every plugin created, so they come last.
        from .loops.demo import create_demo_loops

        create_demo_loops()
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return list(
        db.session.scalars(
            sa.select(User).where(User.email.like(f"%@{DEMO_EMAIL_DOMAIN}")).order_by(User.id)
        )
    )
