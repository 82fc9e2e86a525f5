"""Approvals in the browser: what waits for me, what I asked for, what I decided, one
request with its explanation and timeline, acting on a step, delegation while away.

Every action is a plain form post answered with a redirect (works without JavaScript);
with htmx (boosted forms) the redirect is followed the same way. A request someone else
decided meanwhile answers 409 with the page as it now stands.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
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
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from ..auth.models import User
from ..extensions import db
from ..listing import paginate
from ..org.services import ValidationFailed
from ..scoping import get_scoped_or_404, scoped
from ..web import is_htmx_request
from . import approvals as service
from .approval_forms import ActionForm, DelegationForm, EndDelegationForm, RequesterForm
from .errors import NotAllowed, StateConflict
from .models import REQUEST_STATUSES, ApprovalRequest, Delegation

bp = Blueprint("approvals", __name__, url_prefix="/approvals")

BOX_LABELS = {
    "waiting": _l("Waiting for me"),
    "mine": _l("My requests"),
    "decided": _l("Decided by me"),
}
REQUEST_STATUS_LABELS = {
    "pending": _l("Pending"),
    "approved": _l("Approved"),
    "rejected": _l("Rejected"),
    "returned": _l("Returned for changes"),
    "cancelled": _l("Cancelled"),
}
STEP_STATUS_LABELS = {
    "waiting": _l("Not yet"),
    "pending": _l("Waiting"),
    "approved": _l("Approved"),
    "rejected": _l("Rejected"),
    "returned": _l("Returned"),
    "skipped": _l("Not needed"),
}
DELEGATION_STATE_LABELS = {
    "coming": _l("Coming"),
    "running": _l("Running"),
    "ended": _l("Ended early"),
    "over": _l("Over"),
}
STATUS_BADGES = {
    "pending": "text-bg-warning",
    "approved": "text-bg-success",
    "rejected": "text-bg-danger",
    "returned": "text-bg-info",
    "cancelled": "text-bg-secondary",
    "waiting": "text-bg-light",
    "skipped": "text-bg-secondary",
}


@bp.app_context_processor
def _approval_labels() -> dict[str, Any]:
    return {
        "approval_status_labels": REQUEST_STATUS_LABELS,
        "approval_step_labels": STEP_STATUS_LABELS,
        "approval_badges": STATUS_BADGES,
    }


def readable_or_404(request_id: int) -> ApprovalRequest:
    """One request the current person may read: their scope, or they are or were one
    of its approvers. Anything else answers 404 (its existence stays hidden)."""
    return service.get_readable_or_404(request_id, current_user)


@bp.get("/")
def index() -> Any:
    """Three boxes: what waits for me, my own requests (by status), what I decided."""
    box = request.args.get("box", "waiting")
    if box not in service.BOXES:
        box = "waiting"
    status = request.args.get("status", "")
    if status not in REQUEST_STATUSES:
        status = ""
    page = paginate(service.box(current_user, box, status or None))
    if box == "waiting":
        waiting_count = page.total  # the page's own count: no second COUNT
    else:
        waiting_count = db.session.scalar(
            sa.select(sa.func.count()).select_from(service.waiting_for(current_user).subquery())
        )
    return render_template(
        "approvals/index.html",
        page=page,
        box=box,
        boxes=BOX_LABELS,
        status=status,
        statuses=REQUEST_STATUSES,
        waiting_count=waiting_count,
        role_labels=service.role_labels(),
        kind_label=service.kind_label,
        current_step=service.current_step,
    )


def _render_detail(
    found: ApprovalRequest,
    form: ActionForm | None = None,
    status: int = 200,
    conflict: str | None = None,
) -> Any:
    acting = service.can_act(found, current_user)
    if acting and form is None:
        form = ActionForm()
    owner_form = RequesterForm() if found.requester_id == current_user.id else None
    return (
        render_template(
            "approvals/detail.html",
            item=found,
            kind=service.kind_label(found.kind),
            steps=service.timeline(found),
            form=form if acting else None,
            owner_form=owner_form,
            conflict=conflict,
            can_explain=current_user.can("core.rules.read"),
            subject_table=service.SUBJECT_TABLE,
        ),
        status,
    )


@bp.get("/<int:request_id>")
def detail(request_id: int) -> Any:
    """One request: what it is about, why it was routed so, where it stands, and the
    decision form when the current step waits for the viewer."""
    return _render_detail(readable_or_404(request_id))


def _conflict(found: ApprovalRequest, error: StateConflict) -> Any:
    """409 with the request as it now stands. A boosted (htmx) form would not swap an
    error page, so it is told to load the page, which shows the message."""
    db.session.rollback()
    db.session.refresh(found)
    message = str(error) or _("This request was already decided.")
    if is_htmx_request():
        flash(message, "warning")
        body, code = _render_detail(found, status=409, conflict=message)
        reply = make_response(body, code)
        reply.headers["HX-Location"] = url_for("approvals.detail", request_id=found.id)
        return reply
    return _render_detail(found, status=409, conflict=message)


def _carry_out(found: ApprovalRequest, action: Callable[[], Any], form: Any = None) -> Any:
    """Do one action on the request and commit it; None when it succeeded, else the
    answer, with nothing written: 422 with the messages (on ``form``'s fields, else
    flashed above the page), 409 with the page as it now stands, or 403."""
    try:
        action()
        db.session.commit()
    except ValidationFailed as error:
        db.session.rollback()
        db.session.refresh(found)
        if form is not None:
            error.show_on(form)
        else:
            for messages in error.fields.values():
                for text in messages:
                    flash(text, "danger")
        return _render_detail(found, form, status=422)
    except StateConflict as error:
        return _conflict(found, error)
    except NotAllowed:
        db.session.rollback()
        abort(403)
    except Exception:
        db.session.rollback()
        raise
    return None


@bp.post("/<int:request_id>/act")
def act(request_id: int) -> Any:
    """Approve, reject or return the step waiting for the viewer."""
    found = readable_or_404(request_id)
    form = ActionForm()
    if not form.validate():
        if found.status != "pending":
            return _conflict(found, StateConflict(_("This request was already decided.")))
        return _render_detail(found, form, status=422)
    comment = form.comment.data or ""
    answer = _carry_out(
        found, lambda: service.act(found, current_user, form.action.data, comment), form
    )
    if answer is not None:
        return answer
    messages = {
        "approve": _("You approved it."),
        "reject": _("You rejected it."),
        "return": _("You returned it for changes."),
    }
    flash(messages[form.action.data], "success")
    return redirect(url_for("approvals.detail", request_id=found.id), 303)


@bp.post("/<int:request_id>/own")
def own_action(request_id: int) -> Any:
    """The requester sends a returned request again or withdraws a pending one."""
    found = readable_or_404(request_id)
    form = RequesterForm()
    if not form.validate():
        return _render_detail(found, status=422)
    if form.action.data == "resubmit":
        answer = _carry_out(found, lambda: service.resubmit(found, current_user))
        message = _("Sent again.")
    else:
        answer = _carry_out(found, lambda: service.cancel(found, current_user))
        message = _("The request was cancelled.")
    if answer is not None:
        return answer
    flash(message, "success")
    return redirect(url_for("approvals.detail", request_id=found.id), 303)


# -- delegation while away ---------------------------------------------------------------


def _delegate_choices() -> list[tuple[int, str]]:
    """People one may delegate to: those in one's own read scope and the leaders above
    (a team member standing in, or one's own supervisor), never oneself."""
    statement = (
        scoped(sa.select(User), User, current_user)
        .where(User.active.is_(True), User.id != current_user.id)
        .order_by(User.display_name, User.id)
        .limit(1000)
    )
    people = {person.id: person for person in db.session.scalars(statement)}
    for leader in service.leader_chain(current_user):
        people.setdefault(leader.id, leader)
    ordered = sorted(people.values(), key=lambda p: (p.display_name.lower(), p.id))
    return [(person.id, f"{person.display_name} ({person.username})") for person in ordered]


def _render_delegations(form: DelegationForm, status: int = 200) -> Any:
    page = paginate(service.delegations_of(current_user))
    given_to_me = list(db.session.scalars(service.delegations_to(current_user).limit(50)))
    return (
        render_template(
            "approvals/delegations.html",
            form=form,
            page=page,
            given_to_me=given_to_me,
            end_form=EndDelegationForm(),
            state_of=service.delegation_state,
            state_labels=DELEGATION_STATE_LABELS,
        ),
        status,
    )


@bp.route("/delegations", methods=["GET", "POST"])
def delegations() -> Any:
    """Delegation while away: who acts on my approvals when, and who asked me to."""
    form = DelegationForm()
    form.delegate_id.choices = [(0, _("Choose a person"))] + _delegate_choices()
    if request.method == "GET":
        return _render_delegations(form)
    if form.validate():
        delegate = db.session.get(User, form.delegate_id.data)
        try:
            service.set_delegation(
                current_user,
                delegate,
                form.starts_on.data,
                form.ends_on.data,
                form.reason.data or "",
            )
            db.session.commit()
        except ValidationFailed as error:
            db.session.rollback()
            error.show_on(form)
            return _render_delegations(form, 422)
        flash(
            _(
                "%(name)s acts on your approvals from %(start)s to %(end)s.",
                name=delegate.display_name,
                start=form.starts_on.data.isoformat(),
                end=form.ends_on.data.isoformat(),
            ),
            "success",
        )
        return redirect(url_for("approvals.delegations"), 303)
    return _render_delegations(form, 422)


@bp.post("/delegations/<int:delegation_id>/end")
def end_delegation(delegation_id: int) -> Any:
    """End one's own delegation early (back from leave) or withdraw a coming one."""
    form = EndDelegationForm()
    found = get_scoped_or_404(Delegation, delegation_id, current_user)
    if not form.validate():
        abort(400)
    try:
        service.end_delegation(found, current_user)
        db.session.commit()
    except NotAllowed:
        db.session.rollback()
        abort(403)
    except StateConflict as error:
        db.session.rollback()
        flash(str(error), "warning")
        return redirect(url_for("approvals.delegations"), 303)
    flash(_("The delegation has ended."), "success")
    return redirect(url_for("approvals.delegations"), 303)
