"""Forms of the sales data pages (P6.3): the report's filters (a GET form, no CSRF: it
changes nothing) and the export form (POST with CSRF: an export writes an audit event).
The API validates its query strings with the same classes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import DateField, SelectField
from wtforms.validators import Optional

from portal.exports import FORMATS

from .reports import (
    BUCKET_LABELS,
    BUCKETS,
    DATASET_LABELS,
    DATASETS,
    DEFAULT_PERIOD,
    EARLIEST_YEAR,
    FORMAT_LABELS,
    LATEST_YEAR,
    MAX_PERIOD_DAYS,
    PERIOD_LABELS,
    PERIODS,
    ExportFilters,
    ReportPeriod,
    UnitChoice,
    make_period,
)

ANY_TIME = "all"


class ReportFilterForm(FlaskForm):
    """Period (named or custom dates), buckets, and an optional team. Build it with
    ``formdata=request.args, meta={"csrf": False}`` for a GET page or the API."""

    period = SelectField(_l("Period"), default=DEFAULT_PERIOD)
    since = DateField(_l("From"), validators=[Optional()], format="%Y-%m-%d")
    until = DateField(_l("To"), validators=[Optional()], format="%Y-%m-%d")
    bucket = SelectField(_l("Per"), default="month")
    unit = SelectField(_l("Team"), default="")

    any_time_allowed = False

    def __init__(self, *args: Any, units: Sequence[UnitChoice] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        periods = [(key, str(PERIOD_LABELS[key])) for key in PERIODS]
        if self.any_time_allowed:
            periods.insert(0, (ANY_TIME, _("Any time")))
        self.period.choices = periods
        self.bucket.choices = [(key, str(BUCKET_LABELS[key])) for key in BUCKETS]
        self.unit.choices = [("", _("Everyone in my scope"))] + [
            (str(unit.id), "\u00a0\u00a0" * unit.depth + unit.name) for unit in units
        ]
        self.units = {unit.id: unit for unit in units}

    def validate(self, extra_validators: Any = None) -> bool:
        valid = super().validate(extra_validators)
        since, until = self.since.data, self.until.data
        for dated in (self.since, self.until):
            if dated.data and not EARLIEST_YEAR <= dated.data.year <= LATEST_YEAR:
                dated.errors.append(
                    _(
                        "Choose a day between %(first)s and %(last)s.",
                        first=EARLIEST_YEAR,
                        last=LATEST_YEAR,
                    )
                )
                valid = False
        if not valid:
            return False
        if since or until:
            self.period.data = "custom"
        if self.period.data == "custom":
            if since is None:
                self.since.errors.append(_("Give the first day of the period."))
                return False
            if until is not None and until < since:
                self.until.errors.append(_("The last day is before the first."))
                return False
            if until is not None and (until - since).days > MAX_PERIOD_DAYS:
                self.since.errors.append(
                    _("A period can be at most %(days)s days long.", days=MAX_PERIOD_DAYS)
                )
                return False
        return True

    @property
    def unit_id(self) -> int | None:
        return int(self.unit.data) if self.unit.data else None

    def report_period(self, today: date) -> ReportPeriod | None:
        """The chosen period (None for "any time"); call after validate()."""
        key = self.period.data or DEFAULT_PERIOD
        if key == ANY_TIME:
            return None
        if key == "custom":
            since = self.since.data
            until = self.until.data or max(today, since)
            return make_period("custom", self.bucket.data, today, since, until)
        return make_period(key, self.bucket.data, today)

    def args(self) -> dict[str, str]:
        """The filters as query-string arguments (links to charts and the export)."""
        found = {"period": self.period.data or DEFAULT_PERIOD, "bucket": self.bucket.data}
        if self.period.data == "custom":
            found["since"] = self.since.data.isoformat() if self.since.data else ""
            found["until"] = self.until.data.isoformat() if self.until.data else ""
        if self.unit.data:
            found["unit"] = self.unit.data
        return {key: value for key, value in found.items() if value}


class ExportForm(ReportFilterForm):
    """What to export, as which file, narrowed by period, team and person."""

    dataset = SelectField(_l("Data"), default="customers")
    format = SelectField(_l("File"), default="xlsx")
    owner = SelectField(_l("Person"), default="")
    period = SelectField(_l("Period"), default=ANY_TIME)

    any_time_allowed = True

    def __init__(
        self,
        *args: Any,
        units: Sequence[UnitChoice] = (),
        people: Sequence[tuple[int, str]] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, units=units, **kwargs)
        self.dataset.choices = [(key, str(DATASET_LABELS[key])) for key in DATASETS]
        self.format.choices = [(key, str(FORMAT_LABELS[key])) for key in FORMATS]
        self.owner.choices = [("", _("Everyone in my scope"))] + [
            (str(person_id), name) for person_id, name in people
        ]

    def validate(self, extra_validators: Any = None) -> bool:
        if not super().validate(extra_validators):
            return False
        if self.dataset.data == "report" and self.period.data == ANY_TIME:
            self.period.errors.append(_("Choose a period for the report table."))
            return False
        return True

    def filters(self, today: date) -> ExportFilters:
        """The export's filters; call after validate()."""
        return ExportFilters(
            period=self.report_period(today),
            unit=self.units.get(self.unit_id) if self.unit_id else None,
            owner_id=int(self.owner.data) if self.owner.data else None,
        )
