"""The rules engine (P1.3.4): decisions as data, normalised inputs, no state left behind,
located validation errors, fuzzing, hot reload across threads and processes, files in
instance/rules/, and the ``portal rules`` commands.

Clause names: ``p1_3_4`` is "the rules themselves are revised without code changes",
``p6_4`` the expense limits of ``rules/expenses.yaml``.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portal.plugins.types import RuleAction
from portal.rules import engine as engine_module
from portal.rules.cases import run_cases
from portal.rules.compiler import compile_ruleset
from portal.rules.engine import (
    Evaluation,
    RuleEngineError,
    RuleInputError,
    Runtime,
    normalize_facts,
)
from portal.rules.model import RuleFile
from portal.rules.validate import Vocabulary, check_rule_file

ROOT = Path(__file__).resolve().parent.parent
EXPENSES = (ROOT / "rules" / "expenses.yaml").read_text(encoding="utf-8")
EXPENSES_CASES = EXPENSES.count("\n  - name: ")  # test cases in the shipped file
VOCABULARY = Vocabulary(
    actions={
        "core.flag": RuleAction("core.flag", lambda **_: None, arguments={"message": str}),
        "core.block": RuleAction("core.block", lambda **_: None, arguments={"message": str}),
    }
)
FUZZ = settings(
    max_examples=150,
    deadline=None,
    database=None,  # no .hypothesis/ folder in the repository
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- helpers ------------------------------------------------------------------------


def load(text: str, name: str | None = None) -> RuleFile:
    """A valid rule file (fails the test with the errors otherwise)."""
    rule_file, errors = check_rule_file(text, f"{name or 'rules'}.yaml", VOCABULARY, name)
    assert rule_file is not None, [str(error) for error in errors]
    assert errors == []
    return rule_file


def errors_of(text: str, name: str = "expenses") -> list[Any]:
    """The located errors of a broken rule file (it must not load)."""
    rule_file, errors = check_rule_file(text, f"{name}.yaml", VOCABULARY, name)
    assert rule_file is None
    assert errors
    return errors


def where(text: str, needle: str, occurrence: int = 1) -> tuple[int, int]:
    """1-based (line, column) of the ``occurrence``-th ``needle`` in ``text``."""
    index = -1
    for _ in range(occurrence):
        index = text.index(needle, index + 1)
    line = text.count("\n", 0, index) + 1
    column = index - (text.rfind("\n", 0, index) + 1) + 1
    return line, column


def edit(text: str, old: str, new: str) -> str:
    """Replace the one and only ``old`` in ``text`` (so a test cannot edit the wrong line)."""
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
    return text.replace(old, new)


def with_meal_limit(salesperson: str, text: str = EXPENSES) -> str:
    """expenses.yaml with the salesperson's meal limit changed."""
    return edit(text, "rows: [[salesperson, 150],", f"rows: [[salesperson, {salesperson}],")


def claim(**changes: Any) -> dict[str, Any]:
    """A valid expense claim line."""
    facts = {
        "category": "taxi",
        "role": "salesperson",
        "city_tier": 1,
        "amount": "38.00",
        "has_receipt": True,
    }
    facts.update(changes)
    return facts


def fen(value: Any) -> int:
    """Money in minor units, rounded half up (the documented rule)."""
    return int((Decimal(str(value)) * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


HOTEL_LIMITS = [  # (role, city tier or None for any, limit in yuan), in file order
    ("salesperson", 1, 500),
    ("salesperson", 2, 400),
    ("salesperson", 3, 300),
    ("supervisor", 1, 700),
    ("supervisor", 2, 550),
    ("supervisor", 3, 450),
    ("manager", None, 900),
]
MEAL_LIMITS = [("salesperson", 150), ("supervisor", 250), ("manager", 400)]


def expenses_oracle(facts: dict[str, Any]) -> str:
    """rules/expenses.yaml written by hand, on normalised inputs (amount in fen)."""
    amount, role, category = facts["amount"], facts["role"], facts["category"]
    if amount > 100_00 and not facts["has_receipt"]:
        return "receipt-required"
    if amount > 5000_00:
        return "large-claim"
    if category == "hotel":
        for row, (row_role, tier, limit) in enumerate(HOTEL_LIMITS, start=1):
            if role == row_role and tier in (None, facts["city_tier"]) and amount > limit * 100:
                return f"hotel-over-limit#{row}"
    if category == "meal":
        for row, (row_role, limit) in enumerate(MEAL_LIMITS, start=1):
            if role == row_role and amount > limit * 100:
                return f"meal-over-limit#{row}"
    if category == "entertainment":
        return "entertainment-needs-manager"
    return "within-limits"


@pytest.fixture(scope="module")
def expenses() -> RuleFile:
    return load(EXPENSES, "expenses")


@pytest.fixture
def runtime() -> Runtime:
    return Runtime()


# -- decisions are data ---------------------------------------------------------------


def test_p6_4_decision_is_data_with_version_sha_line_and_clause(
    expenses: RuleFile, runtime: Runtime
) -> None:
    evaluation = runtime.evaluate(expenses, claim(amount="100.01", has_receipt=False), version=7)

    assert isinstance(evaluation, Evaluation) and evaluation.decided
    (decision,) = evaluation.decisions
    assert decision.rule == "receipt-required" and decision.row is None
    assert decision.outputs == {
        "decision": "reject",
        "reason": "A receipt is required above the threshold",
    }
    assert decision.version == evaluation.version == 7
    assert decision.sha == evaluation.sha == hashlib.sha256(EXPENSES.encode()).hexdigest()
    assert decision.line == where(EXPENSES, "- id: receipt-required")[0]
    assert decision.clause == evaluation.clause == "P6.4"
    assert evaluation.outputs == decision.outputs
    assert evaluation.inputs["amount"] == "100.01"  # as given, for the explanation
    as_data = json.loads(json.dumps(evaluation.as_dict(), ensure_ascii=False))
    assert as_data["decisions"][0]["rule"] == "receipt-required"
    assert as_data["decisions"][0]["line"] == decision.line


def test_p6_4_table_row_decision_names_its_row_and_line(
    expenses: RuleFile, runtime: Runtime
) -> None:
    evaluation = runtime.evaluate(expenses, claim(category="hotel", city_tier=2, amount=401))

    (decision,) = evaluation.decisions
    assert (decision.rule, decision.row, decision.label) == (
        "hotel-over-limit",
        2,
        "hotel-over-limit#2",
    )
    assert decision.line == where(EXPENSES, "- [salesperson, 2, 400]")[0]
    assert list(decision.outputs["approvers"]) == ["supervisor", "manager"]
    evaluation.outputs["approvers"].append("finance")  # the caller's copy, not the policy
    again = runtime.evaluate(expenses, claim(category="hotel", city_tier=2, amount=401))
    assert again.outputs["approvers"] == ["supervisor", "manager"]
    assert evaluation.rules == ["hotel-over-limit#2"]


def test_p1_3_4_no_matching_rule_is_an_empty_decision(runtime: Runtime) -> None:
    without_default = edit(
        EXPENSES,
        "  - id: within-limits\n    then: {decision: approve, approvers: [supervisor]}\n",
        "",
    )
    without_default = without_default.split("\ntests:\n")[0] + "\n"
    rule_file = load(without_default, "expenses")

    evaluation = runtime.evaluate(rule_file, claim())
    assert evaluation.decisions == () and not evaluation.decided
    assert evaluation.outputs == {} and evaluation.rules == []
    assert evaluation.as_dict()["decisions"] == []
    batch = runtime.evaluate_many(rule_file, [claim(), claim(category="entertainment"), claim()])
    assert [e.rules for e in batch] == [[], ["entertainment-needs-manager"], []]


def test_p6_4_first_hit_the_first_matching_rule_in_file_order_decides(
    expenses: RuleFile, runtime: Runtime
) -> None:
    # Matches receipt-required, large-claim and meal-over-limit: the first one decides.
    evaluation = runtime.evaluate(expenses, claim(category="meal", amount=8000, has_receipt=False))
    assert evaluation.rules == ["receipt-required"]
    evaluation = runtime.evaluate(expenses, claim(category="meal", amount=8000))
    assert evaluation.rules == ["large-claim"]
    assert evaluation.outputs["approvers"] == ["supervisor", "manager", "finance"]


ATTENDANCE = """\
ruleset: attendance
title: Attendance violations
clause: P6.1
hit_policy: collect
inputs:
  late_count_month: {type: int, min: 0}
  absent_days_month: {type: int, min: 0}
  missed_checkin_month: {type: int, min: 0, default: 0}
outputs:
  violation: {type: text}
  points: {type: int}
  fine: {type: money}
  warned: {type: bool}
rules:
  - id: frequent-late
    when: {late_count_month: {gte: 3}}
    then: {violation: late, points: 2, fine: 0.10, warned: true}
  - id: absence
    when: {absent_days_month: {gte: 1}}
    then: {violation: absent, points: 5, fine: 0.20}
  - id: missed-checkin
    when: {missed_checkin_month: {gt: 2}}
    then: {violation: missed check-in, points: 1, warned: true}
  - id: very-late
    table:
      columns: [late_count_month.gte, then.points]
      rows: [[5, 3], [8, 4]]
    then: {violation: very late}
aggregate: {points: sum, fine: max, violation: list, warned: count}
"""


def test_p1_3_4_collect_returns_every_matching_rule_in_file_order(runtime: Runtime) -> None:
    attendance = load(ATTENDANCE, "attendance")

    evaluation = runtime.evaluate(
        attendance, {"late_count_month": 8, "absent_days_month": 1, "missed_checkin_month": 3}
    )
    assert evaluation.rules == [
        "frequent-late",
        "absence",
        "missed-checkin",
        "very-late#1",
        "very-late#2",
    ]
    assert evaluation.outputs["points"] == 2 + 5 + 1 + 3 + 4
    assert evaluation.outputs["violation"] == [
        "late",
        "absent",
        "missed check-in",
        "very late",
        "very late",
    ]
    assert evaluation.outputs["warned"] == 2
    assert Decimal(evaluation.outputs["fine"]) == Decimal("0.20")

    # Two money amounts add up exactly (no binary floats): 0.10 + 0.20 == 0.30.
    sums = load(edit(ATTENDANCE, "fine: max", "fine: sum"), "attendance")
    both = runtime.evaluate(sums, {"late_count_month": 3, "absent_days_month": 1})
    assert both.rules == ["frequent-late", "absence"]
    assert Decimal(both.outputs["fine"]) == Decimal("0.30")
    json.dumps(both.as_dict())  # still JSON-ready

    nothing = runtime.evaluate(attendance, {"late_count_month": 0, "absent_days_month": 0})
    assert nothing.rules == []
    assert nothing.outputs == {"points": 0, "fine": None, "violation": [], "warned": 0}

    batch = runtime.evaluate_many(
        attendance,
        [
            {"late_count_month": 3, "absent_days_month": 0},
            {"late_count_month": 5, "absent_days_month": 2},
            {"late_count_month": 3, "absent_days_month": 0},  # same facts twice in a batch
        ],
    )
    assert [e.rules for e in batch] == [
        ["frequent-late"],
        ["frequent-late", "absence", "very-late#1"],
        ["frequent-late"],
    ]
    assert [e.outputs["points"] for e in batch] == [2, 10, 2]
    # The same facts again, one at a time: a collect file asserts facts, and durable
    # refuses a fact it has already seen unless the state was cleared after each call.
    for _ in range(3):
        again = runtime.evaluate(attendance, {"late_count_month": 3, "absent_days_month": 0})
        assert again.rules == ["frequent-late"]


def test_p1_3_4_collect_counts_a_rule_once_when_several_alternatives_match(
    runtime: Runtime,
) -> None:
    either = load(
        """\
ruleset: either
title: Either
clause: P1.3.4
hit_policy: collect
inputs:
  a: {type: int}
  b: {type: int}
outputs:
  points: {type: int}
rules:
  - id: either
    when: {any: [{a: {gt: 0}}, {b: {gt: 0}}]}
    then: {points: 1}
  - id: listed
    when: {a: {in: [1, 1, 2]}}
    then: {points: 10}
aggregate: {points: sum}
""",
        "either",
    )
    both = runtime.evaluate(either, {"a": 1, "b": 1})
    assert both.rules == ["either", "listed"] and both.outputs == {"points": 11}
    batch = runtime.evaluate_many(either, [{"a": 1, "b": 1}, {"a": 0, "b": 0}, {"a": 2, "b": 3}])
    assert [e.rules for e in batch] == [["either", "listed"], [], ["either", "listed"]]


# -- inputs normalised ----------------------------------------------------------------


@pytest.fixture
def engine_messages(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every message handed to durable_rules during the test."""
    seen: list[dict[str, Any]] = []
    host = engine_module._QuietHost
    for method in ("post", "assert_fact"):
        original = getattr(host, method)

        def spy(self: Any, name: str, message: dict[str, Any], *a: Any, _o: Any = original) -> Any:
            seen.append(dict(message))
            return _o(self, name, message, *a)

        monkeypatch.setattr(host, method, spy)
    for method in ("post_batch", "assert_facts"):
        original = getattr(host, method)

        def spy_many(self: Any, name: str, messages: list[Any], *a: Any, _o: Any = original) -> Any:
            seen.extend(dict(m) for m in messages)
            return _o(self, name, messages, *a)

        monkeypatch.setattr(host, method, spy_many)
    return seen


def test_p6_4_money_is_compared_in_whole_fen(
    expenses: RuleFile, runtime: Runtime, engine_messages: list[dict[str, Any]]
) -> None:
    over = [
        "100.01",
        100.01,
        100.0100001,
        Decimal("100.01"),
        "100.005",
        10001 / 100,
        " 100.01 ",
    ]
    for amount in over:
        assert normalize_facts(expenses, claim(amount=amount))["amount"] == 10001
        assert runtime.evaluate(expenses, claim(amount=amount, has_receipt=False)).rules == [
            "receipt-required"
        ], amount
    for amount in ["100", 100, 100.0, "100.00", 100.004999, "100.004", 1e-5]:
        assert runtime.evaluate(expenses, claim(amount=amount, has_receipt=False)).rules == [
            "within-limits"
        ], amount
    assert normalize_facts(expenses, claim(amount=0.1 + 0.2))["amount"] == 30
    assert normalize_facts(expenses, claim(amount=1e-5))["amount"] == 0
    # What reached the engine: integers and the declared fields only, never a float.
    assert engine_messages
    for message in engine_messages:
        assert type(message["amount"]) is int
        assert set(message) == {*expenses.inputs, "t", "sid", "i"}


def test_p6_4_whole_numbers_may_be_given_as_text(expenses: RuleFile, runtime: Runtime) -> None:
    hotel = claim(category="hotel", amount=450)
    for tier in [2, "2", "2.0", 2.0, " 2 "]:
        assert normalize_facts(expenses, {**hotel, "city_tier": tier})["city_tier"] == 2
        assert runtime.evaluate(expenses, {**hotel, "city_tier": tier}).rules == [
            "hotel-over-limit#2"
        ]
    for tier in [2.5, "2.5", "two", True, [2], {"n": 2}, 0, 4, "0x2"]:
        with pytest.raises(RuleInputError) as refused:
            runtime.evaluate(expenses, {**hotel, "city_tier": tier})
        assert set(refused.value.fields) == {"city_tier"}, tier


@pytest.mark.parametrize("value", ["yes", "no", "true", "True", 1, 0, "1", 1.0, "", [], {}])
def test_p6_4_booleans_are_true_or_false_only(
    expenses: RuleFile, runtime: Runtime, value: Any
) -> None:
    with pytest.raises(RuleInputError) as refused:
        runtime.evaluate(expenses, claim(has_receipt=value))
    assert set(refused.value.fields) == {"has_receipt"}


@pytest.mark.parametrize(
    "amount",
    [
        float("nan"),
        float("inf"),
        float("-inf"),
        1e400,  # a float literal that overflows to inf
        "1e400",
        "NaN",
        "-Infinity",
        "sNaN",
        Decimal("NaN"),
        Decimal("Infinity"),
        Decimal("1e30"),
        10**30,
        10**400,
        "9" * 5000,
        1e300,
        -1,  # below the declared minimum
        "",
        "12,50",
        "0x10",
        True,
        None,
        [100],
        {"yuan": 100},
        object(),
    ],
)
def test_p6_4_unusable_numbers_are_refused_per_field(
    expenses: RuleFile,
    runtime: Runtime,
    engine_messages: list[dict[str, Any]],
    amount: Any,
) -> None:
    with pytest.raises(RuleInputError) as refused:
        runtime.evaluate(expenses, claim(amount=amount))
    assert set(refused.value.fields) == {"amount"}
    assert refused.value.fields["amount"]  # a reason, for the caller
    assert engine_messages == []  # it never reached the engine


def test_p1_3_4_every_bad_field_is_reported_at_once(expenses: RuleFile, runtime: Runtime) -> None:
    with pytest.raises(RuleInputError) as refused:
        runtime.evaluate(
            expenses,
            {"category": "yacht", "city_tier": 9, "amount": float("nan"), "has_receipt": "yes"},
        )
    fields = refused.value.fields
    assert set(fields) == {"category", "role", "city_tier", "amount", "has_receipt"}
    assert fields["role"] == ["missing"]
    assert "yacht" in fields["category"][0]
    assert "role: missing" in str(refused.value)

    with pytest.raises(RuleInputError) as empty:
        runtime.evaluate(expenses, {})
    # Inputs with a default (day_total, trip_total, days_old) are never missing.
    required = [name for name, spec in expenses.inputs.items() if spec.default is None]
    assert empty.value.fields == {name: ["missing"] for name in required}
    with pytest.raises(RuleInputError):
        runtime.evaluate(expenses, claim(role=None))  # null counts as missing
    with pytest.raises(RuleInputError) as not_a_mapping:
        runtime.evaluate(expenses, [("amount", 1)])  # type: ignore[arg-type]
    assert list(not_a_mapping.value.fields) == [""]


def test_p1_3_4_unknown_keys_are_dropped(
    expenses: RuleFile, runtime: Runtime, engine_messages: list[dict[str, Any]]
) -> None:
    facts = claim(amount=200, has_receipt=False)
    facts.update({"t": "expenses", "sid": "0", "i": 5, "comment": object(), "nested": {"a": [1]}})
    evaluation = runtime.evaluate(expenses, facts)
    assert evaluation.rules == ["receipt-required"]
    # What was given and declared is kept (defaulted inputs are filled in by the engine).
    assert set(claim()) <= set(evaluation.inputs) <= set(expenses.inputs)
    (message,) = engine_messages
    assert message["sid"] != "0" and message["i"] == 0 and message["t"] != "expenses"


def test_p1_3_4_defaults_apply_to_missing_inputs(runtime: Runtime) -> None:
    with_default = edit(
        EXPENSES, "has_receipt: {type: bool}", "has_receipt: {type: bool, default: true}"
    )
    rule_file = load(with_default, "expenses")
    facts = claim(amount=200)
    del facts["has_receipt"]
    assert runtime.evaluate(rule_file, facts).rules == ["within-limits"]
    assert runtime.evaluate(rule_file, {**facts, "has_receipt": None}).rules == ["within-limits"]
    assert runtime.evaluate(rule_file, {**facts, "has_receipt": False}).rules == [
        "receipt-required"
    ]
    # A default that does not fit its own type is a located error, not a later surprise.
    bad_default = edit(
        EXPENSES, "has_receipt: {type: bool}", "has_receipt: {type: bool, default: yes}"
    )
    (error,) = errors_of(bad_default)
    assert (error.line, error.column) == where(bad_default, "default: yes")


def test_p1_3_4_text_the_engine_cannot_read_is_refused(runtime: Runtime) -> None:
    text_file = load(
        """\
ruleset: notes
title: Notes
clause: P1.3.4
hit_policy: first
inputs:
  note: {type: text}
outputs:
  hit: {type: bool}
rules:
  - id: quoted
    when: {note: "say \\"hi\\" \\\\ 日本"}
    then: {hit: true}
""",
        "notes",
    )
    assert runtime.evaluate(text_file, {"note": 'say "hi" \\ 日本'}).rules == ["quoted"]
    assert runtime.evaluate(text_file, {"note": "say"}).rules == []
    for bad in ["\ud800", "a\udfffb", "x" * 1001, 5, None]:
        with pytest.raises(RuleInputError) as refused:
            runtime.evaluate(text_file, {"note": bad})
        assert set(refused.value.fields) == {"note"}
    assert runtime.evaluate(text_file, {"note": "fine"}).rules == []  # nothing left broken


@pytest.mark.parametrize("reserved", ["t", "sid", "i", "id"])
def test_p1_3_4_engine_field_names_cannot_be_inputs(reserved: str) -> None:
    text = EXPENSES.replace("has_receipt", reserved)
    errors = errors_of(text)
    assert (errors[0].line, errors[0].column) == where(text, f"{reserved}: {{type: bool}}")
    assert "reserved" in errors[0].message


# -- no state left behind ---------------------------------------------------------------


def test_p1_3_4_thousands_of_distinct_evaluations_leave_nothing_behind(
    expenses: RuleFile, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    attendance = load(ATTENDANCE, "attendance")
    for cents in range(3000):  # one thread, 3,000 distinct claims
        facts = claim(category="meal", amount=Decimal(cents * 7) / 100)
        normalised = normalize_facts(expenses, facts)
        assert runtime.evaluate(expenses, facts).rules == [expenses_oracle(normalised)]

    # Worst case: a new thread for every call, as a thread-per-request server does.
    # durable_rules holds at most 1,024 sids per ruleset and breaks for good on the
    # 1,025th, so sids come from a small pool and go back after every call.
    failures: list[str] = []

    def one_call(n: int) -> None:
        try:
            assert runtime.evaluate(expenses, claim(amount=n % 90)).rules == ["within-limits"]
            late = {"late_count_month": n % 4, "absent_days_month": 0}
            wanted = ["frequent-late"] if n % 4 == 3 else []
            assert runtime.evaluate(attendance, late).rules == wanted
        except Exception as error:  # noqa: BLE001 - reported below
            failures.append(repr(error))

    for n in range(1500):
        thread = threading.Thread(target=one_call, args=(n,))
        thread.start()
        thread.join()
    assert failures == []
    assert runtime._sids._created <= 2  # one thread at a time needs one sid
    batch = runtime.evaluate_many(expenses, [claim(amount=n % 90) for n in range(1500)])
    assert {tuple(e.rules) for e in batch} == {("within-limits",)}
    host = runtime._ensure_host()
    assert host.fired == {}
    assert runtime.registered_count == 2


def test_p1_3_4_threads_evaluating_together_get_their_own_answers(
    expenses: RuleFile, runtime: Runtime
) -> None:
    problems: list[str] = []

    def work(seed: int) -> None:
        for n in range(300):
            facts = claim(
                category=["meal", "hotel", "taxi", "entertainment"][(seed + n) % 4],
                role=["salesperson", "supervisor", "manager"][n % 3],
                city_tier=1 + (n + seed) % 3,
                amount=(seed * 997 + n * 37) % 1200,
                has_receipt=n % 5 != 0,
            )
            got = runtime.evaluate(expenses, facts).rules
            wanted = [expenses_oracle(normalize_facts(expenses, facts))]
            if got != wanted:
                problems.append(f"{facts}: {got} != {wanted}")

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert problems == []


def test_p1_3_4_no_engine_threads_are_started(expenses: RuleFile) -> None:
    before = threading.active_count()
    threads_before = set(threading.enumerate())
    runtime = Runtime()
    runtime.register(expenses)
    runtime.register(load(ATTENDANCE, "attendance"))
    runtime.register(load(with_meal_limit("160"), "expenses"))
    runtime.evaluate(expenses, claim())
    time.sleep(0.5)  # durable's own Host would have started its timer threads by now
    assert set(threading.enumerate()) - threads_before == set()
    assert threading.active_count() <= before
    assert not [t for t in threading.enumerate() if isinstance(t, threading.Timer)]


def test_p1_3_4_the_same_content_is_registered_once(expenses: RuleFile) -> None:
    runtime = Runtime()
    first = runtime.register(expenses)
    assert runtime.register(expenses) == first
    assert runtime.register(load(EXPENSES, "expenses")) == first  # parsed again: same content
    runtime.evaluate(expenses, claim())
    runtime.evaluate_many(expenses, [claim(), claim()])
    assert runtime.registered_count == 1
    changed = runtime.register(load(with_meal_limit("160"), "expenses"))
    assert changed != first and runtime.registered_count == 2


def test_p1_3_4_engine_failures_are_raised_never_swallowed(
    expenses: RuleFile, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime.evaluate(expenses, claim())

    def broken(*_: Any) -> None:
        raise OSError("the engine fell over")

    monkeypatch.setattr(engine_module._QuietHost, "post", broken)
    with pytest.raises(RuleEngineError, match="the engine fell over"):
        runtime.evaluate(expenses, claim())
    monkeypatch.undo()
    assert runtime._ensure_host().fired == {}
    assert runtime.evaluate(expenses, claim()).rules == ["within-limits"]


# -- validation errors are located --------------------------------------------------------

ACTIONS_AT = '    then: {decision: escalate, approvers: [supervisor, manager], reason: "Customer entertainment"}\n'  # noqa: E501


def _variant(old: str, new: str) -> str:
    return edit(EXPENSES, old, new)


LOCATED = [
    # (what is wrong, broken text, the text the error must point at, words of the message)
    (
        "unknown field",
        _variant(
            "has_receipt: false}\n    then: {decision: reject",
            "has_recipt: false}\n    then: {decision: reject",
        ),
        "has_recipt",
        "unknown input 'has_recipt'",
    ),
    (
        "unknown field written in block style",
        _variant(
            "    when: {category: entertainment}\n",
            "    when:\n      categori:\n        eq: entertainment\n",
        ),
        "categori:",
        "unknown input 'categori'",
    ),
    (
        "wrong type of a table cell",
        _variant("[salesperson, 2, 400]", "[salesperson, 2, lots]"),
        "lots",
        "expected a number, got 'lots'",
    ),
    (
        "wrong type of an output",
        _variant("then: {decision: reject,", "then: {decision: refuse,"),
        "decision: refuse",
        "expected one of approve, reject, escalate, got 'refuse'",
    ),
    (
        "wrong type of a parameter",
        _variant("value: 5000,", "value: five thousand,"),
        "value: five thousand",
        "expected a number",
    ),
    (
        "unknown operator",
        _variant("amount: {gt: {param: manager", "amount: {gtt: {param: manager"),
        "gtt",
        "unknown comparison 'gtt'",
    ),
    (
        "ordering an enum",
        _variant("when: {category: meal}", "when: {category: {gt: meal}}"),
        "gt: meal",
        "'gt' needs a number",
    ),
    (
        "unknown action",
        _variant(
            ACTIONS_AT, ACTIONS_AT + "    actions:\n      - flagg: {message: Entertainment}\n"
        ),
        "flagg",
        "unknown action 'flagg'",
    ),
    (
        "action argument of the wrong type",
        _variant(ACTIONS_AT, ACTIONS_AT + "    actions:\n      - flag: {message: 5}\n"),
        "message: 5",
        "'message' of action 'flag' must be str",
    ),
    (
        "action argument missing",
        _variant(ACTIONS_AT, ACTIONS_AT + "    actions:\n      - block: {}\n"),
        "block: {}",
        "action 'block' needs 'message'",
    ),
    (
        "table row of the wrong width",
        _variant("[salesperson, 2, 400]", "[salesperson, 2, 400, 1]"),
        "[salesperson, 2, 400, 1]",
        "row 2 has 4 cells but the table has 3 columns",
    ),
    (
        "unknown table column",
        _variant("columns: [role, amount.gt]", "columns: [role, amount.over]"),
        "amount.over",
        "unknown comparison 'over'",
    ),
    (
        "duplicate rule id",
        _variant("id: entertainment-needs-manager", "id: meal-over-limit"),
        "id: meal-over-limit\n    when: {category: entertainment",
        "the rule id 'meal-over-limit' is used twice",
    ),
    (
        "test naming a rule that does not exist",
        _variant("expect: {rule: large-claim,", "expect: {rule: huge-claim,"),
        "rule: huge-claim",
        "no rule has the id 'huge-claim'",
    ),
    (
        "YAML syntax error",
        _variant("clause: P6.4", "clause: P6.4: and more"),
        ": and more",
        "not valid YAML: mapping values are not allowed here",
    ),
    (
        "a tab for indentation",
        _variant("  - id: large-claim", "\t- id: large-claim"),
        "\t- id: large-claim",
        "not valid YAML: found character '\\t' that cannot start any token",
    ),
    (
        "a duplicated key",
        _variant("clause: P6.4\n", "clause: P6.4\nclause: P6.5\n"),
        "clause: P6.5",
        "'clause' appears twice",
    ),
    (
        "a recursive alias",
        _variant("description: >", "loop: &loop [*loop]\ndescription: >"),
        "&loop [*loop]",
        "nest too deeply",
    ),
]


@pytest.mark.parametrize(
    ("text", "at", "message"),
    [case[1:] for case in LOCATED],
    ids=[case[0] for case in LOCATED],
)
def test_p1_3_4_validation_errors_name_line_and_column(text: str, at: str, message: str) -> None:
    errors = errors_of(text)
    assert [(e.line, e.column) for e in errors][:1] == [where(text, at)], [str(e) for e in errors]
    assert message in errors[0].message
    assert str(errors[0]).startswith(f"expenses.yaml:{errors[0].line}:{errors[0].column}: ")


def test_p1_3_4_an_alias_bomb_is_refused_quickly() -> None:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level in range(1, 9):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * 10) + "]")
    bomb = EXPENSES + "\n".join(lines) + "\n"
    started = time.perf_counter()
    (error,) = errors_of(bomb)
    assert time.perf_counter() - started < 2
    assert (error.line, error.column) == (1, 1)
    assert "aliases" in error.message


def test_p1_3_4_a_ruleset_without_a_name_is_an_error_not_silence() -> None:
    for name in ["~", "null", "[expenses]", "Expenses!"]:
        text = _variant("ruleset: expenses", f"ruleset: {name}")
        errors = errors_of(text)
        assert (errors[0].line, errors[0].column) == where(text, "ruleset:")
        assert "ruleset name" in errors[0].message


def test_p1_3_4_too_deep_or_too_large_files_are_refused() -> None:
    deep = EXPENSES + "deep: " + "[" * 3000 + "]" * 3000 + "\n"
    assert "nest too deeply" in errors_of(deep)[0].message
    large = EXPENSES + "#" + "x" * 300_000 + "\n"
    assert "256 KiB" in errors_of(large)[0].message
    huge_number = _variant("[salesperson, 150]", "[salesperson, " + "9" * 5000 + "]")
    (error,) = errors_of(huge_number)
    assert (error.line, error.column) == where(huge_number, "9999")
    for odd in ["", "# only a comment\n", "- a list\n", "a: 1\n---\nb: 2\n", "\ud800: x\n"]:
        assert errors_of(odd)


def test_p1_3_4_a_failing_test_case_is_located(app: Any) -> None:
    service = app.extensions["portal_rules"]
    text = _variant("- [salesperson, 1, 500]", "- [salesperson, 1, 600]")
    check = service.check(text, "expenses")
    assert check.rule_file is not None and check.errors == [] and not check.ok
    (failure,) = check.failures
    assert failure.case.name == "salesperson hotel over the first-tier limit"
    assert failure.case.line == where(text, "- name: salesperson hotel over the first-tier")[0]
    assert "expected rule hotel-over-limit, got within-limits" in failure.problem
    assert service.check(EXPENSES, "expenses").ok


# -- fuzz -------------------------------------------------------------------------------

YAML_PIECES = [
    "ruleset: expenses\n",
    "rules:\n",
    "  - id: a\n",
    "    when: ",
    "then: ",
    "table:\n",
    "columns: [",
    "rows: [[",
    "]",
    "]]",
    "{",
    "}",
    "[",
    ":",
    ": ",
    ", ",
    "- ",
    "\n",
    "  ",
    "\t",
    "'",
    '"',
    "#",
    "&a ",
    "*a",
    "!!str ",
    "!!python/object:os.system ",
    "? ",
    "|\n",
    ">\n",
    "---\n",
    "...\n",
    "~",
    "null",
    "true",
    "no",
    "1e400",
    "-0.0",
    "0x1F",
    "9" * 50,
    "{param: ",
    "{field: ",
    "any: [",
    "in: [",
    "gt: ",
    "amount",
    "category",
    "meal",
    "hit_policy: collect\n",
    "aggregate: {",
    "tests:\n",
    "given: {",
    "expect: {rule: ",
    "\\u0000",
    "\ufeff",
    "日本",
    "%YAML 1.1\n",
    "<<: *a\n",
]


def _assert_checked(text: str) -> RuleFile | None:
    rule_file, errors = check_rule_file(text, "expenses.yaml", VOCABULARY, "expenses")
    if rule_file is None:
        assert errors
        last_line = text.count("\n") + 2
        for error in errors:
            assert 1 <= error.line <= last_line and error.column >= 1, error
            assert isinstance(error.message, str) and error.message
    else:
        assert errors == []
        assert isinstance(rule_file, RuleFile)
        compile_ruleset(rule_file)
    return rule_file


@FUZZ
@given(st.text(max_size=300) | st.lists(st.sampled_from(YAML_PIECES), max_size=40).map("".join))
def test_p1_3_4_fuzz_random_text_never_crashes_the_checker(text: str) -> None:
    _assert_checked(text)


@st.composite
def mutated_expenses(draw: st.DrawFn) -> str:
    text = EXPENSES
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["delete", "insert", "replace", "dup-line", "swap-lines"]))
        at = draw(st.integers(0, len(text)))
        if kind == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 20)) :]
        elif kind == "insert":
            text = text[:at] + draw(st.sampled_from(YAML_PIECES) | st.text(max_size=5)) + text[at:]
        elif kind == "replace":
            text = text[:at] + draw(st.characters()) + text[at + 1 :]
        else:
            lines = text.split("\n")
            i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
            if kind == "dup-line":
                lines.insert(j, lines[i])
            else:
                lines[i], lines[j] = lines[j], lines[i]
            text = "\n".join(lines)
    return text


@FUZZ
@given(mutated_expenses())
def test_p1_3_4_fuzz_mutated_expense_file_never_crashes_the_checker(text: str) -> None:
    _assert_checked(text)


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(
        ["meal", "hotel", "salesperson", "manager", "100.01", "1e400", "NaN", " 7 ", "-0", "1_0"]
    ),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*path, index))
    return found


@st.composite
def tree_mutations(draw: st.DrawFn) -> str:
    """expenses.yaml with values swapped for random JSON values, keys dropped or added."""
    data = yaml.safe_load(EXPENSES)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(data)[1:]))
        parent = data
        for step in path[:-1]:
            parent = parent[step]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            parent[path[-1]] = draw(JSON_VALUES)
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=6))] = draw(JSON_VALUES)
        else:
            parent.append(draw(JSON_VALUES))
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


_FUZZ_RUNTIME = Runtime()


@FUZZ
@given(tree_mutations())
def test_p1_3_4_fuzz_mutated_rule_data_compiles_or_gives_located_errors(text: str) -> None:
    rule_file = _assert_checked(text)
    if rule_file is not None:  # still valid: its own tests run (pass or fail), no crash
        for result in run_cases(_FUZZ_RUNTIME, rule_file):
            assert isinstance(result.passed, bool)


VALID_CLAIMS = st.fixed_dictionaries(
    {
        "category": st.sampled_from(
            ["meal", "hotel", "taxi", "travel", "entertainment", "office", "other"]
        ),
        "role": st.sampled_from(["salesperson", "supervisor", "manager"]),
        "city_tier": st.integers(1, 3) | st.sampled_from(["1", "2", "3"]),
        "amount": st.integers(0, 9000)
        | st.decimals(0, 9000, places=2).map(str)
        | st.floats(0, 9000, allow_nan=False),
        "has_receipt": st.booleans(),
    }
)


@st.composite
def fact_dicts(draw: st.DrawFn) -> Any:
    shape = draw(st.sampled_from(["valid", "some-broken", "random", "not-a-dict"]))
    if shape == "not-a-dict":
        return draw(JSON_VALUES)
    if shape == "random":
        keys = st.sampled_from(["category", "role", "city_tier", "amount", "has_receipt"])
        return draw(st.dictionaries(keys | st.text(max_size=6), JSON_VALUES, max_size=7))
    facts = draw(VALID_CLAIMS)
    if shape == "some-broken":
        for key in draw(st.lists(st.sampled_from(sorted(facts)), max_size=3)):
            facts[key] = draw(JSON_VALUES)
    return facts


@FUZZ
@given(fact_dicts())
def test_p6_4_fuzz_any_facts_evaluate_or_are_refused(facts: Any) -> None:
    rule_file = load(EXPENSES, "expenses")
    try:
        evaluation = _FUZZ_RUNTIME.evaluate(rule_file, facts)
    except RuleInputError as refused:
        assert refused.fields
        assert set(refused.fields) <= {*rule_file.inputs, ""}
        return
    assert evaluation.rules == [expenses_oracle(normalize_facts(rule_file, facts))]
    json.dumps(evaluation.as_dict(), allow_nan=False)


# Random small rule files and a plain-Python oracle for the same conditions: proves the
# compiler's mapping of eq/ne/gt/gte/lt/lte/in/not_in/field references/any/tables.

OPS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in")


def _compare(op: str, left: int, right: Any) -> bool:
    return {
        "eq": lambda: left == right,
        "ne": lambda: left != right,
        "gt": lambda: left > right,
        "gte": lambda: left >= right,
        "lt": lambda: left < right,
        "lte": lambda: left <= right,
        "in": lambda: left in right,
        "not_in": lambda: left not in right,
    }[op]()


@st.composite
def generated_rules(draw: st.DrawFn) -> dict[str, Any]:
    kinds = {
        f"f{i}": draw(st.sampled_from(["int", "money"])) for i in range(draw(st.integers(1, 3)))
    }
    fields = sorted(kinds)

    def value(field: str) -> Any:
        if kinds[field] == "int":
            return draw(st.integers(-5, 5))
        return draw(st.integers(-500, 500)) / 100  # yuan with at most two decimals

    def conditions() -> list[tuple[str, str, Any]]:
        found = []
        for field in draw(st.lists(st.sampled_from(fields), max_size=3)):
            op = draw(st.sampled_from(OPS))
            same = [f for f in fields if f != field and kinds[f] == kinds[field]]
            if op in ("in", "not_in"):
                operand: Any = draw(st.lists(st.just(None), min_size=1, max_size=3))
                operand = [value(field) for _ in operand]
            elif same and draw(st.integers(0, 3)) == 0:
                operand = {"field": draw(st.sampled_from(same))}
            else:
                operand = value(field)
            found.append((field, op, operand))
        return found

    def when_of(found: list[tuple[str, str, Any]]) -> dict[str, Any]:
        when: dict[str, Any] = {}
        for field, op, operand in found:
            ops = when.setdefault(field, {})
            ops[op] = operand  # a repeated op on one field: the last one counts, as in YAML
        return when

    rules, branches = [], []
    for index in range(draw(st.integers(1, 6))):
        rule: dict[str, Any] = {"id": f"r{index}"}
        when = when_of(conditions())
        groups = []
        if draw(st.integers(0, 3)) == 0:
            groups = [when_of(conditions()) for _ in range(draw(st.integers(1, 3)))]
            when["any"] = groups
        if when:
            rule["when"] = when
        rule["then"] = {"n": index * 10}
        plain = [(f, op, v) for f, ops in when.items() if f != "any" for op, v in ops.items()]
        alternatives = [
            [(f, op, v) for f, ops in g.items() for op, v in ops.items()] for g in groups
        ]
        if draw(st.integers(0, 2)) == 0:
            columns = draw(st.lists(st.sampled_from(fields), min_size=1, max_size=2, unique=True))
            column_ops = [draw(st.sampled_from(OPS[:6])) for _ in columns]
            rows = []
            for row in range(draw(st.integers(1, 3))):
                cells = [value(f) if draw(st.integers(0, 4)) else None for f in columns]
                rows.append([*cells, index * 10 + row + 1])
                row_conditions = [
                    (f, op, cell)
                    for f, op, cell in zip(columns, column_ops, cells, strict=True)
                    if cell is not None
                ]
                branches.append(
                    (
                        f"r{index}#{row + 1}",
                        plain + row_conditions,
                        alternatives,
                        index * 10 + row + 1,
                    )
                )
            rule["table"] = {
                "columns": [f"{f}.{op}" for f, op in zip(columns, column_ops, strict=True)]
                + ["then.n"],
                "rows": rows,
            }
        else:
            branches.append((f"r{index}", plain, alternatives, index * 10))
        rules.append(rule)
    policy = draw(st.sampled_from(["first", "collect"]))
    document: dict[str, Any] = {
        "ruleset": "generated",
        "title": "Generated",
        "clause": "P1.3.4",
        "hit_policy": policy,
        "inputs": {field: {"type": kind} for field, kind in kinds.items()},
        "outputs": {"n": {"type": "int"}},
        "rules": rules,
    }
    how = None
    if policy == "collect":
        how = draw(st.sampled_from(["sum", "max", "min", "count", "list", "first"]))
        document["aggregate"] = {"n": how}
    facts = draw(
        st.lists(
            st.fixed_dictionaries(
                {
                    field: (
                        st.integers(-6, 6)
                        if kind == "int"
                        else st.integers(-600, 600).map(lambda c: c / 100)
                        | st.integers(-600, 600).map(lambda c: f"{Decimal(c) / 100:.2f}")
                    )
                    for field, kind in kinds.items()
                }
            ),
            min_size=1,
            max_size=8,
        )
    )
    return {
        "text": yaml.safe_dump(document, sort_keys=False),
        "kinds": kinds,
        "branches": branches,
        "policy": policy,
        "how": how,
        "facts": facts,
    }


def _oracle(case: dict[str, Any], facts: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    kinds = case["kinds"]

    def engine_value(field: str, value: Any) -> int:
        return fen(value) if kinds[field] == "money" else int(value)

    values = {field: engine_value(field, value) for field, value in facts.items()}

    def holds(condition: tuple[str, str, Any]) -> bool:
        field, op, operand = condition
        if isinstance(operand, dict):
            right: Any = values[operand["field"]]
        elif isinstance(operand, list):
            right = [engine_value(field, item) for item in operand]
        else:
            right = engine_value(field, operand)
        return _compare(op, values[field], right)

    fired = [
        (label, n)
        for label, plain, alternatives, n in case["branches"]
        if all(map(holds, plain))
        and (not alternatives or any(all(map(holds, g)) for g in alternatives))
    ]
    if case["policy"] == "first":
        fired = fired[:1]
        return [label for label, _ in fired], ({"n": fired[0][1]} if fired else {})
    numbers = [n for _, n in fired]
    combined = {
        "sum": sum(numbers),
        "max": max(numbers, default=None),
        "min": min(numbers, default=None),
        "count": len(numbers),
        "list": numbers,
        "first": numbers[0] if numbers else None,
    }[case["how"]]
    return [label for label, _ in fired], {"n": combined}


@FUZZ
@given(generated_rules())
def test_p1_3_4_fuzz_generated_rule_files_decide_like_plain_python(case: dict[str, Any]) -> None:
    rule_file, errors = check_rule_file(case["text"], "generated.yaml", VOCABULARY, "generated")
    assert rule_file is not None, [str(e) for e in errors]
    evaluations = _FUZZ_RUNTIME.evaluate_many(rule_file, case["facts"])
    single = _FUZZ_RUNTIME.evaluate(rule_file, case["facts"][0])
    assert single.rules == evaluations[0].rules
    for facts, evaluation in zip(case["facts"], evaluations, strict=True):
        rules, outputs = _oracle(case, facts)
        assert evaluation.rules == rules, (facts, case["text"])
        assert dict(evaluation.outputs) == outputs, (facts, case["text"])


# -- the service: hot reload, two processes, files in instance/rules ------------------------


def _versioned(k: int) -> tuple[str, int]:
    """Version ``k`` of the policy: the salesperson meal limit alternates around 150."""
    limit = 120 if k % 2 else 180
    text = with_meal_limit(str(limit))
    text = edit(
        text, 'reason: "Meal over the limit"', f'reason: "Meal over the limit {limit} (k{k})"'
    )
    return text, limit


MEAL_150 = claim(category="meal", amount=150)


def test_p1_3_4_hot_reload_under_concurrent_requests(make_app: Any) -> None:
    from portal.extensions import db
    from portal.rules.service import evaluate, rules

    app = make_app(RULES_REFRESH_SECONDS=0)
    published: dict[int, tuple[str, int, int]] = {}  # version -> (sha, limit, k)

    def publish(k: int) -> None:
        text, limit = _versioned(k)
        with app.app_context():
            row = rules().publish("expenses", text, "cli", note=f"k{k}", write_file=False)
            published[row.version] = (row.sha, limit, k)

    publish(0)
    seen_by_thread: list[list[Any]] = [[] for _ in range(4)]
    failures: list[str] = []
    stop = threading.Event()

    def request_loop(seen: list[Any]) -> None:
        while not stop.is_set():
            with app.app_context():  # one "request"
                try:
                    evaluation = evaluate("expenses", MEAL_150)
                except Exception as error:  # noqa: BLE001 - any error fails the test below
                    failures.append(repr(error))
                    return
                finally:
                    db.session.remove()
            seen.append(
                (
                    evaluation.version,
                    evaluation.sha,
                    evaluation.rules,
                    dict(evaluation.outputs),
                    {(d.version, d.sha) for d in evaluation.decisions},
                )
            )

    threads = [threading.Thread(target=request_loop, args=(seen,)) for seen in seen_by_thread]
    for thread in threads:
        thread.start()
    try:
        for k in range(1, 13):
            time.sleep(0.06)
            publish(k)
        time.sleep(0.3)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert failures == []
    seen = [observation for thread_seen in seen_by_thread for observation in thread_seen]
    assert len(seen) > 50
    for thread_seen in seen_by_thread:  # a worker never goes back to an older version
        versions = [observation[0] for observation in thread_seen]
        assert versions == sorted(versions)
    versions_seen = set()
    for version, sha, fired, outputs, from_decisions in seen:
        assert version in published, version
        expected_sha, limit, k = published[version]
        assert sha == expected_sha  # the version and the content agree
        assert from_decisions <= {(version, sha)}  # and every decision says the same
        if limit < 150:
            assert fired == ["meal-over-limit#1"]
            assert outputs["reason"] == f"Meal over the limit {limit} (k{k})"
        else:
            assert fired == ["within-limits"] and outputs["decision"] == "approve"
        versions_seen.add(version)
    assert len(versions_seen) >= 3  # versions really changed under the threads
    with app.app_context():
        assert evaluate("expenses", MEAL_150).version == max(published)


def test_p1_3_4_a_slow_refresh_never_swaps_an_older_version_back_in(
    make_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request that read the version list just before a publish must not put the older
    version back after the publish swapped the newer one in."""
    from portal.rules.service import evaluate, rules

    app = make_app(RULES_REFRESH_SECONDS=60, RULES_WATCH_FILES=False)
    with app.app_context():
        service = rules()
        first = service.publish("expenses", _versioned(0)[0], "cli", write_file=False)
    original = service._latest_published
    has_read, go_on = threading.Event(), threading.Event()
    slow_thread: list[int] = []

    def slow_latest() -> dict[str, int]:
        latest = original()
        if threading.get_ident() in slow_thread:
            has_read.set()
            go_on.wait(timeout=5)
        return latest

    monkeypatch.setattr(service, "_latest_published", slow_latest)

    def slow_request() -> None:
        slow_thread.append(threading.get_ident())
        with app.app_context():
            service.refresh(force=True, files=False)

    request = threading.Thread(target=slow_request)
    request.start()
    assert has_read.wait(timeout=5)
    threading.Timer(0.3, go_on.set).start()  # the slow request finishes while we publish
    with app.app_context():
        second = service.publish("expenses", _versioned(1)[0], "cli", write_file=False)
    request.join(timeout=10)
    with app.app_context():
        assert service.active("expenses").version == second.version > first.version
        assert evaluate("expenses", MEAL_150).rules == ["meal-over-limit#1"]


WORKER = """
import json, sys, time
from portal import create_app
from portal.extensions import db
from portal.rules.service import rules

app = create_app({"TESTING": True, "INSTANCE_PATH": sys.argv[1]})
facts = json.loads(sys.argv[2])
deadline = time.monotonic() + float(sys.argv[3])
while time.monotonic() < deadline:
    with app.app_context():
        try:
            evaluation = rules().evaluate("expenses", facts)
            seen = {"version": evaluation.version, "rules": evaluation.rules}
            print(json.dumps(seen), flush=True)
        except Exception as error:
            print(json.dumps({"error": repr(error)}), flush=True)
        finally:
            db.session.remove()
    time.sleep(0.05)
"""


def test_p1_3_4_two_worker_processes_converge_on_a_new_version(
    make_app: Any, portal_database: str, tmp_path: Path
) -> None:
    from portal.rules.service import rules

    app = make_app()
    with app.app_context():
        first = rules().publish("expenses", _versioned(0)[0], "cli", write_file=False).version
    script = tmp_path / "worker.py"
    script.write_text(WORKER, encoding="utf-8")
    (tmp_path / "worker-instance").mkdir()
    env = {
        **os.environ,
        "PORTAL_DATABASE_URL": portal_database,
        "PORTAL_SECRET_KEY": "worker-secret",
        "PORTAL_RULES_REFRESH_SECONDS": "1",
        "PORTAL_QUIET_MIGRATIONS": "1",
    }
    env.pop("PORTAL_PLUGINS", None)
    stderr = (tmp_path / "worker.err").open("w")
    worker = subprocess.Popen(
        [
            sys.executable,
            str(script),
            str(tmp_path / "worker-instance"),
            json.dumps(MEAL_150),
            "60",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )
    lines: queue.Queue[dict[str, Any]] = queue.Queue()

    def read() -> None:
        assert worker.stdout is not None
        for line in worker.stdout:
            try:
                lines.put(json.loads(line))
            except ValueError:
                lines.put({"other output": line})

    threading.Thread(target=read, daemon=True).start()

    def wait_for(version: int, seconds: float) -> dict[str, Any]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                seen = lines.get(timeout=0.2)
            except queue.Empty:
                assert worker.poll() is None, (tmp_path / "worker.err").read_text()
                continue
            assert "error" not in seen, seen
            if seen.get("version") == version:
                return seen
        raise AssertionError(f"the worker never served version {version}")

    try:
        assert wait_for(first, 60)["rules"] == ["within-limits"]  # limit 180
        with app.app_context():
            second = rules().publish("expenses", _versioned(1)[0], "cli", write_file=False)
        published_at = time.monotonic()
        seen = wait_for(second.version, 10)
        assert time.monotonic() - published_at < 5
        assert seen["rules"] == ["meal-over-limit#1"]  # limit 120
    finally:
        worker.kill()
        worker.wait(timeout=10)
        stderr.close()


def _poll(app: Any, until: Any, seconds: float = 15) -> Evaluation:
    """Evaluate the meal claim, request after request, until ``until(evaluation)``."""
    from portal.extensions import db
    from portal.rules.service import evaluate

    deadline = time.monotonic() + seconds
    while True:
        with app.app_context():
            evaluation = evaluate("expenses", MEAL_200)
            db.session.remove()
        if until(evaluation) or time.monotonic() > deadline:
            return evaluation
        time.sleep(0.2)


MEAL_200 = claim(category="meal", amount=200)


def test_p1_3_4_an_edited_threshold_in_instance_rules_applies_without_restart(
    make_app: Any, tmp_path: Path
) -> None:
    from portal.extensions import db
    from portal.rules.models import RulesetStatus
    from portal.rules.service import evaluate

    company = tmp_path / "company-rules"
    company.mkdir()
    app = make_app(RULES_INSTANCE_DIR=str(company), RULES_REFRESH_SECONDS=0)
    runner = app.test_cli_runner()
    with app.app_context():
        before = evaluate("expenses", MEAL_200)
    assert before.rules == ["meal-over-limit#1"] and before.outputs["decision"] == "escalate"

    (company / "expenses.yaml").write_text(with_meal_limit("250"), encoding="utf-8")
    after = _poll(app, lambda e: e.rules != before.rules)
    assert after.rules == ["within-limits"] and after.outputs["decision"] == "approve"
    assert after.version == before.version + 1
    history = runner.invoke(args=["rules", "history", "expenses"])
    assert history.exit_code == 0, history.output
    newest, oldest = history.output.splitlines()[:2]
    assert newest.startswith(f"v{after.version} ") and " instance " in newest
    assert oldest.startswith(f"v{before.version} ") and " default " in oldest

    # An edit that breaks one of the file's own tests is not published.
    broken = edit(with_meal_limit("250"), "- [salesperson, 1, 500]", "- [salesperson, 1, 600]")
    (company / "expenses.yaml").write_text(broken, encoding="utf-8")

    def reported(_: Evaluation) -> bool:
        with app.app_context():
            status = db.session.get(RulesetStatus, "expenses")
            return status is not None and bool(status.last_error)

    still = _poll(app, reported)
    assert reported(still), "the broken file was never reported"
    assert (still.version, still.sha, still.rules) == (after.version, after.sha, after.rules)
    with app.app_context():
        status = db.session.get(RulesetStatus, "expenses")
        assert "salesperson hotel over the first-tier limit" in status.last_error
        assert "expected rule hotel-over-limit" in status.last_error
    assert len(runner.invoke(args=["rules", "history", "expenses"]).output.splitlines()) == 2


# -- the CLI ----------------------------------------------------------------------------


@pytest.fixture
def cli_app(make_app: Any, tmp_path: Path) -> Any:
    company = tmp_path / "company-rules"
    company.mkdir()
    return make_app(RULES_INSTANCE_DIR=str(company), RULES_REFRESH_SECONDS=0)


def _write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(exist_ok=True)
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def test_p1_3_4_cli_check_prints_located_errors(cli_app: Any, tmp_path: Path) -> None:
    runner = cli_app.test_cli_runner()
    good = _write(tmp_path / "good", "expenses.yaml", EXPENSES)
    result = runner.invoke(args=["rules", "check", str(good)])
    assert result.exit_code == 0, result.output
    assert f"{good}: ok ({EXPENSES_CASES} tests)" in result.output

    text = LOCATED[0][1]
    broken = _write(tmp_path / "broken", "expenses.yaml", text)
    result = runner.invoke(args=["rules", "check", str(broken)])
    assert result.exit_code != 0
    line, column = where(text, "has_recipt")
    assert f"{broken}:{line}:{column}: unknown input 'has_recipt'" in result.output.splitlines()[0]
    for output_line in result.output.splitlines():
        assert re.match(r"^.+:\d+:\d+: .+$", output_line), output_line

    failing_text = _variant("- [salesperson, 1, 500]", "- [salesperson, 1, 600]")
    failing = _write(tmp_path / "failing", "expenses.yaml", failing_text)
    result = runner.invoke(args=["rules", "check", str(failing)])
    assert result.exit_code != 0
    line = where(failing_text, "- name: salesperson hotel over the first-tier")[0]
    assert result.output.startswith(
        f"{failing}:{line}:1: test 'salesperson hotel over the first-tier limit' failed"
    )


def test_p1_3_4_cli_test_prints_the_summary_line(cli_app: Any, tmp_path: Path) -> None:
    runner = cli_app.test_cli_runner()
    result = runner.invoke(args=["rules", "test"])
    assert re.fullmatch(r"\d+ passed, \d+ failed", result.output.splitlines()[-1]), result.output
    result = runner.invoke(args=["rules", "test", "expenses"])
    assert result.exit_code == 0
    assert result.output.splitlines()[-1] == f"{EXPENSES_CASES} passed, 0 failed"

    company = Path(cli_app.config["RULES_INSTANCE_DIR"])
    _write(company, "expenses.yaml", _variant("- [salesperson, 1, 500]", "- [salesperson, 1, 600]"))
    result = runner.invoke(args=["rules", "test", "expenses"])
    assert result.exit_code != 0
    assert result.output.splitlines()[-1] == f"{EXPENSES_CASES - 1} passed, 1 failed"
    assert "FAIL expenses: salesperson hotel over the first-tier limit" in result.output
    assert runner.invoke(args=["rules", "test", "no_such_rules"]).exit_code != 0


def test_p6_4_cli_eval_reads_json_and_prints_json(cli_app: Any) -> None:
    runner = cli_app.test_cli_runner()
    result = runner.invoke(
        args=["rules", "eval", "expenses", "--facts", "-"],
        input=json.dumps(claim(category="hotel", amount="401", city_tier=2)),
    )
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert answer["ruleset"] == "expenses" and answer["version"] == 1
    assert [(d["rule"], d["row"]) for d in answer["decisions"]] == [("hotel-over-limit", 2)]
    assert answer["outputs"]["decision"] == "escalate"

    bad_json = runner.invoke(args=["rules", "eval", "expenses", "--facts", "-"], input="{nope")
    assert bad_json.exit_code != 0
    assert "the facts are not JSON" in bad_json.output

    bad_facts = runner.invoke(
        args=["rules", "eval", "expenses", "--facts", "-"],
        input=json.dumps(claim(amount="lots", has_receipt="yes")),
    )
    assert bad_facts.exit_code == 2
    error = json.loads(bad_facts.output)["error"]
    assert error["code"] == "invalid_facts" and set(error["fields"]) == {"amount", "has_receipt"}

    unknown = runner.invoke(args=["rules", "eval", "nothing", "--facts", "-"], input="{}")
    assert unknown.exit_code != 0 and "no ruleset named 'nothing'" in unknown.output
    missing = runner.invoke(args=["rules", "eval", "expenses", "--facts", "/no/such/file.json"])
    assert missing.exit_code != 0 and "cannot read" in missing.output


def test_p1_3_4_cli_publish_history_and_diff(cli_app: Any, tmp_path: Path) -> None:
    runner = cli_app.test_cli_runner()
    assert "uses the default unchanged" in runner.invoke(args=["rules", "diff", "expenses"]).output
    synced = runner.invoke(args=["rules", "publish"])  # the files on disk
    assert synced.exit_code == 0 and "expenses: published" in synced.output, synced.output
    again = runner.invoke(args=["rules", "publish"])
    assert "expenses" not in again.output  # nothing changed since
    draft = _write(tmp_path / "drafts", "meal.yaml", with_meal_limit("250"))

    result = runner.invoke(
        args=["rules", "publish", "expenses", "--file", str(draft), "--note", "meals up"]
    )
    assert result.exit_code == 0, result.output
    assert re.match(r"^expenses: published version 2 \([0-9a-f]{12}\)$", result.output.strip())

    history = runner.invoke(args=["rules", "history", "expenses"])
    assert history.exit_code == 0
    newest, oldest = history.output.splitlines()
    assert newest.startswith("v2 ") and " cli " in newest and newest.endswith("meals up")
    assert oldest.startswith("v1 ") and " default " in oldest

    diff = runner.invoke(args=["rules", "diff", "expenses"])
    assert diff.exit_code == 0
    assert "-      rows: [[salesperson, 150]," in diff.output
    assert "+      rows: [[salesperson, 250]," in diff.output

    with cli_app.app_context():
        from portal.rules.service import evaluate

        assert evaluate("expenses", MEAL_200).rules == ["within-limits"]

    broken = _write(tmp_path / "drafts", "broken.yaml", LOCATED[0][1])
    refused = runner.invoke(args=["rules", "publish", "expenses", "--file", str(broken)])
    assert refused.exit_code != 0 and "not published" in refused.output
    assert "unknown input 'has_recipt'" in refused.output
    assert len(runner.invoke(args=["rules", "history", "expenses"]).output.splitlines()) == 2
    assert runner.invoke(args=["rules", "history", "nothing"]).exit_code != 0


def test_p6_4_cli_simulate_counts_changed_decisions(cli_app: Any, tmp_path: Path) -> None:
    from portal.extensions import db
    from portal.rules.service import rules

    amounts = list(range(100, 301, 5))  # salesperson meals from 100 to 300 yuan
    with cli_app.app_context():
        service = rules()
        for number, amount in enumerate(amounts):
            service.evaluate(
                "expenses", claim(category="meal", amount=amount), ("expense_line", number)
            )
        # A later decision about the same line replaces its inputs in the simulation.
        service.evaluate("expenses", claim(category="meal", amount=500), ("expense_line", 0))
        db.session.commit()
    amounts[0] = 500
    changed = sum(150 < amount <= 250 for amount in amounts)

    draft = _write(tmp_path / "drafts", "expenses.yaml", with_meal_limit("250"))
    since = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%d")
    runner = cli_app.test_cli_runner()
    result = runner.invoke(
        args=["rules", "simulate", "expenses", "--draft", str(draft), "--since", since]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == (
        f"{len(amounts)} records, {changed} would change, "
        f"{len(amounts) - changed} unchanged, 0 with inputs the draft refuses"
    )
    assert lines[1].split() == [str(changed), "meal-over-limit#1", "→", "within-limits"]
    example = json.loads(lines[2])
    assert example["before"]["rules"] == "meal-over-limit#1"
    assert example["after"]["rules"] == "within-limits"

    tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%d")
    later = runner.invoke(
        args=["rules", "simulate", "expenses", "--draft", str(draft), "--since", tomorrow]
    )
    assert later.output.startswith("0 records, 0 would change")
    bad_date = runner.invoke(
        args=["rules", "simulate", "expenses", "--draft", str(draft), "--since", "last week"]
    )
    assert bad_date.exit_code != 0
