"""Forms of team meetings (P6.2): calling one, marking attendance, minutes, resolutions,
materials. The JSON API validates its bodies with the same classes
(``portal.api.validated``); the service checks the rest (the units one leads, who may
attend, the state of the meeting)."""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    DateField,
    HiddenField,
    MultipleFileField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, Optional

from portal.loops.forms import LocalDateTimeField
from portal.org.forms import _optional_int

from .meetings import MARKED, MAX_LOCATION, MAX_MINUTES, MAX_RESOLUTION, MAX_TITLE
from .models import MEETING_CADENCES
from .vocabulary import choices


def _int_list(values: Any) -> list[int]:
    return [int(value) for value in values or ()]


class MeetingForm(FlaskForm):
    """Call or change a meeting (``/meetings/new``, ``POST /api/v1/daily/meetings``).
    The agenda's topics come as rows beside it (``agenda-N-title``,
    ``agenda-N-presenter_id``; ``agenda`` in the API)."""

    unit_id = SelectField(
        _l("Team"),
        coerce=_optional_int,
        validate_choice=False,  # the service checks it is a unit one leads
        validators=[DataRequired(message=_l("Choose the team the meeting is for."))],
    )
    title = StringField(
        _l("Title"),
        validators=[
            DataRequired(message=_l("Give the meeting a title.")),
            Length(max=MAX_TITLE),
        ],
    )
    cadence = SelectField(_l("Kind of meeting"), choices=choices("cadence", MEETING_CADENCES))
    starts_at = LocalDateTimeField(
        _l("Starts"), validators=[DataRequired(message=_l("Give the start."))]
    )
    ends_at = LocalDateTimeField(_l("Ends"), validators=[Optional()])
    location = StringField(
        _l("Place or video link"), validators=[Optional(), Length(max=MAX_LOCATION)]
    )
    attendee_ids = SelectMultipleField(
        _l("Attendees"),
        coerce=int,
        validate_choice=False,  # the service checks who may be asked
        description=_l("Everyone of the team is asked unless you change it."),
    )
    version = HiddenField()

    def __init__(
        self,
        *args: Any,
        units: list[tuple[int, str]] | None = None,
        people: list[tuple[int, str]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.unit_id.choices = [("", _l("Choose the team"))] + list(units or [])
        self.attendee_ids.choices = list(people or [])

    def values(self) -> dict[str, Any]:
        """What the service takes."""
        return {
            "unit_id": self.unit_id.data,
            "title": self.title.data,
            "cadence": self.cadence.data,
            "starts_at": self.starts_at.data,
            "ends_at": self.ends_at.data,
            "location": self.location.data,
            "attendee_ids": _int_list(self.attendee_ids.data),
        }


class AttendanceForm(FlaskForm):
    """Mark one attendee (present, late, absent, excused)."""

    status = SelectField(_l("Attendance"), choices=choices("attendee_status", MARKED))
    note = StringField(_l("Note"), validators=[Optional(), Length(max=200)])


class MinutesForm(FlaskForm):
    """The overall minutes; each agenda item's notes come as ``item-<id>-notes``."""

    minutes = TextAreaField(
        _l("Overall minutes"),
        validators=[Optional(), Length(max=MAX_MINUTES)],
        description=_l("What was reported and discussed, and what was decided."),
    )
    version = HiddenField()


class ResolutionForm(FlaskForm):
    """A resolution (``POST /api/v1/daily/meetings/<id>/resolutions``)."""

    text = TextAreaField(
        _l("Resolution text"),
        validators=[
            DataRequired(message=_l("Write what was resolved.")),
            Length(max=MAX_RESOLUTION),
        ],
    )
    owner_id = SelectField(
        _l("Carried out by"),
        coerce=_optional_int,
        validate_choice=False,  # the service checks attendees and scope
        validators=[DataRequired(message=_l("Choose who carries it out."))],
    )
    due_on = DateField(
        _l("Due"),
        validators=[Optional()],
        description=_l("Empty: the default of the rule file for this kind of meeting."),
    )

    def __init__(
        self, *args: Any, people: list[tuple[int, str]] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.owner_id.choices = [("", _l("Choose a person"))] + list(people or [])


class MaterialForm(FlaskForm):
    """Upload materials for the meeting, optionally for one agenda item."""

    files = MultipleFileField(_l("Files"))
    agenda_item_id = SelectField(
        _l("For the agenda item"), coerce=_optional_int, validate_choice=False
    )

    def __init__(
        self, *args: Any, items: list[tuple[int, str]] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.agenda_item_id.choices = [("", _l("The meeting as a whole"))] + list(items or [])


class ConfirmForm(FlaskForm):
    """A button that changes state (publish the minutes, cancel, remove a file): CSRF."""

    version = HiddenField()
