"""After-sales pages (P3.5): the register of feedback and complaints, logging one,
handling it (first response, cause and action, the customer's confirmation, corrective
action, closing) and the trends by category.

Every page works without JavaScript (plain form posts, redirect after success, the
page again with the messages and 422 on bad input); the body's ``hx-boost`` makes them
smooth. Records outside the viewer's scope are not found (404).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pygal
from flask import (
    Blueprint,
    abort,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import format_timedelta
from flask_babel import gettext as _
from flask_login import current_user

from portal.auth.permissions import require_permission
from portal.extensions import db
from portal.listing import id_arg, like_pattern, paginate
from portal.loops.charts import chart_config, render_svg, svg_response
from portal.loops.errors import REFUSALS, refusal_of
from portal.models import as_utc, utcnow
from portal.org.services import ValidationFailed
from portal.web import refuse, vary_on_htmx

from . import aftersales as service
from .aftersales_forms import ACTION_FORMS, FeedbackForm
from .common import contracts_for, customers_for, may_edit
from .models import (
    FEEDBACK_CATEGORIES,
    FEEDBACK_KINDS,
    FEEDBACK_PRIORITIES,
    FEEDBACK_STATUSES,
    Contract,
    Customer,
    Feedback,
)
from .vocabulary import label

bp = Blueprint("sales_aftersales", __name__, template_folder="templates")

# The URL's action word -> the service's action.
PAGE_ACTIONS = {
    "respond": "respond",
    "cause": "record_cause",
    "confirm": "confirm",
    "corrective": "raise_corrective",
    "close": "close",
}
ACTION_SLUGS = {action: slug for slug, action in PAGE_ACTIONS.items()}


def _done_message(action: str) -> str:
    return {
        "respond": _("The first response is recorded."),
        "record_cause": _("Cause and action are recorded."),
        "confirm": _("The customer's confirmation is recorded."),
        "raise_corrective": _("The corrective action was raised as a loop item."),
        "close": _("Closed. The loop item goes to verification."),
    }[action]


def _conflict_text() -> str:
    return _("Someone changed this record meanwhile. Here is how it stands now; try again.")


# -- template helpers --------------------------------------------------------------------


@bp.app_template_global()
def sales_aftersales_for_customer(customer: Customer) -> list[Feedback]:
    """For ``sales/aftersales/_for_customer.html``: the customer's records in scope."""
    if not current_user.is_authenticated or customer is None:
        return []
    return service.for_customer(customer.id, current_user)


@bp.app_template_global()
def sales_aftersales_for_contract(contract: Contract) -> list[Feedback]:
    """For ``sales/aftersales/_for_contract.html``: the contract's records in scope."""
    if not current_user.is_authenticated or contract is None:
        return []
    return service.for_contract(contract.id, current_user)


@bp.app_template_global()
def aftersales_overdue(record: Feedback) -> bool:
    """Open and past its first-response or resolution deadline."""
    return service.is_overdue(record)


@bp.app_template_global()
def aftersales_countdown(due: datetime | timedelta) -> str:
    """``in 3 hours`` or ``overdue by 2 days`` (a deadline, or the time left), in the
    reader's language."""
    delta = due if isinstance(due, timedelta) else as_utc(due) - utcnow()
    span = format_timedelta(abs(delta), granularity="minute", threshold=1.5)
    if delta.total_seconds() >= 0:
        return _("in %(time)s", time=span)
    return _("overdue by %(time)s", time=span)


# -- the register ----------------------------------------------------------------------


def _filters() -> dict[str, Any]:
    return {
        "kinds": FEEDBACK_KINDS,
        "statuses": FEEDBACK_STATUSES,
        "categories": FEEDBACK_CATEGORIES,
        "priorities": FEEDBACK_PRIORITIES,
    }


@bp.get("/aftersales/")
@require_permission("sales.view")
def index() -> Any:
    """Feedback and complaints in the viewer's scope: filters, overdue first."""
    now = utcnow()
    statement = service.feedback_for(current_user).options(*service.list_options())
    statement = service.filter_feedback(statement, request.args, now)
    page = paginate(service.ordered(statement, now))
    return vary_on_htmx(
        render_template(
            "sales/aftersales/index.html",
            page=page,
            args=request.args,
            now=now,
            may_edit=current_user.can("sales.edit"),
            may_report=current_user.can("sales.view_reports"),
            **_filters(),
        )
    )


# -- logging one ----------------------------------------------------------------------------


def _contract_choices(customer: Customer) -> list[tuple[int, str]]:
    rows = db.session.execute(
        contracts_for(current_user)
        .with_only_columns(Contract.id, Contract.number, Contract.title)
        .where(Contract.customer_id == customer.id)
        .order_by(Contract.id.desc())
        .limit(200)
    )
    return [(row.id, f"{row.number} {row.title}") for row in rows]


def _customer_search(text: str) -> list[Any]:
    statement = customers_for(current_user, "write").with_only_columns(
        Customer.id, Customer.name, Customer.city
    )
    if text:
        statement = statement.where(Customer.name.ilike(like_pattern(text), escape="\\"))
    return list(db.session.execute(statement.order_by(Customer.name, Customer.id).limit(20)))


@bp.route("/aftersales/new", methods=["GET", "POST"])
@require_permission("sales.edit")
def new() -> Any:
    """Log feedback or a complaint: first choose the customer (``?customer_id=``), then
    the form; ``?contract_id=`` preselects one of the customer's contracts."""
    raw_customer = request.form.get("customer_id") or request.args.get("customer_id")
    customer_id = id_arg(raw_customer) if raw_customer else None
    if customer_id is None:
        if raw_customer:
            abort(404)
        text = request.args.get("q", "").strip()[:100]
        return render_template(
            "sales/aftersales/choose_customer.html",
            customers=_customer_search(text),
            q=text,
            kind=request.args.get("kind", ""),
        )
    customer = db.session.scalars(
        customers_for(current_user, "write").where(Customer.id == customer_id)
    ).first()
    if customer is None:
        abort(404)
    contracts = _contract_choices(customer)
    form = FeedbackForm(contracts=contracts)
    if request.method == "GET":
        form.customer_id.data = customer.id
        wanted = id_arg(request.args.get("contract_id"))
        if wanted in {cid for cid, _text in contracts}:
            form.contract_id.data = wanted
        if request.args.get("kind") in FEEDBACK_KINDS:
            form.kind.data = request.args["kind"]
        return render_template("sales/aftersales/new.html", form=form, customer=customer)
    if form.validate():
        try:
            record = service.log_feedback(form.values(), current_user)
            db.session.commit()
        except ValidationFailed as error:
            db.session.rollback()
            error.show_on(form)
        else:
            if record.kind == "complaint":
                flash(_("Complaint %(number)s is logged.", number=record.number), "success")
            else:
                flash(_("Feedback %(number)s is logged.", number=record.number), "success")
            return redirect(url_for(".detail", feedback_id=record.id), 303)
    customer = db.session.get(Customer, customer_id)
    return render_template("sales/aftersales/new.html", form=form, customer=customer), 422


# -- one record ------------------------------------------------------------------------------


def _detail_context(
    record: Feedback, submitted: tuple[str, Any] | None = None, problem: str = ""
) -> dict[str, Any]:
    now = utcnow()
    may_write = may_edit(record, current_user)
    actions = service.allowed_actions(record, may_write)
    forms: dict[str, Any] = {}
    for action in actions:
        if submitted is not None and submitted[0] == action:
            forms[action] = submitted[1]
            continue
        kwargs = {"actor": current_user} if action == "raise_corrective" else {}
        form = ACTION_FORMS[action](formdata=None, prefix=ACTION_SLUGS[action], **kwargs)
        if action == "record_cause":
            form.cause.data, form.action_taken.data = record.cause, record.action_taken
        if action == "confirm":
            form.customer_confirmed_by.data = record.customer_confirmed_by
            form.customer_confirmation.data = record.customer_confirmation
        if action == "raise_corrective":
            form.owner_id.data = service.corrective_owner_default(record, current_user)
        forms[action] = form
    for form in forms.values():
        form.version.data = str(record.lock_version)
    required = service.corrective_action_required(record, now)
    open_step = submitted[0] if submitted is not None else _next_step(record, actions, required)
    contract = None
    if record.contract_id:
        contract = db.session.scalars(
            contracts_for(current_user).where(Contract.id == record.contract_id)
        ).first()
    return {
        "record": record,
        "forms": forms,
        "actions": actions,
        "slugs": ACTION_SLUGS,
        "may_write": may_write,
        "now": now,
        "deadlines": service.deadlines(record, now),
        "overdue": service.is_overdue(record, now),
        "corrective_required": required,
        "problems": service.closing_problems(record, now, required=required)
        if record.status != "closed"
        else {},
        "contract": contract,
        "subject_table": service.SUBJECT_TABLE,
        "can_read_rules": current_user.can("core.rules.read"),
        "problem": problem,
        "open_step": open_step,
    }


def _next_step(record: Feedback, actions: list[str], corrective_required: bool) -> str:
    """The step a person most likely takes next (its form is shown open)."""
    if "respond" in actions:
        return "respond"
    if not record.action_taken or (record.kind == "complaint" and not record.cause):
        return "record_cause"
    if record.kind == "complaint" and record.customer_confirmed_at is None:
        return "confirm"
    if corrective_required and "raise_corrective" in actions:
        return "raise_corrective"
    return "close"


@bp.get("/aftersales/<int:feedback_id>")
@require_permission("sales.view")
def detail(feedback_id: int) -> Any:
    """Everything about one record: deadlines, handling, loop items and why."""
    record = service.get_feedback_or_404(feedback_id, current_user)
    return render_template("sales/aftersales/detail.html", **_detail_context(record))


def _refused(feedback_id: int, status: int, message: str) -> Any:
    """A 403 or 409 the person understands, on the record's page (``portal.web.refuse``)."""

    def page() -> Any:
        record = service.get_feedback_or_404(feedback_id, current_user)
        context = _detail_context(record, problem=message)
        return render_template("sales/aftersales/detail.html", **context), status

    return refuse(status, message, url_for(".detail", feedback_id=feedback_id), page)


@bp.post("/aftersales/<int:feedback_id>/<slug>")
@require_permission("sales.edit")
def act(feedback_id: int, slug: str) -> Any:
    """One handling step: respond, cause, confirm, corrective, close."""
    action = PAGE_ACTIONS.get(slug)
    if action is None:
        abort(404)
    record = service.get_feedback_or_404(feedback_id, current_user, "write")
    if action not in service.allowed_actions(record, True):
        return _refused(feedback_id, 409, _("This step is not possible any more."))
    kwargs = {"actor": current_user} if action == "raise_corrective" else {}
    form = ACTION_FORMS[action](prefix=slug, **kwargs)
    if not form.validate():
        context = _detail_context(record, submitted=(action, form))
        return render_template("sales/aftersales/detail.html", **context), 422
    data = {name: field.data for name, field in form._fields.items()}
    try:
        service.act(record, current_user, action, data)
        db.session.commit()
    except ValidationFailed as error:
        db.session.rollback()
        error.show_on(form)
        record = service.get_feedback_or_404(feedback_id, current_user)
        context = _detail_context(record, submitted=(action, form))
        return render_template("sales/aftersales/detail.html", **context), 422
    except REFUSALS as error:
        db.session.rollback()
        return _refused(feedback_id, *refusal_of(error, _conflict_text()))
    flash(_done_message(action), "success")
    return redirect(url_for(".detail", feedback_id=feedback_id), 303)


# -- trends ----------------------------------------------------------------------------------


def _trend_kind() -> str | None:
    kind = request.args.get("kind")
    return kind if kind in FEEDBACK_KINDS else None


@bp.get("/aftersales/trends")
@require_permission("sales.view_reports")
def trends() -> Any:
    """Counts by category per month over the last twelve months, response and
    resolution times, breach rate; within the viewer's scope."""
    kind = _trend_kind()
    found = service.trends(current_user, utcnow(), kind)
    return render_template(
        "sales/aftersales/trends.html",
        trends=found,
        kind=kind or "",
        kinds=FEEDBACK_KINDS,
        chart_args={"kind": kind} if kind else {},
    )


def categories_chart(found: service.Trends) -> pygal.Graph:
    """Feedback and complaints per month, stacked by category."""
    chart = pygal.StackedBar(
        chart_config(_("Feedback and complaints by category"), value_formatter=lambda v: f"{v:.0f}")
    )
    chart.x_labels = [month.label for month in found.months]
    for category in found.categories:
        values = [month.by_category.get(category, 0) for month in found.months]
        if any(values):
            chart.add(label("feedback_category", category), values)
    return chart


def sla_chart(found: service.Trends) -> pygal.Graph:
    """Average hours to first response and to resolution per month."""
    chart = pygal.Line(
        chart_config(
            _("Average hours to first response and to resolution"),
            value_formatter=lambda v: f"{v:.1f}",
        )
    )
    chart.x_labels = [month.label for month in found.months]
    chart.add(_("First response"), [_round(m.avg_response_hours) for m in found.months])
    chart.add(_("Resolution"), [_round(m.avg_resolution_hours) for m in found.months])
    return chart


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


CHARTS = {"categories": categories_chart, "sla": sla_chart}


@bp.get("/aftersales/trends/<name>.svg")
@require_permission("sales.view_reports")
def trends_chart(name: str) -> Any:
    """One chart of the trends page as an SVG image (the CSP forbids inline SVG)."""
    builder = CHARTS.get(name)
    if builder is None:
        abort(404)
    found = service.trends(current_user, utcnow(), _trend_kind())
    return svg_response(render_svg(builder(found)))
