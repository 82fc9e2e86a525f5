"""JSON resources of prospects and customers (/api/v1/sales/customers...).

The same services, scopes, forms and status codes as the pages: 404 outside the
caller's scope, 422 with per-field messages (duplicates name the existing record),
409 when the file changed since it was read (send ``lock_version``) or a pool prospect
was claimed by someone else first.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import abort, jsonify, request
from flask_babel import gettext as _

from portal.api import (
    TIME_SCHEMA,
    current_api_user,
    invalid,
    iso_day,
    iso_time,
    json_body,
    page_response,
    service_errors,
    validated,
)
from portal.auth.models import User
from portal.extensions import db
from portal.listing import paginate
from portal.loops.service import light_person
from portal.plugins import ApiRoute
from portal.scoping import can_reach

from . import customers as service
from .common import get_customer_or_404
from .customers_forms import ActivityForm, CustomerForm
from .models import Activity, Customer

_TEXT = {"type": "string"}
CUSTOMER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        **{name: _TEXT for name in service.FIELDS},
        "tax_id": {"type": ["string", "null"]},
        "owner_id": {"type": ["integer", "null"]},
        "owner_name": {"type": ["string", "null"]},
        "qualified": {"type": "boolean"},
        "in_pool": {"type": "boolean"},
        "last_contact_at": TIME_SCHEMA,
        "next_follow_up_at": TIME_SCHEMA,
        "follow_up_loop_id": {"type": ["integer", "null"]},
        "released_at": TIME_SCHEMA,
        "became_customer_at": TIME_SCHEMA,
        "created_at": {"type": "string", "format": "date-time"},
        "lock_version": {"type": "integer"},
    },
}
CUSTOMER_DETAIL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        **CUSTOMER_SCHEMA["properties"],
        "screening": {
            "type": ["object", "null"],
            "properties": {
                "rule": {"type": "string"},
                "reason": {"type": ["string", "null"]},
                "suggested_grade": {"type": ["string", "null"]},
                "version_id": {"type": ["integer", "null"]},
            },
        },
        "contacts": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "name": _TEXT,
                    "title": _TEXT,
                    "phone": _TEXT,
                    "email": _TEXT,
                    "is_primary": {"type": "boolean"},
                },
            },
        },
    },
}
# A pool prospect as the pool page shows it: enough to choose one, not the phone,
# email, tax ID, address or the former owner's notes (a claim gives the whole file).
POOL_FIELDS = ("name", "stage", "grade", "industry", "size", "region", "city", "source", "need")
POOL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        **{name: _TEXT for name in POOL_FIELDS},
        "qualified": {"type": "boolean"},
        "released_at": TIME_SCHEMA,
        "release_reason": _TEXT,
        "previous_owner_id": {"type": ["integer", "null"]},
    },
}
ACTIVITY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "customer_id": {"type": "integer"},
        "opportunity_id": {"type": ["integer", "null"]},
        "owner_id": {"type": "integer"},
        "owner_name": _TEXT,
        "kind": _TEXT,
        "occurred_at": {"type": "string", "format": "date-time"},
        "summary": _TEXT,
        "details": _TEXT,
        "location_note": _TEXT,
        "next_step": _TEXT,
        "next_follow_up_on": {"type": ["string", "null"], "format": "date"},
        "follow_up_loop_id": {"type": ["integer", "null"]},
    },
}


def customer_json(customer: Customer) -> dict[str, Any]:
    """A customer as the API shows it."""
    return {
        "id": customer.id,
        **{name: getattr(customer, name) or "" for name in service.FIELDS},
        "tax_id": customer.tax_id,
        "owner_id": customer.owner_id,
        "owner_name": customer.owner.display_name if customer.owner is not None else None,
        "qualified": customer.qualified,
        "in_pool": customer.in_pool,
        "last_contact_at": iso_time(customer.last_contact_at),
        "next_follow_up_at": iso_time(customer.next_follow_up_at),
        "follow_up_loop_id": customer.follow_up_loop_id,
        "released_at": iso_time(customer.released_at),
        "became_customer_at": iso_time(customer.became_customer_at),
        "created_at": iso_time(customer.created_at),
        "lock_version": customer.lock_version,
    }


def pool_json(customer: Customer) -> dict[str, Any]:
    """A pool prospect as the API lists it (what the pool page shows)."""
    return {
        "id": customer.id,
        **{name: getattr(customer, name) or "" for name in POOL_FIELDS},
        "qualified": customer.qualified,
        "released_at": iso_time(customer.released_at),
        "release_reason": customer.release_reason or "",
        "previous_owner_id": customer.previous_owner_id,
    }


def customer_detail_json(customer: Customer) -> dict[str, Any]:
    """A customer with the screening verdict's reason and its people."""
    decision = service.latest_screening(customer)
    return {
        **customer_json(customer),
        "screening": None
        if decision is None
        else {
            "rule": decision.rule,
            "reason": (decision.outputs or {}).get("reason"),
            "suggested_grade": (decision.outputs or {}).get("grade"),
            "version_id": decision.version_id,
        },
        "contacts": [
            {
                "id": person.id,
                "name": person.name,
                "title": person.title,
                "phone": person.phone,
                "email": person.email,
                "is_primary": person.is_primary,
            }
            for person in service.contacts_of(customer)
        ],
    }


def activity_json(activity: Activity) -> dict[str, Any]:
    return {
        "id": activity.id,
        "customer_id": activity.customer_id,
        "opportunity_id": activity.opportunity_id,
        "owner_id": activity.owner_id,
        "owner_name": activity.owner.display_name if activity.owner is not None else "",
        "kind": activity.kind,
        "occurred_at": iso_time(activity.occurred_at),
        "summary": activity.summary,
        "details": activity.details,
        "location_note": activity.location_note,
        "next_step": activity.next_step,
        "next_follow_up_on": iso_day(activity.next_follow_up_on),
        "follow_up_loop_id": activity.follow_up_loop_id,
    }


def _own_id_as_myself(body: dict[str, Any], user: User) -> dict[str, Any]:
    """The form offers the caller as "myself" (no id): their own id means the same."""
    if body.get("owner_id") == user.id:
        body = {**body, "owner_id": None}
    return body


def _created(payload: dict[str, Any]) -> Any:
    response = jsonify(payload)
    response.status_code = 201
    return response


# -- customers --------------------------------------------------------------------------------


def list_customers() -> Any:
    """Customers in your scope (not the pool); filters: q (name, phone, tax ID), stage,
    grade, industry, region, source, size, qualified (1/0), owner, overdue=1; sort:
    recent, name, last_contact, next_follow_up, grade."""
    statement = service.customer_list(current_api_user(), request.args)
    return page_response(paginate(statement, api=True), customer_json)


def create_customer() -> Any:
    """Record a prospect or customer: checked for duplicates (422 naming the existing
    record per field) and screened."""
    user = current_api_user()
    body = _own_id_as_myself(json_body(), user)
    body.pop("lock_version", None)
    form = validated(CustomerForm, body, actor=user)
    owner = db.session.get(User, form.owner_id.data) if form.owner_id.data else user
    with service_errors(service.conflict_text()):
        customer = service.create_customer(form.values(), user, owner=owner)
        db.session.commit()
    return _created(customer_detail_json(customer))


def get_customer(customer_id: int) -> Any:
    """One customer in your scope (404 outside it)."""
    return jsonify(customer_detail_json(get_customer_or_404(customer_id, current_api_user())))


def update_customer(customer_id: int) -> Any:
    """Change fields of the file; send the ``lock_version`` you read (409 if the file
    changed since). Fields left out keep their value."""
    user = current_api_user()
    customer = get_customer_or_404(customer_id, user, "write")
    body = _own_id_as_myself(json_body(), user)
    if "lock_version" not in body:
        raise invalid({"lock_version": [_("Send the lock_version you read.")]})
    owner_id = None if customer.owner_id == user.id else customer.owner_id
    current = {**service.customer_values(customer), "owner_id": owner_id}
    form = validated(CustomerForm, {**current, **body}, actor=user)
    owner = db.session.get(User, form.owner_id.data) if form.owner_id.data else user
    if (not form.may_choose_owner and "owner_id" not in body) or (
        customer.owner_id is None and not form.owner_id.data
    ):
        owner = customer.owner  # a pool prospect stays in the pool unless given an owner
    with service_errors(service.conflict_text()):
        service.update_customer(
            customer,
            form.values(),
            user,
            owner=owner,
            expected_version=form.lock_version.data,
        )
        db.session.commit()
    return jsonify(customer_detail_json(get_customer_or_404(customer_id, user)))


# -- activities -----------------------------------------------------------------------------


def list_activities(customer_id: int) -> Any:
    """The customer's contacts, newest first."""
    customer = get_customer_or_404(customer_id, current_api_user())
    statement = (
        sa.select(Activity)
        .options(light_person(Activity.owner))
        .where(Activity.customer_id == customer.id)
        .order_by(Activity.occurred_at.desc(), Activity.id.desc())
    )
    return page_response(paginate(statement, api=True), activity_json)


def log_activity(customer_id: int) -> Any:
    """Log a contact (kind, occurred_at as local time YYYY-MM-DDTHH:MM or empty for
    now, summary, details, location_note, opportunity_id, next_step,
    next_follow_up_on YYYY-MM-DD): the open follow-up closes, the next is raised."""
    user = current_api_user()
    customer = get_customer_or_404(customer_id, user, "write")
    form = validated(ActivityForm, json_body(), customer=customer)
    with service_errors(service.conflict_text()):
        activity = service.log_activity(customer, form.values(), user)
        db.session.commit()
    return _created(activity_json(activity))


# -- the pool ---------------------------------------------------------------------------------


def list_pool() -> Any:
    """The shared pool: prospects without owner, most recently released first (same
    filters as the list, without owner)."""
    return page_response(paginate(service.pool_list(request.args), api=True), pool_json)


def claim(customer_id: int) -> Any:
    """Claim a pool prospect; when someone was quicker, 409."""
    user = current_api_user()
    with service_errors(service.conflict_text()):
        try:
            customer = service.claim(customer_id, user)
        except LookupError:
            abort(404)
        db.session.commit()
    if not can_reach(customer, user):
        abort(404)
    return jsonify(customer_detail_json(customer))


def routes() -> list[ApiRoute]:
    """The customers resources, mounted under /api/v1/sales."""
    return [
        ApiRoute(
            "/customers",
            list_customers,
            summary="Customers and prospects in your scope",
            permission="sales.view",
            paginated=True,
            schema=CUSTOMER_SCHEMA,
            tag="sales",
        ),
        ApiRoute(
            "/customers",
            create_customer,
            methods=("POST",),
            summary="Record a prospect or customer (duplicates refused, screened)",
            permission="sales.edit",
            form=CustomerForm,
            schema=CUSTOMER_DETAIL_SCHEMA,
            tag="sales",
        ),
        ApiRoute(
            "/customers/pool",
            list_pool,
            summary="The shared pool of prospects",
            permission="sales.claim_pool",
            paginated=True,
            schema=POOL_SCHEMA,
            tag="sales",
        ),
        ApiRoute(
            "/customers/<int:customer_id>",
            get_customer,
            summary="One customer with its screening verdict and contact persons",
            permission="sales.view",
            schema=CUSTOMER_DETAIL_SCHEMA,
            tag="sales",
        ),
        ApiRoute(
            "/customers/<int:customer_id>",
            update_customer,
            methods=("PATCH",),
            summary="Change a customer's file (send lock_version)",
            permission="sales.edit",
            form=CustomerForm,
            schema=CUSTOMER_DETAIL_SCHEMA,
            tag="sales",
        ),
        ApiRoute(
            "/customers/<int:customer_id>/activities",
            list_activities,
            summary="The customer's contacts, newest first",
            permission="sales.view",
            paginated=True,
            schema=ACTIVITY_SCHEMA,
            tag="sales",
        ),
        ApiRoute(
            "/customers/<int:customer_id>/activities",
            log_activity,
            methods=("POST",),
            summary="Log a call, email, visit or meeting",
            permission="sales.edit",
            form=ActivityForm,
            schema=ACTIVITY_SCHEMA,
            tag="sales",
        ),
        ApiRoute(
            "/customers/<int:customer_id>/claim",
            claim,
            methods=("POST",),
            summary="Claim a prospect from the shared pool",
            permission="sales.claim_pool",
            schema=CUSTOMER_DETAIL_SCHEMA,
            tag="sales",
        ),
    ]
