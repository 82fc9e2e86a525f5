"""Time of the overdue sweep (P1.3.2: nothing raised is silently dropped) over 100,000
open loop items.

Builds a database with an organisation of 4 regions x 5 teams x 10 people (a three-deep
supervisor chain above everyone) and 100,000 open or started loop items spread over
them, a share of which is past its due date by anything from minutes to weeks, in all
priorities. Then it times, with the clock frozen at one instant:

1. one ``portal.loops.service.escalate_overdue(now=...)`` run (the hourly job): every
   overdue item is put to ``rules/loop_escalation.yaml``, rising ones get their level,
   a history entry, a stored decision and the notifications of the people named;
2. a second run at the same instant, which must change nothing (idempotent).

Reported: seconds, items checked per second, how many were escalated and notified, the
SQL statements issued, and the process's peak resident memory before and after (the
sweep works in keyset batches and must not load the table).

Run from the repository root:

    .venv/bin/python benchmarks/sweep.py [--quick] [--items N] [--overdue SHARE]
                                         [--postgres URL]

``--quick`` uses 20,000 items instead of 100,000. ``--postgres URL`` runs on that
PostgreSQL database instead of a SQLite file; the database is EMPTIED first (its
``public`` schema is dropped), so give it one of its own.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import platform
import random
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PORTAL_QUIET_MIGRATIONS", "1")

from benchmarks.inbox import StatementCounter, build_app, reset_postgres  # noqa: E402

REGIONS, TEAMS, PEOPLE = 4, 5, 10
CHUNK = 5_000
NOW = datetime(2026, 3, 4, 2, 0, tzinfo=UTC)


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sweep_function(wait: float = 0.0) -> Any:
    """``escalate_overdue`` from the loop service, imported lazily (and waited for)."""
    deadline = time.monotonic() + wait
    while True:
        try:
            module = importlib.import_module("portal.loops.service")
            return module.escalate_overdue
        except (ImportError, AttributeError):
            if time.monotonic() >= deadline:
                raise
            time.sleep(5)


def populate(app: Any, items: int, overdue_share: float) -> dict[str, int]:
    """People in a tree and ``items`` open loop items (Core inserts in chunks)."""
    from portal.audit.recorder import acting_as
    from portal.database import sync_registry, upgrade_schema
    from portal.extensions import db
    from portal.loops.models import LoopItem
    from portal.org.services import create_user, save_unit

    rng = random.Random(7)
    with app.app_context(), acting_as("benchmark"):
        upgrade_schema()
        sync_registry()
        serial = iter(range(1_000_000))

        def person(role: str, unit: int | None) -> int:
            user = create_user(
                username=f"p{next(serial):05d}",
                display_name="Person",
                password="bench-password-1",
                roles=[role],
                unit_id=unit,
            )
            db.session.flush()
            return user.id

        manager = person("manager", None)
        company = save_unit(None, "Company", "company", None, manager)
        db.session.flush()
        owners: list[int] = []
        for r in range(REGIONS):
            region = save_unit(None, f"Region {r}", "region", company.id, None)
            db.session.flush()
            region.leader_id = person("supervisor", region.id)
            for t in range(TEAMS):
                team = save_unit(None, f"Team {r}.{t}", "team", region.id, None)
                db.session.flush()
                team.leader_id = person("supervisor", team.id)
                owners += [person("salesperson", team.id) for _ in range(PEOPLE)]
        db.session.commit()

        rows = []
        for _ in range(items):
            created = NOW - timedelta(days=rng.uniform(1, 60))
            if rng.random() < overdue_share:
                due = NOW - timedelta(hours=rng.uniform(0.1, 24 * 21))
            else:
                due = NOW + timedelta(hours=rng.uniform(1, 24 * 30))
            rows.append(
                {
                    "type": "core.action",
                    "clause": "P1.3.2",
                    "title": f"Follow up {rng.randint(1, 10**6)}",
                    "owner_id": rng.choice(owners),
                    "raised_by_id": manager,
                    "due_at": due,
                    "priority": rng.choice(["low", "normal", "normal", "high", "urgent"]),
                    "status": rng.choice(["open", "open", "in_progress"]),
                    "created_at": created,
                    "updated_at": created,
                }
            )
        table = LoopItem.__table__
        for start in range(0, len(rows), CHUNK):
            db.session.execute(table.insert(), rows[start : start + CHUNK])
        db.session.commit()
        db.session.execute(sa.text("ANALYZE"))
        db.session.commit()
        overdue = sum(1 for row in rows if row["due_at"] < NOW)
    return {"people": len(owners), "overdue": overdue}


def timed_run(app: Any, escalate: Any) -> dict[str, Any]:
    from portal.extensions import db

    with app.app_context():
        process = psutil.Process()
        rss_before = process.memory_info().rss / 2**20
        with StatementCounter(db.engine) as counter:
            started = time.perf_counter()
            counts = escalate(now=NOW)
            seconds = time.perf_counter() - started
        return {
            "seconds": seconds,
            "counts": counts,
            "statements": counter.count,
            "rss_before": rss_before,
            "rss_after": process.memory_info().rss / 2**20,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20,000 items")
    parser.add_argument("--items", type=int, help="open loop items (default 100,000)")
    parser.add_argument("--overdue", type=float, default=0.3, help="share overdue (0.3)")
    parser.add_argument("--postgres", metavar="URL", help="run on this (emptied) database")
    parser.add_argument("--wait", type=float, default=0, help="seconds to wait for the service")
    args = parser.parse_args()
    items = args.items or (20_000 if args.quick else 100_000)
    logging.disable(logging.WARNING)
    escalate = sweep_function(args.wait)
    with tempfile.TemporaryDirectory(prefix="salesloop-sweep-") as workdir:
        folder = Path(workdir)
        if args.postgres:
            reset_postgres(args.postgres)
            url, label = args.postgres, "PostgreSQL"
        else:
            url, label = f"sqlite:///{folder}/sweep.db", "SQLite (file, WAL)"
        app = build_app(url, folder)
        started = time.perf_counter()
        built = populate(app, items, args.overdue)
        print(
            f"python {platform.python_version()}, {label}: {items:,} open loop items "
            f"({built['overdue']:,} overdue) for {built['people']:,} people, "
            f"written in {time.perf_counter() - started:.1f} s; "
            f"peak RSS before the sweep {peak_rss_mib():.0f} MiB"
        )
        first = timed_run(app, escalate)
        second = timed_run(app, escalate)
        for name, run in (("first run", first), ("second run (same instant)", second)):
            counts = run["counts"]
            checked = counts.get("checked", 0)
            print(
                f"{name:<27} {run['seconds']:7.2f} s  {items / run['seconds']:>9,.0f} table "
                f"items/s  {checked / run['seconds']:>8,.0f} overdue items/s  "
                f"checked {checked:,}  escalated {counts.get('escalated', 0):,}  "
                f"notified {counts.get('notified', 0):,}  SQL {run['statements']:,}  "
                f"RSS {run['rss_before']:.0f} -> {run['rss_after']:.0f} MiB"
            )
        print(f"peak RSS of the process: {peak_rss_mib():.0f} MiB")
        print(
            f"second run / first run: {second['seconds'] / first['seconds']:.2f}x "
            f"(nothing left to escalate: {second['counts'].get('escalated', 0) == 0})"
        )
        with app.app_context():
            from portal.extensions import db

            db.engine.dispose()


if __name__ == "__main__":
    main()
