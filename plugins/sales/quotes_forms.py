"""Forms of the quotes area (P3.3). They carry CSRF and render the fields; the checks
that matter (amounts, percentages, validity, lines) live in ``quotes.py`` so that the
pages and the JSON API give the same per-field messages. The API validates its bodies
with the header forms here (``portal.api.validated``)."""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    FieldList,
    Form,
    FormField,
    HiddenField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, Optional
from wtforms.widgets import DateInput, NumberInput

from .models import DELIVERY_METHODS
from .quotes import MAX_LINES, MAX_NOTE
from .vocabulary import choices

BLANK_ROWS = 3  # blank line rows a new form shows, and how many "Add more lines" adds


class LineForm(Form):
    """One line: a product from the list or a free line. Every value is text here;
    ``quotes.parse_lines`` checks it (and skips a row left blank)."""

    product_id = StringField(_l("Product"))
    description = StringField(_l("Description"), validators=[Optional(), Length(max=300)])
    quantity = StringField(_l("Quantity"), default="1", widget=NumberInput(min=1, step=1))
    unit_price = StringField(_l("Unit price (yuan)"), widget=NumberInput(min=0, step="0.01"))
    unit_cost = StringField(_l("Unit cost (yuan)"), widget=NumberInput(min=0, step="0.01"))
    discount = StringField(
        _l("Discount"), default="0", widget=NumberInput(min=0, max=100, step="0.01")
    )


class QuoteHeaderForm(FlaskForm):
    """The header of a quotation: validity, delivery, payment terms, notes."""

    valid_until = StringField(
        _l("Valid until"),
        widget=DateInput(),
        description=_l("The last day the customer can accept these prices."),
    )
    delivery_method = SelectField(_l("Delivery method"), validate_choice=False)
    delivery_note = StringField(
        _l("Delivery note"),
        validators=[Optional(), Length(max=300)],
        description=_l("Place, lead time or installation details."),
    )
    payment_terms = StringField(
        _l("Payment terms"),
        validators=[Optional(), Length(max=300)],
        description=_l("E.g. 30 percent on order, 70 percent on acceptance."),
    )
    payment_terms_days = StringField(
        _l("Payment due (days)"),
        default="0",
        widget=NumberInput(min=0, max=365, step=1),
        description=_l("Days after invoice; 0 for payment in advance or on delivery."),
    )
    notes = TextAreaField(
        _l("Notes on the quotation"),
        validators=[Optional(), Length(max=MAX_NOTE)],
        description=_l("Printed on the quotation."),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.delivery_method.choices = choices("delivery_method", DELIVERY_METHODS)


class QuoteForm(QuoteHeaderForm):
    """The whole quotation page: header and line rows."""

    lock_version = HiddenField()
    lines = FieldList(FormField(LineForm), min_entries=0, max_entries=MAX_LINES + 50)


class QuoteCreateApiForm(QuoteHeaderForm):
    """``POST /api/v1/sales/quotations``: the header and the opportunity; ``lines`` is a
    list of objects with product_id, description, quantity, unit_price, unit_cost and
    discount (percent)."""

    opportunity_id = StringField(
        _l("Opportunity"), validators=[DataRequired(message=_l("Choose an opportunity."))]
    )


class QuotePatchApiForm(QuoteHeaderForm):
    """``PATCH /api/v1/sales/quotations/<id>``: any header field; ``lines`` (optional)
    replaces all lines; ``version`` refuses a change to a quotation changed since."""

    version = StringField(_l("Version"))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.delivery_method.choices = [("", ""), *self.delivery_method.choices]


class ActionForm(FlaskForm):
    """A button that changes the quotation (submit, revise): CSRF only."""


class AnswerForm(FlaskForm):
    """The customer's answer: sent, accepted or declined (with a note)."""

    status = SelectField(_l("Answer"), validate_choice=False)
    note = TextAreaField(_l("Note"), validators=[Optional(), Length(max=MAX_NOTE)])

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.status.choices = [
            ("sent", _l("Sent to the customer")),
            ("accepted", _l("Accepted by the customer")),
            ("declined", _l("Declined by the customer")),
        ]


class NoteForm(FlaskForm):
    """A negotiation note."""

    body = TextAreaField(
        _l("Negotiation note"),
        validators=[Optional(), Length(max=MAX_NOTE)],
        description=_l("What the customer asked for, what you offered, what was agreed."),
    )


class ProductForm(FlaskForm):
    """A product of the list; prices in yuan."""

    code = StringField(_l("Product code"), validators=[Optional(), Length(max=40)])
    name = StringField(_l("Name"), validators=[Optional(), Length(max=200)])
    category = StringField(_l("Category"), validators=[Optional(), Length(max=80)])
    unit = StringField(
        _l("Unit of sale"),
        validators=[Optional(), Length(max=20)],
        description=_l("E.g. piece, set, year."),
    )
    list_price = StringField(_l("List price (yuan)"), widget=NumberInput(min=0, step="0.01"))
    cost = StringField(
        _l("Cost (yuan)"),
        widget=NumberInput(min=0, step="0.01"),
        description=_l("Used for the gross margin; only people who quote see it."),
    )
