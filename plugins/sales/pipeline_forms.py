"""Forms of the pipeline (P3.2): the opportunity, a move between stages with the fields
it may fill in on the way, and their JSON API twins (``portal.api.validated`` checks
API bodies with the same classes, so a browser and a script get the same messages).

Choices are set in ``__init__`` (WTForms 3.3 warns on tuple choices in class bodies);
the rule file decides the stages, so they are read when the form is built.
"""

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
from wtforms.validators import (
    DataRequired,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    ValidationError,
)

from . import pipeline
from .vocabulary import choices


def _optional_int(value: object) -> int | None:
    if value in (None, "", "None"):
        return None
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(_l("Not a valid choice.")) from None


def _amount(form: Any, field: Any) -> None:
    """Yuan with at most two decimals, not negative."""
    if field.data in (None, ""):
        return
    try:
        pipeline.parse_amount(field.data)
    except ValueError as error:
        raise ValidationError(str(error)) from None


def _day(form: Any, field: Any) -> None:
    if field.data is None:
        return
    try:
        pipeline.parse_day(field.data)
    except ValueError as error:
        raise ValidationError(str(error)) from None


class OpportunityForm(FlaskForm):
    """Create or edit an opportunity: the need, the solution, who decides, who else
    bids, how much and when."""

    name = StringField(
        _l("Name"),
        validators=[DataRequired(message=_l("Give the opportunity a name.")), Length(max=200)],
        description=_l("What the customer would buy, e.g. Production line upgrade 2026."),
    )
    owner_id = SelectField(_l("Owner"), coerce=_optional_int, validate_choice=True)
    amount = StringField(
        _l("Expected amount (yuan)"),
        validators=[Optional(), _amount],
        description=_l("In yuan, with up to two decimals."),
    )
    expected_close_on = DateField(
        _l("Expected close date"),
        validators=[Optional(), _day],
        render_kw={"type": "date"},
    )
    decision_maker = StringField(
        _l("Decision maker"),
        validators=[Optional(), Length(max=200)],
        description=_l("Who signs: name and title."),
    )
    competitors = StringField(
        _l("Competitors"),
        validators=[Optional(), Length(max=300)],
        description=_l("Who else is bidding; write none if nobody."),
    )
    need_analysis = TextAreaField(
        _l("Needs analysis"),
        validators=[Optional(), Length(max=pipeline.MAX_TEXT)],
        description=_l("The customer's problem, goals, budget and timing, in their words."),
        render_kw={"rows": 5},
    )
    proposed_solution = TextAreaField(
        _l("Proposed solution"),
        validators=[Optional(), Length(max=pipeline.MAX_TEXT)],
        description=_l("What we offer and why it answers the need."),
        render_kw={"rows": 5},
    )
    version = HiddenField()

    def __init__(self, *args: Any, people: list[tuple[int, str]] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.owner_id.choices = [(None, "")] + list(people or [])

    def values(self) -> dict[str, Any]:
        """The service's values (``amount`` stays yuan text; the service converts)."""
        values = {
            name: getattr(self, name).data
            for name in (
                "name",
                "amount",
                "expected_close_on",
                "decision_maker",
                "competitors",
                "need_analysis",
                "proposed_solution",
            )
        }
        if self.owner_id.data:
            values["owner_id"] = self.owner_id.data
        return values


class MoveForm(FlaskForm):
    """Move a card to a stage (a select and a button on every card), with the fields
    the stage may require, shown when they are missing."""

    stage = SelectField(_l("Move to stage"), validators=[DataRequired()])
    version = HiddenField()
    next = HiddenField()
    back = HiddenField()  # the board's filters, to come back to the same board
    need_analysis = TextAreaField(
        _l("Needs analysis"),
        validators=[Optional(), Length(max=pipeline.MAX_TEXT)],
        render_kw={"rows": 4},
    )
    proposed_solution = TextAreaField(
        _l("Proposed solution"),
        validators=[Optional(), Length(max=pipeline.MAX_TEXT)],
        render_kw={"rows": 4},
    )
    decision_maker = StringField(_l("Decision maker"), validators=[Optional(), Length(max=200)])
    competitors = StringField(_l("Competitors"), validators=[Optional(), Length(max=300)])
    amount = StringField(_l("Expected amount (yuan)"), validators=[Optional(), _amount])
    expected_close_on = DateField(
        _l("Expected close date"), validators=[Optional(), _day], render_kw={"type": "date"}
    )
    lost_reason = SelectField(_l("Lost reason"), validators=[Optional()])
    lost_note = TextAreaField(
        _l("What happened"),
        validators=[Optional(), Length(max=5000)],
        description=_l("A line for the team: who won, at what price, what we learnt."),
        render_kw={"rows": 3},
    )

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.stage.choices = [
            (stage.code, pipeline.stage_label(stage.code)) for stage in pipeline.stages()
        ]
        self.lost_reason.choices = [("", "")] + choices("lost_reason", pipeline.lost_reasons())

    def values(self) -> dict[str, Any]:
        """The fields filled in on the way (empty ones are left out)."""
        return {
            name: getattr(self, name).data
            for name in pipeline.MOVE_VALUE_FIELDS
            if getattr(self, name).data not in (None, "")
        }


# -- the JSON API ---------------------------------------------------------------------------


class OpportunityCreateApiForm(OpportunityForm):
    """POST /api/v1/sales/opportunities."""

    customer_id = IntegerField(
        _l("Customer"),
        validators=[
            InputRequired(message=_l("Choose the customer.")),
            NumberRange(min=1, max=2**31 - 1),  # an id; larger overflows the database
        ],
    )


class OpportunityPatchApiForm(OpportunityForm):
    """PATCH /api/v1/sales/opportunities/<id>: only the keys sent change."""

    name = StringField(_l("Name"), validators=[Optional(), Length(max=200)])
    lock_version = IntegerField(
        _l("Version"),
        validators=[
            InputRequired(message=_l("Send the lock_version you read, so no change is lost."))
        ],
    )


class MoveValuesApiForm(FlaskForm):
    """The ``values`` object of POST /api/v1/sales/opportunities/<id>/move."""

    need_analysis = StringField(validators=[Optional(), Length(max=pipeline.MAX_TEXT)])
    proposed_solution = StringField(validators=[Optional(), Length(max=pipeline.MAX_TEXT)])
    decision_maker = StringField(validators=[Optional(), Length(max=200)])
    competitors = StringField(validators=[Optional(), Length(max=300)])
    amount = StringField(validators=[Optional(), _amount])
    expected_close_on = DateField(validators=[Optional(), _day])
    lost_reason = SelectField(validators=[Optional()])
    lost_note = StringField(validators=[Optional(), Length(max=5000)])

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.lost_reason.choices = [("", "")] + [(c, c) for c in pipeline.lost_reasons()]
