"""Forms of contracts: the contract itself (clauses, checklist, milestones, payment plan)
and the steps of its life (sign, milestone done, payment, satisfaction, cancel). The
JSON API validates its bodies with the same classes, so a page and a script get the
same messages under the same field names (``instalments-1-amount``)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    FieldList,
    Form,
    FormField,
    HiddenField,
    IntegerField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import InputRequired, Length, NumberRange, Optional

from portal.money import MAX_AMOUNT_CENTS, format_money, to_cents, yuan
from portal.org.forms import _optional_int

from .contracts import (
    MAX_INSTALMENTS,
    MAX_REASON,
    MAX_TERMS_DAYS,
    MAX_TEXT,
    ContractValues,
    InstalmentRow,
    checklist_items,
)
from .models import MILESTONE_KINDS
from .vocabulary import LABELS, label


class YuanField(StringField):
    """An amount in yuan with at most two decimals (``1234.50``, ``1,234.5``); ``data``
    is whole fen, or None when left empty."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.raw_text: str | None = None

    def process_formdata(self, valuelist: list[Any]) -> None:
        text = str(valuelist[0]).strip() if valuelist else ""
        self.raw_text = text
        self.data = None
        if not text:
            return
        try:
            exponent = Decimal(text.replace(",", "")).as_tuple().exponent
        except (InvalidOperation, ValueError):
            exponent = None
        if not isinstance(exponent, int) or exponent < -2:
            raise ValueError(_l("Enter an amount in yuan with at most two decimals: 1234.50."))
        try:
            cents = to_cents(text)
        except ValueError:  # 1e30: more digits than any amount
            raise ValueError(_l("The amount is too large.")) from None
        if abs(cents) > MAX_AMOUNT_CENTS:
            raise ValueError(_l("The amount is too large."))
        self.data = cents

    def process_data(self, value: Any) -> None:
        self.data = value

    def _value(self) -> str:
        if self.raw_text is not None:
            return self.raw_text
        return str(yuan(self.data)) if self.data is not None else ""


class ChecklistForm(Form):
    """One tick box per item of the review checklist (vocabulary contract_checklist)."""


for _code, _text in LABELS["contract_checklist"].items():
    setattr(ChecklistForm, _code, BooleanField(_text))


class MilestonesForm(Form):
    """The due date of each milestone; delivery is required, the others optional."""

    delivery = DateField(_l("Delivery"), validators=[Optional()])
    installation = DateField(_l("Installation"), validators=[Optional()])
    commissioning = DateField(_l("Commissioning"), validators=[Optional()])
    acceptance = DateField(_l("Acceptance"), validators=[Optional()])


class InstalmentForm(Form):
    """One row of the payment plan."""

    due_on = DateField(_l("Due date"), validators=[Optional()])
    amount = YuanField(_l("Amount (yuan)"))


class ContractForm(FlaskForm):
    """Create (from a quotation) or change a contract before review."""

    version = HiddenField()
    title = StringField(_l("Title"), validators=[InputRequired(), Length(max=200)])
    starts_on = DateField(_l("Start date"), validators=[Optional()])
    ends_on = DateField(_l("End date"), validators=[Optional()])
    payment_terms_days = IntegerField(
        _l("Payment terms (days of credit)"),
        validators=[InputRequired(), NumberRange(min=0, max=MAX_TERMS_DAYS)],
        description=_l("0: prepaid or cash on delivery. Longer terms may add reviewers."),
    )
    non_standard_clauses = BooleanField(_l("Clauses differ from the company's standard contract"))
    clauses_note = TextAreaField(
        _l("Which clauses differ, and why"), validators=[Optional(), Length(max=MAX_TEXT)]
    )
    checklist = FormField(ChecklistForm, label=_l("Review checklist"))
    milestones = FormField(MilestonesForm, label=_l("Execution milestones"))
    instalments = FieldList(
        FormField(InstalmentForm), min_entries=1, max_entries=MAX_INSTALMENTS + 1
    )

    def values(self) -> ContractValues:
        """The parsed values for the services."""
        checklist = {code: bool(self.checklist.form[code].data) for code in checklist_items()}
        return ContractValues(
            title=(self.title.data or "").strip(),
            starts_on=self.starts_on.data,
            ends_on=self.ends_on.data,
            payment_terms_days=self.payment_terms_days.data,
            non_standard_clauses=bool(self.non_standard_clauses.data),
            clauses_note=(self.clauses_note.data or "").strip(),
            checklist=checklist,
            milestones={kind: self.milestones.form[kind].data for kind in MILESTONE_KINDS},
            instalments=[
                InstalmentRow(entry.form.due_on.data, entry.form.amount.data)
                for entry in self.instalments.entries
            ],
        )

    def fill(self, values: ContractValues, blank_rows: int = 1) -> None:
        """Show stored or suggested values (GET), with blank plan rows to add to."""
        self.title.data = values.title
        self.starts_on.data = values.starts_on
        self.ends_on.data = values.ends_on
        self.payment_terms_days.data = values.payment_terms_days
        self.non_standard_clauses.data = values.non_standard_clauses
        self.clauses_note.data = values.clauses_note
        for code in checklist_items():
            self.checklist.form[code].data = bool(values.checklist.get(code))
        for kind in MILESTONE_KINDS:
            self.milestones.form[kind].data = values.milestones.get(kind)
        while self.instalments.entries:
            self.instalments.pop_entry()
        for row in values.instalments:
            entry = self.instalments.append_entry()
            entry.form.due_on.data = row.due_on
            entry.form.amount.data = row.amount_cents
        for _blank in range(blank_rows):
            if len(self.instalments.entries) < MAX_INSTALMENTS:
                self.instalments.append_entry()

    def all_fields(self) -> dict[str, Any]:
        """Every field by its full name (``instalments-0-amount``), nested ones too: the
        services' messages are put on the field they name."""
        found: dict[str, Any] = {}

        def walk(fields: Any) -> None:
            for item in fields:
                if isinstance(item, FormField):
                    walk(item.form)
                elif isinstance(item, FieldList):
                    found[item.name] = item
                    for entry in item.entries:
                        walk(entry.form)
                else:
                    found[item.name] = item

        walk(self)
        return found


class SignForm(FlaskForm):
    """Record the signature of an approved contract."""

    version = HiddenField()
    signed_on = DateField(_l("Signed on"), validators=[InputRequired()])


class MilestoneDoneForm(FlaskForm):
    """A milestone reached: what was done (closes its loop item)."""

    version = HiddenField()
    note = TextAreaField(
        _l("What was done"),
        validators=[Optional(), Length(max=MAX_TEXT)],
        description=_l("For example: delivered 20 units, delivery note signed by the buyer."),
    )


class PaymentForm(FlaskForm):
    """Money received on a signed contract (finance)."""

    version = HiddenField()
    instalment_id = SelectField(_l("Instalment"), coerce=_optional_int, validate_choice=False)
    amount = YuanField(_l("Amount received (yuan)"), validators=[InputRequired()])
    received_on = DateField(_l("Received on"), validators=[InputRequired()])

    def __init__(self, *args: Any, instalments: list[Any] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices: list[tuple[Any, str]] = [("", str(_l("The earliest unpaid first")))]
        for row in instalments or []:
            if row.paid_cents < row.amount_cents:
                open_cents = row.amount_cents - row.paid_cents
                text = _l(
                    "%(n)s. due %(day)s: %(open)s open",
                    n=row.sequence,
                    day=row.due_on.isoformat(),
                    open=format_money(open_cents),
                )
                choices.append((row.id, str(text)))
        self.instalment_id.choices = choices


class SatisfactionForm(FlaskForm):
    """The customer's satisfaction after delivery."""

    version = HiddenField()
    score = SelectField(_l("Score"), coerce=_optional_int, validators=[InputRequired()])
    note = TextAreaField(
        _l("What the customer said"), validators=[Optional(), Length(max=MAX_TEXT)]
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.score.choices = [
            (5, str(_l("5: very satisfied"))),
            (4, str(_l("4: satisfied"))),
            (3, str(_l("3: neutral"))),
            (2, str(_l("2: dissatisfied"))),
            (1, str(_l("1: very dissatisfied"))),
        ]


class CancelForm(FlaskForm):
    """Cancel an unsigned contract."""

    version = HiddenField()
    reason = TextAreaField(
        _l("Why it is cancelled"), validators=[InputRequired(), Length(max=MAX_REASON)]
    )


class VersionForm(FlaskForm):
    """A step with nothing to fill in (submit for review, complete): the version the
    person saw, so acting on a stale page is a conflict."""

    version = HiddenField()


def status_choices() -> list[tuple[str, str]]:
    """Contract statuses for the list filter."""
    return [(code, label("contract_status", code)) for code in LABELS["contract_status"]]
