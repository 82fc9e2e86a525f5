"""Forms of the leave area (P6.1). They carry CSRF and render the fields; the checks
that matter (dates, working days, overlap, notice, balance) live in ``leave.py`` and the
rule file, so the pages and the JSON API give the same per-field messages. The API
validates its bodies with the ``*ApiForm`` classes here (``portal.api.validated``)."""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    HiddenField,
    MultipleFileField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import Length, Optional
from wtforms.widgets import DateInput, NumberInput

from .leave import MAX_REASON
from .models import HALVES
from .vocabulary import choices


def _halves() -> list[tuple[str, str]]:
    return choices("half", HALVES)


class LeaveRequestApiForm(FlaskForm):
    """What a leave request says (the JSON API's body)."""

    leave_type = SelectField(_l("Type of leave"), validate_choice=False)
    starts_on = StringField(_l("First day"), widget=DateInput())
    start_half = SelectField(_l("From"), default="am", validate_choice=False)
    ends_on = StringField(_l("Last day"), widget=DateInput())
    end_half = SelectField(_l("Until"), default="pm", validate_choice=False)
    reason = TextAreaField(
        _l("Reason"),
        validators=[Optional(), Length(max=MAX_REASON)],
        description=_l("What your approvers should know."),
    )

    def __init__(self, *args: Any, types: list[tuple[str, str]] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.leave_type.choices = types or []
        self.start_half.choices = [
            ("am", str(_l("Morning (whole day)"))),
            ("pm", str(_l("Afternoon"))),
        ]
        self.end_half.choices = [
            ("pm", str(_l("Afternoon (whole day)"))),
            ("am", str(_l("Morning"))),
        ]


class LeaveRequestForm(LeaveRequestApiForm):
    """The page's form: the request and supporting documents."""

    documents = MultipleFileField(
        _l("Documents"),
        description=_l("E.g. a hospital certificate: pictures or PDF files."),
        render_kw={"accept": ".pdf,.png,.jpg,.jpeg,.gif,.webp,image/*,application/pdf"},
    )


class DocumentsForm(FlaskForm):
    """Documents added to a request later."""

    documents = MultipleFileField(
        _l("Add documents"),
        description=_l("Pictures or PDF files."),
        render_kw={"accept": ".pdf,.png,.jpg,.jpeg,.gif,.webp,image/*,application/pdf"},
    )


class ActionForm(FlaskForm):
    """A button that changes a request (cancel): only the CSRF token."""


class LeaveTypeForm(FlaskForm):
    """A leave type on the settings page."""

    code = SelectField(
        _l("Code"),
        validate_choice=False,
        description=_l(
            "A leave type of the rule file leave_approval: it decides notice and approvers."
        ),
    )
    name_en = StringField(_l("Name (English)"), validators=[Optional(), Length(max=80)])
    name_zh = StringField(_l("Name (Chinese)"), validators=[Optional(), Length(max=80)])
    paid = BooleanField(_l("Paid leave"), default=True)
    uses_balance = BooleanField(_l("Taken from a yearly balance"))
    yearly_days = StringField(
        _l("Days granted each year"),
        default="0",
        widget=NumberInput(min=0, max=366, step="0.5"),
        description=_l("What “Grant the year's entitlement” gives each person."),
    )
    position = StringField(_l("Order in lists"), default="0", widget=NumberInput(min=0, step=1))
    active = BooleanField(_l("Offered"), default=True)


class GrantForm(FlaskForm):
    """Grant the year's entitlement to everyone."""

    year = StringField(_l("Year"), widget=NumberInput(min=2000, max=2100, step=1))


class AdjustForm(FlaskForm):
    """Change one person's balance, with a reason."""

    owner_id = SelectField(_l("Person"), validate_choice=False)
    leave_type = SelectField(_l("Type of leave"), validate_choice=False)
    year = StringField(_l("Year"), widget=NumberInput(min=2000, max=2100, step=1))
    change_days = StringField(
        _l("Days to add"),
        widget=NumberInput(min=-366, max=366, step="0.5"),
        description=_l("A negative number takes days away."),
    )
    reason = StringField(_l("Reason"), validators=[Optional(), Length(max=500)])
    version = HiddenField()


class AdjustApiForm(FlaskForm):
    """The API's balance adjustment."""

    owner_id = StringField()
    leave_type = StringField()
    year = StringField()
    change_days = StringField()
    reason = StringField()
