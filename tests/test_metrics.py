"""Closed-loop metrics (P1.3.2 closed loop, P1.3.4 continuous improvement): closure rate,
overdue count, median time to close and reopen rate per person, team, type, clause and
over time, checked against a plain-Python oracle; scoped to the viewer; charted as
self-contained SVG images."""

from __future__ import annotations

import random
import re
import statistics
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any
from xml.etree import ElementTree
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from portal.audit.recorder import acting_as
from portal.auth.models import User
from portal.extensions import db
from portal.loops import metrics
from portal.loops.models import LoopItem
from portal.org.models import OrgUnit
from portal.plugins import LoopType
from portal.testing import count_statements, throwaway_plugin

SHANGHAI = ZoneInfo("Asia/Shanghai")
# Wednesday 4 March 2026, 10:00 in Shanghai.
NOW = datetime(2026, 3, 4, 2, 0, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.fixture
def app(make_app: Any) -> Any:
    plugin = throwaway_plugin(
        "mx",
        portal_loop_types=lambda: [LoopType("mx.follow_up", "Customer follow-up", clause="P3.1.3")],
    )
    return make_app(plugins=[("mx", plugin)])


def add(app: Any, specs: list[dict[str, Any]]) -> None:
    with app.app_context(), acting_as("test"):
        for spec in specs:
            values = {
                "type": "core.action",
                "clause": "P1.3.2",
                "title": "item",
                "status": "open",
                "due_at": spec["created_at"] + 7 * DAY,
            }
            values.update(spec)
            values.setdefault("raised_by_id", values["owner_id"])
            db.session.add(LoopItem(**values))
        db.session.commit()


def february(bucket: str = "week") -> metrics.Period:
    """2 to 28 February 2026 in Shanghai (four whole weeks from a Monday)."""
    return metrics.custom_period(date(2026, 2, 2), date(2026, 3, 1), bucket, NOW, SHANGHAI)


def local(day: int, hour: int = 12, month: int = 2) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=SHANGHAI).astimezone(UTC)


def metric_rows(app: Any, username: str, period: metrics.Period, group: str | None) -> Any:
    with app.test_request_context():
        viewer = db.session.scalars(sa.select(User).where(User.username == username)).one()
        return metrics.loop_metrics(viewer, period, group, NOW)


# -- periods ------------------------------------------------------------------------------


def test_p1_3_4_buckets_are_local_weeks_and_months() -> None:
    weeks = february("week")
    assert [b[0].astimezone(SHANGHAI).date() for b in weeks.buckets] == [
        date(2026, 2, 2),
        date(2026, 2, 9),
        date(2026, 2, 16),
        date(2026, 2, 23),
    ]
    assert weeks.start == datetime(2026, 2, 1, 16, 0, tzinfo=UTC)  # Monday 00:00 in Shanghai
    assert weeks.end == datetime(2026, 3, 1, 16, 0, tzinfo=UTC)
    months = metrics.custom_period(date(2025, 12, 15), date(2026, 2, 10), "month", NOW, SHANGHAI)
    assert [b[0].astimezone(SHANGHAI).date() for b in months.buckets] == [
        date(2025, 12, 1),
        date(2026, 1, 1),
        date(2026, 2, 1),
    ]
    # A recent period ends now, the last bucket cut short.
    recent = metrics.recent_period("4w", "week", NOW, SHANGHAI)
    assert len(recent.buckets) == 4 and recent.end == NOW
    assert recent.start.astimezone(SHANGHAI).weekday() == 0
    # A custom period never reaches past now nor beyond three years.
    assert (
        metrics.custom_period(date(2026, 3, 1), date(2030, 1, 1), "week", NOW, SHANGHAI).end == NOW
    )
    long = metrics.custom_period(date(2000, 1, 1), date(2026, 1, 1), "month", NOW, SHANGHAI)
    assert len(long.buckets) <= 38


# -- the numbers against hand-computed values ------------------------------------------------


def test_p1_3_4_each_metric_on_a_constructed_data_set(app: Any, org: dict[str, int]) -> None:
    li, wang, zhao = org["li"], org["wang"], org["zhao"]
    add(
        app,
        [
            # li: three closed in February, 1 / 2 / 10 days -> median 2 days (odd count)
            {"owner_id": li, "created_at": local(2), "closed_at": local(3), "status": "done"},
            {"owner_id": li, "created_at": local(3), "closed_at": local(5), "status": "verified"},
            {
                "owner_id": li,
                "created_at": local(4),
                "closed_at": local(14),
                "status": "verified",
                "reopen_count": 2,
            },
            # li: reopened and open again (closed once: counts for the reopen rate only)
            {
                "owner_id": li,
                "created_at": local(5),
                "status": "in_progress",
                "reopen_count": 1,
                "due_at": local(1, month=4),
            },
            # li: raised in February, still open and overdue now
            {"owner_id": li, "created_at": local(20), "due_at": local(25)},
            # li: raised in January, overdue now: counts as overdue, not as raised
            {"owner_id": li, "created_at": local(10, month=1), "due_at": local(20, month=1)},
            # li: raised in February, closed only in March: not closed within the period
            {
                "owner_id": li,
                "created_at": local(26),
                "closed_at": local(2, month=3),
                "status": "done",
            },
            # wang: four closed, 1 / 2 / 3 / 10 days -> median 2.5 days (even count)
            {
                "owner_id": wang,
                "created_at": local(2),
                "closed_at": local(3),
                "status": "done",
                "type": "mx.follow_up",
                "clause": "P3.1.3",
            },
            {
                "owner_id": wang,
                "created_at": local(9),
                "closed_at": local(11),
                "status": "done",
                "type": "mx.follow_up",
                "clause": "P3.1.3",
            },
            {
                "owner_id": wang,
                "created_at": local(10),
                "closed_at": local(13),
                "status": "done",
                "type": "mx.follow_up",
                "clause": "P3.1.3",
            },
            {
                "owner_id": wang,
                "created_at": local(12),
                "closed_at": local(22),
                "status": "done",
                "type": "mx.follow_up",
                "clause": "P3.1.3",
            },
            # wang: done after its due date (and after the period) is not overdue
            {
                "owner_id": wang,
                "created_at": local(16),
                "due_at": local(17),
                "status": "done",
                "closed_at": local(3, month=3),
                "type": "mx.follow_up",
                "clause": "P3.1.3",
            },
            # zhao: one open, not yet due
            {"owner_id": zhao, "created_at": local(24), "due_at": local(30, month=3)},
        ],
    )
    period = february()
    by_person = {row.key: row for row in metric_rows(app, "manager", period, "person")}
    li_row, wang_row, zhao_row = by_person[li], by_person[wang], by_person[zhao]
    assert li_row.label == "Li"
    assert (li_row.raised, li_row.closed, li_row.overdue) == (6, 3, 2)
    assert li_row.closure_rate == pytest.approx(0.5)
    assert li_row.median_days == pytest.approx(2.0, abs=1e-6)
    assert (li_row.reopened, li_row.ever_closed) == (2, 5)
    assert li_row.reopen_rate == pytest.approx(0.4)
    assert (wang_row.raised, wang_row.closed, wang_row.overdue) == (5, 4, 0)
    assert wang_row.median_days == pytest.approx(2.5, abs=1e-6)
    assert wang_row.reopen_rate == 0
    assert (zhao_row.raised, zhao_row.closed, zhao_row.median_seconds) == (1, 0, None)
    assert zhao_row.closure_rate == 0 and zhao_row.reopen_rate is None

    with app.test_request_context():
        manager = db.session.get(User, org["manager"])
        total = metrics.totals(manager, period, NOW)
    assert (total.raised, total.closed, total.overdue) == (12, 7, 2)
    assert total.median_days == pytest.approx(2.0, abs=1e-6)  # 1, 1, 2, 2, 3, 10, 10 days

    by_type = {row.key: row for row in metric_rows(app, "manager", period, "type")}
    assert by_type["mx.follow_up"].label == "Customer follow-up"
    assert by_type["mx.follow_up"].raised == 5 and by_type["core.action"].raised == 7
    by_clause = {row.key: row for row in metric_rows(app, "manager", period, "clause")}
    assert set(by_clause) == {"P1.3.2", "P3.1.3"}

    series = metric_rows(app, "manager", period, "time")
    assert [row.label for row in series] == ["2026-02-02", "2026-02-09", "2026-02-16", "2026-02-23"]
    assert [row.raised for row in series] == [5, 3, 2, 2]
    assert [row.closed for row in series] == [4, 3, 0, 0]
    assert series[0].median_days == pytest.approx(1.5, abs=1e-6)  # 1, 1, 2, 10 days
    assert [row.overdue for row in series] == [0, 0, 1, 0]  # the January one is outside


def test_p1_3_4_team_rows_are_subtree_totals_in_the_viewers_units(
    app: Any, org: dict[str, int]
) -> None:
    add(
        app,
        [
            {
                "owner_id": org["li"],
                "created_at": local(3),
                "closed_at": local(4),
                "status": "done",
            },
            {
                "owner_id": org["wang"],
                "created_at": local(3),
                "closed_at": local(6),
                "status": "done",
            },
            {"owner_id": org["wang"], "created_at": local(5)},
            {
                "owner_id": org["zhao"],
                "created_at": local(5),
                "closed_at": local(6),
                "status": "done",
            },
            {"owner_id": org["manager"], "created_at": local(5)},  # no unit: totals only
        ],
    )
    manager_rows = metric_rows(app, "manager", february(), "team")
    assert [(row.label, row.depth, row.raised, row.closed) for row in manager_rows] == [
        ("Company", 0, 4, 3),
        ("East", 1, 3, 2),
        ("Shanghai", 2, 3, 2),
        ("South", 1, 1, 1),
        ("Guangzhou", 2, 1, 1),
    ]
    east = manager_rows[1]
    assert east.median_days == pytest.approx(2.0, abs=1e-6)  # 1 and 3 days: the subtree's
    supervisor_rows = metric_rows(app, "sup_east", february(), "team")
    assert [(row.label, row.depth, row.raised) for row in supervisor_rows] == [
        ("East", 0, 3),
        ("Shanghai", 1, 3),
    ]
    assert [(row.label, row.raised) for row in metric_rows(app, "li", february(), "team")] == [
        ("Shanghai", 1)
    ]


def test_p1_3_4_metrics_are_scoped_to_the_viewer(app: Any, org: dict[str, int]) -> None:
    add(
        app,
        [
            {"owner_id": org[name], "created_at": local(3 + n)}
            for n, name in enumerate(["li", "li", "wang", "zhao", "zhao", "zhao"])
        ],
    )
    period = february()
    people = {
        username: {row.label: row.raised for row in metric_rows(app, username, period, "person")}
        for username in ("li", "sup_east", "sup_south", "manager", "auditor")
    }
    assert people["li"] == {"Li": 2}
    assert people["sup_east"] == {"Li": 2, "Wang": 1}
    assert people["sup_south"] == {"Zhao": 3}
    assert people["manager"] == people["auditor"] == {"Li": 2, "Wang": 1, "Zhao": 3}
    assert metric_rows(app, "li", period, None)[0].raised == 2


# -- the oracle: a seeded random data set, every grouping, several viewers ---------------------


CLOSED = ("done", "verified")
OPEN = ("open", "in_progress")


def oracle(
    items: list[dict[str, Any]],
    period: metrics.Period,
    group: str | None,
    keys_of: Any,
) -> dict[Any, dict[str, Any]]:
    """The definitions of portal.loops.metrics, computed in Python."""
    rows: dict[Any, dict[str, Any]] = defaultdict(
        lambda: {
            "raised": 0,
            "closed": 0,
            "ever_closed": 0,
            "reopened": 0,
            "overdue": 0,
            "durations": [],
            "counts": False,
        }
    )
    for item in items:
        raised = period.start <= item["created_at"] < period.end
        closed = raised and item["status"] in CLOSED and item["closed_at"] < period.end
        overdue = item["status"] in OPEN and item["due_at"] < NOW
        if group == "time":
            if not raised:
                continue
            keys = [
                index
                for index, (start, end) in enumerate(period.buckets)
                if start <= item["created_at"] < end
            ]
        else:
            keys = keys_of(item)
        for key in keys:
            row = rows[key]
            row["counts"] = row["counts"] or raised or overdue
            row["raised"] += raised
            row["closed"] += closed
            row["ever_closed"] += raised and (item["status"] in CLOSED or item["reopen_count"] > 0)
            row["reopened"] += raised and item["reopen_count"] > 0
            row["overdue"] += overdue
            if closed:
                row["durations"].append((item["closed_at"] - item["created_at"]).total_seconds())
    return {key: row for key, row in rows.items() if row["counts"] or group == "time"}


def random_items(org: dict[str, int], seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    owners = ["li", "wang", "zhao", "sup_east", "sup_south", "manager"]
    items = []
    for _ in range(160):
        created = local(1) - 20 * DAY + timedelta(seconds=rng.randint(0, 55 * 86400))
        status = rng.choice(["open", "in_progress", "done", "verified", "done"])
        closed_at = None
        if status in CLOSED:
            closed_at = min(created + timedelta(seconds=rng.randint(60, 20 * 86400)), NOW)
        items.append(
            {
                "owner_id": org[rng.choice(owners)],
                "type": rng.choice(["core.action", "mx.follow_up"]),
                "clause": rng.choice(["P1.3.2", "P3.1.3", "P3.5.2", ""]),
                "created_at": created,
                "due_at": created + timedelta(seconds=rng.randint(3600, 25 * 86400)),
                "status": status,
                "closed_at": closed_at,
                "reopen_count": rng.choice([0, 0, 0, 1, 2]),
            }
        )
    return items


def test_p1_3_4_metrics_match_the_oracle_for_every_grouping_and_viewer(
    app: Any, org: dict[str, int]
) -> None:
    items = random_items(org, seed=20260304)
    add(app, items)
    with app.app_context():
        unit_of = dict(db.session.execute(sa.select(User.id, User.unit_id)).all())
        paths = dict(db.session.execute(sa.select(OrgUnit.id, OrgUnit.path)).all())
        names = dict(db.session.execute(sa.select(User.id, User.display_name)).all())
    reach = {
        "li": {org["li"]},
        "sup_east": {org["li"], org["wang"], org["sup_east"]},
        "manager": set(names),
    }
    visible_units = {
        "li": {org["shanghai"]},
        "sup_east": {org["east"], org["shanghai"]},
        "manager": set(paths),
    }

    def team_keys(viewer: str) -> Any:
        def keys(item: dict[str, Any]) -> list[int]:
            unit = unit_of.get(item["owner_id"])
            if unit is None:
                return []
            return [
                other for other in visible_units[viewer] if paths[unit].startswith(paths[other])
            ]

        return keys

    for bucket in ("week", "month"):
        period = metrics.custom_period(date(2026, 1, 20), date(2026, 2, 25), bucket, NOW, SHANGHAI)
        for viewer in ("li", "sup_east", "manager"):
            mine = [item for item in items if item["owner_id"] in reach[viewer]]
            keyers = {
                None: lambda item: [None],
                "person": lambda item: [item["owner_id"]],
                "team": team_keys(viewer),
                "type": lambda item: [item["type"]],
                "clause": lambda item: [item["clause"]],
                "time": None,
            }
            for group, keys_of in keyers.items():
                expected = oracle(mine, period, group, keys_of)
                actual = {row.key: row for row in metric_rows(app, viewer, period, group)}
                context = (bucket, viewer, group)
                assert set(actual) == set(expected), context
                for key, want in expected.items():
                    got = actual[key]
                    assert (got.raised, got.closed, got.ever_closed, got.reopened, got.overdue) == (
                        want["raised"],
                        want["closed"],
                        want["ever_closed"],
                        want["reopened"],
                        want["overdue"],
                    ), (*context, key)
                    if want["durations"]:
                        median = statistics.median(want["durations"])
                        assert got.median_seconds == pytest.approx(median, abs=0.01), (
                            *context,
                            key,
                        )
                    else:
                        assert got.median_seconds is None, (*context, key)


# -- the page and the charts ---------------------------------------------------------------


def logged_in(app: Any, login: Any, username: str) -> Any:
    client = app.test_client()
    login(client, username)
    return client


def recent_items(org: dict[str, int]) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    return [
        {
            "owner_id": org["li"],
            "created_at": now - 10 * DAY,
            "closed_at": now - 8 * DAY,
            "status": "verified",
        },
        {"owner_id": org["li"], "created_at": now - 5 * DAY, "due_at": now - DAY},
        {"owner_id": org["wang"], "created_at": now - 3 * DAY, "type": "mx.follow_up"},
        {"owner_id": org["zhao"], "created_at": now - 2 * DAY, "reopen_count": 1},
    ]


def test_p1_3_4_metrics_page_shows_the_viewers_numbers(
    app: Any, org: dict[str, int], login: Any
) -> None:
    add(app, recent_items(org))
    li = logged_in(app, login, "li").get("/work/metrics")
    assert li.status_code == 200
    html = li.get_data(as_text=True)
    assert 'data-testid="total-raised">2<' in html
    assert 'data-testid="total-overdue">1<' in html
    assert 'data-testid="total-closure">50 %<' in html
    assert "Zhao" not in html and "Wang" not in html
    manager = logged_in(app, login, "manager")
    html = manager.get("/work/metrics?group=person&period=4w&bucket=month").get_data(as_text=True)
    assert 'data-testid="total-raised">4<' in html
    assert "Zhao" in html and "Wang" in html
    for name in ("rates", "overdue", "median", "trend", "volume"):
        assert f"/work/metrics/chart/{name}.svg?" in html
    html = manager.get("/work/metrics?group=type").get_data(as_text=True)
    assert "Customer follow-up" in html
    # Nonsense selections fall back to defaults, never an error.
    odd = manager.get("/work/metrics?group=x&bucket=y&period=z&since=2026-13-01&until=no")
    assert odd.status_code == 200
    custom = manager.get("/work/metrics?since=2020-01-01&until=2019-06-01&bucket=month")
    assert custom.status_code == 200


NAMESPACES = {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}


@pytest.mark.parametrize("name", ["rates", "overdue", "median", "trend", "volume"])
def test_p1_3_4_chart_is_a_self_contained_svg_image(
    app: Any, org: dict[str, int], login: Any, name: str
) -> None:
    add(app, recent_items(org))
    client = logged_in(app, login, "manager")
    response = client.get(f"/work/metrics/chart/{name}.svg?group=person&period=13w&bucket=week")
    assert response.status_code == 200
    assert response.mimetype == "image/svg+xml"
    body = response.get_data(as_text=True)
    root = ElementTree.fromstring(response.get_data())  # noqa: S314 - our own output
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", body))
    assert urls <= NAMESPACES, urls
    assert "<script" not in body and "style=" not in body and "<!--" not in body
    assert "xml-stylesheet" not in body and "@import" not in body
    # The strict policy is sent with the image as with every response.
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert "no-store" in response.headers["Cache-Control"]
    assert {"Cookie", "Accept-Language"} <= set(response.vary)  # the viewer's data and words
    if name in ("rates", "overdue", "median"):
        assert "Zhao" in body and "Li" in body


def test_chart_money_is_labelled_as_pages_write_it() -> None:
    from portal.loops.charts import money_label, yuan_float

    assert yuan_float(123450) == 1234.5 and yuan_float(None) == 0.0
    assert money_label(1234567.5) == "1,234,567.50" and money_label(None) == ""


def test_p1_3_4_charts_are_scoped_and_translated(app: Any, org: dict[str, int], login: Any) -> None:
    add(app, recent_items(org))
    li = logged_in(app, login, "li")
    body = li.get("/work/metrics/chart/overdue.svg?group=person").get_data(as_text=True)
    assert "Li" in body and "Zhao" not in body and "Wang" not in body
    assert "Overdue now" in body
    assert li.get("/work/metrics/chart/nope.svg").status_code == 404
    # The reader's language is used for the chart's words (the catalog may lag behind).
    from portal.i18n import current_locale  # noqa: F401  (the locale machinery is there)

    with app.test_request_context(headers={"Accept-Language": "zh-CN"}):
        from flask_babel import gettext

        title = gettext("Overdue now")
    chinese = li.get(
        "/work/metrics/chart/overdue.svg", headers={"Accept-Language": "zh-CN"}
    ).get_data(as_text=True)
    assert title in chinese


def test_p1_3_4_metrics_statements_do_not_grow_with_people_or_items(
    app: Any, org: dict[str, int], login: Any
) -> None:
    """Each grouping is one grouped query (and one for the medians on SQLite) and one
    for the groups' names, however many people, units and items there are."""
    client = app.test_client()
    login(client, "manager")
    now = datetime.now(UTC)
    add(app, [{"owner_id": org["li"], "created_at": now - DAY}])
    urls = [f"/work/metrics?group={group}" for group in ("person", "team", "type", "clause")] + [
        "/work/metrics/chart/rates.svg?group=person",
        "/work/metrics/chart/volume.svg",
    ]

    def statements(url: str) -> int:
        return count_statements(app, client, url)

    for url in urls:
        statements(url)  # warm the caches
    few = {url: statements(url) for url in urls}
    people = [org[n] for n in ("li", "wang", "zhao", "sup_east", "sup_south", "admin")]
    add(
        app,
        [
            {
                "owner_id": people[n % len(people)],
                "created_at": now - (n % 40) * DAY - DAY,
                "type": ("core.action", "mx.follow_up")[n % 2],
                "clause": ("P1.3.2", "P3.1.3", "P6.1")[n % 3],
                "status": ("open", "done", "verified")[n % 3],
                "closed_at": now - (n % 5) * DAY if n % 3 else None,
                "reopen_count": n % 2,
            }
            for n in range(120)
        ],
    )
    assert {url: statements(url) for url in urls} == few
