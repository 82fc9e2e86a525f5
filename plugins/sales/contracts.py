"""Contracts (P3.4) and their review before signing (P7.3): services.

A contract is made from one accepted quotation (its amount is the quotation's total, so
an approved discount cannot be undercut on paper), planned (milestones, payment plan,
the review checklist), reviewed through the core approvals (``sales.contract_review``,
routed by ``rules/contract_review.yaml``), signed, executed (each milestone and each
instalment a loop item, the satisfaction check after delivery) and completed.

Every function validates before it writes (``ValidationFailed`` per field or row,
``StateConflict`` for a contract in the wrong state, ``NotAllowed``), never commits, and
touches the contract row on every change so its optimistic lock serialises two people
working on the same contract at once. Numbers (default milestone dates, the deposit,
the satisfaction-check delay) come from ``rules/contract_execution.yaml``.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import sqlalchemy as sa
from flask import abort
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from portal.auth.models import User
from portal.events import emit
from portal.extensions import db
from portal.listing import id_arg, like_pattern
from portal.loops import approvals
from portal.loops import service as loops
from portal.loops.errors import NotAllowed, StateConflict
from portal.loops.models import OPEN_STATUSES, ApprovalRequest, LoopItem
from portal.loops.notifications import notify, portal_path
from portal.models import utcnow
from portal.money import MAX_AMOUNT_CENTS, format_money, yuan
from portal.org.services import ValidationFailed
from portal.rules.engine import RuleInputError
from portal.rules.service import UnknownRuleset, rules
from portal.scoping import get_scoped_or_404

from .common import contracts_for, next_number
from .models import (
    CONTRACT_STATUSES,
    MILESTONE_KINDS,
    Contract,
    Customer,
    Milestone,
    NegotiationNote,
    Opportunity,
    PaymentInstalment,
    Quotation,
)
from .vocabulary import LABELS, label, rule_text

SUBJECT_TABLE = "sales_contract"
REVIEW_KIND = "sales.contract_review"
REVIEW_RULESET = "contract_review"
EXECUTION_RULESET = "contract_execution"
# A contract can be changed while nobody is reviewing it and it is not signed.
EDITABLE_STATUSES = ("draft", "rejected")
UNSIGNED_STATUSES = ("draft", "in_review", "approved", "rejected")
RUNNING_STATUSES = ("signed", "executing")
SIGNED_STATUSES = ("signed", "executing", "completed")
DONE_LOOP_STATUSES = ("done", "verified")
MAX_INSTALMENTS = 24
MAX_TERMS_DAYS = 3650
MAX_TEXT = 10_000
MAX_REASON = 2000
SATISFACTION_SCORES = (1, 2, 3, 4, 5)

REVIEW_OUTCOME = {
    "approved": "approved",
    "rejected": "rejected",
    "returned": "draft",
    "cancelled": "draft",
}


# -- values a contract is written from ------------------------------------------------


@dataclass
class InstalmentRow:
    """One row of the payment plan as entered (blank rows are skipped)."""

    due_on: date | None = None
    amount_cents: int | None = None


@dataclass
class ContractValues:
    """What the contract form (and the API) hands the services, already parsed."""

    title: str = ""
    starts_on: date | None = None
    ends_on: date | None = None
    payment_terms_days: int | None = 0
    non_standard_clauses: bool = False
    clauses_note: str = ""
    checklist: dict[str, bool] = field(default_factory=dict)
    milestones: dict[str, date | None] = field(default_factory=dict)
    instalments: list[InstalmentRow] = field(default_factory=list)


def checklist_items() -> list[str]:
    """The review checklist's item codes, in order (vocabulary group contract_checklist)."""
    return list(LABELS["contract_checklist"])


def _field(*parts: Any) -> str:
    """A form field's full name (``instalments-2-amount``): the services report errors
    under the names the form and the API use."""
    return "-".join(str(part) for part in parts)


# -- reading -----------------------------------------------------------------------------


def get_contract_or_404(contract_id: int, user: User, verb: str = "read") -> Contract:
    """One contract in ``user``'s scope: 404 outside the read scope, 403 read-only."""
    return get_scoped_or_404(Contract, contract_id, user, verb)


def milestones_of(contract: Contract) -> list[Milestone]:
    """The contract's milestones in execution order (delivery first)."""
    rows = db.session.scalars(sa.select(Milestone).where(Milestone.contract_id == contract.id))
    order = {kind: position for position, kind in enumerate(MILESTONE_KINDS)}
    return sorted(rows, key=lambda row: (order.get(row.kind, 99), row.due_on, row.id))


def instalments_of(contract: Contract) -> list[PaymentInstalment]:
    """The payment plan in order."""
    return list(
        db.session.scalars(
            sa.select(PaymentInstalment)
            .where(PaymentInstalment.contract_id == contract.id)
            .order_by(PaymentInstalment.sequence, PaymentInstalment.id)
        )
    )


def loop_items_by_id(ids: list[int | None]) -> dict[int, LoopItem]:
    """The loop items of a contract's milestones and instalments, in one query."""
    wanted = sorted({item_id for item_id in ids if item_id})
    if not wanted:
        return {}
    statement = sa.select(LoopItem).where(LoopItem.id.in_(wanted))
    return {item.id: item for item in db.session.scalars(statement)}


def outstanding_cents(instalments: list[PaymentInstalment]) -> int:
    """What is still to be paid on a plan."""
    return sum(max(row.amount_cents - row.paid_cents, 0) for row in instalments)


def milestone_done(milestone: Milestone, item: LoopItem | None) -> bool:
    """Done on the contract, or its loop item closed (from My work, say)."""
    return milestone.done_at is not None or (item is not None and item.status in DONE_LOOP_STATUSES)


def approval_of(contract: Contract) -> ApprovalRequest | None:
    """The contract's latest review request, with its steps."""
    if contract.approval_request_id is None:
        return None
    return db.session.get(
        ApprovalRequest, contract.approval_request_id, options=approvals.shown_with_steps()
    )


def review_messages(request: ApprovalRequest | None) -> list[dict[str, str]]:
    """The rule file's flags and blocks on the latest review (``New customer: check the
    business licence``): what reviewers and the owner should read first."""
    if request is None:
        return []
    found = []
    for decision in rules().explain(approvals.SUBJECT_TABLE, request.id):
        for action in decision.actions or []:
            name = str(action.get("name", "")).removeprefix("core.")
            message = str((action.get("arguments") or {}).get("message", ""))
            if name in ("flag", "block") and message:
                entry = {"kind": name, "message": str(rule_text(message))}
                if entry not in found:
                    found.append(entry)
    return found


def review_preview(contract: Contract) -> dict[str, Any] | None:
    """Who would review the contract if it were submitted now (shown on a draft), from
    the rule file in force; None when the facts do not fit the file."""
    try:
        evaluation = rules().evaluate(REVIEW_RULESET, review_facts(contract))
    except (RuleInputError, UnknownRuleset):
        return None
    outputs = evaluation.outputs
    messages = [
        {
            "kind": str(name).removeprefix("core."),
            "message": str(rule_text(str(arguments.get("message", "")))),
        }
        for decision in evaluation.decisions
        for name, arguments in decision.actions
        if str(name).removeprefix("core.") in ("flag", "block")
    ]
    return {
        "reviewers": list(outputs.get("reviewers") or []),
        "decision": outputs.get("decision") or "review",
        "reason": str(rule_text(outputs.get("reason") or "")),
        "messages": messages,
    }


def contracts_query(user: User, args: Mapping[str, Any]) -> sa.Select:
    """The contracts list: in ``user``'s scope, filtered by ``status``, ``owner`` (for
    leaders), ``month`` (signed in, ``YYYY-MM``) and ``q`` (number, title, customer),
    newest first. Unknown filter values filter nothing out."""
    statement = contracts_for(user)
    status = str(args.get("status") or "").strip()
    if status in CONTRACT_STATUSES:
        statement = statement.where(Contract.status == status)
    if user.scope_for("read") in ("team", "all"):
        owner = id_arg(args.get("owner"))
        if owner is not None:
            statement = statement.where(Contract.owner_id == owner)
    month = month_range(str(args.get("month") or ""))
    if month is not None:
        statement = statement.where(Contract.signed_on >= month[0], Contract.signed_on <= month[1])
    words = str(args.get("q") or "").strip()[:100]
    if words:
        pattern = like_pattern(words)
        customers = sa.select(Customer.id).where(Customer.name.ilike(pattern, escape="\\"))
        statement = statement.where(
            sa.or_(
                Contract.number.ilike(pattern, escape="\\"),
                Contract.title.ilike(pattern, escape="\\"),
                Contract.customer_id.in_(customers),
            )
        )
    return statement.order_by(Contract.created_at.desc(), Contract.id.desc())


def month_range(text: str) -> tuple[date, date] | None:
    """``2026-03`` -> (1 March, 31 March); None for anything else."""
    try:
        year, month = (int(part) for part in text.strip().split("-"))
        first = date(year, month, 1)
    except (TypeError, ValueError):
        return None
    return first, first.replace(day=calendar.monthrange(year, month)[1])


def contracts_of_customer(customer: Customer, user: User, limit: int = 20) -> list[Contract]:
    """The customer's contracts ``user`` may see, newest first (customer page)."""
    statement = (
        contracts_for(user)
        .where(Contract.customer_id == customer.id)
        .order_by(Contract.created_at.desc(), Contract.id.desc())
        .limit(limit)
    )
    return list(db.session.scalars(statement))


# -- the plan a new contract starts from ---------------------------------------------------


def _plan_answer(step: str, delivery_method: str) -> Mapping[str, Any]:
    facts = {"step": step, "delivery_method": delivery_method}
    try:
        return rules().evaluate(EXECUTION_RULESET, facts).outputs
    except RuleInputError:  # a delivery method the file does not know: its default
        return rules().evaluate(EXECUTION_RULESET, {"step": step}).outputs


def satisfaction_delay_days() -> int:
    """Days after delivery the satisfaction check falls due (the rule file)."""
    return int(_plan_answer("satisfaction_check", "courier").get("days") or 0)


def default_values(quotation: Quotation, today: date) -> ContractValues:
    """The contract as the quotation and ``rules/contract_execution.yaml`` suggest it:
    title, payment terms, milestones from the delivery method, a deposit and the rest
    due after the last milestone and the payment terms."""
    opportunity = db.session.get(Opportunity, quotation.opportunity_id)
    customer = db.session.get(Customer, quotation.customer_id)
    subject = opportunity.name if opportunity is not None else quotation.number
    title = f"{subject} - {customer.name}" if customer is not None else subject
    milestones: dict[str, date | None] = {}
    for kind in MILESTONE_KINDS:
        answer = _plan_answer(kind, quotation.delivery_method)
        included = kind == "delivery" or bool(answer.get("included"))
        milestones[kind] = (
            today + timedelta(days=int(answer.get("days") or 0)) if included else None
        )
    last = max(day for day in milestones.values() if day is not None)
    terms = max(int(quotation.payment_terms_days or 0), 0)
    amount = int(quotation.total_cents or 0)
    deposit_answer = _plan_answer("deposit", quotation.delivery_method)
    share = Decimal(str(deposit_answer.get("percent") or 0))
    deposit = int((Decimal(amount) * share / 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    final_on = last + timedelta(days=terms)
    if 0 < deposit < amount:
        deposit_on = today + timedelta(days=int(deposit_answer.get("days") or 0))
        rows = [InstalmentRow(deposit_on, deposit), InstalmentRow(final_on, amount - deposit)]
    elif amount > 0:
        rows = [InstalmentRow(final_on, amount)]
    else:
        rows = []
    return ContractValues(
        title=title[:200],
        starts_on=today,
        ends_on=max([final_on, last]),
        payment_terms_days=terms,
        checklist={code: False for code in checklist_items()},
        milestones=milestones,
        instalments=rows,
    )


def values_of(contract: Contract) -> ContractValues:
    """A contract's stored values, for its edit form and for checking before review."""
    stored = contract.checklist or {}
    return ContractValues(
        title=contract.title,
        starts_on=contract.starts_on,
        ends_on=contract.ends_on,
        payment_terms_days=contract.payment_terms_days,
        non_standard_clauses=contract.non_standard_clauses,
        clauses_note=contract.clauses_note,
        checklist={code: bool(stored.get(code)) for code in checklist_items()},
        milestones={row.kind: row.due_on for row in milestones_of(contract)},
        instalments=[
            InstalmentRow(row.due_on, row.amount_cents) for row in instalments_of(contract)
        ],
    )


# -- checking values -----------------------------------------------------------------------


def check_values(values: ContractValues, amount_cents: int) -> dict[str, list[str]]:
    """Every problem with the contract's own fields, milestones and payment plan, per
    field and per row (the checklist is checked only when it goes to review)."""
    errors: dict[str, list[str]] = {}
    title = (values.title or "").strip()
    if not title:
        errors["title"] = [_("Give the contract a title.")]
    elif len(title) > 200:
        errors["title"] = [_("At most %(n)s characters.", n=200)]
    if values.starts_on and values.ends_on and values.ends_on < values.starts_on:
        errors["ends_on"] = [_("The end date is before the start date.")]
    terms = values.payment_terms_days
    if terms is None or not 0 <= terms <= MAX_TERMS_DAYS:
        errors["payment_terms_days"] = [
            _("Between 0 and %(n)s days (0: prepaid or cash on delivery).", n=MAX_TERMS_DAYS)
        ]
    note = (values.clauses_note or "").strip()
    if values.non_standard_clauses and not note:
        errors["clauses_note"] = [_("Say which clauses differ from the standard contract.")]
    elif len(note) > MAX_TEXT:
        errors["clauses_note"] = [_("At most %(n)s characters.", n=MAX_TEXT)]
    _check_milestones(values, errors)
    _check_instalments(values, amount_cents, errors)
    return errors


def _check_milestones(values: ContractValues, errors: dict[str, list[str]]) -> None:
    if not values.milestones.get("delivery"):
        errors[_field("milestones", "delivery")] = [
            _("Give the delivery date: every contract delivers.")
        ]
    previous: tuple[str, date] | None = None
    for kind in MILESTONE_KINDS:
        day = values.milestones.get(kind)
        if day is None:
            continue
        name = _field("milestones", kind)
        if values.starts_on and day < values.starts_on:
            errors.setdefault(name, []).append(_("Before the contract's start date."))
        elif previous is not None and day < previous[1]:
            errors.setdefault(name, []).append(
                _(
                    "Before %(milestone)s: milestones follow one another.",
                    milestone=label("milestone_kind", previous[0]),
                )
            )
        previous = (kind, day)


def _check_instalments(
    values: ContractValues, amount_cents: int, errors: dict[str, list[str]]
) -> None:
    rows = [
        (index, row)
        for index, row in enumerate(values.instalments)
        if row.due_on is not None or row.amount_cents is not None
    ]
    if len(rows) > MAX_INSTALMENTS:
        errors["instalments"] = [_("At most %(n)s instalments.", n=MAX_INSTALMENTS)]
        return
    if not rows and amount_cents > 0:
        errors["instalments"] = [_("Plan at least one instalment.")]
        return
    total = 0
    for number, (index, row) in enumerate(rows, start=1):
        if row.due_on is None:
            errors[_field("instalments", index, "due_on")] = [
                _("Row %(n)s: give the due date.", n=number)
            ]
        if row.amount_cents is None:
            errors[_field("instalments", index, "amount")] = [
                _("Row %(n)s: give the amount.", n=number)
            ]
        elif row.amount_cents <= 0:
            errors[_field("instalments", index, "amount")] = [
                _("Row %(n)s: the amount must be more than zero.", n=number)
            ]
        elif row.amount_cents > MAX_AMOUNT_CENTS:
            errors[_field("instalments", index, "amount")] = [
                _("Row %(n)s: the amount is too large.", n=number)
            ]
        else:
            total += row.amount_cents
    if any(key.startswith("instalments-") for key in errors) or not rows:
        return
    if total != amount_cents:
        difference = amount_cents - total
        message = (
            _(
                "The instalments add up to %(total)s, %(missing)s short of the contract "
                "amount %(amount)s.",
                total=format_money(total),
                missing=format_money(difference),
                amount=format_money(amount_cents),
            )
            if difference > 0
            else _(
                "The instalments add up to %(total)s, %(extra)s more than the contract "
                "amount %(amount)s.",
                total=format_money(total),
                extra=format_money(-difference),
                amount=format_money(amount_cents),
            )
        )
        errors["instalments"] = [message]
        for number, (index, _row) in enumerate(rows, start=1):
            errors[_field("instalments", index, "amount")] = [
                _("Row %(n)s: the rows must add up to the contract amount.", n=number)
            ]


def _check_checklist(values: ContractValues) -> dict[str, list[str]]:
    return {
        _field("checklist", code): [
            _("Tick this item: it must be checked before the contract is reviewed.")
        ]
        for code in checklist_items()
        if not values.checklist.get(code)
    }


def _write_values(contract: Contract, values: ContractValues) -> None:
    """Store the values on a contract that nobody reviews or has signed: its plan is
    replaced as a whole (no loop items hang on it yet)."""
    contract.title = values.title.strip()
    contract.starts_on = values.starts_on
    contract.ends_on = values.ends_on
    contract.payment_terms_days = int(values.payment_terms_days or 0)
    contract.non_standard_clauses = bool(values.non_standard_clauses)
    contract.clauses_note = (
        (values.clauses_note or "").strip() if values.non_standard_clauses else ""
    )
    contract.checklist = {code: bool(values.checklist.get(code)) for code in checklist_items()}
    if contract.id is not None:
        db.session.execute(sa.delete(Milestone).where(Milestone.contract_id == contract.id))
        db.session.execute(
            sa.delete(PaymentInstalment).where(PaymentInstalment.contract_id == contract.id)
        )
    db.session.flush()
    for kind in MILESTONE_KINDS:
        day = values.milestones.get(kind)
        if day is not None:
            db.session.add(Milestone(contract_id=contract.id, kind=kind, due_on=day))
    rows = [row for row in values.instalments if row.due_on is not None]
    for sequence, row in enumerate(sorted(rows, key=lambda r: r.due_on), start=1):
        db.session.add(
            PaymentInstalment(
                contract_id=contract.id,
                sequence=sequence,
                due_on=row.due_on,
                amount_cents=int(row.amount_cents or 0),
            )
        )


# -- creating and editing ------------------------------------------------------------------


def quotation_for_contract(quote_id: Any, user: User) -> Quotation:
    """The quotation a contract is to be made from: in ``user``'s write scope (404
    outside the read scope, 403 read-only)."""
    number = id_arg(quote_id)
    if number is None:
        abort(404)
    return get_scoped_or_404(Quotation, number, user, "write")


def check_quotation(quotation: Quotation) -> None:
    """Refuse (StateConflict, nothing written) a quotation that is not accepted by the
    customer or that already has its contract."""
    if quotation.status != "accepted":
        raise StateConflict(
            _(
                "A contract is made only from a quotation the customer accepted; quotation "
                "%(number)s is %(status)s.",
                number=quotation.number,
                status=label("quote_status", quotation.status),
            )
        )
    existing = existing_contract_for(quotation)
    if existing is not None:
        raise StateConflict(
            _(
                "Contract %(number)s was already made from this quotation: one contract per "
                "quotation.",
                number=existing.number,
            )
        )


def existing_contract_for(quotation: Quotation) -> Contract | None:
    """The contract already made from ``quotation`` (unscoped: only its number is told)."""
    return db.session.scalars(
        sa.select(Contract).where(Contract.quotation_id == quotation.id)
    ).first()


def create_contract(
    quotation: Quotation, actor: User, values: ContractValues, now: datetime | None = None
) -> Contract:
    """A draft contract from an accepted quotation, owned by the quotation's owner; its
    amount is the quotation's total. The caller commits."""
    check_quotation(quotation)
    amount = int(quotation.total_cents or 0)
    errors = check_values(values, amount)
    if errors:
        raise ValidationFailed(errors)
    contract = Contract(
        number=next_number("contract", "HT", now),
        title=values.title.strip(),
        customer_id=quotation.customer_id,
        opportunity_id=quotation.opportunity_id,
        quotation_id=quotation.id,
        owner_id=quotation.owner_id,
        status="draft",
        amount_cents=amount,
        checklist={},
    )
    try:
        with db.session.begin_nested():
            db.session.add(contract)
            db.session.flush()
    except sa.exc.IntegrityError:
        raise StateConflict(
            _("A contract was made from this quotation meanwhile: one contract per quotation.")
        ) from None
    _write_values(contract, values)
    db.session.flush()
    return contract


def update_contract(contract: Contract, actor: User, values: ContractValues) -> Contract:
    """Change a draft (or a rejected contract, before it goes to review again)."""
    if contract.status not in EDITABLE_STATUSES:
        raise StateConflict(_not_editable(contract))
    errors = check_values(values, contract.amount_cents)
    if errors:
        raise ValidationFailed(errors)
    _write_values(contract, values)
    contract.updated_at = utcnow()
    db.session.flush()
    return contract


def _not_editable(contract: Contract) -> str:
    if contract.status == "in_review":
        return _("The contract is being reviewed: it cannot be changed until it is decided.")
    return _(
        "A contract that is %(status)s cannot be changed.",
        status=label("contract_status", contract.status),
    )


# -- review before signing (P7.3) -------------------------------------------------------


def is_new_customer(contract: Contract) -> bool:
    """No earlier contract with this customer was ever signed."""
    earlier = db.session.scalar(
        sa.select(sa.func.count(Contract.id)).where(
            Contract.customer_id == contract.customer_id,
            Contract.id != contract.id,
            Contract.status.in_(SIGNED_STATUSES),
        )
    )
    return not earlier


def review_facts(contract: Contract) -> dict[str, Any]:
    """The facts ``rules/contract_review.yaml`` routes a contract by."""
    customer = contract.customer or db.session.get(Customer, contract.customer_id)
    return {
        "contract_amount": yuan(contract.amount_cents),
        "payment_terms_days": int(contract.payment_terms_days or 0),
        "non_standard_clauses": bool(contract.non_standard_clauses),
        "new_customer": is_new_customer(contract),
        "credit_risk": (customer.credit_risk if customer is not None else "") or "low",
    }


def submit_for_review(
    contract: Contract, actor: User, now: datetime | None = None
) -> ApprovalRequest:
    """Send a draft (or rejected) contract to review: every checklist item ticked, the
    plan complete. The rule file in force routes it (or refuses it at once: the contract
    is then rejected with the rule's reason). A request returned for changes is sent
    again (a new round of the same request) when its requester resubmits."""
    if contract.status not in EDITABLE_STATUSES:
        raise StateConflict(_not_editable(contract))
    values = values_of(contract)
    errors = _check_checklist(values)
    errors.update(check_values(values, contract.amount_cents))
    if errors:
        raise ValidationFailed(errors)
    facts = review_facts(contract)
    previous = approval_of(contract)
    contract.status = "in_review"
    contract.updated_at = utcnow()
    # The request sent now decides, also when the rule file decides it at once inside
    # ``submit``: ``on_review_decided`` ignores any request but the contract's own.
    contract.approval_request_id = None
    db.session.flush()
    request = approvals.submit_or_resubmit(
        previous,
        REVIEW_KIND,
        _("Contract %(number)s: %(title)s", number=contract.number, title=contract.title),
        actor,
        facts,
        subject=(SUBJECT_TABLE, contract.id),
        subject_link=contract_path(contract),
        now=now,
    )
    contract.approval_request_id = request.id
    db.session.flush()
    return request


def contract_path(contract: Contract) -> str:
    """The contract's page (also outside a request: notifications, loop items)."""
    return portal_path("sales_contracts.detail", contract_id=contract.id)


def on_review_decided(request: ApprovalRequest) -> None:
    """The approval kind's callback, in the deciding transaction: approved, rejected,
    or back to draft when returned or withdrawn; the owner is told."""
    if request.subject_table != SUBJECT_TABLE or not request.subject_id:
        return
    contract = db.session.get(Contract, int(request.subject_id))
    if contract is None or contract.status != "in_review":
        return
    if contract.approval_request_id not in (None, request.id):
        return  # an older request: the contract has moved on
    outcome = REVIEW_OUTCOME.get(request.status)
    if outcome is None:
        return
    contract.status = outcome
    contract.approval_request_id = request.id
    contract.updated_at = utcnow()
    if request.status == "cancelled":
        return  # withdrawn by whoever sent it: nothing to tell
    acted = [step for step in request.steps if step.acted_by_id is not None]
    if not acted and request.requester_id == contract.owner_id:
        return  # decided at once by the rule file: the owner sees it on the page
    titles = {
        "approved": _l("Contract %(number)s approved for signing", number=contract.number),
        "rejected": _l("Contract %(number)s rejected in review", number=contract.number),
        "returned": _l("Contract %(number)s returned for changes", number=contract.number),
    }
    last = acted[-1] if acted else None
    body = (last.comment if last is not None else "") or rule_text(request.reason)
    notify(
        contract.owner_id,
        "sales.contract_decided",
        titles[request.status],
        body,
        contract_path(contract),
    )


# -- signing and execution (P3.4.2) ------------------------------------------------------


def sign_contract(
    contract: Contract, actor: User, signed_on: date | None, now: datetime | None = None
) -> Contract:
    """Approved -> signed -> executing in one transaction: a loop item per milestone and
    per instalment for the owner, the customer promoted, the opportunity won, the event
    ``sales.contract_signed``."""
    now = now or utcnow()
    if contract.status != "approved":
        raise StateConflict(
            _(
                "Only a contract approved in review can be signed; this one is %(status)s.",
                status=label("contract_status", contract.status),
            )
        )
    today = loops.local_today(now)
    errors: dict[str, list[str]] = {}
    request = approval_of(contract)
    approved_on = (
        loops.local_today(request.decided_at)
        if request is not None and request.decided_at is not None
        else None
    )
    if signed_on is None:
        errors["signed_on"] = [_("Give the date it was signed.")]
    elif signed_on > today:
        errors["signed_on"] = [_("The signing date cannot be in the future.")]
    elif approved_on is not None and signed_on < approved_on:
        errors["signed_on"] = [
            _(
                "The review approved it on %(day)s: it cannot have been signed before.",
                day=approved_on.isoformat(),
            )
        ]
    if errors:
        raise ValidationFailed(errors)
    contract.signed_on = signed_on
    contract.status = "signed"
    contract.updated_at = now
    owner = contract.owner or db.session.get(User, contract.owner_id)
    link = contract_path(contract)
    for milestone in milestones_of(contract):
        kind = label("milestone_kind", milestone.kind)
        item = loops.raise_loop(
            "sales.milestone",
            _("%(milestone)s: contract %(number)s", milestone=kind, number=contract.number)[:200],
            owner,
            raised_by=actor,
            due_at=loops.due_at_from_date(max(milestone.due_on, today)),
            subject=(SUBJECT_TABLE, contract.id),
            subject_link=link,
            description=_(
                "%(milestone)s of contract %(number)s (%(title)s) for %(customer)s, due %(day)s.",
                milestone=kind,
                number=contract.number,
                title=contract.title,
                customer=contract.customer.name,
                day=milestone.due_on.isoformat(),
            ),
            now=now,
        )
        milestone.loop_item_id = item.id
    plan = instalments_of(contract)
    for instalment in plan:
        item = loops.raise_loop(
            "sales.payment",
            _(
                "Collect %(amount)s (%(n)s/%(count)s): contract %(number)s",
                amount=format_money(instalment.amount_cents),
                n=instalment.sequence,
                count=len(plan),
                number=contract.number,
            )[:200],
            owner,
            raised_by=actor,
            due_at=loops.due_at_from_date(max(instalment.due_on, today)),
            subject=(SUBJECT_TABLE, contract.id),
            subject_link=link,
            description=_(
                "Instalment %(n)s of contract %(number)s for %(customer)s: %(amount)s due "
                "%(day)s. Closed when finance records it paid in full.",
                n=instalment.sequence,
                number=contract.number,
                customer=contract.customer.name,
                amount=format_money(instalment.amount_cents),
                day=instalment.due_on.isoformat(),
            ),
            now=now,
        )
        instalment.loop_item_id = item.id
    _win(contract, actor, now)
    emit("sales.contract_signed", actor_id=actor.id, contract_id=contract.id)
    contract.status = "executing"
    db.session.flush()
    return contract


def _win(contract: Contract, actor: User, now: datetime) -> None:
    """The customer becomes a customer and the opportunity is won (their own areas'
    services, with their own checks)."""
    from . import customers, pipeline

    customer = contract.customer or db.session.get(Customer, contract.customer_id)
    customers.promote_to_customer(customer, actor, now=now)
    if contract.opportunity_id is not None:
        opportunity = db.session.get(Opportunity, contract.opportunity_id)
        if opportunity is not None and opportunity.status == "open":
            pipeline.close_as_won(opportunity, actor, now=now)


def _require_running(contract: Contract) -> None:
    if contract.status not in RUNNING_STATUSES:
        raise StateConflict(
            _(
                "Only a signed contract being carried out can take this; this one is %(status)s.",
                status=label("contract_status", contract.status),
            )
        )


def _loop_actor(item: LoopItem, actor: User, action: str) -> User:
    """Who acts on a contract's loop item: the person themselves when the loop rules let
    them (the owner, a leader above), else the owner on their behalf (finance records a
    payment on a salesperson's contract; the note names who recorded it)."""
    try:
        loops.check_action(item, actor, action)
    except (NotAllowed, StateConflict):
        return item.owner
    return actor


def mark_milestone_done(
    contract: Contract,
    milestone: Milestone,
    actor: User,
    note: str,
    now: datetime | None = None,
) -> Milestone:
    """The milestone is reached: its loop item closed with the note (unless it was
    closed already), and after delivery the satisfaction check is raised."""
    now = now or utcnow()
    _require_running(contract)
    if milestone.contract_id != contract.id:
        raise StateConflict(_("This milestone belongs to another contract."))
    if milestone.done_at is not None:
        raise StateConflict(_("This milestone is already done."))
    item = db.session.get(LoopItem, milestone.loop_item_id) if milestone.loop_item_id else None
    if item is not None and item.status in OPEN_STATUSES:
        try:
            loops.close(item, actor, note, now=now)
        except ValidationFailed as error:
            raise ValidationFailed(
                {
                    "note" if key == "closure_note" else key: value
                    for key, value in error.fields.items()
                }
            ) from None
    _milestone_reached(contract, milestone, actor, now)
    return milestone


def _milestone_reached(
    contract: Contract, milestone: Milestone, actor: User | None, now: datetime
) -> None:
    milestone.done_at = now
    contract.updated_at = now
    if milestone.kind == "delivery" and contract.satisfaction_loop_id is None:
        days = satisfaction_delay_days()
        due_on = loops.local_today(now) + timedelta(days=max(days, 0))
        item = loops.raise_loop(
            "sales.satisfaction",
            _("Satisfaction check: contract %(number)s", number=contract.number)[:200],
            contract.owner or db.session.get(User, contract.owner_id),
            raised_by=actor,
            due_at=loops.due_at_from_date(due_on),
            subject=(SUBJECT_TABLE, contract.id),
            subject_link=contract_path(contract),
            description=_(
                "Delivered to %(customer)s: ask how satisfied they are (score 1 to 5) and "
                "record it on the contract.",
                customer=contract.customer.name,
            ),
            now=now,
        )
        contract.satisfaction_loop_id = item.id
    db.session.flush()


def sync_from_loop(loop_id: int, now: datetime | None = None) -> None:
    """A milestone's loop item closed elsewhere (My work, the API): the milestone is
    done too. Meant for a ``portal_on_event`` handler of ``core.loop_changed``; safe to
    call twice."""
    milestone = db.session.scalars(
        sa.select(Milestone).where(Milestone.loop_item_id == loop_id, Milestone.done_at.is_(None))
    ).first()
    if milestone is None:
        return
    item = db.session.get(LoopItem, loop_id)
    contract = db.session.get(Contract, milestone.contract_id)
    if item is None or contract is None or item.status not in DONE_LOOP_STATUSES:
        return
    if contract.status in RUNNING_STATUSES:
        _milestone_reached(contract, milestone, None, now or utcnow())


def record_payment(
    contract: Contract,
    actor: User,
    amount_cents: int | None,
    received_on: date | None,
    instalment_id: int | None = None,
    now: datetime | None = None,
) -> list[PaymentInstalment]:
    """Money received: applied to the chosen instalment, or to the earliest unpaid ones
    in order; never more than is outstanding. An instalment paid in full has its loop
    item closed. Returns the instalments the payment went to."""
    now = now or utcnow()
    _require_running(contract)
    plan = instalments_of(contract)
    errors: dict[str, list[str]] = {}
    target = None
    if instalment_id is not None:
        target = next((row for row in plan if row.id == instalment_id), None)
        if target is None:
            errors["instalment_id"] = [_("Choose an instalment of this contract.")]
        elif target.paid_cents >= target.amount_cents:
            errors["instalment_id"] = [_("This instalment is paid in full already.")]
    rows = [target] if target is not None else plan
    limit = outstanding_cents([row for row in rows if row is not None])
    if amount_cents is None:
        errors["amount"] = [_("Give the amount received.")]
    elif amount_cents <= 0:
        errors["amount"] = [_("The amount must be more than zero.")]
    elif "instalment_id" not in errors and amount_cents > limit:
        errors["amount"] = [
            _(
                "At most %(limit)s is outstanding: a payment cannot be more.",
                limit=format_money(limit),
            )
        ]
    today = loops.local_today(now)
    if received_on is None:
        errors["received_on"] = [_("Give the date the money arrived.")]
    elif received_on > today:
        errors["received_on"] = [_("The date cannot be in the future.")]
    elif contract.signed_on is not None and received_on < contract.signed_on:
        errors["received_on"] = [_("Before the contract was signed.")]
    if errors:
        raise ValidationFailed(errors)
    assert amount_cents is not None and received_on is not None
    remaining = amount_cents
    touched = []
    received_at = loops.local_midnight(received_on)
    for row in rows:
        open_cents = row.amount_cents - row.paid_cents
        if remaining <= 0 or open_cents <= 0:
            continue
        applied = min(open_cents, remaining)
        row.paid_cents += applied
        remaining -= applied
        touched.append(row)
        _note_payment(contract, row, actor, applied, received_on, received_at, now)
    contract.updated_at = now
    db.session.flush()
    return touched


def _note_payment(
    contract: Contract,
    row: PaymentInstalment,
    actor: User,
    applied: int,
    received_on: date,
    received_at: datetime,
    now: datetime,
) -> None:
    """The payment on the instalment's loop item: a comment for part of it, closing it
    when the instalment is paid in full."""
    item = db.session.get(LoopItem, row.loop_item_id) if row.loop_item_id else None
    paid_in_full = row.paid_cents >= row.amount_cents
    if paid_in_full:
        row.paid_at = received_at
    if item is None or item.status not in OPEN_STATUSES:
        return
    text = _(
        "%(amount)s received on %(day)s (recorded by %(name)s); %(open)s still open.",
        amount=format_money(applied),
        day=received_on.isoformat(),
        name=actor.display_name,
        open=format_money(row.amount_cents - row.paid_cents),
    )
    if paid_in_full:
        text = _(
            "Paid in full: %(amount)s received on %(day)s (recorded by %(name)s).",
            amount=format_money(applied),
            day=received_on.isoformat(),
            name=actor.display_name,
        )
        loops.close(item, _loop_actor(item, actor, "close"), text, now=now)
    else:
        loops.comment(item, _loop_actor(item, actor, "comment"), text, now=now)


def record_satisfaction(
    contract: Contract,
    actor: User,
    score: int | None,
    note: str,
    now: datetime | None = None,
) -> Contract:
    """The customer's satisfaction after delivery (1 to 5, with a note); closes the
    satisfaction check's loop item."""
    now = now or utcnow()
    if contract.status != "completed":  # a completed contract may still get its answer
        _require_running(contract)
    if contract.satisfaction_loop_id is None:
        raise StateConflict(_("The satisfaction check comes after delivery."))
    if contract.satisfaction_score is not None:
        raise StateConflict(_("The customer's satisfaction was recorded already."))
    errors: dict[str, list[str]] = {}
    if score not in SATISFACTION_SCORES:
        errors["score"] = [_("Choose a score from 1 to 5.")]
    note = (note or "").strip()
    if len(note) > MAX_TEXT:
        errors["note"] = [_("At most %(n)s characters.", n=MAX_TEXT)]
    elif score is not None and score <= 2 and not note:
        errors["note"] = [_("A low score needs a note: what is the customer unhappy with?")]
    if errors:
        raise ValidationFailed(errors)
    item = db.session.get(LoopItem, contract.satisfaction_loop_id)
    if item is not None and item.status in OPEN_STATUSES:
        closing = _("Satisfaction %(score)s/5.", score=score)
        loops.close(item, actor, f"{closing} {note}".strip(), now=now)
    contract.satisfaction_score = score
    contract.satisfaction_note = note
    contract.updated_at = now
    db.session.flush()
    return contract


def completion_blockers(
    contract: Contract,
    milestones: list[Milestone] | None = None,
    plan: list[PaymentInstalment] | None = None,
    items: dict[int, LoopItem] | None = None,
) -> list[str]:
    """What still stands between a running contract and its completion."""
    milestones = milestones_of(contract) if milestones is None else milestones
    plan = instalments_of(contract) if plan is None else plan
    if items is None:
        items = loop_items_by_id([row.loop_item_id for row in milestones])
    blockers = []
    open_kinds = [
        label("milestone_kind", row.kind)
        for row in milestones
        if not milestone_done(row, items.get(row.loop_item_id or 0))
    ]
    if open_kinds:
        blockers.append(_("Milestones not done: %(names)s.", names=", ".join(open_kinds)))
    unpaid = outstanding_cents(plan)
    if unpaid:
        blockers.append(_("%(amount)s is still to be paid.", amount=format_money(unpaid)))
    return blockers


def complete_contract(contract: Contract, actor: User, now: datetime | None = None) -> Contract:
    """Every milestone done and every instalment paid: the contract is completed."""
    now = now or utcnow()
    _require_running(contract)
    milestones = milestones_of(contract)
    items = loop_items_by_id([row.loop_item_id for row in milestones])
    blockers = completion_blockers(contract, milestones, None, items)
    if blockers:
        raise StateConflict(" ".join([_("The contract cannot be completed yet."), *blockers]))
    for row in milestones:
        if row.done_at is None:  # closed from its loop item: the contract catches up
            _milestone_reached(contract, row, actor, now)
    contract.status = "completed"
    contract.completed_at = now
    contract.updated_at = now
    db.session.flush()
    return contract


def cancel_contract(
    contract: Contract, actor: User, reason: str, now: datetime | None = None
) -> Contract:
    """Cancel a contract that is not signed, with the reason. One in review has its
    request withdrawn first (only whoever sent it may withdraw it)."""
    now = now or utcnow()
    if contract.status not in UNSIGNED_STATUSES:
        raise StateConflict(
            _(
                "A contract that is %(status)s cannot be cancelled: only unsigned contracts can.",
                status=label("contract_status", contract.status),
            )
        )
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed({"reason": [_("Say why the contract is cancelled.")]})
    if len(reason) > MAX_REASON:
        raise ValidationFailed({"reason": [_("At most %(n)s characters.", n=MAX_REASON)]})
    if contract.status == "in_review":
        request = approval_of(contract)
        if request is not None and request.status == "pending":
            if request.requester_id != actor.id:
                raise NotAllowed(
                    _(
                        "The contract is in review: %(name)s, who sent it, must withdraw it first.",
                        name=request.requester.display_name,
                    )
                )
            approvals.cancel(request, actor, now=now)
    contract.status = "cancelled"
    contract.cancel_reason = reason
    contract.cancelled_at = now
    contract.updated_at = now
    quotation = db.session.get(Quotation, contract.quotation_id)
    if quotation is not None and quotation.status == "accepted":
        # The deal as accepted is off. Declined, the quotation can be revised and the
        # opportunity quoted again: one contract per quotation and one accepted
        # quotation per opportunity would otherwise leave it stuck for good.
        quotation.status = "declined"
        db.session.add(
            NegotiationNote(
                quotation_id=quotation.id,
                author_id=actor.id,
                body=_(
                    "Contract %(number)s cancelled: %(reason)s",
                    number=contract.number,
                    reason=reason,
                ),
                created_at=now,
            )
        )
    db.session.flush()
    return contract
