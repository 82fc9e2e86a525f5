"""P1.3.4: admins may check and simulate as many drafts as they like; the web worker's
memory does not pay for it (drafts run in a scratch process that is recycled)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psutil

from portal.rules import scratch
from portal.rules.service import rules

EXPENSES = (Path(__file__).resolve().parent.parent / "rules" / "expenses.yaml").read_text()


def _draft(limit: int) -> str:
    return EXPENSES.replace("rows: [[salesperson, 150]", f"rows: [[salesperson, {limit}]")


def test_p1_3_4_drafts_are_checked_outside_the_worker(app: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(scratch, "RECYCLE_AFTER", 10)
    with app.app_context():
        service = rules()
        service.refresh(force=True)
        registered = service.runtime.registered_count
        worker = psutil.Process()
        before = worker.memory_info().rss
        for limit in range(151, 181):  # 30 distinct drafts, three scratch processes
            check = service.check(_draft(limit), name="expenses")
            assert check.rule_file is not None and check.results
        grown = (worker.memory_info().rss - before) / 2**20
        assert service.runtime.registered_count == registered
        assert grown < 10, f"the worker grew {grown:.1f} MiB for 30 drafts"
        # A draft that breaks a test is still reported, from the scratch process.
        broken = EXPENSES.replace(
            "expect: {rule: receipt-required, decision: reject}",
            "expect: {rule: receipt-required, decision: approve}",
        )
        assert service.check(broken, name="expenses").failures
