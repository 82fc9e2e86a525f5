"""Pages of the expense claims (P6.4): my claims and the quick one-line claim (a taxi
fare and the photo of its receipt, from a phone), a claim's lines (added and removed
with htmx, plain posts without it), submission, the approval's progress, payment by
finance, and receipts served only to who may read the claim."""

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
from werkzeug.exceptions import RequestEntityTooLarge

from portal.auth.permissions import require_permission
from portal.extensions import db
from portal.files import send_stored
from portal.links import describe_links, kind_label, link_url, search_links
from portal.listing import id_arg, paginate
from portal.loops.errors import NotAllowed, StateConflict
from portal.loops.service import local_today
from portal.org.services import ValidationFailed
from portal.web import is_htmx_request, vary_on_htmx

from . import expenses as service
from .expenses_forms import ActionForm, ClaimForm, LineForm, PayForm, QuickClaimForm
from .models import ExpenseClaim, ExpenseLine

bp = Blueprint(
    "daily_expenses",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/expenses/static",
)

STATUS_BADGES = {
    "draft": "text-bg-secondary",
    "pending": "text-bg-warning",
    "approved": "text-bg-info",
    "rejected": "text-bg-danger",
    "paid": "text-bg-success",
    "cancelled": "text-bg-light",
}
DECISION_BADGES = {
    "approve": "text-bg-success",
    "escalate": "text-bg-warning",
    "reject": "text-bg-danger",
}
STEPS = ("draft", "pending", "approved", "paid")
TO_PAY_ON_INDEX = 20
LINK_RESULTS = 10


@bp.app_template_global()
def daily_expense_badge(status: str) -> str:
    """The Bootstrap badge class of a claim status."""
    return STATUS_BADGES.get(status, "text-bg-secondary")


@bp.app_template_global()
def daily_decision_badge(decision: str | None) -> str:
    """The Bootstrap badge class of a line's rule decision."""
    return DECISION_BADGES.get(decision or "", "text-bg-light")


@bp.app_template_global()
def daily_rule_text(text: str | None) -> str:
    """A rule file's reason in the reader's language."""
    return service.rule_text(text)


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(error: RequestEntityTooLarge) -> Any:
    """A request above ``MAX_CONTENT_LENGTH`` (a 50 MB photo): a clear message, 413."""
    limit = service.max_upload_bytes() // 1048576 or 1
    message = _(
        "The upload is too large: a receipt may be at most %(size)s MB. "
        "Take the photo at a lower resolution, or send a PDF.",
        size=limit,
    )
    if is_htmx_request():
        flash(message, "danger")
        response = make_response("", 413)
        response.headers["HX-Redirect"] = request.referrer or url_for(".index")
        return response
    return (
        render_template("errors/error.html", error=error, title=_("Too large"), message=message),
        413,
    )


# -- the list and the quick claim ----------------------------------------------------------


def _line_form(form_class: type = LineForm, **kwargs: Any) -> Any:
    """A line form; the record choices filled from the chosen kind and search text."""
    form = form_class(**kwargs)
    kind = form.link_kind.data or ""
    chosen = form.link_id.data or ""
    found = search_links(kind, form.link_q.data or "", LINK_RESULTS) if kind else []
    if chosen and kind and not any(str(i) == str(chosen) for i, _label in found):
        chosen_id = id_arg(chosen)  # "²" is a digit to str.isdigit, not to int()
        found = list(describe_links(kind, [chosen_id] if chosen_id else []).items())
        found += search_links(kind, form.link_q.data or "", LINK_RESULTS)
    form.link_id.choices = [("", "—")] + [(str(i), label) for i, label in found]
    return form


def _index_page(quick: Any = None, status: int = 200) -> Any:
    if quick is None:
        quick = _line_form(QuickClaimForm, formdata=None)
        quick.spent_on.data = local_today().isoformat()
        quick.category.data = "taxi" if "taxi" in service.categories() else None
    claims = paginate(service.my_claims(current_user, request.args.get("status") or None))
    to_pay: list[ExpenseClaim] = []
    if current_user.can("daily.pay"):
        to_pay = list(db.session.scalars(service.to_pay(current_user).limit(TO_PAY_ON_INDEX)))
    return render_template(
        "daily/expenses/index.html",
        claims=claims,
        to_pay=to_pay,
        quick=quick,
        max_mb=service.max_upload_bytes() // 1048576,
    ), status


@bp.get("/expenses/")
@require_permission("daily.claim")
def index() -> Any:
    """My claims, a quick one-line claim, and (finance) the claims to pay."""
    return _index_page()


@bp.get("/expenses/to-pay")
@require_permission("daily.pay")
def to_pay() -> Any:
    """Every approved claim waiting for payment, oldest decision first."""
    page = paginate(service.to_pay(current_user))
    return render_template("daily/expenses/to_pay.html", page=page)


@bp.post("/expenses/quick")
@require_permission("daily.claim")
def quick() -> Any:
    """Claim one expense in one step (and submit it, when asked)."""
    form = _line_form(QuickClaimForm)
    if request.form.get("action") == "find":  # the record search, without JavaScript
        return _index_page(form)
    if not form.validate():
        return _index_page(form, 422)
    try:
        claim = service.quick_claim(
            current_user,
            request.form,
            request.files.getlist("receipts"),
            submit=bool(form.submit_now.data),
        )
        db.session.commit()
    except ValidationFailed as error:
        db.session.rollback()
        error.show_on(form)
        return _index_page(form, 422)
    except Exception:
        db.session.rollback()
        raise
    _flash_outcome(claim)
    return redirect(url_for(".detail", claim_id=claim.id), 303)


@bp.route("/expenses/new", methods=["GET", "POST"])
@require_permission("daily.claim")
def new() -> Any:
    """Start a claim of several lines (a trip)."""
    form = ClaimForm()
    if request.method == "POST" and form.validate():
        try:
            claim = service.create_claim(current_user, form.title.data or "")
            db.session.commit()
        except ValidationFailed as error:
            db.session.rollback()
            error.show_on(form)
        else:
            return redirect(url_for(".detail", claim_id=claim.id), 303)
    status = 422 if request.method == "POST" else 200
    return render_template("daily/expenses/new.html", form=form), status


# -- one claim -----------------------------------------------------------------------------


def _detail_context(claim: ExpenseClaim, line_form: Any = None) -> dict[str, Any]:
    from portal.loops.approvals import timeline

    editable = service.is_editable(claim) and claim.owner_id == current_user.id
    if line_form is None and editable:
        line_form = _line_form(formdata=None)
        line_form.spent_on.data = local_today().isoformat()
    duplicates = service.duplicate_lines(claim.lines)
    readable_duplicates = (
        set(
            db.session.scalars(
                service.claims_for(current_user)
                .with_only_columns(ExpenseClaim.id)
                .where(ExpenseClaim.id.in_({line.claim_id for line in duplicates.values()}))
            )
        )
        if duplicates
        else set()
    )
    links: dict[tuple[str, int], str] = {}
    kinds: dict[str, list[int]] = {}
    for line in claim.lines:
        if line.link_kind and line.link_id:
            kinds.setdefault(line.link_kind, []).append(line.link_id)
    for kind, ids in kinds.items():
        for record_id, label in describe_links(kind, ids).items():
            links[(kind, record_id)] = label
    request_ = service.approval_of(claim)
    return {
        "claim": claim,
        "editable": editable,
        "line_form": line_form,
        "action_form": ActionForm(formdata=None),
        "pay_form": PayForm(formdata=None) if _may_pay(claim) else None,
        "duplicates": duplicates,
        "readable_duplicates": readable_duplicates,
        "links": links,
        "link_url": link_url,
        "kind_label": kind_label,
        "approval": request_,
        "approval_timeline": timeline(request_) if request_ is not None else [],
        "steps": STEPS,
        "max_mb": service.max_upload_bytes() // 1048576,
        "is_owner": claim.owner_id == current_user.id,
    }


def _may_pay(claim: ExpenseClaim) -> bool:
    return (
        claim.status == "approved"
        and current_user.can("daily.pay")
        and claim.owner_id != current_user.id
    )


def _render_detail(
    claim: ExpenseClaim, status: int = 200, messages: list[str] | None = None, **extra: Any
) -> Any:
    context = _detail_context(claim, extra.pop("line_form", None))
    if extra.get("pay_form") is not None:
        context["pay_form"] = extra.pop("pay_form")
    context["messages"] = messages or []
    return render_template("daily/expenses/detail.html", **context), status


@bp.get("/expenses/<int:claim_id>")
@require_permission("daily.claim", "daily.pay", "daily.view_expenses")
def detail(claim_id: int) -> Any:
    """A claim: status at every step, lines with their rule decisions, receipts,
    possible duplicates, the approval and the payment."""
    return _render_detail(service.get_claim_or_404(claim_id, current_user))


def _lines_response(claim: ExpenseClaim, form: Any, status: int) -> Any:
    """The lines panel (htmx) or the whole page."""
    if is_htmx_request(boosted=False):
        body = render_template("daily/expenses/_lines.html", **_detail_context(claim, form))
        return vary_on_htmx(make_response(body, status))
    return _render_detail(claim, status, line_form=form)


def _refused(claim_id: int, error: Exception, status: int) -> Any:
    """Nothing written: the page again with the messages (422 bad input, 409 state)."""
    db.session.rollback()
    claim = service.get_claim_or_404(claim_id, current_user)
    if isinstance(error, ValidationFailed):
        messages = [text for texts in error.fields.values() for text in texts]
    elif isinstance(error, StaleDataError):
        messages = [_("Someone changed this claim meanwhile. Reload it and try again.")]
    else:
        messages = [str(error)]
    if is_htmx_request(boosted=False):
        flash(" ".join(messages), "danger" if status == 403 else "warning")
        response = make_response("", status)
        response.headers["HX-Redirect"] = url_for(".detail", claim_id=claim.id)
        return response
    return _render_detail(claim, status, messages)


@bp.post("/expenses/<int:claim_id>/lines")
@require_permission("daily.claim")
def add_line(claim_id: int) -> Any:
    """Add a line (with receipts); its rule decision shows at once. ``find`` only
    searches the linked records (the form without JavaScript)."""
    claim = service.get_claim_or_404(claim_id, current_user, "write")
    form = _line_form()
    if request.form.get("action") == "find":
        return _lines_response(claim, form, 200)
    if not form.validate():
        return _lines_response(claim, form, 422)
    try:
        service.add_line(claim, request.form, request.files.getlist("receipts"), current_user)
        db.session.commit()
    except ValidationFailed as error:
        db.session.rollback()
        claim = service.get_claim_or_404(claim_id, current_user, "write")
        error.show_on(form)
        return _lines_response(claim, form, 422)
    except (NotAllowed, StateConflict, StaleDataError) as error:
        return _refused(claim_id, error, 403 if isinstance(error, NotAllowed) else 409)
    except Exception:
        db.session.rollback()
        raise
    if is_htmx_request(boosted=False):
        fresh = _line_form(formdata=None)
        fresh.spent_on.data = local_today().isoformat()
        return _lines_response(claim, fresh, 200)
    return redirect(url_for(".detail", claim_id=claim.id) + "#lines", 303)


@bp.route("/expenses/<int:claim_id>/lines/<int:line_id>/edit", methods=["GET", "POST"])
@require_permission("daily.claim")
def edit_line(claim_id: int, line_id: int) -> Any:
    """Change a line of a draft (or rejected) claim; more receipts may be added."""
    claim = service.get_claim_or_404(claim_id, current_user, "write")
    line = service.get_line_or_404(claim, line_id)
    if not service.is_editable(claim):
        return _refused(
            claim_id, StateConflict(_("Only a draft or rejected claim can be changed.")), 409
        )
    if request.method == "GET":
        form = _line_form(formdata=None, data=service.line_values(line))
        form.version.data = str(claim.version_id)
        return _edit_page(claim, line, form)
    form = _line_form()
    if request.form.get("action") == "find":
        return _edit_page(claim, line, form)
    if not form.validate():
        return _edit_page(claim, line, form, 422)
    if form.version.data and form.version.data != str(claim.version_id):
        return _refused(
            claim_id,
            StateConflict(_("Someone changed this claim meanwhile. Reload it and try again.")),
            409,
        )
    try:
        service.update_line(
            claim, line, request.form, request.files.getlist("receipts"), current_user
        )
        db.session.commit()
    except ValidationFailed as error:
        db.session.rollback()
        claim = service.get_claim_or_404(claim_id, current_user, "write")
        error.show_on(form)
        return _edit_page(claim, service.get_line_or_404(claim, line_id), form, 422)
    except (NotAllowed, StateConflict, StaleDataError) as error:
        return _refused(claim_id, error, 403 if isinstance(error, NotAllowed) else 409)
    except Exception:
        db.session.rollback()
        raise
    flash(_("Line saved."), "success")
    return redirect(url_for(".detail", claim_id=claim.id) + "#lines", 303)


def _edit_page(claim: ExpenseClaim, line: ExpenseLine, form: Any, status: int = 200) -> Any:
    return render_template(
        "daily/expenses/edit_line.html",
        claim=claim,
        line=line,
        form=form,
        action_form=ActionForm(formdata=None),
        max_mb=service.max_upload_bytes() // 1048576,
    ), status


@bp.post("/expenses/<int:claim_id>/lines/<int:line_id>/remove")
@require_permission("daily.claim")
def remove_line(claim_id: int, line_id: int) -> Any:
    """Remove a line (htmx: the lines panel comes back without it)."""
    claim = service.get_claim_or_404(claim_id, current_user, "write")
    line = service.get_line_or_404(claim, line_id)
    if not ActionForm().validate():
        abort(400)
    try:
        service.remove_line(claim, line, current_user)
        db.session.commit()
    except (NotAllowed, StateConflict, StaleDataError) as error:
        return _refused(claim_id, error, 403 if isinstance(error, NotAllowed) else 409)
    except Exception:
        db.session.rollback()
        raise
    if is_htmx_request(boosted=False):
        return _lines_response(claim, None, 200)
    return redirect(url_for(".detail", claim_id=claim.id) + "#lines", 303)


@bp.post("/expenses/<int:claim_id>/receipts/<int:receipt_id>/remove")
@require_permission("daily.claim")
def remove_receipt(claim_id: int, receipt_id: int) -> Any:
    """Take a wrong receipt off a line."""
    claim = service.get_claim_or_404(claim_id, current_user, "write")
    receipt = service.get_receipt_or_404(receipt_id, current_user)
    if receipt.line.claim_id != claim.id or not ActionForm().validate():
        abort(404)
    try:
        service.remove_receipt(claim, receipt, current_user)
        db.session.commit()
    except (NotAllowed, StateConflict, StaleDataError) as error:
        return _refused(claim_id, error, 403 if isinstance(error, NotAllowed) else 409)
    except Exception:
        db.session.rollback()
        raise
    return redirect(url_for(".detail", claim_id=claim.id) + "#lines", 303)


@bp.get("/expenses/receipts/<int:receipt_id>")
@require_permission("daily.claim", "daily.pay", "daily.view_expenses")
def receipt(receipt_id: int) -> Any:
    """A receipt file, to the people who may read its claim only (404 otherwise)."""
    found = service.get_receipt_or_404(receipt_id, current_user)
    return send_stored(service.RECEIPT_AREA, found.stored_name, found.content_type, found.filename)


def _claim_action(claim_id: int, action: Any, done: Any) -> Any:
    claim = service.get_claim_or_404(claim_id, current_user, "write")
    if not ActionForm().validate():
        return _refused(claim_id, ValidationFailed({"": [_("The form expired. Try again.")]}), 422)
    try:
        action(claim)
        db.session.commit()
    except ValidationFailed as error:
        return _refused(claim_id, error, 422)
    except (NotAllowed, StateConflict, StaleDataError) as error:
        return _refused(claim_id, error, 403 if isinstance(error, NotAllowed) else 409)
    except Exception:
        db.session.rollback()
        raise
    done(claim)
    return redirect(url_for(".detail", claim_id=claim.id), 303)


def _flash_outcome(claim: ExpenseClaim) -> None:
    if claim.status == "pending":
        flash(_("Claim %(number)s sent for approval.", number=claim.number), "info")
    elif claim.status == "approved":
        flash(_("Claim %(number)s approved: waiting for payment.", number=claim.number), "success")
    elif claim.status == "rejected":
        flash(_("Claim %(number)s was rejected by the rules.", number=claim.number), "danger")
    else:
        flash(_("Claim saved as a draft."), "success")


@bp.post("/expenses/<int:claim_id>/submit")
@require_permission("daily.claim")
def submit(claim_id: int) -> Any:
    """Check every line again and send the claim for approval."""
    return _claim_action(
        claim_id, lambda claim: service.submit_claim(claim, current_user), _flash_outcome
    )


@bp.post("/expenses/<int:claim_id>/cancel")
@require_permission("daily.claim")
def cancel(claim_id: int) -> Any:
    """Withdraw a claim that is not approved yet."""
    return _claim_action(
        claim_id,
        lambda claim: service.cancel_claim(claim, current_user),
        lambda claim: flash(_("Claim cancelled."), "info"),
    )


@bp.post("/expenses/<int:claim_id>/pay")
@require_permission("daily.pay")
def pay(claim_id: int) -> Any:
    """Finance marks an approved claim paid (once: a second time is a conflict)."""
    claim = service.get_claim_or_404(claim_id, current_user)
    form = PayForm()
    if not form.validate():
        return _render_detail(claim, 422, pay_form=form)
    try:
        service.pay_claim(claim, current_user, form.reference.data or "")
        db.session.commit()
    except ValidationFailed as error:
        db.session.rollback()
        claim = service.get_claim_or_404(claim_id, current_user)
        error.show_on(form)
        return _render_detail(claim, 422, pay_form=form)
    except (NotAllowed, StateConflict, StaleDataError) as error:
        return _refused(claim_id, error, 403 if isinstance(error, NotAllowed) else 409)
    except Exception:
        db.session.rollback()
        raise
    flash(_("Claim %(number)s marked paid.", number=claim.number), "success")
    return redirect(url_for(".detail", claim_id=claim.id), 303)


@bp.get("/expenses/links")
@require_permission("daily.claim")
def links() -> Any:
    """The records of a kind matching the search box, as options (htmx, at most a few)."""
    kind = (request.args.get("link_kind") or "")[:60]
    text = (request.args.get("link_q") or "")[:100]
    found = search_links(kind, text, LINK_RESULTS) if kind else []
    body = render_template("daily/expenses/_link_options.html", found=found)
    return vary_on_htmx(make_response(body))
