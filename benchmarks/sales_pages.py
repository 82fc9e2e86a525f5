"""Server time of the sales pages (P3) with 50,000 customers and 200,000 activities.

Builds an organisation of two regions (a supervisor and 20 salespeople each, one sales
manager over both), then 50,000 customers (prospects and customers, a few thousand in
the shared pool), 200,000 activities on them, 20,000 opportunities spread over every
stage and 5,000 complaints. One salesperson ("north_00") owns 2,500 customers; another
("north_19") owns none, so their pages are the empty baseline measured in the same run.

Then it measures, through the Flask test client in this process (routing, login
session, queries, templates: the server's whole work, no network), N requests of the
customer list, a deep page and a search; one customer's page with its timeline; the
kanban board; the funnel; for the salesperson, the supervisor (1,250 x 20 customers in
scope) and the manager (everything).

Reported: median and p95 in milliseconds, the ratio to the empty baseline of the same
page, and the SQL statements of one request (which must not grow with the data).

Run from the repository root:

    .venv/bin/python benchmarks/sales_pages.py [--quick] [--requests N] [--postgres URL]

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
)

CUSTOMERS = 50_000
POOL_SHARE = 0.06
ACTIVITIES = 200_000
OPPORTUNITIES = 20_000
COMPLAINTS = 5_000
TEAM_SIZE = 20
BUSY_CUSTOMERS = 2_500
INDUSTRIES = ["manufacturing", "retail", "healthcare", "education", "logistics", "energy"]
REGIONS = ["East", "South", "North", "West"]


def populate(app: Any, now: datetime) -> dict[str, Any]:
    """The organisation (through the services) and the sales records (Core inserts in
    chunks: fast, no ORM)."""
    from plugins.sales.common import stages
    from plugins.sales.models import Activity, Customer, Feedback, Opportunity
    from portal.audit.recorder import acting_as
    from portal.database import sync_registry, upgrade_schema
    from portal.extensions import db

    rng = random.Random(5)
    with app.app_context(), acting_as("benchmark"):
        upgrade_schema()
        sync_registry()

        ids: dict[str, Any] = {"manager": add_person("manager", "manager")}
        company = add_company(ids["manager"])
        sellers: list[int] = []
        for region in ("north", "south"):
            supervisor = add_person(f"sup_{region}", "supervisor")
            _, team = add_region(region.title(), company, supervisor, f"{region.title()} team")
            sellers += [
                add_person(f"{region}_{n:02d}", "salesperson", team) for n in range(TEAM_SIZE)
            ]
        db.session.commit()
        busy, empty = sellers[0], sellers[TEAM_SIZE - 1]
        others = [s for s in sellers if s not in (busy, empty)]
        stage_list = stages()

        customer_rows = []
        for number in range(CUSTOMERS):
            if number < BUSY_CUSTOMERS:
                owner: int | None = busy
            elif rng.random() < POOL_SHARE:
                owner = None
            else:
                owner = rng.choice(others)
            created = now - timedelta(days=rng.uniform(1, 700))
            name = f"Customer {number:05d} {rng.choice(INDUSTRIES).title()} Co"
            stage = rng.choice(["prospect", "prospect", "customer"])
            customer_rows.append(
                {
                    "owner_id": owner,
                    "stage": stage,
                    "name": name,
                    "name_key": name.lower().replace(" ", ""),
                    "phone": f"138{number:08d}",
                    "phone_key": f"138{number:08d}",
                    "tax_id": f"91310000{number:010d}",
                    "industry": rng.choice(INDUSTRIES),
                    "size": rng.choice(["small", "medium", "large"]),
                    "region": rng.choice(REGIONS),
                    "source": rng.choice(["referral", "exhibition", "website", "cold_call"]),
                    "grade": rng.choice("ABCD"),
                    "qualified": rng.random() < 0.7,
                    "last_contact_at": created + timedelta(days=rng.uniform(0, 30)),
                    "in_pool": owner is None,
                    "released_at": now - timedelta(days=rng.uniform(1, 60))
                    if owner is None
                    else None,
                    "created_at": created,
                    "updated_at": created,
                }
            )
        insert_chunks(Customer.__table__, customer_rows)
        customers = list(
            db.session.execute(sa.select(Customer.id, Customer.owner_id).order_by(Customer.id))
        )
        owned = [row for row in customers if row.owner_id is not None]
        ids["busy_customer"] = next(row.id for row in customers if row.owner_id == busy)

        activity_rows = []
        for _ in range(ACTIVITIES):
            customer = rng.choice(owned)
            at = now - timedelta(days=rng.uniform(0, 365))
            activity_rows.append(
                {
                    "customer_id": customer.id,
                    "owner_id": customer.owner_id,
                    "kind": rng.choice(["call", "call", "email", "visit", "meeting"]),
                    "occurred_at": at,
                    "summary": f"Talked about order {rng.randint(1, 10**6)}",
                    "created_at": at,
                    "updated_at": at,
                }
            )
        # The busy person's first customer has a long timeline of its own.
        activity_rows += [
            {
                "customer_id": ids["busy_customer"],
                "owner_id": busy,
                "kind": "visit",
                "occurred_at": now - timedelta(hours=n),
                "summary": f"Visit {n}",
                "created_at": now,
                "updated_at": now,
            }
            for n in range(400)
        ]
        insert_chunks(Activity.__table__, activity_rows)

        opportunity_rows = []
        for number in range(OPPORTUNITIES):
            customer = owned[number] if number < BUSY_CUSTOMERS // 2 else rng.choice(owned)
            stage = rng.choice(stage_list)
            created = now - timedelta(days=rng.uniform(0, 200))
            closed = stage.outcome != "open"
            opportunity_rows.append(
                {
                    "customer_id": customer.id,
                    "owner_id": customer.owner_id,
                    "name": f"Deal {number:05d}",
                    "stage": stage.code,
                    "furthest_stage_index": stage.position,
                    "probability_pct": stage.probability_pct,
                    "status": stage.outcome,
                    "amount_cents": rng.randint(10_000, 5_000_000) * 100,
                    "expected_close_on": (now + timedelta(days=rng.uniform(-30, 120))).date(),
                    "stage_changed_at": created,
                    "closed_at": created + timedelta(days=10) if closed else None,
                    "created_at": created,
                    "updated_at": created,
                }
            )
        insert_chunks(Opportunity.__table__, opportunity_rows)

        complaint_rows = []
        for number in range(COMPLAINTS):
            customer = rng.choice(owned)
            received = now - timedelta(days=rng.uniform(0, 365))
            complaint_rows.append(
                {
                    "number": f"KS-B-{number:06d}",
                    "customer_id": customer.id,
                    "owner_id": customer.owner_id,
                    "kind": "complaint",
                    "category": rng.choice(["quality", "usage", "service", "delivery"]),
                    "priority": rng.choice(["low", "normal", "high", "urgent"]),
                    "status": rng.choice(["open", "responded", "closed", "closed"]),
                    "title": f"Complaint {number}",
                    "received_at": received,
                    "created_at": received,
                    "updated_at": received,
                }
            )
        insert_chunks(Feedback.__table__, complaint_rows)
        db.session.execute(sa.text("ANALYZE"))
        db.session.commit()
        ids["busy"], ids["empty"] = busy, empty
    return ids


def run(label: str, database_url: str, instance: Path, requests: int) -> None:
    now = datetime.now(UTC)
    app = build_app(database_url, instance)
    started = time.perf_counter()
    ids = populate(app, now)
    built = time.perf_counter() - started
    print(
        f"\n== {label}: {CUSTOMERS:,} customers, {ACTIVITIES:,} activities, "
        f"{OPPORTUNITIES:,} opportunities, {COMPLAINTS:,} complaints written in {built:.1f} s"
    )
    busy, empty = logged_in(app, "north_00"), logged_in(app, "north_19")
    supervisor, manager = logged_in(app, "sup_north"), logged_in(app, "manager")
    customer = f"/sales/customers/{ids['busy_customer']}"
    pages = [
        ("customer list", "/sales/customers/"),
        ("kanban board", "/sales/pipeline/board"),
        ("funnel", "/sales/pipeline/funnel"),
    ]
    baselines = {name: measure(app, empty, path, requests) for name, path in pages}
    cases: list[tuple[str, dict[str, float], str]] = []
    for name, path in pages:
        cases.append((f"{name}: empty (baseline)", baselines[name], name))
        cases.append((f"{name}: salesperson 2,500", measure(app, busy, path, requests), name))
        cases.append((f"{name}: supervisor", measure(app, supervisor, path, requests), name))
        cases.append((f"{name}: manager (all)", measure(app, manager, path, requests), name))
    cases += [
        (
            "customer list: manager page 1,000",
            measure(app, manager, "/sales/customers/?page=1000", requests),
            "customer list",
        ),
        (
            "customer list: manager search",
            measure(app, manager, "/sales/customers/?q=Customer+0421", requests),
            "customer list",
        ),
        ("customer page + 400 activities", measure(app, busy, customer, requests), ""),
    ]
    report(
        [
            (name, figures, baselines[baseline]["median"] if baseline else None)
            for name, figures, baseline in cases
        ],
        width=40,
    )
    with app.app_context():
        from portal.extensions import db

        db.engine.dispose()


def main() -> None:
    bench_main(__doc__, run, (30, 10), "sales")


if __name__ == "__main__":
    main()
