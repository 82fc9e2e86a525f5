"""Server time of the expense analysis (P6.4) over 100,000 expense lines.

Builds an organisation of four regions (a supervisor and 50 salespeople each, one
manager over all: 200 people who spend) plus a fifth region ("West": a supervisor and
two salespeople who spent nothing, the empty baseline measured in the same run). Then
20,000 claims with 100,000 lines over the last 365 days (about four in five approved
or paid, the rest draft, pending, rejected or cancelled, which the analysis must skip),
a budget per region and month, and 3,000 won deals.

Then it measures, through the Flask test client in this process (routing, login
session, queries, templates: the server's whole work, no network), N requests of the
analysis page (this year, the default), a chart, and the CSV and Excel export of the
same table, for the manager (everything), a supervisor (a quarter) and the empty
region's supervisor (the baseline).

Reported: median and p95 in milliseconds, the ratio to the empty baseline of the same
page, and the SQL statements of one request (which must not grow with the data).

Run from the repository root:

    .venv/bin/python benchmarks/daily_pages.py [--quick] [--requests N] [--postgres URL]

``--postgres URL`` runs the same on that PostgreSQL database after SQLite; the database
is EMPTIED first (its ``public`` schema is dropped), so give it one of its own.
"""

from __future__ import annotations

import os
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PORTAL_QUIET_MIGRATIONS", "1")

from benchmarks.inbox import (  # noqa: E402
    add_company,
    add_person,
    add_region,
    bench_main,
    build_app,
    insert_chunks,
    logged_in,
    measure,
    report,
    time_requests,
)

REGIONS = ("north", "south", "east", "west")
TEAM_SIZE = 50
CLAIMS = 20_000
LINES_PER_CLAIM = 5
WON_DEALS = 3_000
CATEGORIES = ("meal", "hotel", "taxi", "travel", "entertainment", "office", "other")
STATUSES = ("approved", "approved", "paid", "paid", "paid", "paid", "paid", "paid") + (
    "draft",
    "pending",
)
BASE = "/daily/expenses/analysis"


def populate(app: Any, now: datetime) -> dict[str, Any]:
    """The organisation (through the services) and the expense records (Core inserts in
    chunks: fast, no ORM)."""
    from plugins.daily.models import ExpenseBudget, ExpenseClaim, ExpenseLine, WonDeal
    from portal.audit.recorder import acting_as
    from portal.database import sync_registry, upgrade_schema
    from portal.extensions import db
    from portal.loops.service import local_today

    rng = random.Random(7)
    with app.app_context(), acting_as("benchmark"):
        upgrade_schema()
        sync_registry()

        company = add_company(add_person("manager", "manager"))
        spenders: list[int] = []
        regions: list[int] = []
        for region in (*REGIONS, "quiet"):
            supervisor = add_person(f"sup_{region}", "supervisor")
            unit, team = add_region(region.title(), company, supervisor, f"{region.title()} team")
            regions.append(unit)
            size = 2 if region == "quiet" else TEAM_SIZE
            members = [add_person(f"{region}_{n:02d}", "salesperson", team) for n in range(size)]
            if region != "quiet":
                spenders += members
        db.session.commit()

        today = local_today(now)
        claim_rows = []
        for number in range(CLAIMS):
            submitted = now - timedelta(days=rng.uniform(0, 365))
            claim_rows.append(
                {
                    "owner_id": rng.choice(spenders),
                    "number": f"BX-B-{number:06d}",
                    "title": f"Trip {number}",
                    "status": rng.choice(STATUSES),
                    "total_cents": 0,
                    "submitted_at": submitted,
                    "payment_reference": "",
                    "version_id": 1,
                    "created_at": submitted,
                    "updated_at": submitted,
                }
            )
        insert_chunks(ExpenseClaim.__table__, claim_rows)
        claims = list(db.session.execute(sa.select(ExpenseClaim.id, ExpenseClaim.owner_id)))
        line_rows = []
        for claim in claims:
            for position in range(LINES_PER_CLAIM):
                line_rows.append(
                    {
                        "claim_id": claim.id,
                        "owner_id": claim.owner_id,
                        "position": position,
                        "spent_on": today - timedelta(days=rng.randint(0, 364)),
                        "category": rng.choice(CATEGORIES),
                        "amount_cents": rng.randint(20, 3_000) * 100,
                        "city": "Shanghai",
                        "city_tier": 1,
                        "vendor": f"Vendor {rng.randint(1, 500)}",
                        "purpose": "Customer visit",
                        "link_label": "",
                        "decision_reason": "",
                    }
                )
        insert_chunks(ExpenseLine.__table__, line_rows)
        budget_rows = [
            {
                "unit_id": unit_id,
                "year": year,
                "month": month,
                "category": category,
                "amount_cents": 1_500_000 * 100 if not category else 200_000 * 100,
                "created_at": now,
                "updated_at": now,
            }
            for unit_id in (company, *regions)
            for year in (today.year - 1, today.year)
            for month in range(1, 13)
            for category in ("", "meal")
        ]
        insert_chunks(ExpenseBudget.__table__, budget_rows)
        won_rows = [
            {
                "source": "sales",
                "record_id": number,
                "owner_id": rng.choice(spenders),
                "won_on": today - timedelta(days=rng.randint(0, 364)),
            }
            for number in range(1, WON_DEALS + 1)
        ]
        insert_chunks(WonDeal.__table__, won_rows)
        db.session.execute(sa.text("ANALYZE"))
        db.session.commit()
        return {"lines": len(line_rows), "spender": spenders[0]}


def measure_export(app: Any, client: Any, fmt: str, requests: int) -> dict[str, float]:
    """Like ``measure``, for the export's POST. The body is read and the response closed,
    as a browser does: the CSV is streamed (generated while it is sent, inside the
    request's context, which stays open until the response is closed)."""

    def download() -> Any:
        response = client.post(f"{BASE}/export", data={"format": fmt})
        response.get_data()
        response.close()
        return response

    return time_requests(app, download, requests, fmt)


def run(label: str, database_url: str, instance: Path, requests: int) -> None:
    now = datetime.now(UTC)
    app = build_app(database_url, instance)
    started = time.perf_counter()
    seeded = populate(app, now)
    built = time.perf_counter() - started
    print(
        f"\n== {label}: {seeded['lines']:,} expense lines in {CLAIMS:,} claims, "
        f"{len(REGIONS) * TEAM_SIZE} people, {WON_DEALS:,} won deals written in {built:.1f} s"
    )
    empty = logged_in(app, "sup_quiet")
    supervisor, manager = logged_in(app, "sup_north"), logged_in(app, "manager")
    pages = [
        ("analysis", f"{BASE}/"),
        ("chart by month", f"{BASE}/chart/month.svg"),
    ]
    baselines = {name: measure(app, empty, path, requests) for name, path in pages}
    cases: list[tuple[str, dict[str, float], float | None]] = []
    for name, path in pages:
        base = baselines[name]["median"]
        cases.append((f"{name}: empty region (baseline)", baselines[name], None))
        cases.append(
            (f"{name}: supervisor (25,000)", measure(app, supervisor, path, requests), base)
        )
        cases.append((f"{name}: manager (100,000)", measure(app, manager, path, requests), base))
    cases.append(
        (
            "analysis: manager, one category",
            measure(app, manager, f"{BASE}/?category=meal", requests),
            baselines["analysis"]["median"],
        )
    )
    for fmt in ("csv", "xlsx"):
        base = measure_export(app, empty, fmt, requests)
        cases.append((f"export {fmt}: empty region (baseline)", base, None))
        cases.append(
            (f"export {fmt}: manager", measure_export(app, manager, fmt, requests), base["median"])
        )
    report(cases, width=40)
    with app.app_context():
        from portal.extensions import db

        db.engine.dispose()


def main() -> None:
    bench_main(__doc__, run, (20, 5), "daily")


if __name__ == "__main__":
    main()
