"""Server time of My work (P1.3.2) with 10,000 open loop items in scope.

Builds a database with an organisation of two regions: in the first, one salesperson
("busy") owns 10,000 open or started loop items, a colleague ("idle") owns none, and
their supervisor therefore has 10,000 open items in scope; the second region holds the
same number of open items as noise outside that scope, and both regions have closed
history. Then it measures, through the Flask test client in this process (routing,
login session, queries, templates: the server's whole work, no network), N requests of:

- ``/work/`` for the busy person and for the idle one (the ratio is the price of
  10,000 items), a deep page, a text search and the overdue filter;
- ``/work/team`` and ``/work/metrics`` for the supervisor.

Reported: median and p95 in milliseconds, the ratio to the empty inbox measured in the
same run, and the SQL statements one request issues (a cursor listener), which must not
grow with the number of items.

Run from the repository root:

    .venv/bin/python benchmarks/inbox.py [--quick] [--requests N] [--postgres URL]

``--quick`` uses 20 requests per page instead of 50. ``--postgres URL`` runs the same on
that PostgreSQL database after SQLite; the database is EMPTIED first (its ``public``
schema is dropped), so give it one of its own.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PORTAL_QUIET_MIGRATIONS", "1")

PASSWORD = "bench-password-1"
OPEN_ITEMS = 10_000
NOISE_ITEMS = 10_000
CLOSED_ITEMS = 10_000
HISTORY_ITEMS = 50_000  # closed in the three years before: what the metrics must not scan
TEAM_SIZE = 20
CHUNK = 5_000


def build_app(database_url: str, instance: Path) -> Any:
    from portal import create_app

    return create_app(
        {
            "DATABASE_URL": database_url,
            "SECRET_KEY": "benchmark",
            "INSTANCE_PATH": str(instance),
            "WTF_CSRF_ENABLED": False,
            "PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000",
        }
    )


def reset_postgres(url: str) -> None:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as connection:
        connection.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE"))
        connection.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()


def add_person(username: str, role: str, unit: int | None = None) -> int:
    """An account of the benchmark (password ``PASSWORD``) made through the services, in
    an app context; flushed, its id."""
    from portal.extensions import db
    from portal.org.services import create_user

    user = create_user(
        username=username,
        display_name=username.title(),
        password=PASSWORD,
        roles=[role],
        unit_id=unit,
    )
    db.session.flush()
    return user.id


def add_region(name: str, parent: int, supervisor: int, team_name: str) -> tuple[int, int]:
    """A region led by ``supervisor`` under ``parent``, with one team (no leader of its
    own) in it: the region's id and the team's."""
    from portal.extensions import db
    from portal.org.services import save_unit

    region = save_unit(None, name, "region", parent, supervisor)
    db.session.flush()
    team = save_unit(None, team_name, "team", region.id, None)
    db.session.flush()
    return region.id, team.id


def add_company(manager: int) -> int:
    """The top unit, led by ``manager``: its id."""
    from portal.extensions import db
    from portal.org.services import save_unit

    company = save_unit(None, "Company", "company", None, manager)
    db.session.flush()
    return company.id


def insert_chunks(table: Any, rows: Sequence[dict[str, Any]], chunk: int = CHUNK) -> None:
    """Core inserts of ``rows`` into ``table`` in chunks (fast, no ORM), committed."""
    from portal.extensions import db

    for start in range(0, len(rows), chunk):
        db.session.execute(table.insert(), list(rows[start : start + chunk]))
    db.session.commit()


def populate(app: Any, now: datetime) -> dict[str, int]:
    """The organisation and the loop items (Core inserts in chunks: fast, no ORM)."""
    from portal.audit.recorder import acting_as
    from portal.database import sync_registry, upgrade_schema
    from portal.extensions import db
    from portal.loops.models import LoopItem

    rng = random.Random(4)
    with app.app_context(), acting_as("benchmark"):
        upgrade_schema()
        sync_registry()
        ids: dict[str, int] = {"manager": add_person("manager", "manager")}
        company = add_company(ids["manager"])
        teams = {}
        for region in ("north", "south"):
            ids[f"sup_{region}"] = add_person(f"sup_{region}", "supervisor")
            _, team = add_region(
                region.title(), company, ids[f"sup_{region}"], f"{region.title()} team"
            )
            teams[region] = [
                add_person(f"{region}_{n:02d}", "salesperson", team) for n in range(TEAM_SIZE)
            ]
        db.session.commit()
        ids["busy"], ids["idle"] = teams["north"][0], teams["north"][1]

        def item(
            owner: int, status: str, raised_by: int, days_ago: tuple[int, int] = (1, 120)
        ) -> dict[str, Any]:
            created = now - timedelta(days=rng.uniform(*days_ago))
            closed = status in ("done", "verified")
            return {
                "type": "core.action",
                "clause": rng.choice(["P1.3.2", "P3.1.3", "P3.5.2", "P6.2"]),
                "title": f"Follow up on case {rng.randint(1, 10**6)}",
                "owner_id": owner,
                "raised_by_id": raised_by,
                "due_at": now + timedelta(days=rng.uniform(-30, 60)),
                "priority": rng.choice(["low", "normal", "normal", "high", "urgent"]),
                "status": status,
                "created_at": created,
                "updated_at": created,
                "closed_at": created + timedelta(days=rng.uniform(0.1, 10)) if closed else None,
                "escalation_level": rng.choice([0, 0, 0, 1, 2]) if not closed else 0,
                "reopen_count": rng.choice([0, 0, 0, 0, 1]),
            }

        rows = [
            item(ids["busy"], rng.choice(["open", "open", "in_progress"]), ids["sup_north"])
            for _ in range(OPEN_ITEMS)
        ]
        rows += [
            item(rng.choice(teams["south"]), "open", ids["sup_south"]) for _ in range(NOISE_ITEMS)
        ]
        rows += [
            item(rng.choice(teams["north"] + teams["south"]), "verified", ids["manager"])
            for _ in range(CLOSED_ITEMS)
        ]
        everyone = teams["north"] + teams["south"]
        rows += [
            item(rng.choice(everyone), "verified", ids["manager"], (130, 1100))
            for _ in range(HISTORY_ITEMS)
        ]
        insert_chunks(LoopItem.__table__, rows)
        if db.engine.dialect.name == "postgresql":
            db.session.execute(sa.text("ANALYZE"))
            db.session.commit()
        else:
            db.session.execute(sa.text("ANALYZE"))
    return ids


class StatementCounter:
    """Counts the SQL statements sent while it is on."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.count = 0

    def __call__(self, *args: Any) -> None:
        self.count += 1

    def __enter__(self) -> StatementCounter:
        self.count = 0
        sa.event.listen(self.engine, "before_cursor_execute", self)
        return self

    def __exit__(self, *exc: Any) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self)


def figures(timings: list[float], statements: int) -> dict[str, float]:
    """Median and p95 of ``timings`` (milliseconds) with the SQL statements of one run:
    a row of ``report``."""
    timings = sorted(timings)
    return {
        "median": statistics.median(timings),
        "p95": timings[min(len(timings) - 1, int(round(0.95 * (len(timings) - 1))))],
        "statements": statements,
    }


def time_requests(app: Any, send: Callable[[], Any], requests: int, what: str) -> dict[str, float]:
    """``send()`` (one request, answering 200) warmed up three times (templates, rule
    files, the statement cache), then timed ``requests`` times; the SQL statements of one
    more."""
    from portal.extensions import db

    with app.app_context():
        engine = db.engine
    for _ in range(3):
        assert send().status_code == 200, what
    timings = []
    for _ in range(requests):
        started = time.perf_counter()
        response = send()
        timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (what, response.status_code)
    with StatementCounter(engine) as counter:
        send()
    return figures(timings, counter.count)


def measure(app: Any, client: Any, path: str, requests: int) -> dict[str, float]:
    """A page (GET ``path``) timed for ``client``'s person."""
    return time_requests(app, lambda: client.get(path), requests, path)


def logged_in(app: Any, username: str) -> Any:
    client = app.test_client()
    response = client.post("/login", data={"username": username, "password": PASSWORD})
    assert response.status_code == 302, f"login of {username}: {response.status_code}"
    return client


def run(label: str, database_url: str, instance: Path, requests: int) -> None:
    now = datetime.now(UTC)
    app = build_app(database_url, instance)
    started = time.perf_counter()
    populate(app, now)
    built = time.perf_counter() - started
    total = OPEN_ITEMS + NOISE_ITEMS + CLOSED_ITEMS + HISTORY_ITEMS
    print(f"\n== {label}: {total:,} loop items written in {built:.1f} s")
    print(
        f"   'busy' owns {OPEN_ITEMS:,} open items (their supervisor's whole scope); "
        f"{NOISE_ITEMS:,} open items outside it; {CLOSED_ITEMS:,} closed in the last "
        f"4 months, {HISTORY_ITEMS:,} in the 3 years before"
    )
    busy, idle = logged_in(app, "north_00"), logged_in(app, "north_01")
    supervisor, manager = logged_in(app, "sup_north"), logged_in(app, "manager")
    empty = measure(app, idle, "/work/", requests)
    cases = [
        ("/work/  empty inbox", empty),
        ("/work/  10,000 items", measure(app, busy, "/work/", requests)),
        ("/work/?page=400 (deep page)", measure(app, busy, "/work/?page=400", requests)),
        ("/work/?q=case 12 (search)", measure(app, busy, "/work/?q=case+12", requests)),
        ("/work/?due=overdue", measure(app, busy, "/work/?due=overdue", requests)),
        ("/work/team (supervisor)", measure(app, supervisor, "/work/team", requests)),
        ("/work/metrics (supervisor)", measure(app, supervisor, "/work/metrics", requests)),
        (
            "/work/metrics?group=team&period=52w",
            measure(app, supervisor, "/work/metrics?group=team&period=52w", requests),
        ),
        ("/work/metrics (manager: everyone)", measure(app, manager, "/work/metrics", requests)),
        (
            "/work/metrics/chart/trend.svg (manager)",
            measure(app, manager, "/work/metrics/chart/trend.svg", requests),
        ),
    ]
    report([(name, figures, empty["median"]) for name, figures in cases])
    with app.app_context():
        from portal.extensions import db

        db.engine.dispose()


def report(cases: Sequence[tuple[str, dict[str, float], float | None]], width: int = 38) -> None:
    """One line per page: median, p95, the ratio to its baseline's median measured in the
    same run (when it has one) and the SQL statements of one request."""
    print(f"   {'page':<{width}} {'median':>9} {'p95':>9} {'x empty':>8} {'SQL':>4}")
    for name, figures, baseline in cases:
        ratio = f"{figures['median'] / baseline:>7.2f}x" if baseline else ""
        print(
            f"   {name:<{width}} {figures['median']:>7.1f}ms {figures['p95']:>7.1f}ms "
            f"{ratio:>8} {figures['statements']:>4}"
        )


def bench_main(
    doc: str, run_one: Callable[..., None], requests: tuple[int, int], name: str
) -> None:
    """The command line every page benchmark shares: ``--quick``, ``--requests N`` and
    ``--postgres URL`` (emptied first), run on SQLite then PostgreSQL. ``requests`` is
    (default, quick)."""
    default, quick = requests
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{quick} requests per page")
    parser.add_argument("--requests", type=int, help=f"requests per page (default {default})")
    parser.add_argument("--postgres", metavar="URL", help="also run on this (emptied) database")
    args = parser.parse_args()
    count = args.requests or (quick if args.quick else default)
    logging.disable(logging.WARNING)
    print(f"python {platform.python_version()}, sqlalchemy {sa.__version__}, {count} requests")
    with tempfile.TemporaryDirectory(prefix=f"salesloop-{name}-") as workdir:
        folder = Path(workdir)
        run_one("SQLite (file, WAL)", f"sqlite:///{folder}/bench.db", folder, count)
        if args.postgres:
            reset_postgres(args.postgres)
            run_one("PostgreSQL", args.postgres, folder, count)


def main() -> None:
    bench_main(__doc__, run, (50, 20), "inbox")


if __name__ == "__main__":
    main()
