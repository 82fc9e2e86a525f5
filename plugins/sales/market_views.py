"""Pages of market research (P3.1.1): the notes with filters, recording and changing a
note, and the supervisor's summary by industry, region and competitor.

Everything works without JavaScript (plain forms, redirect after success, the form
again with its messages and 422); the list is a stack of cards, readable on a phone.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from portal.auth.permissions import require_permission
from portal.extensions import db
from portal.listing import paginate
from portal.loops.service import local_today
from portal.org.services import ValidationFailed

from . import market
from .market_forms import MarketNoteForm
from .models import MARKET_NOTE_KINDS, MarketNote
from .template_helpers import sales_may_edit

bp = Blueprint("sales_market", __name__, template_folder="templates")


@bp.get("/market/")
@require_permission("sales.view")
def index() -> Any:
    """The notes in the viewer's scope, newest observation first, with filters."""
    statement = market.filter_notes(market.notes_for(current_user), request.args)
    statement = statement.order_by(MarketNote.observed_on.desc(), MarketNote.id.desc())
    return render_template(
        "sales/market/index.html",
        page=paginate(statement),
        args=request.args,
        kinds=MARKET_NOTE_KINDS,
        competitors=market.competitor_names(current_user),
        areas=market.area_codes(),
        can_edit=current_user.can("sales.edit"),
        can_summarise=current_user.can("sales.view_reports"),
    )


def _form_page(form: MarketNoteForm, note: MarketNote | None, status: int = 200) -> Any:
    return render_template(
        "sales/market/form.html",
        form=form,
        note=note,
        competitors=market.competitor_names(current_user),
    ), status


@bp.route("/market/new", methods=["GET", "POST"])
@require_permission("sales.edit")
def new() -> Any:
    """Record a market note."""
    form = MarketNoteForm()
    if request.method == "GET":
        kind = request.args.get("kind")
        form.kind.data = kind if kind in MARKET_NOTE_KINDS else "market"
        form.observed_on.data = local_today()
        for name in ("industry", "region", "competitor"):
            getattr(form, name).data = request.args.get(name, "")[:80]
        return _form_page(form, None)
    if form.validate():
        try:
            note = market.create_note(form.values(), current_user)
            db.session.commit()
        except ValidationFailed as error:
            db.session.rollback()
            error.show_on(form)
        else:
            flash(_("The note was recorded."), "success")
            return redirect(url_for("sales_market.detail", note_id=note.id), 303)
    return _form_page(form, None, 422)


@bp.get("/market/<int:note_id>")
@require_permission("sales.view")
def detail(note_id: int) -> Any:
    """One note in full."""
    note = market.get_note_or_404(note_id, current_user)
    can_change = sales_may_edit(note)
    return render_template("sales/market/detail.html", note=note, can_change=can_change)


@bp.route("/market/<int:note_id>/edit", methods=["GET", "POST"])
@require_permission("sales.edit")
def edit(note_id: int) -> Any:
    """Change a note one may write."""
    note = market.get_note_or_404(note_id, current_user, "write")
    form = MarketNoteForm(obj=note)
    if request.method == "GET":
        return _form_page(form, note)
    if form.validate():
        try:
            market.update_note(note, form.values(), current_user)
            db.session.commit()
        except ValidationFailed as error:
            db.session.rollback()
            error.show_on(form)
        else:
            flash(_("The note was saved."), "success")
            return redirect(url_for("sales_market.detail", note_id=note.id), 303)
    return _form_page(form, note, 422)


@bp.post("/market/<int:note_id>/delete")
@require_permission("sales.edit")
def delete(note_id: int) -> Any:
    """Remove a note one may write."""
    note = market.get_note_or_404(note_id, current_user, "write")
    market.delete_note(note, current_user)
    db.session.commit()
    flash(_("The note was deleted."), "success")
    return redirect(url_for("sales_market.index"), 303)


@bp.get("/market/summary")
@require_permission("sales.view_reports")
def summary() -> Any:
    """The notes of the viewer's team counted by industry and region and by
    competitor over a period (90 days unless chosen)."""
    days = market.period_days(request.args.get("days"))
    return render_template(
        "sales/market/summary.html",
        summary=market.summary(current_user, days),
        periods=market.SUMMARY_PERIODS,
        other=market.OTHER,
    )
