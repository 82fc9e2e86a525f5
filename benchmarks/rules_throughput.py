"""Throughput, latency, simulation time and memory of the rules engine wrapper.

Compares, in one process and one run (so the figures are ratios that survive a noisy,
shared machine):

- our ``Runtime.evaluate`` (one claim per call) and ``Runtime.evaluate_many`` (batches
  of 1,000) on ``rules/expenses.yaml``;
- raw durable_rules ``post`` / ``post_batch`` on the same rules compiled by hand (no
  thread Host, a catch-all, a fixed sid: the fastest way to use the engine directly);
- the same rules as hand-written Python ``if``/``else``.

Every variant is first checked to agree on the same 3,000 random claims. Rounds are
interleaved and the median is reported. Then: p50/p99 latency of one decision, a
simulation over 100,000 stored claims, and resident memory over 1,000,000 evaluations.

Run from the repository root:

    .venv/bin/python benchmarks/rules_throughput.py [--quick] [--rounds N] [--claims N]

``--quick`` runs the memory part with 100,000 evaluations instead of 1,000,000.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import durable.engine
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PORTAL_QUIET_MIGRATIONS", "1")

from portal.rules.engine import Runtime  # noqa: E402
from portal.rules.validate import Vocabulary, check_rule_file  # noqa: E402

EXPENSES = (ROOT / "rules" / "expenses.yaml").read_text(encoding="utf-8")
CATEGORIES = ["meal", "hotel", "taxi", "travel", "entertainment", "office", "other"]
ROLES = ["salesperson", "supervisor", "manager"]
HOTEL = [  # (role, city tier or None, limit in fen), in file order
    ("salesperson", 1, 50000),
    ("salesperson", 2, 40000),
    ("salesperson", 3, 30000),
    ("supervisor", 1, 70000),
    ("supervisor", 2, 55000),
    ("supervisor", 3, 45000),
    ("manager", None, 90000),
]
MEAL = [("salesperson", 15000), ("supervisor", 25000), ("manager", 40000)]
BATCH = 1000


def random_claims(count: int, seed: int) -> list[dict[str, Any]]:
    """Claim lines as a caller has them: the amount a Decimal in yuan (a Numeric column)."""
    rng = random.Random(seed)
    claims = []
    for _ in range(count):
        category = rng.choice(CATEGORIES)
        amount = rng.choice(
            [rng.randint(1, 300_00), rng.randint(1, 1200_00), rng.randint(1, 9000_00)]
        )
        claims.append(
            {
                "category": category,
                "role": rng.choice(ROLES),
                "city_tier": rng.randint(1, 3),
                "amount": Decimal(amount) / 100,
                "has_receipt": rng.random() < 0.8,
            }
        )
    return claims


# -- hand-written Python ------------------------------------------------------------------


def python_decide(claim: dict[str, Any]) -> str:
    """rules/expenses.yaml as if/else."""
    amount = int(claim["amount"] * 100)
    category, role = claim["category"], claim["role"]
    if amount > 10000 and not claim["has_receipt"]:
        return "receipt-required"
    if amount > 500000:
        return "large-claim"
    if category == "hotel":
        tier = claim["city_tier"]
        for row, (row_role, row_tier, limit) in enumerate(HOTEL, start=1):
            if role == row_role and (row_tier is None or row_tier == tier) and amount > limit:
                return f"hotel-over-limit#{row}"
    elif category == "meal":
        for row, (row_role, limit) in enumerate(MEAL, start=1):
            if role == row_role and amount > limit:
                return f"meal-over-limit#{row}"
    elif category == "entertainment":
        return "entertainment-needs-manager"
    return "within-limits"


# -- raw durable_rules, compiled by hand --------------------------------------------------

RAW_NAME = "expenses_raw"


def raw_ruleset() -> dict[str, Any]:
    """The same rules written directly in durable_rules' JSON."""
    marker = {"t": "claim"}
    rules: dict[str, Any] = {}

    def add(label: str, *terms: dict[str, Any]) -> None:
        rules[label] = {
            "all": [{"m": {"$and": [marker, *terms]}}],
            "pri": len(rules) + 1,
            "run": f"emit:{label}",
        }

    add("receipt-required", {"$gt": {"amount": 10000}}, {"has_receipt": False})
    add("large-claim", {"$gt": {"amount": 500000}})
    for row, (role, tier, limit) in enumerate(HOTEL, start=1):
        terms = [{"category": "hotel"}, {"role": role}, {"$gt": {"amount": limit}}]
        if tier is not None:
            terms.append({"city_tier": tier})
        add(f"hotel-over-limit#{row}", *terms)
    for row, (role, limit) in enumerate(MEAL, start=1):
        add(
            f"meal-over-limit#{row}",
            {"category": "meal"},
            {"role": role},
            {"$gt": {"amount": limit}},
        )
    add("entertainment-needs-manager", {"category": "entertainment"})
    add("within-limits")
    rules["none"] = {"all": [{"m": marker}], "pri": 1000, "run": "emit:none"}  # catch-all
    return {RAW_NAME: rules}


class RawHost(durable.engine.Host):
    """durable_rules' Host without its timer threads; the action notes which rule fired."""

    def __init__(self) -> None:
        self.out: list[tuple[int, str]] = []
        super().__init__()

    def _run(self) -> None:
        return None

    def get_action(self, action_name: str) -> Any:
        label = action_name.partition(":")[2]
        out = self.out

        def emit(closure: Any) -> None:
            out.append((closure.m["i"], label))

        return emit


def raw_message(claim: dict[str, Any], index: int) -> dict[str, Any]:
    return {
        "t": "claim",
        "sid": "0",
        "i": index,
        "category": claim["category"],
        "role": claim["role"],
        "city_tier": claim["city_tier"],
        "amount": int(claim["amount"] * 100),
        "has_receipt": claim["has_receipt"],
    }


def raw_post(host: RawHost, claims: list[dict[str, Any]]) -> list[str]:
    answers = []
    for claim in claims:
        host.out.clear()
        host.post(RAW_NAME, raw_message(claim, 0))
        answers.append(host.out[0][1])
    return answers


def raw_post_stateless(host: RawHost, claims: list[dict[str, Any]]) -> list[str]:
    """``post`` and then ``delete_state``, as a server must (nothing left behind)."""
    answers = []
    for claim in claims:
        host.out.clear()
        host.post(RAW_NAME, raw_message(claim, 0))
        host.delete_state(RAW_NAME, "0")
        answers.append(host.out[0][1])
    return answers


def raw_post_batch(host: RawHost, claims: list[dict[str, Any]]) -> list[str]:
    answers: list[str] = []
    for start in range(0, len(claims), BATCH):
        host.out.clear()
        chunk = claims[start : start + BATCH]
        host.post_batch(RAW_NAME, [raw_message(c, i) for i, c in enumerate(chunk)])
        fired = dict(host.out)
        answers += [fired[i] for i in range(len(chunk))]
    return answers


# -- our wrapper ---------------------------------------------------------------------------


def wrapper_single(runtime: Runtime, rule_file: Any, claims: list[dict[str, Any]]) -> list[str]:
    return [runtime.evaluate(rule_file, claim).rules[0] for claim in claims]


def wrapper_batch(runtime: Runtime, rule_file: Any, claims: list[dict[str, Any]]) -> list[str]:
    answers: list[str] = []
    for start in range(0, len(claims), BATCH):
        answers += [
            e.rules[0] for e in runtime.evaluate_many(rule_file, claims[start : start + BATCH])
        ]
    return answers


def python_all(claims: list[dict[str, Any]]) -> list[str]:
    return [python_decide(claim) for claim in claims]


# -- the parts of the run ----------------------------------------------------------------


def throughput(rounds: int, count: int) -> Runtime:
    rule_file, errors = check_rule_file(EXPENSES, "expenses.yaml", Vocabulary(), "expenses")
    assert rule_file is not None, errors
    runtime = Runtime()
    runtime.register(rule_file)
    host = RawHost()
    host.register_rulesets(raw_ruleset())

    check = random_claims(3000, seed=1)
    expected = python_all(check)
    for label, answers in [
        ("wrapper evaluate", wrapper_single(runtime, rule_file, check)),
        ("wrapper evaluate_many", wrapper_batch(runtime, rule_file, check)),
        ("raw post", raw_post(host, check)),
        ("raw post+delete_state", raw_post_stateless(host, check)),
        ("raw post_batch", raw_post_batch(host, check)),
    ]:
        mismatches = sum(a != b for a, b in zip(answers, expected, strict=True))
        print(f"agreement on 3,000 claims: {label:<22} {mismatches} mismatches")
        if mismatches:
            raise SystemExit("the variants disagree: not measuring")
    fired = {label.split("#")[0] for label in expected}
    print(f"  (rules that fired among them: {len(fired)} of 6)")

    claims = random_claims(count, seed=2)
    variants: dict[str, Callable[[], object]] = {
        "wrapper evaluate": lambda: wrapper_single(runtime, rule_file, claims),
        "raw post": lambda: raw_post(host, claims),
        "raw post+delete_state": lambda: raw_post_stateless(host, claims),
        "wrapper evaluate_many": lambda: wrapper_batch(runtime, rule_file, claims),
        "raw post_batch": lambda: raw_post_batch(host, claims),
        "python if/else": lambda: python_all(claims),
    }
    rates: dict[str, list[float]] = {name: [] for name in variants}
    ratios: dict[str, list[float]] = {"single": [], "batch": [], "stateless": []}
    for _ in range(rounds):
        for name, run in variants.items():
            gc.collect()
            started = time.perf_counter()
            run()
            rates[name].append(count / (time.perf_counter() - started))
        ratios["single"].append(rates["wrapper evaluate"][-1] / rates["raw post"][-1])
        ratios["batch"].append(rates["wrapper evaluate_many"][-1] / rates["raw post_batch"][-1])
        ratios["stateless"].append(
            rates["wrapper evaluate"][-1] / rates["raw post+delete_state"][-1]
        )
    python = statistics.median(rates["python if/else"])
    print(f"\nthroughput, {count:,} claims x {rounds} interleaved rounds (decisions/s):")
    print(f"  {'variant':<24}{'median':>10}{'min':>10}{'max':>10}{'x slower than Python':>23}")
    for name, values in rates.items():
        median = statistics.median(values)
        print(
            f"  {name:<24}{median:>10,.0f}{min(values):>10,.0f}{max(values):>10,.0f}"
            f"{python / median:>23,.1f}"
        )
    print("\nwrapper / raw, per round (goal >= 0.80):")
    for kind, what in [
        ("single", "evaluate / post"),
        ("batch", "evaluate_many / post_batch"),
        ("stateless", "evaluate / (post+delete_state)"),
    ]:
        values = ratios[kind]
        print(
            f"  {what:<32} median {statistics.median(values):.2f}  "
            f"(rounds {', '.join(f'{v:.2f}' for v in values)})"
        )
    return runtime


def latency(runtime: Runtime) -> None:
    rule_file, _ = check_rule_file(EXPENSES, "expenses.yaml", Vocabulary(), "expenses")
    host = RawHost()
    host.register_rulesets(raw_ruleset())
    claims = random_claims(3000, seed=3)
    timings: dict[str, list[float]] = {"wrapper evaluate": [], "raw post": []}
    gc.collect()
    for claim in claims:
        started = time.perf_counter_ns()
        runtime.evaluate(rule_file, claim)
        middle = time.perf_counter_ns()
        host.out.clear()
        host.post(RAW_NAME, raw_message(claim, 0))
        ended = time.perf_counter_ns()
        timings["wrapper evaluate"].append((middle - started) / 1000)
        timings["raw post"].append((ended - middle) / 1000)
    print("\nlatency of one decision over 3,000 calls (µs):")
    for name, values in timings.items():
        cut = statistics.quantiles(values, n=100)
        print(f"  {name:<18} p50 {cut[49]:7.1f}   p99 {cut[98]:7.1f}   max {max(values):8.1f}")
    print("  goal: wrapper p99 < 500 µs")


def simulation(records: int) -> None:
    import sqlalchemy as sa

    from portal import create_app
    from portal.database import upgrade_schema
    from portal.extensions import db
    from portal.rules.models import RuleDecision
    from portal.rules.service import rules
    from portal.rules.simulate import simulate

    logging.disable(logging.INFO)
    with tempfile.TemporaryDirectory() as directory:
        app = create_app(
            {
                "TESTING": True,
                "DATABASE_URL": f"sqlite:///{directory}/bench.db",
                "SECRET_KEY": "benchmark",
                "INSTANCE_PATH": directory,
                "RULES_INSTANCE_DIR": f"{directory}/rules",
                "LOG_LEVEL": "WARNING",
            }
        )
        with app.app_context():
            upgrade_schema()
            service = rules()
            active = service.publish("expenses", EXPENSES, "default", write_file=False)
            claims = random_claims(records, seed=4)
            started = time.perf_counter()
            at = datetime.now(UTC) - timedelta(days=10)
            rows = [
                {
                    "at": at,
                    "ruleset": "expenses",
                    "version_id": active.id,
                    "sha": active.sha,
                    "clause": "P6.4",
                    "rule": python_decide(claim).split("#")[0],
                    "subject_table": "expense_line",
                    "subject_id": str(number),
                    "inputs": {**claim, "amount": str(claim["amount"])},
                    "outputs": {},
                    "actions": [],
                }
                for number, claim in enumerate(claims)
            ]
            for start in range(0, len(rows), 10_000):
                db.session.execute(sa.insert(RuleDecision), rows[start : start + 10_000])
            db.session.commit()
            stored = time.perf_counter() - started

            draft_text = EXPENSES.replace(
                "rows: [[salesperson, 150],", "rows: [[salesperson, 200],"
            )
            draft, errors = check_rule_file(
                draft_text, "expenses.yaml", service.vocabulary(), "expenses"
            )
            assert draft is not None and draft_text != EXPENSES, errors
            expected = sum(
                c["category"] == "meal"
                and c["role"] == "salesperson"
                and python_decide(c) == "meal-over-limit#1"
                and c["amount"] <= 200
                for c in claims
            )
            gc.collect()
            started = time.perf_counter()
            result = simulate(service, "expenses", draft, at - timedelta(days=1))
            took = time.perf_counter() - started
            db.engine.dispose()
    print(
        f"\nsimulation over {records:,} stored claims "
        "(SQLite; draft: salesperson meal limit 150 -> 200):"
    )
    print(f"  storing the claims: {stored:.1f} s (not part of the goal)")
    print(
        f"  simulate(): {took:.2f} s for {result.total:,} records "
        f"({result.total / took:,.0f} records/s, both versions evaluated); goal < 10 s"
    )
    print(
        f"  changed: {result.changed:,} (hand-written Python says {expected:,}), "
        f"unchanged {result.unchanged:,}, unusable {result.unusable}; "
        f"changes: {dict(result.by_change)}"
    )
    if result.changed != expected or result.total != records:
        raise SystemExit("the simulation disagrees with hand-written Python")


def memory(evaluations: int) -> None:
    rule_file, _ = check_rule_file(EXPENSES, "expenses.yaml", Vocabulary(), "expenses")
    runtime = Runtime()
    claims = random_claims(20_000, seed=5)
    process = psutil.Process()
    step = 100_000
    gc.collect()
    start_rss = process.memory_info().rss
    print(
        f"\nresident memory over {evaluations:,} wrapper evaluations "
        f"(evaluate_many, batches of {BATCH}):"
    )
    print(f"  before: {start_rss / 2**20:7.1f} MiB")
    done = 0
    started = time.perf_counter()
    samples = []
    while done < evaluations:
        offset = done % len(claims)
        batch = claims[offset : offset + BATCH]
        runtime.evaluate_many(rule_file, batch)
        done += len(batch)
        if done % step == 0:
            rss = process.memory_info().rss
            samples.append(rss)
            print(
                f"  after {done:>9,}: {rss / 2**20:7.1f} MiB  "
                f"({(rss - start_rss) / 2**20:+.1f} MiB since start, "
                f"{done / (time.perf_counter() - started):,.0f} decisions/s)"
            )
    if len(samples) >= 2:
        print(
            f"  growth from the first {step:,} to the last: "
            f"{(samples[-1] - samples[0]) / 2**20:+.1f} MiB "
            f"({runtime.registered_count} ruleset registered, "
            f"{len(runtime._ensure_host().fired)} sids pending)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100,000 evaluations for memory")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--claims", type=int, default=20_000, help="claims per round")
    parser.add_argument("--records", type=int, default=100_000, help="stored claims to simulate")
    args = parser.parse_args()
    print(
        f"rules throughput: Python {platform.python_version()}, durable_rules "
        f"{package_version('durable_rules')}, {os.cpu_count()} CPUs, "
        f"{datetime.now().isoformat(timespec='seconds')}"
    )
    print(f"  rule file: rules/expenses.yaml, {len(raw_ruleset()[RAW_NAME]) - 1} branches\n")
    runtime = throughput(args.rounds, args.claims)
    latency(runtime)
    simulation(args.records)
    memory(100_000 if args.quick else 1_000_000)


if __name__ == "__main__":
    main()
