"""Attendance pages (P6.1): today's check-in (also a dashboard tile loaded by htmx), a
person's month as a calendar-like table, the team's month (scoped: a supervisor sees
their subtree), missed-punch corrections, reviewing and locking a month, the export,
and HR's settings (schedules, holidays, who works to which schedule).

Every page works without JavaScript (plain form posts, redirect after success, the page
again with the messages and 422 on bad input, 409 when the state refuses). A person
outside the viewer's scope is not found (404).
"""

from __future__ import annotations

from contextlib import suppress
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from flask import (
    Blueprint,
    abort,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import format_date
from flask_babel import gettext as _
from flask_login import current_user

from portal import exports
from portal.auth.models import User
from portal.auth.permissions import require_permission
from portal.extensions import db
from portal.listing import id_arg, paginate
from portal.loops.errors import REFUSALS, refusal_of
from portal.loops.service import local_today
from portal.org.services import ValidationFailed
from portal.scoping import people_in_scope
from portal.web import is_htmx_request, refuse, vary_on_htmx

from . import attendance as service
from .attendance_forms import (
    CorrectionForm,
    ExportForm,
    HolidayForm,
    PeriodForm,
    PersonScheduleForm,
    PunchForm,
    ScheduleForm,
)
from .calendar import schedule_of
from .models import Holiday, PersonSchedule, PunchCorrection, WorkSchedule

bp = Blueprint(
    "daily_attendance",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/attendance/static",
)


def _stale() -> str:
    return _("Someone changed this meanwhile; reload the page.")


def _weekday(day: date) -> str:
    return format_date(day, "EEE")


def _form_fields(form: Any, error: ValidationFailed, renamed: dict[str, str] | None = None) -> None:
    """A service's per-field messages onto the form (unknown fields as form errors)."""
    for name, messages in error.fields.items():
        target = (renamed or {}).get(name, name)
        if target in form:
            form[target].errors = [*form[target].errors, *map(str, messages)]
        else:
            form.form_errors.extend(map(str, messages))


def _month_args(today: date) -> tuple[int, int]:
    found = service.parse_month(request.args.get("month"), today)
    if found is None:
        abort(404)
    return found


def _nearby(year: int, month: int) -> dict[str, str]:
    first, last = service.month_bounds(year, month)
    before = first - timedelta(days=1)
    after = last + timedelta(days=1)
    return {
        "previous": service.month_text(before.year, before.month),
        "next": service.month_text(after.year, after.month),
        "current": service.month_text(year, month),
    }


# -- today and the dashboard tile -------------------------------------------------------------


def _today_context(
    form: PunchForm | None = None, message: str = "", tile: bool = False
) -> dict[str, Any]:
    today = local_today()
    row = service.day_of(current_user.id, today)
    schedule = schedule_of(current_user.id)
    if form is None:
        form = PunchForm()
        form.kind.data = "out" if row is not None and row.check_in_at is not None else "in"
    return {
        "today": today,
        "row": row,
        "schedule": schedule,
        "form": form,
        "message": message,
        "clock": service.clock_text,
        "locked": service.is_locked(today),
        "tile": tile,
    }


@bp.get("/attendance/")
@require_permission("daily.attend")
def today() -> Any:
    """Today: the schedule, the punches so far and one big button."""
    return render_template("daily/attendance/today.html", **_today_context())


@bp.get("/attendance/widget")
@require_permission("daily.attend")
def widget_punch() -> Any:
    """The dashboard tile: the same button, loaded by htmx."""
    return vary_on_htmx(
        render_template("daily/attendance/_punch.html", **_today_context(tile=True))
    )


@bp.post("/attendance/punch")
@require_permission("daily.attend")
def punch() -> Any:
    """Check in or out. From the tile (htmx) the tile comes back; from the page, the page."""
    tile = is_htmx_request(boosted=False)
    form = PunchForm()
    if not form.validate():
        template = "daily/attendance/_punch.html" if tile else "daily/attendance/today.html"
        return render_template(template, **_today_context(form, tile=tile)), 422
    try:
        row = service.punch(current_user, form.kind.data, form.note.data or "")
        db.session.commit()
    except ValidationFailed as error:
        db.session.rollback()
        _form_fields(form, error)
        template = "daily/attendance/_punch.html" if tile else "daily/attendance/today.html"
        return render_template(template, **_today_context(form, tile=tile)), 422
    except REFUSALS as error:
        db.session.rollback()
        status, message = refusal_of(error, _stale())
        return refuse(
            status,
            message,
            url_for(".today"),
            lambda: (
                render_template("daily/attendance/today.html", **_today_context(message=message)),
                status,
            ),
        )
    done = (
        _("Checked in at %(time)s.", time=service.clock_text(row.check_in_at))
        if form.kind.data == "in"
        else _("Checked out at %(time)s.", time=service.clock_text(row.check_out_at))
    )
    if tile:
        return render_template(
            "daily/attendance/_punch.html", **_today_context(message=done, tile=True)
        )
    flash(done, "success")
    return redirect(url_for(".today"), 303)


# -- a person's month and the team's month ------------------------------------------------------


@bp.get("/attendance/month")
@require_permission("daily.attend", "daily.view_attendance")
def month() -> Any:
    """One person's month, day by day (their own unless ``person`` is in scope)."""
    year, month_number = _month_args(local_today())
    person_id = id_arg(request.args.get("person")) or current_user.id
    person = service.reachable_person(current_user, person_id)
    if person is None:
        abort(404)
    lines = service.person_month(person, year, month_number)
    counted = [line.row for line in lines if line.row is not None]
    totals = {
        "late": sum(row.status in service.LATE_STATUSES for row in counted),
        "early": sum(row.status == "left_early" for row in counted),
        "missed": sum(row.status == "missed_punch" for row in counted),
        "absent_half_days": sum(row.absence_half_days for row in counted),
        "leave": sum(row.status == "on_leave" for row in counted),
        "points": sum(row.penalty_points for row in counted),
    }
    return render_template(
        "daily/attendance/month.html",
        person=person,
        lines=lines,
        totals=totals,
        record=service.month_record(person.id, year, month_number),
        period=service.period_of(year, month_number),
        nearby=_nearby(year, month_number),
        clock=service.clock_text,
        weekday=_weekday,
        today=local_today(),
    )


@bp.get("/attendance/team")
@require_permission("daily.view_attendance")
def team() -> Any:
    """The team's month, one row per person in scope (one grouped query per page)."""
    year, month_number = _month_args(local_today())
    page = paginate(service.team_people(current_user, year, month_number))
    rows = service.team_rows(list(page.items), year, month_number, current_user)
    export_form = ExportForm(formdata=None, month=service.month_text(year, month_number))
    first, last = service.month_bounds(year, month_number)
    return render_template(
        "daily/attendance/team.html",
        page=page,
        rows=rows,
        nearby=_nearby(year, month_number),
        period=service.period_of(year, month_number),
        month_over=last < local_today(),
        export_form=export_form,
        period_form=PeriodForm(formdata=None),
        year=year,
        month_number=month_number,
        first=first,
    )


@bp.post("/attendance/team/export")
@require_permission("daily.export")
def export() -> Any:
    """The team's month as CSV or Excel, in the viewer's scope, audited."""
    form = ExportForm()
    month = service.parse_month(form.month.data, local_today())
    if not form.validate() or month is None:
        flash(_("Choose CSV or Excel and a month."), "danger")
        return redirect(url_for(".team"), 303)
    rows = service.export_table(current_user, *month)
    db.session.commit()  # the audit row, before the data leaves
    name = f"attendance-{service.month_text(*month)}"
    fmt = form.format.data
    return exports.download(fmt, service.EXPORT_COLUMNS, rows, f"{name}.{fmt}", title=name)


@bp.post("/attendance/periods/<int:year>/<int:month_number>")
@require_permission("daily.manage_attendance")
def period(year: int, month_number: int) -> Any:
    """Review, reopen or lock a finished month."""
    if not (2000 <= year <= 2100 and 1 <= month_number <= 12):
        abort(404)
    back = url_for(".team", month=service.month_text(year, month_number))
    form = PeriodForm()
    if not form.validate():
        flash(_("Choose review, reopen or lock."), "danger")
        return redirect(back, 303)
    try:
        moved = service.move_period(year, month_number, form.action.data, current_user)
        db.session.commit()
    except REFUSALS as error:
        db.session.rollback()
        status, message = refusal_of(error, _stale())
        if not is_htmx_request():
            flash(message, "warning")
            return redirect(back, 303)
        return refuse(status, message, back)
    flash(
        _(
            "%(month)s is now %(status)s.",
            month=service.month_text(year, month_number),
            status=service.label("period_status", moved.status),
        ),
        "success",
    )
    return redirect(back, 303)


# -- missed-punch corrections ---------------------------------------------------------------------


def _corrections_page(form: CorrectionForm, status: int = 200, message: str = "") -> Any:
    statement = (
        sa.select(PunchCorrection)
        .where(PunchCorrection.owner_id == current_user.id)
        .order_by(PunchCorrection.day.desc(), PunchCorrection.id.desc())
    )
    return (
        render_template(
            "daily/attendance/corrections.html",
            form=form,
            page=paginate(statement),
            message=message,
        ),
        status,
    )


@bp.route("/attendance/corrections", methods=["GET", "POST"])
@require_permission("daily.attend")
def corrections() -> Any:
    """My missed-punch corrections and the form to ask for one."""
    if request.method == "GET":
        form = CorrectionForm(formdata=None)
        day = request.args.get("day")
        if day:
            with suppress(ValueError):
                form.day.data = date.fromisoformat(day)
        if request.args.get("kind") in ("in", "out"):
            form.kind.data = request.args["kind"]
        return _corrections_page(form)
    form = CorrectionForm()
    if not form.validate():
        return _corrections_page(form, 422)
    try:
        service.request_correction(
            current_user, form.day.data, form.kind.data, form.time.data, form.reason.data or ""
        )
        db.session.commit()
    except ValidationFailed as error:
        db.session.rollback()
        _form_fields(form, error, {"minute": "time"})
        return _corrections_page(form, 422)
    except REFUSALS as error:
        db.session.rollback()
        status, message = refusal_of(error, _stale())
        return _corrections_page(form, status, message)
    flash(_("Your correction is waiting for approval."), "success")
    return redirect(url_for(".corrections"), 303)


# -- settings (HR) --------------------------------------------------------------------------------


def _settings_page(
    holiday_form: HolidayForm | None = None,
    person_form: PersonScheduleForm | None = None,
    status: int = 200,
) -> Any:
    schedules = list(db.session.scalars(sa.select(WorkSchedule).order_by(WorkSchedule.name)))
    today = local_today()
    holidays = list(
        db.session.scalars(
            sa.select(Holiday)
            .where(Holiday.day >= date(today.year, 1, 1))
            .order_by(Holiday.day)
            .limit(200)
        )
    )
    assigned = db.session.execute(
        sa.select(User.display_name, WorkSchedule.name, PersonSchedule.user_id)
        .join(User, User.id == PersonSchedule.user_id)
        .join(WorkSchedule, WorkSchedule.id == PersonSchedule.schedule_id)
        .order_by(User.display_name)
        .limit(500)
    ).all()
    return (
        render_template(
            "daily/attendance/settings.html",
            schedules=schedules,
            holidays=holidays,
            assigned=assigned,
            holiday_form=holiday_form or HolidayForm(formdata=None),
            person_form=person_form or _person_form(formdata=None),
        ),
        status,
    )


def _person_form(**kwargs: Any) -> PersonScheduleForm:
    form = PersonScheduleForm(**kwargs)
    form.person.choices = people_in_scope(current_user)
    form.schedule.choices = [(0, _("The default schedule"))] + [
        (schedule.id, schedule.name)
        for schedule in db.session.scalars(
            sa.select(WorkSchedule).where(WorkSchedule.active.is_(True)).order_by(WorkSchedule.name)
        )
    ]
    return form


@bp.get("/attendance/settings")
@require_permission("daily.manage_attendance")
def settings() -> Any:
    """Schedules, holidays and who works to which schedule."""
    return _settings_page()


def _schedule_values(form: ScheduleForm) -> dict[str, Any]:
    return {
        "name": form.name.data,
        "kind": form.kind.data,
        "start": form.start.data,
        "end": form.end.data,
        "latest_start": form.latest_start.data,
        "required_minutes": form.required_hours.data,
        "workdays": form.workdays.data,
        "is_default": form.is_default.data,
        "active": form.active.data,
    }


@bp.route("/attendance/settings/schedules/new", methods=["GET", "POST"])
@bp.route("/attendance/settings/schedules/<int:schedule_id>", methods=["GET", "POST"])
@require_permission("daily.manage_attendance")
def schedule(schedule_id: int | None = None) -> Any:
    """Create or change a schedule."""
    found = db.session.get(WorkSchedule, schedule_id) if schedule_id else None
    if schedule_id and found is None:
        abort(404)
    if request.method == "GET":
        form = ScheduleForm(formdata=None)
        if found is not None:
            form.name.data, form.kind.data = found.name, found.kind
            form.start.data, form.end.data = found.start_minute, found.end_minute
            form.latest_start.data = found.latest_start_minute
            form.required_hours.data = found.required_minutes
            form.workdays.data = found.workdays.split(",")
            form.is_default.data, form.active.data = found.is_default, found.active
        else:
            form.start.data, form.end.data = 9 * 60, 18 * 60
            form.workdays.data = ["1", "2", "3", "4", "5"]
        return render_template("daily/attendance/schedule.html", form=form, schedule=found)
    form = ScheduleForm()
    if form.validate():
        try:
            service.save_schedule(found, _schedule_values(form))
            db.session.commit()
            flash(_("Schedule saved."), "success")
            return redirect(url_for(".settings"), 303)
        except ValidationFailed as error:
            db.session.rollback()
            _form_fields(form, error)
    return render_template("daily/attendance/schedule.html", form=form, schedule=found), 422


@bp.post("/attendance/settings/holidays")
@require_permission("daily.manage_attendance")
def add_holiday() -> Any:
    """Add a public holiday or a worked weekend day."""
    form = HolidayForm()
    if not form.validate():
        return _settings_page(holiday_form=form, status=422)
    try:
        service.save_holiday(form.day.data, form.name.data, form.is_workday.data)
        db.session.commit()
    except REFUSALS as error:
        db.session.rollback()
        form.day.errors = [refusal_of(error, _stale())[1]]
        return _settings_page(holiday_form=form, status=409)
    flash(_("Holiday saved."), "success")
    return redirect(url_for(".settings"), 303)


@bp.post("/attendance/settings/holidays/<day>/delete")
@require_permission("daily.manage_attendance")
def delete_holiday(day: str) -> Any:
    """Remove a day from the holiday calendar."""
    try:
        parsed = date.fromisoformat(day)
    except ValueError:
        abort(404)
    try:
        service.delete_holiday(parsed)
        db.session.commit()
    except REFUSALS as error:
        db.session.rollback()
        flash(refusal_of(error, _stale())[1], "warning")
        return redirect(url_for(".settings"), 303)
    flash(_("Holiday removed."), "success")
    return redirect(url_for(".settings"), 303)


@bp.post("/attendance/settings/people")
@require_permission("daily.manage_attendance")
def assign() -> Any:
    """Put a person on a schedule."""
    form = _person_form()
    if not form.validate():
        return _settings_page(person_form=form, status=422)
    try:
        service.assign_schedule(form.person.data, form.schedule.data)
        db.session.commit()
    except ValidationFailed as error:
        db.session.rollback()
        _form_fields(form, error)
        return _settings_page(person_form=form, status=422)
    flash(_("Schedule assigned."), "success")
    return redirect(url_for(".settings"), 303)
