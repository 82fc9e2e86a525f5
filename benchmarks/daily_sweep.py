"""Time of the month-end attendance sweep (P6.1) for 500 people, and for 50 as the
baseline measured in the same run.

For each size it builds a database with an organisation (a manager; regions of a
supervisor and a team of 24 salespeople) whose accounts were made three months ago,
and last month's punches for everyone who checks in: a check-in and a check-out on
every working day, mostly on time, with the violations a real month has (about 4 in
100 days late, 1 in 100 seriously late, 1 in 100 leaving early, 1 in 200 without a
check-out, 1 in 300 without any punch), so the month-end step opens follow-ups and
sends notices. Then, with the clock frozen at 02:00 on this month's first day, it times
``plugins.daily.attendance.run_attendance_sweep(now=...)`` (the hourly job's run that
classifies last month's days with rules/attendance.yaml and closes the month with
rules/attendance_monthly.yaml):

- N runs, each rolled back afterwards (median and p95, commit excluded);
- one committed run (commit included), then a second run at the same instant, which
  must change nothing (every day classified, every month closed).

Reported: milliseconds, the ratio to 50 people, days classified, months closed,
follow-ups opened, people notified, and the SQL statements of one run.

Run from the repository root:

    .venv/bin/python benchmarks/daily_sweep.py [--quick] [--requests N] [--postgres URL]

``--requests`` is the number of timed runs (default 5, ``--quick`` 2). ``--postgres URL``
runs the same on that PostgreSQL database after SQLite; the database is EMPTIED first
(its ``public`` schema is dropped, once per size), so give it one of its own.
"""

from __future__ import annotations

import os
import random
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PORTAL_QUIET_MIGRATIONS", "1")

from benchmarks.inbox import (  # noqa: E402
    StatementCounter,
    add_company,
    add_person,
    add_region,
    bench_main,
    build_app,
    figures,
    insert_chunks,
    report,
    reset_postgres,
)

SIZES = (50, 500)  # the first is the baseline
TEAM_SIZE = 24
SWEEP_ACTOR = "job:daily.attendance_sweep"


def month_end_instant() -> tuple[datetime, date, date]:
    """02:00 local on this month's first day (UTC), and last month's first and last day."""
    from portal.loops.service import local_today, portal_zone

    first_this = local_today().replace(day=1)
    moment = datetime(first_this.year, first_this.month, 1, 2, 0, tzinfo=portal_zone()).astimezone(
        UTC
    )
    last = first_this - timedelta(days=1)
    return moment, last.replace(day=1), last


def populate(app: Any, size: int) -> dict[str, Any]:
    """The organisation (through the services) and last month's punches (Core inserts in
    chunks: fast, no ORM)."""
    from plugins.daily.attendance import at_local, attending_people
    from plugins.daily.models import AttendanceDay
    from portal.audit.recorder import acting_as
    from portal.auth.models import User
    from portal.database import sync_registry, upgrade_schema
    from portal.extensions import db
    from portal.rules.service import rules

    rng = random.Random(size)
    with app.app_context(), acting_as("benchmark"):
        upgrade_schema()
        sync_registry()
        rules().refresh(force=True)

        company = add_company(add_person("manager", "manager"))
        count, region = 1, 0
        while count < size:
            supervisor = add_person(f"sup_{region:02d}", "supervisor")
            _, team = add_region(f"Region {region}", company, supervisor, f"Team {region}")
            count += 1
            for number in range(min(TEAM_SIZE, size - count)):
                add_person(f"sales_{region:02d}_{number:02d}", "salesperson", team)
                count += 1
            region += 1
        moment, first, last = month_end_instant()
        db.session.execute(sa.update(User).values(created_at=moment - timedelta(days=90)))
        db.session.commit()
        people = list(attending_people())
        rows: list[dict[str, Any]] = []
        day = first
        while day <= last:
            if day.isoweekday() <= 5:
                for owner in people:
                    draw = rng.random()
                    if draw < 1 / 300:
                        continue  # absent: no punch at all
                    arrive = 8 * 60 + rng.randint(20, 59)
                    leave = 18 * 60 + rng.randint(0, 60)
                    if draw < 0.05:
                        arrive = 9 * 60 + rng.randint(6, 29)  # late
                    elif draw < 0.06:
                        arrive = 9 * 60 + rng.randint(31, 100)  # seriously late
                    elif draw < 0.07:
                        leave = 17 * 60 + rng.randint(0, 50)  # left early
                    check_in = at_local(day, arrive)
                    rows.append(
                        {
                            "owner_id": owner,
                            "day": day,
                            "check_in_at": check_in,
                            "check_out_at": None if draw > 0.995 else at_local(day, leave),
                            "check_in_note": "",
                            "check_out_note": "",
                            "corrected": False,
                            "status": "open",
                            "severity": "none",
                            "penalty_points": 0,
                            "created_at": check_in,
                            "updated_at": check_in,
                        }
                    )
            day += timedelta(days=1)
        columns = {column.name for column in AttendanceDay.__table__.columns}
        rows = [{k: v for k, v in row.items() if k in columns} for row in rows]
        insert_chunks(AttendanceDay.__table__, rows)
        db.session.execute(sa.text("ANALYZE"))
        db.session.commit()
        return {"people": len(people), "punch_days": len(rows), "now": moment}


def sweep(app: Any, now: datetime, commit: bool) -> tuple[float, dict[str, int], int]:
    """One sweep at ``now``: milliseconds (commit included when ``commit``), its counts
    and SQL statements; rolled back unless ``commit``."""
    from plugins.daily.attendance import run_attendance_sweep
    from portal.audit.recorder import acting_as
    from portal.extensions import db

    with app.app_context(), acting_as(SWEEP_ACTOR):
        with StatementCounter(db.engine) as counter:
            started = time.perf_counter()
            result = run_attendance_sweep(now=now)
            db.session.flush()
            if commit:
                db.session.commit()
            elapsed = (time.perf_counter() - started) * 1000
        if not commit:
            db.session.rollback()
        return elapsed, result, counter.count


def measure_size(
    label: str, database_url: str, instance: Path, size: int, requests: int
) -> dict[str, Any]:
    if database_url.startswith("sqlite"):
        database_url = f"sqlite:///{instance}/sweep_{size}.db"
    else:
        reset_postgres(database_url)
    app = build_app(database_url, instance)
    started = time.perf_counter()
    seeded = populate(app, size)
    built = time.perf_counter() - started
    now = seeded["now"]
    print(
        f"   {size} people: {seeded['people']} who check in, {seeded['punch_days']:,} punched "
        f"days of last month written in {built:.1f} s"
    )
    sweep(app, now, commit=False)  # warm: rule files parsed, statement cache filled
    timings, statements, result = [], 0, {}
    for _ in range(requests):
        elapsed, result, statements = sweep(app, now, commit=False)
        timings.append(elapsed)
    timings.sort()
    committed, final, committed_statements = sweep(app, now, commit=True)
    again, repeat, again_statements = sweep(app, now, commit=True)
    assert repeat["classified"] == repeat["months"] == repeat["follow_ups"] == 0, repeat
    with app.app_context():
        from portal.extensions import db

        db.engine.dispose()
    return {
        "size": size,
        "runs": figures(timings, statements),
        "committed": figures([committed], committed_statements),
        "again": figures([again], again_statements),
        "result": result,
        "final": final,
    }


def run(label: str, database_url: str, instance: Path, requests: int) -> None:
    print(f"\n== {label}: month-end attendance sweep, {requests} timed runs per size")
    found = [measure_size(label, database_url, instance, size, requests) for size in SIZES]
    base = found[0]
    cases: list[tuple[str, dict[str, float], float | None]] = []
    for entry in found:
        size = entry["size"]
        ratio = None if entry is base else base["runs"]["median"]
        cases.append((f"sweep, {size} people (rolled back)", entry["runs"], ratio))
        cases.append(
            (
                f"sweep, {size} people (committed)",
                entry["committed"],
                None if entry is base else base["committed"]["median"],
            )
        )
        cases.append((f"second run, {size} people (no-op)", entry["again"], None))
    print("   ('x empty' here: the ratio to 50 people; SQL: statements of one run)")
    report(cases, width=40)
    for entry in found:
        final = entry["final"]
        print(
            f"   {entry['size']} people: {final['classified']:,} days classified, "
            f"{final['months']} months closed, {final['follow_ups']} follow-ups opened, "
            f"{final['notified']} notified"
        )


def main() -> None:
    bench_main(__doc__, run, (5, 2), "daily-sweep")


if __name__ == "__main__":
    main()
