"""Pages of the quotes area (P3.3): the product list, quotations made from an
opportunity (lines, totals, discount approval, versions, negotiation notes, the
customer's answer) and the printable quotation.

Every page works without JavaScript: line rows are a fixed number of blank rows plus
"Add more lines"; with htmx a row is added or filled from the product list by a row
fragment. Writes commit once at the end; bad input answers 422 with the messages next
to their fields (per line), a quotation in the wrong state or changed meanwhile 409.
"""

from __future__ import annotations

from datetime import timedelta
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
from flask_babel import force_locale, get_locale
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.datastructures import MultiDict

from portal.auth.models import User
from portal.auth.permissions import require_permission
from portal.extensions import db
from portal.listing import paginate
from portal.loops.errors import StateConflict
from portal.money import yuan
from portal.org.services import ValidationFailed
from portal.scoping import people_in_scope
from portal.web import is_htmx_request, vary_on_htmx

from . import quotes as service
from .models import QUOTE_STATUSES, ContactPerson, Customer, Opportunity, Product, Quotation
from .quotes_forms import (
    BLANK_ROWS,
    ActionForm,
    AnswerForm,
    LineForm,
    NoteForm,
    ProductForm,
    QuoteForm,
)
from .template_helpers import sales_may_edit
from .vocabulary import label

bp = Blueprint(
    "sales_quotes",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/quotes/static",
)

DEFAULT_VALIDITY_DAYS = 30
MAX_ROW_INDEX = 10_000
STATUS_BADGES = {
    "draft": "text-bg-secondary",
    "pending": "text-bg-warning",
    "approved": "text-bg-info",
    "rejected": "text-bg-danger",
    "sent": "text-bg-primary",
    "accepted": "text-bg-success",
    "declined": "text-bg-dark",
    "superseded": "text-bg-light",
}


# -- template helpers (also used by other areas' pages through the partials) ---------------


@bp.app_template_global()
def sales_quote_badge(status: str) -> str:
    """The Bootstrap badge class of a quotation status."""
    return STATUS_BADGES.get(status, "text-bg-light")


@bp.app_template_global()
def sales_quotes_for_opportunity(opportunity: Any) -> list[Quotation]:
    """The newest version of each quotation of an opportunity, in the viewer's scope."""
    if opportunity is None or not current_user.is_authenticated:
        return []
    return service.for_opportunity(opportunity, current_user)


@bp.app_template_global()
def sales_quotes_for_customer(customer: Any) -> list[Quotation]:
    """The newest version of each quotation to a customer, in the viewer's scope."""
    if customer is None or not current_user.is_authenticated:
        return []
    return service.for_customer(customer, current_user)


@bp.app_template_global()
def sales_quotes_can_quote(opportunity: Any) -> bool:
    """Whether the viewer may make a quotation from the opportunity."""
    return (
        opportunity is not None
        and getattr(opportunity, "status", "open") == "open"
        and sales_may_edit(opportunity)
    )


@bp.context_processor
def _helpers() -> dict[str, Any]:
    return {"statuses": QUOTE_STATUSES}


# -- the list -----------------------------------------------------------------------------


def _owner_choices() -> list[tuple[int, str]]:
    """People whose quotations a leader may filter by (their read scope)."""
    if current_user.scope_for("read") == "own":
        return []
    return people_in_scope(current_user)


@bp.get("/quotes/")
@require_permission("sales.view")
def index() -> Any:
    """Quotations in scope: newest versions by default, filters, newest first."""
    status = request.args.get("status", "")
    if status not in (*QUOTE_STATUSES, "all"):
        status = ""
    owners = _owner_choices()
    owner_id = request.args.get("owner", type=int) if owners else None
    text = request.args.get("q", "")[:100]
    page = paginate(
        service.search_quotations(current_user, status=status, owner_id=owner_id, text=text)
    )
    context = {
        "page": page,
        "customers": service.customers_of(page.items),
        "status": status,
        "owners": owners,
        "owner_id": owner_id,
        "q": text,
    }
    return render_template("sales/quotes/index.html", **context)


# -- writing a quotation -------------------------------------------------------------------


def _rows(form: QuoteForm) -> list[dict[str, Any]]:
    return [entry.form.data for entry in form.lines.entries]


def _row_index(entry: Any) -> int:
    try:
        return int(entry.name.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return 0


def _next_index(form: QuoteForm) -> int:
    return max((_row_index(entry) for entry in form.lines.entries), default=-1) + 1


def _show_errors(form: QuoteForm, error: ValidationFailed) -> None:
    """Header messages on their fields, line messages on their row's field, the rest
    (no lines at all) above the form."""
    header: dict[str, list[str]] = {}
    for key, messages in error.fields.items():
        parts = key.split("-", 2)
        if len(parts) == 3 and parts[0] == "lines" and parts[1].isdigit():
            position = int(parts[1])
            if position < len(form.lines.entries):
                field = form.lines.entries[position].form[parts[2]]
                field.errors = [*field.errors, *messages]
                continue
        header[key] = messages
    ValidationFailed(header).show_on(form, renamed={"lines": "_whole_quotation"})


def _line_products(form: QuoteForm) -> list[Product]:
    keep = []
    for row in _rows(form):
        try:
            keep.append(int(row.get("product_id") or 0))
        except ValueError:
            continue
    return service.product_choices(keep)


def _render_form(
    form: QuoteForm,
    opportunity: Opportunity,
    quote: Quotation | None = None,
    preview: service.Totals | None = None,
    status: int = 200,
    conflict: str | None = None,
) -> Any:
    customer = db.session.get(Customer, opportunity.customer_id)
    return (
        render_template(
            "sales/quotes/form.html",
            form=form,
            opportunity=opportunity,
            customer=customer,
            quote=quote,
            preview=preview,
            products=_line_products(form),
            next_index=_next_index(form),
            conflict=conflict,
        ),
        status,
    )


def _blank_rows(form: QuoteForm, count: int = BLANK_ROWS) -> None:
    for _index in range(count):
        form.lines.append_entry({"quantity": "1", "discount": "0"})


def _form_step(form: QuoteForm) -> str | None:
    """Handle the buttons that only change the form (no JavaScript): remove a row, add
    blank rows. Returns the action to carry out, or None when the form is re-shown."""
    removed = request.form.get("remove_line", "")
    if removed:
        form.lines.entries = [e for e in form.lines.entries if e.name != f"lines-{removed}"]
        return None
    action = request.form.get("action", "save")
    if action == "more_lines":
        _blank_rows(form)
        return None
    return action


def _preview(form: QuoteForm, kept: list[int] | None = None) -> service.Totals:
    """The totals of the lines as typed (ValidationFailed when a line is wrong); ``kept``
    are the products a draft already uses, still allowed when taken off the list."""
    return service.compute_totals(service.parse_lines(_rows(form), kept or ()))


@bp.route("/quotes/new", methods=["GET", "POST"])
@require_permission("sales.edit")
def new() -> Any:
    """A new quotation from an opportunity (``?opportunity_id=``) in the write scope."""
    from portal.loops.service import local_today

    opportunity_id = request.args.get("opportunity_id", "")
    if not opportunity_id.isdecimal():
        flash(_("Open an opportunity and make the quotation from there."), "warning")
        return redirect(url_for("sales_pipeline.index"))
    opportunity = service.opportunity_for_quote(opportunity_id, current_user)
    if request.method == "GET":
        form = QuoteForm(
            formdata=None,
            data={
                "valid_until": (local_today() + timedelta(days=DEFAULT_VALIDITY_DAYS)).isoformat(),
                "delivery_method": "courier",
                "payment_terms_days": "30",
            },
        )
        _blank_rows(form)
        if opportunity.status != "open":
            form.form_errors.append(_("The opportunity is closed: quote only open ones."))
        return _render_form(form, opportunity)
    form = QuoteForm()
    action = _form_step(form)
    if action is None:
        return _render_form(form, opportunity)
    valid = form.validate()
    try:
        if action == "recalculate":
            preview = _preview(form)
            return _render_form(form, opportunity, preview=preview, status=200 if valid else 422)
        if not valid:
            service.check_quotation(form.data, _rows(form))  # every message at once
            raise ValidationFailed({})
        quote = service.create_quotation(opportunity, form.data, _rows(form), current_user)
        db.session.commit()
    except ValidationFailed as error:
        db.session.rollback()
        _show_errors(form, error)
        return _render_form(form, opportunity, status=422)
    except Exception:
        db.session.rollback()
        raise
    flash(_("Quotation %(number)s saved as a draft.", number=quote.number), "success")
    return redirect(url_for(".detail", quote_id=quote.id), 303)


@bp.route("/quotes/<int:quote_id>/edit", methods=["GET", "POST"])
@require_permission("sales.edit")
def edit(quote_id: int) -> Any:
    """Change a draft (the newest version; pending, decided or sent ones are locked)."""
    quote = service.get_quotation_or_404(quote_id, current_user, "write")
    opportunity = db.session.get(Opportunity, quote.opportunity_id)
    if request.method == "GET":
        if not service.is_editable(quote):
            flash(_("Only a draft can be changed. Revise the quotation instead."), "warning")
            return redirect(url_for(".detail", quote_id=quote.id))
        form = QuoteForm(
            formdata=None,
            data={
                **service.header_values(quote),
                "valid_until": quote.valid_until.isoformat(),
                "payment_terms_days": str(quote.payment_terms_days),
                "lock_version": quote.lock_version,
                "lines": [service.line_values(line) for line in quote.lines],
            },
        )
        _blank_rows(form, 1)
        preview = service.Totals(
            quote.list_total_cents,
            quote.total_cents,
            quote.cost_total_cents,
            quote.discount_bp,
            quote.margin_bp,
        )
        return _render_form(form, opportunity, quote, preview=preview)
    form = QuoteForm()
    if not service.is_editable(quote):
        message = _("Only a draft can be changed. Revise the quotation instead.")
        return _render_form(form, opportunity, quote, status=409, conflict=message)
    action = _form_step(form)
    if action is None:
        return _render_form(form, opportunity, quote)
    kept = [line.product_id for line in quote.lines if line.product_id]
    valid = form.validate()
    try:
        if action == "recalculate":
            preview = _preview(form, kept)
            return _render_form(form, opportunity, quote, preview, status=200 if valid else 422)
        if not valid:
            service.check_quotation(form.data, _rows(form), allowed_inactive=kept)
            raise ValidationFailed({})
        service.update_quotation(
            quote, form.data, _rows(form), current_user, expected_version=form.lock_version.data
        )
        db.session.commit()
    except ValidationFailed as error:
        db.session.rollback()
        _show_errors(form, error)
        return _render_form(form, opportunity, quote, status=422)
    except (StateConflict, StaleDataError) as error:
        db.session.rollback()
        message = str(error) if isinstance(error, StateConflict) else _conflict_text()
        return _render_form(form, opportunity, quote, status=409, conflict=message)
    except Exception:
        db.session.rollback()
        raise
    flash(_("Quotation %(number)s saved.", number=quote.number), "success")
    return redirect(url_for(".detail", quote_id=quote.id), 303)


def _conflict_text() -> str:
    return _("Someone changed this quotation meanwhile. Reload it and make your changes again.")


@bp.get("/quotes/line")
@require_permission("sales.edit")
def line_row() -> Any:
    """One line row (htmx): a new blank row (``add=1``, with the "add" button for the
    next one), or the row again with the product's description, price and cost filled
    in when its product was changed."""
    index = request.args.get("index", type=int)
    if index is None or not 0 <= index <= MAX_ROW_INDEX:
        abort(400)
    prefix = f"lines-{index}"
    typed = MultiDict(
        {key: value for key, value in request.args.items() if key.startswith(prefix + "-")}
    )
    form = LineForm(formdata=typed if typed else None, prefix=prefix)
    if not typed:
        form.quantity.data, form.discount.data = "1", "0"
    if request.headers.get("HX-Trigger-Name") == f"{prefix}-product_id":
        product = None
        if (form.product_id.data or "").isdecimal():
            wanted = int(form.product_id.data)
            product = service.products_by_id([wanted]).get(wanted)
        if product is not None:
            form.description.data = product.name
            form.unit_price.data = str(yuan(product.list_price_cents))
            form.unit_cost.data = str(yuan(product.cost_cents))
        else:
            form.unit_cost.data = ""
    keep = [int(form.product_id.data)] if (form.product_id.data or "").isdecimal() else []
    response = render_template(
        "sales/quotes/_line_fragment.html",
        line=form,
        index=index,
        products=service.product_choices(keep),
        add_button=request.args.get("add") == "1",
        next_index=index + 1,
    )
    return vary_on_htmx(response)


# -- one quotation ---------------------------------------------------------------------------


def _render_detail(
    quote: Quotation,
    status: int = 200,
    messages: list[str] | None = None,
    answer_form: AnswerForm | None = None,
    note_form: NoteForm | None = None,
) -> Any:
    from portal.loops import approvals

    customer = db.session.get(Customer, quote.customer_id)
    opportunity = db.session.get(Opportunity, quote.opportunity_id)
    approval = service.approval_of(quote)
    can_write = sales_may_edit(quote)
    products = service.products_by_id(line.product_id for line in quote.lines)
    response = render_template(
        "sales/quotes/detail.html",
        quote=quote,
        customer=customer,
        opportunity=opportunity,
        products=products,
        versions=service.versions_of(quote),
        notes=service.notes_of(quote),
        approval=approval,
        steps=approvals.timeline(approval) if approval is not None else [],
        reason=service.reason_label(approval.reason) if approval is not None else "",
        can_write=can_write,
        editable=can_write and service.is_editable(quote),
        revisable=can_write and quote.status in service.REVISABLE,
        action_form=ActionForm(),
        answer_form=answer_form or AnswerForm(formdata=None),
        note_form=note_form or NoteForm(formdata=None),
        messages=messages or [],
    )
    return response, status


@bp.get("/quotes/<int:quote_id>")
@require_permission("sales.view")
def detail(quote_id: int) -> Any:
    """One version: lines, totals, approval, versions, negotiation, answer."""
    return _render_detail(service.get_quotation_or_404(quote_id, current_user))


def _refused(quote_id: int, error: Exception, status: int, **forms: Any) -> Any:
    """Nothing written: the page again with the messages (422 bad input, 409 state)."""
    db.session.rollback()
    quote = service.get_quotation_or_404(quote_id, current_user)
    if isinstance(error, ValidationFailed):
        messages = [text for texts in error.fields.values() for text in texts]
    elif isinstance(error, StaleDataError):
        messages = [_conflict_text()]
    else:
        messages = [str(error)]
    return _render_detail(quote, status=status, messages=messages, **forms)


@bp.post("/quotes/<int:quote_id>/submit")
@require_permission("sales.edit")
def submit(quote_id: int) -> Any:
    """Submit the discount for approval: the rule file decides at once or routes it."""
    quote = service.get_quotation_or_404(quote_id, current_user, "write")
    form = ActionForm()
    if not form.validate():
        return _render_detail(quote, 422, [_("The form expired. Try again.")])
    try:
        found = service.submit_for_approval(quote, current_user)
        db.session.commit()
    except ValidationFailed as error:
        return _refused(quote_id, error, 422)
    except (StateConflict, StaleDataError) as error:
        return _refused(quote_id, error, 409)
    except Exception:
        db.session.rollback()
        raise
    if quote.status == "approved":
        flash(_("Within your discount authority: approved, ready to send."), "success")
    elif quote.status == "rejected":
        reason = service.reason_label(found.reason)
        flash(_("Rejected by the discount rules: %(reason)s", reason=reason), "danger")
    else:
        flash(_("Sent for approval. The quotation is locked until it is decided."), "info")
    return redirect(url_for(".detail", quote_id=quote.id), 303)


@bp.post("/quotes/<int:quote_id>/revise")
@require_permission("sales.edit")
def revise(quote_id: int) -> Any:
    """A new version to change; the old one is kept and marked superseded."""
    quote = service.get_quotation_or_404(quote_id, current_user, "write")
    form = ActionForm()
    if not form.validate():
        return _render_detail(quote, 422, [_("The form expired. Try again.")])
    try:
        fresh = service.revise(quote, current_user)
        db.session.commit()
    except (StateConflict, StaleDataError) as error:
        return _refused(quote_id, error, 409)
    except Exception:
        db.session.rollback()
        raise
    flash(_("Version %(n)s created: change it and submit it again.", n=fresh.version), "success")
    return redirect(url_for(".edit", quote_id=fresh.id), 303)


@bp.post("/quotes/<int:quote_id>/answer")
@require_permission("sales.edit")
def answer(quote_id: int) -> Any:
    """Record the customer's side: sent, accepted, declined (with a note)."""
    quote = service.get_quotation_or_404(quote_id, current_user, "write")
    form = AnswerForm()
    if not form.validate():
        return _render_detail(quote, 422, answer_form=form)
    try:
        service.record_answer(quote, form.status.data or "", current_user, form.note.data or "")
        db.session.commit()
    except ValidationFailed as error:
        db.session.rollback()
        error.show_on(form)
        return _render_detail(quote, 422, answer_form=form)
    except (StateConflict, StaleDataError) as error:
        return _refused(quote_id, error, 409)
    except Exception:
        db.session.rollback()
        raise
    flash(_("Quotation marked %(status)s.", status=label("quote_status", quote.status)), "success")
    return redirect(url_for(".detail", quote_id=quote.id), 303)


@bp.post("/quotes/<int:quote_id>/notes")
@require_permission("sales.edit")
def add_note(quote_id: int) -> Any:
    """Add a negotiation note; with htmx the notes panel comes back with it on top."""
    quote = service.get_quotation_or_404(quote_id, current_user, "write")
    form = NoteForm()
    status = 200
    try:
        if not form.validate():
            raise ValidationFailed({})
        service.add_note(quote, current_user, form.body.data or "")
        db.session.commit()
        form = NoteForm(formdata=None)
    except ValidationFailed as error:
        db.session.rollback()
        error.show_on(form)
        status = 422
    except Exception:
        db.session.rollback()
        raise
    if is_htmx_request(boosted=False):
        body = render_template(
            "sales/quotes/_notes.html",
            quote=quote,
            notes=service.notes_of(quote),
            note_form=form,
            can_write=True,
        )
        return vary_on_htmx(make_response(body, status))
    if status != 200:
        return _render_detail(quote, 422, note_form=form)
    return redirect(url_for(".detail", quote_id=quote.id) + "#notes", 303)


# -- printing -----------------------------------------------------------------------------


@bp.get("/quotes/<int:quote_id>/print")
@require_permission("sales.view")
def print_view(quote_id: int) -> Any:
    """The quotation as the customer gets it, in Chinese or English (``?lang=``)
    whatever language the portal speaks to the user; print it or save it as PDF."""
    quote = service.get_quotation_or_404(quote_id, current_user)
    supported = current_app.config.get("PORTAL_LOCALES", ["en"])
    wanted = request.args.get("lang", "")
    lang = wanted if wanted in supported else str(get_locale() or supported[0])
    customer = db.session.get(Customer, quote.customer_id)
    products = service.products_by_id(line.product_id for line in quote.lines)
    owner = db.session.get(User, quote.owner_id)
    contact = db.session.scalars(
        sa.select(ContactPerson)
        .where(ContactPerson.customer_id == quote.customer_id)
        .order_by(ContactPerson.is_primary.desc(), ContactPerson.id)
        .limit(1)
    ).first()
    with force_locale(lang):
        body = render_template(
            "sales/quotes/print.html",
            quote=quote,
            customer=customer,
            products=products,
            owner=owner,
            contact=contact,
            lang=lang,
            languages=supported,
            amount_in_words=service.chinese_amount(quote.total_cents)
            if lang.startswith("zh")
            else "",
        )
    return body


# -- the product list ------------------------------------------------------------------------


@bp.get("/quotes/products")
@require_permission("sales.view")
def products() -> Any:
    """The product list quotations are made from: search by code, name or category."""
    manage = current_user.can("sales.manage_products")
    text = request.args.get("q", "")[:100]
    inactive = manage and request.args.get("inactive") == "1"
    page = paginate(service.search_products(text, include_inactive=inactive))
    context = {
        "page": page,
        "q": text,
        "inactive": inactive,
        "manage": manage,
        "show_cost": manage or current_user.can("sales.edit"),
        "action_form": ActionForm(),
    }
    return render_template("sales/quotes/products.html", **context)


def _product_page(form: ProductForm, product: Product | None, status: int = 200) -> Any:
    return render_template("sales/quotes/product_form.html", form=form, product=product), status


def _save_product(form: ProductForm, product: Product | None) -> Any:
    try:
        if not form.validate():
            raise ValidationFailed({})
        saved = service.save_product(product, form.data, current_user)
        db.session.commit()
    except ValidationFailed as error:
        db.session.rollback()
        error.show_on(form)
        return _product_page(form, product, 422)
    except sa.exc.IntegrityError:  # the same code saved by someone else meanwhile
        db.session.rollback()
        form.code.errors = [*form.code.errors, _("Another product has this code.")]
        return _product_page(form, product, 422)
    except Exception:
        db.session.rollback()
        raise
    flash(_("Product %(code)s saved.", code=saved.code), "success")
    return redirect(url_for(".products", q=saved.code), 303)


@bp.route("/quotes/products/new", methods=["GET", "POST"])
@require_permission("sales.manage_products")
def new_product() -> Any:
    """Add a product to the list."""
    if request.method == "GET":
        return _product_page(ProductForm(formdata=None), None)
    return _save_product(ProductForm(), None)


@bp.route("/quotes/products/<int:product_id>/edit", methods=["GET", "POST"])
@require_permission("sales.manage_products")
def edit_product(product_id: int) -> Any:
    """Change a product: later quotations use the new prices, earlier ones keep theirs."""
    product = db.session.get(Product, product_id) or abort(404)
    if request.method == "GET":
        data = {
            "code": product.code,
            "name": product.name,
            "category": product.category,
            "unit": product.unit,
            "list_price": str(yuan(product.list_price_cents)),
            "cost": str(yuan(product.cost_cents)),
        }
        return _product_page(ProductForm(formdata=None, data=data), product)
    return _save_product(ProductForm(), product)


@bp.post("/quotes/products/<int:product_id>/active")
@require_permission("sales.manage_products")
def product_active(product_id: int) -> Any:
    """Take a product off the list or put it back (``active=0|1``)."""
    product = db.session.get(Product, product_id) or abort(404)
    form = ActionForm()
    if not form.validate():
        abort(400)
    active = request.form.get("active") == "1"
    service.set_product_active(product, active, current_user)
    db.session.commit()
    if active:
        flash(_("Product %(code)s is on the list again.", code=product.code), "success")
    else:
        flash(_("Product %(code)s taken off the list.", code=product.code), "success")
    return redirect(url_for(".products", inactive="1" if not active else None), 303)
