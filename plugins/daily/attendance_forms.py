"""Forms of attendance (P6.1): checking in and out, missed-punch corrections, periods,
schedules, holidays and who works to which schedule. The JSON API validates its bodies
with the same classes (``portal.api.validated``); the service checks the rest (the
day's punches, the rule files, locked months)."""

from __future__ import annotations

import re
from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    HiddenField,
    IntegerField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from .attendance import MAX_NOTE, MAX_REASON, PERIOD_MOVES
from .models import PUNCH_KINDS, SCHEDULE_KINDS
from .vocabulary import choices

CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
WEEKDAY_LABELS = (
    ("1", _l("Monday")),
    ("2", _l("Tuesday")),
    ("3", _l("Wednesday")),
    ("4", _l("Thursday")),
    ("5", _l("Friday")),
    ("6", _l("Saturday")),
    ("7", _l("Sunday")),
)


class ClockField(StringField):
    """A time of day, HH:MM, kept as minutes after midnight (``data``)."""

    def process_formdata(self, valuelist: list[Any]) -> None:
        self.raw_data = valuelist
        text = str(valuelist[0]).strip() if valuelist else ""
        if not text:
            self.data = None
            return
        found = CLOCK.match(text)
        if not found:
            self.data = None
            raise ValueError(str(_l("Give the time as HH:MM, e.g. 09:00.")))
        self.data = int(found.group(1)) * 60 + int(found.group(2))

    def _value(self) -> str:
        if self.raw_data:
            return str(self.raw_data[0])
        if isinstance(self.data, int):
            return f"{self.data // 60:02d}:{self.data % 60:02d}"
        return ""


class PunchForm(FlaskForm):
    """Check in or out now (``POST /attendance/punch``, ``POST /api/v1/daily/check-ins``)."""

    kind = SelectField(
        _l("Punch"), validators=[DataRequired()], description=_l("in (check-in) or out")
    )
    note = StringField(
        _l("Where are you?"),
        validators=[Optional(), Length(max=MAX_NOTE)],
        description=_l("Optional: the customer or place of a field visit."),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.kind.choices = choices("punch_kind", PUNCH_KINDS)


class CorrectionForm(FlaskForm):
    """Ask to add a missed punch of a past day (补卡)."""

    day = DateField(_l("Day"), validators=[InputRequired(message=_l("Give the day to correct."))])
    kind = SelectField(_l("Missing punch"), validators=[DataRequired()])
    time = ClockField(
        _l("Time"),
        validators=[InputRequired(message=_l("Give the time as HH:MM, e.g. 09:00."))],
        description=_l("When you really checked in or out (HH:MM)."),
    )
    reason = TextAreaField(
        _l("Reason"),
        validators=[
            DataRequired(message=_l("Say why the punch is missing.")),
            Length(max=MAX_REASON),
        ],
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.kind.choices = choices("punch_kind", PUNCH_KINDS)


class PeriodForm(FlaskForm):
    """Review, reopen or lock a finished month."""

    action = SelectField(
        _l("Action"),
        choices=[(action, action) for action in PERIOD_MOVES],
        validators=[DataRequired()],
    )


class ExportForm(FlaskForm):
    """Download the team's month."""

    format = SelectField(
        _l("File type"),
        choices=[
            ("csv", _l("CSV (UTF-8, opens in Excel)")),
            ("xlsx", _l("Excel workbook (.xlsx)")),
        ],
        validators=[DataRequired()],
    )
    month = HiddenField()
    unit = HiddenField()


class ScheduleForm(FlaskForm):
    """A working-time pattern HR puts people on."""

    name = StringField(
        _l("Name"), validators=[DataRequired(message=_l("Name the schedule.")), Length(max=80)]
    )
    kind = SelectField(_l("Kind"), validators=[DataRequired()])
    start = ClockField(
        _l("Starts at"),
        validators=[InputRequired(message=_l("Give the time as HH:MM, e.g. 09:00."))],
        description=_l("Standard: the day starts; flexible: the earliest start."),
    )
    end = ClockField(
        _l("End"),
        validators=[InputRequired(message=_l("Give the time as HH:MM, e.g. 09:00."))],
        description=_l("Standard: the day ends."),
    )
    latest_start = ClockField(
        _l("Latest start"),
        validators=[Optional()],
        description=_l("Flexible hours: arriving after this is late."),
    )
    required_hours = IntegerField(
        _l("Required minutes"),
        default=480,
        validators=[
            InputRequired(message=_l("Give the minutes to work.")),
            NumberRange(min=30, max=1440),
        ],
        description=_l("Flexible hours: minutes to stay from arrival."),
    )
    workdays = SelectMultipleField(
        _l("Working weekdays"),
        choices=list(WEEKDAY_LABELS),
        validators=[DataRequired(message=_l("Choose at least one weekday."))],
    )
    is_default = BooleanField(_l("Default schedule (everyone not put on another one)"))
    active = BooleanField(_l("In use"), default=True)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.kind.choices = choices("schedule_kind", SCHEDULE_KINDS)

    def validate(self, extra_validators: Any = None) -> bool:
        valid = super().validate(extra_validators)
        start, end, latest = self.start.data, self.end.data, self.latest_start.data
        standard = self.kind.data == "standard"
        if standard and start is not None and end is not None and end <= start:
            self.end.errors = [*self.end.errors, str(_l("The end must be after the start."))]
            valid = False
        flexible = self.kind.data == "flexible"
        if flexible and start is not None and latest is not None and latest < start:
            self.latest_start.errors = [
                *self.latest_start.errors,
                str(_l("The latest start cannot be before the start.")),
            ]
            valid = False
        return valid


class HolidayForm(FlaskForm):
    """A public holiday, or a weekend day worked instead (调休)."""

    day = DateField(_l("Day"), validators=[InputRequired(message=_l("Give the day."))])
    name = StringField(
        _l("Name"), validators=[DataRequired(message=_l("Name the holiday.")), Length(max=80)]
    )
    is_workday = BooleanField(_l("A working day (a weekend day worked instead)"))


class PersonScheduleForm(FlaskForm):
    """Put a person on a schedule (none: the default)."""

    person = SelectField(_l("Person"), coerce=int, validators=[InputRequired()])
    schedule = SelectField(_l("Schedule"), coerce=int, validators=[InputRequired()])
