"""Forms of the expense claims (P6.4). They carry CSRF and render the fields; the checks
that matter (amounts, dates, categories, receipts, links) live in ``expenses.py`` so the
pages and the JSON API give the same per-field messages."""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, MultipleFileField, SelectField, StringField
from wtforms.validators import Length, Optional
from wtforms.widgets import DateInput, NumberInput

from .expenses import MAX_CITY, MAX_PURPOSE, MAX_REFERENCE, MAX_TITLE, MAX_VENDOR, categories
from .vocabulary import label


def category_choices() -> list[tuple[str, str]]:
    """The categories of the rule file in force, labelled."""
    return [(code, label("expense_category", code)) for code in categories()]


def link_kind_choices() -> list[tuple[str, str]]:
    """Nothing, or one of the kinds of record other plugins let us link to."""
    from portal.links import link_targets

    return [("", _l("Nothing"))] + [
        (kind, str(target.label)) for kind, target in link_targets().items()
    ]


class LineForm(FlaskForm):
    """One expense line with its receipts. Every value is text: ``expenses.parse_line``
    checks it."""

    spent_on = StringField(_l("Date"), widget=DateInput())
    category = SelectField(_l("Category"), choices=[], validate_choice=False)
    amount = StringField(
        _l("Amount (yuan)"),
        widget=NumberInput(min="0.01", step="0.01"),
        render_kw={"inputmode": "decimal"},
    )
    city = StringField(_l("City"), validators=[Optional(), Length(max=MAX_CITY)])
    vendor = StringField(
        _l("Vendor"),
        validators=[Optional(), Length(max=MAX_VENDOR)],
        description=_l("The restaurant, hotel, taxi company ... as on the receipt."),
    )
    purpose = StringField(_l("Purpose"), validators=[Optional(), Length(max=MAX_PURPOSE)])
    link_kind = SelectField(_l("For"), choices=[], validate_choice=False)
    link_q = StringField(_l("Search"), render_kw={"autocomplete": "off"})
    link_id = SelectField(_l("Record"), choices=[], validate_choice=False)
    # The claim's version the person saw on the edit page: saving over a change made
    # meanwhile (another tab, the API) is a conflict (409), not a silent overwrite.
    version = HiddenField()
    receipts = MultipleFileField(
        _l("Receipts"),
        description=_l("Photos or PDFs of the receipts."),
        render_kw={"accept": "image/*,application/pdf", "capture": "environment"},
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.category.choices = category_choices()
        self.link_kind.choices = link_kind_choices()
        if not self.link_id.choices:
            self.link_id.choices = [("", "—")]


class QuickClaimForm(LineForm):
    """A claim of one line, from a phone: the line and, optionally, a title."""

    title = StringField(_l("Title"), validators=[Optional(), Length(max=MAX_TITLE)])
    submit_now = BooleanField(_l("Submit for approval at once"), default=True)


class ClaimForm(FlaskForm):
    """A new claim (its lines come next)."""

    title = StringField(
        _l("Title"),
        validators=[Length(max=MAX_TITLE)],
        description=_l("E.g. the trip or the month: Shanghai customer visits, March."),
    )


class PayForm(FlaskForm):
    """Finance marks a claim paid."""

    reference = StringField(
        _l("Payment reference"),
        validators=[Length(max=MAX_REFERENCE)],
        description=_l("The bank transfer's reference or the voucher number."),
    )


class ActionForm(FlaskForm):
    """A button that posts (submit, cancel, remove): CSRF only."""

    confirmed = HiddenField(default="yes")
