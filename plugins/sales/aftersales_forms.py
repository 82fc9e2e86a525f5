"""Forms of after-sales (P3.5): logging feedback or a complaint and handling it. The
JSON API validates its bodies with the same classes (``portal.api.validated``), so a
browser and a script get the same per-field messages; the service checks the rest
(scope, the customer's contracts, the state of the record)."""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    DateField,
    HiddenField,
    IntegerField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from portal.loops.forms import LocalDateTimeField, owner_choices
from portal.org.forms import _optional_int

from .aftersales import ACTIONS, MAX_TEXT, MAX_TITLE
from .models import FEEDBACK_CATEGORIES, FEEDBACK_KINDS, FEEDBACK_PRIORITIES
from .vocabulary import choices


class FeedbackForm(FlaskForm):
    """Log feedback or a complaint (``/sales/aftersales/new``, ``POST
    /api/v1/sales/feedback``)."""

    customer_id = IntegerField(
        _l("Customer"),
        validators=[
            InputRequired(message=_l("Choose the customer.")),
            NumberRange(min=1, max=2**62, message=_l("Choose the customer.")),
        ],
        description=_l("The customer's id"),
    )
    contract_id = SelectField(
        _l("Contract"),
        coerce=_optional_int,
        validate_choice=False,  # the service checks it belongs to the customer
        validators=[Optional()],
        description=_l("Optional: the contract it is about"),
    )
    kind = SelectField(
        _l("Kind"),
        default="complaint",
        validators=[DataRequired()],
        description=_l("feedback or complaint"),
    )
    category = SelectField(
        _l("Category"),
        validators=[DataRequired()],
        description=_l("quality, usage, service, delivery, billing or other"),
    )
    priority = SelectField(
        _l("Priority"),
        default="normal",
        validators=[DataRequired()],
        description=_l("low, normal, high or urgent; quality complaints are handled as high"),
    )
    title = StringField(
        _l("Title"),
        validators=[
            DataRequired(message=_l("Say in a few words what the customer reports.")),
            Length(max=MAX_TITLE),
        ],
    )
    description = TextAreaField(
        _l("Description"),
        validators=[Optional(), Length(max=MAX_TEXT)],
        description=_l("What happened, in the customer's words; product, batch, order."),
    )
    received_at = LocalDateTimeField(
        _l("Received at"),
        validators=[Optional()],
        description=_l("When the customer told us; empty for now. The deadlines count from it."),
    )

    def __init__(
        self, *args: Any, contracts: list[tuple[int, str]] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.kind.choices = choices("feedback_kind", FEEDBACK_KINDS)
        self.category.choices = choices("feedback_category", FEEDBACK_CATEGORIES)
        self.priority.choices = choices("priority", FEEDBACK_PRIORITIES)
        self.contract_id.choices = [(None, "—"), *(contracts or [])]

    def values(self) -> dict[str, Any]:
        """What the service reads."""
        return {
            "customer_id": self.customer_id.data,
            "contract_id": self.contract_id.data,
            "kind": self.kind.data,
            "category": self.category.data,
            "priority": self.priority.data,
            "title": self.title.data,
            "description": self.description.data,
            "received_at": self.received_at.data,
        }


class _VersionedForm(FlaskForm):
    # The record's lock version the person saw: acting on an out-of-date page is a
    # conflict (409), not a silent overwrite.
    version = HiddenField()


class RespondForm(_VersionedForm):
    """The first response to the customer."""

    first_response = TextAreaField(
        _l("What the customer was told"),
        validators=[
            DataRequired(message=_l("Say what the customer was told.")),
            Length(max=MAX_TEXT),
        ],
    )


class CauseForm(_VersionedForm):
    """Cause and action taken."""

    cause = TextAreaField(
        _l("Cause"),
        validators=[Length(max=MAX_TEXT)],
        description=_l("Why it happened (required for a complaint)."),
    )
    # Required as the service says (cause only for a complaint): one message per field.
    action_taken = TextAreaField(_l("Action taken"), validators=[Length(max=MAX_TEXT)])


class ConfirmForm(_VersionedForm):
    """The customer's confirmation that the matter is resolved."""

    customer_confirmed_by = StringField(
        _l("Confirmed by"),
        validators=[
            DataRequired(message=_l("Say who at the customer confirmed.")),
            Length(max=200),
        ],
        description=_l("Name and role at the customer."),
    )
    customer_confirmation = TextAreaField(
        _l("Confirmation"),
        validators=[
            DataRequired(
                message=_l("Say what the customer confirmed and how (call, email, signed note).")
            ),
            Length(max=MAX_TEXT),
        ],
    )


class CloseForm(_VersionedForm):
    """Close the record (cause, action and confirmation are checked by the service)."""


class CorrectiveForm(_VersionedForm):
    """Raise the root cause and corrective action as a loop item of its own."""

    title = StringField(
        _l("Title"),
        validators=[Optional(), Length(max=MAX_TITLE)],
        description=_l("Empty: named after the complaint."),
    )
    owner_id = SelectField(
        _l("Owner"),
        coerce=_optional_int,
        validators=[DataRequired(message=_l("Choose the owner."))],
        description=_l("Who removes the root cause: yourself or someone you are responsible for."),
    )
    due_on = DateField(
        _l("Due date"),
        validators=[Optional()],
        description=_l("Leave empty for the usual time for its priority."),
    )
    description = TextAreaField(
        _l("What must change"), validators=[Optional(), Length(max=MAX_TEXT)]
    )

    def __init__(self, *args: Any, actor: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.owner_id.choices = owner_choices(actor)


ACTION_FORMS: dict[str, type[FlaskForm]] = {
    "respond": RespondForm,
    "record_cause": CauseForm,
    "confirm": ConfirmForm,
    "close": CloseForm,
    "raise_corrective": CorrectiveForm,
}


class FeedbackActionForm(FlaskForm):
    """``POST /api/v1/sales/feedback/<id>/actions``: one action and the fields it reads
    (respond: first_response; record_cause: cause, action_taken; confirm:
    customer_confirmed_by, customer_confirmation; raise_corrective: title, owner_id,
    due_on, description; close: nothing). Missing fields are named per field (422)."""

    action = SelectField(
        _l("Action"),
        validators=[DataRequired()],
        description=_l("respond, record_cause, confirm, close or raise_corrective"),
    )
    first_response = TextAreaField(_l("First response"), validators=[Length(max=MAX_TEXT)])
    cause = TextAreaField(_l("Cause"), validators=[Length(max=MAX_TEXT)])
    action_taken = TextAreaField(_l("Action taken"), validators=[Length(max=MAX_TEXT)])
    customer_confirmed_by = StringField(_l("Confirmed by"), validators=[Length(max=200)])
    customer_confirmation = TextAreaField(_l("Confirmation"), validators=[Length(max=MAX_TEXT)])
    title = StringField(_l("Title"), validators=[Length(max=MAX_TITLE)])
    owner_id = IntegerField(
        _l("Owner"),
        validators=[Optional(), NumberRange(min=1, max=2**62)],
        description=_l("raise_corrective: the owner's id (default: the owner's supervisor)"),
    )
    due_on = DateField(
        _l("Due date"), validators=[Optional()], description=_l("raise_corrective: YYYY-MM-DD")
    )
    description = TextAreaField(_l("Description"), validators=[Length(max=MAX_TEXT)])
    version = IntegerField(
        _l("Version"),
        validators=[Optional(), NumberRange(min=1, max=2**62)],
        description=_l("The record's version you read; a changed record answers 409"),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.action.choices = [(action, action) for action in ACTIONS]

    def data_for_service(self) -> dict[str, Any]:
        """The fields as the service's ``act`` reads them."""
        return {name: field.data for name, field in self._fields.items() if name != "action"}
