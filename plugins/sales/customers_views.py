"""Pages of prospects and customers (P3.1.2, P3.1.3): the list, the file with its
people, timeline, follow-ups and the other parts' records, logging a contact (made for
a phone), the shared pool, and the dashboard tile.

Every page works without JavaScript (plain forms, redirect after success, the form
again with its messages and 422 on bad input); htmx swaps the contact persons and
loads more of the timeline in place. Out of scope is 404, a file changed by someone
else meanwhile is 409 with the file as it stands.
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

from portal.auth.models import User
from portal.auth.permissions import require_permission
from portal.extensions import db
from portal.listing import page_args, paginate
from portal.loops.errors import NotAllowed, StateConflict, refusal_of
from portal.models import as_utc, utcnow
from portal.org.services import ValidationFailed
from portal.scoping import people_in_scope
from portal.web import is_htmx_request, refuse, vary_on_htmx

from . import customers as service
from .common import get_child_or_404, get_customer_or_404
from .customers_forms import ActivityForm, ContactForm, CustomerForm, ReleaseForm
from .models import (
    ACTIVITY_KINDS,
    COMPANY_SIZES,
    CUSTOMER_GRADES,
    CUSTOMER_SOURCES,
    CUSTOMER_STAGES,
    ContactPerson,
    Customer,
)
from .template_helpers import sales_link, sales_may_edit

bp = Blueprint("sales_customers", __name__, template_folder="templates")

TIMELINE_PAGE = 10


def _person(user_id: int | None) -> User | None:
    return db.session.get(User, user_id) if user_id else None


# -- template helpers (other parts' pages use some) -----------------------------------


@bp.app_template_global()
def sales_customers_overdue(customer: Customer, now: Any = None) -> bool:
    """Whether the customer's next follow-up is past."""
    due = as_utc(customer.next_follow_up_at)
    return due is not None and due < (as_utc(now) or utcnow())


@bp.app_template_global()
def sales_customers_for_opportunity(opportunity: Any, limit: int = 20) -> list[Any]:
    """For ``sales/customers/_activities_for_opportunity.html``: the contacts logged
    about an opportunity that the viewer may read, newest first (one query)."""
    if not current_user.is_authenticated or opportunity is None:
        return []
    return service.activities_for_opportunity(opportunity, current_user, limit)


# -- the list -------------------------------------------------------------------------------


def _filters() -> dict[str, Any]:
    return {
        "stages": CUSTOMER_STAGES,
        "grades": CUSTOMER_GRADES,
        "sources": CUSTOMER_SOURCES,
        "sizes": COMPANY_SIZES,
        "industries": service.industry_choices(),
        "regions": service.region_choices(),
        "sorts": service.SORT_LABELS,
    }


@bp.get("/customers/")
@require_permission("sales.view")
def index() -> Any:
    """The customers in the viewer's scope: search, filters, sort, one page at a time
    (one COUNT, the owners in the same query)."""
    now = utcnow()
    page = paginate(service.customer_list(current_user, request.args, now))
    return render_template(
        "sales/customers/index.html",
        page=page,
        args=request.args,
        people=[] if current_user.scope_for("read") == "own" else people_in_scope(current_user),
        now=now,
        **_filters(),
    )


# -- creating and editing ------------------------------------------------------------------


@bp.route("/customers/new", methods=["GET", "POST"])
@require_permission("sales.edit")
def new() -> Any:
    """A new prospect (or customer): checked for duplicates and screened."""
    form = CustomerForm(actor=current_user)
    if request.method == "GET":
        form.source.data = request.args.get("source", "other")[:20]
        form.name.data = request.args.get("name", "")[:200]
    if not form.is_submitted():
        return render_template("sales/customers/form.html", form=form, customer=None)
    if form.validate():
        try:
            customer = service.create_customer(
                form.values(), current_user, owner=_person(form.owner_id.data) or current_user
            )
            db.session.commit()
        except ValidationFailed as error:
            db.session.rollback()
            error.show_on(form)
        else:
            if customer.qualified:
                flash(_("The prospect was saved; it meets the screening criteria."), "success")
            else:
                flash(
                    _("The prospect was saved, but does not meet the screening criteria yet."),
                    "warning",
                )
            return redirect(url_for(".detail", customer_id=customer.id), 303)
    else:
        _more_messages(form, None)
    return render_template("sales/customers/form.html", form=form, customer=None), 422


def _more_messages(form: CustomerForm, customer: Customer | None) -> None:
    """The form failed: add the service's messages for the other fields, so the person
    sees every problem (a duplicate too) at once."""
    for name, messages in service.validation_errors(form.values(), customer, current_user).items():
        field = getattr(form, name, None)
        if field is not None and not field.errors:
            field.errors = list(messages)


@bp.route("/customers/<int:customer_id>/edit", methods=["GET", "POST"])
@require_permission("sales.edit")
def edit(customer_id: int) -> Any:
    """Change the file; screened again. Saving over a newer version is refused (409)."""
    customer = get_customer_or_404(customer_id, current_user, "write")
    form = CustomerForm(actor=current_user, obj=None if request.method == "POST" else customer)
    in_pool = customer.owner_id is None
    if in_pool:  # a manager mending a pool prospect's file does not take it by the way
        form.owner_id.choices[0] = (None, _("Nobody: it stays in the shared pool"))
    if request.method == "GET":
        form.owner_id.data = None if customer.owner_id == current_user.id else customer.owner_id
        form.lock_version.data = customer.lock_version
        for name in ("industry", "region", "size", "grade"):
            getattr(form, name).data = getattr(customer, name) or ""
        return render_template("sales/customers/form.html", form=form, customer=customer)
    if not form.validate():
        _more_messages(form, customer)
        return render_template("sales/customers/form.html", form=form, customer=customer), 422
    owner = _person(form.owner_id.data) or (None if in_pool else current_user)
    if not form.may_choose_owner:
        owner = customer.owner
    values = form.values()
    if "stage" not in request.form:  # not offered for a customer: it stays one
        values.pop("stage")
    try:
        service.update_customer(
            customer,
            values,
            current_user,
            owner=owner,
            expected_version=form.lock_version.data,
        )
        db.session.commit()
    except ValidationFailed as error:
        db.session.rollback()
        error.show_on(form)
        return render_template("sales/customers/form.html", form=form, customer=customer), 422
    except (StateConflict, StaleDataError):
        db.session.rollback()
        return _conflict(customer_id, form)
    flash(_("The file was saved."), "success")
    return redirect(url_for(".detail", customer_id=customer_id), 303)


def _conflict(customer_id: int, form: CustomerForm) -> Any:
    """409: the file as it stands now, the person's input kept, with a message."""
    customer = get_customer_or_404(customer_id, current_user, "write")
    form.lock_version.data = customer.lock_version
    form.lock_version.raw_data = [str(customer.lock_version)]  # rendered from raw_data
    form.form_errors.append(service.conflict_text())
    return render_template(
        "sales/customers/form.html", form=form, customer=customer, conflict=True
    ), 409


# -- the file -------------------------------------------------------------------------------


@bp.get("/customers/<int:customer_id>")
@require_permission("sales.view")
def detail(customer_id: int) -> Any:
    """The file: screening verdict and why, people, timeline, follow-ups and the
    deals, quotations, contracts and complaints of the other parts."""
    customer = get_customer_or_404(customer_id, current_user)
    activities, more, opportunity_names = service.timeline(customer.id, 1, TIMELINE_PAGE)
    may_edit = sales_may_edit(customer)
    return render_template(
        "sales/customers/detail.html",
        customer=customer,
        contacts=service.contacts_of(customer),
        contact_form=ContactForm(formdata=None),
        release_form=ReleaseForm(formdata=None),
        activities=activities,
        more=more,
        next_page=2,
        opportunity_names=opportunity_names,
        screening=service.latest_screening(customer),
        may_edit=may_edit,
        previous_owner=_person(customer.previous_owner_id),
        link=url_for(".detail", customer_id=customer.id),
    )


@bp.get("/customers/<int:customer_id>/activities")
@require_permission("sales.view")
def timeline(customer_id: int) -> Any:
    """More of the timeline: a fragment for htmx's "load more", a page without it."""
    customer = get_customer_or_404(customer_id, current_user)
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    activities, more, opportunity_names = service.timeline(customer.id, page, TIMELINE_PAGE)
    context = {
        "customer": customer,
        "activities": activities,
        "more": more,
        "next_page": page + 1,
        "opportunity_names": opportunity_names,
    }
    if is_htmx_request():
        return vary_on_htmx(render_template("sales/customers/_timeline.html", **context))
    return vary_on_htmx(render_template("sales/customers/activities.html", page=page, **context))


# -- contact persons -----------------------------------------------------------------------


def _contacts_section(
    customer: Customer, form: ContactForm | None = None, status: int = 200
) -> Any:
    """The contact persons section alone (htmx swaps it in place)."""
    html = render_template(
        "sales/customers/_contacts.html",
        customer=customer,
        contacts=service.contacts_of(customer),
        contact_form=form or ContactForm(formdata=None),
        may_edit=True,
    )
    return vary_on_htmx(make_response(html, status))


@bp.post("/customers/<int:customer_id>/contacts")
@require_permission("sales.edit")
def contact_add(customer_id: int) -> Any:
    """Add a person (htmx: the section again; without: back to the file)."""
    customer = get_customer_or_404(customer_id, current_user, "write")
    form = ContactForm()
    if form.validate():
        try:
            service.save_contact(customer, form.values())
            db.session.commit()
        except ValidationFailed as error:
            db.session.rollback()
            error.show_on(form)
        else:
            if is_htmx_request():
                return _contacts_section(customer)
            flash(_("The contact person was added."), "success")
            return redirect(url_for(".detail", customer_id=customer_id, _anchor="contacts"), 303)
    if is_htmx_request():
        return _contacts_section(customer, form, 422)
    return render_template(
        "sales/customers/contact_form.html", form=form, customer=customer, contact=None
    ), 422


@bp.route("/customers/<int:customer_id>/contacts/<int:contact_id>", methods=["GET", "POST"])
@require_permission("sales.edit")
def contact_edit(customer_id: int, contact_id: int) -> Any:
    """Change a person: the row turns into a form (htmx) or a small page."""
    customer = get_customer_or_404(customer_id, current_user, "write")
    contact = get_child_or_404(
        ContactPerson, contact_id, Customer, "customer_id", current_user, "write"
    )
    if contact.customer_id != customer.id:
        abort(404)
    form = ContactForm(obj=contact if request.method == "GET" else None)
    if request.method == "POST" and form.validate():
        try:
            service.save_contact(customer, form.values(), contact)
            db.session.commit()
        except ValidationFailed as error:
            db.session.rollback()
            error.show_on(form)
        else:
            if is_htmx_request():
                # The form swapped itself in; the saved list replaces the whole section.
                response = _contacts_section(customer)
                response.headers["HX-Retarget"] = "#contacts"
                response.headers["HX-Reswap"] = "innerHTML"
                return response
            flash(_("The contact person was saved."), "success")
            return redirect(url_for(".detail", customer_id=customer_id, _anchor="contacts"), 303)
    status = 422 if request.method == "POST" else 200
    template = (
        "sales/customers/_contact_edit.html"
        if is_htmx_request()
        else "sales/customers/contact_form.html"
    )
    html = render_template(template, form=form, customer=customer, contact=contact)
    return vary_on_htmx(make_response(html, status))


@bp.post("/customers/<int:customer_id>/contacts/<int:contact_id>/delete")
@require_permission("sales.edit")
def contact_delete(customer_id: int, contact_id: int) -> Any:
    """Remove a person."""
    customer = get_customer_or_404(customer_id, current_user, "write")
    contact = get_child_or_404(
        ContactPerson, contact_id, Customer, "customer_id", current_user, "write"
    )
    if contact.customer_id != customer.id:
        abort(404)
    service.delete_contact(contact)
    db.session.commit()
    if is_htmx_request():
        return _contacts_section(customer)
    flash(_("The contact person was removed."), "success")
    return redirect(url_for(".detail", customer_id=customer_id, _anchor="contacts"), 303)


# -- logging a contact ----------------------------------------------------------------------


@bp.route("/customers/<int:customer_id>/log", methods=["GET", "POST"])
@require_permission("sales.edit")
def log_activity(customer_id: int) -> Any:
    """Log a call, email, visit or meeting; the follow-up closes and the next is set."""
    customer = get_customer_or_404(customer_id, current_user, "write")
    back = url_for(".detail", customer_id=customer_id)
    if customer.owner_id is None:
        return refuse(409, _("Claim this prospect before logging contacts."), back)
    form = ActivityForm(customer=customer)
    if request.method == "GET":
        kind = request.args.get("kind", "")
        if kind in ACTIVITY_KINDS:
            form.kind.data = kind
        wanted = request.args.get("opportunity_id", type=int)
        if wanted and any(value == wanted for value, _label in form.opportunity_id.choices):
            form.opportunity_id.data = wanted
        return render_template("sales/customers/log_activity.html", form=form, customer=customer)
    if form.validate():
        try:
            activity = service.log_activity(customer, form.values(), current_user)
            db.session.commit()
        except ValidationFailed as error:
            db.session.rollback()
            error.show_on(form)
        except (StateConflict, StaleDataError):
            db.session.rollback()
            return refuse(409, service.conflict_text(), back)
        else:
            flash(_("The contact was logged; the next follow-up is set."), "success")
            if activity.opportunity_id and request.args.get("opportunity_id"):
                target = sales_link("sales_pipeline.detail", opportunity_id=activity.opportunity_id)
                if target:
                    return redirect(target, 303)
            return redirect(f"{back}#activity-{activity.id}", 303)
    return render_template("sales/customers/log_activity.html", form=form, customer=customer), 422


# -- the shared pool -----------------------------------------------------------------------------


@bp.get("/customers/pool")
@require_permission("sales.claim_pool")
def pool() -> Any:
    """The shared pool (公海): prospects nobody follows, for anyone to claim."""
    page = paginate(service.pool_list(request.args))
    cap = service.claim_cap()
    return render_template(
        "sales/customers/pool.html",
        page=page,
        args=request.args,
        previous_owners=service.people_names([c.previous_owner_id for c in page.items]),
        cap=cap,
        claimed_today=service.claims_today(current_user) if cap else 0,
        **_filters(),
    )


@bp.post("/customers/<int:customer_id>/claim")
@require_permission("sales.claim_pool")
def claim(customer_id: int) -> Any:
    """Take a prospect from the pool; the slower of two claims gets 409."""
    back = url_for(".pool", **page_args())
    try:
        service.claim(customer_id, current_user)
        db.session.commit()
    except LookupError:
        db.session.rollback()
        abort(404)
    except NotAllowed as refusal:
        db.session.rollback()
        return refuse(403, str(refusal), back)
    except StateConflict as conflict:
        db.session.rollback()
        if is_htmx_request():
            return refuse(409, str(conflict), back)
        return _pool_conflict(str(conflict))
    flash(_("The prospect is yours now; a first follow-up is set."), "success")
    return redirect(url_for(".detail", customer_id=customer_id), 303)


def _pool_conflict(message: str) -> Any:
    page = paginate(service.pool_list(request.args))
    return render_template(
        "sales/customers/pool.html",
        page=page,
        args=request.args,
        previous_owners=service.people_names([c.previous_owner_id for c in page.items]),
        cap=service.claim_cap(),
        claimed_today=0,
        problem=message,
        **_filters(),
    ), 409


@bp.route("/customers/<int:customer_id>/release", methods=["GET", "POST"])
@require_permission("sales.edit")
def release(customer_id: int) -> Any:
    """Give a prospect back to the pool, with the reason."""
    customer = get_customer_or_404(customer_id, current_user, "write")
    form = ReleaseForm()
    if request.method == "GET":
        return render_template("sales/customers/release.html", form=form, customer=customer)
    if form.validate():
        try:
            service.release_to_pool(customer, current_user, form.reason.data)
            db.session.commit()
        except ValidationFailed as error:
            db.session.rollback()
            error.show_on(form)
        except (StateConflict, StaleDataError) as conflict:
            db.session.rollback()
            status, message = refusal_of(conflict, service.conflict_text())
            return refuse(status, message, url_for(".detail", customer_id=customer_id))
        else:
            flash(_("The prospect is back in the shared pool."), "success")
            return redirect(url_for(".index"), 303)
    return render_template("sales/customers/release.html", form=form, customer=customer), 422


# -- the dashboard tile -------------------------------------------------------------------------


@bp.get("/customers/widgets/my-week")
@require_permission("sales.view")
def widget_my_week() -> Any:
    """My follow-ups due this week, overdue ones, contacts logged this week."""
    return render_template("sales/customers/_widget_my_week.html", **service.my_week(current_user))
