"""Forms of the customer file, its contact persons, contacts logged and the pool.

The JSON API validates request bodies with the same classes (``portal.api.validated``),
so a browser and a script get the same per-field messages. The services check again
(imports and jobs call them without a form): the forms give early, friendly messages,
the services are the rule.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    DateTimeLocalField,
    IntegerField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, NumberRange, Optional, ValidationError
from wtforms.widgets import HiddenInput

from portal.extensions import db
from portal.loops.forms import owner_choices
from portal.loops.service import latest_due_date, local_today
from portal.org.forms import _optional_int

from . import customers as service
from .models import (
    ACTIVITY_KINDS,
    COMPANY_SIZES,
    CUSTOMER_GRADES,
    CUSTOMER_SOURCES,
    CUSTOMER_STAGES,
    Opportunity,
)
from .vocabulary import choices

MAX_TEXT = service.MAX_TEXT
# Times a person types: the browser's datetime-local, with or without seconds.
TIME_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"]


def _blank(text: Any) -> list[tuple[str, Any]]:
    return [("", text)]


class CustomerForm(FlaskForm):
    """A prospect's or customer's file (``new``, ``edit``, ``POST /customers``,
    ``PATCH /customers/<id>``)."""

    name = StringField(
        _l("Company name"),
        validators=[DataRequired(message=_l("Give the company's name.")), Length(max=200)],
        description=_l("The registered name, e.g. 上海明达机械有限公司."),
    )
    phone = StringField(_l("Phone"), validators=[Optional(), Length(max=40)])
    email = StringField(_l("Email"), validators=[Optional(), Length(max=200)])
    tax_id = StringField(
        _l("Tax ID"),
        validators=[Optional(), Length(max=40)],
        description=_l("Unified social credit code (18 characters) or old tax number (15)."),
    )
    industry = SelectField(_l("Industry"), default="")
    size = SelectField(_l("Company size"), default="")
    region = SelectField(_l("Sales region"), default="")
    city = StringField(_l("City"), validators=[Optional(), Length(max=80)])
    address = StringField(_l("Address"), validators=[Optional(), Length(max=300)])
    source = SelectField(_l("Source"), default="other")
    need = TextAreaField(
        _l("Need"),
        validators=[Optional(), Length(max=MAX_TEXT)],
        description=_l("What they need or want to solve: screening requires it."),
    )
    grade = SelectField(
        _l("Grade"),
        default="",
        description=_l("Leave it to the screening's suggestion, or choose."),
    )
    stage = SelectField(_l("Stage"), default="prospect")
    owner_id = SelectField(
        _l("Owner"),
        coerce=_optional_int,
        validators=[Optional()],
        description=_l("Who follows this customer up: yourself or someone in your team."),
    )
    notes = TextAreaField(_l("Notes"), validators=[Optional(), Length(max=MAX_TEXT)])
    # The lock version the person read: saving over a newer version is a conflict.
    lock_version = IntegerField(
        widget=HiddenInput(), validators=[Optional(), NumberRange(min=0, max=2**31)]
    )

    def __init__(self, *args: Any, actor: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.industry.choices = _blank(_l("Not known")) + service.industry_choices()
        self.region.choices = _blank(_l("Not known")) + service.region_choices()
        self.size.choices = _blank(_l("Not known")) + choices("size", COMPANY_SIZES)
        self.source.choices = choices("source", CUSTOMER_SOURCES)
        self.grade.choices = _blank(_l("As screening suggests")) + choices("grade", CUSTOMER_GRADES)
        self.stage.choices = choices("customer_stage", CUSTOMER_STAGES)
        self.owner_id.choices = [(None, _l("Myself"))] + [
            (person_id, name)
            for person_id, name in owner_choices(actor)
            if actor is None or person_id != actor.id
        ]

    @property
    def may_choose_owner(self) -> bool:
        """Only someone responsible for others chooses an owner."""
        return len(self.owner_id.choices) > 1

    def values(self) -> dict[str, Any]:
        """The file's fields for the service."""
        return {name: getattr(self, name).data or "" for name in service.FIELDS}


def _not_in_the_past(form: Any, field: Any) -> None:
    if field.data is None:
        return
    if field.data < local_today():
        raise ValidationError(_l("The next follow-up cannot be in the past."))
    if field.data > latest_due_date():
        raise ValidationError(_l("That is too far away: at most ten years from now."))


class ActivityForm(FlaskForm):
    """Log a call, email, visit or meeting (phone-first: few fields, big buttons)."""

    kind = SelectField(_l("Kind of contact"), default="call")
    occurred_at = DateTimeLocalField(
        _l("When"),
        format=TIME_FORMATS,
        validators=[Optional()],
        description=_l("Leave empty for now."),
    )
    summary = StringField(
        _l("Summary"),
        validators=[
            DataRequired(message=_l("Say in a line what the contact was about.")),
            Length(max=300),
        ],
    )
    details = TextAreaField(
        _l("Details"),
        validators=[Optional(), Length(max=MAX_TEXT)],
        description=_l("What you learnt: needs, concerns, who decides, competitors."),
    )
    location_note = StringField(_l("Where (visits)"), validators=[Optional(), Length(max=200)])
    opportunity_id = SelectField(_l("Opportunity"), coerce=_optional_int, validators=[Optional()])
    next_step = StringField(_l("Next step"), validators=[Optional(), Length(max=300)])
    next_follow_up_on = DateField(
        _l("Next follow-up"),
        validators=[Optional(), _not_in_the_past],
        description=_l("Leave empty for the usual interval of this customer's grade."),
    )

    def __init__(self, *args: Any, customer: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.kind.choices = choices("activity_kind", ACTIVITY_KINDS)
        options: list[tuple[Any, Any]] = [(None, _l("None"))]
        if customer is not None and customer.id is not None:
            rows = db.session.execute(
                sa.select(Opportunity.id, Opportunity.name)
                .where(Opportunity.customer_id == customer.id)
                .order_by((Opportunity.status == "open").desc(), Opportunity.id.desc())
                .limit(100)
            )
            options += [(row.id, row.name) for row in rows]
        self.opportunity_id.choices = options

    def values(self) -> dict[str, Any]:
        return {
            "kind": self.kind.data,
            "occurred_at": self.occurred_at.data,
            "summary": self.summary.data,
            "details": self.details.data,
            "location_note": self.location_note.data,
            "opportunity_id": self.opportunity_id.data,
            "next_step": self.next_step.data,
            "next_follow_up_on": self.next_follow_up_on.data,
        }


class ContactForm(FlaskForm):
    """A person at the customer."""

    name = StringField(
        _l("Name"),
        validators=[DataRequired(message=_l("Give the person's name.")), Length(max=100)],
    )
    title = StringField(_l("Position"), validators=[Optional(), Length(max=100)])
    phone = StringField(_l("Phone"), validators=[Optional(), Length(max=40)])
    email = StringField(_l("Email"), validators=[Optional(), Length(max=200)])
    is_primary = BooleanField(_l("Primary contact"))

    def values(self) -> dict[str, Any]:
        return {name: getattr(self, name).data for name in ("name", "title", "phone", "email")} | {
            "is_primary": bool(self.is_primary.data)
        }


class ReleaseForm(FlaskForm):
    """Give a prospect back to the shared pool, saying why."""

    reason = TextAreaField(
        _l("Why"),
        validators=[
            DataRequired(message=_l("Say why you release this prospect.")),
            Length(max=500),
        ],
        description=_l("Colleagues who look at the pool read this."),
    )
