"""Loop items: raise, read, act on one item, its history and evidence (P1.3.2).

``/loops/`` is the register of every item the person may see (their own, their team's,
everything for a manager) with filters; the personal inbox is ``/work/``. Every page
works without JavaScript (plain form posts, redirect after success, the form again with
its messages and 422 on bad input); with htmx an action swaps only the item's panel.
A conflict (someone acted first, 409) or a refusal (403) is explained on the item's page.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user

from ..auth.models import User
from ..extensions import db
from ..files import send_stored
from ..listing import MAX_ID, paginate
from ..models import as_utc, utcnow
from ..org.services import ValidationFailed
from ..scoping import people_in_scope
from ..web import is_htmx_request, refuse
from . import service
from .errors import REFUSALS, refusal_of
from .forms import ACTION_FORMS, LoopRaiseForm
from .models import LOOP_STATUSES, PRIORITIES, LoopAttachment, LoopItem

bp = Blueprint("loops", __name__, url_prefix="/loops")

PANEL = "loop-panel"
# Service field names -> form field names (the forms, and the API bodies validated by
# the same forms, use the words a person sees).
FORM_FIELD = {
    "owner": "owner_id",
    "due_at": "due_on",
    "closure_note": "note",
    "reason": "note",
    "subject": "subject_table",
}


def _conflict_text() -> str:
    return _("Someone changed this item meanwhile. Here is how it stands now; try again if needed.")


@bp.app_template_global()
def loops_for_subject(table: str, subject_id: Any, limit: int = 20) -> list[LoopItem]:
    """For ``loops/_subject_loops.html``: a record's loop items the viewer may read."""
    if not current_user.is_authenticated:
        return []
    return service.loops_for_subject(table, subject_id, current_user, limit=limit)


@bp.app_template_global()
def loop_label(kind: str, value: str) -> str:
    """How a status, priority, action, history entry or type reads."""
    tables = {
        "status": service.STATUS_LABELS,
        "priority": service.PRIORITY_LABELS,
        "action": service.ACTION_LABELS,
        "event": service.EVENT_LABELS,
    }
    if kind == "type":
        declared = current_app.extensions["portal"].loop_types.get(value)
        return str(declared.label) if declared else value
    return str(tables.get(kind, {}).get(value, value))


@bp.app_template_global()
def loop_overdue(item: LoopItem) -> bool:
    """Open or started and past its due date."""
    return service.is_overdue(item)


def _wants_panel() -> bool:
    return is_htmx_request() and request.headers.get("HX-Target") == PANEL


# -- the register ----------------------------------------------------------------


@bp.get("/")
def index() -> Any:
    """Every loop item the person may see, filtered, due first."""
    statement = service.visible_loops(sa.select(LoopItem), current_user)
    statement = service.filter_loops(statement, request.args)
    statement = statement.order_by(LoopItem.due_at, LoopItem.id)
    page = paginate(statement)
    people = people_in_scope(current_user)
    declared = current_app.extensions["portal"].loop_types.values()
    return render_template(
        "loops/index.html",
        page=page,
        people=people,
        types=sorted(declared, key=lambda t: str(t.label)),
        clauses=sorted({t.clause for t in declared if t.clause}),
        statuses=LOOP_STATUSES,
        priorities=PRIORITIES,
        args=request.args,
        now=utcnow(),
    )


# -- raising by hand -------------------------------------------------------------------


@bp.route("/new", methods=["GET", "POST"])
def new() -> Any:
    """Raise an item by hand: for oneself or for someone one is responsible for."""
    form = LoopRaiseForm(actor=current_user)
    if request.method == "GET":
        form.owner_id.data = current_user.id
        form.type.data = request.args.get("type", "core.action")
        for name in ("subject_table", "subject_id", "subject_link"):
            getattr(form, name).data = request.args.get(name, "")[:500]
    if not form.is_submitted():
        return render_template("loops/new.html", form=form)
    if form.validate():
        try:
            item = raise_from_form(form, current_user)
            db.session.commit()
        except ValidationFailed as error:
            db.session.rollback()
            error.show_on(form, FORM_FIELD)
        else:
            flash(_("The item was raised."), "success")
            return redirect(url_for("loops.detail", loop_id=item.id), 303)
    return render_template("loops/new.html", form=form), 422


def raise_from_form(form: LoopRaiseForm, actor: User) -> LoopItem:
    """Raise an item from a validated raise form (pages and API)."""
    subject = None
    if form.subject_table.data and form.subject_id.data:
        subject = (form.subject_table.data, form.subject_id.data)
    return service.raise_loop(
        form.type.data,
        form.title.data,
        form.owner_id.data,
        raised_by=actor,
        due_at=service.due_at_from_date(form.due_on.data) if form.due_on.data else None,
        priority=form.priority.data or "normal",
        subject=subject,
        subject_link=form.subject_link.data or "",
        description=form.description.data or "",
    )


# -- one item ------------------------------------------------------------------------------


def _item_or_404(loop_id: int) -> LoopItem:
    item = service.get_loop(loop_id, current_user)
    if item is None:
        abort(404)
    return item


def _panel_context(item: LoopItem, submitted: tuple[str, Any] | None = None) -> dict[str, Any]:
    """Everything the item's panel shows: history, evidence, and a form per action the
    viewer may take (the one just submitted keeps its input and messages)."""
    allowed = service.allowed_actions(item, current_user)
    forms = {}
    for action in allowed:
        if submitted is not None and submitted[0] == action:
            forms[action] = submitted[1]
            continue
        form_class = ACTION_FORMS[action]
        kwargs = {"actor": current_user} if action == "reassign" else {}
        forms[action] = form_class(formdata=None, prefix=action, **kwargs)
    for form in forms.values():
        form.version.data = str(item.lock_version)
    events = service.history_of(item)
    attachments = list(
        db.session.scalars(
            sa.select(LoopAttachment)
            .where(LoopAttachment.loop_id == item.id)
            .order_by(LoopAttachment.uploaded_at, LoopAttachment.id)
        )
    )
    people_ids = {
        value
        for event in events
        for key in ("owner_id", "from_owner_id", "to_owner_id")
        if isinstance(value := (event.details or {}).get(key), int)
    }
    for event in events:
        people_ids.update(
            p for p in (event.details or {}).get("notified", []) if isinstance(p, int)
        )
    # The people the history names, by name only (one query, however long the history).
    people = (
        {
            row.id: row
            for row in db.session.execute(
                sa.select(User.id, User.display_name).where(User.id.in_(people_ids))
            )
        }
        if people_ids
        else {}
    )
    return {
        "item": item,
        "forms": forms,
        "allowed": allowed,
        "events": events,
        "attachments": attachments,
        "people": people,
        "verifier": service.verifier_of(item) if item.status == "done" else None,
        "overdue": service.is_overdue(item),
        "due_at": as_utc(item.due_at),
        "can_read_rules": current_user.can("core.rules.read"),
    }


def _render(item: LoopItem, status: int = 200, **extra: Any) -> Any:
    """The item's page, or only its panel when htmx asked for that."""
    context = _panel_context(item, extra.pop("submitted", None))
    context.update(extra)
    template = "loops/_panel.html" if _wants_panel() else "loops/detail.html"
    return render_template(template, **context), status


@bp.get("/<int:loop_id>")
def detail(loop_id: int) -> Any:
    """One item: subject, status, due date, history, evidence, and what one may do."""
    return _render(_item_or_404(loop_id))


def _refused(item_id: int, status: int, message: str) -> Any:
    """A 403 or 409 the person understands, on the item's page (``portal.web.refuse``)."""
    return refuse(
        status,
        message,
        url_for("loops.detail", loop_id=item_id),
        lambda: _render(_item_or_404(item_id), status, problem=message),
    )


@bp.post("/<int:loop_id>/<action>")
def act(loop_id: int, action: str) -> Any:
    """Take one action (start, close, verify, reopen, comment, reassign) on the item."""
    if action not in ACTION_FORMS:
        abort(404)
    item = _item_or_404(loop_id)
    try:
        service.check_action(item, current_user, action)
    except REFUSALS as error:
        return _refused(loop_id, *refusal_of(error, _conflict_text()))
    kwargs = {"actor": current_user} if action == "reassign" else {}
    form = ACTION_FORMS[action](prefix=action, **kwargs)
    if not form.validate():
        return _render(item, 422, submitted=(action, form))
    if form.version.data and form.version.data != str(item.lock_version):
        return _refused(loop_id, 409, _conflict_text())
    due_on = getattr(form, "due_on", None)
    owner = getattr(form, "owner_id", None)
    try:
        service.act(
            item,
            current_user,
            action,
            note=getattr(getattr(form, "note", None), "data", "") or "",
            evidence=getattr(getattr(form, "evidence", None), "data", "") or "",
            files=request.files.getlist(f"{action}-files") if action == "close" else (),
            new_owner=owner.data if owner is not None else None,
            due_at=service.due_at_from_date(due_on.data) if due_on and due_on.data else None,
        )
        db.session.commit()
    except ValidationFailed as error:
        db.session.rollback()
        error.show_on(form, FORM_FIELD)
        return _render(_item_or_404(loop_id), 422, submitted=(action, form))
    except REFUSALS as error:
        db.session.rollback()
        return _refused(loop_id, *refusal_of(error, _conflict_text()))
    message = _DONE_MESSAGES[action]()
    if _wants_panel():
        item = service.get_loop(loop_id, current_user)
        if item is None:  # given away beyond the actor's own read scope
            response = make_response("", 200)
            flash(message, "success")
            response.headers["HX-Redirect"] = url_for("loops.index")
            return response
        return _render(item, 200, message=message)
    flash(message, "success")
    if service.get_loop(loop_id, current_user) is None:
        return redirect(url_for("loops.index"), 303)
    return redirect(url_for("loops.detail", loop_id=loop_id), 303)


_DONE_MESSAGES = {
    "start": lambda: _("The item is in progress."),
    "close": lambda: _("The item is closed."),
    "verify": lambda: _("The item is verified."),
    "reopen": lambda: _("The item was reopened."),
    "comment": lambda: _("Your comment was added."),
    "reassign": lambda: _("The item was given to its new owner."),
}


@bp.get("/<int:loop_id>/attachments/<int:attachment_id>")
def attachment(loop_id: int, attachment_id: int) -> Any:
    """Download an evidence file: only for those who may read its item (404 otherwise)."""
    item = _item_or_404(loop_id)
    return send_attachment(item, attachment_id)


def send_attachment(item: LoopItem, attachment_id: int) -> Any:
    """The stored file of one of the item's attachments, as a download (pages, API)."""
    row = db.session.get(LoopAttachment, attachment_id) if 0 < attachment_id <= MAX_ID else None
    if row is None or row.loop_id != item.id:
        abort(404)
    return send_stored(service.ATTACHMENT_AREA, row.stored_name, row.content_type, row.filename)
