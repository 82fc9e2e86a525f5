"""JSON resources of contracts (/api/v1/sales/contracts): list, create from an accepted
quotation, read with milestones and payment plan, submit for review, sign, record a
payment. The same services, scopes and forms as the pages: 422 with per-field (and
per-row: ``instalments-1-amount``) messages, 403 without the right, 404 outside the
caller's scope, 409 when the contract is not in a state for the step or changed since
it was read (send ``version``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from flask import jsonify, request
from flask_babel import gettext as _
from werkzeug.datastructures import MultiDict

from portal.api import (
    DATE_SCHEMA,
    TIME_SCHEMA,
    ApiError,
    current_api_user,
    invalid,
    iso_day,
    iso_time,
    json_body,
    page_response,
    refuse_unknown,
    service_errors,
    validated,
)
from portal.extensions import db
from portal.listing import paginate
from portal.loops import service as loops
from portal.money import MONEY_SCHEMA, yuan
from portal.plugins import ApiRoute

from . import contracts as service
from .contracts_forms import ContractForm, PaymentForm, SignForm
from .models import MILESTONE_KINDS, Contract

CONTRACT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "number": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "string"},
        "customer_id": {"type": "integer"},
        "customer_name": {"type": "string"},
        "opportunity_id": {"type": ["integer", "null"]},
        "quotation_id": {"type": "integer"},
        "owner_id": {"type": "integer"},
        "amount": MONEY_SCHEMA,
        "payment_terms_days": {"type": "integer"},
        "non_standard_clauses": {"type": "boolean"},
        "clauses_note": {"type": "string"},
        "checklist": {"type": "object"},
        "starts_on": DATE_SCHEMA,
        "ends_on": DATE_SCHEMA,
        "signed_on": DATE_SCHEMA,
        "completed_at": TIME_SCHEMA,
        "approval_request_id": {"type": ["integer", "null"]},
        "satisfaction_score": {"type": ["integer", "null"]},
        "version": {"type": "integer"},
        "created_at": TIME_SCHEMA,
    },
}
CONTRACT_DETAIL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        **CONTRACT_SCHEMA["properties"],
        "milestones": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "kind": {"type": "string", "enum": list(MILESTONE_KINDS)},
                    "due_on": DATE_SCHEMA,
                    "done_at": TIME_SCHEMA,
                    "loop_item_id": {"type": ["integer", "null"]},
                    "loop_status": {"type": ["string", "null"]},
                },
            },
        },
        "instalments": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "sequence": {"type": "integer"},
                    "due_on": DATE_SCHEMA,
                    "amount": MONEY_SCHEMA,
                    "paid": MONEY_SCHEMA,
                    "paid_at": TIME_SCHEMA,
                    "loop_item_id": {"type": ["integer", "null"]},
                    "loop_status": {"type": ["string", "null"]},
                },
            },
        },
        "outstanding": MONEY_SCHEMA,
        "review": {"type": ["object", "null"]},
    },
}
# The top-level keys a contract body may carry besides quote_id.
BODY_KEYS = (
    "title",
    "starts_on",
    "ends_on",
    "payment_terms_days",
    "non_standard_clauses",
    "clauses_note",
    "checklist",
    "milestones",
    "instalments",
)


def contract_json(contract: Contract) -> dict[str, Any]:
    """A contract as the API shows it (money in yuan strings)."""
    return {
        "id": contract.id,
        "number": contract.number,
        "title": contract.title,
        "status": contract.status,
        "customer_id": contract.customer_id,
        "customer_name": contract.customer.name,
        "opportunity_id": contract.opportunity_id,
        "quotation_id": contract.quotation_id,
        "owner_id": contract.owner_id,
        "amount": str(yuan(contract.amount_cents)),
        "payment_terms_days": contract.payment_terms_days,
        "non_standard_clauses": contract.non_standard_clauses,
        "clauses_note": contract.clauses_note,
        "checklist": {
            code: bool((contract.checklist or {}).get(code)) for code in service.checklist_items()
        },
        "starts_on": iso_day(contract.starts_on),
        "ends_on": iso_day(contract.ends_on),
        "signed_on": iso_day(contract.signed_on),
        "completed_at": iso_time(contract.completed_at),
        "approval_request_id": contract.approval_request_id,
        "satisfaction_score": contract.satisfaction_score,
        "version": contract.lock_version,
        "created_at": iso_time(contract.created_at),
    }


def contract_detail_json(contract: Contract) -> dict[str, Any]:
    """A contract with its milestones, payment plan (and their loop items) and review."""
    milestones = service.milestones_of(contract)
    plan = service.instalments_of(contract)
    items = service.loop_items_by_id(
        [row.loop_item_id for row in milestones] + [row.loop_item_id for row in plan]
    )
    review = service.approval_of(contract)

    def loop_status(item_id: int | None) -> str | None:
        item = items.get(item_id or 0)
        return item.status if item is not None else None

    return {
        **contract_json(contract),
        "milestones": [
            {
                "id": row.id,
                "kind": row.kind,
                "due_on": iso_day(row.due_on),
                "done_at": iso_time(row.done_at),
                "loop_item_id": row.loop_item_id,
                "loop_status": loop_status(row.loop_item_id),
            }
            for row in milestones
        ],
        "instalments": [
            {
                "id": row.id,
                "sequence": row.sequence,
                "due_on": iso_day(row.due_on),
                "amount": str(yuan(row.amount_cents)),
                "paid": str(yuan(row.paid_cents)),
                "paid_at": iso_time(row.paid_at),
                "loop_item_id": row.loop_item_id,
                "loop_status": loop_status(row.loop_item_id),
            }
            for row in plan
        ],
        "outstanding": str(yuan(service.outstanding_cents(plan))),
        "review": (
            {
                "id": review.id,
                "status": review.status,
                "routes": list(review.routes or []),
                "reason": review.reason,
                "rule_version": review.rule_version,
            }
            if review is not None
            else None
        ),
    }


# -- bodies ----------------------------------------------------------------------------------


def _scalar(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool | dict | list):
        raise TypeError
    return str(value)


def _contract_formdata(body: Mapping[str, Any]) -> MultiDict:
    """A JSON contract body as the form's fields (``checklist-scope_clear``,
    ``milestones-delivery``, ``instalments-0-amount``); shapes that do not fit are
    refused per field (422), unknown keys as a whole (400)."""
    refuse_unknown(body, BODY_KEYS)
    data: MultiDict = MultiDict()
    wrong: dict[str, list[str]] = {}
    for key in ("title", "starts_on", "ends_on", "payment_terms_days", "clauses_note"):
        if key in body:
            try:
                data[key] = _scalar(body[key])
            except TypeError:
                wrong[key] = [_("Use a single value.")]
    if "non_standard_clauses" in body:
        if not isinstance(body["non_standard_clauses"], bool):
            wrong["non_standard_clauses"] = [_("Use true or false.")]
        elif body["non_standard_clauses"]:
            data["non_standard_clauses"] = "y"
    checklist = body.get("checklist", {})
    if not isinstance(checklist, dict):
        wrong["checklist"] = [_("Use an object of item: true or false.")]
    else:
        for code, ticked in checklist.items():
            if code not in service.checklist_items():
                wrong[f"checklist-{code}"] = [_("Unknown checklist item.")]
            elif not isinstance(ticked, bool):
                wrong[f"checklist-{code}"] = [_("Use true or false.")]
            elif ticked:
                data[f"checklist-{code}"] = "y"
    milestones = body.get("milestones", {})
    if isinstance(milestones, list):  # [{"kind": "delivery", "due_on": "..."}] as GET shows
        milestones = {
            row.get("kind"): row.get("due_on") for row in milestones if isinstance(row, dict)
        }
    if not isinstance(milestones, dict):
        wrong["milestones"] = [_("Use an object of milestone: due date.")]
    else:
        for kind, day in milestones.items():
            if kind not in MILESTONE_KINDS:
                wrong[f"milestones-{kind}"] = [_("Unknown milestone.")]
                continue
            try:
                data[f"milestones-{kind}"] = _scalar(day)
            except TypeError:
                wrong[f"milestones-{kind}"] = [_("Use a date: YYYY-MM-DD.")]
    instalments = body.get("instalments", [])
    if not isinstance(instalments, list) or len(instalments) > service.MAX_INSTALMENTS:
        wrong["instalments"] = [_("Use a list of at most %(n)s rows.", n=service.MAX_INSTALMENTS)]
    else:
        for index, row in enumerate(instalments):
            if not isinstance(row, dict) or set(row) - {"due_on", "amount"}:
                wrong[f"instalments-{index}"] = [_("Use an object with due_on and amount.")]
                continue
            for name in ("due_on", "amount"):
                try:
                    data[f"instalments-{index}-{name}"] = _scalar(row.get(name))
                except TypeError:
                    wrong[f"instalments-{index}-{name}"] = [_("Use a single value.")]
    if wrong:
        raise invalid(wrong)
    return data


def _defaults_body(values: service.ContractValues) -> dict[str, Any]:
    """Suggested values in the body's own shape, for what the caller leaves out."""
    return {
        "title": values.title,
        "starts_on": iso_day(values.starts_on),
        "ends_on": iso_day(values.ends_on),
        "payment_terms_days": values.payment_terms_days,
        "non_standard_clauses": values.non_standard_clauses,
        "clauses_note": values.clauses_note,
        "checklist": dict(values.checklist),
        "milestones": {kind: iso_day(day) for kind, day in values.milestones.items()},
        "instalments": [
            {
                "due_on": iso_day(row.due_on),
                "amount": str(yuan(row.amount_cents)) if row.amount_cents is not None else "",
            }
            for row in values.instalments
        ],
    }


def _form_errors(form: ContractForm) -> dict[str, list[str]]:
    """A contract form's messages by full field name."""
    found: dict[str, list[str]] = {}
    for name, field in form.all_fields().items():
        # A row list's own errors are the rows' dicts: those rows are reported by name.
        messages = [str(m) for m in (field.errors or []) if not isinstance(m, dict | list)]
        if messages:
            found[name] = messages
    return found


def _run(contract_id: int, verb: str, work: Callable[[Contract], Any], version: Any = None) -> Any:
    """One step on a contract in the caller's scope, committed, answered with the
    contract as it is now."""
    user = current_api_user()
    contract = service.get_contract_or_404(contract_id, user, verb)
    if version not in (None, "") and str(version) != str(contract.lock_version):
        raise ApiError(409, "conflict", _("The contract changed since you read it."))
    with service_errors(_("Someone changed this contract meanwhile; read it again.")):
        work(contract)
        db.session.commit()
    return jsonify(contract_detail_json(service.get_contract_or_404(contract_id, user)))


# -- views -------------------------------------------------------------------------------------


def list_contracts() -> Any:
    """Contracts in your scope; filters: status, owner (leaders), month (signed in,
    YYYY-MM), q (number, title, customer). Newest first."""
    statement = service.contracts_query(current_api_user(), request.args)
    return page_response(paginate(statement, api=True), contract_json)


def create_contract() -> Any:
    """A draft contract from an accepted quotation in your write scope: ``quote_id``,
    and any contract fields to change from the suggested plan."""
    user = current_api_user()
    body = dict(json_body())
    quote_id = body.pop("quote_id", None)
    if isinstance(quote_id, bool) or not isinstance(quote_id, int) or quote_id <= 0:
        raise invalid({"quote_id": [_("Give the id of the accepted quotation.")]})
    quotation = service.quotation_for_contract(quote_id, user)
    with service_errors():
        service.check_quotation(quotation)
    merged = _defaults_body(service.default_values(quotation, loops.local_today()))
    merged.update(body)
    form = ContractForm(formdata=_contract_formdata(merged), meta={"csrf": False})
    if not form.validate():
        raise invalid(_form_errors(form))
    with service_errors():
        contract = service.create_contract(quotation, user, form.values())
        db.session.commit()
    response = jsonify(contract_detail_json(contract))
    response.status_code = 201
    return response


def get_contract(contract_id: int) -> Any:
    """One contract with its milestones, payment plan and review (404 outside your scope)."""
    return jsonify(
        contract_detail_json(service.get_contract_or_404(contract_id, current_api_user()))
    )


def submit_contract(contract_id: int) -> Any:
    """Submit for review: every checklist item ticked, the plan complete; routed by the
    rule file (or refused at once by it: the contract is then rejected, with the reason)."""
    body = json_body() if _has_body() else {}
    refuse_unknown(body, ("version",))
    user = current_api_user()
    return _run(
        contract_id,
        "write",
        lambda contract: service.submit_for_review(contract, user),
        body.get("version"),
    )


def _has_body() -> bool:
    return bool(request.get_data(cache=True))


def sign_contract(contract_id: int) -> Any:
    """Record the signature of an approved contract (``signed_on``, not in the future):
    milestone and payment loop items, customer promoted, opportunity won."""
    user = current_api_user()
    form = validated(SignForm, json_body())
    return _run(
        contract_id,
        "write",
        lambda contract: service.sign_contract(contract, user, form.signed_on.data),
        form.version.data,
    )


def record_payment(contract_id: int) -> Any:
    """Record money received (``amount`` in yuan, ``received_on``, optional
    ``instalment_id``; otherwise the earliest unpaid instalments first). Never more than
    is outstanding."""
    user = current_api_user()
    contract = service.get_contract_or_404(contract_id, user)
    form = validated(PaymentForm, json_body(), instalments=service.instalments_of(contract))
    return _run(
        contract_id,
        "read",
        lambda found: service.record_payment(
            found, user, form.amount.data, form.received_on.data, form.instalment_id.data
        ),
        form.version.data,
    )


def routes() -> list[ApiRoute]:
    """The contracts resources, mounted under /api/v1/sales."""
    return [
        ApiRoute(
            "/contracts",
            list_contracts,
            summary="Contracts in your scope",
            permission="sales.view",
            paginated=True,
            schema=CONTRACT_SCHEMA,
            tag="sales",
        ),
        ApiRoute(
            "/contracts",
            create_contract,
            methods=("POST",),
            summary="Draft a contract from an accepted quotation (quote_id)",
            permission="sales.edit",
            schema=CONTRACT_DETAIL_SCHEMA,
            tag="sales",
        ),
        ApiRoute(
            "/contracts/<int:contract_id>",
            get_contract,
            summary="One contract with its milestones and payment plan",
            permission="sales.view",
            schema=CONTRACT_DETAIL_SCHEMA,
            tag="sales",
        ),
        ApiRoute(
            "/contracts/<int:contract_id>/submit",
            submit_contract,
            methods=("POST",),
            summary="Submit a contract for review before signing",
            permission="sales.edit",
            schema=CONTRACT_DETAIL_SCHEMA,
            tag="sales",
        ),
        ApiRoute(
            "/contracts/<int:contract_id>/sign",
            sign_contract,
            methods=("POST",),
            summary="Record the signature of an approved contract",
            permission="sales.edit",
            form=SignForm,
            schema=CONTRACT_DETAIL_SCHEMA,
            tag="sales",
        ),
        ApiRoute(
            "/contracts/<int:contract_id>/payments",
            record_payment,
            methods=("POST",),
            summary="Record a payment received on a contract",
            permission="sales.record_payment",
            form=PaymentForm,
            schema=CONTRACT_DETAIL_SCHEMA,
            tag="sales",
        ),
    ]
