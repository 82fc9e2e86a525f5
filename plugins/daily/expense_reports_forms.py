"""Forms of the expense analysis (P6.4): its filters (a GET form, no CSRF: reading
changes nothing), the export (POST with CSRF: it writes an audit event) and the
budgets (one month, an edit, a whole year). The API validates with the same classes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import DecimalField, IntegerField, SelectField
from wtforms.fields import MonthField
from wtforms.validators import InputRequired, Optional

from portal.exports import FORMATS
from portal.money import MAX_AMOUNT_CENTS, to_cents

from .expense_reports import (
    EARLIEST_YEAR,
    FORMAT_LABELS,
    LATEST_YEAR,
    MAX_MONTHS,
    Filters,
    MonthRange,
    UnitChoice,
    month_index,
)
from .models import EXPENSE_CATEGORIES
from .vocabulary import choices

MONTHS = tuple(range(1, 13))


def _unit_choices(units: Sequence[UnitChoice], empty: str | None) -> list[tuple[str, str]]:
    found = [(str(unit.id), "\u00a0\u00a0" * unit.depth + unit.name) for unit in units]
    return ([("", empty)] if empty is not None else []) + found


def _category_choices(empty: str) -> list[tuple[str, str]]:
    return [("", empty), *choices("expense_category", EXPENSE_CATEGORIES)]


class AnalysisFilterForm(FlaskForm):
    """Months from/to, team, person, category. Build it with ``formdata=request.args,
    meta={"csrf": False}`` for a GET page or the API."""

    since = MonthField(_l("From month"), validators=[Optional()])
    until = MonthField(_l("To month"), validators=[Optional()])
    unit = SelectField(_l("Team"), default="")
    person = SelectField(_l("Person"), default="")
    category = SelectField(_l("Category"), default="")

    def __init__(
        self,
        *args: Any,
        units: Sequence[UnitChoice] = (),
        people: Sequence[tuple[int, str]] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.unit.choices = _unit_choices(units, _("Everyone in my scope"))
        self.person.choices = [("", _("Everyone"))] + [(str(pid), name) for pid, name in people]
        self.category.choices = _category_choices(_("All categories"))
        self.units = {unit.id: unit for unit in units}

    def validate(self, extra_validators: Any = None) -> bool:
        if not super().validate(extra_validators):
            return False
        valid = True
        for month in (self.since, self.until):
            if month.data and not EARLIEST_YEAR <= month.data.year <= LATEST_YEAR:
                month.errors.append(
                    _(
                        "Choose a month between %(first)s and %(last)s.",
                        first=EARLIEST_YEAR,
                        last=LATEST_YEAR,
                    )
                )
                valid = False
        if not valid:
            return False
        since, until = self.since.data, self.until.data
        if since and until and until < since:
            self.until.errors.append(_("The last month is before the first."))
            return False
        if since and until and month_index(until) - month_index(since) >= MAX_MONTHS:
            self.since.errors.append(
                _("A period can be at most %(months)s months long.", months=MAX_MONTHS)
            )
            return False
        return True

    def period(self, today: date) -> MonthRange:
        """The chosen months (this year by default; one end alone: that year's rest)."""
        since, until = self.since.data, self.until.data
        if since is None and until is None:
            return MonthRange.this_year(today)
        if since is None:
            since = date(until.year, 1, 1)
        if until is None:
            until = date(since.year, 12, 1)
            if month_index(until) - month_index(since) >= MAX_MONTHS:
                until = since
        return MonthRange(since.replace(day=1), until.replace(day=1))

    def filters(self, today: date) -> Filters:
        """The analysis' filters; call after validate()."""
        unit_id = int(self.unit.data) if self.unit.data else None
        return Filters(
            period=self.period(today),
            unit=self.units.get(unit_id) if unit_id else None,
            owner_id=int(self.person.data) if self.person.data else None,
            category=self.category.data or "",
        )

    def args(self, today: date) -> dict[str, str]:
        """The filters as query-string arguments (links to charts and the export)."""
        period = self.period(today)
        found = {
            "since": period.first.strftime("%Y-%m"),
            "until": period.last.strftime("%Y-%m"),
            "unit": self.unit.data or "",
            "person": self.person.data or "",
            "category": self.category.data or "",
        }
        return {key: value for key, value in found.items() if value}


class ExportForm(AnalysisFilterForm):
    """The analysis table as a file (the filters travel as hidden fields)."""

    format = SelectField(_l("File"), default="xlsx")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.format.choices = [(key, str(FORMAT_LABELS[key])) for key in FORMATS]


def _amount_cents(field: Any) -> int | None:
    """A yuan field as fen, with a message on the field when it is no budget."""
    if field.data is None:
        return None
    if field.data.is_nan():
        field.errors.append(_("Give an amount in yuan, like 5000 or 5000.50."))
        return None
    if abs(field.data) > Decimal(MAX_AMOUNT_CENTS) / 100:
        field.errors.append(_("That amount is too large."))
        return None
    if field.data != field.data.quantize(Decimal("0.01")):  # to_cents would round it
        field.errors.append(_("At most two decimals (fen)."))
        return None
    try:
        cents = to_cents(field.data)
    except ValueError:
        field.errors.append(_("Give an amount in yuan, like 5000 or 5000.50."))
        return None
    if cents < 0:
        field.errors.append(_("The budget cannot be negative."))
        return None
    if cents > MAX_AMOUNT_CENTS:
        field.errors.append(_("That amount is too large."))
        return None
    return cents


class BudgetForm(FlaskForm):
    """One month's budget of a team, in all categories or one."""

    unit = SelectField(_l("Team"), validators=[InputRequired()])
    year = IntegerField(_l("Year"), validators=[InputRequired()])
    month = SelectField(_l("Month"), validators=[InputRequired()], coerce=int)
    category = SelectField(_l("Category"), default="")
    amount = DecimalField(_l("Budget (yuan)"), validators=[InputRequired()], places=2)

    def __init__(self, *args: Any, units: Sequence[UnitChoice] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.unit.choices = _unit_choices(units, _("Choose a team"))
        self.month.choices = [(number, f"{number:02d}") for number in MONTHS]
        self.category.choices = _category_choices(_("All categories"))
        self.amount_cents: int | None = None

    def validate(self, extra_validators: Any = None) -> bool:
        valid = super().validate(extra_validators)
        if self.year.data is not None and not EARLIEST_YEAR <= self.year.data <= LATEST_YEAR:
            self.year.errors.append(
                _(
                    "Give a year between %(first)s and %(last)s.",
                    first=EARLIEST_YEAR,
                    last=LATEST_YEAR,
                )
            )
            valid = False
        if not self.amount.errors:
            self.amount_cents = _amount_cents(self.amount)
            valid = valid and self.amount_cents is not None
        return valid


class BudgetAmountForm(FlaskForm):
    """The new amount of one existing budget."""

    amount = DecimalField(_l("Budget (yuan)"), validators=[InputRequired()], places=2)

    def validate(self, extra_validators: Any = None) -> bool:
        valid = super().validate(extra_validators)
        self.amount_cents: int | None = None
        if not self.amount.errors:
            self.amount_cents = _amount_cents(self.amount)
            valid = valid and self.amount_cents is not None
        return valid


class BudgetYearForm(FlaskForm):
    """A team's budget for the twelve months of a year, in all categories or one. An
    empty month takes the amount of the month before it (months before the first one
    given take that one), so "5000 in January" sets the whole year to 5000."""

    unit = SelectField(_l("Team"), validators=[InputRequired()])
    year = IntegerField(_l("Year"), validators=[InputRequired()])
    category = SelectField(_l("Category"), default="")
    month_1 = DecimalField(_l("January"), validators=[Optional()], places=2)
    month_2 = DecimalField(_l("February"), validators=[Optional()], places=2)
    month_3 = DecimalField(_l("March"), validators=[Optional()], places=2)
    month_4 = DecimalField(_l("April"), validators=[Optional()], places=2)
    month_5 = DecimalField(_l("May"), validators=[Optional()], places=2)
    month_6 = DecimalField(_l("June"), validators=[Optional()], places=2)
    month_7 = DecimalField(_l("July"), validators=[Optional()], places=2)
    month_8 = DecimalField(_l("August"), validators=[Optional()], places=2)
    month_9 = DecimalField(_l("September"), validators=[Optional()], places=2)
    month_10 = DecimalField(_l("October"), validators=[Optional()], places=2)
    month_11 = DecimalField(_l("November"), validators=[Optional()], places=2)
    month_12 = DecimalField(_l("December"), validators=[Optional()], places=2)

    def __init__(self, *args: Any, units: Sequence[UnitChoice] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.unit.choices = _unit_choices(units, _("Choose a team"))
        self.category.choices = _category_choices(_("All categories"))
        self.amounts: list[int] = []

    @property
    def month_fields(self) -> list[Any]:
        return [getattr(self, f"month_{number}") for number in MONTHS]

    def validate(self, extra_validators: Any = None) -> bool:
        valid = super().validate(extra_validators)
        if self.year.data is not None and not EARLIEST_YEAR <= self.year.data <= LATEST_YEAR:
            self.year.errors.append(
                _(
                    "Give a year between %(first)s and %(last)s.",
                    first=EARLIEST_YEAR,
                    last=LATEST_YEAR,
                )
            )
            valid = False
        amounts: list[int | None] = []
        for month in self.month_fields:
            if month.errors:
                amounts.append(None)
                continue
            cents = _amount_cents(month)
            valid = valid and not month.errors
            amounts.append(cents)
        given = [cents for cents in amounts if cents is not None]
        if not given and not any(month.errors for month in self.month_fields):
            self.month_1.errors.append(_("Give at least the first month's budget."))
            return False
        if valid:
            first = given[0]
            filled: list[int] = []
            for cents in amounts:
                first = cents if cents is not None else first
                filled.append(cents if cents is not None else first)
            # An empty month takes the month before it (the first given fills January on).
            self.amounts = filled
        return valid
