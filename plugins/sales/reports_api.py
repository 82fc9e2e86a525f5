"""JSON resources of sales data (P6.3), mounted under /api/v1/sales: the report's
figures and the exports, with the token owner's scope, the same filters and the same
audit as the pages."""

from __future__ import annotations

from typing import Any

from flask import jsonify, request
from flask_babel import gettext as _
from werkzeug.datastructures import MultiDict

from portal.api import ApiError, current_api_user, invalid
from portal.extensions import db
from portal.loops.service import local_today
from portal.money import MONEY_SCHEMA
from portal.plugins import ApiRoute
from portal.scoping import people_in_scope

from . import reports
from .reports_forms import ExportForm, ReportFilterForm
from .reports_views import export_response

_FIGURES: dict[str, Any] = {
    "type": "object",
    "properties": {
        "orders": {
            "type": "object",
            "properties": {"count": {"type": "integer"}, "amount": MONEY_SCHEMA},
        },
        "collected": MONEY_SCHEMA,
        "receivables": {
            "type": "object",
            "properties": {
                "outstanding": MONEY_SCHEMA,
                "overdue": MONEY_SCHEMA,
                "aging": {
                    "type": "object",
                    "properties": {name: MONEY_SCHEMA for name in reports.AGING},
                },
            },
        },
        "pipeline": {
            "type": "object",
            "properties": {
                "count": {"type": "integer"},
                "amount": MONEY_SCHEMA,
                "weighted": MONEY_SCHEMA,
            },
        },
        "win_rate": {
            "type": "object",
            "properties": {
                "won": {"type": "integer"},
                "lost": {"type": "integer"},
                "won_amount": MONEY_SCHEMA,
                "rate": {"type": ["number", "null"]},
            },
        },
    },
}
SUMMARY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "period": {
            "type": "object",
            "properties": {
                "period": {"type": "string"},
                "since": {"type": "string", "format": "date"},
                "until": {"type": "string", "format": "date"},
                "bucket": {"type": "string", "enum": list(reports.BUCKETS)},
            },
        },
        "as_of": {"type": "string", "format": "date"},
        "scope": {"type": "string"},
        "unit": {"type": ["integer", "null"]},
        "totals": _FIGURES,
        "people": {"type": "array", "items": _FIGURES},
        "teams": {"type": "array", "items": _FIGURES},
        "series": {"type": "array", "items": _FIGURES},
    },
}


def summary() -> Any:
    """The report's figures as JSON (?period=, since, until, bucket, unit)."""
    viewer = current_api_user()
    units = reports.visible_units(viewer)
    form = ReportFilterForm(formdata=request.args, meta={"csrf": False}, units=units)
    if not form.validate():
        raise invalid(form.errors)
    today = local_today()
    report = reports.build_report(viewer, form.report_period(today), today, form.unit_id, units)
    return jsonify(
        period=report.period.describe(),
        as_of=report.today.isoformat(),
        scope=report.scope,
        unit=report.unit_id,
        totals=report.total.as_json(),
        people=[{"id": row.key, "name": row.label, **row.as_json()} for row in report.people],
        teams=[
            {"id": row.key, "name": row.label, "path": row.path, **row.as_json()}
            for row in report.teams
        ],
        series=[
            {
                "label": row.label,
                "start": row.start.isoformat(),
                "end": row.end.isoformat(),
                **row.as_json(),
            }
            for row in report.series
        ],
    )


def export(dataset: str) -> Any:
    """One dataset as a CSV or Excel file (?format=csv|xlsx plus the export filters:
    period, since, until, bucket, unit, owner), audited like the page's export."""
    if dataset not in reports.DATASETS:
        raise ApiError(404, "not_found", _("Unknown dataset: %(name)s", name=dataset))
    viewer = current_api_user()
    units = reports.visible_units(viewer)
    people = people_in_scope(viewer, limit=reports.MAX_PEOPLE)
    args = MultiDict(request.args)
    args["dataset"] = dataset
    args.setdefault("format", "csv")
    if dataset == "report":
        args.setdefault("period", reports.DEFAULT_PERIOD)
    form = ExportForm(formdata=args, meta={"csrf": False}, units=units, people=people)
    if not form.validate():
        raise invalid(form.errors)
    today = local_today()
    prepared = reports.prepare_export(
        viewer, dataset, form.format.data, form.filters(today), today, units
    )
    db.session.commit()  # the audit event, before a single row leaves
    return export_response(prepared)


def routes() -> list[ApiRoute]:
    """The reports resources, mounted under /api/v1/sales."""
    return [
        ApiRoute(
            "/reports/summary",
            summary,
            ("GET",),
            summary="Orders, collected, receivables, pipeline and win rate (P6.3)",
            permission="sales.view_reports",
            schema=SUMMARY_SCHEMA,
            tag="sales reports",
        ),
        ApiRoute(
            "/exports/<dataset>",
            export,
            ("GET",),
            summary="Export customers, opportunities, contracts, receivables or the report",
            permission="sales.export",
            tag="sales reports",
        ),
    ]
