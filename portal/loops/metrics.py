"""Closed-loop metrics (P1.3.2 closed loop, P1.3.4 continuous improvement): closure rate,
overdue count, median time to close and reopen rate, per person, team, type and clause
and over time, always within the viewer's data scope (``portal.scoping.scoped``), so a
salesperson sees their own numbers, a supervisor their team's, a manager everyone's.

Definitions (one cohort: the items *raised* in the period, so every ratio stays <= 100 %
and a bucket's numbers do not move when a later bucket is added):

- **raised**: items whose ``created_at`` lies in the period (or bucket);
- **closed**: of those, items done or verified by the end of the period
  (``status in (done, verified)`` and ``closed_at`` before the period's end);
- **closure rate** = closed / raised;
- **median time to close**: the median of ``closed_at - created_at`` (raise -> done) over
  the closed items of the cohort;
- **reopen rate** = reopened / closed at least once, both of the cohort: an item counts as
  reopened when ``reopen_count > 0``, as closed at least once when it is done or verified
  now or was reopened (it can only be reopened after being closed);
- **overdue**: items open or in progress whose due date has passed *now*, whenever they
  were raised (a backlog does not vanish from the numbers because it is old). Over time,
  a bucket's overdue are the items of its cohort that are overdue now.

The numbers are current state, not a replay of the history: an item closed in the
period and reopened since counts as reopened and not closed.

The counts of a grouping come from one grouped query, so what reaches Python is
bounded by the number of groups, never the items. Medians: PostgreSQL computes them
with ``percentile_cont(0.5) WITHIN GROUP`` in that same query; on other databases
(SQLite, which has no percentile function) a second query takes only the cohort's
closed items, numbers each group's durations with window functions (``row_number`` /
``count`` over the group) and averages the middle one (odd count) or two (even count):
exact, and nothing SQLite lacks (window functions since 3.25). Folding that numbering
into the counting query was measured slower on SQLite: the window would sort every
counted row, not just the closed ones.

Team rows are subtree totals: each item counts towards its owner's unit and every unit
above it that the viewer may see (the units a supervisor leads and everything below,
every unit for a manager, a salesperson's own unit), joined in SQL on the materialised
unit path, so a unit's median is the median of its whole subtree, not of its children's
medians.

Time buckets are weeks (from Monday) or calendar months in the portal's time zone; their
edges are computed here and handed to the database as a CASE nested as a binary search,
so bucketing is the same on every database and costs a few comparisons per item.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

import sqlalchemy as sa
from flask import current_app, has_app_context
from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import aliased

from ..auth.models import User
from ..extensions import db
from ..models import as_utc, utcnow
from ..org.models import OrgUnit
from ..scoping import led_unit_paths, scoped
from .models import LoopItem
from .service import local_midnight, overdue_condition, portal_zone

CLOSED_STATUSES = ("done", "verified")
GROUPS = ("person", "team", "type", "clause")
GROUP_LABELS = {
    "person": _l("Person"),
    "team": _l("Team (unit and below)"),
    "type": _l("Type"),
    "clause": _l("Clause"),
}
BUCKETS = ("week", "month")
BUCKET_LABELS = {"week": _l("Week"), "month": _l("Month")}
# How far back a period reaches, in weeks.
PERIODS = {"4w": 4, "13w": 13, "26w": 26, "52w": 52}
PERIOD_LABELS = {
    "4w": _l("Last 4 weeks"),
    "13w": _l("Last quarter (13 weeks)"),
    "26w": _l("Last half year (26 weeks)"),
    "52w": _l("Last year (52 weeks)"),
}
DEFAULT_PERIOD = "13w"
MAX_PERIOD_DAYS = 3 * 366  # a custom period is cut to three years (at most ~160 buckets)
MAX_GROUPS = 500  # rows of one grouping shown; more people than this is not a table
MAX_UNITS = 1500  # units with a team row (their pairs are bound parameters)


@dataclass(frozen=True)
class Period:
    """A span of time cut into buckets: ``edges`` are the bucket starts plus the end,
    all in UTC; ``start``/``end`` are the first and last edge."""

    bucket: str
    edges: tuple[datetime, ...]
    zone_name: str = "UTC"

    @property
    def start(self) -> datetime:
        return self.edges[0]

    @property
    def end(self) -> datetime:
        return self.edges[-1]

    @property
    def buckets(self) -> list[tuple[datetime, datetime]]:
        """(start, end) of every bucket."""
        return list(zip(self.edges[:-1], self.edges[1:], strict=True))


@dataclass
class MetricRow:
    """The numbers of one group (a person, a unit's subtree, a type, a clause, a bucket)."""

    key: Any
    label: str
    raised: int = 0
    closed: int = 0
    ever_closed: int = 0
    reopened: int = 0
    overdue: int = 0
    median_seconds: float | None = None
    depth: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def closure_rate(self) -> float | None:
        """closed / raised, or None when nothing was raised."""
        return self.closed / self.raised if self.raised else None

    @property
    def reopen_rate(self) -> float | None:
        """reopened / closed at least once, or None when nothing was closed."""
        return self.reopened / self.ever_closed if self.ever_closed else None

    @property
    def median_days(self) -> float | None:
        return None if self.median_seconds is None else self.median_seconds / 86400


# -- periods --------------------------------------------------------------------------


def _bucket_floor(day: date, bucket: str) -> date:
    if bucket == "month":
        return day.replace(day=1)
    return day - timedelta(days=day.weekday())


def _next_bucket(day: date, bucket: str) -> date:
    if bucket == "month":
        return date(day.year + (day.month == 12), day.month % 12 + 1, 1)
    return day + timedelta(days=7)


def period_between(
    first_day: date, end: datetime, bucket: str = "week", zone: tzinfo | None = None
) -> Period:
    """Buckets from the bucket containing ``first_day`` up to ``end`` (exclusive), the
    last one cut at ``end``."""
    zone = zone or portal_zone()
    if bucket not in BUCKETS:
        raise ValueError(f"unknown bucket {bucket!r}")
    end = as_utc(end).astimezone(UTC)
    day = _bucket_floor(first_day, bucket)
    edges = []
    while True:
        edge = local_midnight(day, zone)
        if edge >= end:
            break
        edges.append(edge)
        day = _next_bucket(day, bucket)
    if not edges:  # end falls on the very first edge: one empty bucket ending there
        edges.append(end - timedelta(microseconds=1))
    edges.append(end)
    return Period(bucket=bucket, edges=tuple(edges), zone_name=str(zone))


def recent_period(
    key: str = DEFAULT_PERIOD,
    bucket: str = "week",
    now: datetime | None = None,
    zone: tzinfo | None = None,
) -> Period:
    """The last N weeks up to ``now``, starting at a bucket edge."""
    zone = zone or portal_zone()
    now = as_utc(now or utcnow())
    weeks = PERIODS.get(key, PERIODS[DEFAULT_PERIOD])
    local_today = now.astimezone(zone).date()
    first_day = local_today - timedelta(weeks=weeks - 1)
    return period_between(first_day, now, bucket, zone)


def custom_period(
    since: date,
    until: date,
    bucket: str = "week",
    now: datetime | None = None,
    zone: tzinfo | None = None,
) -> Period:
    """From ``since`` to the end of ``until`` (local days, both included), never past
    ``now`` and never longer than MAX_PERIOD_DAYS."""
    zone = zone or portal_zone()
    now = as_utc(now or utcnow())
    if until < since:
        since, until = until, since
    until = min(until, now.astimezone(zone).date())
    since = min(since, until)
    if (until - since).days > MAX_PERIOD_DAYS:
        since = until - timedelta(days=MAX_PERIOD_DAYS)
    end = min(local_midnight(until + timedelta(days=1), zone), now)
    if end <= local_midnight(since, zone):
        end = local_midnight(since, zone) + timedelta(microseconds=1)
    return period_between(since, end, bucket, zone)


# -- the queries -----------------------------------------------------------------------


def _is_postgres() -> bool:
    return db.engine.dialect.name == "postgresql"


def _duration_seconds() -> Any:
    """closed_at - created_at in seconds, in the database's own arithmetic."""
    if _is_postgres():
        return sa.extract("epoch", LoopItem.closed_at - LoopItem.created_at)
    return (
        sa.func.julianday(LoopItem.closed_at) - sa.func.julianday(LoopItem.created_at)
    ) * 86400.0


@dataclass
class _Grouping:
    """What a grouping adds to the item queries: the group key, LEFT OUTER joins (see
    _team_grouping), and the names of the groups when the database does not give them."""

    key: Any
    joins: list[tuple[Any, Any]] = field(default_factory=list)
    names: dict[Any, tuple[str, str]] = field(default_factory=dict)


def visible_units(viewer: User) -> list[sa.Row]:
    """The units whose subtree gets a row: every unit for a manager, the units a
    supervisor leads and all below them, a salesperson's own unit (bounded)."""
    statement = sa.select(OrgUnit.id, OrgUnit.name, OrgUnit.path).order_by(OrgUnit.path)
    level = viewer.scope_for("read")
    paths = led_unit_paths(viewer) if level == "team" else []
    if level == "team" and paths:
        statement = statement.where(
            sa.or_(*(OrgUnit.path.startswith(path, autoescape=True) for path in paths))
        )
    elif level != "all":
        if viewer.unit_id is None:
            return []
        statement = statement.where(OrgUnit.id == viewer.unit_id)
    return list(db.session.execute(statement.limit(MAX_UNITS)))


@dataclass(frozen=True)
class UnitChoice:
    """A unit a report may show a team row of or filter by; ``depth`` below the top
    visible unit (at most 5), for indenting it in a list."""

    id: int
    name: str
    path: str
    depth: int


def unit_choices(viewer: User) -> list[UnitChoice]:
    """``visible_units`` as choices for a report's team filter and team rows."""
    rows = visible_units(viewer)
    top = min((row.path.count("/") for row in rows), default=0)
    return [
        UnitChoice(row.id, row.name, row.path, min(row.path.count("/") - top, 5)) for row in rows
    ]


def in_unit(owner: Any, unit_path: str) -> Any:
    """A condition: ``owner`` (a user id column) is someone in the subtree of the unit
    with ``unit_path``. A filter on top of the scope, never instead of it."""
    members = (
        sa.select(User.id)
        .join(OrgUnit, User.unit_id == OrgUnit.id)
        .where(OrgUnit.path.startswith(unit_path, autoescape=True))
    )
    return owner.in_(members)


def _team_grouping(viewer: User) -> _Grouping | None:
    """Group by unit subtree through a small VALUES table (a CTE) of (unit, visible
    ancestor) pairs built from the unit paths: an equality join, each item counted once
    per visible unit above its owner. (Joining the units on a LIKE of their paths made
    SQLite loop over the units and re-read the items for each.)"""
    units = visible_units(viewer)
    visible = {unit.id for unit in units}
    pairs = [
        (unit.id, int(part))
        for unit in units
        for part in unit.path.strip("/").split("/")
        if part and int(part) in visible
    ]
    if not pairs:
        return None
    tree = (
        sa.values(
            sa.column("unit_id", sa.Integer),
            sa.column("ancestor_id", sa.Integer),
            name="unit_tree",
        )
        .data(pairs)
        .cte("unit_tree")  # WITH unit_tree(unit_id, ancestor_id) AS (VALUES ...): portable
    )
    owner = aliased(User, name="metric_owner")
    return _Grouping(
        key=tree.c.ancestor_id,
        # LEFT joins, so that the items stay the outer loop (read once, through the
        # created_at index) and the small tree is probed per item: with inner joins
        # SQLite put the tree outside and read the items again for every unit. Items
        # with no visible unit fall in a NULL group, which is dropped.
        joins=[
            (owner, owner.id == LoopItem.owner_id),
            (tree, tree.c.unit_id == owner.unit_id),
        ],
        names={unit.id: (unit.name, unit.path) for unit in units},
    )


def unindexed(column: Any) -> Any:
    """``column + 0`` (``column || ''`` for text) on SQLite: grouping by a bare indexed
    column makes its planner walk that index over every row (a person's whole history)
    to save a sort, instead of reading only the period's rows through the created_at
    index; an expression cannot be served by the index, so the cheaper plan wins.
    PostgreSQL plans it well as is."""
    if _is_postgres():
        return column
    if isinstance(column.type, sa.Integer):
        return column + sa.literal_column("0")
    return column.op("||")(sa.literal_column("''"))


def bucket_case(column: Any, edges: Sequence[Any]) -> Any:
    """The bucket index of ``column`` as a CASE nested as a binary search over the
    ascending ``edges`` (dates or UTC instants; bucket i is edges[i] <= value <
    edges[i + 1]): a handful of comparisons per row even for 150 weekly buckets, NULL
    outside them. Portable: no date functions, the edges are plain parameters."""

    def search(low: int, high: int) -> Any:  # buckets low..high-1
        if high - low == 1:
            return sa.literal(low, sa.Integer)
        middle = (low + high) // 2
        return sa.case((column < edges[middle], search(low, middle)), else_=search(middle, high))

    inside = sa.and_(column >= edges[0], column < edges[-1])
    return sa.case((inside, search(0, len(edges) - 1)), else_=None)


def _bucket_of(period: Period) -> Any:
    """The bucket index of a loop item's ``created_at`` in the period."""
    return bucket_case(LoopItem.created_at, period.edges)


def _grouping(group: str | None, viewer: User, period: Period) -> _Grouping | None:
    if group is None:
        return _Grouping(key=None)
    if group == "person":
        # Grouped by the owner column alone (names are fetched for the groups after):
        # joining the people here made SQLite walk every item of every owner in scope
        # instead of the created_at range.
        return _Grouping(key=unindexed(LoopItem.owner_id))
    if group == "team":
        return _team_grouping(viewer)
    if group == "type":
        return _Grouping(key=unindexed(LoopItem.type))
    if group == "clause":
        return _Grouping(key=LoopItem.clause)
    if group == "time":
        return _Grouping(key=_bucket_of(period))
    raise ValueError(f"unknown grouping {group!r}")


def _from_items(grouping: _Grouping, *columns: Any) -> sa.Select:
    statement = sa.select(*columns).select_from(LoopItem)
    for target, onclause in grouping.joins:
        statement = statement.join(target, onclause, isouter=True)
    return statement


def _closed_in(period: Period) -> Any:
    return sa.and_(LoopItem.status.in_(CLOSED_STATUSES), LoopItem.closed_at < period.end)


def _raised_in(period: Period) -> Any:
    return sa.and_(LoopItem.created_at >= period.start, LoopItem.created_at < period.end)


def _counts(
    viewer: User, period: Period, grouping: _Grouping, now: datetime, time_series: bool
) -> list[sa.Row]:
    """The grouped counts (and, on PostgreSQL, the medians) in one query."""
    raised = _raised_in(period)
    closed = sa.and_(raised, _closed_in(period))
    flags = {
        "raised": raised,
        "closed": closed,
        "ever_closed": sa.and_(
            raised, sa.or_(LoopItem.status.in_(CLOSED_STATUSES), LoopItem.reopen_count > 0)
        ),
        "reopened": sa.and_(raised, LoopItem.reopen_count > 0),
        "overdue": overdue_condition(now),
    }
    columns = [
        sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0).label(name)
        for name, condition in flags.items()
    ]
    if _is_postgres():
        duration = sa.case((closed, _duration_seconds()), else_=None)
        columns.append(sa.func.percentile_cont(0.5).within_group(duration).label("median"))
    keys = [] if grouping.key is None else [grouping.key.label("key")]
    statement = scoped(_from_items(grouping, *keys, *columns), LoopItem, viewer)
    # Only rows that can count: the cohort, and (outside time series) today's overdue.
    statement = statement.where(raised if time_series else sa.or_(raised, flags["overdue"]))
    if grouping.key is not None:
        statement = statement.group_by(grouping.key)
        statement = statement.order_by(sa.desc("raised"), grouping.key).limit(MAX_GROUPS)
    return list(db.session.execute(statement))


def _medians(viewer: User, period: Period, grouping: _Grouping) -> dict[Any, float]:
    """Median seconds to close per group key where the database has no percentile
    function: the closed items of the cohort only, numbered per group by window
    functions, the middle one (odd count) or two (even count) averaged."""
    key = grouping.key if grouping.key is not None else sa.literal(0)
    inner = _from_items(grouping, key.label("k"), _duration_seconds().label("d"))
    inner = scoped(inner, LoopItem, viewer).where(_raised_in(period), _closed_in(period))
    inner = inner.subquery("closed_items")
    ranked = sa.select(
        inner.c.k,
        inner.c.d,
        sa.func.row_number().over(partition_by=inner.c.k, order_by=inner.c.d).label("rn"),
        sa.func.count().over(partition_by=inner.c.k).label("n"),
    ).subquery("ranked")
    middle = sa.or_(ranked.c.rn == (ranked.c.n + 1) // 2, ranked.c.rn == (ranked.c.n + 2) // 2)
    statement = (
        sa.select(ranked.c.k, sa.func.avg(ranked.c.d))
        .where(middle, ranked.c.k.is_not(None))
        .group_by(ranked.c.k)
    )
    return {k: float(value) for k, value in db.session.execute(statement)}


def _type_label(name: str) -> str:
    if has_app_context():
        loop_type = current_app.extensions["portal"].loop_types.get(name)
        if loop_type is not None:
            return str(loop_type.label)
    return name


def loop_metrics(
    viewer: User, period: Period, group: str | None = None, now: datetime | None = None
) -> list[MetricRow]:
    """The metrics of the items in ``viewer``'s read scope for ``period``: one row per
    group (``person``, ``team``, ``type``, ``clause``, ``time`` for the period's buckets)
    or a single totals row when ``group`` is None. Time rows come for every bucket, empty
    ones included; other groupings only for groups that have numbers."""
    now = as_utc(now or utcnow())
    grouping = _grouping(group, viewer, period)
    if grouping is None:  # a grouping with no group the viewer may see
        return []
    rows = _counts(viewer, period, grouping, now, time_series=group == "time")
    medians = {} if _is_postgres() else _medians(viewer, period, grouping)
    result: list[MetricRow] = []
    for row in rows:
        key = row.key if grouping.key is not None else None
        if group in ("time", "team") and key is None:
            continue
        median = row.median if _is_postgres() else medians.get(key if key is not None else 0)
        metric = MetricRow(
            key=key,
            label="",
            raised=int(row.raised),
            closed=int(row.closed),
            ever_closed=int(row.ever_closed),
            reopened=int(row.reopened),
            overdue=int(row.overdue),
            median_seconds=None if median is None else float(median),
        )
        _label(metric, row, group)
        if grouping.names:
            metric.label, metric.extra["path"] = grouping.names.get(key, (str(key), ""))
        result.append(metric)
    if group == "person" and result:
        names = dict(
            db.session.execute(
                sa.select(User.id, User.display_name).where(
                    User.id.in_([row.key for row in result])
                )
            ).all()
        )
        for row in result:
            row.label = names.get(row.key, str(row.key))
    return _arrange(result, group, period)


def _label(metric: MetricRow, row: sa.Row, group: str | None) -> None:
    if group is None:
        metric.label = str(_l("All"))
    elif group == "type":
        metric.label = _type_label(row.key)
    elif group == "clause":
        metric.label = row.key or str(_l("(no clause)"))


def bucket_label(start: datetime, bucket: str, zone_name: str) -> str:
    """How a bucket is named on an axis: its first local day (week) or month."""
    from zoneinfo import ZoneInfo

    local = start.astimezone(ZoneInfo(zone_name))
    return local.strftime("%Y-%m") if bucket == "month" else local.strftime("%Y-%m-%d")


def _arrange(rows: list[MetricRow], group: str | None, period: Period) -> list[MetricRow]:
    if group == "time":
        by_index = {row.key: row for row in rows}
        arranged = []
        for index, (start, _end) in enumerate(period.buckets):
            row = by_index.get(index) or MetricRow(key=index, label="")
            row.label = bucket_label(start, period.bucket, period.zone_name)
            row.extra["start"] = start
            arranged.append(row)
        return arranged
    if group == "team":
        rows.sort(key=lambda row: row.extra["path"])
        top = min((row.extra["path"].count("/") for row in rows), default=0)
        for row in rows:
            row.depth = min(row.extra["path"].count("/") - top, 5)
        return rows
    if group == "person" or group in ("type", "clause"):
        return sorted(rows, key=lambda row: (row.label.casefold(), str(row.key)))
    return rows


def totals(viewer: User, period: Period, now: datetime | None = None) -> MetricRow:
    """One row with the numbers of everything in the viewer's scope."""
    rows = loop_metrics(viewer, period, None, now)
    return rows[0] if rows else MetricRow(key=None, label=str(_l("All")))
