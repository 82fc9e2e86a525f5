"""P7.3 contract review: rule actions declared by plugins (here the core's ``block`` and
``flag``) run when a caller applies a decision; their effects are real and never lost."""

from __future__ import annotations

from typing import Any

import pytest

from portal.rules.service import RuleBlocked, apply_actions, rules

SAFE = {
    "contract_amount": 80_000,
    "payment_terms_days": 30,
    "non_standard_clauses": False,
    "credit_risk": "low",
}


def test_p7_3_flag_attaches_a_warning_to_the_record(app: Any) -> None:
    with app.test_request_context():
        evaluation = rules().evaluate("contract_review", {**SAFE, "new_customer": True})
        context = apply_actions(evaluation, {})
    assert any("New customer" in flag["message"] for flag in context["flags"])
    assert {flag["rule"] for flag in context["flags"]} <= set(evaluation.rules)


def test_p7_3_block_refuses_the_change_with_the_rules_message(app: Any) -> None:
    with app.test_request_context():
        evaluation = rules().evaluate(
            "contract_review", {**SAFE, "new_customer": False, "credit_risk": "high"}
        )
        with pytest.raises(RuleBlocked, match="High credit risk"):
            apply_actions(evaluation, {})


def test_p7_3_decisions_that_change_a_record_are_stored_and_explained(app: Any) -> None:
    from portal.extensions import db

    with app.test_request_context():
        service = rules()
        evaluation = service.evaluate(
            "contract_review", {**SAFE, "new_customer": True}, subject=("sales_contract", 42)
        )
        db.session.commit()
        stored = service.explain("sales_contract", 42)
        assert [d.rule for d in stored] == [
            d.rule for d in reversed(evaluation.decisions)
        ] or sorted(d.rule for d in stored) == sorted(d.rule for d in evaluation.decisions)
        assert stored[0].version_id is not None and stored[0].clause == "P7.3"
        assert stored[0].inputs["contract_amount"] == 80_000
