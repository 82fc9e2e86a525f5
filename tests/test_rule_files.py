"""The shipped rule files (``rules/*.yaml``, the default policy, P1.3.4): each one is
valid, cites a clause of the policy, has a Chinese title, and every one of its own test
cases runs here as a pytest case of its own (``expenses::no receipt above ...``), so CI
fails on exactly the case that broke. Every rule of a file must be exercised by at
least one of its cases.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from portal.rules.cases import run_case
from portal.rules.engine import Runtime
from portal.rules.model import RuleFile
from portal.rules.source import parse
from portal.rules.validate import Vocabulary, check_rule_file

ROOT = Path(__file__).resolve().parent.parent
RULES_DIR = ROOT / "rules"
RULE_FILES = sorted(RULES_DIR.glob("*.yaml"))
# The policy text lives beside the repository (../shared/policy/POLICY.md).
POLICY = ROOT.parent / "shared" / "policy" / "POLICY.md"
CLAUSE = re.compile(r"\bP[1-9][0-9]*(?:\.[0-9]+)*\b")
CJK = re.compile(r"[\u4e00-\u9fff]")


RUNTIME = Runtime()  # one engine for the module; every version registers once


def _case_params() -> Iterator[Any]:
    """(file, case index) for every test case of every shipped file, read at collection
    time without the vocabulary (validation happens in the test itself)."""
    for path in RULE_FILES:
        data = parse(path.read_text(encoding="utf-8")).data
        tests = data.get("tests") if isinstance(data, dict) else None
        for index, case in enumerate(tests if isinstance(tests, list) else []):
            name = case.get("name") if isinstance(case, dict) else None
            yield pytest.param(path, index, id=f"{path.stem}::{name or f'test {index + 1}'}")


def _file_params(marks: dict[str, str] | None = None) -> list[Any]:
    marks = marks or {}
    return [
        pytest.param(
            path,
            id=path.stem,
            marks=[pytest.mark.xfail(strict=True, reason=marks[path.stem])]
            if path.stem in marks
            else [],
        )
        for path in RULE_FILES
    ]


@pytest.fixture(scope="module")
def vocabulary(portal_database: str, tmp_path_factory: pytest.TempPathFactory) -> Vocabulary:
    """The actions and fact providers the installed plugins declare (core: flag, block)."""
    from portal import create_app
    from portal.testing import base_config

    app = create_app(base_config(portal_database, tmp_path_factory.mktemp("instance")))
    state = app.extensions["portal"]
    return Vocabulary(actions=dict(state.rule_actions), fact_providers=dict(state.fact_providers))


@pytest.fixture(scope="module")
def loaded(vocabulary: Vocabulary) -> dict[Path, RuleFile]:
    """Each shipped file validated once; a file with errors is left out (its own test
    reports them)."""
    result = {}
    for path in RULE_FILES:
        rule_file, _errors = check_rule_file(
            path.read_text(encoding="utf-8"), str(path), vocabulary, expected_name=path.stem
        )
        if rule_file is not None:
            result[path] = rule_file
    return result


def test_p1_3_4_rules_are_shipped_for_every_area() -> None:
    names = {path.stem for path in RULE_FILES}
    expected = {
        "expenses",
        "attendance",
        "attendance_monthly",
        "leave_approval",
        "credit_risk",
        "rewards",
        "discount_approval",
        "complaint_sla",
        "follow_up",
        "contract_review",
    }
    assert expected <= names, f"missing: {sorted(expected - names)}"


@pytest.mark.parametrize("path", _file_params())
def test_p1_3_4_shipped_rule_file_is_valid(path: Path, vocabulary: Vocabulary) -> None:
    rule_file, errors = check_rule_file(
        path.read_text(encoding="utf-8"), str(path), vocabulary, expected_name=path.stem
    )
    assert not errors, "\n".join(map(str, errors))
    assert rule_file is not None
    assert len(rule_file.tests) >= 4, f"{path.name} has only {len(rule_file.tests)} test cases"
    assert rule_file.description.strip(), f"{path.name} has no description"


@pytest.mark.parametrize(("path", "index"), list(_case_params()))
def test_p1_3_4_rule_file_case(path: Path, index: int, loaded: dict[Path, RuleFile]) -> None:
    rule_file = loaded.get(path)
    assert rule_file is not None, f"{path.name} does not validate"
    case = rule_file.tests[index]
    result = run_case(RUNTIME, rule_file, case)
    assert result.passed, (
        f"{path.name}:{case.line} ({rule_file.clause}) '{case.name}': {result.problem} "
        f"(fired: {', '.join(result.rules) or 'none'})"
    )


@pytest.mark.parametrize("path", _file_params())
def test_p1_3_4_rule_file_cites_a_clause_of_the_policy(
    path: Path, loaded: dict[Path, RuleFile]
) -> None:
    rule_file = loaded.get(path)
    assert rule_file is not None, f"{path.name} does not validate"
    cited = CLAUSE.findall(rule_file.clause)
    assert cited, f"{path.name}: clause '{rule_file.clause}' is not a clause id like P6.4"
    if not POLICY.exists():
        pytest.skip(f"the policy text is not at {POLICY}")
    known = set(CLAUSE.findall(POLICY.read_text(encoding="utf-8")))
    assert set(cited) <= known, f"{path.name} cites {sorted(set(cited) - known)}, not in the policy"


@pytest.mark.parametrize("path", _file_params())
def test_p1_3_4_rule_file_has_a_chinese_title(path: Path, loaded: dict[Path, RuleFile]) -> None:
    rule_file = loaded.get(path)
    assert rule_file is not None, f"{path.name} does not validate"
    assert rule_file.title.get("en"), f"{path.name} has no English title"
    assert CJK.search(rule_file.title.get("zh_CN", "")), f"{path.name} has no zh_CN title"


@pytest.mark.parametrize("path", _file_params())
def test_p1_3_4_every_rule_is_exercised_by_a_case(path: Path, loaded: dict[Path, RuleFile]) -> None:
    rule_file = loaded.get(path)
    assert rule_file is not None, f"{path.name} does not validate"
    evaluations = RUNTIME.evaluate_many(rule_file, [case.given for case in rule_file.tests])
    fired = {decision.rule for evaluation in evaluations for decision in evaluation.decisions}
    missing = [rule_id for rule_id in rule_file.rule_ids if rule_id not in fired]
    assert not missing, f"{path.name}: no test case fires {', '.join(missing)}"


@pytest.mark.parametrize("path", _file_params())
def test_p1_3_4_every_table_row_is_exercised_by_a_case(
    path: Path, loaded: dict[Path, RuleFile]
) -> None:
    """Each row of a table is its own limit (a role, a tier, a band): one case at least
    must reach it, or a typo in that row would go unnoticed."""
    rule_file = loaded.get(path)
    assert rule_file is not None, f"{path.name} does not validate"
    evaluations = RUNTIME.evaluate_many(rule_file, [case.given for case in rule_file.tests])
    fired = {decision.label for evaluation in evaluations for decision in evaluation.decisions}
    missing = [branch.label for branch in rule_file.branches if branch.label not in fired]
    assert not missing, f"{path.name}: no test case reaches {', '.join(missing)}"
