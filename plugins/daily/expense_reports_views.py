"""Pages of the expense analysis (P6.4): spend by category, person, team and month
against budget and per won deal, its SVG charts and its export; and the budgets page.

Every figure comes from ``expense_reports.build_analysis`` in the viewer's scope; the
charts are separate ``image/svg+xml`` responses computed the same way (the strict CSP
forbids inline SVG with pygal's script and style). An export is a POST with CSRF,
because it writes an audit event.
"""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user

from portal import exports
from portal.auth.permissions import require_permission
from portal.extensions import db
from portal.listing import page_args, paginate
from portal.loops import charts
from portal.loops.service import local_today
from portal.org.services import ValidationFailed
from portal.scoping import people_in_scope

from . import expense_reports as reports
from .expense_reports_forms import (
    AnalysisFilterForm,
    BudgetAmountForm,
    BudgetForm,
    BudgetYearForm,
    ExportForm,
)

bp = Blueprint(
    "daily_expense_reports",
    __name__,
    template_folder="templates",
)
# The core mounts a plugin's blueprints under /<plugin> (their url_prefix is not used),
# so the part's own prefix is in every rule: /daily/expenses/analysis/...
PREFIX = "/expenses/analysis"
YEAR_PREFIX = "year"  # the whole-year form's fields (year-unit ...): one id per page


def _private(response: Response) -> Response:
    response.headers["Cache-Control"] = "private, no-store"
    return response


def _filter_form(args: Any, form_class: type = AnalysisFilterForm, **kwargs: Any) -> Any:
    units = reports.visible_units(current_user)
    people = people_in_scope(current_user, limit=reports.MAX_PEOPLE)
    return form_class(formdata=args, units=units, people=people, **kwargs), units


@bp.get(PREFIX + "/")
@require_permission("daily.view_expenses")
def index() -> Any:
    """Spend by category, person, team and month, against budget and per won deal, for
    the chosen months and filters, in the viewer's scope."""
    form, units = _filter_form(request.args, meta={"csrf": False})
    today = local_today()
    analysis = None
    if form.validate():
        filters = form.filters(today)
        analysis = reports.build_analysis(current_user, filters, units)
        # Show the months used (this year when none were chosen) in the month fields.
        form.since.data, form.until.data = filters.period.first, filters.period.last
    export_form = ExportForm(formdata=None, units=units)
    response = Response(
        render_template(
            "daily/expense_reports/index.html",
            form=form,
            analysis=analysis,
            args=form.args(today) if analysis else {},
            export_form=export_form,
            categories=reports.EXPENSE_CATEGORIES,
        ),
        status=200 if analysis else 422,
    )
    return _private(response)


@bp.get(PREFIX + "/chart/<name>.svg")
@require_permission("daily.view_expenses")
def chart(name: str) -> Any:
    """One chart of the analysis as a self-contained SVG image, for the same filters and
    the same scope as the page."""
    if name not in reports.CHARTS:
        abort(404)
    form, units = _filter_form(request.args, meta={"csrf": False})
    if not form.validate():
        return Response("invalid filters", status=422, mimetype="text/plain")
    analysis = reports.build_analysis(current_user, form.filters(local_today()), units)
    return charts.svg_response(reports.chart_svg(name, analysis))


def export_response(analysis: reports.Analysis, fmt: str) -> Response:
    """The analysis table as a download, recorded in the audit log (committed first, so
    the record exists even if the download is interrupted)."""
    rows = reports.export_rows(analysis)
    reports.record_export(analysis, fmt, len(rows))
    db.session.commit()
    response = exports.download(
        fmt,
        reports.EXPORT_COLUMNS,
        rows,
        reports.export_filename(fmt),
        title=_("Expense analysis"),
    )
    response.headers["X-Export-Rows"] = str(len(rows))
    return response


@bp.post(PREFIX + "/export")
@require_permission("daily.view_expenses")
@require_permission("daily.export")
def export() -> Any:
    """The analysis table of the posted filters as CSV or Excel, in the viewer's scope."""
    form, units = _filter_form(request.form, ExportForm)
    if not form.validate():
        # Back to the page with the same filters: it shows what is wrong with them.
        flash(_("The export's filters are not valid; correct them and try again."), "danger")
        kept = ("since", "until", "unit", "person", "category")
        return redirect(
            url_for(".index", **{k: request.form[k] for k in kept if k in request.form})
        )
    analysis = reports.build_analysis(current_user, form.filters(local_today()), units)
    return export_response(analysis, form.format.data)


# -- budgets -----------------------------------------------------------------------------


def _budgets_page(
    units: list[reports.UnitChoice],
    form: BudgetForm | None = None,
    year_form: BudgetYearForm | None = None,
    status: int = 200,
) -> Response:
    year = request.args.get("year", type=int)
    unit_id = request.args.get("unit", type=int)
    page = paginate(reports.budget_statement(units, year, unit_id))
    today = local_today()
    form = form or BudgetForm(
        formdata=None, units=units, data={"year": today.year, "month": today.month}
    )
    year_form = year_form or BudgetYearForm(
        formdata=None, units=units, data={"year": today.year}, prefix=YEAR_PREFIX
    )
    response = Response(
        render_template(
            "daily/expense_reports/budgets.html",
            page=page,
            form=form,
            year_form=year_form,
            units=units,
            unit_names={unit.id: unit.name for unit in units},
            year=year,
            unit_id=unit_id,
            page_args=page_args,
        ),
        status=status,
    )
    return _private(response)


@bp.get(PREFIX + "/budgets/")
@require_permission("daily.manage_budgets")
def budgets() -> Any:
    """The budgets of the viewer's units, with the forms to add one or a whole year."""
    return _budgets_page(reports.visible_units(current_user))


@bp.post(PREFIX + "/budgets/")
@require_permission("daily.manage_budgets")
def create_budget() -> Any:
    """Add one month's budget of a team (one row per team, month and category)."""
    units = reports.visible_units(current_user)
    form = BudgetForm(units=units)
    if not form.validate():
        return _budgets_page(units, form=form, status=422)
    try:
        reports.create_budget(
            units,
            int(form.unit.data),
            form.year.data,
            form.month.data,
            form.category.data or "",
            form.amount_cents,
        )
    except ValidationFailed as error:
        db.session.rollback()
        for name, messages in error.fields.items():
            getattr(form, name, form.amount).errors.extend(messages)
        return _budgets_page(units, form=form, status=422)
    db.session.commit()
    flash(_("Budget saved."), "success")
    return redirect(url_for(".budgets", year=form.year.data))


@bp.post(PREFIX + "/budgets/year")
@require_permission("daily.manage_budgets")
def set_year() -> Any:
    """Set a team's budget for all twelve months of a year (existing months updated)."""
    units = reports.visible_units(current_user)
    form = BudgetYearForm(units=units, prefix=YEAR_PREFIX)
    if not form.validate():
        return _budgets_page(units, year_form=form, status=422)
    try:
        created, updated = reports.set_year(
            units, int(form.unit.data), form.year.data, form.category.data or "", form.amounts
        )
    except ValidationFailed as error:
        db.session.rollback()
        for name, messages in error.fields.items():
            getattr(form, name, form.month_1).errors.extend(messages)
        return _budgets_page(units, year_form=form, status=422)
    db.session.commit()
    flash(
        _(
            "Budget of %(year)s set: %(created)s months added, %(updated)s changed.",
            year=form.year.data,
            created=created,
            updated=updated,
        ),
        "success",
    )
    return redirect(url_for(".budgets", year=form.year.data, unit=form.unit.data))


@bp.route(PREFIX + "/budgets/<int:budget_id>/edit", methods=["GET", "POST"])
@require_permission("daily.manage_budgets")
def edit_budget(budget_id: int) -> Any:
    """Change one budget's amount; a unit outside the viewer's units is a 404."""
    units = reports.visible_units(current_user)
    budget = reports.get_budget_or_404(budget_id, units)
    unit = next(unit for unit in units if unit.id == budget.unit_id)
    if request.method == "GET":
        form = BudgetAmountForm(data={"amount": reports.yuan(budget.amount_cents)})
    else:
        form = BudgetAmountForm()
        if form.validate():
            reports.update_budget(budget, form.amount_cents)
            db.session.commit()
            flash(_("Budget saved."), "success")
            return redirect(url_for(".budgets", year=budget.year, unit=budget.unit_id))
    response = Response(
        render_template(
            "daily/expense_reports/budget_edit.html", form=form, budget=budget, unit=unit
        ),
        status=422 if form.errors else 200,
    )
    return _private(response)


@bp.post(PREFIX + "/budgets/<int:budget_id>/delete")
@require_permission("daily.manage_budgets")
def delete_budget(budget_id: int) -> Any:
    """Remove one budget (the month then has none); the core's CSRFProtect checks the
    token of every POST."""
    units = reports.visible_units(current_user)
    budget = reports.get_budget_or_404(budget_id, units)
    year, unit_id = budget.year, budget.unit_id
    db.session.delete(budget)
    db.session.commit()
    flash(_("Budget removed."), "success")
    return redirect(url_for(".budgets", year=year, unit=unit_id))
