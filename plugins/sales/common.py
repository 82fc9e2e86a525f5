"""What every part of the sales plugin shares: scoped access to customers and the
records that hang off them, document numbers, and the stages of the pipeline.

Customers, opportunities, quotations, contracts and feedback carry their own
``owner_id`` and go through ``portal.scoping`` directly. Activities, contact persons,
quotation lines, milestones and instalments have no owner of their own: whoever may
see the parent sees them, so their queries join the parent and scope that.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from flask import abort
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from portal.auth.models import User
from portal.extensions import db
from portal.rules.service import rules
from portal.scoping import can_reach, get_scoped_or_404, scoped

from .models import Activity, Contract, Counter, Customer

STAGES_RULESET = "opportunity_stages"


# -- scope ---------------------------------------------------------------------------


def customers_for(user: User, verb: str = "read") -> sa.Select:
    """A SELECT of the customers ``user`` may reach (pool prospects have no owner and
    are never in it: the pool has its own page)."""
    return scoped(sa.select(Customer), Customer, user, verb)


def get_customer_or_404(customer_id: int, user: User, verb: str = "read") -> Customer:
    """One customer in scope (404 outside the read scope, 403 when read-only)."""
    return get_scoped_or_404(Customer, customer_id, user, verb)


def activities_for(user: User) -> sa.Select:
    """A SELECT of activities whose customer ``user`` may read."""
    return scoped(
        sa.select(Activity).join(Customer, Activity.customer_id == Customer.id), Customer, user
    )


def get_child_or_404(
    model: Any, record_id: int, parent: Any, parent_key: str, user: User, verb: str = "read"
) -> Any:
    """A record without an owner of its own (line, milestone, instalment, contact
    person), reached through its parent's scope: 404 unless the parent is reachable."""
    record = db.session.get(model, record_id)
    if record is None:
        abort(404)
    owner_record = db.session.get(parent, getattr(record, parent_key))
    if owner_record is None or not can_reach(owner_record, user, "read"):
        abort(404)
    if verb != "read" and not can_reach(owner_record, user, verb):
        abort(403)
    return record


def may_edit(record: Any, user: User) -> bool:
    """Whether ``user`` may change ``record``: the right to edit sales records, and the
    record (by its owner) in their write scope."""
    return record is not None and user.can("sales.edit") and can_reach(record, user, "write")


def contracts_for(user: User, verb: str = "read") -> sa.Select:
    """A SELECT of the contracts ``user`` may reach."""
    return scoped(sa.select(Contract), Contract, user, verb)


# -- numbers ---------------------------------------------------------------------------


def next_number(series: str, prefix: str, now: datetime | None = None) -> str:
    """The next document number of ``series`` this year, e.g. ``QT-2026-00042``.
    The counter row is created if missing (``ON CONFLICT DO NOTHING``) and bumped by one
    ``UPDATE ... RETURNING``, which holds the row until the caller commits: two requests
    never get the same number, and a rolled-back document gives its number back."""
    year = (now or datetime.now(UTC)).year
    dialect = db.session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    db.session.execute(
        insert(Counter).values(series=series, year=year, value=0).on_conflict_do_nothing()
    )
    value = db.session.execute(
        sa.update(Counter)
        .where(Counter.series == series, Counter.year == year)
        .values(value=Counter.value + 1)
        .returning(Counter.value)
        .execution_options(synchronize_session=False)
    ).scalar_one()
    return f"{prefix}-{year}-{value:05d}"


# -- pipeline stages -----------------------------------------------------------------------


@dataclass(frozen=True)
class Stage:
    """One stage of the pipeline as rules/opportunity_stages.yaml defines it."""

    code: str
    position: int
    probability_pct: int
    required_fields: tuple[str, ...]
    outcome: str  # open, won or lost

    @property
    def is_open(self) -> bool:
        return self.outcome == "open"


def stages() -> list[Stage]:
    """The stages in pipeline order, from the version of the rule file in force
    (re-read when a new version is published)."""
    active = rules().active(STAGES_RULESET)
    return list(_stages_of(active.rule_file.sha))


@lru_cache(maxsize=8)
def _stages_of(sha: str) -> tuple[Stage, ...]:
    active = rules().active(STAGES_RULESET)
    codes = list(active.rule_file.inputs["stage"].values or ())
    found = []
    for position, code in enumerate(codes):
        outputs = rules().evaluate(STAGES_RULESET, {"stage": code}).outputs
        found.append(
            Stage(
                code=code,
                position=position,
                probability_pct=int(outputs.get("probability_pct") or 0),
                required_fields=tuple(outputs.get("required_fields") or ()),
                outcome=str(outputs.get("outcome") or "open"),
            )
        )
    return tuple(found)


def stage_by_code() -> dict[str, Stage]:
    """The stages keyed by code."""
    return {stage.code: stage for stage in stages()}
