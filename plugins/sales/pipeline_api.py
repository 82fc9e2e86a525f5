"""JSON resources of the pipeline (P3.2), under /api/v1/sales/opportunities.

The same services, scope, forms and status codes as the pages: 404 outside the
caller's scope, 403 when readable but not writable, 422 with per-field messages
(including the fields a stage needs before a move), 409 when ``lock_version`` is not
the one stored.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import jsonify, request
from flask_babel import gettext as _

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
from portal.listing import id_arg, paginate
from portal.loops.service import local_today
from portal.money import yuan
from portal.plugins import ApiRoute
from portal.scoping import people_in_scope, scoped

from . import pipeline
from .common import get_customer_or_404
from .models import OPPORTUNITY_STATUSES, Opportunity
from .pipeline_forms import MoveValuesApiForm, OpportunityCreateApiForm, OpportunityPatchApiForm

OPPORTUNITY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": "string"},
        "customer_id": {"type": "integer"},
        "customer_name": {"type": "string"},
        "owner_id": {"type": "integer"},
        "stage": {"type": "string"},
        "stage_label": {"type": "string"},
        "status": {"type": "string", "enum": list(OPPORTUNITY_STATUSES)},
        "probability_pct": {"type": "integer"},
        "furthest_stage_index": {"type": "integer"},
        "amount": {"type": "string", "description": "yuan, two decimals"},
        "expected_close_on": DATE_SCHEMA,
        "overdue": {"type": "boolean"},
        "need_analysis": {"type": "string"},
        "proposed_solution": {"type": "string"},
        "decision_maker": {"type": "string"},
        "competitors": {"type": "string"},
        "lost_reason": {"type": "string"},
        "lost_note": {"type": "string"},
        "stage_changed_at": TIME_SCHEMA,
        "closed_at": TIME_SCHEMA,
        "created_at": TIME_SCHEMA,
        "lock_version": {"type": "integer"},
    },
}
MOVE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "stage": {"type": "string"},
        "lock_version": {"type": "integer"},
        "values": {"type": "object"},
    },
    "required": ["stage"],
}
FUNNEL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "since": {"type": "string", "format": "date"},
        "until": {"type": "string", "format": "date"},
        "group": {"type": "string", "enum": list(pipeline.FUNNEL_GROUPS)},
        "total": {"type": "object"},
        "steps": {"type": "array", "items": {"type": "object"}},
        "groups": {"type": "array", "items": {"type": "object"}},
    },
}


def opportunity_json(opportunity: Opportunity) -> dict[str, Any]:
    """An opportunity as the API shows it (amounts in yuan, as text)."""
    return {
        "id": opportunity.id,
        "name": opportunity.name,
        "customer_id": opportunity.customer_id,
        "customer_name": opportunity.customer.name,
        "owner_id": opportunity.owner_id,
        "stage": opportunity.stage,
        "stage_label": pipeline.stage_label(opportunity.stage),
        "status": opportunity.status,
        "probability_pct": opportunity.probability_pct,
        "furthest_stage_index": opportunity.furthest_stage_index,
        "amount": str(yuan(opportunity.amount_cents)),
        "expected_close_on": iso_day(opportunity.expected_close_on),
        "overdue": pipeline.is_overdue(opportunity),
        "need_analysis": opportunity.need_analysis,
        "proposed_solution": opportunity.proposed_solution,
        "decision_maker": opportunity.decision_maker,
        "competitors": opportunity.competitors,
        "lost_reason": opportunity.lost_reason,
        "lost_note": opportunity.lost_note,
        "stage_changed_at": iso_time(opportunity.stage_changed_at),
        "closed_at": iso_time(opportunity.closed_at),
        "created_at": iso_time(opportunity.created_at),
        "lock_version": opportunity.lock_version,
    }


def _changed_text() -> str:
    return _("Someone changed this opportunity meanwhile; read it again.")


def _filters(args: Any) -> pipeline.Filters:
    """API list filters: stage, status, owner_id, customer_id, close_month, q, recent."""
    stage = args.get("stage", "")
    status = args.get("status", "")
    return pipeline.Filters(
        owner_id=id_arg(args.get("owner_id")),
        q=(args.get("q") or "").strip()[:100],
        stage=stage if stage in pipeline.stage_by_code() else "",
        status=status if status in OPPORTUNITY_STATUSES else "",
        close_month=pipeline.month_arg(args.get("close_month", "")),
        recent=args.get("recent") in ("1", "true"),
        customer_id=id_arg(args.get("customer_id")),
    )


def list_opportunities() -> Any:
    """Opportunities in your scope; filters: stage, status, owner_id, customer_id,
    close_month (YYYY-MM of the expected close), q (name or customer), recent=1 (open or
    closed in the last 30 days). Soonest expected close first."""
    statement = pipeline.narrow(
        scoped(sa.select(Opportunity.id), Opportunity, current_api_user()),
        _filters(request.args),
    ).order_by(
        Opportunity.expected_close_on.is_(None),
        Opportunity.expected_close_on,
        Opportunity.id.desc(),
    )
    return page_response(pipeline.load_page(paginate(statement, api=True)), opportunity_json)


def create_opportunity() -> Any:
    """Open a deal with one of your customers (at the first stage)."""
    user = current_api_user()
    form = validated(
        OpportunityCreateApiForm,
        json_body(),
        people=people_in_scope(user, "write", pipeline.MAX_CHOICES),
    )
    customer = get_customer_or_404(form.customer_id.data, user, "write")
    with service_errors(_changed_text()):
        opportunity = pipeline.create_opportunity(customer, form.values(), user)
        db.session.commit()
    response = jsonify(opportunity_json(opportunity))
    response.status_code = 201
    return response


def get_opportunity(opportunity_id: int) -> Any:
    """One opportunity (404 outside your scope)."""
    return jsonify(
        opportunity_json(pipeline.get_opportunity_or_404(opportunity_id, current_api_user()))
    )


def patch_opportunity(opportunity_id: int) -> Any:
    """Change some fields (only those sent); ``lock_version`` must be the one you read."""
    user = current_api_user()
    opportunity = pipeline.get_opportunity_or_404(opportunity_id, user, "write")
    body = json_body()
    people = people_in_scope(user, "write", pipeline.MAX_CHOICES)
    if opportunity.owner_id not in {pid for pid, _name in people}:
        people.append((opportunity.owner_id, ""))
    form = validated(OpportunityPatchApiForm, body, people=people)
    if form.lock_version.data != opportunity.lock_version:
        raise ApiError(409, "conflict", _changed_text())
    values = {
        key: value
        for key, value in form.values().items()
        if key in body and key in pipeline.EDITABLE_FIELDS
    }
    if "owner_id" in body and body["owner_id"] is not None:
        values["owner_id"] = form.owner_id.data
    with service_errors(_changed_text()):
        pipeline.update_opportunity(opportunity, values, user)
        db.session.commit()
    return jsonify(opportunity_json(pipeline.get_opportunity_or_404(opportunity_id, user)))


def move_opportunity(opportunity_id: int) -> Any:
    """Move to ``stage``; ``values`` may fill fields the stage needs (e.g. lost_reason
    and lost_note). 422 names each missing field; nothing moves then."""
    user = current_api_user()
    opportunity = pipeline.get_opportunity_or_404(opportunity_id, user, "write")
    body = json_body()
    refuse_unknown(body, ("stage", "values", "lock_version"))
    stage = body.get("stage")
    if not isinstance(stage, str) or not stage:
        raise invalid({"stage": [_("Name the stage.")]})
    raw_values = body.get("values") or {}
    if not isinstance(raw_values, dict):
        raise invalid({"values": [_("Send an object of field values.")]})
    form = validated(MoveValuesApiForm, raw_values)
    version = body.get("lock_version")
    if version is not None and (
        isinstance(version, bool)
        or not isinstance(version, int)
        or version != opportunity.lock_version
    ):
        raise ApiError(409, "conflict", _changed_text())
    values = {
        name: form[name].data
        for name in pipeline.MOVE_VALUE_FIELDS
        if name in raw_values and form[name].data not in (None, "")
    }
    with service_errors(_changed_text()):
        pipeline.move_to_stage(opportunity, stage, user, values)
        db.session.commit()
    return jsonify(opportunity_json(pipeline.get_opportunity_or_404(opportunity_id, user)))


def funnel_json() -> Any:
    """The funnel of deals created in a period (period=this_quarter|last_quarter|
    this_month|last_month|this_year|last_year, or since/until as YYYY-MM-DD), by
    group=person|team; counts reaching each stage, conversions, win rate, amounts."""
    user = current_api_user()
    _period, since, until = pipeline.read_period(request.args, local_today())
    group = request.args.get("group", "person")
    group = group if group in pipeline.FUNNEL_GROUPS else "person"
    owner_id = id_arg(request.args.get("owner_id"))
    result = pipeline.funnel(user, since, until, group, pipeline.Filters(owner_id=owner_id))

    def row_json(row: pipeline.FunnelRow) -> dict[str, Any]:
        return {
            "key": row.key,
            "label": row.label,
            "created": row.created,
            "won": row.won,
            "lost": row.lost,
            "open": row.open,
            "won_amount": str(yuan(row.won_amount_cents)),
            "win_rate": _ratio(row.win_rate),
            "reached": {step.code: row.reached[index] for index, step in enumerate(result.steps)},
        }

    return jsonify(
        since=result.since.isoformat(),
        until=result.until.isoformat(),
        group=result.group,
        definition=_(
            "A deal counts at a stage when its furthest stage reached is that stage or a "
            "later one; lost is an outcome, not a step. Conversion: reached this stage out "
            "of those that reached the previous one. Win rate: won out of closed."
        ),
        steps=[
            {
                "stage": step.code,
                "label": pipeline.stage_label(step.code),
                "reached": result.total.reached[index],
                "amount": str(yuan(result.total.amounts[index])),
                "conversion": _ratio(result.total.conversion(index)),
                "from_first": _ratio(result.total.from_first(index)),
            }
            for index, step in enumerate(result.steps)
        ],
        total=row_json(result.total),
        groups=[row_json(row) for row in result.rows],
    )


def _ratio(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def routes() -> list[ApiRoute]:
    """The pipeline resources, mounted under /api/v1/sales."""
    return [
        ApiRoute(
            "/opportunities",
            list_opportunities,
            summary="Opportunities in your scope",
            permission="sales.view",
            paginated=True,
            schema=OPPORTUNITY_SCHEMA,
            tag="sales",
        ),
        ApiRoute(
            "/opportunities",
            create_opportunity,
            methods=("POST",),
            summary="Open an opportunity with one of your customers",
            permission="sales.edit",
            form=OpportunityCreateApiForm,
            schema=OPPORTUNITY_SCHEMA,
            tag="sales",
        ),
        ApiRoute(
            "/opportunities/funnel",
            funnel_json,
            summary="The sales funnel: stages reached, conversion and win rate",
            permission="sales.view",
            schema=FUNNEL_SCHEMA,
            tag="sales",
        ),
        ApiRoute(
            "/opportunities/<int:opportunity_id>",
            get_opportunity,
            summary="One opportunity",
            permission="sales.view",
            schema=OPPORTUNITY_SCHEMA,
            tag="sales",
        ),
        ApiRoute(
            "/opportunities/<int:opportunity_id>",
            patch_opportunity,
            methods=("PATCH",),
            summary="Change an opportunity (send lock_version)",
            permission="sales.edit",
            form=OpportunityPatchApiForm,
            schema=OPPORTUNITY_SCHEMA,
            tag="sales",
        ),
        ApiRoute(
            "/opportunities/<int:opportunity_id>/move",
            move_opportunity,
            methods=("POST",),
            summary="Move an opportunity to another stage",
            permission="sales.edit",
            schema=OPPORTUNITY_SCHEMA,
            tag="sales",
        ),
    ]
