"""Contracts pages (P3.4, P7.3): the list, a new contract from an accepted quotation,
editing before review, and one contract's page with its review, signature, milestones,
payment plan, satisfaction check and loop items.

Every page works without JavaScript (plain posts, redirect after success, the page
again with its messages and 422 on bad input). With htmx (the portal boosts links and
forms) a refusal (403) or a conflict (409, someone changed the contract meanwhile) is
flashed and the contract's page reloaded, since htmx does not swap those answers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import (
    Blueprint,
    abort,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user

from portal.auth.permissions import require_permission
from portal.extensions import db
from portal.listing import paginate
from portal.loops import approvals
from portal.loops import service as loops
from portal.loops.errors import REFUSALS, StateConflict, refusal_of
from portal.org.services import ValidationFailed
from portal.scoping import can_reach, people_in_scope
from portal.web import refuse, vary_on_htmx

from . import contracts as service
from .common import get_child_or_404
from .contracts_forms import (
    CancelForm,
    ContractForm,
    MilestoneDoneForm,
    PaymentForm,
    SatisfactionForm,
    SignForm,
    VersionForm,
    status_choices,
)
from .models import MILESTONE_KINDS, Contract, Customer, Milestone, Opportunity, Quotation
from .template_helpers import sales_link, sales_may_edit
from .vocabulary import label, rule_text

bp = Blueprint("sales_contracts", __name__, template_folder="templates")

MAX_OWNER_CHOICES = 500


# -- template helpers -------------------------------------------------------------------


@bp.app_template_global()
def sales_contracts_for_customer(customer: Customer) -> list[Contract]:
    """For ``sales/contracts/_for_customer.html``: the customer's contracts in scope."""
    if not current_user.is_authenticated or customer is None:
        return []
    return service.contracts_of_customer(customer, current_user)


# -- helpers --------------------------------------------------------------------------------


def _conflict_text() -> str:
    return _(
        "Someone changed this contract meanwhile. Here is how it stands now; try again if needed."
    )


def _stale(form: Any, contract: Contract) -> bool:
    version = getattr(form, "version", None)
    return bool(version is not None and version.data and version.data != str(contract.lock_version))


def _show_errors(form: ContractForm, error: ValidationFailed) -> None:
    """The services' messages on the (nested) fields they name; the rest above the form."""
    fields = form.all_fields()
    for name, messages in error.fields.items():
        found = fields.get(name)
        if found is None:
            form.form_errors.extend(messages)
        else:
            found.errors = list(found.errors or []) + list(messages)


def _also_check(form: ContractForm, amount_cents: int) -> None:
    """A form with unreadable fields still gets the services' messages on every other
    field and row, so one round shows everything to fix."""
    fields = form.all_fields()
    for name, messages in service.check_values(form.values(), amount_cents).items():
        found = fields.get(name)
        if found is None:
            if name not in ("instalments",):
                form.form_errors.extend(messages)
        elif not found.errors:
            found.errors = list(messages)


def _detail_context(contract: Contract, submitted: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything the contract's page shows, with a form for each step the viewer may
    take now (the one just submitted keeps its input and messages)."""
    submitted = submitted or {}
    milestones = service.milestones_of(contract)
    plan = service.instalments_of(contract)
    ids = [row.loop_item_id for row in milestones] + [row.loop_item_id for row in plan]
    items = service.loop_items_by_id([*ids, contract.satisfaction_loop_id])
    review = service.approval_of(contract)
    may_edit = sales_may_edit(contract)
    may_pay = current_user.can("sales.record_payment") and contract.status in (
        service.RUNNING_STATUSES
    )
    version = str(contract.lock_version)

    def form(key: str, factory: Callable[[], Any]) -> Any:
        made = submitted.get(key) or factory()
        made.version.data = version
        return made

    forms: dict[str, Any] = {}
    if may_edit and contract.status in service.EDITABLE_STATUSES:
        forms["submit"] = form("submit", lambda: VersionForm(formdata=None, prefix="submit"))
    if may_edit and contract.status == "approved":
        sign_form = form("sign", lambda: SignForm(formdata=None, prefix="sign"))
        if sign_form.signed_on.data is None and not sign_form.errors:
            sign_form.signed_on.data = loops.local_today()
        forms["sign"] = sign_form
    if may_edit and contract.status in service.UNSIGNED_STATUSES:
        forms["cancel"] = form("cancel", lambda: CancelForm(formdata=None, prefix="cancel"))
    milestone_forms = {}
    if may_edit and contract.status in service.RUNNING_STATUSES:
        for row in milestones:
            if row.done_at is None:
                key = f"m{row.id}"
                milestone_forms[row.id] = form(
                    key, lambda key=key: MilestoneDoneForm(formdata=None, prefix=key)
                )
        if not service.completion_blockers(contract, milestones, plan, items):
            forms["complete"] = form(
                "complete", lambda: VersionForm(formdata=None, prefix="complete")
            )
    if (
        may_edit
        and contract.satisfaction_loop_id is not None
        and contract.satisfaction_score is None
        and contract.status in (*service.RUNNING_STATUSES, "completed")
    ):
        forms["satisfaction"] = form(
            "satisfaction", lambda: SatisfactionForm(formdata=None, prefix="satisfaction")
        )
    if may_pay and service.outstanding_cents(plan) > 0:
        payment_form = form(
            "payment",
            lambda: PaymentForm(formdata=None, prefix="payment", instalments=plan),
        )
        if payment_form.received_on.data is None and not payment_form.errors:
            payment_form.received_on.data = loops.local_today()
        forms["payment"] = payment_form
    quotation = db.session.get(Quotation, contract.quotation_id)
    opportunity = (
        db.session.get(Opportunity, contract.opportunity_id) if contract.opportunity_id else None
    )
    return {
        "contract": contract,
        "customer": contract.customer,
        "quotation": quotation,
        "opportunity": opportunity,
        "milestones": milestones,
        "plan": plan,
        "items": items,
        "done": {
            row.id: service.milestone_done(row, items.get(row.loop_item_id or 0))
            for row in milestones
        },
        "paid_cents": sum(row.paid_cents for row in plan),
        "outstanding_cents": service.outstanding_cents(plan),
        "review": review,
        "review_steps": approvals.timeline(review) if review is not None else [],
        "review_messages": service.review_messages(review),
        "review_reason": str(rule_text(review.reason)) if review is not None else "",
        "preview": (
            service.review_preview(contract)
            if may_edit and contract.status in service.EDITABLE_STATUSES
            else None
        ),
        "blockers": (
            service.completion_blockers(contract, milestones, plan, items)
            if contract.status in service.RUNNING_STATUSES
            else []
        ),
        "checklist": [
            (code, label("contract_checklist", code), bool((contract.checklist or {}).get(code)))
            for code in service.checklist_items()
        ],
        "forms": forms,
        "milestone_forms": milestone_forms,
        "may_edit": may_edit,
        "satisfaction_item": items.get(contract.satisfaction_loop_id or 0),
    }


def _render_detail(contract: Contract, status: int = 200, **extra: Any) -> Any:
    context = _detail_context(contract, extra.pop("submitted", None))
    context.update(extra)
    return render_template("sales/contracts/detail.html", **context), status


def _refused(contract_id: int, status: int, message: str) -> Any:
    """A 403 or 409 the person understands, on the contract's page (``portal.web.refuse``)."""
    return refuse(
        status,
        message,
        url_for(".detail", contract_id=contract_id),
        lambda: _render_detail(
            service.get_contract_or_404(contract_id, current_user), status, problem=message
        ),
    )


def _perform(
    contract_id: int,
    key: str,
    form: Any,
    work: Callable[[Contract], Any],
    done: Callable[[Any], str],
    verb: str = "write",
) -> Any:
    """Run one step on the contract from a posted form: 422 with the form's messages,
    409 when the page was stale or the contract moved on, 403 when not allowed; after
    success back to the contract's page."""
    contract = service.get_contract_or_404(contract_id, current_user, verb)
    if not form.validate():
        return _render_detail(contract, 422, submitted={key: form})
    if _stale(form, contract):
        return _refused(contract_id, 409, _conflict_text())
    try:
        outcome = work(contract)
        db.session.commit()
    except ValidationFailed as error:
        db.session.rollback()
        error.show_on(form)
        fresh = service.get_contract_or_404(contract_id, current_user)
        return _render_detail(fresh, 422, submitted={key: form})
    except REFUSALS as error:
        db.session.rollback()
        return _refused(contract_id, *refusal_of(error, _conflict_text()))
    flash(done(outcome), "success")
    return redirect(url_for(".detail", contract_id=contract_id), 303)


# -- the list ---------------------------------------------------------------------------------


@bp.get("/contracts/")
@require_permission("sales.view")
def index() -> Any:
    """Contracts in the viewer's scope, filtered, newest first."""
    page = paginate(service.contracts_query(current_user, request.args))
    leader = current_user.scope_for("read") in ("team", "all")
    owners = []
    if leader:
        owners = people_in_scope(current_user, limit=MAX_OWNER_CHOICES)
    return vary_on_htmx(
        render_template(
            "sales/contracts/index.html",
            page=page,
            args=request.args,
            statuses=status_choices(),
            owners=owners,
            leader=leader,
        )
    )


# -- creating and editing ------------------------------------------------------------------


def _add_row(form: ContractForm) -> bool:
    """The "add a row" button (works without JavaScript): one more blank instalment row,
    nothing saved."""
    if "add_instalment" not in request.form:
        return False
    if len(form.instalments.entries) < service.MAX_INSTALMENTS:
        form.instalments.append_entry()
    return True


@bp.route("/contracts/new", methods=["GET", "POST"])
@require_permission("sales.edit")
def new() -> Any:
    """A contract from the accepted quotation ``?quote_id=``, planned from the rule file."""
    if not request.args.get("quote_id"):
        abort(400, description=_("Open a new contract from an accepted quotation (quote_id)."))
    quotation = service.quotation_for_contract(request.args.get("quote_id"), current_user)
    try:
        service.check_quotation(quotation)
    except StateConflict as refusal:
        return _quote_refused(quotation, str(refusal))
    form = ContractForm()
    context = {"quotation": quotation, "contract": None, "milestone_kinds": MILESTONE_KINDS}
    if request.method == "GET":
        form.fill(service.default_values(quotation, loops.local_today()))
        return render_template("sales/contracts/form.html", form=form, **context)
    if _add_row(form):
        return render_template("sales/contracts/form.html", form=form, **context)
    if form.validate():
        try:
            contract = service.create_contract(quotation, current_user, form.values())
            db.session.commit()
        except ValidationFailed as error:
            db.session.rollback()
            _show_errors(form, error)
        except StateConflict as refusal:
            db.session.rollback()
            return _quote_refused(quotation, str(refusal))
        else:
            flash(_("Contract %(number)s was drafted.", number=contract.number), "success")
            return redirect(url_for(".detail", contract_id=contract.id), 303)
    else:
        _also_check(form, int(quotation.total_cents or 0))
    return render_template("sales/contracts/form.html", form=form, **context), 422


def _quote_refused(quotation: Quotation, message: str) -> Any:
    """A contract cannot be made from this quotation (not accepted, or it has one)."""
    existing = service.existing_contract_for(quotation)
    if existing is not None and not can_reach(existing, current_user, "read"):
        existing = None
    # To htmx (which does not swap a 409): go where the person can act instead.
    elsewhere = (
        url_for(".detail", contract_id=existing.id)
        if existing is not None
        else sales_link("sales_quotes.detail", quote_id=quotation.id) or url_for(".index")
    )
    return refuse(
        409,
        message,
        elsewhere,
        lambda: (
            render_template(
                "sales/contracts/refused.html",
                quotation=quotation,
                message=message,
                existing=existing,
            ),
            409,
        ),
    )


@bp.route("/contracts/<int:contract_id>/edit", methods=["GET", "POST"])
@require_permission("sales.edit")
def edit(contract_id: int) -> Any:
    """Change a draft or rejected contract; "save and submit" sends it to review."""
    contract = service.get_contract_or_404(contract_id, current_user, "write")
    if contract.status not in service.EDITABLE_STATUSES:
        return _refused(contract_id, 409, service._not_editable(contract))
    form = ContractForm()
    context = {"contract": contract, "quotation": None, "milestone_kinds": MILESTONE_KINDS}
    if request.method == "GET":
        form.fill(service.values_of(contract))
        form.version.data = str(contract.lock_version)
        return render_template("sales/contracts/form.html", form=form, **context)
    if _add_row(form):
        return render_template("sales/contracts/form.html", form=form, **context)
    if _stale(form, contract):
        return _refused(contract_id, 409, _conflict_text())
    if form.validate():
        submit = "submit_review" in request.form
        try:
            service.update_contract(contract, current_user, form.values())
            review = service.submit_for_review(contract, current_user) if submit else None
            db.session.commit()
        except ValidationFailed as error:
            db.session.rollback()
            _show_errors(form, error)
        except REFUSALS as error:
            db.session.rollback()
            return _refused(contract_id, *refusal_of(error, _conflict_text()))
        else:
            if review is not None:
                flash(_review_message(review), _review_category(review))
            else:
                flash(_("The contract was saved."), "success")
            return redirect(url_for(".detail", contract_id=contract_id), 303)
        contract = service.get_contract_or_404(contract_id, current_user, "write")
        context["contract"] = contract
    else:
        _also_check(form, contract.amount_cents)
    form.version.data = str(contract.lock_version)
    return render_template("sales/contracts/form.html", form=form, **context), 422


# -- one contract ----------------------------------------------------------------------------


@bp.get("/contracts/<int:contract_id>")
@require_permission("sales.view")
def detail(contract_id: int) -> Any:
    """The contract: terms, review, plan, execution and its loop items."""
    return _render_detail(service.get_contract_or_404(contract_id, current_user))


def _review_message(review: Any) -> str:
    if review.status == "rejected":
        return _(
            "The rule file refused the contract: %(reason)s",
            reason=rule_text(review.reason) or _("no reason given"),
        )
    if review.status == "approved":
        return _("The contract needs no review and is approved for signing.")
    return _("The contract was sent for review.")


def _review_category(review: Any) -> str:
    return "danger" if review.status == "rejected" else "success"


@bp.post("/contracts/<int:contract_id>/submit")
@require_permission("sales.edit")
def submit(contract_id: int) -> Any:
    """Send the contract to review; an incomplete checklist or plan opens the edit form
    with the messages (422)."""
    contract = service.get_contract_or_404(contract_id, current_user, "write")
    form = VersionForm(prefix="submit")
    if not form.validate() or _stale(form, contract):
        return _refused(contract_id, 409, _conflict_text())
    try:
        review = service.submit_for_review(contract, current_user)
        db.session.commit()
    except ValidationFailed as error:
        db.session.rollback()
        contract = service.get_contract_or_404(contract_id, current_user, "write")
        edit_form = ContractForm(formdata=None)
        edit_form.fill(service.values_of(contract), blank_rows=0)
        edit_form.version.data = str(contract.lock_version)
        edit_form.form_errors.append(_("Complete these before the contract goes to review."))
        _show_errors(edit_form, error)
        return (
            render_template(
                "sales/contracts/form.html",
                form=edit_form,
                contract=contract,
                quotation=None,
                milestone_kinds=MILESTONE_KINDS,
            ),
            422,
        )
    except REFUSALS as error:
        db.session.rollback()
        return _refused(contract_id, *refusal_of(error, _conflict_text()))
    flash(_review_message(review), _review_category(review))
    return redirect(url_for(".detail", contract_id=contract_id), 303)


@bp.post("/contracts/<int:contract_id>/sign")
@require_permission("sales.edit")
def sign(contract_id: int) -> Any:
    """Record the signature: execution starts (milestone and payment loop items)."""
    form = SignForm(prefix="sign")
    return _perform(
        contract_id,
        "sign",
        form,
        lambda contract: service.sign_contract(contract, current_user, form.signed_on.data),
        lambda contract: _(
            "Contract %(number)s is signed: its milestones and payments are followed as "
            "loop items.",
            number=contract.number,
        ),
    )


@bp.post("/contracts/<int:contract_id>/milestones/<int:milestone_id>/done")
@require_permission("sales.edit")
def milestone_done(contract_id: int, milestone_id: int) -> Any:
    """A milestone reached: its loop item is closed with the note."""
    milestone = get_child_or_404(
        Milestone, milestone_id, Contract, "contract_id", current_user, "write"
    )
    if milestone.contract_id != contract_id:
        abort(404)
    key = f"m{milestone_id}"
    form = MilestoneDoneForm(prefix=key)
    return _perform(
        contract_id,
        key,
        form,
        lambda contract: service.mark_milestone_done(
            contract, milestone, current_user, form.note.data or ""
        ),
        lambda row: _("%(milestone)s is done.", milestone=label("milestone_kind", row.kind)),
    )


@bp.post("/contracts/<int:contract_id>/payments")
@require_permission("sales.record_payment")
def record_payment(contract_id: int) -> Any:
    """Money received (finance, the manager)."""
    contract = service.get_contract_or_404(contract_id, current_user)
    form = PaymentForm(prefix="payment", instalments=service.instalments_of(contract))
    return _perform(
        contract_id,
        "payment",
        form,
        lambda contract: service.record_payment(
            contract,
            current_user,
            form.amount.data,
            form.received_on.data,
            form.instalment_id.data,
        ),
        lambda rows: _("The payment was recorded."),
        verb="read",
    )


@bp.post("/contracts/<int:contract_id>/satisfaction")
@require_permission("sales.edit")
def satisfaction(contract_id: int) -> Any:
    """The customer's satisfaction after delivery: closes the check's loop item."""
    form = SatisfactionForm(prefix="satisfaction")
    return _perform(
        contract_id,
        "satisfaction",
        form,
        lambda contract: service.record_satisfaction(
            contract, current_user, form.score.data, form.note.data or ""
        ),
        lambda contract: _("The customer's satisfaction was recorded."),
    )


@bp.post("/contracts/<int:contract_id>/complete")
@require_permission("sales.edit")
def complete(contract_id: int) -> Any:
    """Every milestone done and every instalment paid: completed."""
    form = VersionForm(prefix="complete")
    return _perform(
        contract_id,
        "complete",
        form,
        lambda contract: service.complete_contract(contract, current_user),
        lambda contract: _("Contract %(number)s is completed.", number=contract.number),
    )


@bp.post("/contracts/<int:contract_id>/cancel")
@require_permission("sales.edit")
def cancel(contract_id: int) -> Any:
    """Cancel an unsigned contract, with the reason."""
    form = CancelForm(prefix="cancel")
    return _perform(
        contract_id,
        "cancel",
        form,
        lambda contract: service.cancel_contract(contract, current_user, form.reason.data or ""),
        lambda contract: _("Contract %(number)s was cancelled.", number=contract.number),
    )
