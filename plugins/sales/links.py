"""Sales records other plugins may link to (``portal_link_targets``): customers and
opportunities, searched and named only within the current user's own scope
(``customers_for``, ``opportunities_for``), so a link never reveals a record its
reader may not open. Daily management's expense lines use them (P6.4: an expense for
a customer or a deal)."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from flask_login import current_user

from portal.extensions import db
from portal.listing import like_pattern

from .common import customers_for
from .models import Customer, Opportunity
from .pipeline import opportunities_for

MAX_IDS = 500


def _may_view() -> bool:
    return bool(getattr(current_user, "is_authenticated", False)) and current_user.can("sales.view")


def search_customers(text: str, limit: int) -> list[tuple[int, str]]:
    """Customers the current user may read whose name contains ``text``, by name."""
    if not _may_view():
        return []
    statement = customers_for(current_user).with_only_columns(Customer.id, Customer.name)
    if text:
        statement = statement.where(Customer.name.ilike(like_pattern(text), escape="\\"))
    statement = statement.order_by(Customer.name, Customer.id).limit(limit)
    return [(row.id, row.name) for row in db.session.execute(statement)]


def customer_names(ids: Sequence[int]) -> dict[int, str]:
    """``{id: name}`` of the customers among ``ids`` the current user may read."""
    if not _may_view() or not ids:
        return {}
    statement = (
        customers_for(current_user)
        .with_only_columns(Customer.id, Customer.name)
        .where(Customer.id.in_(list(ids)[:MAX_IDS]))
    )
    return {row.id: row.name for row in db.session.execute(statement)}


def _opportunity_label(name: str, customer: str | None) -> str:
    return f"{name} ({customer})" if customer else name


def _opportunities(statement: sa.Select) -> sa.Select:
    return statement.with_only_columns(Opportunity.id, Opportunity.name, Customer.name).outerjoin(
        Customer, Customer.id == Opportunity.customer_id
    )


def search_opportunities(text: str, limit: int) -> list[tuple[int, str]]:
    """Opportunities the current user may read whose name or customer contains
    ``text``, newest first."""
    if not _may_view():
        return []
    statement = _opportunities(opportunities_for(current_user))
    if text:
        pattern = like_pattern(text)
        statement = statement.where(
            sa.or_(
                Opportunity.name.ilike(pattern, escape="\\"),
                Customer.name.ilike(pattern, escape="\\"),
            )
        )
    statement = statement.order_by(Opportunity.id.desc()).limit(limit)
    return [(row[0], _opportunity_label(row[1], row[2])) for row in db.session.execute(statement)]


def opportunity_names(ids: Sequence[int]) -> dict[int, str]:
    """``{id: label}`` of the opportunities among ``ids`` the current user may read."""
    if not _may_view() or not ids:
        return {}
    statement = _opportunities(opportunities_for(current_user)).where(
        Opportunity.id.in_(list(ids)[:MAX_IDS])
    )
    return {row[0]: _opportunity_label(row[1], row[2]) for row in db.session.execute(statement)}
