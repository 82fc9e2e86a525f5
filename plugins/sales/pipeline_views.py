"""Pages of the pipeline (P3.2): the kanban board, the list, one opportunity, its form,
moves between stages, and the funnel with its chart.

A card moves three ways, all through the one ``move`` endpoint: the small form on the
card (a stage select and a button; works without JavaScript, and on a phone), the same
form sent by htmx (the board is swapped in place), and drag and drop (``kanban.js``
sets the form's stage and submits it through htmx). When the target stage needs
fields that are empty, nothing moves: the answer is 422 with a panel asking for them,
which is sent again to the same endpoint. Out-of-scope records answer 404, a stale
version 409.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode

import sqlalchemy as sa
from flask import (
    Blueprint,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy.orm.exc import StaleDataError

from portal.auth.permissions import require_permission
from portal.extensions import db
from portal.listing import id_arg, page_args, paginate
from portal.loops.charts import svg_response
from portal.loops.service import local_today
from portal.money import yuan
from portal.org.services import ValidationFailed
from portal.scoping import people_in_scope, scoped
from portal.web import is_htmx_request, refuse, vary_on_htmx

from . import pipeline
from .common import get_customer_or_404
from .models import OPPORTUNITY_STATUSES, Opportunity
from .pipeline_forms import MoveForm, OpportunityForm
from .template_helpers import sales_link, sales_may_edit

bp = Blueprint(
    "sales_pipeline",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/pipeline/static",
)

BOARD_TARGET = "pipeline-board"
BOARD_ARGS = ("owner", "team", "q")
SORTS = {
    "close": lambda: [
        Opportunity.expected_close_on.is_(None),
        Opportunity.expected_close_on,
        Opportunity.id.desc(),
    ],
    "amount": lambda: [Opportunity.amount_cents.desc(), Opportunity.id.desc()],
    "newest": lambda: [Opportunity.id.desc()],
    "changed": lambda: [Opportunity.stage_changed_at.desc(), Opportunity.id.desc()],
}


# -- template helpers (also used by other areas' pages) -----------------------------------------


@bp.app_template_global()
def sales_pipeline_overdue(opportunity: Opportunity) -> bool:
    return pipeline.is_overdue(opportunity)


@bp.app_template_global()
def sales_pipeline_for_customer(customer: Any, limit: int = 20) -> list[Opportunity]:
    """For ``sales/pipeline/_for_customer.html``: the customer's deals the viewer may
    read, newest first (one query)."""
    if not current_user.is_authenticated or customer is None:
        return []
    return list(
        db.session.scalars(
            pipeline.opportunities_for(current_user)
            .options(*pipeline.card_loading())
            .where(Opportunity.customer_id == customer.id)
            .order_by(Opportunity.id.desc())
            .limit(limit)
        )
    )


@bp.app_template_global()
def sales_pipeline_may_create_for(customer: Any) -> bool:
    """Whether the viewer may open a deal with ``customer``."""
    return customer is not None and customer.owner_id is not None and sales_may_edit(customer)


def _wants_board() -> bool:
    return is_htmx_request() and request.headers.get("HX-Target") == BOARD_TARGET


# -- filters ----------------------------------------------------------------------------------


class FilterChoices:
    """The people and units the viewer may filter by (loaded once per page)."""

    def __init__(self) -> None:
        self.people = people_in_scope(current_user, limit=pipeline.MAX_CHOICES)
        self.units = pipeline.reachable_units(current_user)
        self.show_owner = len(self.people) > 1
        top = min((unit.depth for unit in self.units), default=0)
        self.unit_rows = [(unit, min(unit.depth - top, 5)) for unit in self.units]


def read_filters(args: Any, choices: FilterChoices, listing: bool = False) -> pipeline.Filters:
    """Filters from a query string; values outside what the viewer may see are dropped
    (a filter only ever narrows the scope)."""
    owner_id = id_arg(args.get("owner"))
    if owner_id not in {pid for pid, _name in choices.people}:
        owner_id = None
    unit_id = id_arg(args.get("team"))
    unit = next((u for u in choices.units if u.id == unit_id), None)
    filters = pipeline.Filters(owner_id=owner_id, unit=unit, q=(args.get("q") or "").strip()[:100])
    if listing:
        stage = args.get("stage", "")
        filters.stage = stage if stage in pipeline.stage_by_code() else ""
        status = args.get("status", "")
        filters.status = status if status in OPPORTUNITY_STATUSES else ""
        filters.close_month = pipeline.month_arg(args.get("close_month", ""))
        filters.recent = args.get("recent") == "1"
        filters.customer_id = id_arg(args.get("customer"))
    return filters


def _board_args(filters: pipeline.Filters) -> dict[str, Any]:
    """The board's filters as query arguments (for links and the move forms)."""
    args: dict[str, Any] = {}
    if filters.owner_id:
        args["owner"] = filters.owner_id
    if filters.unit is not None:
        args["team"] = filters.unit.id
    if filters.q:
        args["q"] = filters.q
    return args


# -- the board ----------------------------------------------------------------------------------


def _board_context(args: Any, **extra: Any) -> dict[str, Any]:
    choices = FilterChoices()
    filters = read_filters(args, choices)
    board_args = _board_args(filters)
    writable = (
        pipeline.writable_owner_ids(current_user) if current_user.can("sales.edit") else set()
    )
    context = {
        "board": pipeline.board(current_user, filters),
        "filters": filters,
        "choices": choices,
        "board_args": board_args,
        "back": urlencode(board_args),
        "writable": writable,
        "stages": pipeline.stages(),
        "today": local_today(),
        "show_owner": choices.show_owner,
        "recent_days": pipeline.RECENT_CLOSED_DAYS,
        "message": None,
        "problem": None,
        "pending": None,
    }
    context.update(extra)
    return context


def _render_board(status: int = 200, args: Any = None, **extra: Any) -> Any:
    context = _board_context(request.args if args is None else args, **extra)
    template = "sales/pipeline/_board.html" if _wants_board() else "sales/pipeline/board.html"
    return vary_on_htmx((render_template(template, **context), status), target=True)


@bp.get("/pipeline/board")
@require_permission("sales.view")
def board() -> Any:
    """The kanban: a column per stage with its count and amount, and the cards."""
    return _render_board()


# -- moving ---------------------------------------------------------------------------------


def _back_args(text: str | None) -> dict[str, str]:
    """The board filters a move form carried (nothing else is taken from it)."""
    pairs = parse_qsl((text or "")[:500])
    return {key: value[:100] for key, value in pairs if key in BOARD_ARGS}


class Pending:
    """A move waiting for fields: the card, the form with its messages, and which
    fields to ask for."""

    def __init__(self, opportunity: Opportunity, form: MoveForm) -> None:
        self.opportunity = opportunity
        self.form = form
        self.stage = form.stage.data
        # The fields with a message, and those sent with this try (kept, so a typo in
        # one field does not lose what was typed in the others).
        asked = [
            name
            for name in pipeline.MOVE_VALUE_FIELDS
            if form[name].errors or any(value for value in form[name].raw_data or ())
        ]
        if "lost_reason" in asked and "lost_note" not in asked:
            asked.append("lost_note")
        self.fields = asked
        self.needs_quotation = bool(
            {"quotation", "accepted_quotation"} & set(getattr(form, "missing", ()))
        )


def _move_refused(opportunity_id: int, form: MoveForm, missing: set[str], status: int) -> Any:
    opportunity = pipeline.get_opportunity_or_404(opportunity_id, current_user)
    form.missing = missing  # type: ignore[attr-defined]
    pending = Pending(opportunity, form)
    if _wants_board():
        return _render_board(status, args=_back_args(form.back.data), pending=pending)
    return vary_on_htmx(
        (render_template("sales/pipeline/move.html", pending=pending, board_target=False), status),
        target=True,
    )


def _conflict(opportunity_id: int, on_board: bool, back: dict[str, str]) -> Any:
    message = _("Someone changed this opportunity meanwhile. Here is how it stands now.")
    target = (
        url_for(".board", **back) if on_board else url_for(".detail", opportunity_id=opportunity_id)
    )
    if on_board:
        return refuse(409, message, target, lambda: _render_board(409, args=back, problem=message))
    return refuse(
        409,
        message,
        target,
        lambda: _render_detail(
            pipeline.get_opportunity_or_404(opportunity_id, current_user), 409, problem=message
        ),
    )


@bp.post("/pipeline/<int:opportunity_id>/move")
@require_permission("sales.edit")
def move(opportunity_id: int) -> Any:
    """Move a card to another stage (card form, htmx, drag and drop, or the panel
    asking for the fields the stage needs)."""
    opportunity = pipeline.get_opportunity_or_404(opportunity_id, current_user, "write")
    form = MoveForm()
    back = _back_args(form.back.data)
    on_board = form.next.data != "detail"
    if not form.validate():
        return _move_refused(opportunity_id, form, set(), 422)
    if form.version.data and form.version.data != str(opportunity.lock_version):
        return _conflict(opportunity_id, on_board, back)
    name = opportunity.name
    try:
        change = pipeline.move_to_stage(opportunity, form.stage.data, current_user, form.values())
        db.session.commit()
    except ValidationFailed as error:
        db.session.rollback()
        error.show_on(form)
        return _move_refused(opportunity_id, form, set(error.fields), 422)
    except StaleDataError:
        db.session.rollback()
        return _conflict(opportunity_id, on_board, back)
    stage_name = pipeline.stage_label(form.stage.data)
    message = (
        _("%(name)s moved to %(stage)s.", name=name, stage=stage_name)
        if change is not None
        else _("%(name)s already is in %(stage)s.", name=name, stage=stage_name)
    )
    if _wants_board():
        return _render_board(200, args=back, message=message, moved=opportunity_id)
    flash(message, "success")
    if on_board:
        return redirect(url_for(".board", **back), 303)
    return redirect(url_for(".detail", opportunity_id=opportunity_id), 303)


# -- the list ---------------------------------------------------------------------------------


@bp.get("/pipeline/")
@require_permission("sales.view")
def index() -> Any:
    """Opportunities in scope, filtered (stage, status, owner, team, close month,
    words), paginated."""
    choices = FilterChoices()
    filters = read_filters(request.args, choices, listing=True)
    sort = request.args.get("sort", "close")
    sort = sort if sort in SORTS else "close"
    statement = pipeline.narrow(
        scoped(sa.select(Opportunity.id), Opportunity, current_user), filters
    ).order_by(*SORTS[sort]())
    page = pipeline.load_page(paginate(statement))
    return render_template(
        "sales/pipeline/index.html",
        page=page,
        filters=filters,
        choices=choices,
        sort=sort,
        stages=pipeline.stages(),
        statuses=OPPORTUNITY_STATUSES,
        today=local_today(),
        args=request.args,
        recent_days=pipeline.RECENT_CLOSED_DAYS,
    )


# -- one opportunity -----------------------------------------------------------------------------


def _render_detail(opportunity: Opportunity, status: int = 200, **extra: Any) -> Any:
    may_edit = sales_may_edit(opportunity)
    form = MoveForm(formdata=None)
    form.stage.data = opportunity.stage
    form.version.data = str(opportunity.lock_version)
    form.next.data = "detail"
    context = {
        "opportunity": opportunity,
        "stages": pipeline.stages(),
        "current": pipeline.stage_by_code().get(opportunity.stage),
        "history": pipeline.stage_history(opportunity),
        "may_edit": may_edit,
        "move_form": form,
        "overdue": pipeline.is_overdue(opportunity),
        "problem": None,
    }
    context.update(extra)
    return render_template("sales/pipeline/detail.html", **context), status


@bp.get("/pipeline/<int:opportunity_id>")
@require_permission("sales.view")
def detail(opportunity_id: int) -> Any:
    """One deal: its stage and progress, needs and solution, history, quotations and
    contacts."""
    return _render_detail(pipeline.get_opportunity_or_404(opportunity_id, current_user))


@bp.route("/pipeline/new", methods=["GET", "POST"])
@require_permission("sales.edit")
def new() -> Any:
    """Open a deal with a customer (``?customer_id=``, which must be one's own)."""
    customer_id = id_arg(request.args.get("customer_id"))
    if customer_id is None:
        flash(_("Open a customer and choose New opportunity there."), "info")
        return redirect(sales_link("sales_customers.index") or url_for(".index"), 303)
    customer = get_customer_or_404(customer_id, current_user, "write")
    people = people_in_scope(current_user, "write", pipeline.MAX_CHOICES)
    form = OpportunityForm(people=people)
    if request.method == "GET":
        known = {pid for pid, _name in people}
        form.owner_id.data = customer.owner_id if customer.owner_id in known else current_user.id
    if form.validate_on_submit():
        try:
            opportunity = pipeline.create_opportunity(customer, form.values(), current_user)
            db.session.commit()
        except ValidationFailed as error:
            db.session.rollback()
            error.show_on(form)
        else:
            flash(_("The opportunity was opened."), "success")
            return redirect(url_for(".detail", opportunity_id=opportunity.id), 303)
    status = 422 if form.is_submitted() else 200
    return render_template(
        "sales/pipeline/form.html", form=form, customer=customer, opportunity=None
    ), status


@bp.route("/pipeline/<int:opportunity_id>/edit", methods=["GET", "POST"])
@require_permission("sales.edit")
def edit(opportunity_id: int) -> Any:
    """Change the deal's needs analysis, solution, people, amount and dates."""
    opportunity = pipeline.get_opportunity_or_404(opportunity_id, current_user, "write")
    people = people_in_scope(current_user, "write", pipeline.MAX_CHOICES)
    if opportunity.owner_id not in {pid for pid, _name in people}:
        people = [(opportunity.owner_id, opportunity.owner.display_name), *people]
    form = OpportunityForm(people=people)
    problem = None
    status = 200
    if request.method == "GET":
        form.process(
            data={
                "name": opportunity.name,
                "owner_id": opportunity.owner_id,
                "amount": str(yuan(opportunity.amount_cents)) if opportunity.amount_cents else "",
                "expected_close_on": opportunity.expected_close_on,
                "decision_maker": opportunity.decision_maker,
                "competitors": opportunity.competitors,
                "need_analysis": opportunity.need_analysis,
                "proposed_solution": opportunity.proposed_solution,
                "version": str(opportunity.lock_version),
            }
        )
    elif form.validate_on_submit():
        if form.version.data and form.version.data != str(opportunity.lock_version):
            problem = _(
                "Someone changed this opportunity meanwhile. Your changes were not saved: "
                "reload the page to see theirs, then make yours again."
            )
            status = 409
        else:
            try:
                pipeline.update_opportunity(opportunity, form.values(), current_user)
                db.session.commit()
            except ValidationFailed as error:
                db.session.rollback()
                error.show_on(form)
                status = 422
            except StaleDataError:
                db.session.rollback()
                problem = _(
                    "Someone changed this opportunity meanwhile. Your changes were not "
                    "saved: reload the page to see theirs, then make yours again."
                )
                status = 409
            else:
                flash(_("The opportunity was saved."), "success")
                return redirect(url_for(".detail", opportunity_id=opportunity_id), 303)
    else:
        status = 422
    opportunity = pipeline.get_opportunity_or_404(opportunity_id, current_user, "write")
    return render_template(
        "sales/pipeline/form.html",
        form=form,
        customer=opportunity.customer,
        opportunity=opportunity,
        problem=problem,
    ), status


# -- the funnel -----------------------------------------------------------------------------------


def _funnel_result(args: Any) -> tuple[pipeline.Funnel, FilterChoices, str]:
    choices = FilterChoices()
    filters = read_filters(args, choices)
    period, since, until = pipeline.read_period(args, local_today())
    group = args.get("group", "person")
    group = group if group in pipeline.FUNNEL_GROUPS else "person"
    return pipeline.funnel(current_user, since, until, group, filters), choices, period


@bp.get("/pipeline/funnel")
@require_permission("sales.view")
def funnel() -> Any:
    """Deals created in a period: how many reached each stage, the conversion from
    stage to stage, the win rate and the amounts, by person or team."""
    result, choices, period = _funnel_result(request.args)
    args = {key: value for key, value in request.args.items() if key != "page"}
    return render_template(
        "sales/pipeline/funnel.html",
        result=result,
        choices=choices,
        period=period,
        periods=pipeline.PERIODS,
        period_labels=pipeline.PERIOD_LABELS,
        args=request.args,
        chart_args=args,
    )


@bp.get("/pipeline/funnel/chart.svg")
@require_permission("sales.view")
def funnel_chart() -> Any:
    """The funnel page's chart as an SVG image, for the same selection."""
    result, _choices, _period = _funnel_result(request.args)
    return svg_response(pipeline.funnel_svg(result))


@bp.app_template_global()
def sales_pipeline_args(**overrides: Any) -> dict[str, Any]:
    """The current query with some values replaced (page reset unless given)."""
    overrides.setdefault("page", None)
    return page_args(**overrides)
