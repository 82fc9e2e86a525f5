"""P3.2 Needs analysis and solution design: opportunities, their stages, the kanban
board and the funnel.

The stages, their win probability, the fields that must be filled before a deal may
enter one, and which stages close a deal all come from ``rules/opportunity_stages.yaml``
(``common.stages()``): publishing a new version of the file changes the pipeline
without a code change. A move is checked, written and recorded here (``move_to_stage``);
pages, the API and other parts of the plugin (a signed contract closes its deal as won
through ``close_as_won``) all go through it.

Services never commit: the caller commits once, or rolls back on ``ValidationFailed``.
Every query of opportunities goes through ``portal.scoping``; the board and the funnel
are a handful of grouped statements however many deals there are.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import defaultload, lazyload

from portal.auth.models import User
from portal.events import emit
from portal.extensions import db
from portal.listing import like_pattern
from portal.loops.service import MAX_DUE_DAYS, local_midnight, local_today
from portal.models import utcnow
from portal.money import MAX_AMOUNT_CENTS, to_cents
from portal.org.models import OrgUnit
from portal.org.services import ValidationFailed
from portal.scoping import can_reach, get_scoped_or_404, led_unit_paths, scoped

from .common import Stage, stage_by_code, stages
from .models import Customer, Opportunity, Quotation, StageChange
from .vocabulary import LABELS, label

# Board: won and lost deals stay visible this long after closing; a column shows at
# most this many cards (the rest are one click away in the filtered list).
RECENT_CLOSED_DAYS = 30
CARDS_PER_COLUMN = 50
MAX_CHOICES = 500  # people and units offered in a filter
MAX_TEXT = 20_000

# The fields a person edits on the opportunity form (service names; ``amount`` is in
# yuan and stored as ``amount_cents``).
EDITABLE_FIELDS = (
    "name",
    "need_analysis",
    "proposed_solution",
    "decision_maker",
    "competitors",
    "amount",
    "expected_close_on",
    "owner_id",
)
# What a move may fill in on the way (the missing-fields panel of the board).
MOVE_VALUE_FIELDS = (
    "need_analysis",
    "proposed_solution",
    "decision_maker",
    "competitors",
    "amount",
    "expected_close_on",
    "lost_reason",
    "lost_note",
)
TEXT_LIMITS = {
    "name": 200,
    "need_analysis": MAX_TEXT,
    "proposed_solution": MAX_TEXT,
    "decision_maker": 200,
    "competitors": 300,
    "lost_note": 5000,
}
# Required-field codes of the rule file that are filled on the opportunity itself.
FIELD_REQUIREMENTS = (
    "need_analysis",
    "proposed_solution",
    "amount",
    "expected_close_on",
    "decision_maker",
    "competitors",
    "lost_reason",
)

_MISSING_MESSAGES = {
    "need_analysis": _l("Write the needs analysis before moving to %(stage)s."),
    "proposed_solution": _l("Describe the proposed solution before moving to %(stage)s."),
    "amount": _l("Enter an expected amount above zero before moving to %(stage)s."),
    "expected_close_on": _l("Enter the expected close date before moving to %(stage)s."),
    "decision_maker": _l("Name the decision maker before moving to %(stage)s."),
    "competitors": _l("List the competitors (or write none) before moving to %(stage)s."),
    "quotation": _l("Make a quotation for this opportunity before moving to %(stage)s."),
    "accepted_quotation": _l(
        "The customer must have accepted a quotation before the deal is %(stage)s."
    ),
    "lost_reason": _l("Choose why the deal was lost."),
}


# -- stages ------------------------------------------------------------------------------


def stage_label(code: str) -> str:
    """A stage's name in the reader's language (the code for a stage without a label)."""
    return label("stage", code)


def first_stage() -> Stage:
    """Where a new opportunity starts: the first open stage of the file."""
    every = stages()
    return next((stage for stage in every if stage.is_open), every[0])


def won_stage() -> Stage:
    """The first stage whose outcome is won."""
    found = next((stage for stage in stages() if stage.outcome == "won"), None)
    if found is None:  # a rule file without a won stage cannot close deals as won
        raise ValidationFailed({"stage": [_("The stage list has no won stage.")]})
    return found


def funnel_steps() -> list[Stage]:
    """The funnel's steps: every stage but the lost ones, in pipeline order."""
    return [stage for stage in stages() if stage.outcome != "lost"]


def lost_reasons() -> list[str]:
    """The lost-reason codes offered (labels in vocabulary.py)."""
    return list(LABELS["lost_reason"])


def may_reopen(opportunity: Opportunity, actor: User) -> bool:
    """Whether ``actor`` may take the deal out of its closed stage. A lost deal may be
    revived by whoever works it; a won deal carries a contract and counts in revenue,
    so only a supervisor or manager (a write scope beyond their own) may undo it."""
    if opportunity.status != "won":
        return True
    return actor.scope_for("write") in ("team", "all")


# -- scope -------------------------------------------------------------------------------


def opportunities_for(user: User, verb: str = "read") -> sa.Select:
    """A SELECT of the opportunities ``user`` may reach for ``verb``."""
    return scoped(sa.select(Opportunity), Opportunity, user, verb)


def get_opportunity_or_404(opportunity_id: int, user: User, verb: str = "read") -> Opportunity:
    """One opportunity in scope (404 outside the read scope, 403 when read-only)."""
    return get_scoped_or_404(Opportunity, opportunity_id, user, verb)


def card_loading() -> tuple[Any, ...]:
    """Loader options for a list of opportunities shown with owner and customer names:
    the people's roles and units, and the customer's owner, are not needed."""
    return (
        defaultload(Opportunity.owner).options(lazyload(User.roles), lazyload(User.unit)),
        defaultload(Opportunity.customer).options(lazyload(Customer.owner)),
    )


def load_page(page: Any) -> Any:
    """Turn a page of opportunity ids (``paginate`` over a SELECT of ``Opportunity.id``)
    into the opportunities, in the page's order, with owner and customer in one query:
    the database sorts narrow rows only, however many deals match."""
    ids = list(page.items)
    found = (
        {
            row.id: row
            for row in db.session.scalars(
                sa.select(Opportunity).options(*card_loading()).where(Opportunity.id.in_(ids))
            )
        }
        if ids
        else {}
    )
    page.items = [found[key] for key in ids if key in found]
    return page


def writable_owner_ids(user: User) -> set[int] | None:
    """The owners whose deals ``user`` may change (None: everyone's), in one query, so
    a board can say per card whether it may be moved without asking per card."""
    from portal.scoping import visible_owner_ids

    owners = visible_owner_ids(user, "write")
    if owners is None:
        return None
    return {int(value) for value in db.session.scalars(owners)}


def reachable_units(user: User) -> list[OrgUnit]:
    """The units whose people's deals ``user`` sees as a team: every unit for a
    manager, the subtree of the units a supervisor leads, none for a salesperson."""
    # Not portal.loops.metrics.visible_units: that gives a salesperson their own unit,
    # keeps inactive units and answers rows; the team filter wants active OrgUnits only.
    level = user.scope_for("read")
    statement = sa.select(OrgUnit).where(OrgUnit.active.is_(True))
    if level == "team":
        paths = led_unit_paths(user)
        if not paths:
            return []
        statement = statement.where(
            sa.or_(*(OrgUnit.path.startswith(path, autoescape=True) for path in paths))
        )
    elif level != "all":
        return []
    return list(
        db.session.scalars(
            statement.options(lazyload(OrgUnit.leader), lazyload(OrgUnit.parent))
            .order_by(OrgUnit.path)
            .limit(MAX_CHOICES)
        )
    )


# -- filters -------------------------------------------------------------------------------


@dataclass
class Filters:
    """What a board, list or funnel is narrowed to (already checked against the
    viewer's reach by the caller; a filter can only narrow what is in scope)."""

    owner_id: int | None = None
    unit: OrgUnit | None = None
    q: str = ""
    stage: str = ""
    status: str = ""
    close_month: date | None = None  # first day of the month
    recent: bool = False  # open, or closed in the last RECENT_CLOSED_DAYS
    customer_id: int | None = None


def narrow(statement: sa.Select, filters: Filters, now: datetime | None = None) -> sa.Select:
    """Apply ``filters`` to a SELECT over opportunities."""
    if filters.owner_id:
        statement = statement.where(Opportunity.owner_id == filters.owner_id)
    if filters.unit is not None:
        members = (
            sa.select(User.id)
            .join(OrgUnit, User.unit_id == OrgUnit.id)
            .where(OrgUnit.path.startswith(filters.unit.path, autoescape=True))
        )
        statement = statement.where(Opportunity.owner_id.in_(members))
    if filters.q:
        pattern = like_pattern(filters.q)
        statement = statement.where(
            sa.or_(
                Opportunity.name.ilike(pattern, escape="\\"),
                sa.exists().where(
                    Customer.id == Opportunity.customer_id,
                    Customer.name.ilike(pattern, escape="\\"),
                ),
            )
        )
    if filters.stage:
        statement = statement.where(Opportunity.stage == filters.stage)
    if filters.status:
        statement = statement.where(Opportunity.status == filters.status)
    if filters.close_month is not None:
        start = filters.close_month
        end = (start.replace(day=28) + timedelta(days=4)).replace(day=1)
        statement = statement.where(
            Opportunity.expected_close_on >= start, Opportunity.expected_close_on < end
        )
    if filters.recent:
        statement = statement.where(_open_or_recent(now or utcnow()))
    if filters.customer_id:
        statement = statement.where(Opportunity.customer_id == filters.customer_id)
    return statement


# The days a query string may name (filters, the funnel's period): wider than any real
# data, narrow enough that the day after, and its local midnight, still exist.
EARLIEST_ARG_DAY = date(1900, 1, 1)
LATEST_ARG_DAY = date(9998, 12, 31)


def month_arg(text: str | None) -> date | None:
    """The first day of a month given as YYYY-MM, or None."""
    try:
        year, month = (int(part) for part in (text or "").split("-", 1))
        first = date(year, month, 1)
    except (TypeError, ValueError):
        return None
    return first if EARLIEST_ARG_DAY <= first <= LATEST_ARG_DAY else None


def _open_or_recent(now: datetime) -> Any:
    cutoff = now - timedelta(days=RECENT_CLOSED_DAYS)
    return sa.or_(Opportunity.status == "open", Opportunity.closed_at >= cutoff)


# -- values ---------------------------------------------------------------------------------


def parse_amount(value: Any) -> int:
    """Yuan with at most two decimals (text, number or Decimal) to fen; ValueError with
    a message for the person otherwise."""
    if isinstance(value, bool):
        raise ValueError(_("Enter an amount in yuan, e.g. 12500 or 12500.50."))
    text = str(value).strip().replace(",", "").replace("¥", "").strip()
    try:
        amount = Decimal(text)
    except (InvalidOperation, ValueError):
        raise ValueError(_("Enter an amount in yuan, e.g. 12500 or 12500.50.")) from None
    if not amount.is_finite():
        raise ValueError(_("Enter an amount in yuan, e.g. 12500 or 12500.50."))
    if amount < 0:
        raise ValueError(_("The amount cannot be negative."))
    if amount > Decimal(MAX_AMOUNT_CENTS) / 100:  # before quantize: it fails on huge numbers
        raise ValueError(_("The amount is too large."))
    if amount != amount.quantize(Decimal("0.01")):
        raise ValueError(_("Use at most two decimals (fen)."))
    return to_cents(amount)


def parse_day(value: Any, today: date | None = None) -> date:
    """A date (or ISO text) from 2000 to ten years ahead."""
    if isinstance(value, datetime):
        value = value.date()
    if not isinstance(value, date):
        try:
            value = date.fromisoformat(str(value).strip())
        except ValueError:
            raise ValueError(_("Enter a date as YYYY-MM-DD.")) from None
    today = today or local_today()
    if value.year < 2000:
        raise ValueError(_("The date is too far in the past."))
    if value > today + timedelta(days=MAX_DUE_DAYS):  # the loops' ten years (29 February too)
        raise ValueError(_("The date is too far away: at most ten years from now."))
    return value


def clean_values(values: Mapping[str, Any], allowed: Iterable[str]) -> dict[str, Any]:
    """Check the ``allowed`` keys present in ``values`` and turn them into model
    attributes (``amount`` -> ``amount_cents``). Raises ValidationFailed per field."""
    cleaned: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for name in allowed:
        if name not in values:
            continue
        value = values[name]
        try:
            if name == "amount":
                cleaned["amount_cents"] = 0 if value in (None, "") else parse_amount(value)
            elif name == "expected_close_on":
                cleaned[name] = None if value in (None, "") else parse_day(value)
            elif name == "owner_id":
                if value in (None, ""):
                    continue
                cleaned[name] = int(value)
            elif name == "lost_reason":
                code = str(value or "").strip()
                if code and code not in lost_reasons():
                    raise ValueError(_("Choose one of the lost reasons."))
                cleaned[name] = code
            else:
                text = str(value if value is not None else "").strip()
                if name == "name" and not text:
                    raise ValueError(_("Give the opportunity a name."))
                if len(text) > TEXT_LIMITS[name]:
                    raise ValueError(_("At most %(count)s characters.", count=TEXT_LIMITS[name]))
                cleaned[name] = text
        except (TypeError, ValueError) as error:
            errors[name] = [str(error) if str(error) else _("Not a valid value.")]
    if errors:
        raise ValidationFailed(errors)
    return cleaned


def _check_owner(owner_id: int, actor: User) -> User:
    owner = db.session.get(User, owner_id) if 0 < owner_id < 2**31 else None
    if owner is None or not owner.active or not can_reach(owner, actor, "write"):
        raise ValidationFailed({"owner_id": [_("Choose someone you are responsible for.")]})
    return owner


# -- required fields --------------------------------------------------------------------------


def has_quotation(opportunity_id: int | None) -> bool:
    """Whether a quotation (any version still current) exists for the deal."""
    if opportunity_id is None:
        return False
    return (
        db.session.scalar(
            sa.select(sa.literal(1))
            .where(Quotation.opportunity_id == opportunity_id, Quotation.status != "superseded")
            .limit(1)
        )
        is not None
    )


def has_accepted_quotation(opportunity_id: int | None) -> bool:
    """Whether the customer accepted a quotation of the deal."""
    if opportunity_id is None:
        return False
    return (
        db.session.scalar(
            sa.select(sa.literal(1))
            .where(Quotation.opportunity_id == opportunity_id, Quotation.status == "accepted")
            .limit(1)
        )
        is not None
    )


def missing_fields(
    opportunity: Opportunity, stage: Stage, values: Mapping[str, Any] | None = None
) -> dict[str, list[str]]:
    """Per required field of ``stage`` that is still empty (``values`` are cleaned
    attributes about to be written), the message saying what to fill in."""
    values = values or {}

    def current(attribute: str) -> Any:
        return values[attribute] if attribute in values else getattr(opportunity, attribute)

    missing: dict[str, list[str]] = {}
    for code in stage.required_fields:
        if code == "amount":
            filled = (current("amount_cents") or 0) > 0
        elif code == "expected_close_on":
            filled = current("expected_close_on") is not None
        elif code == "quotation":
            filled = has_quotation(opportunity.id)
        elif code == "accepted_quotation":
            filled = has_accepted_quotation(opportunity.id)
        elif code in FIELD_REQUIREMENTS:
            filled = bool(str(current(code) or "").strip())
        else:  # a requirement this version of the portal does not know: cannot be met
            missing[code] = [_("%(field)s is required.", field=label("opportunity_field", code))]
            continue
        if not filled:
            message = _MISSING_MESSAGES.get(code)
            missing[code] = [str(message) % {"stage": stage_label(stage.code)}]
    return missing


# -- writing --------------------------------------------------------------------------------


def create_opportunity(
    customer: Customer,
    values: Mapping[str, Any],
    actor: User,
    *,
    owner: User | None = None,
    now: datetime | None = None,
) -> Opportunity:
    """A new deal with ``customer`` at the first stage. The customer must be in the
    actor's write scope; the deal belongs to ``owner`` (or ``values["owner_id"]``),
    by default the customer's owner. Adds to the session, never commits."""
    now = now or utcnow()
    if customer.owner_id is None or not can_reach(customer, actor, "write"):
        raise ValidationFailed({"customer_id": [_("Choose a customer you look after.")]})
    cleaned = clean_values({"name": "", **values}, EDITABLE_FIELDS)
    owner_id = cleaned.pop("owner_id", None)
    if owner is None:
        owner = _check_owner(owner_id, actor) if owner_id else customer.owner
    start = first_stage()
    opportunity = Opportunity(
        customer_id=customer.id,
        owner_id=owner.id,
        stage=start.code,
        furthest_stage_index=start.position,
        probability_pct=start.probability_pct,
        status="open",
        stage_changed_at=now,
        created_at=now,
        updated_at=now,
        **cleaned,
    )
    missing = missing_fields(opportunity, start)
    if missing:
        raise ValidationFailed(missing)
    db.session.add(opportunity)
    db.session.flush()
    db.session.add(
        StageChange(
            opportunity_id=opportunity.id,
            from_stage="",
            to_stage=start.code,
            changed_by_id=actor.id,
            changed_at=now,
        )
    )
    return opportunity


def update_opportunity(
    opportunity: Opportunity, values: Mapping[str, Any], actor: User, now: datetime | None = None
) -> Opportunity:
    """Change the keys of ``values`` that are editable. A field the current stage
    requires cannot be emptied (the deal would sit in a stage it could not enter)."""
    cleaned = clean_values(values, EDITABLE_FIELDS)
    owner_id = cleaned.pop("owner_id", None)
    if owner_id is not None and owner_id != opportunity.owner_id:
        _check_owner(owner_id, actor)
        cleaned["owner_id"] = owner_id
    stage = stage_by_code().get(opportunity.stage)
    if stage is not None:
        errors: dict[str, list[str]] = {}
        touched = {("amount" if key == "amount_cents" else key) for key in cleaned}
        for code in missing_fields(opportunity, stage, cleaned):
            if code in touched:
                errors[code] = [
                    _(
                        "The stage %(stage)s needs this: it cannot be empty.",
                        stage=stage_label(stage.code),
                    )
                ]
        if errors:
            raise ValidationFailed(errors)
    for attribute, value in cleaned.items():
        setattr(opportunity, attribute, value)
    return opportunity


def move_to_stage(
    opportunity: Opportunity,
    stage_code: str,
    actor: User,
    values: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> StageChange | None:
    """Move the deal to ``stage_code`` after checking the stage's required fields;
    ``values`` may fill missing ones on the way (a lost reason and note when a card is
    dropped on Lost). Raises ValidationFailed naming each missing field, having changed
    nothing. Records the move, sets the probability from the rule file, keeps the
    furthest stage reached, closes or reopens the deal, and announces a win or a loss.
    Returns the StageChange, or None when the deal already is in that stage."""
    now = now or utcnow()
    target = stage_by_code().get(stage_code or "")
    if target is None:
        raise ValidationFailed({"stage": [_("Choose one of the pipeline's stages.")]})
    supplied = {
        key: value
        for key, value in (values or {}).items()
        if key in MOVE_VALUE_FIELDS and value not in (None, "")
    }
    cleaned = clean_values(supplied, MOVE_VALUE_FIELDS)
    if target.code == opportunity.stage:
        return None
    if not may_reopen(opportunity, actor):
        raise ValidationFailed(
            {"stage": [_("Only a supervisor or manager may take a won deal out of Won.")]}
        )
    missing = missing_fields(opportunity, target, cleaned)
    if missing:
        raise ValidationFailed(missing)
    for attribute, value in cleaned.items():
        setattr(opportunity, attribute, value)
    previous_stage, previous_status = opportunity.stage, opportunity.status
    opportunity.stage = target.code
    opportunity.probability_pct = target.probability_pct
    opportunity.stage_changed_at = now
    opportunity.status = target.outcome
    if target.outcome != "lost":
        opportunity.furthest_stage_index = max(
            opportunity.furthest_stage_index or 0, target.position
        )
        opportunity.lost_reason = ""
        opportunity.lost_note = ""
    if target.is_open:
        opportunity.closed_at = None
    elif previous_status != target.outcome or opportunity.closed_at is None:
        opportunity.closed_at = now
    change = StageChange(
        opportunity_id=opportunity.id,
        from_stage=previous_stage,
        to_stage=target.code,
        changed_by_id=actor.id,
        changed_at=now,
    )
    db.session.add(change)
    db.session.flush()
    if target.outcome in ("won", "lost") and previous_status != target.outcome:
        emit(
            "sales.opportunity_closed",
            actor_id=actor.id,
            opportunity_id=opportunity.id,
            outcome=target.outcome,
            # Who won or lost it and on which local day: other plugins (daily's cost per
            # won deal) count deals without reading the sales tables.
            owner_id=opportunity.owner_id,
            closed_on=local_today(opportunity.closed_at).isoformat(),
        )
    return change


def close_as_won(
    opportunity: Opportunity, actor: User, now: datetime | None = None
) -> StageChange | None:
    """Move an open deal to the won stage (a signed contract does this), checking
    everything the won stage requires; a deal already won is left as it is."""
    if opportunity.status == "won":
        return None
    return move_to_stage(opportunity, won_stage().code, actor, now=now)


def stage_history(opportunity: Opportunity, limit: int = 200) -> list[tuple[StageChange, str]]:
    """The deal's moves, newest first, with the name of who moved it (one query)."""
    rows = db.session.execute(
        sa.select(StageChange, User.display_name)
        .outerjoin(User, User.id == StageChange.changed_by_id)
        .where(StageChange.opportunity_id == opportunity.id)
        .order_by(StageChange.changed_at.desc(), StageChange.id.desc())
        .limit(limit)
    )
    return [(row[0], row[1] or "") for row in rows]


def is_overdue(opportunity: Opportunity, today: date | None = None) -> bool:
    """An open deal whose expected close date has passed."""
    return (
        opportunity.status == "open"
        and opportunity.expected_close_on is not None
        and opportunity.expected_close_on < (today or local_today())
    )


# -- the board -----------------------------------------------------------------------------------


@dataclass
class Column:
    """One stage of the board: how many deals and how much money, and the first cards."""

    code: str
    stage: Stage | None
    count: int = 0
    amount_cents: int = 0
    cards: list[Opportunity] = field(default_factory=list)

    @property
    def label(self) -> str:
        return stage_label(self.code)

    @property
    def more(self) -> int:
        return max(0, self.count - len(self.cards))

    @property
    def known(self) -> bool:
        """False for a stage no longer in the rule file (its deals wait to be moved)."""
        return self.stage is not None


@dataclass
class Board:
    columns: list[Column]

    @property
    def count(self) -> int:
        return sum(column.count for column in self.columns)

    @property
    def amount_cents(self) -> int:
        return sum(column.amount_cents for column in self.columns)

    @property
    def open_amount_cents(self) -> int:
        return sum(c.amount_cents for c in self.columns if c.stage is None or c.stage.is_open)


def board(user: User, filters: Filters, now: datetime | None = None) -> Board:
    """The kanban in ``user``'s scope: open deals and those closed in the last
    RECENT_CLOSED_DAYS, per stage a count and sum (one grouped statement) and at most
    CARDS_PER_COLUMN cards (one ranked statement): never every row."""
    now = now or utcnow()
    visible = dict(vars(filters))
    visible["recent"] = True
    chosen = Filters(**visible)

    def where(statement: sa.Select) -> sa.Select:
        return narrow(scoped(statement, Opportunity, user), chosen, now)

    totals = db.session.execute(
        where(
            sa.select(
                Opportunity.stage,
                sa.func.count(Opportunity.id),
                sa.func.coalesce(sa.func.sum(Opportunity.amount_cents), 0),
            )
        ).group_by(Opportunity.stage)
    ).all()
    order = _card_order()
    ranked = where(
        sa.select(
            Opportunity.id,
            sa.func.row_number().over(partition_by=Opportunity.stage, order_by=order).label("rank"),
        )
    ).subquery()
    cards = db.session.scalars(
        sa.select(Opportunity)
        .options(*card_loading())
        .where(Opportunity.id.in_(sa.select(ranked.c.id).where(ranked.c.rank <= CARDS_PER_COLUMN)))
        .order_by(*order)
    ).all()
    by_code = {stage.code: Column(stage.code, stage) for stage in stages()}
    columns = list(by_code.values())
    for code, count, amount in totals:
        if code not in by_code:  # a stage taken out of the rule file: still shown
            by_code[code] = Column(code, None)
            columns.append(by_code[code])
        by_code[code].count = int(count)
        by_code[code].amount_cents = int(amount or 0)
    for card in cards:
        by_code[card.stage].cards.append(card)
    return Board(columns)


def _card_order() -> list[Any]:
    """Soonest expected close first (undated last), then the larger deal."""
    return [
        Opportunity.sequence,
        Opportunity.expected_close_on.is_(None),
        Opportunity.expected_close_on,
        Opportunity.amount_cents.desc(),
        Opportunity.id,
    ]


# -- the funnel -----------------------------------------------------------------------------------

PERIODS = ("this_quarter", "last_quarter", "this_month", "last_month", "this_year", "last_year")
PERIOD_LABELS = {
    "this_quarter": _l("This quarter"),
    "last_quarter": _l("Last quarter"),
    "this_month": _l("This month"),
    "last_month": _l("Last month"),
    "this_year": _l("This year"),
    "last_year": _l("Last year"),
    "custom": _l("Custom dates"),
}
FUNNEL_GROUPS = ("person", "team")
MAX_FUNNEL_DAYS = 3 * 366 + 1


def period_bounds(key: str, today: date) -> tuple[date, date]:
    """First and last day (inclusive) of a named period around ``today``."""
    quarter_start = date(today.year, 3 * ((today.month - 1) // 3) + 1, 1)
    month_start = today.replace(day=1)
    if key == "last_quarter":
        end = quarter_start - timedelta(days=1)
        return date(end.year, 3 * ((end.month - 1) // 3) + 1, 1), end
    if key == "this_month":
        return month_start, _month_end(month_start)
    if key == "last_month":
        end = month_start - timedelta(days=1)
        return end.replace(day=1), end
    if key == "this_year":
        return date(today.year, 1, 1), date(today.year, 12, 31)
    if key == "last_year":
        return date(today.year - 1, 1, 1), date(today.year - 1, 12, 31)
    return quarter_start, _month_end(date(quarter_start.year, quarter_start.month + 2, 1))


def _day_arg(text: str | None) -> date | None:
    try:
        day = date.fromisoformat((text or "").strip()) if text else None
    except ValueError:
        return None
    return day if day is None or EARLIEST_ARG_DAY <= day <= LATEST_ARG_DAY else None


def read_period(args: Mapping[str, Any], today: date) -> tuple[str, date, date]:
    """The funnel's period from a query string: ``since``/``until`` (custom, at most
    three years) or a named ``period`` (default this quarter)."""
    since, until = _day_arg(args.get("since")), _day_arg(args.get("until"))
    if since is not None:
        until = until or today
        if until < since:
            since, until = until, since
        if (until - since).days > MAX_FUNNEL_DAYS:
            since = until - timedelta(days=MAX_FUNNEL_DAYS)
        return "custom", since, until
    key = args.get("period", "this_quarter")
    key = key if key in PERIODS else "this_quarter"
    start, end = period_bounds(key, today)
    return key, start, end


def _month_end(first: date) -> date:
    return (first.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)


@dataclass
class FunnelRow:
    """The funnel of one group (or of everything in scope): deals created in the
    period, how many reached each step and with how much money, and the outcomes."""

    key: Any
    label: str
    created: int = 0
    reached: list[int] = field(default_factory=list)
    amounts: list[int] = field(default_factory=list)
    won: int = 0
    lost: int = 0
    open: int = 0
    won_amount_cents: int = 0
    depth: int = 0

    @property
    def win_rate(self) -> float | None:
        """Won out of those closed (won or lost)."""
        closed = self.won + self.lost
        return self.won / closed if closed else None

    @property
    def won_share(self) -> float | None:
        """Won out of every deal created."""
        return self.won / self.created if self.created else None

    def conversion(self, index: int) -> float | None:
        """Share of those at the previous step that reached step ``index``."""
        if index == 0:
            return None
        before = self.reached[index - 1]
        return self.reached[index] / before if before else None

    def from_first(self, index: int) -> float | None:
        first = self.reached[0] if self.reached else 0
        return self.reached[index] / first if first else None


@dataclass
class Funnel:
    since: date
    until: date
    steps: list[Stage]
    total: FunnelRow
    rows: list[FunnelRow]
    group: str


def _aggregates(steps: list[Stage]) -> list[Any]:
    def count_when(condition: Any) -> Any:
        return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)

    def money_when(condition: Any) -> Any:
        return sa.func.coalesce(
            sa.func.sum(sa.case((condition, Opportunity.amount_cents), else_=0)), 0
        )

    columns = [
        sa.func.count(Opportunity.id).label("created"),
        count_when(Opportunity.status == "won").label("won"),
        count_when(Opportunity.status == "lost").label("lost"),
        count_when(Opportunity.status == "open").label("open"),
        money_when(Opportunity.status == "won").label("won_amount"),
    ]
    for index, step in enumerate(steps):
        reached = Opportunity.furthest_stage_index >= step.position
        columns.append(count_when(reached).label(f"r{index}"))
        columns.append(money_when(reached).label(f"a{index}"))
    return columns


def _row(key: Any, label_text: str, values: Any, steps: list[Stage]) -> FunnelRow:
    mapping = values._mapping if values is not None else {}
    return FunnelRow(
        key=key,
        label=label_text,
        created=int(mapping.get("created") or 0),
        won=int(mapping.get("won") or 0),
        lost=int(mapping.get("lost") or 0),
        open=int(mapping.get("open") or 0),
        won_amount_cents=int(mapping.get("won_amount") or 0),
        reached=[int(mapping.get(f"r{i}") or 0) for i in range(len(steps))],
        amounts=[int(mapping.get(f"a{i}") or 0) for i in range(len(steps))],
    )


def _add(into: FunnelRow, other: FunnelRow) -> None:
    into.created += other.created
    into.won += other.won
    into.lost += other.lost
    into.open += other.open
    into.won_amount_cents += other.won_amount_cents
    into.reached = [a + b for a, b in zip(into.reached, other.reached, strict=True)]
    into.amounts = [a + b for a, b in zip(into.amounts, other.amounts, strict=True)]


def funnel(
    user: User, since: date, until: date, group: str = "person", filters: Filters | None = None
) -> Funnel:
    """The funnel of the deals created from ``since`` to ``until`` (local days,
    inclusive) in ``user``'s scope. A deal counts at a step when its furthest stage
    reached is that step or a later one, whatever happened after (a deal lost in
    negotiation counts at every step up to negotiation); lost is an outcome, not a
    step. One grouped statement for the total and one for the groups."""
    steps = funnel_steps()
    start, end = local_midnight(since), local_midnight(until + timedelta(days=1))

    def where(statement: sa.Select) -> sa.Select:
        statement = statement.where(Opportunity.created_at >= start, Opportunity.created_at < end)
        return narrow(scoped(statement, Opportunity, user), filters or Filters())

    aggregates = _aggregates(steps)
    total = _row(
        None,
        _("Everyone in view"),
        db.session.execute(where(sa.select(*aggregates))).first(),
        steps,
    )
    if group == "team":
        rows = _team_rows(user, where, aggregates, steps)
    else:
        group = "person"
        result = db.session.execute(
            where(
                sa.select(User.id, User.display_name, *aggregates)
                .select_from(Opportunity)
                .join(User, User.id == Opportunity.owner_id)
            )
            .group_by(User.id, User.display_name)
            .order_by(User.display_name, User.id)
        )
        rows = [_row(row.id, row.display_name, row, steps) for row in result]
    return Funnel(since, until, steps, total, rows, group)


def _team_rows(
    user: User, where: Any, aggregates: list[Any], steps: list[Stage]
) -> list[FunnelRow]:
    """A row per unit the viewer may see as a team, with its whole subtree's deals
    (units in tree order), and one for people in no unit."""
    result = db.session.execute(
        where(
            sa.select(User.unit_id, *aggregates)
            .select_from(Opportunity)
            .join(User, User.id == Opportunity.owner_id)
        ).group_by(User.unit_id)
    ).all()
    direct = {row.unit_id: _row(row.unit_id, "", row, steps) for row in result}
    if not direct:
        return []
    units_by_id = {
        unit.id: unit
        for unit in db.session.scalars(
            sa.select(OrgUnit)
            .options(lazyload(OrgUnit.leader), lazyload(OrgUnit.parent))
            .where(OrgUnit.id.in_([key for key in direct if key is not None]))
        )
    }
    ancestor_ids = {
        int(part)
        for unit in units_by_id.values()
        for part in unit.path.strip("/").split("/")
        if part and int(part) not in units_by_id
    }
    if ancestor_ids:
        for unit in db.session.scalars(
            sa.select(OrgUnit)
            .options(lazyload(OrgUnit.leader), lazyload(OrgUnit.parent))
            .where(OrgUnit.id.in_(ancestor_ids))
        ):
            units_by_id[unit.id] = unit
    level = user.scope_for("read")
    led = led_unit_paths(user) if level == "team" else []
    shown = [
        unit
        for unit in units_by_id.values()
        if level == "all"
        or any(unit.path.startswith(path) for path in led)
        or (level != "all" and not led and unit.id in direct)
    ]
    shown.sort(key=lambda unit: unit.path)
    top = min((unit.depth for unit in shown), default=0)
    rows = []
    for unit in shown:
        row = FunnelRow(unit.id, unit.name, reached=[0] * len(steps), amounts=[0] * len(steps))
        row.depth = min(unit.depth - top, 5)
        for key, values in direct.items():
            inside = key is not None and key in units_by_id
            if inside and units_by_id[key].path.startswith(unit.path):
                _add(row, values)
        rows.append(row)
    if None in direct:
        orphan = direct[None]
        orphan.label = _("In no unit")
        rows.append(orphan)
    return rows


def funnel_svg(result: Funnel) -> bytes:
    """The funnel as a self-contained SVG image: deals reaching each step, the first
    step on top (pygal draws a horizontal bar chart from the bottom up)."""
    import pygal

    from portal.loops.charts import chart_config, render_svg

    ticks: dict[str, Any] = {}
    if result.total.created:  # pygal cannot place ticks on a chart without data
        # Whole-number ticks (pygal would label fractions of a deal).
        highest = max([1, *result.total.reached])
        step = max(1, math.ceil(highest / 6))
        top = step * math.ceil(highest / step)
        ticks = {"range": (0, top), "y_labels": list(range(0, top + 1, step))}
    config = chart_config(
        _("Deals reaching each stage"),
        no_data_text=_("No opportunities were created in this period"),
        truncate_label=24,
        x_label_rotation=0,
        print_values=True,
        value_formatter=lambda value: f"{value:.0f}",
        **ticks,
    )
    chart = pygal.HorizontalBar(config)
    labels = [stage_label(stage.code) for stage in result.steps]
    chart.x_labels = list(reversed(labels))
    if result.total.created:
        chart.add(_("Deals"), list(reversed(result.total.reached)))
    return render_svg(chart)
