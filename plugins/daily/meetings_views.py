"""Pages of team meetings (P6.2): the list of meetings one may read, calling and
changing one, its page (agenda, materials, resolutions), and running it (attendance,
minutes, resolutions, publishing the minutes).

Every page works without JavaScript (plain form posts, redirect after success, the page
again with the messages and 422 on bad input); attendance marks and new resolutions
also answer htmx with just the changed part. Meetings one may not read are not found
(404); readable but not one's to run is 403.
"""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    abort,
    flash,
    make_response,
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
from portal.files import send_stored
from portal.listing import id_arg, paginate
from portal.loops.errors import REFUSALS, refusal_of
from portal.models import as_utc, utcnow
from portal.org.services import ValidationFailed
from portal.web import is_htmx_request, refuse, vary_on_htmx

from . import meetings as service
from .meetings_forms import (
    AttendanceForm,
    ConfirmForm,
    MaterialForm,
    MeetingForm,
    MinutesForm,
    ResolutionForm,
)
from .models import MEETING_CADENCES, MEETING_STATUSES, Meeting

bp = Blueprint("daily_meetings", __name__, template_folder="templates")

BLANK_AGENDA_ROWS = 3


def _stale_text() -> str:
    return _("Someone changed this meeting meanwhile. Here is how it stands now; try again.")


def _refused(meeting_id: int, status: int, message: str, endpoint: str = ".detail") -> Any:
    """A 403 or 409 the person understands, on the meeting's page."""

    def page() -> Any:
        db.session.rollback()
        meeting = service.get_meeting_or_404(meeting_id, current_user)
        return render_template(
            "daily/meetings/detail.html", **_detail_context(meeting, problem=message)
        ), status

    return refuse(status, message, url_for(endpoint, meeting_id=meeting_id), page)


def _stale(meeting: Meeting, form: Any) -> bool:
    sent = (form.version.data or "").strip()
    return bool(sent) and sent != str(meeting.version_id)


# -- the list -----------------------------------------------------------------------------


@bp.get("/meetings/")
@require_permission("daily.meet")
def index() -> Any:
    """Meetings the viewer may read: upcoming first by default, or past; filters by
    team, kind and status."""
    now = utcnow()
    args = request.args.to_dict()
    args.setdefault("when", "upcoming")
    statement = service.filter_meetings(service.meetings_for(current_user), args, now)
    page = paginate(statement)
    ids = [meeting.id for meeting in page.items]
    led_units = service.unit_choices(current_user)
    return vary_on_htmx(
        render_template(
            "daily/meetings/index.html",
            page=page,
            args=args,
            units=service.unit_names(meeting.unit_id for meeting in page.items),
            my_status=service.my_statuses(ids, current_user),
            unit_filter=led_units,
            cadences=MEETING_CADENCES,
            statuses=MEETING_STATUSES,
            may_call=current_user.can("daily.run_meetings") and bool(led_units),
        )
    )


# -- calling and changing -----------------------------------------------------------------


def _agenda_rows() -> list[dict[str, Any]]:
    """The topic rows a form posted (``agenda-N-title``, ``agenda-N-presenter_id``)."""
    rows = []
    for index in range(service.MAX_AGENDA_ITEMS + 10):
        title = request.form.get(f"agenda-{index}-title")
        if title is None:
            continue
        rows.append(
            {"title": title, "presenter_id": request.form.get(f"agenda-{index}-presenter_id")}
        )
    return rows


def _form_page(
    form: MeetingForm, meeting: Meeting | None, rows: list[dict[str, Any]], status: int = 200
) -> Any:
    blanks = [{"title": "", "presenter_id": None}] * BLANK_AGENDA_ROWS
    context = {
        "form": form,
        "meeting": meeting,
        "rows": list(rows) + blanks,
        "carried": [item for item in meeting.agenda if item.source == "carried"] if meeting else [],
        "agenda_errors": form.agenda_errors if hasattr(form, "agenda_errors") else [],
    }
    return render_template("daily/meetings/form.html", **context), status


def _meeting_form(meeting: Meeting | None = None, **kwargs: Any) -> MeetingForm:
    unit_id = id_arg(request.form.get("unit_id") or request.args.get("unit_id"))
    if unit_id is None and meeting is not None:
        unit_id = meeting.unit_id
    current = [row.user_id for row in service.attendees_of(meeting)] if meeting else []
    units = service.unit_choices(current_user)
    if meeting is not None and meeting.unit_id not in {uid for uid, _n in units}:
        units.append(
            (meeting.unit_id, service.unit_names([meeting.unit_id]).get(meeting.unit_id, ""))
        )
    people = service.attendee_choices(current_user, unit_id, current)
    return MeetingForm(units=units, people=people, **kwargs)


@bp.route("/meetings/new", methods=["GET", "POST"])
@require_permission("daily.run_meetings")
def new() -> Any:
    """Call a meeting of a team one leads. ``?unit_id=`` chooses the team first, which
    fills in its people as attendees."""
    units = service.unit_choices(current_user)
    if not units:
        abort(403, description=_("You lead no team to call a meeting for."))
    if request.method == "GET":
        unit_id = id_arg(request.args.get("unit_id"))
        if unit_id not in {uid for uid, _n in units}:
            unit_id = units[0][0]  # the highest team one leads (tree order)
        form = MeetingForm(units=units, people=service.attendee_choices(current_user, unit_id))
        if unit_id is not None:
            form.unit_id.data = unit_id
            form.attendee_ids.data = service.default_attendee_ids(current_user, unit_id)
        if request.args.get("cadence") in MEETING_CADENCES:
            form.cadence.data = request.args["cadence"]
        return _form_page(form, None, [])
    form = _meeting_form()
    rows = _agenda_rows()
    if request.form.get("refresh"):  # the team changed without JavaScript: its people
        unit_id = id_arg(request.form.get("unit_id"))
        if unit_id:
            form.attendee_ids.data = service.default_attendee_ids(current_user, unit_id)
        return _form_page(form, None, rows)
    if form.validate():
        try:
            meeting = service.create_meeting({**form.values(), "agenda": rows}, current_user)
            db.session.commit()
        except ValidationFailed as error:
            db.session.rollback()
            form.agenda_errors = error.fields.pop("agenda", [])
            error.show_on(form)
        except REFUSALS as error:
            db.session.rollback()
            abort(refusal_of(error, _stale_text())[0])
        else:
            flash(_("The meeting is called; the attendees are told."), "success")
            return redirect(url_for(".detail", meeting_id=meeting.id), 303)
    return _form_page(form, None, rows, 422)


@bp.route("/meetings/<int:meeting_id>/edit", methods=["GET", "POST"])
@require_permission("daily.run_meetings")
def edit(meeting_id: int) -> Any:
    """Change a planned meeting: time, place, attendees, topics."""
    meeting = service.get_meeting_or_404(meeting_id, current_user, "write")
    if meeting.status not in service.EDITABLE:
        return _refused(meeting_id, 409, _("Only a planned meeting can be changed."))
    topics = [item for item in meeting.agenda if item.source == "topic"]
    if request.method == "GET":
        form = _meeting_form(meeting, obj=meeting)
        form.starts_at.data = as_utc(meeting.starts_at)  # SQLite hands back naive UTC
        form.ends_at.data = as_utc(meeting.ends_at)
        form.attendee_ids.data = [row.user_id for row in service.attendees_of(meeting)]
        form.version.data = str(meeting.version_id)
        rows = [{"title": item.title, "presenter_id": item.presenter_id} for item in topics]
        return _form_page(form, meeting, rows)
    form = _meeting_form(meeting)
    rows = _agenda_rows()
    if request.form.get("refresh"):  # the team changed without JavaScript: its people
        unit_id = id_arg(request.form.get("unit_id"))
        if unit_id:
            form.attendee_ids.data = service.default_attendee_ids(current_user, unit_id)
        return _form_page(form, meeting, rows)
    if _stale(meeting, form):
        return _refused(meeting_id, 409, _stale_text(), ".edit")
    if form.validate():
        try:
            service.update_meeting(meeting, {**form.values(), "agenda": rows}, current_user)
            db.session.commit()
        except ValidationFailed as error:
            db.session.rollback()
            form.agenda_errors = error.fields.pop("agenda", [])
            error.show_on(form)
        except REFUSALS as error:
            return _refused(meeting_id, *refusal_of(error, _stale_text()))
        else:
            flash(_("The meeting is changed."), "success")
            return redirect(url_for(".detail", meeting_id=meeting_id), 303)
    meeting = service.get_meeting_or_404(meeting_id, current_user)
    return _form_page(form, meeting, rows, 422)


@bp.post("/meetings/<int:meeting_id>/cancel")
@require_permission("daily.run_meetings")
def cancel(meeting_id: int) -> Any:
    """Call a planned meeting off."""
    meeting = service.get_meeting_or_404(meeting_id, current_user, "write")
    form = ConfirmForm()
    if not form.validate():
        abort(400)
    try:
        if _stale(meeting, form):
            raise StaleDataError()
        service.cancel_meeting(meeting, current_user)
        db.session.commit()
    except REFUSALS as error:
        return _refused(meeting_id, *refusal_of(error, _stale_text()))
    flash(_("The meeting is cancelled; the attendees are told."), "success")
    return redirect(url_for(".detail", meeting_id=meeting_id), 303)


# -- one meeting ---------------------------------------------------------------------------


def _detail_context(meeting: Meeting, problem: str = "", **forms: Any) -> dict[str, Any]:
    may_run = service.may_run(meeting, current_user)
    agenda = list(meeting.agenda)
    attendees = service.attendees_of(meeting)
    resolutions = service.resolutions_of(meeting)
    items = [(item.id, item.title) for item in agenda]
    people = [(row.user_id, row.user.display_name) for row in attendees]
    if "resolution_form" not in forms and may_run:
        form = ResolutionForm(formdata=None, people=people)
        forms["resolution_form"] = form
    if "material_form" not in forms:
        forms["material_form"] = MaterialForm(formdata=None, items=items)
    if "minutes_form" not in forms and may_run:
        form = MinutesForm(formdata=None, obj=meeting)
        form.version.data = str(meeting.version_id)
        forms["minutes_form"] = form
    confirm = ConfirmForm(formdata=None)
    confirm.version.data = str(meeting.version_id)
    carried = service.resolutions_by_id(item.resolution_id for item in agenda)
    materials = service.materials_of(meeting)
    by_item: dict[int | None, list[Any]] = {}
    for material in materials:
        by_item.setdefault(material.agenda_item_id, []).append(material)
    return {
        "meeting": meeting,
        "unit_name": service.unit_names([meeting.unit_id]).get(meeting.unit_id or 0, ""),
        "agenda": agenda,
        "attendees": attendees,
        "resolutions": resolutions,
        "carried": carried,
        "materials": by_item,
        "presenters": service.people_names(item.presenter_id for item in agenda),
        "may_run": may_run,
        "may_upload": service.may_upload(meeting, current_user),
        "runnable": meeting.status in service.RUNNABLE,
        "editable": meeting.status in service.EDITABLE,
        "attendance_form": AttendanceForm(formdata=None),
        "confirm": confirm,
        "problem": problem,
        "materials_late": meeting.materials_due_at is not None
        and utcnow() > as_utc(meeting.materials_due_at),
        "people": people,
        **forms,
    }


@bp.get("/meetings/<int:meeting_id>")
@require_permission("daily.meet")
def detail(meeting_id: int) -> Any:
    """The meeting: time, place, agenda (with carried resolutions), materials,
    attendance, minutes and resolutions."""
    meeting = service.get_meeting_or_404(meeting_id, current_user)
    if meeting.status == "planned" and service.carry_open_resolutions(meeting):
        db.session.commit()
        meeting = service.get_meeting_or_404(meeting_id, current_user)
    return render_template("daily/meetings/detail.html", **_detail_context(meeting))


@bp.get("/meetings/<int:meeting_id>/run")
@require_permission("daily.run_meetings")
def run(meeting_id: int) -> Any:
    """Running the meeting: attendance, minutes per item and overall, resolutions,
    publishing the minutes."""
    meeting = service.get_meeting_or_404(meeting_id, current_user, "write")
    if meeting.status not in service.RUNNABLE:
        return redirect(url_for(".detail", meeting_id=meeting_id), 303)
    return render_template("daily/meetings/run.html", **_detail_context(meeting))


def _run_page(meeting_id: int, status: int, **forms: Any) -> Any:
    meeting = service.get_meeting_or_404(meeting_id, current_user)
    return render_template("daily/meetings/run.html", **_detail_context(meeting, **forms)), status


@bp.post("/meetings/<int:meeting_id>/attendance/<int:user_id>")
@require_permission("daily.run_meetings")
def mark(meeting_id: int, user_id: int) -> Any:
    """Mark one attendee; htmx gets the row back."""
    meeting = service.get_meeting_or_404(meeting_id, current_user, "write")
    form = AttendanceForm()
    status = 200
    message = ""
    try:
        if not form.validate():
            raise ValidationFailed(
                {name: list(errors) for name, errors in form.errors.items()} or {"status": []}
            )
        service.mark_attendance(meeting, current_user, user_id, form.status.data, form.note.data)
        db.session.commit()
    except ValidationFailed as error:
        db.session.rollback()
        status = 422
        message = "; ".join(str(m) for messages in error.fields.values() for m in messages)
    except REFUSALS as error:
        return _refused(meeting_id, *refusal_of(error, _stale_text()), ".run")
    if is_htmx_request(boosted=False):
        meeting = service.get_meeting_or_404(meeting_id, current_user)
        row = next((a for a in service.attendees_of(meeting) if a.user_id == user_id), None)
        if row is None:
            abort(404)
        body = render_template(
            "daily/meetings/_attendee_row.html",
            meeting=meeting,
            row=row,
            runnable=True,
            may_run=True,
            attendance_form=AttendanceForm(formdata=None),
            row_problem=message,
        )
        return vary_on_htmx(make_response(body, status))
    if status != 200:
        flash(message or _("Choose present, late, absent or excused."), "danger")
        return _run_page(meeting_id, 422)
    return redirect(url_for(".run", meeting_id=meeting_id) + "#attendance-section", 303)


@bp.post("/meetings/<int:meeting_id>/minutes")
@require_permission("daily.run_meetings")
def minutes(meeting_id: int) -> Any:
    """Save the minutes (overall and per agenda item)."""
    meeting = service.get_meeting_or_404(meeting_id, current_user, "write")
    form = MinutesForm()
    notes: dict[int, str] = {}
    for item in meeting.agenda:
        text = request.form.get(f"item-{item.id}-notes")
        if text is not None:
            notes[item.id] = text
    if form.validate():
        try:
            service.save_minutes(meeting, current_user, form.minutes.data or "", notes)
            db.session.commit()
        except ValidationFailed as error:
            db.session.rollback()
            error.show_on(form)
        except REFUSALS as error:
            return _refused(meeting_id, *refusal_of(error, _stale_text()), ".run")
        else:
            flash(_("The minutes are saved."), "success")
            return redirect(url_for(".run", meeting_id=meeting_id) + "#minutes-section", 303)
    return _run_page(meeting_id, 422, minutes_form=form)


@bp.post("/meetings/<int:meeting_id>/resolutions")
@require_permission("daily.run_meetings")
def add_resolution(meeting_id: int) -> Any:
    """Record a resolution (and its loop item); htmx gets the resolutions panel back."""
    meeting = service.get_meeting_or_404(meeting_id, current_user, "write")
    people = [(row.user_id, row.user.display_name) for row in service.attendees_of(meeting)]
    form = ResolutionForm(people=people)
    status = 200
    try:
        if not form.validate():
            raise ValidationFailed({})
        service.add_resolution(
            meeting, current_user, form.text.data or "", form.owner_id.data, form.due_on.data
        )
        db.session.commit()
        form = ResolutionForm(formdata=None, people=people)
    except ValidationFailed as error:
        db.session.rollback()
        error.show_on(form)
        status = 422
    except REFUSALS as error:
        return _refused(meeting_id, *refusal_of(error, _stale_text()), ".run")
    if is_htmx_request(boosted=False):
        meeting = service.get_meeting_or_404(meeting_id, current_user)
        body = render_template(
            "daily/meetings/_resolutions.html",
            meeting=meeting,
            resolutions=service.resolutions_of(meeting),
            resolution_form=form,
            may_run=True,
            runnable=meeting.status in service.RUNNABLE,
        )
        return vary_on_htmx(make_response(body, status))
    if status != 200:
        return _run_page(meeting_id, 422, resolution_form=form)
    flash(_("The resolution is recorded and given to its owner."), "success")
    return redirect(url_for(".run", meeting_id=meeting_id) + "#resolutions-panel", 303)


@bp.post("/meetings/<int:meeting_id>/close")
@require_permission("daily.run_meetings")
def close(meeting_id: int) -> Any:
    """Publish the minutes: the meeting is locked and the attendees are told."""
    meeting = service.get_meeting_or_404(meeting_id, current_user, "write")
    form = ConfirmForm()
    if not form.validate():
        abort(400)
    try:
        service.close_meeting(meeting, current_user)
        db.session.commit()
    except ValidationFailed as error:
        db.session.rollback()
        message = "; ".join(str(m) for messages in error.fields.values() for m in messages)
        return _refused(meeting_id, 409, message, ".run")
    except REFUSALS as error:
        return _refused(meeting_id, *refusal_of(error, _stale_text()))
    flash(_("The minutes are published; the attendees are told."), "success")
    return redirect(url_for(".detail", meeting_id=meeting_id), 303)


# -- materials -----------------------------------------------------------------------------


@bp.post("/meetings/<int:meeting_id>/materials")
@require_permission("daily.meet")
def upload(meeting_id: int) -> Any:
    """Upload materials (attendees and the organiser). After the deadline a file is
    kept and marked late, unless the rule file says to refuse it."""
    meeting = service.get_meeting_or_404(meeting_id, current_user)
    items = [(item.id, item.title) for item in meeting.agenda]
    form = MaterialForm(items=items)
    if form.validate():
        try:
            stored = service.upload_materials(
                meeting,
                current_user,
                request.files.getlist("files"),
                form.agenda_item_id.data,
            )
            db.session.commit()
        except ValidationFailed as error:
            db.session.rollback()
            error.show_on(form)
        except REFUSALS as error:
            return _refused(meeting_id, *refusal_of(error, _stale_text()))
        else:
            if any(material.late for material in stored):
                flash(_("Uploaded after the deadline: the files are marked late."), "warning")
            else:
                flash(_("The materials are uploaded."), "success")
            return redirect(url_for(".detail", meeting_id=meeting_id) + "#materials-section", 303)
    meeting = service.get_meeting_or_404(meeting_id, current_user)
    return render_template(
        "daily/meetings/detail.html", **_detail_context(meeting, material_form=form)
    ), 422


@bp.get("/meetings/<int:meeting_id>/materials/<int:material_id>")
@require_permission("daily.meet")
def download(meeting_id: int, material_id: int) -> Any:
    """A file of a meeting one may read."""
    meeting = service.get_meeting_or_404(meeting_id, current_user)
    material = service.get_material_or_404(meeting, material_id)
    return send_stored(
        service.MATERIALS_AREA, material.stored_name, material.content_type, material.filename
    )


@bp.post("/meetings/<int:meeting_id>/materials/<int:material_id>/delete")
@require_permission("daily.meet")
def delete_material(meeting_id: int, material_id: int) -> Any:
    """Remove a file (its uploader or the organiser, before the minutes are out)."""
    meeting = service.get_meeting_or_404(meeting_id, current_user)
    material = service.get_material_or_404(meeting, material_id)
    if not ConfirmForm().validate():
        abort(400)
    try:
        service.delete_material(meeting, material, current_user)
        db.session.commit()
    except REFUSALS as error:
        return _refused(meeting_id, *refusal_of(error, _stale_text()))
    flash(_("The file is removed."), "success")
    return redirect(url_for(".detail", meeting_id=meeting_id) + "#materials-section", 303)
