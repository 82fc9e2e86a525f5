"""After-sales (P3.5): customer feedback (P3.5.1) and complaints (P3.5.2).

Why a service: the pages, the JSON API and the scheduler's SLA sweep must apply the same
rules. A complaint's deadlines and its escalation come from ``rules/complaint_sla.yaml``
(asked with ``hours_open`` 0 when it is logged, again by the sweep while it is open, and
with ``asking: closing`` when it closes, for whether a root-cause and corrective action
item must exist first); no hour or category is written here. Each complaint is a loop
item of its own (``sales.complaint``, due at the resolution deadline) and closing the
complaint closes that item with cause and action as its note and the customer's
confirmation as its evidence, so verification follows the core's rules.

Every function validates before it writes (``ValidationFailed`` per field, 422;
``StateConflict`` 409 when the record has moved on; ``NotAllowed`` 403) and leaves the
commit to its caller, except the sweep, which commits per batch like the core sweeps.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from flask import abort
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import defaultload, lazyload

from portal.audit.recorder import acting_as
from portal.auth.models import Role, User, user_roles
from portal.database import keyset_batches
from portal.events import emit
from portal.extensions import db
from portal.listing import id_arg, like_pattern
from portal.loops import service as loops
from portal.loops.errors import NotAllowed, StateConflict
from portal.loops.models import LoopItem
from portal.loops.notifications import notify, portal_path
from portal.models import as_utc, utcnow
from portal.org.services import ValidationFailed, supervisor_of
from portal.rules.engine import Evaluation, RuleInputError
from portal.rules.service import evaluate_distinct, rules
from portal.scoping import get_scoped_or_404, scoped

from .common import contracts_for, customers_for, next_number
from .models import (
    FEEDBACK_CATEGORIES,
    FEEDBACK_KINDS,
    FEEDBACK_PRIORITIES,
    FEEDBACK_STATUSES,
    Contract,
    Customer,
    Feedback,
)
from .vocabulary import label

log = logging.getLogger("plugins.sales.aftersales")

SUBJECT_TABLE = Feedback.__tablename__  # stored rule decisions and loop items name it
SLA_RULESET = "complaint_sla"
NUMBER_SERIES, NUMBER_PREFIX = "feedback", "KS"
# A complaint is "open" for the SLA while the customer waits for a response or a fix.
OPEN_STATUSES = ("open", "responded")
ACTIVE_STATUSES = ("open", "responded", "resolved")
# The order of escalation the rule file's ``escalate_to`` names.
ESCALATION_LEVELS = ("none", "supervisor", "manager", "general_manager")
ACTIONS = ("respond", "record_cause", "confirm", "close", "raise_corrective")
MAX_TEXT = 10_000
MAX_TITLE = 200
# Sanity bounds, not policy: a clock a little ahead of the server's is not "the future",
# and a complaint received more than ten years ago is a typo.
CLOCK_TOLERANCE = timedelta(minutes=2)
MAX_AGE = timedelta(days=3653)
SWEEP_BATCH = 500
TREND_MONTHS = 12


# -- reading and scope ---------------------------------------------------------------


def feedback_for(user: User, verb: str = "read") -> sa.Select:
    """A SELECT of the feedback and complaints ``user`` may reach (by their owner)."""
    return scoped(sa.select(Feedback), Feedback, user, verb)


def get_feedback_or_404(feedback_id: int, user: User, verb: str = "read") -> Feedback:
    """One record in scope: 404 outside the read scope, 403 when read-only."""
    if not 0 < feedback_id < 2**62:
        abort(404)
    return get_scoped_or_404(Feedback, feedback_id, user, verb)


def list_options() -> list[Any]:
    """Loader options of a list: owner and customer by name only (no roles per row)."""
    return [
        loops.light_person(Feedback.owner),
        defaultload(Feedback.customer).options(lazyload(Customer.owner)),
    ]


def _now(now: datetime | None) -> datetime:
    return as_utc(now) or utcnow()


def is_overdue(record: Feedback, now: datetime | None = None) -> bool:
    """Open, and past its first-response deadline (unanswered) or resolution deadline."""
    now = _now(now)
    if record.status not in OPEN_STATUSES:
        return False
    first_due = as_utc(record.first_response_due_at)
    if record.first_responded_at is None and first_due is not None and first_due < now:
        return True
    resolution_due = as_utc(record.resolution_due_at)
    return resolution_due is not None and resolution_due < now


def overdue_condition(now: datetime) -> Any:
    """``is_overdue`` as SQL."""
    return sa.and_(
        Feedback.status.in_(OPEN_STATUSES),
        sa.or_(
            sa.and_(
                Feedback.first_responded_at.is_(None),
                Feedback.first_response_due_at.is_not(None),
                Feedback.first_response_due_at < now,
            ),
            sa.and_(Feedback.resolution_due_at.is_not(None), Feedback.resolution_due_at < now),
        ),
    )


def filter_feedback(statement: sa.Select, args: Mapping[str, Any], now: datetime) -> sa.Select:
    """Apply the list filters (kind, status or ``active``, category, priority, overdue,
    customer_id, contract_id, q: customer name, number or title). Unknown values are
    ignored rather than refused: a stale bookmark still shows a list."""
    kind = args.get("kind")
    if kind in FEEDBACK_KINDS:
        statement = statement.where(Feedback.kind == kind)
    status = args.get("status")
    if status == "active":
        statement = statement.where(Feedback.status.in_(ACTIVE_STATUSES))
    elif status in FEEDBACK_STATUSES:
        statement = statement.where(Feedback.status == status)
    category = args.get("category")
    if category in FEEDBACK_CATEGORIES:
        statement = statement.where(Feedback.category == category)
    priority = args.get("priority")
    if priority in FEEDBACK_PRIORITIES:
        statement = statement.where(Feedback.priority == priority)
    if args.get("overdue") in ("1", "true", "on", "yes"):
        statement = statement.where(overdue_condition(now))
    customer_id = id_arg(args.get("customer_id"))
    if customer_id is not None:
        statement = statement.where(Feedback.customer_id == customer_id)
    contract_id = id_arg(args.get("contract_id"))
    if contract_id is not None:
        statement = statement.where(Feedback.contract_id == contract_id)
    text = str(args.get("q") or "").strip()[:100]
    if text:
        pattern = like_pattern(text)
        named = sa.select(Customer.id).where(Customer.name.ilike(pattern, escape="\\"))
        statement = statement.where(
            sa.or_(
                Feedback.customer_id.in_(named),
                Feedback.number.ilike(pattern, escape="\\"),
                Feedback.title.ilike(pattern, escape="\\"),
            )
        )
    return statement


def ordered(statement: sa.Select, now: datetime) -> sa.Select:
    """Overdue first, then the newest received."""
    overdue_first = sa.case((overdue_condition(now), 0), else_=1)
    return statement.order_by(overdue_first, Feedback.received_at.desc(), Feedback.id.desc())


def for_customer(customer_id: int, user: User, limit: int = 20) -> list[Feedback]:
    """A customer's feedback and complaints the user may read, newest first."""
    statement = feedback_for(user).where(Feedback.customer_id == customer_id)
    statement = statement.options(*list_options())
    statement = statement.order_by(Feedback.received_at.desc(), Feedback.id.desc()).limit(limit)
    return list(db.session.scalars(statement))


def for_contract(contract_id: int, user: User, limit: int = 20) -> list[Feedback]:
    """A contract's feedback and complaints the user may read, newest first."""
    statement = feedback_for(user).where(Feedback.contract_id == contract_id)
    statement = statement.options(*list_options())
    statement = statement.order_by(Feedback.received_at.desc(), Feedback.id.desc()).limit(limit)
    return list(db.session.scalars(statement))


# -- the rule file ---------------------------------------------------------------------


def _hours(seconds: float) -> Decimal:
    """Hours to the tenth, rounded down: "more than one hour" holds from 1.1 h on."""
    tenths = max(math.floor(seconds / 360), 0)
    return Decimal(tenths) / Decimal(10)


def sla_facts(
    record: Feedback,
    now: datetime | None = None,
    *,
    asking: str = "deadlines",
    hours_open: Decimal | None = None,
) -> dict[str, Any]:
    """What the rule file is asked about one complaint."""
    if hours_open is None:
        elapsed = (_now(now) - as_utc(record.received_at)).total_seconds()
        hours_open = _hours(elapsed)
    return {
        "priority": record.priority,
        "category": record.category,
        "hours_open": hours_open,
        "first_responded": record.first_responded_at is not None,
        "asking": asking,
    }


def _ask(facts: Mapping[str, Any]) -> tuple[Evaluation, int]:
    """Evaluate with the version in force (before any write of ours: the rules service
    may publish a changed file in a session of its own); returns the evaluation and the
    version's row id, to store the decision once the record has an id."""
    active = rules().active(SLA_RULESET)
    try:
        evaluation = rules().runtime.evaluate(active.rule_file, facts, version=active.version)
    except RuleInputError as error:
        # The file no longer knows this priority or category: say so on the field.
        raise ValidationFailed(
            {"category": [_("The complaint rules cannot judge this complaint: %(e)s", e=error)]}
        ) from None
    return evaluation, active.version_id


def corrective_action_required(record: Feedback, now: datetime | None = None) -> bool:
    """Whether the rule file wants a root-cause and corrective action item raised
    before this complaint closes (feedback never needs one)."""
    if record.kind != "complaint":
        return False
    try:
        evaluation, _version = _ask(sla_facts(record, now, asking="closing"))
    except ValidationFailed:
        return False
    return bool(evaluation.outputs.get("corrective_action_required"))


# -- validation helpers ------------------------------------------------------------------


def _text(
    value: Any,
    name: str,
    errors: dict[str, list[str]],
    *,
    required: Any = None,
    limit: int = MAX_TEXT,
) -> str:
    text = ("" if value is None else str(value)).strip()
    if required is not None and not text:
        errors[name] = [str(required)]
    elif len(text) > limit:
        errors[name] = [_("At most %(n)s characters.", n=limit)]
    return text


def _choice(
    value: Any, name: str, codes: Sequence[str], group: str, errors: dict[str, list[str]]
) -> str:
    code = str(value or "").strip()
    if code not in codes:
        allowed = ", ".join(label(group, c) for c in codes)
        errors[name] = [_("Choose one of: %(values)s.", values=allowed)]
    return code


def aware(moment: datetime) -> datetime:
    """A time as UTC; a naive one is read in the portal's time zone (what a person
    typing "14:30" means)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=loops.portal_zone())
    return moment.astimezone(UTC)


def _received_at(value: Any, now: datetime, errors: dict[str, list[str]]) -> datetime:
    if value in (None, ""):
        return now
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            errors["received_at"] = [_("Give a date and time, e.g. 2026-03-01 14:30.")]
            return now
    if isinstance(value, date) and not isinstance(value, datetime):
        value = datetime.combine(value, datetime.min.time())
    if not isinstance(value, datetime):
        errors["received_at"] = [_("Give a date and time, e.g. 2026-03-01 14:30.")]
        return now
    try:
        moment = aware(value)
    except (OverflowError, ValueError):
        errors["received_at"] = [_("This date is not possible.")]
        return now
    if moment > now + CLOCK_TOLERANCE:
        errors["received_at"] = [_("The time received cannot be in the future.")]
    elif moment < now - MAX_AGE:
        errors["received_at"] = [_("The time received is more than ten years ago.")]
    return moment


def _check_version(record: Feedback, version: Any) -> None:
    """A form or API call carrying the version it read refuses to act on a newer one."""
    if version in (None, ""):
        return
    if str(version) != str(record.lock_version):
        raise StateConflict(_("Someone changed this record meanwhile; read it again."))


def _link(record: Feedback) -> str:
    return portal_path("sales_aftersales.detail", feedback_id=record.id)


def _loop_title(record: Feedback) -> str:
    return f"{record.number} {record.title}"[:MAX_TITLE]


# -- logging feedback or a complaint ---------------------------------------------------------


def log_feedback(
    values: Mapping[str, Any], actor: User, *, now: datetime | None = None
) -> Feedback:
    """Log feedback or a complaint about a customer in the actor's write scope; the
    caller commits. A complaint gets its deadlines from the rule file (asked with
    hours_open 0, the decision stored with the complaint) and its own loop item due at
    the resolution deadline; feedback gets a loop item with the default due date."""
    now = _now(now)
    errors: dict[str, list[str]] = {}
    customer = None
    customer_id = id_arg(values.get("customer_id"))
    if customer_id is not None:
        customer = db.session.scalars(
            customers_for(actor, "write").where(Customer.id == customer_id)
        ).first()
    if customer is None:
        errors["customer_id"] = [_("Choose a customer you look after.")]
    contract_id = None
    raw_contract = values.get("contract_id")
    if raw_contract not in (None, "", 0):
        contract_id = id_arg(raw_contract)
        contract = None
        if contract_id is not None and customer is not None:
            contract = db.session.scalars(
                contracts_for(actor).where(
                    Contract.id == contract_id, Contract.customer_id == customer.id
                )
            ).first()
        if contract is None and customer is not None:
            errors["contract_id"] = [_("Choose a contract of this customer, or none.")]
    kind = _choice(values.get("kind"), "kind", FEEDBACK_KINDS, "feedback_kind", errors)
    category = _choice(
        values.get("category"), "category", FEEDBACK_CATEGORIES, "feedback_category", errors
    )
    priority = _choice(
        values.get("priority") or "normal", "priority", FEEDBACK_PRIORITIES, "priority", errors
    )
    title = _text(
        values.get("title"),
        "title",
        errors,
        required=_l("Say in a few words what the customer reports."),
        limit=MAX_TITLE,
    )
    description = _text(values.get("description"), "description", errors)
    received_at = _received_at(values.get("received_at"), now, errors)
    if errors:
        raise ValidationFailed(errors)
    assert customer is not None
    draft = Feedback(
        kind=kind,
        category=category,
        priority=priority,
        received_at=received_at,
        first_responded_at=None,
    )
    evaluation = version_id = None
    if kind == "complaint":
        evaluation, version_id = _ask(sla_facts(draft, hours_open=Decimal(0)))
        missing = [
            name
            for name in ("first_response_hours", "resolution_hours")
            if not evaluation.outputs.get(name)
        ]
        if missing:
            raise ValidationFailed(
                {"priority": [_("The complaint rules give no deadlines for this priority.")]}
            )
    rules().active(loops.POLICY_RULESET)  # read before writing, like the SLA file
    owner = customer.owner if customer.owner is not None and customer.owner.active else actor
    record = Feedback(
        number=next_number(NUMBER_SERIES, NUMBER_PREFIX, now),
        customer_id=customer.id,
        contract_id=contract_id,
        owner_id=owner.id,
        kind=kind,
        category=category,
        priority=priority,
        status="open",
        title=title,
        description=description,
        received_at=received_at,
        escalated_to="none",
        created_at=now,
        updated_at=now,
    )
    if evaluation is not None:
        first_hours = int(evaluation.outputs["first_response_hours"])
        resolution_hours = int(evaluation.outputs["resolution_hours"])
        record.first_response_due_at = received_at + timedelta(hours=first_hours)
        record.resolution_due_at = received_at + timedelta(hours=resolution_hours)
    db.session.add(record)
    db.session.flush()
    if evaluation is not None:
        rules().record(evaluation, (SUBJECT_TABLE, record.id), version_id)
    if kind == "complaint":
        due_at = record.resolution_due_at if record.resolution_due_at > now else None
        item = loops.raise_loop(
            "sales.complaint",
            _loop_title(record),
            owner,
            raised_by=actor,
            due_at=due_at,  # already past (logged late): the loop policy's default
            priority=priority,
            subject=(SUBJECT_TABLE, record.id),
            subject_link=_link(record),
            description=description,
            now=now,
        )
    else:
        item = loops.raise_loop(
            "sales.feedback",
            _loop_title(record),
            owner,
            raised_by=actor,
            priority=priority,
            subject=(SUBJECT_TABLE, record.id),
            subject_link=_link(record),
            description=description,
            now=now,
        )
    record.loop_item_id = item.id
    db.session.flush()
    return record


# -- handling ------------------------------------------------------------------------------


def _not_closed(record: Feedback) -> None:
    if record.status == "closed":
        raise StateConflict(_("This record is closed."))


def _own_loop(record: Feedback) -> LoopItem | None:
    return db.session.get(LoopItem, record.loop_item_id) if record.loop_item_id else None


def respond(
    record: Feedback,
    actor: User,
    text: Any,
    *,
    version: Any = None,
    now: datetime | None = None,
) -> Feedback:
    """Record the first response to the customer: open -> responded. The complaint's
    loop item is started (its owner is on it)."""
    now = _now(now)
    _check_version(record, version)
    _not_closed(record)
    if record.first_responded_at is not None:
        raise StateConflict(_("The first response is already recorded."))
    errors: dict[str, list[str]] = {}
    text = _text(text, "first_response", errors, required=_l("Say what the customer was told."))
    if errors:
        raise ValidationFailed(errors)
    record.first_response = text
    record.first_responded_at = now
    if record.status == "open":
        record.status = "responded"
    record.updated_at = now
    db.session.flush()
    item = _own_loop(record)
    if item is not None and item.status == "open":
        with contextlib.suppress(NotAllowed, StateConflict):  # not the actor's to start
            loops.start(item, actor, now=now)
    return record


def record_cause(
    record: Feedback,
    actor: User,
    cause: Any,
    action_taken: Any,
    *,
    version: Any = None,
    now: datetime | None = None,
) -> Feedback:
    """Record the cause and the action taken (both required for a complaint; feedback
    needs the action only): the record is resolved, waiting for the customer's word."""
    now = _now(now)
    _check_version(record, version)
    _not_closed(record)
    errors: dict[str, list[str]] = {}
    is_complaint = record.kind == "complaint"
    cause = _text(
        cause,
        "cause",
        errors,
        required=_l("Say what caused the problem.") if is_complaint else None,
    )
    action_taken = _text(
        action_taken, "action_taken", errors, required=_l("Say what was done about it.")
    )
    if errors:
        raise ValidationFailed(errors)
    if record.customer_confirmed_at is not None and (cause, action_taken) != (
        record.cause,
        record.action_taken,
    ):
        # The customer confirmed what was recorded then, not this: ask them again.
        record.customer_confirmed_at = None
    record.cause, record.action_taken = cause, action_taken
    if record.status in OPEN_STATUSES:
        record.status = "resolved"
        record.resolved_at = now
    record.updated_at = now
    db.session.flush()
    return record


def record_confirmation(
    record: Feedback,
    actor: User,
    confirmed_by: Any,
    note: Any,
    *,
    version: Any = None,
    now: datetime | None = None,
) -> Feedback:
    """Record that the customer confirmed the resolution: who confirmed, and how. A
    complaint's customer confirms what was done, so its cause and action come first."""
    now = _now(now)
    _check_version(record, version)
    _not_closed(record)
    errors: dict[str, list[str]] = {}
    confirmed_by = _text(
        confirmed_by,
        "customer_confirmed_by",
        errors,
        required=_l("Say who at the customer confirmed."),
        limit=200,
    )
    note = _text(
        note,
        "customer_confirmation",
        errors,
        required=_l("Say what the customer confirmed and how (call, email, signed note)."),
    )
    if record.kind == "complaint" and not (
        (record.cause or "").strip() and (record.action_taken or "").strip()
    ):
        errors.setdefault("customer_confirmation", []).append(
            _("Record the cause and the action taken first: the customer confirms them.")
        )
    if errors:
        raise ValidationFailed(errors)
    record.customer_confirmed_by = confirmed_by
    record.customer_confirmation = note
    record.customer_confirmed_at = now
    record.updated_at = now
    db.session.flush()
    return record


def closing_problems(
    record: Feedback, now: datetime | None = None, *, required: bool | None = None
) -> dict[str, list[str]]:
    """What is still missing before the record may close, per field (empty: it may).
    A complaint needs cause, action and the customer's confirmation, and when the rule
    file says so a root-cause and corrective action item; feedback needs an answer or an
    action."""
    problems: dict[str, list[str]] = {}
    if record.kind == "complaint":
        if not (record.cause or "").strip():
            problems["cause"] = [_("Record the cause before closing the complaint.")]
        if not (record.action_taken or "").strip():
            problems["action_taken"] = [_("Record the action taken before closing.")]
        if record.customer_confirmed_at is None:
            problems["customer_confirmation"] = [
                _("Record the customer's confirmation before closing.")
            ]
        if required is None:
            required = corrective_action_required(record, now)
        if required and record.corrective_loop_id is None:
            problems["corrective_action"] = [
                _(
                    "A %(category)s complaint needs its root cause and corrective action "
                    "raised as a loop item before it closes.",
                    category=label("feedback_category", record.category).lower(),
                )
            ]
    elif not (record.action_taken or record.first_response or "").strip():
        problems["action_taken"] = [_("Record a response or the action taken before closing.")]
    return problems


def closure_note(record: Feedback) -> str:
    """The complaint loop item's closing note: cause and action."""
    parts = []
    if record.cause:
        parts.append(_("Cause: %(text)s", text=record.cause))
    if record.action_taken:
        parts.append(_("Action taken: %(text)s", text=record.action_taken))
    if not parts and record.first_response:
        parts.append(_("Response: %(text)s", text=record.first_response))
    return "\n".join(parts)[:MAX_TEXT]


def confirmation_evidence(record: Feedback) -> str:
    """The customer's confirmation, as the loop item's evidence."""
    if record.customer_confirmed_at is None:
        return ""
    return _(
        "Confirmed by %(who)s: %(note)s",
        who=record.customer_confirmed_by or "-",
        note=record.customer_confirmation,
    )[:MAX_TEXT]


def close_record(
    record: Feedback,
    actor: User,
    *,
    version: Any = None,
    now: datetime | None = None,
) -> Feedback:
    """Close: refused per field (nothing changed) while cause, action or the customer's
    confirmation are missing (or the corrective action item the rule file requires).
    Closes the record's own loop item with cause and action as the note and the
    confirmation as evidence; whoever verifies it is told by the core. Emits
    ``sales.complaint_closed`` for a complaint."""
    now = _now(now)
    _check_version(record, version)
    _not_closed(record)
    evaluation = version_id = None
    if record.kind == "complaint":
        evaluation, version_id = _ask(sla_facts(record, now, asking="closing"))
    required = bool(evaluation and evaluation.outputs.get("corrective_action_required"))
    problems = closing_problems(record, now, required=required)
    if problems:
        raise ValidationFailed(problems)
    item = _own_loop(record)
    if item is not None and item.status in ("open", "in_progress"):
        loops.close(item, actor, closure_note(record), confirmation_evidence(record), now=now)
    record.status = "closed"
    record.closed_at = now
    if record.resolved_at is None:
        record.resolved_at = now
    record.updated_at = now
    db.session.flush()
    if evaluation is not None:
        rules().record(evaluation, (SUBJECT_TABLE, record.id), version_id)
        emit("sales.complaint_closed", actor_id=actor.id, feedback_id=record.id)
    return record


def corrective_owner_default(record: Feedback, actor: User) -> int:
    """Who a corrective action goes to by default: the owner's supervisor, else the
    owner, else the actor (whoever of these the actor may give an item to)."""
    candidates = []
    owner = record.owner
    if owner is not None:
        supervisor = supervisor_of(owner)
        if supervisor is not None and supervisor.active:
            candidates.append(supervisor)
        candidates.append(owner)
    for person in candidates:
        if person.id == actor.id or loops.in_write_scope(actor, person):
            return person.id
    return actor.id


def raise_corrective_action(
    record: Feedback,
    actor: User,
    *,
    title: Any = "",
    owner_id: Any = None,
    due_on: date | None = None,
    description: Any = "",
    version: Any = None,
    now: datetime | None = None,
) -> LoopItem:
    """Raise the complaint's root-cause and corrective action as a loop item of its own
    (``sales.corrective_action``), for anyone in the actor's write scope; one per
    complaint."""
    now = _now(now)
    _check_version(record, version)
    if record.kind != "complaint":
        raise StateConflict(_("Only a complaint has a corrective action item."))
    if record.corrective_loop_id is not None:
        raise StateConflict(_("The corrective action is already raised."))
    errors: dict[str, list[str]] = {}
    title = (
        _text(title, "title", errors, limit=MAX_TITLE)
        or (_("Root cause and corrective action: %(title)s", title=_loop_title(record))[:MAX_TITLE])
    )
    description = _text(description, "description", errors)
    person = None
    chosen = id_arg(owner_id) if owner_id not in (None, "") else None
    if owner_id in (None, ""):
        person = db.session.get(User, corrective_owner_default(record, actor))
    elif chosen is not None:
        person = db.session.get(User, chosen)
    if person is None or not person.active:
        errors["owner_id"] = [_("Choose an active person as owner.")]
    elif person.id != actor.id and not loops.in_write_scope(actor, person):
        errors["owner_id"] = [_("You can only give items to people you are responsible for.")]
    due_at = None
    if due_on is not None:
        if due_on < loops.local_today(now):
            errors["due_on"] = [_("The due date cannot be in the past.")]
        elif due_on > loops.latest_due_date(now):
            errors["due_on"] = [_("The due date is too far away: at most ten years from now.")]
        else:
            due_at = loops.due_at_from_date(due_on)
    if errors:
        raise ValidationFailed(errors)
    rules().active(loops.POLICY_RULESET)
    try:
        item = loops.raise_loop(
            "sales.corrective_action",
            title,
            person,
            raised_by=actor,
            due_at=due_at,
            priority=record.priority,
            subject=(SUBJECT_TABLE, record.id),
            subject_link=_link(record),
            description=description or record.description,
            now=now,
        )
    except ValidationFailed as error:
        renamed = {"owner": "owner_id", "due_at": "due_on"}
        raise ValidationFailed(
            {renamed.get(name, name): messages for name, messages in error.fields.items()}
        ) from None
    record.corrective_loop_id = item.id
    record.updated_at = now
    db.session.flush()
    return item


def act(
    record: Feedback,
    actor: User,
    action: str,
    data: Mapping[str, Any],
    *,
    now: datetime | None = None,
) -> Any:
    """One entry point for the pages and the API: run ``action`` with the fields it
    reads from ``data`` (the others are ignored)."""
    version = data.get("version")
    if action == "respond":
        return respond(record, actor, data.get("first_response"), version=version, now=now)
    if action == "record_cause":
        return record_cause(
            record, actor, data.get("cause"), data.get("action_taken"), version=version, now=now
        )
    if action == "confirm":
        return record_confirmation(
            record,
            actor,
            data.get("customer_confirmed_by"),
            data.get("customer_confirmation"),
            version=version,
            now=now,
        )
    if action == "close":
        return close_record(record, actor, version=version, now=now)
    if action == "raise_corrective":
        return raise_corrective_action(
            record,
            actor,
            title=data.get("title"),
            owner_id=data.get("owner_id"),
            due_on=data.get("due_on"),
            description=data.get("description"),
            version=version,
            now=now,
        )
    raise StateConflict(_("Unknown action."))


def allowed_actions(record: Feedback, may_write: bool) -> list[str]:
    """The actions that make sense now (the person's right is ``may_write``)."""
    if not may_write or record.status == "closed":
        return []
    found = []
    if record.first_responded_at is None:
        found.append("respond")
    found.append("record_cause")
    if record.kind != "complaint" or (record.cause and record.action_taken):
        found.append("confirm")
    if record.kind == "complaint" and record.corrective_loop_id is None:
        found.append("raise_corrective")
    found.append("close")
    return found


@dataclass
class Deadline:
    """One SLA deadline as a page shows it."""

    name: str
    due_at: datetime
    met_at: datetime | None
    now: datetime

    @property
    def met(self) -> bool:
        return self.met_at is not None

    @property
    def late(self) -> bool:
        """Met after the deadline, or not met and past it."""
        return (self.met_at or self.now) > self.due_at

    @property
    def remaining(self) -> timedelta:
        """Time left (negative: overdue by)."""
        return self.due_at - self.now


def deadlines(record: Feedback, now: datetime | None = None) -> list[Deadline]:
    """The first-response and resolution deadlines, with when each was met."""
    now = _now(now)
    found = []
    if record.first_response_due_at is not None:
        found.append(
            Deadline(
                "first_response",
                as_utc(record.first_response_due_at),
                as_utc(record.first_responded_at),
                now,
            )
        )
    if record.resolution_due_at is not None:
        resolved = record.resolved_at or record.closed_at
        found.append(
            Deadline("resolution", as_utc(record.resolution_due_at), as_utc(resolved), now)
        )
    return found


# -- the SLA sweep ------------------------------------------------------------------------------


def _rank(level: str | None) -> int:
    return ESCALATION_LEVELS.index(level) if level in ESCALATION_LEVELS else 0


def _role_holders(people: set[int], role_code: str) -> set[int]:
    if not people:
        return set()
    return set(
        db.session.scalars(
            sa.select(user_roles.c.user_id)
            .join(Role, Role.id == user_roles.c.role_id)
            .where(Role.code == role_code, user_roles.c.user_id.in_(sorted(people)))
        )
    )


def escalation_target(
    level: str, owner_id: int, chain: Sequence[int], holders: Mapping[str, set[int]]
) -> int:
    """Who a level names for a complaint's owner: ``supervisor`` the nearest leader
    above, ``general_manager`` the top of the chain, any other name the nearest leader
    above holding that role. Nobody answering goes to the top of the chain, and an owner
    with nobody above is told themselves: an escalation is never silently dropped."""
    if chain:
        if level == "supervisor":
            return chain[0]
        if level == "general_manager":
            return chain[-1]
        for person in chain:
            if person in holders.get(level, set()):
                return person
        return chain[-1]
    return owner_id


def run_complaint_sla_sweep(
    now: datetime | None = None, batch_size: int = SWEEP_BATCH
) -> dict[str, int]:
    """The job ``sales.complaint_sla_sweep`` (every 15 minutes): every open complaint
    (open or responded) is put to ``complaint_sla`` with the hours since it was received
    (to the tenth, rounded down) and whether it has had a first response; when the
    answer's ``escalate_to`` ranks above the complaint's stored level, the level is
    raised and the people of each new level are told (``sales.complaint_escalated``),
    the owner too.

    Keyset batches over the (kind, status, received_at) index, one evaluation per
    distinct input in the run, leader chains per batch, one commit per batch. The level
    is written by a conditional UPDATE (same level and lock version as scanned), and only
    rows that UPDATE changed are announced: running twice, or two runs at once, never
    tells anyone twice."""
    now = _now(now)
    counts = {"checked": 0, "escalated": 0, "notified": 0}
    with acting_as("job:sales.complaint_sla_sweep"):
        active = rules().active(SLA_RULESET)
        answers: dict[tuple[Any, ...], Evaluation | None] = {}
        chains = loops.LeaderChains()
        for status in OPEN_STATUSES:
            statement = sa.select(
                Feedback.id,
                Feedback.number,
                Feedback.title,
                Feedback.priority,
                Feedback.category,
                Feedback.received_at,
                Feedback.first_responded_at,
                Feedback.escalated_to,
                Feedback.owner_id,
                Feedback.lock_version,
            ).where(
                Feedback.kind == "complaint",
                Feedback.status == status,
                Feedback.received_at <= now,
            )
            order = (Feedback.received_at, Feedback.id)
            for rows in keyset_batches(statement, order, batch_size):
                counts["checked"] += len(rows)
                rising = _rising(rows, now, active, answers)
                if rising:
                    escalated, notified = _escalate(rising, now, active, chains)
                    counts["escalated"] += escalated
                    counts["notified"] += notified
                db.session.commit()
    return counts


def _sweep_key(row: Any, now: datetime) -> tuple[Any, ...]:
    hours = _hours((now - as_utc(row.received_at)).total_seconds())
    return (row.priority, row.category, hours, row.first_responded_at is not None)


def _rising(
    rows: Sequence[Any],
    now: datetime,
    active: Any,
    answers: dict[tuple[Any, ...], Evaluation | None],
) -> list[tuple[Any, Evaluation, str]]:
    keys = [_sweep_key(row, now) for row in rows]
    evaluate_distinct(
        active,
        ("priority", "category", "hours_open", "first_responded"),
        keys,
        answers,
        asking="deadlines",
    )
    rising = []
    for row, key in zip(rows, keys, strict=True):
        evaluation = answers[key]
        if evaluation is None:
            continue
        level = str(evaluation.outputs.get("escalate_to") or "none")
        if _rank(level) > _rank(row.escalated_to):
            rising.append((row, evaluation, level))
    return rising


def _escalate(
    rising: Sequence[tuple[Any, Evaluation, str]],
    now: datetime,
    active: Any,
    chains: loops.LeaderChains,
) -> tuple[int, int]:
    groups: dict[tuple[str, str, int], list[tuple[Any, Evaluation]]] = defaultdict(list)
    for row, evaluation, level in rising:
        groups[(row.escalated_to, level, row.lock_version)].append((row, evaluation))
    written: list[tuple[Any, Evaluation, str]] = []
    for (old, level, version), members in groups.items():
        by_id = {row.id: (row, evaluation) for row, evaluation in members}
        statement = (
            sa.update(Feedback)
            .where(
                Feedback.id.in_(sorted(by_id)),
                Feedback.lock_version == version,
                Feedback.escalated_to == old,
                Feedback.status.in_(OPEN_STATUSES),
            )
            .values(escalated_to=level, escalated_at=now, updated_at=now, lock_version=version + 1)
            .returning(Feedback.id)
            .execution_options(synchronize_session=False)
        )
        for (changed_id,) in db.session.execute(statement).all():
            row, evaluation = by_id[changed_id]
            written.append((row, evaluation, level))
    if not written:
        return 0, 0
    owners = {row.owner_id for row, _evaluation, _level in written}
    chain_of = chains.of_people(owners)
    everyone = {person for chain in chain_of.values() for person in chain}
    role_levels = {
        level
        for _row, _evaluation, top in written
        for level in ESCALATION_LEVELS[1 : _rank(top) + 1]
        if level not in ("supervisor", "general_manager")
    }
    holders = {level: _role_holders(everyone, level) for level in role_levels}
    told: list[tuple[int, Any, str]] = []  # (person, row, level)
    for row, evaluation, level in written:
        rules().record(evaluation, (SUBJECT_TABLE, row.id), active.version_id)
        chain = chain_of.get(row.owner_id, [])
        people: list[int] = []
        for step in ESCALATION_LEVELS[_rank(row.escalated_to) + 1 : _rank(level) + 1]:
            target = escalation_target(step, row.owner_id, chain, holders)
            if target not in people:
                people.append(target)
        if row.owner_id not in people:
            people.append(row.owner_id)
        told.extend((person, row, level) for person in people)
    users = {
        user.id: user
        for user in db.session.scalars(
            sa.select(User).where(User.id.in_(sorted({person for person, *_ in told})))
        )
    }
    notified = 0
    for person, row, level in told:
        hours = _hours((now - as_utc(row.received_at)).total_seconds())
        link = portal_path("sales_aftersales.detail", feedback_id=row.id)
        if person == row.owner_id:
            title = _l(
                "Your complaint %(number)s went up to: %(level)s",
                number=row.number,
                level=_LevelName(level),
            )
        else:
            title = _l(
                "Complaint %(number)s escalated to you: %(title)s",
                number=row.number,
                title=row.title,
            )
        body = _l(
            "%(title)s: open %(hours)s hours, %(state)s.",
            title=row.title,
            hours=hours,
            state=_l("answered") if row.first_responded_at else _l("not yet answered"),
        )
        if notify(users.get(person, person), "sales.complaint_escalated", title, body, link):
            notified += 1
    return len(written), notified


class _LevelName:
    """An escalation level's label rendered in the reader's language when shown."""

    def __init__(self, level: str) -> None:
        self.level = level

    def __str__(self) -> str:
        return label("escalated_to", self.level)


# -- trends ---------------------------------------------------------------------------------


@dataclass
class MonthRow:
    """One month of the trends: counts by category and the SLA figures of the
    complaints received that month."""

    start: datetime
    label: str
    by_category: dict[str, int] = field(default_factory=dict)
    complaints: int = 0
    responded: int = 0
    response_seconds: float = 0.0
    resolved: int = 0
    resolution_seconds: float = 0.0
    with_deadlines: int = 0
    breached: int = 0

    @property
    def total(self) -> int:
        return sum(self.by_category.values())

    @property
    def avg_response_hours(self) -> float | None:
        return self.response_seconds / self.responded / 3600 if self.responded else None

    @property
    def avg_resolution_hours(self) -> float | None:
        return self.resolution_seconds / self.resolved / 3600 if self.resolved else None

    @property
    def breach_rate(self) -> float | None:
        return self.breached / self.with_deadlines if self.with_deadlines else None


@dataclass
class Trends:
    """Twelve months of feedback and complaints in the viewer's scope."""

    months: list[MonthRow]
    categories: tuple[str, ...]
    total: MonthRow

    @property
    def category_totals(self) -> dict[str, int]:
        return self.total.by_category


def month_edges(now: datetime, months: int = TREND_MONTHS) -> list[datetime]:
    """The starts of the last ``months`` local calendar months and the next one's, UTC."""
    today = loops.local_today(now)
    year, month = today.year, today.month
    starts = []
    for _step in range(months + 1):
        starts.append((year, month))
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    starts.reverse()
    starts = starts[1:]
    following = (starts[-1][0] + (starts[-1][1] == 12), starts[-1][1] % 12 + 1)
    return [loops.local_midnight(date(y, m, 1)) for y, m in [*starts, following]]


def _is_postgres() -> bool:
    return db.engine.dialect.name == "postgresql"


def _seconds_between(later: Any, earlier: Any) -> Any:
    if _is_postgres():
        return sa.extract("epoch", later - earlier)
    return (sa.func.julianday(later) - sa.func.julianday(earlier)) * 86400.0


def _bucket(edges: Sequence[datetime]) -> Any:
    """The month index of ``received_at`` (NULL outside): a CASE over UTC edges, no
    date functions, the same on SQLite and PostgreSQL."""
    whens = [
        (Feedback.received_at < edges[index + 1], sa.literal(index, sa.Integer))
        for index in range(len(edges) - 1)
    ]
    return sa.case(*whens, else_=None)


def trends(user: User, now: datetime | None = None, kind: str | None = None) -> Trends:
    """Counts by category per month over the last twelve months, and for complaints the
    average hours to the first response and to resolution and the share that broke a
    deadline; two grouped queries in the viewer's read scope."""
    now = _now(now)
    edges = month_edges(now)
    bucket = _bucket(edges).label("bucket")
    within = sa.and_(Feedback.received_at >= edges[0], Feedback.received_at < edges[-1])
    zone = loops.portal_zone()
    months = [
        MonthRow(start=start, label=start.astimezone(zone).strftime("%Y-%m"))
        for start in edges[:-1]
    ]
    counts = sa.select(bucket, Feedback.category, sa.func.count()).where(within)
    if kind in FEEDBACK_KINDS:
        counts = counts.where(Feedback.kind == kind)
    counts = scoped(counts.select_from(Feedback), Feedback, user).group_by(
        sa.text("1"), Feedback.category
    )
    categories = list(FEEDBACK_CATEGORIES)
    for index, category, number in db.session.execute(counts):
        if index is None:
            continue
        months[index].by_category[category] = int(number)
        if category not in categories:
            categories.append(category)
    resolved_at = sa.func.coalesce(Feedback.resolved_at, Feedback.closed_at)
    now_value = sa.literal(now, sa.DateTime(timezone=True))
    late_first = sa.and_(
        Feedback.first_response_due_at.is_not(None),
        sa.func.coalesce(Feedback.first_responded_at, now_value) > Feedback.first_response_due_at,
    )
    late_resolution = sa.and_(
        Feedback.resolution_due_at.is_not(None),
        sa.func.coalesce(resolved_at, now_value) > Feedback.resolution_due_at,
    )
    sla = sa.select(
        bucket,
        sa.func.count(),
        sa.func.count(Feedback.first_responded_at),
        sa.func.sum(
            sa.case(
                (
                    Feedback.first_responded_at.is_not(None),
                    _seconds_between(Feedback.first_responded_at, Feedback.received_at),
                ),
                else_=0,
            )
        ),
        sa.func.count(resolved_at),
        sa.func.sum(
            sa.case(
                (resolved_at.is_not(None), _seconds_between(resolved_at, Feedback.received_at)),
                else_=0,
            )
        ),
        sa.func.count(Feedback.resolution_due_at),
        sa.func.sum(sa.case((sa.or_(late_first, late_resolution), 1), else_=0)),
    ).where(within, Feedback.kind == "complaint")
    sla = scoped(sla.select_from(Feedback), Feedback, user).group_by(sa.text("1"))
    for (
        index,
        number,
        responded,
        response_s,
        resolved,
        resolution_s,
        due,
        late,
    ) in db.session.execute(sla):
        if index is None:
            continue
        month = months[index]
        month.complaints = int(number or 0)
        month.responded = int(responded or 0)
        month.response_seconds = max(float(response_s or 0), 0.0)
        month.resolved = int(resolved or 0)
        month.resolution_seconds = max(float(resolution_s or 0), 0.0)
        month.with_deadlines = int(due or 0)
        month.breached = int(late or 0)
    total = MonthRow(start=edges[0], label="")
    for month in months:
        for category, number in month.by_category.items():
            total.by_category[category] = total.by_category.get(category, 0) + number
        total.complaints += month.complaints
        total.responded += month.responded
        total.response_seconds += month.response_seconds
        total.resolved += month.resolved
        total.resolution_seconds += month.resolution_seconds
        total.with_deadlines += month.with_deadlines
        total.breached += month.breached
    return Trends(months=months, categories=tuple(categories), total=total)
