"""JSON resources of the expense analysis (P6.4), under /api/v1/daily: the analysis
(same filters, same scope as the page) and the budgets (list, create)."""

from __future__ import annotations

from typing import Any

from flask import jsonify, request

from portal.api import (
    current_api_user,
    invalid,
    json_body,
    page_response,
    service_errors,
    validated,
)
from portal.extensions import db
from portal.listing import paginate
from portal.loops.service import local_today
from portal.money import MONEY_SCHEMA, yuan
from portal.plugins import ApiRoute
from portal.scoping import people_in_scope

from . import expense_reports as reports
from .expense_reports_forms import AnalysisFilterForm, BudgetForm
from .models import EXPENSE_CATEGORIES, ExpenseBudget

_MONEY_OR_NULL = {"type": ["string", "null"], "description": "yuan with two decimals"}
_SPEND: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spent": MONEY_SCHEMA,
        "lines": {"type": "integer"},
        "won_deals": {"type": "integer"},
        "cost_per_won_deal": _MONEY_OR_NULL,
        "budget": _MONEY_OR_NULL,
        "budget_spent": _MONEY_OR_NULL,
        "used_percent": {"type": ["string", "null"]},
        "over_budget": {"type": "boolean"},
        "categories": {
            "type": "object",
            "properties": {code: MONEY_SCHEMA for code in EXPENSE_CATEGORIES},
        },
    },
}
ANALYSIS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "filters": {"type": "object"},
        "scope": {"type": "string"},
        "totals": _SPEND,
        "categories": {"type": "array", "items": _SPEND},
        "people": {"type": "array", "items": _SPEND},
        "people_capped": {"type": "boolean", "description": "more people than listed"},
        "teams": {"type": "array", "items": _SPEND},
        "months": {"type": "array", "items": _SPEND},
        "budgets": {"type": "array", "items": {"type": "object"}},
    },
}
BUDGET_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "unit": {"type": "integer"},
        "year": {"type": "integer"},
        "month": {"type": "integer"},
        "category": {"type": "string", "description": "empty: every category"},
        "amount": MONEY_SCHEMA,
    },
}


def analysis() -> Any:
    """Spend by category, person, team and month against budget and per won deal
    (?since=YYYY-MM, until, unit, person, category)."""
    viewer = current_api_user()
    units = reports.visible_units(viewer)
    people = people_in_scope(viewer, limit=reports.MAX_PEOPLE)
    form = AnalysisFilterForm(
        formdata=request.args, meta={"csrf": False}, units=units, people=people
    )
    if not form.validate():
        raise invalid(form.errors)
    found = reports.build_analysis(viewer, form.filters(local_today()), units)
    return jsonify(
        filters=found.filters.describe(),
        scope=found.scope,
        totals=found.total.as_json(),
        categories=[{"category": row.key, **row.as_json()} for row in found.categories],
        people=[{"id": row.key, "name": row.label, **row.as_json()} for row in found.people],
        people_capped=found.people_capped,
        teams=[
            {"id": row.key, "name": row.label, "path": row.path, **row.as_json()}
            for row in found.teams
        ],
        months=[{"month": row.key, **row.as_json()} for row in found.months],
        budgets=[use.as_json() for use in found.budgets],
    )


def _budget_json(budget: ExpenseBudget) -> dict[str, Any]:
    return {
        "id": budget.id,
        "unit": budget.unit_id,
        "year": budget.year,
        "month": budget.month,
        "category": budget.category,
        "amount": str(yuan(budget.amount_cents)),
    }


def list_budgets() -> Any:
    """The budgets of the token owner's units (?year=, unit=), a page at a time."""
    units = reports.visible_units(current_api_user())
    year = request.args.get("year", type=int)
    unit_id = request.args.get("unit", type=int)
    page = paginate(reports.budget_statement(units, year, unit_id), api=True)
    return page_response(page, _budget_json)


def create_budget() -> Any:
    """Set one month's budget of a team (one row per team, month and category: a second
    one is refused with a message on ``month``)."""
    units = reports.visible_units(current_api_user())
    form = validated(BudgetForm, json_body(), units=units)
    with service_errors():
        budget = reports.create_budget(
            units,
            int(form.unit.data),
            form.year.data,
            form.month.data,
            form.category.data or "",
            form.amount_cents,
        )
        db.session.commit()
    return jsonify(_budget_json(budget)), 201


def routes() -> list[ApiRoute]:
    """The expense analysis resources under /api/v1/daily."""
    tag = "daily expense analysis"
    return [
        ApiRoute(
            "/expense-analysis",
            analysis,
            summary="Spend by category, person, team and month, budget use, cost per won deal",
            permission="daily.view_expenses",
            schema=ANALYSIS_SCHEMA,
            tag=tag,
        ),
        ApiRoute(
            "/expense-budgets",
            list_budgets,
            summary="Expense budgets of your teams",
            permission="daily.view_expenses",
            paginated=True,
            schema=BUDGET_SCHEMA,
            tag=tag,
        ),
        ApiRoute(
            "/expense-budgets",
            create_budget,
            methods=("POST",),
            summary="Set one month's budget of a team",
            permission="daily.manage_budgets",
            form=BudgetForm,
            schema=BUDGET_SCHEMA,
            tag=tag,
        ),
    ]
