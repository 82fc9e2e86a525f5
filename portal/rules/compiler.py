"""From a validated ``RuleFile`` to a durable_rules ruleset.

Each rule (or table row) becomes one durable rule whose action name carries the
branch's index, so the engine tells us *which* branch fired and everything else (the
outputs, the source line) comes from our own side table. Every rule also tests a marker
unique to this version, so the engine's own state objects can never match a rule, and
a catch-all rule with the lowest priority makes "nothing matched" an answer instead of
an exception (which would also abort a whole batch).
"""

from __future__ import annotations

from typing import Any

from .model import Branch, Condition, RuleFile

NOTHING = "none"
_OPERATORS = {"gt": "$gt", "gte": "$gte", "lt": "$lt", "lte": "$lte", "ne": "$neq"}


def engine_name(rule_file: RuleFile) -> str:
    """The name registered in durable_rules: unique per content, never reused."""
    return f"{rule_file.name}__{rule_file.sha[:16]}"


def _condition(condition: Condition) -> dict[str, Any]:
    operand: Any = {"$m": condition.ref} if condition.ref else condition.value
    if condition.op == "eq":
        return {condition.field: operand}
    if condition.op == "in":
        return {"$or": [{condition.field: value} for value in condition.value]}
    if condition.op == "not_in":
        return {"$and": [{"$neq": {condition.field: value}} for value in condition.value]}
    return {_OPERATORS[condition.op]: {condition.field: operand}}


def _branch_expression(marker: str, branch: Branch) -> dict[str, Any]:
    terms: list[dict[str, Any]] = [{"t": marker}]
    terms += [_condition(condition) for condition in branch.conditions]
    if branch.any_of:
        groups = [
            {"$and": [{"t": marker}, *[_condition(c) for c in group]]} for group in branch.any_of
        ]
        terms.append({"$or": groups})
    return {"$and": terms}


def compile_ruleset(rule_file: RuleFile) -> dict[str, Any]:
    """The durable_rules JSON for ``rule_file`` (a fresh dict: durable mutates it)."""
    marker = engine_name(rule_file)
    rules: dict[str, Any] = {}
    for branch in rule_file.branches:
        rules[f"b{branch.index}"] = {
            "all": [{"m": _branch_expression(marker, branch)}],
            "pri": branch.index + 1,
            "run": f"emit:{branch.index}",
        }
    rules[NOTHING] = {
        "all": [{"m": {"t": marker}}],
        "pri": len(rule_file.branches) + 1000,
        "run": f"emit:{NOTHING}",
    }
    return {marker: rules}
