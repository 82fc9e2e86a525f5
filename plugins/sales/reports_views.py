"""Pages of sales data (P6.3): the report (orders, collected, receivables, pipeline,
win rate per person, team and month) with its SVG charts, and the export page.

Every figure comes from ``reports.build_report`` in the viewer's scope; the charts are
separate ``image/svg+xml`` responses computed the same way (the strict CSP forbids
inline SVG with pygal's script and style). An export is a POST with CSRF, because it
writes an audit event; its file is streamed and its rows capped.
"""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    render_template,
    request,
)
from flask_login import current_user

from portal import exports
from portal.auth.permissions import require_permission
from portal.extensions import db
from portal.loops import charts
from portal.loops.service import local_today
from portal.scoping import people_in_scope

from . import reports
from .reports_forms import ExportForm, ReportFilterForm

bp = Blueprint("sales_reports", __name__, template_folder="templates")


def filter_form(args: Any, units: list[reports.UnitChoice]) -> ReportFilterForm:
    """The report's filters from a query string (no CSRF: reading changes nothing)."""
    return ReportFilterForm(formdata=args, meta={"csrf": False}, units=units)


@bp.get("/reports/")
@require_permission("sales.view_reports")
def index() -> Any:
    """Orders, money collected, receivables, pipeline and win rate for a period, in the
    viewer's scope: totals, per person, per team, per month or week, and charts."""
    units = reports.visible_units(current_user)
    form = filter_form(request.args, units)
    today = local_today()
    report = None
    if form.validate():
        period = form.report_period(today)
        report = reports.build_report(current_user, period, today, form.unit_id, units)
    response = Response(
        render_template(
            "sales/reports/index.html",
            form=form,
            report=report,
            args=form.args() if report else {},
            aging=reports.AGING,
            aging_labels=reports.AGING_LABELS,
            scope=current_user.scope_for("read"),
        ),
        status=200 if report else 422,
    )
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.get("/reports/chart/<name>.svg")
@require_permission("sales.view_reports")
def chart(name: str) -> Any:
    """One chart of the report as a self-contained SVG image, for the same filters
    and the same scope as the page."""
    if name not in reports.CHARTS:
        abort(404)
    units = reports.visible_units(current_user)
    form = filter_form(request.args, units)
    if not form.validate():
        return Response("invalid filters", status=422, mimetype="text/plain")
    today = local_today()
    report = reports.build_report(
        current_user, form.report_period(today), today, form.unit_id, units
    )
    return charts.svg_response(reports.chart_svg(name, report))


def export_response(export: reports.Export) -> Response:
    """The prepared export as a download (``portal.exports.download``: CSV streamed,
    Excel from a spooled file), with its row count and cap in headers. The audit event
    must be committed before this is called."""
    response = exports.download(
        export.format,
        export.columns,
        export.rows,
        export.filename,
        title=export.sheet_title,
        trailer=export.trailer,
    )
    response.headers["X-Export-Rows"] = str(export.count)
    if export.capped:
        response.headers["X-Export-Capped"] = str(export.cap)
    return response


@bp.route("/reports/export", methods=["GET", "POST"])
@require_permission("sales.export")
def export() -> Any:
    """Choose data, file type and filters (GET, prefilled from the report's filters),
    then download (POST): always in the viewer's scope, audited, capped."""
    units = reports.visible_units(current_user)
    people = people_in_scope(current_user, limit=reports.MAX_PEOPLE)
    today = local_today()
    if request.method == "GET":
        form = ExportForm(formdata=request.args, meta={"csrf": False}, units=units, people=people)
        form.validate()  # shows what is wrong with a hand-made link; nothing is written
        status = 200
        if form.errors and request.args:
            status = 422
        return _export_page(form, status)
    form = ExportForm(units=units, people=people)
    if not form.validate():
        return _export_page(form, 422)
    prepared = reports.prepare_export(
        current_user, form.dataset.data, form.format.data, form.filters(today), today, units
    )
    db.session.commit()  # the audit event, before a single row leaves
    return export_response(prepared)


def _export_page(form: ExportForm, status: int) -> Response:
    response = Response(
        render_template(
            "sales/reports/export.html",
            form=form,
            dataset_dates=reports.DATASET_DATES,
            cap=reports.max_rows(),
        ),
        status=status,
    )
    response.headers["Cache-Control"] = "private, no-store"
    return response
