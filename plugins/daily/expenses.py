"""Expense claims (P6.4 "control sales expenses; reimburse by company standards and
procedure; genuine, lawful receipts; approval before payment").

Every write of the expenses part goes through this module: pages and the JSON API call
the same functions, so a browser and a script meet the same checks. The functions never
commit (the caller does, once) and raise ``ValidationFailed`` (per field, 422),
``StateConflict`` (409) and ``NotAllowed`` (403).

A claim is the owner's: they add lines while it is a draft (or after a rejection),
each line is checked against ``rules/expenses.yaml`` when it is saved and again on
submission (its decision and reason are stored on the line), and a refused line blocks
submission. Submitting gives the claim its number and sends it through the core
approvals, routed by ``rules/expense_approval.yaml`` from the claim total, its
categories and what the line checks found. Finance (``daily.pay``) marks an approved
claim paid, once. No threshold lives in this code.

Role: the person's highest sales role (salesperson < supervisor < manager); anyone
holding none of them (finance, HR, an admin) is held to the salesperson's standard,
the strictest. City tier: ``rules/expense_city_tiers.yaml``, from the city as written.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy.orm.attributes import flag_modified

from portal.auth.models import User
from portal.extensions import db
from portal.files import IMAGE_AND_PDF_TYPES, StoredFile, discard_stored, store_uploads
from portal.loops.errors import NotAllowed, StateConflict
from portal.models import utcnow
from portal.money import MAX_AMOUNT_CENTS, to_cents, yuan
from portal.org.services import ValidationFailed
from portal.rules.engine import RuleInputError
from portal.scoping import scoped

from .models import EXPENSE_CATEGORIES, ExpenseClaim, ExpenseLine, ExpenseReceipt

APPROVAL_KIND = "daily.expense_claim"
RULESET = "expenses"
APPROVAL_RULESET = "expense_approval"
TIERS_RULESET = "expense_city_tiers"
SUBJECT_TABLE = "daily_expense_claim"
LINE_TABLE = "daily_expense_line"
RECEIPT_AREA = "daily_receipts"
NUMBER_PREFIX = "BX"  # 报销
DEFAULT_MAX_UPLOAD = 10 * 1024 * 1024

ROLES = ("salesperson", "supervisor", "manager")  # as expenses.yaml names them, lowest first
EDITABLE = ("draft", "rejected")  # lines may change; the claim may be (re)submitted
CANCELLABLE = ("draft", "pending", "rejected")
NOT_COUNTED = ("cancelled", "rejected")  # left out of the day and trip totals
DUPLICATE_IGNORED = ("cancelled",)
MAX_LINES = 100
MAX_RECEIPTS = 10
MAX_TITLE = 200
MAX_CITY = 80
MAX_VENDOR = 120
MAX_PURPOSE = 300
MAX_REFERENCE = 80
DEFAULT_MAX_DAYS_OLD = 90  # only if the rule file in force has no such parameter

# The rule files' reasons in the reader's language (an unknown one is shown as written).
RULE_TEXTS: dict[str, Any] = {
    "Spent too long ago to be reimbursed": _l("Spent too long ago to be reimbursed"),
    "A receipt is required above the threshold": _l("A receipt is required above the threshold"),
    "Large claim": _l("Large claim"),
    "Hotel over the limit": _l("Hotel over the limit"),
    "Hotel of the day over the daily limit": _l("Hotel of the day over the daily limit"),
    "Meal over the limit": _l("Meal over the limit"),
    "Meals of the day over the daily limit": _l("Meals of the day over the daily limit"),
    "Travel of the trip over the limit": _l("Travel of the trip over the limit"),
    "Customer entertainment": _l("Customer entertainment"),
    "A line is refused by the expense rules": _l("A line is refused by the expense rules"),
    "Large claim or possible duplicate receipt": _l("Large claim or possible duplicate receipt"),
    "Over a limit, entertainment or a larger claim": _l(
        "Over a limit, entertainment or a larger claim"
    ),
}


def rule_text(text: str | None) -> str:
    """A rule file's reason in the reader's language when known."""
    if not text:
        return ""
    return str(RULE_TEXTS.get(text, text))


# -- settings from config and rule files ------------------------------------------------


def max_upload_bytes() -> int:
    """The size cap of one receipt (``DAILY_UPLOAD_MAX_BYTES``, default 10 MB)."""
    return int(current_app.config.get("DAILY_UPLOAD_MAX_BYTES") or DEFAULT_MAX_UPLOAD)


def _rule_file(name: str) -> Any:
    from portal.rules.service import rules

    return rules().active(name).rule_file


def categories() -> tuple[str, ...]:
    """The categories ``expenses.yaml`` in force knows (an admin may add one there)."""
    try:
        values = _rule_file(RULESET).inputs["category"].values
    except Exception:  # noqa: BLE001 - no rule file in force: the shipped vocabulary
        return EXPENSE_CATEGORIES
    return tuple(values) or EXPENSE_CATEGORIES


def max_days_old() -> int:
    """How old an expense may be (``max_days_old`` of expenses.yaml in force)."""
    try:
        _spec, value = _rule_file(RULESET).parameters["max_days_old"]
        return int(value)
    except Exception:  # noqa: BLE001 - parameter removed by an admin: the documented default
        return DEFAULT_MAX_DAYS_OLD


def role_of(user: User) -> str:
    """The person's highest sales role; no sales role: the salesperson's standard."""
    held = user.role_codes
    for code in reversed(ROLES):
        if code in held:
            return code
    return ROLES[0]


def city_key(city: str | None) -> str:
    """A city as the tier file compares it: trimmed, lower case, no trailing 市/"city"."""
    text = " ".join((city or "").split()).lower()
    for suffix in ("市", " city"):
        if text.endswith(suffix):
            text = text[: -len(suffix)].strip()
    return text[:MAX_CITY]


def city_tier(city: str | None) -> int:
    """The tier of a city (rules/expense_city_tiers.yaml); 3 when no rule names it."""
    from portal.rules.service import rules

    try:
        outputs = rules().evaluate(TIERS_RULESET, {"city": city_key(city)}).outputs
        tier = int(outputs.get("tier") or 3)
    except Exception:  # noqa: BLE001 - a missing or refused tier file: the lowest limits
        return 3
    return min(max(tier, 1), 3)


# -- parsing ------------------------------------------------------------------------------


@dataclass
class LineData:
    """A checked line, ready to be written."""

    spent_on: date
    category: str
    amount_cents: int
    city: str = ""
    vendor: str = ""
    purpose: str = ""
    link_kind: str | None = None
    link_id: int | None = None
    link_label: str = ""


def _text(values: Mapping[str, Any], key: str) -> str:
    value = values.get(key)
    return "" if value is None else str(value).strip()


def parse_amount(value: Any, errors: list[str]) -> int | None:
    """Yuan text to fen: more than zero, two decimals at most, not absurd."""
    text = "" if value is None else str(value).strip().replace(",", "").lstrip("¥")
    if text == "":
        errors.append(_("Give the amount."))
        return None
    try:
        amount = Decimal(text)
    except InvalidOperation:
        errors.append(_("Write an amount in yuan, e.g. 38.50."))
        return None
    if not amount.is_finite():
        errors.append(_("Write an amount in yuan, e.g. 38.50."))
        return None
    if amount <= 0:
        errors.append(_("The amount must be more than zero."))
        return None
    if amount * 100 > MAX_AMOUNT_CENTS:
        errors.append(_("The amount is too large."))
        return None
    if amount != amount.quantize(Decimal("0.01")):
        errors.append(_("At most two decimals (fen)."))
        return None
    return to_cents(amount)


def parse_day(value: Any, errors: list[str], today: date) -> date | None:
    """An ISO date, not in the future and not older than the rule file allows."""
    if isinstance(value, datetime):
        value = value.date()
    if isinstance(value, date):
        day = value
    else:
        text = "" if value is None else str(value).strip()
        if not text:
            errors.append(_("Give the date of the expense."))
            return None
        try:
            day = date.fromisoformat(text)
        except ValueError:
            errors.append(_("Write the date as YYYY-MM-DD."))
            return None
    if day > today:
        errors.append(_("The date cannot be in the future."))
        return None
    oldest = max_days_old()
    if (today - day).days > oldest:
        errors.append(_("Older than %(days)s days: it can no longer be reimbursed.", days=oldest))
        return None
    return day


def parse_line(values: Mapping[str, Any], today: date, user: User | None = None) -> LineData:
    """Check one line's fields; ValidationFailed with every problem at once. A linked
    record must be one ``user`` (default: the logged-in person) may read."""
    from portal.links import describe_links, link_target

    errors: dict[str, list[str]] = {}

    def problems(name: str) -> list[str]:
        return errors.setdefault(name, [])

    spent_on = parse_day(values.get("spent_on"), problems("spent_on"), today)
    category = _text(values, "category")
    if not category:
        problems("category").append(_("Choose a category."))
    elif category not in categories():
        problems("category").append(_("Unknown category: choose one of the list."))
    amount = parse_amount(values.get("amount"), problems("amount"))
    lengths = {"city": MAX_CITY, "vendor": MAX_VENDOR, "purpose": MAX_PURPOSE}
    texts = {}
    for name, longest in lengths.items():
        texts[name] = _text(values, name)
        if len(texts[name]) > longest:
            problems(name).append(_("At most %(n)s characters.", n=longest))
    link_kind = _text(values, "link_kind") or None
    link_id_text = _text(values, "link_id")
    link_id: int | None = None
    link_label = ""
    if link_kind and link_id_text:
        from portal.listing import id_arg

        link_id = id_arg(link_id_text)
        if link_target(link_kind) is None or link_id is None:
            problems("link_id").append(_("Choose a record from the search."))
        else:
            found = describe_links(link_kind, [link_id], user=user)
            if link_id not in found:
                problems("link_id").append(_("Choose a record you may see."))
            else:
                link_label = found[link_id][:200]
    elif link_kind and link_target(link_kind) is None:
        problems("link_kind").append(_("Unknown kind of record."))
    errors = {name: messages for name, messages in errors.items() if messages}
    if errors:
        raise ValidationFailed(errors)
    return LineData(
        spent_on=spent_on,  # type: ignore[arg-type]
        category=category,
        amount_cents=amount,  # type: ignore[arg-type]
        city=texts["city"],
        vendor=texts["vendor"],
        purpose=texts["purpose"],
        link_kind=link_kind if link_id else None,
        link_id=link_id,
        link_label=link_label,
    )


def line_values(line: ExpenseLine) -> dict[str, Any]:
    """A saved line as the form and the API send it."""
    return {
        "spent_on": line.spent_on.isoformat(),
        "category": line.category,
        "amount": str(yuan(line.amount_cents)),
        "city": line.city,
        "vendor": line.vendor,
        "purpose": line.purpose,
        "link_kind": line.link_kind or "",
        "link_id": str(line.link_id or ""),
    }


# -- reading --------------------------------------------------------------------------------


def claims_for(user: User, verb: str = "read") -> sa.Select:
    """A SELECT of the claims ``user`` may reach by scope."""
    return scoped(sa.select(ExpenseClaim), ExpenseClaim, user, verb)


def may_read(claim: ExpenseClaim, user: User) -> bool:
    """Whether ``user`` may read ``claim`` beyond their scope: as one of the approvers of
    its approval request, or as finance paying approved claims."""
    from portal.loops.approvals import can_read
    from portal.loops.models import ApprovalRequest

    if user.can("daily.pay") and claim.status in ("approved", "paid"):
        return True
    if claim.approval_id is None:
        return False
    request = db.session.get(ApprovalRequest, claim.approval_id)
    return request is not None and can_read(request, user)


def get_claim_or_404(claim_id: int, user: User, verb: str = "read") -> ExpenseClaim:
    """A claim ``user`` may read (their scope, its approvers, finance): 404 otherwise,
    never saying it exists. ``verb="write"`` also needs it to be their own claim: 403."""
    from flask import abort

    from portal.listing import MAX_ID

    if not 0 < claim_id < MAX_ID:
        abort(404)
    claim = db.session.scalars(claims_for(user).where(ExpenseClaim.id == claim_id)).first()
    if claim is None:
        claim = db.session.get(ExpenseClaim, claim_id)
        if claim is None or not may_read(claim, user):
            abort(404)
    if verb != "read" and claim.owner_id != user.id:
        abort(403)
    return claim


def get_line_or_404(claim: ExpenseClaim, line_id: int) -> ExpenseLine:
    """A line of ``claim`` (already checked for scope)."""
    from flask import abort

    for line in claim.lines:
        if line.id == line_id:
            return line
    abort(404)


def get_receipt_or_404(receipt_id: int, user: User) -> ExpenseReceipt:
    """A receipt whose claim ``user`` may read; 404 otherwise."""
    from flask import abort

    from portal.listing import MAX_ID

    if not 0 < receipt_id < MAX_ID:
        abort(404)
    receipt = db.session.get(ExpenseReceipt, receipt_id)
    if receipt is None:
        abort(404)
    get_claim_or_404(receipt.line.claim_id, user)
    return receipt


def my_claims(user: User, status: str | None = None) -> sa.Select:
    """The person's own claims, newest first."""
    statement = claims_for(user).where(ExpenseClaim.owner_id == user.id)
    if status:
        statement = statement.where(ExpenseClaim.status == status)
    return statement.order_by(ExpenseClaim.id.desc())


def to_pay(user: User) -> sa.Select:
    """Approved claims waiting for payment (finance), oldest decision first."""
    from portal.loops.service import light_person

    statement = claims_for(user).where(ExpenseClaim.status == "approved")
    return statement.options(light_person(ExpenseClaim.owner)).order_by(
        ExpenseClaim.decided_at, ExpenseClaim.id
    )


def is_editable(claim: ExpenseClaim) -> bool:
    """Lines may be added, changed, removed."""
    return claim.status in EDITABLE


def approval_of(claim: ExpenseClaim) -> Any:
    """The claim's current approval request, if it was submitted."""
    from portal.loops.models import ApprovalRequest

    if claim.approval_id is None:
        return None
    return db.session.get(ApprovalRequest, claim.approval_id)


def link_labels(claim: ExpenseClaim, user: User) -> dict[tuple[str, int], str]:
    """The labels of the claim's linked records that ``user`` may read now, by (kind,
    id); the claimant also keeps the labels stored when they linked them. Another
    reader (an approver, finance) never sees the name of a customer outside their scope."""
    from portal.links import describe_links

    kinds: dict[str, list[int]] = {}
    for line in claim.lines:
        if line.link_kind and line.link_id:
            kinds.setdefault(line.link_kind, []).append(line.link_id)
    found: dict[tuple[str, int], str] = {}
    if claim.owner_id == user.id:
        for line in claim.lines:
            if line.link_kind and line.link_id and line.link_label:
                found[(line.link_kind, line.link_id)] = line.link_label
    for kind, ids in kinds.items():
        for record_id, text in describe_links(kind, ids, user=user).items():
            found[(kind, record_id)] = text
    return found


def duplicate_lines(lines: Iterable[ExpenseLine]) -> dict[int, ExpenseLine]:
    """The lines the given lines are flagged as duplicates of, by id (one query)."""
    ids = {line.duplicate_of_id for line in lines if line.duplicate_of_id}
    if not ids:
        return {}
    found = db.session.scalars(sa.select(ExpenseLine).where(ExpenseLine.id.in_(ids)))
    return {line.id: line for line in found}


# -- writing: claims and lines --------------------------------------------------------------


def _check_owner_editable(claim: ExpenseClaim, actor: User) -> None:
    if claim.owner_id != actor.id:
        raise NotAllowed(_("Only the claimant can change the claim."))
    if not is_editable(claim):
        raise StateConflict(_("Only a draft or rejected claim can be changed."))


def create_claim(actor: User, title: str) -> ExpenseClaim:
    """A new empty draft of ``actor``'s."""
    title = (title or "").strip()
    if not title:
        raise ValidationFailed({"title": [_("Give the claim a title, e.g. the trip.")]})
    if len(title) > MAX_TITLE:
        raise ValidationFailed({"title": [_("At most %(n)s characters.", n=MAX_TITLE)]})
    claim = ExpenseClaim(owner_id=actor.id, title=title, status="draft", total_cents=0)
    db.session.add(claim)
    db.session.flush()
    return claim


def rename_claim(claim: ExpenseClaim, actor: User, title: str) -> ExpenseClaim:
    """A new title while the claim may be changed."""
    _check_owner_editable(claim, actor)
    title = (title or "").strip()
    if not title or len(title) > MAX_TITLE:
        raise ValidationFailed(
            {"title": [_("Give a title of at most %(n)s characters.", n=MAX_TITLE)]}
        )
    claim.title = title
    db.session.flush()
    return claim


def _store_receipts(uploads: Sequence[Any] | None) -> list[StoredFile]:
    from portal.files import chosen_uploads

    chosen = chosen_uploads(uploads)
    if len(chosen) > MAX_RECEIPTS:
        raise ValidationFailed(
            {"receipts": [_("At most %(n)s receipts per line.", n=MAX_RECEIPTS)]}
        )
    return store_uploads(
        chosen,
        RECEIPT_AREA,
        types=IMAGE_AND_PDF_TYPES,
        max_bytes=max_upload_bytes(),
        field="receipts",
    )


def _apply(line: ExpenseLine, data: LineData) -> None:
    line.spent_on = data.spent_on
    line.category = data.category
    line.amount_cents = data.amount_cents
    line.city = data.city
    line.city_tier = city_tier(data.city)
    line.vendor = data.vendor
    line.purpose = data.purpose
    line.link_kind = data.link_kind
    line.link_id = data.link_id
    line.link_label = data.link_label


def _attach(line: ExpenseLine, stored: list[StoredFile], actor: User) -> None:
    now = utcnow()
    for item in stored:
        line.receipts.append(
            ExpenseReceipt(
                **item.columns(),
                uploaded_by_id=actor.id,
                uploaded_at=now,
            )
        )


def add_line(
    claim: ExpenseClaim,
    values: Mapping[str, Any],
    uploads: Sequence[Any] | None,
    actor: User,
    today: date | None = None,
) -> ExpenseLine:
    """A new line with its receipts, checked against the rules (its decision stored)."""
    from portal.loops.service import local_today

    _check_owner_editable(claim, actor)
    if len(claim.lines) >= MAX_LINES:
        raise ValidationFailed({"lines": [_("At most %(n)s lines per claim.", n=MAX_LINES)]})
    data = parse_line(values, today or local_today(), actor)
    stored = _store_receipts(uploads)
    line = ExpenseLine(
        owner_id=claim.owner_id,
        position=max((item.position for item in claim.lines), default=0) + 1,
    )
    _apply(line, data)
    claim.lines.append(line)
    _attach(line, stored, actor)
    db.session.flush()
    _after_change(claim, today, {_key(line)}, line)
    return line


def update_line(
    claim: ExpenseClaim,
    line: ExpenseLine,
    values: Mapping[str, Any],
    uploads: Sequence[Any] | None,
    actor: User,
    today: date | None = None,
) -> ExpenseLine:
    """Change a line (more receipts may come with it); checked again."""
    from portal.loops.service import local_today

    _check_owner_editable(claim, actor)
    data = parse_line(values, today or local_today(), actor)
    stored = _store_receipts(uploads)
    before = _key(line)
    _apply(line, data)
    _attach(line, stored, actor)
    db.session.flush()
    _after_change(claim, today, {before, _key(line)}, line)
    return line


def remove_line(claim: ExpenseClaim, line: ExpenseLine, actor: User) -> None:
    """Take a line (and its receipts) out of the claim; lines flagged as its duplicates
    are checked again against the others."""
    _check_owner_editable(claim, actor)
    flagged = list(
        db.session.scalars(sa.select(ExpenseLine).where(ExpenseLine.duplicate_of_id == line.id))
    )
    for other in flagged:
        other.duplicate_of_id = None
    discard_stored(RECEIPT_AREA, [receipt.stored_name for receipt in line.receipts])
    for receipt in list(line.receipts):
        db.session.delete(receipt)
    key = _key(line)
    claim.lines.remove(line)
    db.session.flush()
    for other in flagged:
        other.duplicate_of_id = find_duplicate(other)
    _after_change(claim, None, {key}, None)


def remove_receipt(claim: ExpenseClaim, receipt: ExpenseReceipt, actor: User) -> None:
    """Take one receipt off a line (a wrong photo)."""
    _check_owner_editable(claim, actor)
    line = receipt.line
    discard_stored(RECEIPT_AREA, [receipt.stored_name])
    line.receipts.remove(receipt)
    db.session.delete(receipt)
    db.session.flush()
    _after_change(claim, None, {_key(line)}, line)


def _key(line: ExpenseLine) -> tuple[date, str]:
    return (line.spent_on, line.category)


def _after_change(
    claim: ExpenseClaim,
    today: date | None,
    keys: set[tuple[date, str]],
    changed: ExpenseLine | None,
) -> None:
    """After one line changed: the total, that line's duplicate flag, and the checks of
    the lines whose day (or trip) total it touches. Submission checks them all again."""
    claim.total_cents = sum(line.amount_cents for line in claim.lines)
    flag_modified(claim, "total_cents")  # a line change is a new claim version, total or not
    if changed is not None:
        changed.duplicate_of_id = find_duplicate(changed)
    check_claim(claim, today, keys)


# -- duplicates -------------------------------------------------------------------------------


def find_duplicate(line: ExpenseLine) -> int | None:
    """The earliest other line (any claim not cancelled, anyone's) with the same receipt
    file, or with the same amount, date and vendor: a possible double claim, flagged for
    the approvers, never refused."""
    live = (
        sa.select(ExpenseClaim.id)
        .where(ExpenseClaim.status.not_in(DUPLICATE_IGNORED))
        .scalar_subquery()
    )
    digests = [receipt.sha256 for receipt in line.receipts]
    if digests and line.id is not None:
        same_file = db.session.scalar(
            sa.select(sa.func.min(ExpenseReceipt.line_id))
            .join(ExpenseLine, ExpenseLine.id == ExpenseReceipt.line_id)
            .where(
                ExpenseReceipt.sha256.in_(digests),
                ExpenseReceipt.line_id != line.id,
                ExpenseLine.claim_id.in_(live),
            )
        )
        if same_file is not None:
            return int(same_file)
    if not line.vendor:
        return None
    statement = sa.select(sa.func.min(ExpenseLine.id)).where(
        ExpenseLine.amount_cents == line.amount_cents,
        ExpenseLine.spent_on == line.spent_on,
        ExpenseLine.vendor == line.vendor,
        ExpenseLine.claim_id.in_(live),
    )
    if line.id is not None:
        statement = statement.where(ExpenseLine.id != line.id)
    found = db.session.scalar(statement)
    return int(found) if found is not None else None


# -- the rule checks --------------------------------------------------------------------------


@dataclass
class LineCheck:
    """What expenses.yaml said about one line."""

    decision: str
    reason: str
    approvers: list[str] = field(default_factory=list)


def _day_totals(claim: ExpenseClaim) -> dict[tuple[date, str], int]:
    """The owner's amounts per (day, category) over every counted claim, for the days
    and categories of this claim's lines (one query)."""
    days = {line.spent_on for line in claim.lines}
    if not days:
        return {}
    statement = (
        sa.select(ExpenseLine.spent_on, ExpenseLine.category, sa.func.sum(ExpenseLine.amount_cents))
        .join(ExpenseClaim, ExpenseClaim.id == ExpenseLine.claim_id)
        .where(
            ExpenseLine.owner_id == claim.owner_id,
            ExpenseLine.spent_on.in_(days),
            ExpenseLine.claim_id != claim.id,
            ExpenseClaim.status.not_in(NOT_COUNTED),
        )
        .group_by(ExpenseLine.spent_on, ExpenseLine.category)
    )
    totals: dict[tuple[date, str], int] = {}
    for day, category, total in db.session.execute(statement):
        totals[(day, category)] = int(total or 0)
    for line in claim.lines:  # this claim's own lines, as they are now
        key = (line.spent_on, line.category)
        totals[key] = totals.get(key, 0) + line.amount_cents
    return totals


def line_facts(
    line: ExpenseLine,
    role: str,
    day_totals: Mapping[tuple[date, str], int],
    trip_total: int,
    today: date,
) -> dict[str, Any]:
    """The facts ``rules/expenses.yaml`` decides one line on."""
    return {
        "category": line.category,
        "role": role,
        "city_tier": line.city_tier or 3,
        "amount": yuan(line.amount_cents),
        "has_receipt": bool(line.receipts),
        "day_total": yuan(day_totals.get((line.spent_on, line.category), line.amount_cents)),
        "trip_total": yuan(trip_total if line.category == "travel" else 0),
        "days_old": max((today - line.spent_on).days, 0),
    }


def check_claim(
    claim: ExpenseClaim,
    today: date | None = None,
    keys: set[tuple[date, str]] | None = None,
) -> dict[int, LineCheck]:
    """Check the lines against the rule file in force (all, or those of ``keys``: a day
    and category, travel lines for a trip); each line's decision, reason and rule
    version are stored, and the decisions recorded for its "why?" page."""
    from portal.loops.service import local_today
    from portal.rules.service import rules

    today = today or local_today()
    owner = claim.owner or db.session.get(User, claim.owner_id)
    role = role_of(owner)
    totals = _day_totals(claim)
    trip = sum(line.amount_cents for line in claim.lines if line.category == "travel")
    service = rules()
    active = service.active(RULESET)
    checks: dict[int, LineCheck] = {}
    travel = keys is not None and any(category == "travel" for _day, category in keys)
    for position, line in enumerate(claim.lines, start=1):
        affected = keys is None or _key(line) in keys or (travel and line.category == "travel")
        if not affected:
            continue
        try:
            evaluation = service.evaluate(
                RULESET, line_facts(line, role, totals, trip, today), subject=(LINE_TABLE, line.id)
            )
        except RuleInputError as error:
            fields = {
                f"lines-{position}-{name}": list(messages)
                for name, messages in error.fields.items()
            }
            raise ValidationFailed(fields) from None
        outputs = evaluation.outputs
        decision = str(outputs.get("decision") or "approve")
        line.decision = decision
        line.decision_reason = str(outputs.get("reason") or "")[:300]
        line.rule_version = active.version
        checks[line.id] = LineCheck(
            decision, line.decision_reason, [str(a) for a in outputs.get("approvers") or []]
        )
    db.session.flush()
    return checks


def approval_facts(claim: ExpenseClaim, checks: Mapping[int, LineCheck]) -> dict[str, Any]:
    """The facts ``rules/expense_approval.yaml`` routes the claim on."""
    approvers = {name for check in checks.values() for name in check.approvers}
    return {
        "total": yuan(claim.total_cents),
        "line_count": len(claim.lines),
        "any_rejected": any(check.decision == "reject" for check in checks.values()),
        "any_escalated": any(check.decision == "escalate" for check in checks.values()),
        "needs_manager": "manager" in approvers,
        "needs_finance": "finance" in approvers,
        "has_duplicates": any(line.duplicate_of_id for line in claim.lines),
        "has_entertainment": any(line.category == "entertainment" for line in claim.lines),
    }


# -- submitting, deciding, paying, cancelling ------------------------------------------------


def claim_number(claim: ExpenseClaim, today: date) -> str:
    """ "BX" + year + the id, zero-padded: BX2026000042."""
    return f"{NUMBER_PREFIX}{today.year}{claim.id:06d}"


def submit_claim(claim: ExpenseClaim, actor: User, now: datetime | None = None) -> Any:
    """Check every line again and ask for approval. A refused line blocks it, with its
    reason; a request returned for changes is sent again as the same request."""
    from portal.loops import approvals
    from portal.loops.notifications import portal_path
    from portal.loops.service import local_today

    _check_owner_editable(claim, actor)
    if not claim.lines:
        raise ValidationFailed({"lines": [_("Add at least one line.")]})
    today = local_today(now)
    for line in claim.lines:
        line.duplicate_of_id = find_duplicate(line)
    claim.total_cents = sum(line.amount_cents for line in claim.lines)
    checks = check_claim(claim, today)
    refused = [
        _("Line %(n)s: %(reason)s", n=position, reason=rule_text(line.decision_reason))
        for position, line in enumerate(claim.lines, start=1)
        if line.decision == "reject"
    ]
    if refused:
        raise ValidationFailed({"lines": refused})
    facts = approval_facts(claim, checks)
    previous = approval_of(claim)
    if claim.number is None:
        claim.number = claim_number(claim, today)
    claim.status = "pending"
    claim.submitted_at = now or utcnow()
    claim.decided_at = None
    claim.approval_id = None  # only the request sent now decides, also at once
    db.session.flush()
    title = _(
        "Expense claim %(number)s: %(title)s, ¥%(total)s",
        number=claim.number,
        title=claim.title,
        total=yuan(claim.total_cents),
    )
    request = approvals.submit_or_resubmit(
        previous,
        APPROVAL_KIND,
        title,
        actor,
        facts,
        subject=(SUBJECT_TABLE, claim.id),
        subject_link=portal_path("daily_expenses.detail", claim_id=claim.id),
        now=now,
    )
    claim.approval_id = request.id
    db.session.flush()
    return request


DECIDED_STATUS = {
    "approved": "approved",
    "rejected": "rejected",
    "returned": "draft",
    "cancelled": "draft",
}


def on_claim_decided(request: Any) -> None:
    """The approval kind's callback, in the deciding transaction: approved or rejected
    as decided; returned for changes (or withdrawn) back to draft. The claimant is told."""
    from portal.loops.notifications import notify, portal_path

    if request.subject_table != SUBJECT_TABLE or not request.subject_id:
        return
    claim = db.session.get(ExpenseClaim, int(request.subject_id))
    if claim is None or claim.status != "pending":
        return
    if claim.approval_id not in (None, request.id):
        return  # an older request of this claim
    claim.status = DECIDED_STATUS.get(request.status, "draft")
    claim.approval_id = request.id
    claim.decided_at = request.decided_at or utcnow()
    db.session.flush()
    if request.status == "cancelled" or (
        not request.steps and claim.owner_id == request.requester_id
    ):
        return
    titles = {
        "approved": _l("Expense claim approved: %(number)s", number=claim.number),
        "rejected": _l("Expense claim rejected: %(number)s", number=claim.number),
        "returned": _l("Expense claim returned for changes: %(number)s", number=claim.number),
    }
    last = next((s for s in reversed(request.steps) if s.acted_at is not None), None)
    body = (last.comment if last is not None else "") or rule_text(request.reason)
    notify(
        claim.owner_id,
        "daily.claim_decided",
        titles.get(request.status, titles["returned"]),
        body or "",
        portal_path("daily_expenses.detail", claim_id=claim.id),
    )


def pay_claim(
    claim: ExpenseClaim, actor: User, reference: str, now: datetime | None = None
) -> ExpenseClaim:
    """Finance marks an approved claim paid, with the payment reference. One
    conditional UPDATE: paying twice (two clerks at once) is a conflict, never two
    payments."""
    from portal.loops.notifications import notify, portal_path

    if not actor.can("daily.pay"):
        raise NotAllowed(_("Only finance marks claims paid."))
    if claim.owner_id == actor.id:
        raise NotAllowed(_("Nobody marks their own claim paid."))
    reference = (reference or "").strip()
    if not reference:
        raise ValidationFailed({"reference": [_("Give the payment reference.")]})
    if len(reference) > MAX_REFERENCE:
        raise ValidationFailed({"reference": [_("At most %(n)s characters.", n=MAX_REFERENCE)]})
    when = now or utcnow()
    result = db.session.execute(
        sa.update(ExpenseClaim)
        .where(ExpenseClaim.id == claim.id, ExpenseClaim.status == "approved")
        .values(
            status="paid",
            paid_at=when,
            paid_by_id=actor.id,
            payment_reference=reference,
            version_id=ExpenseClaim.version_id + 1,
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise StateConflict(_("This claim is not waiting for payment (already paid?)."))
    db.session.refresh(claim)
    notify(
        claim.owner_id,
        "daily.claim_paid",
        _l("Expense claim paid: %(number)s", number=claim.number),
        _l("Payment reference %(reference)s", reference=reference),
        portal_path("daily_expenses.detail", claim_id=claim.id),
    )
    return claim


def cancel_claim(claim: ExpenseClaim, actor: User, now: datetime | None = None) -> ExpenseClaim:
    """The claimant withdraws a draft, pending or rejected claim (a pending one's
    approval request is cancelled with it)."""
    from portal.loops import approvals

    if claim.owner_id != actor.id:
        raise NotAllowed(_("Only the claimant can cancel the claim."))
    if claim.status not in CANCELLABLE:
        raise StateConflict(_("An approved or paid claim cannot be cancelled."))
    request = approval_of(claim)
    if claim.status == "pending" and request is not None and request.status == "pending":
        approvals.cancel(request, actor, now=now)
    claim.status = "cancelled"
    claim.decided_at = now or utcnow()
    db.session.flush()
    return claim


def quick_claim(
    actor: User,
    values: Mapping[str, Any],
    uploads: Sequence[Any] | None,
    submit: bool = False,
    now: datetime | None = None,
) -> ExpenseClaim:
    """One line, one claim (a taxi fare with its photo, from a phone): the claim is
    titled after the line and, when asked, submitted at once."""
    from portal.loops.service import local_today

    from .vocabulary import label

    today = local_today(now)
    data = parse_line(values, today, actor)  # the line's own messages before anything is written
    title = _text(values, "title") or f"{label('expense_category', data.category)} {data.spent_on}"
    claim = create_claim(actor, title[:MAX_TITLE])
    add_line(claim, values, uploads, actor, today)
    if submit:
        submit_claim(claim, actor, now)
    return claim
