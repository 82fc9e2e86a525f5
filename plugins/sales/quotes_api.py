"""JSON resources of the quotes area (P3.3), under ``/api/v1/sales``: quotations with
their lines, submitting the discount for approval, revising, the customer's answer,
and the product list.

The same services, scopes and messages as the pages: 422 with per-field messages (a
line's field is ``lines-<n>-<field>``, n counted from 0), 404 outside the caller's
scope, 403 read-only, 409 when the quotation is not in a state for the change or
changed meanwhile (send ``version``).
"""

from __future__ import annotations

from typing import Any

from flask import jsonify, request
from flask_babel import gettext as _

from portal.api import (
    ApiError,
    current_api_user,
    invalid,
    iso_time,
    json_body,
    page_response,
    service_errors,
    validated,
)
from portal.extensions import db
from portal.listing import paginate
from portal.money import MONEY_SCHEMA, PERCENT_SCHEMA, percent, yuan
from portal.plugins import ApiRoute

from . import quotes as service
from .models import QUOTE_STATUSES, Product, Quotation, QuoteLine
from .quotes_forms import AnswerForm, QuoteCreateApiForm, QuotePatchApiForm

HEADER_FIELDS = (
    "valid_until",
    "delivery_method",
    "delivery_note",
    "payment_terms",
    "payment_terms_days",
    "notes",
)
LINE_KEYS = set(service.LINE_FIELDS)

LINE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "position": {"type": "integer"},
        "product_id": {"type": ["integer", "null"]},
        "description": {"type": "string"},
        "quantity": {"type": "integer"},
        "unit_price": MONEY_SCHEMA,
        "unit_cost": MONEY_SCHEMA,
        "discount_pct": PERCENT_SCHEMA,
        "total": MONEY_SCHEMA,
    },
}
QUOTE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "number": {"type": "string"},
        "version": {"type": "integer"},
        "root_id": {"type": ["integer", "null"]},
        "opportunity_id": {"type": "integer"},
        "customer_id": {"type": "integer"},
        "owner_id": {"type": "integer"},
        "status": {"type": "string", "enum": list(QUOTE_STATUSES)},
        "currency": {"type": "string"},
        "valid_until": {"type": "string", "format": "date"},
        "delivery_method": {"type": "string"},
        "delivery_note": {"type": "string"},
        "payment_terms": {"type": "string"},
        "payment_terms_days": {"type": "integer"},
        "notes": {"type": "string"},
        "list_total": MONEY_SCHEMA,
        "total": MONEY_SCHEMA,
        "discount_pct": PERCENT_SCHEMA,
        "gross_margin_pct": PERCENT_SCHEMA,
        "approval_request_id": {"type": ["integer", "null"]},
        "sent_at": {"type": ["string", "null"], "format": "date-time"},
        "decided_at": {"type": ["string", "null"], "format": "date-time"},
        "created_at": {"type": "string", "format": "date-time"},
        "version_lock": {"type": "integer"},
    },
}
QUOTE_DETAIL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        **QUOTE_SCHEMA["properties"],
        "cost_total": MONEY_SCHEMA,
        "lines": {"type": "array", "items": LINE_SCHEMA},
        "approval": {
            "type": ["object", "null"],
            "properties": {
                "id": {"type": "integer"},
                "status": {"type": "string"},
                "rule": {"type": "string"},
                "reason": {"type": "string"},
                "url": {"type": "string"},
            },
        },
        "versions": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "version": {"type": "integer"},
                    "status": {"type": "string"},
                    "total": MONEY_SCHEMA,
                },
            },
        },
    },
}
PRODUCT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "code": {"type": "string"},
        "name": {"type": "string"},
        "category": {"type": "string"},
        "unit": {"type": "string"},
        "list_price": MONEY_SCHEMA,
        "active": {"type": "boolean"},
    },
}


def _pct(basis_points: int) -> str:
    return str(percent(basis_points))


def line_json(line: QuoteLine) -> dict[str, Any]:
    """A line as the API shows it (money in yuan, percent as text)."""
    return {
        "position": line.position,
        "product_id": line.product_id,
        "description": line.description,
        "quantity": line.quantity,
        "unit_price": str(yuan(line.unit_price_cents)),
        "unit_cost": str(yuan(line.unit_cost_cents)),
        "discount_pct": _pct(line.discount_bp),
        "total": str(yuan(line.total_cents)),
    }


def quote_json(quote: Quotation) -> dict[str, Any]:
    """A quotation's header and totals."""
    return {
        "id": quote.id,
        "number": quote.number,
        "version": quote.version,
        "root_id": quote.root_id,
        "opportunity_id": quote.opportunity_id,
        "customer_id": quote.customer_id,
        "owner_id": quote.owner_id,
        "status": quote.status,
        "currency": quote.currency,
        "valid_until": quote.valid_until.isoformat(),
        "delivery_method": quote.delivery_method,
        "delivery_note": quote.delivery_note,
        "payment_terms": quote.payment_terms,
        "payment_terms_days": quote.payment_terms_days,
        "notes": quote.notes,
        "list_total": str(yuan(quote.list_total_cents)),
        "total": str(yuan(quote.total_cents)),
        "discount_pct": _pct(quote.discount_bp),
        "gross_margin_pct": _pct(quote.margin_bp),
        "approval_request_id": quote.approval_request_id,
        "sent_at": iso_time(quote.sent_at),
        "decided_at": iso_time(quote.decided_at),
        "created_at": iso_time(quote.created_at),
        "version_lock": quote.lock_version,
    }


def quote_detail_json(quote: Quotation) -> dict[str, Any]:
    """A quotation with its lines, its approval and its versions."""
    approval = service.approval_of(quote)
    return {
        **quote_json(quote),
        "cost_total": str(yuan(quote.cost_total_cents)),
        "lines": [line_json(line) for line in quote.lines],
        "approval": None
        if approval is None
        else {
            "id": approval.id,
            "status": approval.status,
            "rule": approval.rule_id,
            "reason": service.reason_label(approval.reason),
            "url": f"/approvals/{approval.id}",
        },
        "versions": [
            {
                "id": version.id,
                "version": version.version,
                "status": version.status,
                "total": str(yuan(version.total_cents)),
            }
            for version in service.versions_of(quote)
        ],
    }


def product_json(product: Product) -> dict[str, Any]:
    """A product of the list (its cost stays on the pages)."""
    return {
        "id": product.id,
        "code": product.code,
        "name": product.name,
        "category": product.category,
        "unit": product.unit,
        "list_price": str(yuan(product.list_price_cents)),
        "active": product.active,
    }


def _changed_text() -> str:
    return _("Someone changed this quotation meanwhile; read it again.")


def _lines_of(body: dict[str, Any], required: bool) -> list[dict[str, Any]] | None:
    """The ``lines`` of a body as text rows (the form's shape), or None when absent."""
    if "lines" not in body:
        if required:
            raise invalid({"lines": [_("Add at least one line.")]})
        return None
    lines = body.pop("lines")
    if not isinstance(lines, list) or not all(isinstance(row, dict) for row in lines):
        raise invalid({"lines": [_("Use a list of line objects.")]})
    rows = []
    fields: dict[str, list[str]] = {}
    for position, row in enumerate(lines):
        unknown = sorted(set(row) - LINE_KEYS)
        for name in unknown:
            fields[f"lines-{position}-{name}"] = [_("Unknown field.")]
        rows.append(
            {key: "" if row.get(key) is None else str(row.get(key)) for key in service.LINE_FIELDS}
        )
    if fields:
        raise ApiError(400, "unknown_fields", _("Unknown fields in the lines."), fields)
    if not rows:
        raise invalid({"lines": [_("Add at least one line.")]})
    return rows


def _quote(quote_id: int, verb: str = "read") -> Quotation:
    return service.get_quotation_or_404(quote_id, current_api_user(), verb)


def list_quotations() -> Any:
    """Quotations in your scope, newest first; filters: status (or all), owner, q
    (number or customer). Without a status only the newest version of each number."""
    status = request.args.get("status", "")
    if status not in (*QUOTE_STATUSES, "all"):
        status = ""
    statement = service.search_quotations(
        current_api_user(),
        status=status,
        owner_id=request.args.get("owner", type=int),
        text=request.args.get("q", "")[:100],
    )
    return page_response(paginate(statement, api=True), quote_json)


def create_quotation() -> Any:
    """A draft quotation for an opportunity in your write scope, with its lines."""
    user = current_api_user()
    body = json_body()
    rows = _lines_of(body, required=True)
    form = validated(QuoteCreateApiForm, body)
    with service_errors(_changed_text()):
        opportunity = service.opportunity_for_quote(form.opportunity_id.data, user)
        quote = service.create_quotation(opportunity, form.data, rows or [], user)
        db.session.commit()
    response = jsonify(quote_detail_json(quote))
    response.status_code = 201
    return response


def get_quotation(quote_id: int) -> Any:
    """One quotation with its lines, approval and versions (404 outside your scope)."""
    return jsonify(quote_detail_json(_quote(quote_id)))


def patch_quotation(quote_id: int) -> Any:
    """Change a draft: header fields given, and all lines when ``lines`` is given."""
    user = current_api_user()
    quote = _quote(quote_id, "write")
    body = json_body()
    rows = _lines_of(body, required=False)
    form = validated(QuotePatchApiForm, body)
    values = {name: form[name].data for name in HEADER_FIELDS if name in body}
    with service_errors(_changed_text()):
        service.update_quotation(quote, values, rows, user, expected_version=form.version.data)
        db.session.commit()
    return jsonify(quote_detail_json(quote))


def submit_quotation(quote_id: int) -> Any:
    """Submit the discount for approval; the answer says what the rule file decided."""
    user = current_api_user()
    quote = _quote(quote_id, "write")
    with service_errors(_changed_text()):
        service.submit_for_approval(quote, user)
        db.session.commit()
    return jsonify(quote_detail_json(quote))


def revise_quotation(quote_id: int) -> Any:
    """A new draft version; the old one is kept, superseded."""
    user = current_api_user()
    quote = _quote(quote_id, "write")
    with service_errors(_changed_text()):
        fresh = service.revise(quote, user)
        db.session.commit()
    response = jsonify(quote_detail_json(fresh))
    response.status_code = 201
    return response


def set_status(quote_id: int) -> Any:
    """The customer's side: ``status`` sent, accepted or declined (``note`` required)."""
    user = current_api_user()
    quote = _quote(quote_id, "write")
    form = validated(AnswerForm, json_body())
    with service_errors(_changed_text()):
        service.record_answer(quote, form.status.data or "", user, form.note.data or "")
        db.session.commit()
    return jsonify(quote_detail_json(quote))


def list_products() -> Any:
    """The product list (active products; ``q`` searches code, name and category)."""
    statement = service.search_products(request.args.get("q", "")[:100])
    return page_response(paginate(statement, api=True), product_json)


def routes() -> list[ApiRoute]:
    """The quotes resources, mounted under /api/v1/sales."""
    tag = "sales quotations"
    return [
        ApiRoute(
            "/quotations",
            list_quotations,
            summary="Quotations in your scope",
            permission="sales.view",
            paginated=True,
            schema=QUOTE_SCHEMA,
            tag=tag,
        ),
        ApiRoute(
            "/quotations",
            create_quotation,
            methods=("POST",),
            summary="Make a draft quotation for an opportunity (with lines)",
            permission="sales.edit",
            form=QuoteCreateApiForm,
            schema=QUOTE_DETAIL_SCHEMA,
            tag=tag,
        ),
        ApiRoute(
            "/quotations/<int:quote_id>",
            get_quotation,
            summary="One quotation with its lines, approval and versions",
            permission="sales.view",
            schema=QUOTE_DETAIL_SCHEMA,
            tag=tag,
        ),
        ApiRoute(
            "/quotations/<int:quote_id>",
            patch_quotation,
            methods=("PATCH",),
            summary="Change a draft quotation (header fields; lines replace all lines)",
            permission="sales.edit",
            form=QuotePatchApiForm,
            schema=QUOTE_DETAIL_SCHEMA,
            tag=tag,
        ),
        ApiRoute(
            "/quotations/<int:quote_id>/submit",
            submit_quotation,
            methods=("POST",),
            summary="Submit the discount for approval (rules/discount_approval.yaml)",
            permission="sales.edit",
            schema=QUOTE_DETAIL_SCHEMA,
            tag=tag,
        ),
        ApiRoute(
            "/quotations/<int:quote_id>/revise",
            revise_quotation,
            methods=("POST",),
            summary="Revise a quotation into a new draft version",
            permission="sales.edit",
            schema=QUOTE_DETAIL_SCHEMA,
            tag=tag,
        ),
        ApiRoute(
            "/quotations/<int:quote_id>/status",
            set_status,
            methods=("POST",),
            summary="Record the customer's answer: sent, accepted or declined",
            permission="sales.edit",
            form=AnswerForm,
            schema=QUOTE_DETAIL_SCHEMA,
            tag=tag,
        ),
        ApiRoute(
            "/products",
            list_products,
            summary="The product list",
            permission="sales.view",
            paginated=True,
            schema=PRODUCT_SCHEMA,
            tag=tag,
        ),
    ]
