"""Running a rule file's own test cases (on save, on publish, in CI and in pytest)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask_babel import gettext as _

from .engine import RuleInputError, Runtime, normalize_facts
from .model import RuleFile, TestCase


@dataclass(frozen=True)
class CaseResult:
    """One test case's outcome; ``problem`` says what differed."""

    case: TestCase
    passed: bool
    problem: str = ""
    rules: tuple[str, ...] = ()


def _same(expected: Any, actual: Any) -> bool:
    if isinstance(actual, tuple):  # frozen list outputs
        actual = list(actual)
    if isinstance(expected, int | float) and isinstance(actual, int | float | str):
        try:
            return float(expected) == float(actual)
        except ValueError:
            return False
    if isinstance(expected, int | float) and isinstance(actual, str):
        return str(expected) == actual
    return expected == actual or str(expected) == str(actual)


def run_case(runtime: Runtime, rule_file: RuleFile, case: TestCase) -> CaseResult:
    """Evaluate one case and compare the rule(s) that fired and the outputs."""
    try:
        evaluation = runtime.evaluate(rule_file, case.given)
    except RuleInputError as error:
        return CaseResult(case, False, _("the inputs do not fit: %(problem)s", problem=error))
    return judge(rule_file, case, evaluation)


def judge(rule_file: RuleFile, case: TestCase, evaluation: Any) -> CaseResult:
    """Compare an evaluation with what the case expects."""
    fired = [decision.rule for decision in evaluation.decisions]
    labels = tuple(decision.label for decision in evaluation.decisions)
    problems = []
    if "rule" in case.expect:
        expected = case.expect["rule"]
        if rule_file.hit_policy == "first" or not isinstance(expected, list):
            wanted = None if expected in (None, "none") else expected
            actual = fired[0] if fired else None
            if wanted != actual:
                problems.append(
                    _("expected rule %(a)s, got %(b)s", a=wanted or "none", b=actual or "none")
                )
        elif sorted(expected) != sorted(fired):
            problems.append(
                _(
                    "expected rules %(a)s, got %(b)s",
                    a=", ".join(expected) or "none",
                    b=", ".join(fired) or "none",
                )
            )
    for name, expected in case.expect.items():
        if name == "rule":
            continue
        actual = evaluation.outputs.get(name)
        if not _same(expected, actual):
            problems.append(
                _("expected %(name)s = %(a)s, got %(b)s", name=name, a=expected, b=actual)
            )
    return CaseResult(case, not problems, "; ".join(problems), labels)


def run_cases(runtime: Runtime, rule_file: RuleFile) -> list[CaseResult]:
    """Every test case of the file, evaluated in one engine call."""
    results: dict[int, CaseResult] = {}
    runnable: list[int] = []
    for index, case in enumerate(rule_file.tests):
        try:
            normalize_facts(rule_file, case.given)
            runnable.append(index)
        except RuleInputError as error:
            results[index] = CaseResult(
                case, False, _("the inputs do not fit: %(problem)s", problem=error)
            )
    evaluations = runtime.evaluate_many(rule_file, [rule_file.tests[i].given for i in runnable])
    for index, evaluation in zip(runnable, evaluations, strict=True):
        results[index] = judge(rule_file, rule_file.tests[index], evaluation)
    return [results[index] for index in range(len(rule_file.tests))]
