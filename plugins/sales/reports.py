"""P6.3 Sales data: orders, revenue collected, receivables, pipeline and win rate for a
period, per person, per team and over time, always in the viewer's data scope; charts of
them; and the exports of the sales records (CSV and Excel), bounded, safe against
formula injection and audited.

Definitions (stated on the page too, so a supervisor reads the numbers the same way):

- **orders**: contracts signed in the period (``signed_on``; signed, executing or
  completed, not cancelled): how many and their amount;
- **collected**: money received in the period (instalments' ``paid_cents`` by ``paid_at``,
  whatever became of the contract since);
- **receivables** (now, not as of the period's end): the unpaid balance of every
  instalment of a signed contract, aged by days past its due date (not yet due, 0-30,
  31-60, 61-90, over 90); **overdue** is the part whose due date has passed;
- **pipeline** (now): open opportunities, their amount and the amount weighted by each
  one's probability of winning;
- **win rate**: won / (won + lost) of the opportunities closed in the period.

Each figure is one grouped query by owner (and by time bucket for the period figures),
so what reaches Python is bounded by people x buckets, never by the records. Team rows
are subtree totals computed from the person rows: each person counts towards their unit
and every unit above it that the viewer may see (the core's rule for team metrics).
Scope: contracts and opportunities by their owner, instalments through their contract's
owner (``portal.scoping.scoped``), exactly as lists, details and the API.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pygal
import sqlalchemy as sa
from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import aliased

from portal import exports
from portal.audit.models import AuditEvent
from portal.audit.recorder import record_access
from portal.auth.models import User
from portal.exports import FORMATS, Column
from portal.extensions import db
from portal.loops import charts, metrics
from portal.loops.metrics import UnitChoice, bucket_case, in_unit
from portal.loops.service import local_midnight, local_today, portal_zone
from portal.money import yuan
from portal.org.models import OrgUnit
from portal.scoping import scoped

from .models import Contract, Customer, Opportunity, PaymentInstalment
from .vocabulary import label

# Contracts that count as orders and whose unpaid instalments are receivables.
ORDER_STATUSES = ("signed", "executing", "completed")

PERIODS = ("month", "quarter", "year", "last_month", "last_quarter", "last_year", "custom")
PERIOD_LABELS = {
    "month": _l("This month"),
    "quarter": _l("This quarter"),
    "year": _l("This year"),
    "last_month": _l("Last month"),
    "last_quarter": _l("Last quarter"),
    "last_year": _l("Last year"),
    "custom": _l("Custom dates"),
}
DEFAULT_PERIOD = "month"
BUCKETS = metrics.BUCKETS
BUCKET_LABELS = metrics.BUCKET_LABELS
MAX_PERIOD_DAYS = metrics.MAX_PERIOD_DAYS
EARLIEST_YEAR, LATEST_YEAR = 2000, 2100

AGING = ("not_due", "days_0_30", "days_31_60", "days_61_90", "days_over_90")
AGING_LABELS = {
    "not_due": _l("Not yet due"),
    "days_0_30": _l("0-30 days"),
    "days_31_60": _l("31-60 days"),
    "days_61_90": _l("61-90 days"),
    "days_over_90": _l("Over 90 days"),
}

CHARTS = ("trend", "people", "aging")
MAX_UNITS = metrics.MAX_UNITS
MAX_PEOPLE = 2000  # people offered in the export's owner filter


# -- periods -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportPeriod:
    """Local days cut into buckets: ``days`` are the bucket starts plus the (exclusive)
    end. The first and last bucket may be partial (a month starting mid-week)."""

    key: str
    bucket: str
    days: tuple[date, ...]

    @property
    def start(self) -> date:
        return self.days[0]

    @property
    def end(self) -> date:
        """The first day after the period."""
        return self.days[-1]

    @property
    def last_day(self) -> date:
        return self.end - timedelta(days=1)

    def utc_edges(self) -> tuple[datetime, ...]:
        """The bucket edges as UTC instants (midnight in the portal's time zone)."""
        zone = portal_zone()
        return tuple(local_midnight(day, zone) for day in self.days)

    def bucket_spans(self) -> list[tuple[date, date]]:
        """(first day, last day) of every bucket."""
        return [
            (start, end - timedelta(days=1))
            for start, end in zip(self.days[:-1], self.days[1:], strict=True)
        ]

    def bucket_label(self, index: int) -> str:
        start = self.days[index]
        return start.strftime("%Y-%m") if self.bucket == "month" else start.isoformat()

    def describe(self) -> dict[str, str]:
        return {
            "period": self.key,
            "since": self.start.isoformat(),
            "until": self.last_day.isoformat(),
            "bucket": self.bucket,
        }


def _month_start(day: date, months_back: int = 0) -> date:
    index = day.year * 12 + day.month - 1 - months_back
    return date(index // 12, index % 12 + 1, 1)


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def period_span(key: str, today: date) -> tuple[date, date]:
    """First day and exclusive end of a named period around ``today``."""
    if key in ("month", "last_month"):
        start = _month_start(today, 1 if key == "last_month" else 0)
        return start, _add_months(start, 1)
    if key in ("quarter", "last_quarter"):
        start = date(today.year, 3 * ((today.month - 1) // 3) + 1, 1)
        if key == "last_quarter":
            start = _add_months(start, -3)
        return start, _add_months(start, 3)
    if key in ("year", "last_year"):
        year = today.year - (key == "last_year")
        return date(year, 1, 1), date(year + 1, 1, 1)
    raise ValueError(f"unknown period {key!r}")


def make_period(
    key: str,
    bucket: str = "month",
    today: date | None = None,
    since: date | None = None,
    until: date | None = None,
) -> ReportPeriod:
    """The period ``key`` (``custom`` from ``since`` to ``until``, both included) cut
    into weeks (from Monday) or calendar months. Forms validate the dates; here a
    reversed range is swapped and an over-long one cut to MAX_PERIOD_DAYS."""
    bucket = bucket if bucket in BUCKETS else "month"
    today = today or local_today()
    if key == "custom" and since and until:
        if until < since:
            since, until = until, since
        if (until - since).days > MAX_PERIOD_DAYS:
            since = until - timedelta(days=MAX_PERIOD_DAYS)
        start, end = since, until + timedelta(days=1)
    else:
        key = key if key in PERIODS and key != "custom" else DEFAULT_PERIOD
        start, end = period_span(key, today)
    days = [start]
    while True:
        if bucket == "month":
            following = _add_months(days[-1], 1)
        else:
            following = days[-1] + timedelta(days=7 - days[-1].weekday())
        if following >= end:
            break
        days.append(following)
    days.append(end)
    return ReportPeriod(key=key, bucket=bucket, days=tuple(days))


# -- figures -------------------------------------------------------------------------------


@dataclass
class Figures:
    """The numbers of one group: a person, a unit's subtree, a time bucket or everyone."""

    key: Any = None
    label: str = ""
    depth: int = 0
    path: str = ""
    start: date | None = None
    end: date | None = None
    orders: int = 0
    orders_cents: int = 0
    collected_cents: int = 0
    outstanding_cents: int = 0
    overdue_cents: int = 0
    aging: dict[str, int] = field(default_factory=lambda: dict.fromkeys(AGING, 0))
    open_deals: int = 0
    pipeline_cents: int = 0
    weighted_cents: int = 0
    won: int = 0
    lost: int = 0
    won_cents: int = 0

    @property
    def win_rate(self) -> float | None:
        """won / (won + lost), or None when nothing was closed."""
        closed = self.won + self.lost
        return self.won / closed if closed else None

    def add(self, other: Figures) -> None:
        """Add another group's numbers (team totals, grand totals)."""
        for name in (
            "orders",
            "orders_cents",
            "collected_cents",
            "outstanding_cents",
            "overdue_cents",
            "open_deals",
            "pipeline_cents",
            "weighted_cents",
            "won",
            "lost",
            "won_cents",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in AGING:
            self.aging[name] += other.aging[name]

    def as_json(self) -> dict[str, Any]:
        """The API's shape: money as yuan strings, the rate as a fraction."""
        rate = self.win_rate
        return {
            "orders": {"count": self.orders, "amount": str(yuan(self.orders_cents))},
            "collected": str(yuan(self.collected_cents)),
            "receivables": {
                "outstanding": str(yuan(self.outstanding_cents)),
                "overdue": str(yuan(self.overdue_cents)),
                "aging": {name: str(yuan(self.aging[name])) for name in AGING},
            },
            "pipeline": {
                "count": self.open_deals,
                "amount": str(yuan(self.pipeline_cents)),
                "weighted": str(yuan(self.weighted_cents)),
            },
            "win_rate": {
                "won": self.won,
                "lost": self.lost,
                "won_amount": str(yuan(self.won_cents)),
                "rate": None if rate is None else round(rate, 4),
            },
        }


@dataclass
class Report:
    """Everything the page, the charts, the API and the report export show."""

    period: ReportPeriod
    today: date
    scope: str
    total: Figures
    people: list[Figures]
    teams: list[Figures]
    series: list[Figures]
    unit_id: int | None = None


def visible_units(viewer: User) -> list[UnitChoice]:
    """The units the viewer may see team rows of and filter by (the core's rule: all
    for a manager, the subtrees a supervisor leads, a salesperson's own unit)."""
    return metrics.unit_choices(viewer)


def _to_int(value: Any) -> int:
    return int(value or 0)


def weighted_cents(cents_times_percent: int) -> int:
    """Amount x probability (in percent) as whole fen, half up like every amount (exact
    integers: no float, no banker's rounding)."""
    return (cents_times_percent + 50) // 100


def _restrict(statement: sa.Select, model: Any, viewer: User, unit_path: str | None) -> sa.Select:
    statement = scoped(statement, model, viewer)
    if unit_path:
        statement = statement.where(in_unit(model.owner_id, unit_path))
    return statement


def _owner_key(model: Any) -> Any:
    # ``owner_id + 0``: keeps SQLite reading the period's rows through the date index
    # instead of walking the owner index over everybody's history (see metrics.unindexed).
    return metrics.unindexed(model.owner_id)


def _orders(viewer: User, period: ReportPeriod, unit_path: str | None) -> list[sa.Row]:
    bucket = bucket_case(Contract.signed_on, period.days)
    statement = sa.select(
        _owner_key(Contract).label("owner"),
        bucket.label("bucket"),
        sa.func.count().label("orders"),
        sa.func.coalesce(sa.func.sum(Contract.amount_cents), 0).label("cents"),
    ).where(
        Contract.signed_on >= period.start,
        Contract.signed_on < period.end,
        Contract.status.in_(ORDER_STATUSES),
    )
    statement = _restrict(statement, Contract, viewer, unit_path)
    return list(db.session.execute(statement.group_by("owner", "bucket")))


def _collected(viewer: User, period: ReportPeriod, unit_path: str | None) -> list[sa.Row]:
    edges = period.utc_edges()
    paid_at = PaymentInstalment.paid_at
    statement = (
        sa.select(
            _owner_key(Contract).label("owner"),
            bucket_case(paid_at, edges).label("bucket"),
            sa.func.coalesce(sa.func.sum(PaymentInstalment.paid_cents), 0).label("cents"),
        )
        .select_from(PaymentInstalment)
        .join(Contract, Contract.id == PaymentInstalment.contract_id)
        .where(paid_at >= edges[0], paid_at < edges[-1], PaymentInstalment.paid_cents > 0)
    )
    statement = _restrict(statement, Contract, viewer, unit_path)
    return list(db.session.execute(statement.group_by("owner", "bucket")))


def aging_cutoffs(today: date) -> dict[str, date]:
    """The due dates that separate the aging buckets as of ``today``."""
    return {
        "days_0_30": today - timedelta(days=30),
        "days_31_60": today - timedelta(days=60),
        "days_61_90": today - timedelta(days=90),
    }


def aging_bucket(due_on: date, today: date) -> str:
    """The aging bucket of one due date (the export's column; the query's CASE agrees)."""
    days = (today - due_on).days
    if days < 0:
        return "not_due"
    if days <= 30:
        return "days_0_30"
    if days <= 60:
        return "days_31_60"
    if days <= 90:
        return "days_61_90"
    return "days_over_90"


def _receivables(viewer: User, today: date, unit_path: str | None) -> list[sa.Row]:
    due = PaymentInstalment.due_on
    balance = PaymentInstalment.amount_cents - PaymentInstalment.paid_cents
    cut = aging_cutoffs(today)
    conditions = {
        "not_due": due > today,
        "days_0_30": sa.and_(due <= today, due >= cut["days_0_30"]),
        "days_31_60": sa.and_(due < cut["days_0_30"], due >= cut["days_31_60"]),
        "days_61_90": sa.and_(due < cut["days_31_60"], due >= cut["days_61_90"]),
        "days_over_90": due < cut["days_61_90"],
        "overdue": due < today,
    }
    columns = [
        sa.func.coalesce(sa.func.sum(sa.case((condition, balance), else_=0)), 0).label(name)
        for name, condition in conditions.items()
    ]
    statement = (
        sa.select(_owner_key(Contract).label("owner"), *columns)
        .select_from(PaymentInstalment)
        .join(Contract, Contract.id == PaymentInstalment.contract_id)
        .where(
            PaymentInstalment.paid_cents < PaymentInstalment.amount_cents,
            Contract.status.in_(ORDER_STATUSES),
        )
    )
    statement = _restrict(statement, Contract, viewer, unit_path)
    return list(db.session.execute(statement.group_by("owner")))


def _pipeline(viewer: User, unit_path: str | None) -> list[sa.Row]:
    statement = sa.select(
        _owner_key(Opportunity).label("owner"),
        sa.func.count().label("deals"),
        sa.func.coalesce(sa.func.sum(Opportunity.amount_cents), 0).label("cents"),
        sa.func.coalesce(
            sa.func.sum(Opportunity.amount_cents * Opportunity.probability_pct), 0
        ).label("weighted"),
    ).where(Opportunity.status == "open")
    statement = _restrict(statement, Opportunity, viewer, unit_path)
    return list(db.session.execute(statement.group_by("owner")))


def _closed_deals(viewer: User, period: ReportPeriod, unit_path: str | None) -> list[sa.Row]:
    edges = period.utc_edges()
    closed_at = Opportunity.closed_at
    won = Opportunity.status == "won"
    statement = sa.select(
        _owner_key(Opportunity).label("owner"),
        bucket_case(closed_at, edges).label("bucket"),
        sa.func.coalesce(sa.func.sum(sa.case((won, 1), else_=0)), 0).label("won"),
        sa.func.coalesce(sa.func.sum(sa.case((won, 0), else_=1)), 0).label("lost"),
        sa.func.coalesce(sa.func.sum(sa.case((won, Opportunity.amount_cents), else_=0)), 0).label(
            "won_cents"
        ),
    ).where(closed_at >= edges[0], closed_at < edges[-1], Opportunity.status.in_(("won", "lost")))
    statement = _restrict(statement, Opportunity, viewer, unit_path)
    return list(db.session.execute(statement.group_by("owner", "bucket")))


def build_report(
    viewer: User,
    period: ReportPeriod,
    today: date | None = None,
    unit_id: int | None = None,
    units: list[UnitChoice] | None = None,
) -> Report:
    """The figures of ``period`` in the viewer's scope (narrowed to the subtree of
    ``unit_id`` when given, which must be one of the viewer's visible units)."""
    today = today or local_today()
    units = visible_units(viewer) if units is None else units
    unit = next((unit for unit in units if unit.id == unit_id), None)
    unit_path = unit.path if unit else None

    people: dict[int, Figures] = {}
    series = [
        Figures(key=index, label=period.bucket_label(index), start=start, end=end)
        for index, (start, end) in enumerate(period.bucket_spans())
    ]

    def person(owner: int) -> Figures:
        return people.setdefault(owner, Figures(key=owner))

    for row in _orders(viewer, period, unit_path):
        for target in (person(row.owner), series[row.bucket]):
            target.orders += _to_int(row.orders)
            target.orders_cents += _to_int(row.cents)
    for row in _collected(viewer, period, unit_path):
        for target in (person(row.owner), series[row.bucket]):
            target.collected_cents += _to_int(row.cents)
    for row in _closed_deals(viewer, period, unit_path):
        for target in (person(row.owner), series[row.bucket]):
            target.won += _to_int(row.won)
            target.lost += _to_int(row.lost)
            target.won_cents += _to_int(row.won_cents)
    for row in _receivables(viewer, today, unit_path):
        target = person(row.owner)
        for name in AGING:
            target.aging[name] += _to_int(getattr(row, name))
        target.outstanding_cents += sum(_to_int(getattr(row, name)) for name in AGING)
        target.overdue_cents += _to_int(row.overdue)
    for row in _pipeline(viewer, unit_path):
        target = person(row.owner)
        target.open_deals += _to_int(row.deals)
        target.pipeline_cents += _to_int(row.cents)
        target.weighted_cents += weighted_cents(_to_int(row.weighted))

    total = Figures(key=None, label=str(_l("All")))
    for figures in people.values():
        total.add(figures)
    teams = _team_rows(people, units, unit_path)
    person_rows = sorted(
        people.values(), key=lambda row: (-row.orders_cents, row.label.casefold(), row.key)
    )
    return Report(
        period=period,
        today=today,
        scope=viewer.scope_for("read"),
        total=total,
        people=person_rows,
        teams=teams,
        series=series,
        unit_id=unit.id if unit else None,
    )


def _team_rows(
    people: dict[int, Figures], units: list[UnitChoice], unit_path: str | None
) -> list[Figures]:
    """Label the person rows and add each to their unit and every visible unit above."""
    found = db.session.execute(
        sa.select(User.id, User.display_name, OrgUnit.path)
        .outerjoin(OrgUnit, User.unit_id == OrgUnit.id)
        .where(User.id.in_(list(people)))
    ).all()
    shown = [unit for unit in units if not unit_path or unit.path.startswith(unit_path)]
    teams = {unit.id: Figures(key=unit.id, label=unit.name, path=unit.path) for unit in shown}
    top = min((unit.path.count("/") for unit in shown), default=0)
    for unit in shown:
        teams[unit.id].depth = min(unit.path.count("/") - top, 5)
    for user_id, name, path in found:
        figures = people[user_id]
        figures.label = name
        for part in (path or "").strip("/").split("/"):
            if part and int(part) in teams:
                teams[int(part)].add(figures)
    for figures in people.values():
        figures.label = figures.label or str(figures.key)
    return sorted(teams.values(), key=lambda row: row.path)


# -- charts ----------------------------------------------------------------------------------


def _trend_chart(report: Report) -> pygal.Graph:
    rows = report.series
    chart = pygal.Bar(
        charts.chart_config(
            _("Orders and money collected"),
            value_formatter=charts.money_label,
            show_minor_x_labels=len(rows) <= 16,
            x_labels_major_every=max(1, len(rows) // 8),
        )
    )
    chart.x_labels = [row.label for row in rows]
    chart.add(_("Orders (signed)"), [charts.yuan_float(row.orders_cents) for row in rows])
    chart.add(_("Collected"), [charts.yuan_float(row.collected_cents) for row in rows])
    return chart


def _people_chart(report: Report) -> pygal.Graph:
    rows = report.people[: charts.MAX_BARS]
    chart = pygal.Bar(charts.chart_config(_("By person"), value_formatter=charts.money_label))
    chart.x_labels = [row.label for row in rows]
    chart.add(_("Orders (signed)"), [charts.yuan_float(row.orders_cents) for row in rows])
    chart.add(_("Collected"), [charts.yuan_float(row.collected_cents) for row in rows])
    chart.add(_("Overdue"), [charts.yuan_float(row.overdue_cents) for row in rows])
    return chart


def _aging_chart(report: Report) -> pygal.Graph:
    chart = pygal.Bar(
        charts.chart_config(
            _("Receivables by age"), value_formatter=charts.money_label, show_legend=False
        )
    )
    chart.x_labels = [str(AGING_LABELS[name]) for name in AGING]
    values = [charts.yuan_float(report.total.aging[name]) for name in AGING]
    chart.add(_("Outstanding"), values if any(values) else [])
    return chart


CHART_BUILDERS: dict[str, Callable[[Report], pygal.Graph]] = {
    "trend": _trend_chart,
    "people": _people_chart,
    "aging": _aging_chart,
}


def chart_svg(name: str, report: Report) -> bytes:
    """The chart ``name`` (one of CHARTS) as a self-contained SVG document."""
    return charts.render_svg(CHART_BUILDERS[name](report))


# -- exports ---------------------------------------------------------------------------------

DATASETS = ("customers", "opportunities", "contracts", "receivables", "report")
DATASET_LABELS = {
    "customers": _l("Customers and prospects"),
    "opportunities": _l("Opportunities"),
    "contracts": _l("Contracts"),
    "receivables": _l("Receivables (unpaid instalments)"),
    "report": _l("Report table (per person and team)"),
}
# What the period filter of each dataset applies to (shown next to the choice).
DATASET_DATES = {
    "customers": _l("created in the period"),
    "opportunities": _l("created in the period"),
    "contracts": _l("signed in the period"),
    "receivables": _l("due in the period"),
    "report": _l("figures of the period"),
}
# The table an export reads, as the audit log names it.
DATASET_TABLES = {
    "customers": Customer.__tablename__,
    "opportunities": Opportunity.__tablename__,
    "contracts": Contract.__tablename__,
    "receivables": PaymentInstalment.__tablename__,
    "report": "sales_report",
}
FORMAT_LABELS = {"csv": _l("CSV (UTF-8, opens in Excel)"), "xlsx": _l("Excel workbook (.xlsx)")}
MAX_ROWS_CONFIG = "SALES_EXPORT_MAX_ROWS"
DEFAULT_MAX_ROWS = 100_000
FETCH_SIZE = 2000


def max_rows() -> int:
    """The hard cap of one export (config SALES_EXPORT_MAX_ROWS, default 100,000)."""
    try:
        value = int(current_app.config.get(MAX_ROWS_CONFIG, DEFAULT_MAX_ROWS))
    except (TypeError, ValueError):
        value = DEFAULT_MAX_ROWS
    return max(1, value)


@dataclass
class ExportFilters:
    """What narrows an export inside the viewer's scope."""

    period: ReportPeriod | None = None  # None: any time
    unit: UnitChoice | None = None
    owner_id: int | None = None

    def describe(self) -> dict[str, Any]:
        """The filters as the audit event records them."""
        found: dict[str, Any] = dict(self.period.describe()) if self.period else {"period": "all"}
        if self.unit:
            found["unit"] = self.unit.id
            found["unit_name"] = self.unit.name
        if self.owner_id:
            found["owner"] = self.owner_id
        return found


@dataclass
class Export:
    """A prepared export: columns, a row iterator (bounded), and what was recorded."""

    dataset: str
    format: str
    columns: list[Column]
    rows: Iterator[tuple[Any, ...]]
    count: int
    capped: bool
    cap: int
    filename: str
    sheet_title: str

    @property
    def trailer(self) -> str | None:
        """The file's last line: what the cap left out, if it cut the export short."""
        return self.capped_message if self.capped else None

    @property
    def capped_message(self) -> str:
        return _(
            "Export stopped at %(cap)s rows (the limit); narrow the filters to get the rest.",
            cap=self.cap,
        )


def _yes_no(value: bool | None) -> str | None:
    """A yes/no column in the reader's language (an empty cell when not known)."""
    if value is None:
        return None
    return _("Yes") if value else _("No")


def _narrow(
    statement: sa.Select, model: Any, owner: Any, viewer: User, filters: ExportFilters
) -> sa.Select:
    statement = scoped(statement, model, viewer)
    if filters.unit:
        statement = statement.where(in_unit(owner, filters.unit.path))
    if filters.owner_id:
        statement = statement.where(owner == filters.owner_id)
    return statement


def _instant_range(column: Any, period: ReportPeriod | None) -> list[Any]:
    if period is None:
        return []
    edges = period.utc_edges()
    return [column >= edges[0], column < edges[-1]]


def _day_range(column: Any, period: ReportPeriod | None) -> list[Any]:
    if period is None:
        return []
    return [column >= period.start, column < period.end]


def _customers(viewer: User, filters: ExportFilters, today: date) -> tuple[Any, ...]:
    owner = aliased(User, name="owner")
    statement = (
        sa.select(
            Customer.id,
            Customer.name,
            Customer.stage,
            Customer.grade,
            owner.display_name,
            Customer.phone,
            Customer.email,
            Customer.tax_id,
            Customer.industry,
            Customer.size,
            Customer.region,
            Customer.city,
            Customer.address,
            Customer.source,
            Customer.qualified,
            Customer.credit_risk,
            Customer.in_pool,
            Customer.last_contact_at,
            Customer.next_follow_up_at,
            Customer.created_at,
        )
        .outerjoin(owner, owner.id == Customer.owner_id)
        .where(*_instant_range(Customer.created_at, filters.period))
        .order_by(Customer.id)
    )
    statement = _narrow(statement, Customer, Customer.owner_id, viewer, filters)
    columns = [
        Column(_l("ID"), "int", 8),
        Column(_l("Name"), width=30),
        Column(_l("Stage")),
        Column(_l("Grade")),
        Column(_l("Owner")),
        Column(_l("Phone")),
        Column(_l("Email"), width=24),
        Column(_l("Tax ID"), width=20),
        Column(_l("Industry")),
        Column(_l("Company size")),
        Column(_l("Region")),
        Column(_l("City")),
        Column(_l("Address"), width=30),
        Column(_l("Source")),
        Column(_l("Qualified"), width=10),
        Column(_l("Credit risk"), width=10),
        Column(_l("In the shared pool"), width=10),
        Column(_l("Last contact"), "datetime", 17),
        Column(_l("Next follow-up"), "datetime", 17),
        Column(_l("Created"), "datetime", 17),
    ]

    def row(r: sa.Row) -> tuple[Any, ...]:
        return (
            r[0],
            r[1],
            label("customer_stage", r[2]),
            label("grade", r[3]),
            r[4] or "",
            r[5],
            r[6],
            r[7] or "",
            r[8],
            label("size", r[9]),
            r[10],
            r[11],
            r[12],
            label("source", r[13]),
            _yes_no(r[14]),
            label("credit_risk", r[15]),
            _yes_no(r[16]),
            r[17],
            r[18],
            r[19],
        )

    return statement, columns, row


def _opportunities(viewer: User, filters: ExportFilters, today: date) -> tuple[Any, ...]:
    owner = aliased(User, name="owner")
    statement = (
        sa.select(
            Opportunity.id,
            Opportunity.name,
            Customer.name,
            owner.display_name,
            Opportunity.stage,
            Opportunity.status,
            Opportunity.probability_pct,
            Opportunity.amount_cents,
            Opportunity.expected_close_on,
            Opportunity.created_at,
            Opportunity.closed_at,
            Opportunity.lost_reason,
        )
        .join(Customer, Customer.id == Opportunity.customer_id)
        .join(owner, owner.id == Opportunity.owner_id)
        .where(*_instant_range(Opportunity.created_at, filters.period))
        .order_by(Opportunity.id)
    )
    statement = _narrow(statement, Opportunity, Opportunity.owner_id, viewer, filters)
    columns = [
        Column(_l("ID"), "int", 8),
        Column(_l("Opportunity"), width=30),
        Column(_l("Customer"), width=30),
        Column(_l("Owner")),
        Column(_l("Stage")),
        Column(_l("Status"), width=10),
        Column(_l("Probability (%)"), "int", 10),
        Column(_l("Amount"), "money"),
        Column(_l("Weighted amount"), "money"),
        Column(_l("Expected close"), "date", 12),
        Column(_l("Created"), "datetime", 17),
        Column(_l("Closed"), "datetime", 17),
        Column(_l("Lost reason"), width=18),
    ]

    def row(r: sa.Row) -> tuple[Any, ...]:
        amount, probability = r[7] or 0, r[6] or 0
        return (
            r[0],
            r[1],
            r[2],
            r[3],
            label("stage", r[4]),
            label("opportunity_status", r[5]),
            probability,
            amount,
            weighted_cents(amount * probability),
            r[8],
            r[9],
            r[10],
            label("lost_reason", r[11]),
        )

    return statement, columns, row


def _paid_per_contract() -> Any:
    return (
        sa.select(
            PaymentInstalment.contract_id.label("contract_id"),
            sa.func.sum(PaymentInstalment.paid_cents).label("paid"),
        )
        .group_by(PaymentInstalment.contract_id)
        .subquery("paid_per_contract")
    )


def _contracts(viewer: User, filters: ExportFilters, today: date) -> tuple[Any, ...]:
    owner = aliased(User, name="owner")
    paid = _paid_per_contract()
    statement = (
        sa.select(
            Contract.number,
            Contract.title,
            Customer.name,
            owner.display_name,
            Contract.status,
            Contract.amount_cents,
            sa.func.coalesce(paid.c.paid, 0),
            Contract.signed_on,
            Contract.starts_on,
            Contract.ends_on,
            Contract.payment_terms_days,
        )
        .join(Customer, Customer.id == Contract.customer_id)
        .join(owner, owner.id == Contract.owner_id)
        .outerjoin(paid, paid.c.contract_id == Contract.id)
        .where(*_day_range(Contract.signed_on, filters.period))
        .order_by(Contract.id)
    )
    statement = _narrow(statement, Contract, Contract.owner_id, viewer, filters)
    columns = [
        Column(_l("Number"), width=16),
        Column(_l("Title"), width=30),
        Column(_l("Customer"), width=30),
        Column(_l("Owner")),
        Column(_l("Status")),
        Column(_l("Amount"), "money"),
        Column(_l("Collected"), "money"),
        Column(_l("Not yet collected"), "money"),
        Column(_l("Signed on"), "date", 12),
        Column(_l("Starts on"), "date", 12),
        Column(_l("Ends on"), "date", 12),
        Column(_l("Payment terms (days)"), "int", 10),
    ]

    def row(r: sa.Row) -> tuple[Any, ...]:
        amount, collected = r[5] or 0, int(r[6] or 0)
        return (
            r[0],
            r[1],
            r[2],
            r[3],
            label("contract_status", r[4]),
            amount,
            collected,
            max(amount - collected, 0),
            r[7],
            r[8],
            r[9],
            r[10],
        )

    return statement, columns, row


def _receivable_rows(viewer: User, filters: ExportFilters, today: date) -> tuple[Any, ...]:
    owner = aliased(User, name="owner")
    statement = (
        sa.select(
            Contract.number,
            Customer.name,
            owner.display_name,
            PaymentInstalment.sequence,
            PaymentInstalment.due_on,
            PaymentInstalment.amount_cents,
            PaymentInstalment.paid_cents,
        )
        .select_from(PaymentInstalment)
        .join(Contract, Contract.id == PaymentInstalment.contract_id)
        .join(Customer, Customer.id == Contract.customer_id)
        .join(owner, owner.id == Contract.owner_id)
        .where(
            PaymentInstalment.paid_cents < PaymentInstalment.amount_cents,
            Contract.status.in_(ORDER_STATUSES),
            *_day_range(PaymentInstalment.due_on, filters.period),
        )
        .order_by(PaymentInstalment.due_on, PaymentInstalment.id)
    )
    statement = _narrow(statement, Contract, Contract.owner_id, viewer, filters)
    columns = [
        Column(_l("Contract"), width=16),
        Column(_l("Customer"), width=30),
        Column(_l("Owner")),
        Column(_l("Instalment"), "int", 10),
        Column(_l("Due on"), "date", 12),
        Column(_l("Amount"), "money"),
        Column(_l("Paid"), "money"),
        Column(_l("Outstanding"), "money"),
        Column(_l("Days past due"), "int", 10),
        Column(_l("Age"), width=14),
    ]

    def row(r: sa.Row) -> tuple[Any, ...]:
        days = (today - r[4]).days
        return (
            r[0],
            r[1],
            r[2],
            r[3],
            r[4],
            r[5],
            r[6],
            r[5] - r[6],
            max(days, 0),
            str(AGING_LABELS[aging_bucket(r[4], today)]),
        )

    return statement, columns, row


REPORT_COLUMNS = [
    Column(_l("Group"), width=10),
    Column(_l("Name"), width=24),
    Column(_l("Orders"), "int", 8),
    Column(_l("Orders amount"), "money"),
    Column(_l("Collected"), "money"),
    Column(_l("Outstanding"), "money"),
    Column(_l("Overdue"), "money"),
    Column(_l("Open opportunities"), "int", 10),
    Column(_l("Pipeline"), "money"),
    Column(_l("Weighted pipeline"), "money"),
    Column(_l("Won"), "int", 8),
    Column(_l("Lost"), "int", 8),
    Column(_l("Win rate (%)"), "number", 10),
]


def report_table(report: Report) -> list[tuple[Any, ...]]:
    """The report as rows: everyone, each person, each team, each time bucket."""

    def line(group: str, row: Figures, name: str | None = None) -> tuple[Any, ...]:
        rate = row.win_rate
        return (
            group,
            name if name is not None else row.label,
            row.orders,
            row.orders_cents,
            row.collected_cents,
            row.outstanding_cents,
            row.overdue_cents,
            row.open_deals,
            row.pipeline_cents,
            row.weighted_cents,
            row.won,
            row.lost,
            None if rate is None else (Decimal(rate) * 100).quantize(Decimal("0.1")),
        )

    rows = [line(_("Total"), report.total, _("All"))]
    rows += [line(_("Person"), row) for row in report.people]
    rows += [line(_("Team"), row, "  " * row.depth + row.label) for row in report.teams]
    rows += [line(_("Period"), row) for row in report.series]
    return rows


BUILDERS: dict[str, Callable[[User, ExportFilters, date], tuple[Any, ...]]] = {
    "customers": _customers,
    "opportunities": _opportunities,
    "contracts": _contracts,
    "receivables": _receivable_rows,
}


def _stream(statement: sa.Select, mapper: Callable[[sa.Row], tuple[Any, ...]]) -> Iterator:
    result = db.session.execute(statement.execution_options(yield_per=FETCH_SIZE))
    try:
        for record in result:
            yield mapper(record)
    finally:
        result.close()


def prepare_export(
    viewer: User,
    dataset: str,
    fmt: str,
    filters: ExportFilters,
    today: date | None = None,
    units: list[UnitChoice] | None = None,
) -> Export:
    """Count the rows (up to the cap), record the export in the audit log, and return
    the columns with a bounded row iterator. The caller commits before streaming, so
    the audit event exists even if the download is interrupted."""
    if dataset not in DATASETS or fmt not in FORMATS:
        raise ValueError(f"unknown export {dataset!r} as {fmt!r}")
    today = today or local_today()
    cap = max_rows()
    if dataset == "report":
        if filters.period is None:
            raise ValueError("the report table needs a period")
        report = build_report(
            viewer, filters.period, today, filters.unit.id if filters.unit else None, units
        )
        table = report_table(report)
        columns = REPORT_COLUMNS
        count = len(table)
        rows: Iterator[tuple[Any, ...]] = iter(table[:cap])
    else:
        statement, columns, mapper = BUILDERS[dataset](viewer, filters, today)
        counted = (
            statement.limit(cap + 1)
            .with_only_columns(sa.literal(1), maintain_column_froms=True)
            .order_by(None)
        )
        count = db.session.scalar(sa.select(sa.func.count()).select_from(counted.subquery()))
        rows = _stream(statement.limit(cap), mapper)
    capped = count > cap
    rows_written = min(count, cap)
    record_export(dataset, fmt, filters, rows_written, capped)
    return Export(
        dataset=dataset,
        format=fmt,
        columns=columns,
        rows=rows,
        count=rows_written,
        capped=capped,
        cap=cap,
        filename=exports.dated_filename(f"sales-{dataset}", fmt),
        sheet_title=str(DATASET_LABELS[dataset]),
    )


def record_export(
    dataset: str, fmt: str, filters: ExportFilters, rows: int, capped: bool
) -> AuditEvent:
    """One row in the core audit log (action ``export``): who exported which data, with
    which filters, how many rows. Added to the session; the caller commits."""
    return record_access(
        "export",
        DATASET_TABLES[dataset],
        {
            "dataset": dataset,
            "format": fmt,
            "filters": filters.describe(),
            "rows": rows,
            "capped": capped,
        },
    )


# -- who can be filtered by --------------------------------------------------------------------
