"""JSON resources of the expense claims (P6.4), under ``/api/v1/daily``: claims with
their lines, submitting, cancelling, paying, and receipts uploaded as
``multipart/form-data`` (field ``receipts``).

The same services, scopes and messages as the pages: 422 with per-field messages (a
line's field is ``lines-<n>-<field>``, n counted from 0, when a claim is created with
lines), 404 outside the caller's scope, 403 when it is not their claim, 409 when the
claim is not in a state for the change (paying twice).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import jsonify, request
from flask_babel import gettext as _

from portal.api import (
    ApiError,
    current_api_user,
    invalid,
    iso_day,
    iso_time,
    json_body,
    page_response,
    refuse_unknown,
    service_errors,
)
from portal.extensions import db
from portal.listing import paginate
from portal.money import MONEY_SCHEMA, yuan
from portal.org.services import ValidationFailed
from portal.plugins import ApiRoute

from . import expenses as service
from .models import CLAIM_STATUSES, ExpenseClaim, ExpenseLine

LINE_FIELDS = (
    "spent_on",
    "category",
    "amount",
    "city",
    "vendor",
    "purpose",
    "link_kind",
    "link_id",
)
CLAIM_FIELDS = ("title", "lines")

LINE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "spent_on": {"type": "string", "format": "date"},
        "category": {"type": "string"},
        "amount": MONEY_SCHEMA,
        "city": {"type": "string"},
        "city_tier": {"type": "integer"},
        "vendor": {"type": "string"},
        "purpose": {"type": "string"},
        "link_kind": {"type": ["string", "null"]},
        "link_id": {"type": ["integer", "null"]},
        "link_label": {"type": "string"},
        "decision": {"type": ["string", "null"]},
        "decision_reason": {"type": "string"},
        "duplicate_of_id": {"type": ["integer", "null"]},
        "receipts": {"type": "array", "items": {"type": "object"}},
    },
}
CLAIM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "number": {"type": ["string", "null"]},
        "title": {"type": "string"},
        "status": {"type": "string", "enum": list(CLAIM_STATUSES)},
        "owner_id": {"type": "integer"},
        "total": MONEY_SCHEMA,
        "approval_request_id": {"type": ["integer", "null"]},
        "submitted_at": {"type": ["string", "null"], "format": "date-time"},
        "decided_at": {"type": ["string", "null"], "format": "date-time"},
        "paid_at": {"type": ["string", "null"], "format": "date-time"},
        "payment_reference": {"type": "string"},
    },
}
CLAIM_DETAIL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        **CLAIM_SCHEMA["properties"],
        "lines": {"type": "array", "items": LINE_SCHEMA},
    },
}


def line_json(line: ExpenseLine, labels: Any = None) -> dict[str, Any]:
    """One line with its rule decision and receipts (links to download them);
    ``labels`` (``expenses.link_labels``): the linked records' names the reader may see."""
    link_label = line.link_label
    if labels is not None:
        link_label = labels.get((line.link_kind, line.link_id), "") if line.link_id else ""
    return {
        "id": line.id,
        "spent_on": iso_day(line.spent_on),
        "category": line.category,
        "amount": str(yuan(line.amount_cents)),
        "city": line.city,
        "city_tier": line.city_tier,
        "vendor": line.vendor,
        "purpose": line.purpose,
        "link_kind": line.link_kind,
        "link_id": line.link_id,
        "link_label": link_label,
        "decision": line.decision,
        "decision_reason": line.decision_reason,
        "duplicate_of_id": line.duplicate_of_id,
        "receipts": [
            {
                "id": receipt.id,
                "filename": receipt.filename,
                "content_type": receipt.content_type,
                "size": receipt.size,
                "url": f"/daily/expenses/receipts/{receipt.id}",
            }
            for receipt in line.receipts
        ],
    }


def claim_json(claim: ExpenseClaim) -> dict[str, Any]:
    """A claim's header."""
    return {
        "id": claim.id,
        "number": claim.number,
        "title": claim.title,
        "status": claim.status,
        "owner_id": claim.owner_id,
        "total": str(yuan(claim.total_cents)),
        "approval_request_id": claim.approval_id,
        "submitted_at": iso_time(claim.submitted_at),
        "decided_at": iso_time(claim.decided_at),
        "paid_at": iso_time(claim.paid_at),
        "payment_reference": claim.payment_reference,
    }


def claim_detail_json(claim: ExpenseClaim, reader: Any = None) -> dict[str, Any]:
    """A claim with its lines (for ``reader``: only the linked names they may see)."""
    labels = service.link_labels(claim, reader) if reader is not None else None
    return {**claim_json(claim), "lines": [line_json(line, labels) for line in claim.lines]}


def _claim(claim_id: int, verb: str = "read") -> ExpenseClaim:
    return service.get_claim_or_404(claim_id, current_api_user(), verb)


def _row(row: Any, position: int | None = None) -> dict[str, str]:
    """A JSON line as the form's text values; unknown keys refused."""
    if not isinstance(row, dict):
        raise invalid({"lines": [_("Use a list of expense line objects.")]})
    unknown = sorted(set(row) - set(LINE_FIELDS))
    if unknown:
        prefix = "" if position is None else f"lines-{position}-"
        raise ApiError(
            400,
            "unknown_fields",
            _("Unknown fields: %(names)s", names=", ".join(unknown)),
            {f"{prefix}{name}": [_("Unknown field.")] for name in unknown},
        )
    prefix = "" if position is None else f"lines-{position}-"
    wrong = sorted(
        key for key, value in row.items() if isinstance(value, (bool, list, dict))
    )  # str() would make a text of them ("True", "[1]") and check that instead
    if wrong:
        raise invalid({f"{prefix}{key}": [_("Give a text or a number.")] for key in wrong})
    return {key: "" if row.get(key) is None else str(row.get(key)) for key in LINE_FIELDS}


def _line_values() -> tuple[dict[str, str], list[Any]]:
    """A line from a JSON body, or from a multipart form with its receipts."""
    if request.mimetype == "multipart/form-data":
        values = {key: request.form.get(key, "") for key in request.form}
        values.pop("csrf_token", None)
        return _row(values), request.files.getlist("receipts")
    return _row(json_body()), []


def list_claims() -> Any:
    """Claims in your scope, newest first; ``status`` filters, ``mine=1`` your own."""
    user = current_api_user()
    statement = service.claims_for(user).order_by(ExpenseClaim.id.desc())
    status = request.args.get("status", "")
    if status in CLAIM_STATUSES:
        statement = statement.where(ExpenseClaim.status == status)
    if request.args.get("mine") in ("1", "true"):
        statement = statement.where(ExpenseClaim.owner_id == user.id)
    return page_response(paginate(statement, api=True), claim_json)


def create_claim() -> Any:
    """A draft claim of yours, with its lines (each checked against the rules)."""
    user = current_api_user()
    body = json_body()
    refuse_unknown(body, CLAIM_FIELDS)
    lines = body.get("lines") or []
    if not isinstance(lines, list):
        raise invalid({"lines": [_("Use a list of expense line objects.")]})
    title = body.get("title")
    if title is not None and not isinstance(title, str):
        raise invalid({"title": [_("Give the title as a text.")]})
    rows = [_row(row, position) for position, row in enumerate(lines)]
    with service_errors():
        claim = service.create_claim(user, title or "")
        for position, row in enumerate(rows):
            try:
                service.add_line(claim, row, None, user)
            except ValidationFailed as error:
                raise ValidationFailed(
                    {f"lines-{position}-{name}": msgs for name, msgs in error.fields.items()}
                ) from None
        db.session.commit()
    response = jsonify(claim_detail_json(claim))
    response.status_code = 201
    return response


def get_claim(claim_id: int) -> Any:
    """One claim with its lines (404 outside your scope)."""
    return jsonify(claim_detail_json(_claim(claim_id), current_api_user()))


def add_line(claim_id: int) -> Any:
    """Add a line to your draft claim: JSON, or multipart with ``receipts`` files."""
    user = current_api_user()
    claim = _claim(claim_id, "write")
    values, uploads = _line_values()
    with service_errors():
        line = service.add_line(claim, values, uploads, user)
        db.session.commit()
    response = jsonify(line_json(line))
    response.status_code = 201
    return response


def update_line(claim_id: int, line_id: int) -> Any:
    """Change a line of your draft claim (multipart: more receipts)."""
    user = current_api_user()
    claim = _claim(claim_id, "write")
    line = service.get_line_or_404(claim, line_id)
    values, uploads = _line_values()
    with service_errors():
        service.update_line(claim, line, values, uploads, user)
        db.session.commit()
    return jsonify(line_json(line))


def _change(
    claim_id: int, change: Callable[[ExpenseClaim, Any], object], verb: str = "write"
) -> ExpenseClaim:
    """``change(claim, user)`` on the claim the token's person reaches with ``verb`` (404
    beyond scope, 403 read only), committed; a refusal answered the API's way."""
    user = current_api_user()
    claim = _claim(claim_id, verb)
    with service_errors():
        change(claim, user)
        db.session.commit()
    return claim


def delete_line(claim_id: int, line_id: int) -> Any:
    """Remove a line of your draft claim."""

    def remove(claim: ExpenseClaim, user: Any) -> None:
        service.remove_line(claim, service.get_line_or_404(claim, line_id), user)

    return jsonify(claim_detail_json(_change(claim_id, remove)))


def submit_claim(claim_id: int) -> Any:
    """Send your claim for approval (a refused line blocks it: 422 with the reason)."""
    return jsonify(claim_detail_json(_change(claim_id, service.submit_claim)))


def cancel_claim(claim_id: int) -> Any:
    """Withdraw your claim (draft, pending or rejected)."""
    return jsonify(claim_json(_change(claim_id, service.cancel_claim)))


def pay_claim(claim_id: int) -> Any:
    """Finance: mark an approved claim paid, with ``reference`` (twice: 409)."""

    def pay(claim: ExpenseClaim, user: Any) -> None:
        body = json_body()
        refuse_unknown(body, ("reference",))
        reference = body.get("reference")
        if isinstance(reference, (bool, list, dict)):
            raise invalid({"reference": [_("Give a text or a number.")]})
        service.pay_claim(claim, user, str(reference or ""))

    return jsonify(claim_json(_change(claim_id, pay, "read")))


def routes() -> list[ApiRoute]:
    """The expenses resources under /api/v1/daily."""
    tag = "daily expenses"
    return [
        ApiRoute(
            "/expense-claims",
            list_claims,
            summary="Expense claims in your scope",
            permission="daily.claim",
            paginated=True,
            schema=CLAIM_SCHEMA,
            tag=tag,
        ),
        ApiRoute(
            "/expense-claims",
            create_claim,
            methods=("POST",),
            summary="Make a draft claim (with lines)",
            permission="daily.claim",
            schema=CLAIM_DETAIL_SCHEMA,
            tag=tag,
        ),
        ApiRoute(
            "/expense-claims/<int:claim_id>",
            get_claim,
            summary="One claim with its lines and their rule decisions",
            permission="daily.claim",
            schema=CLAIM_DETAIL_SCHEMA,
            tag=tag,
        ),
        ApiRoute(
            "/expense-claims/<int:claim_id>/lines",
            add_line,
            methods=("POST",),
            summary="Add a line (JSON, or multipart/form-data with receipts)",
            permission="daily.claim",
            schema=LINE_SCHEMA,
            tag=tag,
        ),
        ApiRoute(
            "/expense-claims/<int:claim_id>/lines/<int:line_id>",
            update_line,
            methods=("PUT",),
            summary="Change a line (JSON, or multipart/form-data with more receipts)",
            permission="daily.claim",
            schema=LINE_SCHEMA,
            tag=tag,
        ),
        ApiRoute(
            "/expense-claims/<int:claim_id>/lines/<int:line_id>",
            delete_line,
            methods=("DELETE",),
            summary="Remove a line",
            permission="daily.claim",
            schema=CLAIM_DETAIL_SCHEMA,
            tag=tag,
        ),
        ApiRoute(
            "/expense-claims/<int:claim_id>/submit",
            submit_claim,
            methods=("POST",),
            summary="Submit for approval (rules/expenses.yaml, rules/expense_approval.yaml)",
            permission="daily.claim",
            schema=CLAIM_DETAIL_SCHEMA,
            tag=tag,
        ),
        ApiRoute(
            "/expense-claims/<int:claim_id>/cancel",
            cancel_claim,
            methods=("POST",),
            summary="Cancel a claim that is not approved yet",
            permission="daily.claim",
            schema=CLAIM_SCHEMA,
            tag=tag,
        ),
        ApiRoute(
            "/expense-claims/<int:claim_id>/pay",
            pay_claim,
            methods=("POST",),
            summary="Mark an approved claim paid (finance)",
            permission="daily.pay",
            schema=CLAIM_SCHEMA,
            tag=tag,
        ),
    ]
