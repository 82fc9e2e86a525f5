"""Pages of the leave area (P6.1): my requests and balances, asking for leave (with a
hospital certificate), one request with its approval, the team's leave for those who
oversee attendance, and HR's settings (leave types, balances).

Writes commit once at the end; bad input answers 422 with the messages next to their
fields, a request in the wrong state or changed meanwhile 409, a record out of scope
404. A request the rule file rejects is not saved: the form comes back with the rule's
reason (see ``leave.py``).
"""

from __future__ import annotations

import calendar as month_calendar
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from portal.auth.models import User
from portal.auth.permissions import require_permission
from portal.extensions import db
from portal.files import send_stored
from portal.listing import id_arg, paginate
from portal.loops.errors import REFUSALS, refusal_of
from portal.org.services import ValidationFailed
from portal.scoping import people_in_scope

from . import leave as service
from .attendance import parse_month
from .calendar import local_today
from .leave_forms import (
    ActionForm,
    AdjustForm,
    DocumentsForm,
    GrantForm,
    LeaveRequestForm,
    LeaveTypeForm,
)
from .models import REQUEST_STATUSES, LeaveBalance, LeaveRequest, LeaveType

bp = Blueprint("daily_leave", __name__, template_folder="templates")

STATUS_BADGES = {
    "pending": "text-bg-warning",
    "approved": "text-bg-success",
    "rejected": "text-bg-danger",
    "cancelled": "text-bg-secondary",
}


@bp.app_template_global()
def daily_leave_badge(status: str) -> str:
    """The Bootstrap badge class of a leave request's status."""
    return STATUS_BADGES.get(status, "text-bg-light")


@bp.app_template_global()
def daily_leave_type_name(code: str) -> str:
    """A leave type's name in the reader's language (the code when it is unknown); the
    types are read once per request, however many rows a list shows."""
    if not code:
        return "—"
    if "daily_leave_types" not in g:
        g.daily_leave_types = {
            kind.code: service.type_name(kind) for kind in db.session.scalars(sa.select(LeaveType))
        }
    return g.daily_leave_types.get(code, code)


def _type_choices() -> list[tuple[str, str]]:
    return [(kind.code, service.type_name(kind)) for kind in service.leave_types()]


def _stale_text() -> str:
    return _("Someone changed this meanwhile. Reload the page and try again.")


# -- my leave -----------------------------------------------------------------------------------


@bp.get("/leave/")
@require_permission("daily.attend", "daily.view_attendance")
def index() -> Any:
    """My balances for this year and my requests, newest first."""
    year = local_today().year
    status = request.args.get("status", "")
    if status not in REQUEST_STATUSES:
        status = ""
    page = paginate(service.my_requests(current_user, status))
    balances = service.balances_for(current_user.id, year)
    db.session.commit()  # default types seeded on first use
    return render_template(
        "daily/leave/index.html",
        page=page,
        balances=balances,
        year=year,
        status=status,
        statuses=REQUEST_STATUSES,
        sees_team=service.sees_team(current_user),
        manages=current_user.can("daily.manage_attendance"),
        attends=current_user.can("daily.attend"),
    )


def _render_form(form: LeaveRequestForm, status: int = 200) -> Any:
    year = local_today().year
    return (
        render_template(
            "daily/leave/form.html",
            form=form,
            balances=service.balances_for(current_user.id, year),
            year=year,
            max_mb=max(1, service.upload_limit() // 1048576),
        ),
        status,
    )


@bp.route("/leave/new", methods=["GET", "POST"])
@require_permission("daily.attend")
def new() -> Any:
    """Ask for leave. The rule file in force decides notice, balance, certificate and
    approvers; a refusal comes back on the form and nothing is saved."""
    types = _type_choices()
    db.session.commit()  # default types seeded on first use
    if request.method == "GET":
        first = local_today() + timedelta(days=1)
        form = LeaveRequestForm(
            formdata=None,
            types=types,
            data={"starts_on": first.isoformat(), "ends_on": first.isoformat()},
        )
        return _render_form(form)
    form = LeaveRequestForm(types=types)
    if not form.validate():
        return _render_form(form, 422)
    try:
        leave = service.create_request(form.data, current_user, request.files.getlist("documents"))
        db.session.commit()
    except ValidationFailed as error:
        db.session.rollback()
        error.show_on(form)
        return _render_form(form, 422)
    except Exception:
        db.session.rollback()
        raise
    flash(_("Your leave request was sent for approval."), "success")
    return redirect(url_for(".detail", request_id=leave.id), 303)


# -- one request ---------------------------------------------------------------------------------


def _render_detail(
    leave: LeaveRequest,
    status: int = 200,
    messages: list[str] | None = None,
    documents_form: DocumentsForm | None = None,
) -> Any:
    from portal.loops import approvals

    approval = service.approval_of(leave)
    return (
        render_template(
            "daily/leave/detail.html",
            leave=leave,
            kind=db.session.get(LeaveType, leave.leave_type),
            approval=approval,
            steps=approvals.timeline(approval) if approval is not None else [],
            can_cancel=service.cancellable_by(leave, current_user),
            can_add=leave.owner_id == current_user.id and leave.status in service.LIVE_STATUSES,
            documents_form=documents_form or DocumentsForm(formdata=None),
            max_mb=max(1, service.upload_limit() // 1048576),
            action_form=ActionForm(),
            messages=messages or [],
        ),
        status,
    )


@bp.get("/leave/<int:request_id>")
@require_permission("daily.attend", "daily.view_attendance")
def detail(request_id: int) -> Any:
    """One request: dates, days, documents and where its approval stands."""
    return _render_detail(service.get_request_or_404(request_id, current_user))


@bp.post("/leave/<int:request_id>/cancel")
@require_permission("daily.attend", "daily.manage_attendance")
def cancel(request_id: int) -> Any:
    """Withdraw a pending request or cancel approved leave not yet started."""
    leave = service.get_request_or_404(request_id, current_user)
    if not ActionForm().validate():
        return _render_detail(leave, 422, [_("The form expired. Try again.")])
    try:
        service.cancel_request(leave, current_user)
        db.session.commit()
    except REFUSALS as error:
        db.session.rollback()
        code, message = refusal_of(error, _stale_text())
        leave = service.get_request_or_404(request_id, current_user)
        return _render_detail(leave, code, [message])
    except Exception:
        db.session.rollback()
        raise
    flash(_("The leave request was cancelled."), "success")
    return redirect(url_for(".detail", request_id=request_id), 303)


@bp.post("/leave/<int:request_id>/documents")
@require_permission("daily.attend")
def add_documents(request_id: int) -> Any:
    """Attach documents to one's own pending or approved leave (a certificate)."""
    leave = service.get_request_or_404(request_id, current_user)
    form = DocumentsForm()
    if not form.validate():
        return _render_detail(leave, 422, documents_form=form)
    try:
        service.add_documents(leave, request.files.getlist("documents"), current_user)
        db.session.commit()
    except ValidationFailed as error:
        db.session.rollback()
        error.show_on(form)
        leave = service.get_request_or_404(request_id, current_user)
        return _render_detail(leave, 422, documents_form=form)
    except REFUSALS as error:
        db.session.rollback()
        code, message = refusal_of(error, _stale_text())
        leave = service.get_request_or_404(request_id, current_user)
        return _render_detail(leave, code, [message])
    except Exception:
        db.session.rollback()
        raise
    flash(_("The documents were added."), "success")
    return redirect(url_for(".detail", request_id=request_id), 303)


@bp.get("/leave/<int:request_id>/documents/<int:document_id>")
@require_permission("daily.attend", "daily.view_attendance")
def document(request_id: int, document_id: int) -> Any:
    """A supporting document, only to whoever may read the request."""
    leave = service.get_request_or_404(request_id, current_user)
    found = service.document_of(leave, document_id)
    if found is None:
        abort(404)
    return send_stored(service.UPLOAD_AREA, found.stored_name, found.content_type, found.filename)


# -- the team's leave -------------------------------------------------------------------------


def _month_arg() -> date:
    """The first day of the ``?month=YYYY-MM`` asked for (attendance's ``parse_month``:
    years 2000-2100, so the previous/next links stay within dates); this month else."""
    today = local_today()
    year, month = parse_month(request.args.get("month", ""), today) or (today.year, today.month)
    return date(year, month, 1)


@bp.get("/leave/team")
@require_permission("daily.view_attendance")
def team() -> Any:
    """Who is away in a month (pending and approved leave, or a chosen status) among
    the people in the viewer's scope, with a day-by-day count for planning."""
    first = _month_arg()
    last = first.replace(day=month_calendar.monthrange(first.year, first.month)[1])
    status = request.args.get("status", "")
    if status not in REQUEST_STATUSES:
        status = ""
    owners = people_in_scope(current_user)
    owner_id = id_arg(request.args.get("owner"))
    statement = service.team_requests(current_user, first, last, status, owner_id)
    page = paginate(statement)
    away = service.away_by_day(current_user, first, last, owner_id)
    previous = (first - timedelta(days=1)).replace(day=1)
    following = last + timedelta(days=1)
    return render_template(
        "daily/leave/team.html",
        page=page,
        first=first,
        last=last,
        days=[first + timedelta(days=n) for n in range(last.day)],
        away=away,
        status=status,
        statuses=REQUEST_STATUSES,
        owners=owners,
        owner_id=owner_id,
        previous=previous.strftime("%Y-%m"),
        following=following.strftime("%Y-%m"),
        month=first.strftime("%Y-%m"),
        today=local_today(),
    )


# -- settings: leave types ---------------------------------------------------------------------


@bp.get("/leave/types/")
@require_permission("daily.manage_attendance")
def types() -> Any:
    """The leave types offered, with the rule file's codes not yet offered."""
    found = service.leave_types(active_only=False)
    db.session.commit()
    offered = {kind.code for kind in found}
    missing = [code for code in service.rule_leave_codes() if code not in offered]
    return render_template("daily/leave/types.html", types=found, missing=missing)


def _type_form(form: LeaveTypeForm, kind: LeaveType | None, status: int = 200) -> Any:
    codes = service.rule_leave_codes()
    form.code.choices = [(code, code) for code in codes]
    return render_template("daily/leave/type_form.html", form=form, kind=kind), status


@bp.route("/leave/types/new", methods=["GET", "POST"])
@bp.route("/leave/types/<code>/edit", methods=["GET", "POST"])
@require_permission("daily.manage_attendance")
def type_form(code: str | None = None) -> Any:
    """Add a leave type (a code of the rule file in force) or change one."""
    kind = None
    if code is not None:
        kind = db.session.get(LeaveType, code)
        if kind is None:
            abort(404)
    if request.method == "GET":
        data: dict[str, Any] = {"code": request.args.get("code", "")}
        if kind is not None:
            data = {
                "code": kind.code,
                "name_en": kind.name_en,
                "name_zh": kind.name_zh,
                "paid": kind.paid,
                "uses_balance": kind.uses_balance,
                "yearly_days": f"{kind.yearly_half_days / 2:g}",
                "position": str(kind.position),
                "active": kind.active,
            }
        return _type_form(LeaveTypeForm(formdata=None, data=data), kind)
    form = LeaveTypeForm()
    if not form.validate():
        return _type_form(form, kind, 422)
    try:
        saved = service.save_leave_type(kind, form.data)
        db.session.commit()
    except ValidationFailed as error:
        db.session.rollback()
        error.show_on(form)
        return _type_form(form, kind, 422)
    except Exception:
        db.session.rollback()
        raise
    flash(_("Leave type %(name)s saved.", name=service.type_name(saved)), "success")
    return redirect(url_for(".types"), 303)


# -- settings: balances -----------------------------------------------------------------------


def _year_arg() -> int:
    year = request.args.get("year", type=int)
    return year if year and 2000 <= year <= 2100 else local_today().year


def _people_choices() -> list[tuple[str, str]]:
    rows = db.session.execute(
        service.employees()
        .with_only_columns(User.id, User.display_name)
        .order_by(User.display_name, User.id)
        .limit(2000)
    )
    return [(str(person_id), name) for person_id, name in rows]


def _render_balances(
    year: int,
    grant_form: GrantForm | None = None,
    adjust_form: AdjustForm | None = None,
    status: int = 200,
) -> Any:
    statement = (
        sa.select(LeaveBalance)
        .join(User, User.id == LeaveBalance.owner_id)
        .where(LeaveBalance.year == year)
        .order_by(User.display_name, LeaveBalance.owner_id, LeaveBalance.leave_type)
    )
    owner_id = id_arg(request.args.get("owner"))
    if owner_id:
        statement = statement.where(LeaveBalance.owner_id == owner_id)
    page = paginate(statement)
    owner_ids = {row.owner_id for row in page.items}
    pending = service.pending_half_days(owner_ids, year)
    names = {
        person_id: name
        for person_id, name in db.session.execute(
            sa.select(User.id, User.display_name).where(User.id.in_(owner_ids))
        )
    }
    adjust_form = adjust_form or AdjustForm(formdata=None, data={"year": str(year)})
    adjust_form.owner_id.choices = _people_choices()
    adjust_form.leave_type.choices = [
        (kind.code, service.type_name(kind)) for kind in service.leave_types() if kind.uses_balance
    ]
    return (
        render_template(
            "daily/leave/balances.html",
            page=page,
            year=year,
            names=names,
            pending=pending,
            owner_id=owner_id,
            grant_form=grant_form or GrantForm(formdata=None, data={"year": str(year)}),
            adjust_form=adjust_form,
        ),
        status,
    )


@bp.get("/leave/balances/")
@require_permission("daily.manage_attendance")
def balances() -> Any:
    """Everyone's balances of one year."""
    year = _year_arg()
    response = _render_balances(year)
    db.session.commit()
    return response


@bp.post("/leave/balances/grant")
@require_permission("daily.manage_attendance")
def grant() -> Any:
    """Grant the year's entitlement to every employee (once; existing balances stay)."""
    form = GrantForm()
    year = id_arg(form.year.data) or 0
    if not form.validate():
        return _render_balances(_year_arg(), grant_form=form, status=422)
    try:
        created = service.grant_year(year)
        db.session.commit()
    except ValidationFailed as error:
        db.session.rollback()
        error.show_on(form)
        return _render_balances(_year_arg(), grant_form=form, status=422)
    except REFUSALS as error:
        db.session.rollback()
        code, message = refusal_of(error, _stale_text())
        form.form_errors.append(message)
        return _render_balances(_year_arg(), grant_form=form, status=code)
    flash(_("%(n)s balances granted for %(year)s.", n=created, year=year), "success")
    return redirect(url_for(".balances", year=year), 303)


@bp.post("/leave/balances/adjust")
@require_permission("daily.manage_attendance")
def adjust() -> Any:
    """Add to or take from one person's balance, with a reason (kept in the audit log)."""
    form = AdjustForm()
    year = id_arg(form.year.data) or 0
    shown_year = year if 2000 <= year <= 2100 else _year_arg()
    if not form.validate():
        return _render_balances(shown_year, adjust_form=form, status=422)
    errors: dict[str, list[str]] = {}
    owner = db.session.get(User, id_arg(form.owner_id.data) or 0)
    if owner is None or not owner.active:
        errors["owner_id"] = [_("Choose a person from the list.")]
    change = service.parse_days(form.change_days.data, "change_days", errors, signed=True)
    try:
        if errors:
            raise ValidationFailed(errors)
        assert owner is not None
        service.adjust_balance(
            owner,
            form.leave_type.data or "",
            year,
            change,
            form.reason.data or "",
            expected_version=id_arg(form.version.data),
        )
        db.session.commit()
    except ValidationFailed as error:
        db.session.rollback()
        error.show_on(form)
        return _render_balances(shown_year, adjust_form=form, status=422)
    except REFUSALS as error:
        db.session.rollback()
        code, message = refusal_of(error, _stale_text())
        form.form_errors.append(message)
        return _render_balances(shown_year, adjust_form=form, status=code)
    flash(_("Balance of %(name)s changed.", name=owner.display_name), "success")
    return redirect(url_for(".balances", year=year), 303)
