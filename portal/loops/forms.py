"""Forms of loop items: raising one by hand and acting on one. The JSON API validates
request bodies with the same classes (``portal.api.validated``), so a browser and a
script get the same per-field messages."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask import current_app
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    DateField,
    DateTimeLocalField,
    HiddenField,
    IntegerField,
    MultipleFileField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, NumberRange, Optional, Regexp, ValidationError

from ..auth.models import User
from ..extensions import db
from ..org.forms import _optional_int
from ..scoping import scoped
from .models import PRIORITIES
from .service import (
    ACTIONS,
    MAX_TEXT,
    PRIORITY_LABELS,
    latest_due_date,
    local_today,
    portal_zone,
)

# Bounded choice lists: a select box of more people than this is useless anyway.
MAX_PEOPLE_CHOICES = 2000


def owner_choices(actor: Any) -> list[tuple[int | None, str]]:
    """Active people within ``actor``'s write scope: whom they may give an item to."""
    if actor is None or not getattr(actor, "is_authenticated", False):
        return []
    statement = scoped(
        sa.select(User.id, User.display_name, User.username)
        .where(User.active.is_(True))
        .order_by(User.display_name, User.id)
        .limit(MAX_PEOPLE_CHOICES),
        User,
        actor,
        "write",
    )
    return [(pid, f"{name} ({login})") for pid, name, login in db.session.execute(statement)]


def type_choices() -> list[tuple[str, str]]:
    """Loop types the enabled plugins declared, by label."""
    declared = current_app.extensions["portal"].loop_types.values()
    return sorted(((t.name, str(t.label)) for t in declared), key=lambda pair: pair[1])


def priority_choices() -> list[tuple[str, str]]:
    return [(code, str(PRIORITY_LABELS[code])) for code in PRIORITIES]


class LocalDateTimeField(DateTimeLocalField):
    """A date and time: ``2026-03-01T14:30`` from the browser's picker (naive, meant in
    the portal's time zone) or ISO 8601 with an offset from the API. One field for every
    form that takes a moment, so pages and the API accept and refuse the same text with
    the same message; an aware value is shown again in the portal's zone."""

    def process_formdata(self, valuelist: list[Any]) -> None:
        if not valuelist or not str(valuelist[0]).strip():
            self.data = None
            return
        text = str(valuelist[0]).strip().replace(" ", "T", 1)
        try:
            self.data = datetime.fromisoformat(text)
        except ValueError:
            self.data = None
            raise ValueError(str(_l("Give a date and time, e.g. 2026-03-01 14:30."))) from None

    def _value(self) -> str:
        if self.raw_data:
            return " ".join(str(value) for value in self.raw_data)
        if isinstance(self.data, datetime):
            moment = self.data
            if moment.tzinfo is not None:
                moment = moment.astimezone(portal_zone())
            return moment.strftime("%Y-%m-%dT%H:%M")
        return ""


def _not_in_the_past(form: Any, field: Any) -> None:
    """A due date from today (in the portal's time zone) to ten years ahead."""
    if field.data is None:
        return
    if field.data < local_today():
        raise ValidationError(_l("The due date cannot be in the past."))
    if field.data > latest_due_date():
        raise ValidationError(_l("The due date is too far away: at most ten years from now."))


class LoopRaiseForm(FlaskForm):
    """Raise a loop item by hand (``/loops/new``, ``POST /api/v1/loops``)."""

    type = SelectField(_l("Type"), validators=[DataRequired()])
    title = StringField(_l("Title"), validators=[DataRequired(), Length(max=200)])
    description = TextAreaField(_l("Description"), validators=[Optional(), Length(max=MAX_TEXT)])
    owner_id = SelectField(
        _l("Owner"),
        coerce=_optional_int,
        validators=[DataRequired(message=_l("Choose the owner."))],
        description=_l("Who must do it: yourself or someone you are responsible for."),
    )
    due_on = DateField(
        _l("Due date"),
        validators=[Optional(), _not_in_the_past],
        description=_l("Leave empty for the usual time for its priority."),
    )
    priority = SelectField(_l("Priority"), default="normal")
    subject_table = HiddenField(
        validators=[Optional(), Regexp(r"^[a-z][a-z0-9_]{0,63}$", message=_l("Not a table name."))]
    )
    subject_id = HiddenField(validators=[Optional(), Length(max=64)])
    subject_link = HiddenField(validators=[Optional(), Length(max=500)])

    def __init__(self, *args: Any, actor: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.type.choices = type_choices()
        self.priority.choices = priority_choices()
        self.owner_id.choices = owner_choices(actor)

    def validate(self, extra_validators: Any = None) -> bool:
        """The fields, and the subject as a whole: a table and a record id, one without
        the other is refused rather than silently dropped."""
        valid = super().validate(extra_validators)
        if bool(self.subject_table.data) != bool(self.subject_id.data):
            message = _l("Give both the subject's table and its record id.")
            self.subject_table.errors = [*self.subject_table.errors, message]
            return False
        return valid


class _VersionedForm(FlaskForm):
    # The item's lock version the person saw: acting on a page that is out of date is
    # a conflict (409), not a silent overwrite.
    version = HiddenField()


class StartForm(_VersionedForm):
    """Start the work."""


class CloseForm(_VersionedForm):
    """Close with a note (required), evidence text and files."""

    note = TextAreaField(
        _l("What was done"),
        validators=[
            DataRequired(message=_l("Say what was done: a closing note is required.")),
            Length(max=MAX_TEXT),
        ],
    )
    evidence = TextAreaField(
        _l("Evidence"),
        validators=[Optional(), Length(max=MAX_TEXT)],
        description=_l("Where the result can be checked: a document, a record, a figure."),
    )
    files = MultipleFileField(_l("Attach files"))


class VerifyForm(_VersionedForm):
    """Confirm the item is resolved."""

    note = TextAreaField(_l("Remark"), validators=[Optional(), Length(max=MAX_TEXT)])


class ReopenForm(_VersionedForm):
    """Send the item back, with the reason."""

    note = TextAreaField(
        _l("Why reopen it"),
        validators=[
            DataRequired(message=_l("Say why the item is reopened.")),
            Length(max=MAX_TEXT),
        ],
    )
    due_on = DateField(
        _l("New due date"),
        validators=[Optional(), _not_in_the_past],
        description=_l("Leave empty to keep the due date."),
    )


class CommentForm(_VersionedForm):
    """A remark on the timeline."""

    note = TextAreaField(
        _l("Comment"),
        validators=[DataRequired(message=_l("Write a comment.")), Length(max=MAX_TEXT)],
    )


class ReassignForm(_VersionedForm):
    """Give the item to someone else."""

    owner_id = SelectField(
        _l("New owner"),
        coerce=_optional_int,
        validators=[DataRequired(message=_l("Choose the new owner."))],
    )
    due_on = DateField(
        _l("New due date"),
        validators=[Optional(), _not_in_the_past],
        description=_l("Leave empty to keep the due date."),
    )
    note = TextAreaField(_l("Note"), validators=[Optional(), Length(max=MAX_TEXT)])

    def __init__(self, *args: Any, actor: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.owner_id.choices = owner_choices(actor)


ACTION_FORMS: dict[str, type[FlaskForm]] = {
    "start": StartForm,
    "close": CloseForm,
    "verify": VerifyForm,
    "reopen": ReopenForm,
    "comment": CommentForm,
    "reassign": ReassignForm,
}


class LoopActionForm(FlaskForm):
    """``POST /api/v1/loops/<id>/actions``: one action and the fields it reads. Which
    fields are required depends on the action (a note to close, comment or reopen, the
    new owner to reassign); the service says so per field."""

    action = SelectField(
        _l("Action"),
        validators=[DataRequired()],
        description=_l("start, close, verify, reopen, comment or reassign"),
    )
    note = TextAreaField(
        _l("Note"),
        validators=[Optional(), Length(max=MAX_TEXT)],
        description=_l("Closing note, reason for reopening, comment or remark"),
    )
    evidence = TextAreaField(_l("Evidence"), validators=[Optional(), Length(max=MAX_TEXT)])
    owner_id = IntegerField(
        _l("New owner"),
        validators=[Optional(), NumberRange(min=1, max=2**62)],
        description=_l("reassign: the new owner's id"),
    )
    due_on = DateField(
        _l("New due date"),
        validators=[Optional(), _not_in_the_past],
        description=_l("reopen, reassign: YYYY-MM-DD"),
    )
    version = IntegerField(
        _l("Version"),
        validators=[Optional(), NumberRange(min=1, max=2**62)],
        description=_l("The item's version you read; a changed item answers 409"),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.action.choices = [(action, action) for action in ACTIONS]
