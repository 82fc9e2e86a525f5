"""P6.4 Expense analysis: what the sales force spends, by category, person, team and
month, against the budgets finance sets, and per won deal; always in the viewer's data
scope; charts of it; its export (CSV and Excel), bounded, safe against formula
injection and audited. Also the budgets themselves and the won deals the sales plugin
reports (event ``sales.opportunity_closed``).

Definitions (stated on the page too, so a supervisor and finance read the same numbers):

- **spend**: the lines of approved or paid claims (``CLAIM_COUNTED_STATUSES``) whose
  ``spent_on`` falls in the period; drafts, pending, rejected and cancelled claims do
  not count;
- **team**: a unit and every unit below it (each person counts towards their unit and
  every visible unit above it, the core's rule for team figures);
- **budget of a team**: that unit's own budget rows (not the sum of its sub-units');
  ``used`` compares it with the team's spend in the budgeted months only, so a budget
  set for half the year is not compared with a whole year's spend;
- **cost per won deal**: spend / deals won in the same period by the same people.

Every figure is a grouped query (GROUP BY person, unit, month, category), so what
reaches Python is bounded by people x months x categories, never by the lines.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pygal
import sqlalchemy as sa
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from portal import exports
from portal.audit.models import AuditEvent
from portal.audit.recorder import record_access
from portal.auth.models import User
from portal.exports import Column
from portal.extensions import db
from portal.loops import charts, metrics
from portal.loops.metrics import UnitChoice, bucket_case, in_unit
from portal.loops.service import local_today
from portal.money import MAX_AMOUNT_CENTS, yuan
from portal.org.models import OrgUnit
from portal.org.services import ValidationFailed
from portal.scoping import scoped

from .models import (
    CLAIM_COUNTED_STATUSES,
    EXPENSE_CATEGORIES,
    ExpenseBudget,
    ExpenseClaim,
    ExpenseLine,
    WonDeal,
)
from .vocabulary import label

log = logging.getLogger(__name__)

MAX_MONTHS = 36  # a period of at most three years (36 month buckets)
EARLIEST_YEAR, LATEST_YEAR = 2000, 2100
MAX_UNITS = metrics.MAX_UNITS
MAX_PEOPLE = 2000  # people offered in the person filter
MAX_PERSON_ROWS = metrics.MAX_GROUPS  # person rows shown; the totals keep everyone
CHARTS = ("month", "category", "people")
ALL_CATEGORIES = ""  # a budget row for every category


# -- periods -----------------------------------------------------------------------------


def month_index(day: date) -> int:
    """Months since year 0: consecutive months are consecutive numbers."""
    return day.year * 12 + day.month - 1


def month_of(index: int) -> date:
    """The first day of month ``index`` (see ``month_index``)."""
    return date(index // 12, index % 12 + 1, 1)


@dataclass(frozen=True)
class MonthRange:
    """Whole calendar months, ``first`` to ``last`` (first days), both included."""

    first: date
    last: date

    @classmethod
    def this_year(cls, today: date | None = None) -> MonthRange:
        year = (today or local_today()).year
        return cls(date(year, 1, 1), date(year, 12, 1))

    @property
    def months(self) -> list[date]:
        return [month_of(i) for i in range(month_index(self.first), month_index(self.last) + 1)]

    @property
    def start(self) -> date:
        return self.first

    @property
    def end(self) -> date:
        """The first day after the period."""
        return month_of(month_index(self.last) + 1)

    def edges(self) -> tuple[date, ...]:
        """Bucket starts plus the exclusive end."""
        return (*self.months, self.end)

    def describe(self) -> dict[str, str]:
        return {"since": self.first.strftime("%Y-%m"), "until": self.last.strftime("%Y-%m")}


# -- the figures -------------------------------------------------------------------------


def percent_of(part: int, whole: int | None) -> Decimal | None:
    """part / whole in percent, one decimal, half up; None without a whole."""
    if not whole:
        return None
    return (Decimal(part) * 100 / Decimal(whole)).quantize(Decimal("0.1"), ROUND_HALF_UP)


@dataclass
class Spend:
    """The numbers of one group: a person, a team (unit subtree), a month, a category or
    everyone. ``budget_cents`` and ``budget_spent_cents`` (the spend in the budgeted
    months) are None where no budget applies."""

    key: Any = None
    label: str = ""
    depth: int = 0
    path: str = ""
    cents: int = 0
    lines: int = 0
    won: int = 0
    categories: dict[str, int] = field(default_factory=dict)
    budget_cents: int | None = None
    budget_spent_cents: int = 0

    def add_spend(self, category: str, cents: int, lines: int) -> None:
        self.cents += cents
        self.lines += lines
        self.categories[category] = self.categories.get(category, 0) + cents

    @property
    def cost_per_won_cents(self) -> int | None:
        """Spend / won deals in whole fen (half up), None when nothing was won."""
        if not self.won:
            return None
        return (2 * self.cents + self.won) // (2 * self.won)

    @property
    def used_pct(self) -> Decimal | None:
        if self.budget_cents is None:
            return None
        return percent_of(self.budget_spent_cents, self.budget_cents)

    @property
    def over_budget(self) -> bool:
        return self.budget_cents is not None and self.budget_spent_cents > self.budget_cents

    def as_json(self) -> dict[str, Any]:
        """The API's shape: money as yuan strings, percentages as strings."""
        cost = self.cost_per_won_cents
        used = self.used_pct
        return {
            "spent": str(yuan(self.cents)),
            "lines": self.lines,
            "won_deals": self.won,
            "cost_per_won_deal": None if cost is None else str(yuan(cost)),
            "budget": None if self.budget_cents is None else str(yuan(self.budget_cents)),
            "budget_spent": None
            if self.budget_cents is None
            else str(yuan(self.budget_spent_cents)),
            "used_percent": None if used is None else str(used),
            "over_budget": self.over_budget,
            "categories": {
                code: str(yuan(self.categories.get(code, 0))) for code in EXPENSE_CATEGORIES
            },
        }


@dataclass
class BudgetUse:
    """One unit's budget in one category ("" = all) over the period's budgeted months,
    against the unit's (subtree's) spend in those months."""

    unit_id: int
    unit: str
    path: str
    category: str
    months: int = 0
    budget_cents: int = 0
    spent_cents: int = 0
    months_over: list[str] = field(default_factory=list)

    @property
    def used_pct(self) -> Decimal | None:
        return percent_of(self.spent_cents, self.budget_cents)

    @property
    def over_budget(self) -> bool:
        return self.spent_cents > self.budget_cents

    @property
    def category_label(self) -> str:
        return label("expense_category", self.category) if self.category else _("All categories")

    def as_json(self) -> dict[str, Any]:
        used = self.used_pct
        return {
            "unit": self.unit_id,
            "unit_name": self.unit,
            "category": self.category,
            "months": self.months,
            "budget": str(yuan(self.budget_cents)),
            "spent": str(yuan(self.spent_cents)),
            "used_percent": None if used is None else str(used),
            "over_budget": self.over_budget,
            "months_over": self.months_over,
        }


@dataclass
class Filters:
    """What narrows the analysis inside the viewer's scope."""

    period: MonthRange
    unit: UnitChoice | None = None
    owner_id: int | None = None
    category: str = ""

    def describe(self) -> dict[str, Any]:
        """The filters as the audit event and the API record them."""
        found: dict[str, Any] = dict(self.period.describe())
        if self.unit:
            found["unit"] = self.unit.id
        if self.owner_id:
            found["person"] = self.owner_id
        if self.category:
            found["category"] = self.category
        return found


@dataclass
class Analysis:
    """Everything the page, the charts, the API and the export show."""

    filters: Filters
    scope: str
    total: Spend
    categories: list[Spend]
    people: list[Spend]
    people_capped: bool
    teams: list[Spend]
    months: list[Spend]
    budgets: list[BudgetUse]
    budget_unit: UnitChoice | None


def visible_units(viewer: User) -> list[UnitChoice]:
    """The units the viewer may see team rows and budgets of (the core's rule: all for a
    manager or finance, the subtrees a supervisor leads)."""
    return metrics.unit_choices(viewer)


def _narrow(statement: sa.Select, model: Any, viewer: User, filters: Filters) -> sa.Select:
    """The viewer's scope, then the team and person filters."""
    statement = scoped(statement, model, viewer)
    if filters.unit:
        statement = statement.where(in_unit(model.owner_id, filters.unit.path))
    if filters.owner_id:
        statement = statement.where(model.owner_id == filters.owner_id)
    return statement


def counted_lines(viewer: User, filters: Filters, *columns: Any) -> sa.Select:
    """SELECT ``columns`` FROM the counted lines of the period in the viewer's scope
    (approved or paid claims), narrowed by the filters. The claims are a semi-join
    (``claim_id IN``): one set of counted claims probed per line, read through the
    covering index ``ix_daily_expense_line_analysis``."""
    period = filters.period
    counted = sa.select(ExpenseClaim.id).where(ExpenseClaim.status.in_(CLAIM_COUNTED_STATUSES))
    statement = (
        sa.select(*columns)
        .select_from(ExpenseLine)
        .where(
            ExpenseLine.spent_on >= period.start,
            ExpenseLine.spent_on < period.end,
            # ``claim_id + 0`` on SQLite: otherwise it walks the claim_id index from the
            # set of counted claims (all history) instead of the period's index range.
            metrics.unindexed(ExpenseLine.claim_id).in_(counted),
        )
    )
    if filters.category:
        statement = statement.where(ExpenseLine.category == filters.category)
    return _narrow(statement, ExpenseLine, viewer, filters)


def _sums() -> tuple[Any, Any]:
    return (
        sa.func.coalesce(sa.func.sum(ExpenseLine.amount_cents), 0).label("cents"),
        sa.func.count().label("lines"),
    )


def _spend_rows(viewer: User, filters: Filters) -> list[sa.Row]:
    """Spend per person, month and category in one pass over the period's lines: the
    person, team, month, category and total figures and the budget comparison all come
    from these rows (at most people x months x categories)."""
    owner = metrics.unindexed(ExpenseLine.owner_id).label("owner")
    bucket = bucket_case(ExpenseLine.spent_on, filters.period.edges()).label("bucket")
    statement = counted_lines(viewer, filters, owner, bucket, ExpenseLine.category, *_sums())
    return list(db.session.execute(statement.group_by("owner", "bucket", ExpenseLine.category)))


def _won_deals(viewer: User, filters: Filters) -> list[sa.Row]:
    period = filters.period
    bucket = bucket_case(WonDeal.won_on, period.edges()).label("bucket")
    statement = sa.select(
        metrics.unindexed(WonDeal.owner_id).label("owner"), bucket, sa.func.count().label("won")
    ).where(WonDeal.won_on >= period.start, WonDeal.won_on < period.end)
    statement = _narrow(statement, WonDeal, viewer, filters)
    return list(db.session.execute(statement.group_by("owner", "bucket")))


def _budget_rows(units: Sequence[UnitChoice], filters: Filters) -> list[sa.Row]:
    period = filters.period
    statement = sa.select(
        ExpenseBudget.unit_id,
        ExpenseBudget.year,
        ExpenseBudget.month,
        ExpenseBudget.category,
        ExpenseBudget.amount_cents,
    ).where(ExpenseBudget.year.between(period.first.year, period.last.year))
    if filters.unit:
        statement = statement.where(ExpenseBudget.unit_id.in_([unit.id for unit in units]))
    if filters.category:
        statement = statement.where(ExpenseBudget.category == filters.category)
    first, last = month_index(period.first), month_index(period.last)
    visible = {unit.id for unit in units}
    return [
        row
        for row in db.session.execute(statement.order_by(ExpenseBudget.unit_id))
        if row.unit_id in visible and first <= row.year * 12 + row.month - 1 <= last
    ]


def _ancestors(path: str | None, teams: dict[int, Any]) -> list[int]:
    return [int(part) for part in (path or "").strip("/").split("/") if part and int(part) in teams]


def build_analysis(
    viewer: User, filters: Filters, units: Sequence[UnitChoice] | None = None
) -> Analysis:
    """The figures of the filters' period in the viewer's scope."""
    units = visible_units(viewer) if units is None else list(units)
    unit_path = filters.unit.path if filters.unit else None
    shown = [unit for unit in units if not unit_path or unit.path.startswith(unit_path)]
    months = filters.period.months
    month_rows = [
        Spend(key=month.strftime("%Y-%m"), label=month.strftime("%Y-%m")) for month in months
    ]
    total = Spend(key=None, label=_("All"))
    categories = {
        code: Spend(key=code, label=label("expense_category", code)) for code in EXPENSE_CATEGORIES
    }
    top = min((unit.path.count("/") for unit in shown), default=0)
    teams = {
        unit.id: Spend(
            key=unit.id, label=unit.name, path=unit.path, depth=min(unit.path.count("/") - top, 5)
        )
        for unit in shown
    }
    people: dict[int, Spend] = {}
    spend_rows = _spend_rows(viewer, filters)
    won_rows = _won_deals(viewer, filters)
    for row in spend_rows:
        people.setdefault(row.owner, Spend(key=row.owner))
    for row in won_rows:
        people.setdefault(row.owner, Spend(key=row.owner))
    paths: dict[int, list[int]] = {}
    if people:
        found = db.session.execute(
            sa.select(User.id, User.display_name, OrgUnit.path)
            .outerjoin(OrgUnit, User.unit_id == OrgUnit.id)
            .where(User.id.in_(list(people)))
        ).all()
        for user_id, name, path in found:
            people[user_id].label = name
            people[user_id].path = path or ""
            paths[user_id] = _ancestors(path, teams)  # for the won deals
    for person in people.values():
        person.label = person.label or str(person.key)

    # Reduce the rows first (two dictionary updates a row), then fan out the few sums:
    # per person and category, and per unit, month and category.
    per_person: dict[tuple[int, str], list[int]] = {}
    per_unit: dict[tuple[str, int, str], list[int]] = {}
    for owner, bucket, category, cents, lines in spend_rows:
        sums = per_person.setdefault((owner, category), [0, 0])
        sums[0] += cents
        sums[1] += lines
        sums = per_unit.setdefault((people[owner].path, bucket, category), [0, 0])
        sums[0] += cents
        sums[1] += lines
    for (owner, category), (cents, lines) in per_person.items():
        people[owner].add_spend(category, int(cents), int(lines))
    # team -> month -> category -> cents, for the budget comparison
    team_months: dict[int, dict[int, dict[str, int]]] = {unit_id: {} for unit_id in teams}
    for (path, bucket, category), (cents, lines) in per_unit.items():
        cents, lines = int(cents), int(lines)
        if category not in categories:
            categories[category] = Spend(key=category, label=label("expense_category", category))
        for target in (total, month_rows[bucket], categories[category]):
            target.add_spend(category, cents, lines)
        for unit_id in _ancestors(path, teams):
            teams[unit_id].add_spend(category, cents, lines)
            per_month = team_months[unit_id].setdefault(bucket, {})
            per_month[category] = per_month.get(category, 0) + cents
    for row in won_rows:
        count = int(row.won)
        people[row.owner].won += count
        total.won += count
        if row.bucket is not None:
            month_rows[row.bucket].won += count
        for unit_id in paths.get(row.owner, ()):
            teams[unit_id].won += count

    roots = [unit for unit in shown if unit.depth == 0]
    budget_unit = filters.unit or (roots[0] if len(roots) == 1 else None)
    budgets: list[BudgetUse] = []
    wanted = filters.category or ALL_CATEGORIES
    if not filters.owner_id:  # a team's budget says nothing about one person's spend
        rows = _budget_rows(shown, filters)
        budgets = _budget_use(rows, teams, team_months, months)
        for use in budgets:
            if use.category == wanted:
                teams[use.unit_id].budget_cents = use.budget_cents
                teams[use.unit_id].budget_spent_cents = use.spent_cents
                if budget_unit and use.unit_id == budget_unit.id:
                    total.budget_cents = use.budget_cents
                    total.budget_spent_cents = use.spent_cents
        first = month_index(filters.period.first)
        for row in rows:
            if budget_unit is None or row.unit_id != budget_unit.id or row.category != wanted:
                continue
            bucket = row.year * 12 + row.month - 1 - first
            spent = team_months.get(budget_unit.id, {}).get(bucket, {})
            target = month_rows[bucket]
            target.budget_cents = int(row.amount_cents)
            target.budget_spent_cents = spent.get(wanted, 0) if wanted else sum(spent.values())

    person_rows = sorted(
        people.values(), key=lambda row: (-row.cents, row.label.casefold(), row.key)
    )
    category_rows = [
        row for row in categories.values() if row.cents or row.key in EXPENSE_CATEGORIES
    ]
    category_rows.sort(key=lambda row: -row.cents)
    return Analysis(
        filters=filters,
        scope=viewer.scope_for("read"),
        total=total,
        categories=category_rows,
        people=person_rows[:MAX_PERSON_ROWS],
        people_capped=len(person_rows) > MAX_PERSON_ROWS,
        teams=sorted(teams.values(), key=lambda row: row.path),
        months=month_rows,
        budgets=budgets,
        budget_unit=budget_unit,
    )


def _budget_use(
    rows: list[sa.Row],
    teams: dict[int, Spend],
    team_months: dict[int, dict[int, dict[str, int]]],
    months: list[date],
) -> list[BudgetUse]:
    """Each (unit, category) budget against the unit's spend in its budgeted months."""
    first = month_index(months[0])
    found: dict[tuple[int, str], BudgetUse] = {}
    for row in rows:
        team = teams.get(row.unit_id)
        if team is None:
            continue
        use = found.setdefault(
            (row.unit_id, row.category),
            BudgetUse(row.unit_id, team.label, team.path, row.category),
        )
        bucket = row.year * 12 + row.month - 1 - first
        spent_by_category = team_months.get(row.unit_id, {}).get(bucket, {})
        spent = (
            spent_by_category.get(row.category, 0)
            if row.category
            else sum(spent_by_category.values())
        )
        use.months += 1
        use.budget_cents += int(row.amount_cents)
        use.spent_cents += spent
        if spent > row.amount_cents:
            use.months_over.append(months[bucket].strftime("%Y-%m"))
    return sorted(found.values(), key=lambda use: (use.path, use.category))


# -- charts ------------------------------------------------------------------------------


def _month_chart(analysis: Analysis) -> pygal.Graph:
    rows = analysis.months
    chart = pygal.Bar(
        charts.chart_config(
            _("Spend per month"),
            value_formatter=charts.money_label,
            show_minor_x_labels=len(rows) <= 16,
            x_labels_major_every=max(1, len(rows) // 8),
        )
    )
    chart.x_labels = [row.label for row in rows]
    chart.add(_("Spent"), [charts.yuan_float(row.cents) for row in rows])
    if any(row.budget_cents is not None for row in rows):
        chart.add(
            _("Budget"),
            [
                None if row.budget_cents is None else charts.yuan_float(row.budget_cents)
                for row in rows
            ],
        )
    return chart


def _category_chart(analysis: Analysis) -> pygal.Graph:
    chart = pygal.Pie(
        charts.chart_config(_("Spend by category"), value_formatter=charts.money_label)
    )
    for row in analysis.categories:
        if row.cents:
            chart.add(row.label, charts.yuan_float(row.cents))
    return chart


def _people_chart(analysis: Analysis) -> pygal.Graph:
    rows = analysis.people[: charts.MAX_BARS]
    chart = pygal.HorizontalBar(
        charts.chart_config(
            _("Top spenders"), value_formatter=charts.money_label, show_legend=False
        )
    )
    chart.x_labels = [row.label for row in rows]
    chart.add(_("Spent"), [charts.yuan_float(row.cents) for row in rows])
    return chart


CHART_BUILDERS: dict[str, Callable[[Analysis], pygal.Graph]] = {
    "month": _month_chart,
    "category": _category_chart,
    "people": _people_chart,
}


def chart_svg(name: str, analysis: Analysis) -> bytes:
    """The chart ``name`` (one of CHARTS) as a self-contained SVG document."""
    return charts.render_svg(CHART_BUILDERS[name](analysis))


# -- export ------------------------------------------------------------------------------
# The file itself (formula-injection guard, CSV with BOM, .xlsx) is portal.exports'.

FORMAT_LABELS = {"csv": _l("CSV (UTF-8, opens in Excel)"), "xlsx": _l("Excel workbook (.xlsx)")}
EXPORT_TABLE = "daily_expense_analysis"

EXPORT_COLUMNS = [
    Column(_l("Group"), width=12),
    Column(_l("Name"), width=26),
    Column(_l("Category"), width=18),
    Column(_l("Spent"), "money"),
    Column(_l("Number of lines"), "int", 8),
    Column(_l("Budget"), "money"),
    Column(_l("Spent in budgeted months"), "money"),
    Column(_l("Budget used, percent"), "percent", 10),
    Column(_l("Over budget"), width=10),
    Column(_l("Won deals"), "int", 8),
    Column(_l("Cost per won deal"), "money"),
]


def export_rows(analysis: Analysis) -> list[tuple[Any, ...]]:
    """The analysis as one table: total, categories, people, teams, months, budgets."""
    everything = _("All categories")
    chosen = (
        label("expense_category", analysis.filters.category)
        if analysis.filters.category
        else everything
    )

    def line(group: str, row: Spend, name: str | None = None, category: str = chosen) -> tuple:
        over = _("Yes") if row.over_budget else ("" if row.budget_cents is None else _("No"))
        return (
            group,
            name if name is not None else row.label,
            category,
            row.cents,
            row.lines,
            row.budget_cents,
            None if row.budget_cents is None else row.budget_spent_cents,
            row.used_pct,
            over,
            row.won,
            row.cost_per_won_cents,
        )

    rows = [line(_("Total"), analysis.total, _("All"))]
    rows += [
        (
            _("Category"),
            row.label,
            row.label,
            row.cents,
            row.lines,
            None,
            None,
            None,
            "",
            None,
            None,
        )
        for row in analysis.categories
    ]
    rows += [line(_("Person"), row) for row in analysis.people]
    rows += [line(_("Team"), row, "  " * row.depth + row.label) for row in analysis.teams]
    rows += [line(_("Month"), row) for row in analysis.months]
    rows += [
        (
            _("Budget"),
            use.unit,
            use.category_label,
            None,
            None,
            use.budget_cents,
            use.spent_cents,
            use.used_pct,
            _("Yes") if use.over_budget else _("No"),
            None,
            None,
        )
        for use in analysis.budgets
    ]
    return rows


def record_export(analysis: Analysis, fmt: str, rows: int) -> AuditEvent:
    """One row in the core audit log (action ``export``): who exported the analysis,
    with which filters and how many rows. The caller commits before sending it."""
    return record_access(
        "export",
        EXPORT_TABLE,
        {"format": fmt, "filters": analysis.filters.describe(), "rows": rows},
    )


def export_filename(fmt: str) -> str:
    return exports.dated_filename("expense-analysis", fmt)


# -- budgets -----------------------------------------------------------------------------


def budget_statement(
    units: Sequence[UnitChoice], year: int | None, unit_id: int | None
) -> sa.Select:
    """The budget rows of the viewer's units (a list page's query, newest year first)."""
    statement = (
        sa.select(ExpenseBudget)
        .join(OrgUnit, OrgUnit.id == ExpenseBudget.unit_id)
        .where(ExpenseBudget.unit_id.in_([unit.id for unit in units]))
        .order_by(
            ExpenseBudget.year.desc(),
            OrgUnit.path,
            ExpenseBudget.month,
            ExpenseBudget.category,
            ExpenseBudget.id,
        )
    )
    # A year or team from the query string that cannot be one (?year=99999999999999999999
    # overflows the database's integer) lists nothing rather than failing.
    if year:
        known = EARLIEST_YEAR <= year <= LATEST_YEAR
        statement = statement.where(ExpenseBudget.year == year if known else sa.false())
    if unit_id:
        known = unit_id in {unit.id for unit in units}
        statement = statement.where(ExpenseBudget.unit_id == unit_id if known else sa.false())
    return statement


def _check_budget(
    units: Sequence[UnitChoice],
    unit_id: Any,
    year: Any,
    months: Sequence[Any],
    category: Any,
    amount_cents: Any,
) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if not isinstance(unit_id, int) or unit_id not in {unit.id for unit in units}:
        errors["unit"] = [_("Choose a team you may set budgets for.")]
    if not isinstance(year, int) or not EARLIEST_YEAR <= year <= LATEST_YEAR:
        errors["year"] = [
            _("Give a year between %(first)s and %(last)s.", first=EARLIEST_YEAR, last=LATEST_YEAR)
        ]
    if any(not isinstance(month, int) or not 1 <= month <= 12 for month in months):
        errors["month"] = [_("Give a month from 1 to 12.")]
    if category not in ("", *EXPENSE_CATEGORIES):
        errors["category"] = [_("Choose a category, or all categories.")]
    if not isinstance(amount_cents, int) or amount_cents < 0:
        errors["amount"] = [_("The budget cannot be negative.")]
    elif amount_cents > MAX_AMOUNT_CENTS:
        errors["amount"] = [_("That amount is too large.")]
    return errors


def create_budget(
    units: Sequence[UnitChoice],
    unit_id: int,
    year: int,
    month: int,
    category: str,
    amount_cents: int,
) -> ExpenseBudget:
    """A new budget row; one row per unit, month and category (a second is refused
    with a message on the month: edit the existing one instead)."""
    errors = _check_budget(units, unit_id, year, [month], category, amount_cents)
    if errors:
        raise ValidationFailed(errors)
    existing = db.session.scalar(
        sa.select(ExpenseBudget.id).where(
            ExpenseBudget.unit_id == unit_id,
            ExpenseBudget.year == year,
            ExpenseBudget.month == month,
            ExpenseBudget.category == category,
        )
    )
    if existing is not None:
        raise ValidationFailed(
            {"month": [_("This team already has a budget for that month and category; edit it.")]}
        )
    budget = ExpenseBudget(
        unit_id=unit_id, year=year, month=month, category=category, amount_cents=amount_cents
    )
    db.session.add(budget)
    db.session.flush()
    return budget


def update_budget(budget: ExpenseBudget, amount_cents: int) -> ExpenseBudget:
    """Change one budget's amount (its unit, month and category are its identity)."""
    errors = _check_budget(
        [UnitChoice(budget.unit_id, "", "", 0)],
        budget.unit_id,
        budget.year,
        [budget.month],
        budget.category,
        amount_cents,
    )
    if errors:
        raise ValidationFailed(errors)
    budget.amount_cents = amount_cents
    db.session.flush()
    return budget


def set_year(
    units: Sequence[UnitChoice],
    unit_id: int,
    year: int,
    category: str,
    amounts: Sequence[int],
) -> tuple[int, int]:
    """Set a unit's budget for the twelve months of ``year`` in one go: existing rows
    are updated, missing ones created (still one row per unit, month and category).
    Returns (created, updated)."""
    if len(amounts) != 12:
        raise ValidationFailed({"amount": [_("Give twelve monthly amounts.")]})
    errors: dict[str, list[str]] = {}
    for number, amount in enumerate(amounts, start=1):
        for name, messages in _check_budget(
            units, unit_id, year, [number], category, amount
        ).items():
            key = f"month_{number}" if name == "amount" else name
            errors.setdefault(key, messages)
    if errors:
        raise ValidationFailed(errors)
    existing = {
        row.month: row
        for row in db.session.scalars(
            sa.select(ExpenseBudget).where(
                ExpenseBudget.unit_id == unit_id,
                ExpenseBudget.year == year,
                ExpenseBudget.category == category,
            )
        )
    }
    created = updated = 0
    for number, amount in enumerate(amounts, start=1):
        row = existing.get(number)
        if row is None:
            db.session.add(
                ExpenseBudget(
                    unit_id=unit_id,
                    year=year,
                    month=number,
                    category=category,
                    amount_cents=amount,
                )
            )
            created += 1
        elif row.amount_cents != amount:
            row.amount_cents = amount
            updated += 1
    db.session.flush()
    return created, updated


def get_budget_or_404(budget_id: int, units: Sequence[UnitChoice]) -> ExpenseBudget:
    """One budget of a unit the viewer may see; anything else is a 404 (its existence
    stays hidden)."""
    from flask import abort

    budget = db.session.get(ExpenseBudget, budget_id)
    if budget is None or budget.unit_id not in {unit.id for unit in units}:
        abort(404)
    return budget


# -- won deals (event from the sales plugin) -------------------------------------------------


def record_won_deal(event: Any) -> WonDeal | None:
    """Count a deal another plugin reports won (``sales.opportunity_closed`` with outcome
    ``won``; payload ``opportunity_id``, ``owner_id``, ``closed_on``). Idempotent: the
    same opportunity reported twice is one row (the latest owner and day win). Part of
    the reporting plugin's transaction, which commits it."""
    payload = event.payload
    source = event.name.split(".", 1)[0]
    try:
        record_id = int(payload["opportunity_id"])
        owner_id = int(payload["owner_id"])
        won_on = date.fromisoformat(str(payload["closed_on"]))
    except (KeyError, TypeError, ValueError):
        log.warning("won deal without opportunity, owner or day: %r", payload)
        return None
    deal = db.session.get(WonDeal, (source, record_id))
    if deal is None:
        deal = WonDeal(source=source, record_id=record_id, owner_id=owner_id, won_on=won_on)
        db.session.add(deal)
    else:
        deal.owner_id, deal.won_on = owner_id, won_on
    db.session.flush()
    return deal


def forget_won_deal(event: Any) -> None:
    """A deal reported won and later lost no longer counts."""
    try:
        record_id = int(event.payload["opportunity_id"])
    except (KeyError, TypeError, ValueError):
        return
    deal = db.session.get(WonDeal, (event.name.split(".", 1)[0], record_id))
    if deal is not None:
        db.session.delete(deal)
        db.session.flush()
