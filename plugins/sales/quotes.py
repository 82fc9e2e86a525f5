"""Quotations and the product list (P3.3 "a reasoned price ... negotiate price and
terms toward a favourable agreement").

Every write of the quotes area goes through this module: pages and the JSON API call
the same functions, so a browser and a script meet the same checks and messages. The
functions never commit (the caller does, once) and raise
``portal.org.services.ValidationFailed`` (per field, 422) for bad input and
``portal.loops.errors.StateConflict`` (409) for a quotation that is not in a state for
the change.

Money is whole fen, percentages basis points (``portal/money.py``). Totals are computed here
and only here: the list total (list prices), the total after the line discounts, the
overall discount (1 - total / list total) and the gross margin ((total - cost) / total).
Who must approve a discount is decided by ``rules/discount_approval.yaml`` through the
core approvals; no threshold lives in this code.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from flask import abort
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from portal.auth.models import User
from portal.extensions import db
from portal.listing import MAX_ID, like_pattern
from portal.loops.errors import StateConflict
from portal.models import utcnow
from portal.money import MAX_AMOUNT_CENTS, format_money, percent, to_basis_points, to_cents, yuan
from portal.org.services import ValidationFailed
from portal.scoping import get_scoped_or_404, scoped

from .common import next_number
from .models import (
    DELIVERY_METHODS,
    Customer,
    NegotiationNote,
    Opportunity,
    Product,
    Quotation,
    QuoteLine,
)
from .vocabulary import rule_text

APPROVAL_KIND = "sales.discount"
RULESET = "discount_approval"
SUBJECT_TABLE = "sales_quotation"
SERIES, PREFIX = "quotation", "QT"

# Roles as the rule file names them, lowest first: the requester's highest one is sent.
SELLER_ROLES = ("salesperson", "supervisor", "manager")
REVISABLE = ("approved", "rejected", "sent", "declined")
ANSWERS = ("sent", "accepted", "declined")
# The customer's answer: from which status each one may be recorded.
ANSWER_FROM = {"sent": ("approved",), "accepted": ("sent",), "declined": ("sent",)}

MAX_LINES = 200
MAX_QUANTITY = 10_000_000
MAX_UNIT_PRICE_CENTS = 100_000_000_000  # one thousand million yuan a unit
MAX_TERMS_DAYS = 365
MAX_NOTE = 4000
BP_FULL = 10_000  # 100 % in basis points


def reason_label(reason: str | None) -> str:
    """A rule file's reason in the reader's language when it is one the code knows."""
    return str(rule_text(reason))


# -- arithmetic ---------------------------------------------------------------------------


def _ratio_bp(numerator: int, denominator: int) -> int:
    """numerator / denominator in basis points, rounded half up (0 for a zero base)."""
    if denominator == 0:
        return 0
    value = Decimal(numerator) * BP_FULL / Decimal(denominator)
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def line_total_cents(quantity: int, unit_price_cents: int, discount_bp: int) -> int:
    """quantity x unit price less the line discount, in whole fen (half up)."""
    gross = Decimal(quantity) * unit_price_cents * (BP_FULL - discount_bp) / BP_FULL
    return int(gross.quantize(Decimal(1), rounding=ROUND_HALF_UP))


@dataclass(frozen=True)
class LineData:
    """One checked line, before it is written."""

    product_id: int | None
    description: str
    quantity: int
    unit_price_cents: int
    unit_cost_cents: int
    discount_bp: int
    # What the line would cost at list price: the product's list price, or for a free
    # line its own unit price (a price cut on a product line counts as discount).
    list_price_cents: int

    @property
    def total_cents(self) -> int:
        return line_total_cents(self.quantity, self.unit_price_cents, self.discount_bp)


@dataclass(frozen=True)
class Totals:
    """The figures a quotation is judged by."""

    list_total_cents: int
    total_cents: int
    cost_total_cents: int
    discount_bp: int
    margin_bp: int


def compute_totals(lines: Iterable[LineData]) -> Totals:
    """List total, total after discounts, cost, overall discount and gross margin."""
    rows = list(lines)
    list_total = sum(row.quantity * row.list_price_cents for row in rows)
    total = sum(row.total_cents for row in rows)
    cost = sum(row.quantity * row.unit_cost_cents for row in rows)
    discount = max(0, _ratio_bp(list_total - total, list_total))
    # Nothing charged: no margin at all, or -100 % when something was given away.
    no_margin = -BP_FULL if cost else 0
    margin = _ratio_bp(total - cost, total) if total else no_margin
    return Totals(list_total, total, cost, discount, margin)


# -- checking input -------------------------------------------------------------------------

LINE_FIELDS = ("product_id", "description", "quantity", "unit_price", "unit_cost", "discount")


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _money(value: str, errors: list[str], *, required: bool) -> int | None:
    """Yuan text to fen: at most two decimals, not negative, not absurd."""
    if value == "":
        if required:
            errors.append(_("Give an amount."))
        return None
    try:
        amount = Decimal(value.replace(",", ""))
    except InvalidOperation:
        errors.append(_("Write an amount in yuan, e.g. 1280.50."))
        return None
    if not amount.is_finite():
        errors.append(_("Write an amount in yuan, e.g. 1280.50."))
        return None
    if amount < 0:
        errors.append(_("Cannot be negative."))
        return None
    if amount * 100 > MAX_UNIT_PRICE_CENTS:  # before rounding: 1e30 has no fen to round
        errors.append(_("Too large."))
        return None
    if amount != amount.quantize(Decimal("0.01")):
        errors.append(_("At most two decimals (fen)."))
        return None
    return to_cents(amount)


def _percent(value: str, errors: list[str]) -> int:
    """A discount in percent (0 to 100, two decimals at most) to basis points."""
    if value == "":
        return 0
    try:
        number = Decimal(value.rstrip("%").strip())
    except InvalidOperation:
        errors.append(_("Write a percentage from 0 to 100, e.g. 7.5."))
        return 0
    if not number.is_finite():
        errors.append(_("Write a percentage from 0 to 100, e.g. 7.5."))
        return 0
    if number < 0 or number > 100:
        errors.append(_("A discount is between 0 and 100 %."))
        return 0
    if number != number.quantize(Decimal("0.01")):
        errors.append(_("At most two decimals."))
        return 0
    return to_basis_points(number)


def _quantity(value: str, errors: list[str]) -> int:
    if value == "":
        errors.append(_("Give the quantity."))
        return 0
    try:
        number = Decimal(value)
    except InvalidOperation:
        errors.append(_("The quantity is a whole number of at least 1."))
        return 0
    if not number.is_finite() or number != number.to_integral_value():
        errors.append(_("The quantity is a whole number of at least 1."))
        return 0
    if number < 1:
        errors.append(_("The quantity must be at least 1."))
        return 0
    if number > MAX_QUANTITY:
        errors.append(_("Too large."))
        return 0
    return int(number)


def _product_id(value: Any, errors: list[str]) -> int | None:
    text = _text(value)
    if text in ("", "0", "None"):
        return None
    try:
        number = int(text)
    except ValueError:
        errors.append(_("Choose a product from the list."))
        return None
    if not 0 < number < MAX_ID:
        errors.append(_("No such product."))
        return None
    return number


def is_blank_line(row: Mapping[str, Any]) -> bool:
    """A row with neither product, description nor price: an unused blank row."""
    return not any(_text(row.get(name)) for name in ("product_id", "description", "unit_price"))


def products_by_id(ids: Iterable[int]) -> dict[int, Product]:
    """The products named by the lines, one query."""
    wanted = {int(i) for i in ids if i and 0 < int(i) < MAX_ID}
    if not wanted:
        return {}
    found = db.session.scalars(sa.select(Product).where(Product.id.in_(wanted)))
    return {product.id: product for product in found}


def parse_lines(
    rows: Sequence[Mapping[str, Any]], allowed_inactive: Iterable[int] = ()
) -> list[LineData]:
    """Check the line rows (as typed: text) and return the lines to write. Blank rows
    are skipped. Errors are keyed ``lines-<position>-<field>`` (position in ``rows``),
    ``lines`` for the quotation as a whole. A product line takes its cost from the
    product list, and its description and unit price too when left empty."""
    errors: dict[str, list[str]] = {}
    wanted: list[int] = []
    for row in rows:
        scratch: list[str] = []
        product_id = _product_id(row.get("product_id"), scratch)
        if product_id:
            wanted.append(product_id)
    products = products_by_id(wanted)
    keep_inactive = set(allowed_inactive)
    lines: list[LineData] = []
    used = 0
    for position, row in enumerate(rows):
        if is_blank_line(row):
            continue
        used += 1
        found: dict[str, list[str]] = {}

        def problems(name: str, found: dict[str, list[str]] = found) -> list[str]:
            return found.setdefault(name, [])

        product_id = _product_id(row.get("product_id"), problems("product_id"))
        product = products.get(product_id) if product_id else None
        if product_id and product is None:
            problems("product_id").append(_("No such product."))
        elif product is not None and not product.active and product.id not in keep_inactive:
            problems("product_id").append(_("This product is no longer sold."))
        # A product that cannot be used is the one thing to fix on this row's left side.
        wrong_product = bool(found.get("product_id"))
        description = _text(row.get("description"))
        if not description and product is not None:
            description = product.name
        if not description and not wrong_product:
            problems("description").append(_("Describe the line or choose a product."))
        elif len(description) > 300:
            problems("description").append(_("At most %(n)s characters.", n=300))
        quantity = _quantity(_text(row.get("quantity")), problems("quantity"))
        price_text = _text(row.get("unit_price"))
        if price_text == "" and product is not None:
            unit_price = product.list_price_cents
        elif price_text == "" and wrong_product:
            unit_price = None
        else:
            unit_price = _money(price_text, problems("unit_price"), required=True)
        if product is not None:
            unit_cost = product.cost_cents  # the product list knows the cost, not the form
        else:
            unit_cost = _money(_text(row.get("unit_cost")), problems("unit_cost"), required=False)
        discount = _percent(_text(row.get("discount")), problems("discount"))
        for name, messages in found.items():
            if messages:
                errors[f"lines-{position}-{name}"] = messages
        if any(found.values()) or unit_price is None:
            continue
        lines.append(
            LineData(
                product_id=product.id if product is not None else None,
                description=description,
                quantity=quantity,
                unit_price_cents=unit_price,
                unit_cost_cents=unit_cost or 0,
                discount_bp=discount,
                list_price_cents=product.list_price_cents if product is not None else unit_price,
            )
        )
    if used == 0:
        errors["lines"] = [_("Add at least one line.")]
    elif used > MAX_LINES:
        errors["lines"] = [_("At most %(n)s lines.", n=MAX_LINES)]
    elif not errors:
        totals = compute_totals(lines)
        largest = max(totals.list_total_cents, totals.total_cents, totals.cost_total_cents)
        if largest > MAX_AMOUNT_CENTS:
            errors["lines"] = [
                _(
                    "The quotation adds up to more than %(amount)s yuan: check the quantities "
                    "and prices.",
                    amount=format_money(MAX_AMOUNT_CENTS),
                )
            ]
    if errors:
        raise ValidationFailed(errors)
    return lines


@dataclass(frozen=True)
class Header:
    """The checked header of a quotation."""

    valid_until: date
    delivery_method: str
    delivery_note: str
    payment_terms: str
    payment_terms_days: int
    notes: str


def _as_date(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = _text(value)
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def parse_header(values: Mapping[str, Any], now: datetime | None = None) -> Header:
    """Check the header fields; the validity date is today or later (company time)."""
    from portal.loops.service import local_today

    errors: dict[str, list[str]] = {}
    valid_until = _as_date(values.get("valid_until"))
    if valid_until is None:
        errors["valid_until"] = [_("Give the last day the offer is valid (YYYY-MM-DD).")]
    elif valid_until < local_today(now):
        errors["valid_until"] = [_("The validity date cannot be in the past.")]
    elif valid_until.year > local_today(now).year + 5:
        errors["valid_until"] = [_("The validity date is too far away.")]
    method = _text(values.get("delivery_method")) or "courier"
    if method not in DELIVERY_METHODS:
        errors["delivery_method"] = [_("Choose a delivery method from the list.")]
    texts: dict[str, str] = {}
    for name, limit in (("delivery_note", 300), ("payment_terms", 300), ("notes", MAX_NOTE)):
        texts[name] = _text(values.get(name))
        if len(texts[name]) > limit:
            errors[name] = [_("At most %(n)s characters.", n=limit)]
    days_text = _text(values.get("payment_terms_days")) or "0"
    days = 0
    try:
        days = int(days_text)
        if not 0 <= days <= MAX_TERMS_DAYS:
            raise ValueError
    except ValueError:
        errors["payment_terms_days"] = [
            _("A whole number of days from 0 to %(n)s.", n=MAX_TERMS_DAYS)
        ]
    if errors:
        raise ValidationFailed(errors)
    return Header(
        valid_until=valid_until,  # type: ignore[arg-type]
        delivery_method=method,
        delivery_note=texts["delivery_note"],
        payment_terms=texts["payment_terms"],
        payment_terms_days=days,
        notes=texts["notes"],
    )


def check_quotation(
    values: Mapping[str, Any],
    rows: Sequence[Mapping[str, Any]],
    now: datetime | None = None,
    allowed_inactive: Iterable[int] = (),
) -> tuple[Header, list[LineData]]:
    """Header and lines checked together, so every message comes back at once."""
    errors: dict[str, list[str]] = {}
    header = lines = None
    try:
        header = parse_header(values, now)
    except ValidationFailed as error:
        errors.update(error.fields)
    try:
        lines = parse_lines(rows, allowed_inactive)
    except ValidationFailed as error:
        errors.update(error.fields)
    if errors:
        raise ValidationFailed(errors)
    return header, lines  # type: ignore[return-value]


# -- reading ---------------------------------------------------------------------------------


def quotations_for(user: User, verb: str = "read") -> sa.Select:
    """A SELECT of the quotations ``user`` may reach."""
    return scoped(sa.select(Quotation), Quotation, user, verb)


def get_quotation_or_404(quote_id: int, user: User, verb: str = "read") -> Quotation:
    """One quotation in scope (404 outside the read scope, 403 when read-only)."""
    return get_scoped_or_404(Quotation, quote_id, user, verb)


def newest_only(statement: sa.Select) -> sa.Select:
    """Only the newest version of each number: revising marks the older ones superseded."""
    return statement.where(Quotation.status != "superseded")


def search_quotations(
    user: User, *, status: str = "", owner_id: int | None = None, text: str = ""
) -> sa.Select:
    """The quotations list: scope, filters, newest first. Without a status filter only
    the newest version of each number; ``status=superseded`` shows the replaced ones."""
    statement = quotations_for(user)
    if status == "all":
        pass
    elif status:
        statement = statement.where(Quotation.status == status)
    else:
        statement = newest_only(statement)
    if owner_id and 0 < owner_id < MAX_ID:
        statement = statement.where(Quotation.owner_id == owner_id)
    text = (text or "").strip()
    if text:
        pattern = like_pattern(text)
        customers = sa.select(Customer.id).where(Customer.name.ilike(pattern, escape="\\"))
        statement = statement.where(
            sa.or_(
                Quotation.number.ilike(pattern, escape="\\"),
                Quotation.customer_id.in_(customers),
            )
        )
    return statement.order_by(Quotation.created_at.desc(), Quotation.id.desc())


def customers_of(quotes: Iterable[Quotation]) -> dict[int, Customer]:
    """The customers of a page of quotations, one query (no N+1)."""
    ids = {quote.customer_id for quote in quotes}
    if not ids:
        return {}
    return {c.id: c for c in db.session.scalars(sa.select(Customer).where(Customer.id.in_(ids)))}


def versions_of(quote: Quotation) -> list[Quotation]:
    """Every version of the quotation's number, newest first."""
    root = quote.root_id or quote.id
    return list(
        db.session.scalars(
            sa.select(Quotation)
            .where(sa.or_(Quotation.id == root, Quotation.root_id == root))
            .order_by(Quotation.version.desc())
        )
    )


def is_newest(quote: Quotation) -> bool:
    """Whether no later version replaced it."""
    return quote.status != "superseded"


def is_editable(quote: Quotation) -> bool:
    """Only a draft of the newest version can be changed (pending ones are locked)."""
    return quote.status == "draft"


def notes_of(quote: Quotation, limit: int = 200) -> list[NegotiationNote]:
    """The negotiation notes of all versions of the number, newest first: a negotiation
    runs across versions."""
    root = quote.root_id or quote.id
    ids = sa.select(Quotation.id).where(sa.or_(Quotation.id == root, Quotation.root_id == root))
    return list(
        db.session.scalars(
            sa.select(NegotiationNote)
            .where(NegotiationNote.quotation_id.in_(ids))
            .order_by(NegotiationNote.created_at.desc(), NegotiationNote.id.desc())
            .limit(limit)
        )
    )


def approval_of(quote: Quotation) -> Any:
    """The discount approval request of this version, if it was submitted."""
    from portal.loops.models import ApprovalRequest

    if quote.approval_request_id is None:
        return None
    return db.session.get(ApprovalRequest, quote.approval_request_id)


def accepted_quotation_for(opportunity_id: int) -> Quotation | None:
    """The quotation the customer accepted for the opportunity (at most one), unscoped:
    the caller already holds the opportunity."""
    return db.session.scalars(
        sa.select(Quotation)
        .where(Quotation.opportunity_id == opportunity_id, Quotation.status == "accepted")
        .order_by(Quotation.id.desc())
        .limit(1)
    ).first()


def for_opportunity(opportunity: Any, user: User, limit: int = 20) -> list[Quotation]:
    """The newest version of each quotation of an opportunity that ``user`` may read."""
    statement = newest_only(quotations_for(user)).where(Quotation.opportunity_id == opportunity.id)
    return list(db.session.scalars(statement.order_by(Quotation.id.desc()).limit(limit)))


def for_customer(customer: Any, user: User, limit: int = 20) -> list[Quotation]:
    """The newest version of each quotation to a customer that ``user`` may read."""
    statement = newest_only(quotations_for(user)).where(Quotation.customer_id == customer.id)
    return list(db.session.scalars(statement.order_by(Quotation.id.desc()).limit(limit)))


# -- writing ---------------------------------------------------------------------------------


def _apply(quote: Quotation, header: Header, lines: Sequence[LineData]) -> None:
    """Write header, lines and totals onto a quotation (new lines replace the old)."""
    quote.valid_until = header.valid_until
    quote.delivery_method = header.delivery_method
    quote.delivery_note = header.delivery_note
    quote.payment_terms = header.payment_terms
    quote.payment_terms_days = header.payment_terms_days
    quote.notes = header.notes
    quote.lines = [
        QuoteLine(
            position=index + 1,
            product_id=line.product_id,
            description=line.description,
            quantity=line.quantity,
            unit_price_cents=line.unit_price_cents,
            unit_cost_cents=line.unit_cost_cents,
            discount_bp=line.discount_bp,
            total_cents=line.total_cents,
        )
        for index, line in enumerate(lines)
    ]
    _store_totals(quote, compute_totals(lines))


def _store_totals(quote: Quotation, totals: Totals) -> None:
    quote.list_total_cents = totals.list_total_cents
    quote.total_cents = totals.total_cents
    quote.cost_total_cents = totals.cost_total_cents
    quote.discount_bp = totals.discount_bp
    quote.margin_bp = totals.margin_bp


def opportunity_for_quote(opportunity_id: Any, user: User) -> Opportunity:
    """The opportunity a new quotation is made from: in the user's write scope (404
    unseen, 403 read-only), and still open."""
    try:
        wanted = int(opportunity_id)
    except (TypeError, ValueError):
        raise ValidationFailed({"opportunity_id": [_("Choose an opportunity.")]}) from None
    if not 0 < wanted < MAX_ID:
        abort(404)
    return get_scoped_or_404(Opportunity, wanted, user, "write")


def create_quotation(
    opportunity: Opportunity,
    values: Mapping[str, Any],
    rows: Sequence[Mapping[str, Any]],
    actor: User,
    now: datetime | None = None,
) -> Quotation:
    """A new draft quotation (version 1) for an open opportunity; the caller checked the
    write scope. Owned by the opportunity's owner, so it appears on their desk."""
    if opportunity.status != "open":
        raise ValidationFailed(
            {"opportunity_id": [_("The opportunity is closed: quote only open ones.")]}
        )
    header, lines = check_quotation(values, rows, now)
    quote = Quotation(
        number=next_number(SERIES, PREFIX, now),
        version=1,
        opportunity_id=opportunity.id,
        customer_id=opportunity.customer_id,
        owner_id=opportunity.owner_id,
        status="draft",
        currency="CNY",
    )
    _apply(quote, header, lines)
    db.session.add(quote)
    db.session.flush()
    quote.root_id = quote.id
    db.session.flush()
    return quote


def _check_version(quote: Quotation, expected_version: Any) -> None:
    if expected_version in (None, ""):
        return
    try:
        expected = int(expected_version)
    except (TypeError, ValueError):
        expected = -1
    if expected != quote.lock_version:
        raise StateConflict(
            _("Someone changed this quotation meanwhile. Reload it and make your changes again.")
        )


def update_quotation(
    quote: Quotation,
    values: Mapping[str, Any],
    rows: Sequence[Mapping[str, Any]] | None,
    actor: User,
    expected_version: Any = None,
    now: datetime | None = None,
) -> Quotation:
    """Change a draft: header and (when ``rows`` is given) all its lines. A quotation
    waiting for approval, decided or sent is locked: revise it instead."""
    if not is_editable(quote):
        raise StateConflict(_("Only a draft can be changed. Revise the quotation instead."))
    _check_version(quote, expected_version)
    kept = [line.product_id for line in quote.lines if line.product_id]
    if rows is None:
        rows = [line_values(line) for line in quote.lines]
    merged = {**header_values(quote), **{k: v for k, v in values.items() if v is not None}}
    header, lines = check_quotation(merged, rows, now, allowed_inactive=kept)
    _apply(quote, header, lines)
    db.session.flush()
    return quote


def header_values(quote: Quotation) -> dict[str, Any]:
    """A quotation's header as form values."""
    return {
        "valid_until": quote.valid_until,
        "delivery_method": quote.delivery_method,
        "delivery_note": quote.delivery_note,
        "payment_terms": quote.payment_terms,
        "payment_terms_days": quote.payment_terms_days,
        "notes": quote.notes,
    }


def line_values(line: QuoteLine) -> dict[str, Any]:
    """A saved line as form text (yuan and percent)."""
    return {
        "product_id": str(line.product_id or ""),
        "description": line.description,
        "quantity": str(line.quantity),
        "unit_price": str(yuan(line.unit_price_cents)),
        "unit_cost": str(yuan(line.unit_cost_cents)),
        "discount": str(percent(line.discount_bp)),
    }


def requested_by(user: User) -> str:
    """The requester's highest sales role as the rule file names it."""
    held = user.role_codes
    for code in reversed(SELLER_ROLES):
        if code in held:
            return code
    return SELLER_ROLES[0]


def _scale(input_name: str) -> int:
    """The decimal places the rule file in force compares ``input_name`` with."""
    from portal.rules.service import rules

    try:
        return rules().active(RULESET).rule_file.inputs[input_name].scale
    except Exception:  # no rule file in force: the approval itself will say so
        return 2


def _percent_of(part: int, whole: int, input_name: str, rounding: str) -> Decimal:
    """part / whole in percent, from the exact fen and rounded to the places the rule
    file compares, towards the stricter side: a discount of 5.001 % is not "at most
    5 %" and a margin of -0.001 % is below cost (discounts round up, margins down)."""
    if whole == 0:
        return Decimal(0)
    exponent = Decimal(1).scaleb(-_scale(input_name))
    return (Decimal(part) * 100 / Decimal(whole)).quantize(exponent, rounding=rounding)


def discount_facts(quote: Quotation, requester: User) -> dict[str, Any]:
    """The facts ``rules/discount_approval.yaml`` decides on, from the quotation's
    exact totals."""
    discount = _percent_of(
        quote.list_total_cents - quote.total_cents,
        quote.list_total_cents,
        "discount_pct",
        ROUND_CEILING,
    )
    if quote.total_cents:
        margin = _percent_of(
            quote.total_cents - quote.cost_total_cents,
            quote.total_cents,
            "gross_margin_pct",
            ROUND_FLOOR,
        )
    else:
        margin = Decimal(-100 if quote.cost_total_cents else 0)
    return {
        "requested_by": requested_by(requester),
        "discount_pct": min(Decimal(100), max(Decimal(0), discount)),
        "deal_amount": (Decimal(quote.total_cents) / 100).quantize(Decimal("0.01")),
        "gross_margin_pct": min(Decimal(100), max(Decimal(-100), margin)),
    }


def _customer_name(quote: Quotation) -> str:
    customer = db.session.get(Customer, quote.customer_id)
    return customer.name if customer is not None else ""


def submit_for_approval(quote: Quotation, actor: User, now: datetime | None = None) -> Any:
    """Ask for the discount to be approved (P3.3). The rule file in force decides: no
    approval needed (approved at once), approvers (pending: the quotation is locked
    until they decide), or a refusal (rejected, with the rule's reason). A request
    returned for changes is sent again as the same request."""
    from portal.loops import approvals
    from portal.loops.notifications import portal_path
    from portal.loops.service import local_today

    if quote.status != "draft":
        raise StateConflict(_("Only a draft can be submitted for approval."))
    if not quote.lines:
        raise ValidationFailed({"lines": [_("Add at least one line.")]})
    if quote.valid_until < local_today(now):
        raise ValidationFailed({"valid_until": [_("The validity date cannot be in the past.")]})
    facts = discount_facts(quote, actor)
    previous = approval_of(quote)
    quote.status = "pending"
    quote.decided_at = None
    # Only the request sent now decides (also at once, inside ``submit``): a decision on
    # an earlier one, sent again from the approvals page with old facts, does not.
    quote.approval_request_id = None
    db.session.flush()
    title = _(
        "Quotation %(number)s v%(version)s, %(customer)s: %(discount)s %% off",
        number=quote.number,
        version=quote.version,
        customer=_customer_name(quote),
        discount=facts["discount_pct"],
    )
    request = approvals.submit_or_resubmit(
        previous,
        APPROVAL_KIND,
        title,
        actor,
        facts,
        subject=(SUBJECT_TABLE, quote.id),
        subject_link=portal_path("sales_quotes.detail", quote_id=quote.id),
        now=now,
    )
    quote.approval_request_id = request.id
    db.session.flush()
    return request


DECIDED_STATUS = {
    "approved": "approved",
    "rejected": "rejected",
    "returned": "draft",
    "cancelled": "draft",
}


def on_discount_decided(request: Any) -> None:
    """The approval kind's callback, in the deciding transaction: approved or rejected
    as decided; returned for changes (or withdrawn) goes back to draft. The owner is
    told, unless they asked and the rule file decided at once."""
    from portal.loops.notifications import notify, portal_path

    if request.subject_table != SUBJECT_TABLE or not request.subject_id:
        return
    quote = db.session.get(Quotation, int(request.subject_id))
    if quote is None or quote.status != "pending":
        return
    if quote.approval_request_id not in (None, request.id):
        return  # an older request of this quotation: its facts are not the quotation's
    quote.status = DECIDED_STATUS.get(request.status, "draft")
    quote.approval_request_id = request.id
    quote.decided_at = request.decided_at or utcnow()
    db.session.flush()
    at_once = not request.steps
    if at_once and quote.owner_id == request.requester_id:
        return
    titles = {
        "approved": _l("Discount approved: %(number)s", number=quote.number),
        "rejected": _l("Discount rejected: %(number)s", number=quote.number),
        "returned": _l("Quotation returned for changes: %(number)s", number=quote.number),
        "cancelled": _l("Approval withdrawn: %(number)s", number=quote.number),
    }
    last = next((s for s in reversed(request.steps) if s.acted_at is not None), None)
    reason = rule_text(request.reason)
    body = (last.comment if last is not None else "") or reason  # lazy: the owner's language
    notify(
        quote.owner_id,
        "sales.quote_decided",
        titles.get(request.status, titles["returned"]),
        body or "",
        portal_path("sales_quotes.detail", quote_id=quote.id),
    )


def revise(quote: Quotation, actor: User, now: datetime | None = None) -> Quotation:
    """A new version (same number, next version, lines copied, draft) of a quotation
    that was decided, sent or declined; the old one is kept, marked superseded."""
    if quote.status not in REVISABLE:
        if quote.status == "superseded":
            raise StateConflict(_("A newer version exists: revise that one."))
        raise StateConflict(_("Only an approved, rejected, sent or declined quotation is revised."))
    latest = db.session.scalar(
        sa.select(sa.func.max(Quotation.version)).where(
            sa.or_(
                Quotation.id == (quote.root_id or quote.id),
                Quotation.root_id == (quote.root_id or quote.id),
            )
        )
    )
    fresh = Quotation(
        number=quote.number,
        version=(latest or quote.version) + 1,
        root_id=quote.root_id or quote.id,
        opportunity_id=quote.opportunity_id,
        customer_id=quote.customer_id,
        owner_id=quote.owner_id,
        status="draft",
        currency=quote.currency,
        delivery_method=quote.delivery_method,
        delivery_note=quote.delivery_note,
        payment_terms=quote.payment_terms,
        payment_terms_days=quote.payment_terms_days,
        valid_until=quote.valid_until,
        list_total_cents=quote.list_total_cents,
        total_cents=quote.total_cents,
        cost_total_cents=quote.cost_total_cents,
        discount_bp=quote.discount_bp,
        margin_bp=quote.margin_bp,
        notes=quote.notes,
        lines=[
            QuoteLine(
                position=line.position,
                product_id=line.product_id,
                description=line.description,
                quantity=line.quantity,
                unit_price_cents=line.unit_price_cents,
                unit_cost_cents=line.unit_cost_cents,
                discount_bp=line.discount_bp,
                total_cents=line.total_cents,
            )
            for line in quote.lines
        ],
    )
    quote.status = "superseded"
    db.session.add(fresh)
    db.session.flush()
    return fresh


def record_answer(
    quote: Quotation, answer: str, actor: User, note: str = "", now: datetime | None = None
) -> Quotation:
    """The customer's side: sent (after approval), accepted or declined (after it was
    sent; a decline needs a note). One accepted quotation per opportunity."""
    if answer not in ANSWERS:
        raise ValidationFailed({"status": [_("Choose sent, accepted or declined.")]})
    note = (note or "").strip()
    if len(note) > MAX_NOTE:
        raise ValidationFailed({"note": [_("At most %(n)s characters.", n=MAX_NOTE)]})
    if quote.status not in ANSWER_FROM[answer]:
        messages = {
            "sent": _("Only an approved quotation can be sent."),
            "accepted": _("Only a sent quotation can be accepted."),
            "declined": _("Only a sent quotation can be declined."),
        }
        raise StateConflict(messages[answer])
    when = now or utcnow()
    if answer == "declined" and not note:
        raise ValidationFailed({"note": [_("Say why the customer declined.")]})
    if answer == "accepted":
        other = accepted_quotation_for(quote.opportunity_id)
        if other is not None and other.id != quote.id:
            raise StateConflict(
                _(
                    "Quotation %(number)s v%(version)s was already accepted for this opportunity.",
                    number=other.number,
                    version=other.version,
                )
            )
    if answer == "sent":
        quote.sent_at = when
    quote.status = answer
    if note:
        labels = {"sent": _l("Sent"), "accepted": _l("Accepted"), "declined": _l("Declined")}
        db.session.add(
            NegotiationNote(
                quotation_id=quote.id,
                author_id=actor.id,
                body=f"{labels[answer]}: {note}",
                created_at=when,
            )
        )
    db.session.flush()
    return quote


def add_note(
    quote: Quotation, actor: User, body: str, now: datetime | None = None
) -> NegotiationNote:
    """A note of the negotiation (what the customer asked, what was offered)."""
    text = (body or "").strip()
    if not text:
        raise ValidationFailed({"body": [_("Write the note.")]})
    if len(text) > MAX_NOTE:
        raise ValidationFailed({"body": [_("At most %(n)s characters.", n=MAX_NOTE)]})
    note = NegotiationNote(
        quotation_id=quote.id, author_id=actor.id, body=text, created_at=now or utcnow()
    )
    db.session.add(note)
    db.session.flush()
    return note


# -- the product list -------------------------------------------------------------------------


def search_products(text: str = "", include_inactive: bool = False) -> sa.Select:
    """The product list by code, filtered by code, name or category."""
    statement = sa.select(Product)
    if not include_inactive:
        statement = statement.where(Product.active.is_(True))
    text = (text or "").strip()
    if text:
        pattern = like_pattern(text)
        statement = statement.where(
            sa.or_(
                Product.code.ilike(pattern, escape="\\"),
                Product.name.ilike(pattern, escape="\\"),
                Product.category.ilike(pattern, escape="\\"),
            )
        )
    return statement.order_by(Product.code, Product.id)


def product_choices(keep: Iterable[int] = (), limit: int = 1000) -> list[Product]:
    """Active products for a line's select box (plus inactive ones a line still uses)."""
    wanted = [int(i) for i in keep if i and 0 < int(i) < MAX_ID]
    condition = Product.active.is_(True)
    if wanted:
        condition = sa.or_(condition, Product.id.in_(wanted))
    return list(
        db.session.scalars(
            sa.select(Product).where(condition).order_by(Product.code, Product.id).limit(limit)
        )
    )


def save_product(product: Product | None, values: Mapping[str, Any], actor: User) -> Product:
    """Add or change a product: unique code, a name, prices in yuan (cost may be 0)."""
    errors: dict[str, list[str]] = {}
    code = _text(values.get("code")).upper()
    name = _text(values.get("name"))
    if not code:
        errors["code"] = [_("Give the product code.")]
    elif len(code) > 40:
        errors["code"] = [_("At most %(n)s characters.", n=40)]
    else:
        clash = db.session.scalar(sa.select(Product.id).where(sa.func.upper(Product.code) == code))
        if clash is not None and (product is None or clash != product.id):
            errors["code"] = [_("Another product has this code.")]
    if not name:
        errors["name"] = [_("Give the product name.")]
    elif len(name) > 200:
        errors["name"] = [_("At most %(n)s characters.", n=200)]
    category = _text(values.get("category"))
    unit = _text(values.get("unit"))
    if len(category) > 80:
        errors["category"] = [_("At most %(n)s characters.", n=80)]
    if len(unit) > 20:
        errors["unit"] = [_("At most %(n)s characters.", n=20)]
    price_errors: list[str] = []
    cost_errors: list[str] = []
    price = _money(_text(values.get("list_price")), price_errors, required=True)
    cost = _money(_text(values.get("cost")), cost_errors, required=False)
    if price_errors:
        errors["list_price"] = price_errors
    if cost_errors:
        errors["cost"] = cost_errors
    if errors:
        raise ValidationFailed(errors)
    if product is None:
        product = Product(code=code, active=True)
        db.session.add(product)
    product.code = code
    product.name = name
    product.category = category
    product.unit = unit
    product.list_price_cents = price or 0
    product.cost_cents = cost or 0
    if "active" in values and values["active"] is not None:
        product.active = bool(values["active"])
    db.session.flush()
    return product


def set_product_active(product: Product, active: bool, actor: User) -> Product:
    """Take a product off the list (old quotations keep it) or put it back."""
    product.active = active
    db.session.flush()
    return product


# -- printing ------------------------------------------------------------------------------------

_DIGITS = "零壹贰叁肆伍陆柒捌玖"
_PLACES = ("", "拾", "佰", "仟")
_GROUPS = ("", "万", "亿", "万亿")


def _group_words(number: int) -> str:
    """1..9999 in capitals, inner zeros spoken once (壹仟零伍)."""
    words, zero = "", False
    for place in (3, 2, 1, 0):
        digit = number // 10**place % 10
        if digit == 0:
            zero = bool(words)
            continue
        if zero:
            words += "零"
            zero = False
        words += _DIGITS[digit] + _PLACES[place]
    return words


def _integer_words(number: int) -> str:
    groups = []
    while number:
        groups.append(number % 10_000)
        number //= 10_000
    words, gap = "", False
    for index in range(len(groups) - 1, -1, -1):
        group = groups[index]
        if group == 0:
            gap = True
            continue
        if words and (gap or group < 1000):
            words += "零"
        words += _group_words(group) + _GROUPS[index]
        gap = False
    return words


def chinese_amount(cents: int) -> str:
    """An amount in Chinese capital numerals as written on invoices and contracts
    (大写金额): 12345.60 -> 壹万贰仟叁佰肆拾伍元陆角."""
    if cents < 0:
        return "负" + chinese_amount(-cents)
    whole, fen = divmod(int(cents), 100)
    jiao, fen = divmod(fen, 10)
    words = _integer_words(whole) + "元" if whole else ""
    if not jiao and not fen:
        return (words or "零元") + "整"
    if jiao:
        words += _DIGITS[jiao] + "角"
    elif whole:
        words += "零"
    if fen:
        words += _DIGITS[fen] + "分"
    return words
