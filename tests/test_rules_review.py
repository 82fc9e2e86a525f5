"""Regressions found by review of the rules engine (P1.3.4: the rules themselves are
revised safely): each test would fail on the code before its fix."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import durable.engine
import pytest
import sqlalchemy as sa

from portal.extensions import db
from portal.org.models import OrgUnit
from portal.rules.engine import Runtime
from portal.rules.models import RulesetStatus, RuleVersion
from portal.rules.service import PublishRefused, rules
from portal.rules.validate import Vocabulary, check_rule_file

ROOT = Path(__file__).resolve().parent.parent
EXPENSES = (ROOT / "rules" / "expenses.yaml").read_text(encoding="utf-8")
CLAIM = {
    "category": "meal",
    "role": "salesperson",
    "city_tier": 1,
    "amount": 120,
    "has_receipt": True,
}


def _errors(text: str) -> list[str]:
    return [e.message for e in check_rule_file(text, "x.yaml", Vocabulary(), "x")[1]]


SMALL = """
ruleset: x
title: X
clause: P1.3.4
hit_policy: first
inputs:
  q: {type: number, scale: 1}
  r: {type: number, scale: 2}
outputs:
  hit: {type: bool}
parameters:
  p: {type: number, value: 100}
rules:
  - id: big
    when: {q: {gte: {param: p}}}
    then: {hit: true}
"""


def test_p1_3_4_a_parameter_is_compared_at_the_inputs_scale() -> None:
    rule_file, errors = check_rule_file(
        SMALL.replace("value: 100}", "value: 100, scale: 1}"), "x.yaml", Vocabulary(), "x"
    )
    assert errors == []
    runtime = Runtime()
    assert runtime.evaluate(rule_file, {"q": 100, "r": 1}).rules == ["big"]
    assert runtime.evaluate(rule_file, {"q": "99.9", "r": 1}).rules == []
    assert any("scale" in message for message in _errors(SMALL))  # scale 2 threshold, scale 1 input
    mixed = SMALL.replace("{q: {gte: {param: p}}}", "{q: {gt: {field: r}}}")
    assert any("same type and scale" in message for message in _errors(mixed))


@pytest.mark.parametrize(
    "bad,needle",
    [
        ("q: {type: number, scale: 1}", "q: {type: number, scale: 1, min: .nan}"),
        ("when: {q: {gte: {param: p}}}", "when: {any: []}"),
    ],
)
def test_p1_3_4_malformed_bounds_and_empty_groups_are_located_errors(bad: str, needle: str) -> None:
    text = SMALL.replace("value: 100}", "value: 100, scale: 1}").replace(bad, needle)
    assert _errors(text)


def test_p1_3_4_sids_are_never_handed_to_two_threads() -> None:
    from portal.rules.engine import _SidPool

    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for _ in range(20):
            pool, taken, lock = _SidPool(), [], threading.Lock()

            def grab(pool: Any = pool, taken: list[str] = taken, lock: Any = lock) -> None:
                sid = pool.take()
                with lock:
                    taken.append(sid)

            threads = [threading.Thread(target=grab) for _ in range(16)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert len(set(taken)) == len(taken)
    finally:
        sys.setswitchinterval(previous)


def test_p1_3_4_a_batch_the_engine_calls_a_clash_is_retried_in_halves(monkeypatch: Any) -> None:
    rule_file, _ = check_rule_file(EXPENSES, "expenses.yaml", Vocabulary(), "expenses")
    runtime = Runtime()
    expected = [e.rules for e in runtime.evaluate_many(rule_file, [CLAIM] * 8)]
    real = durable.engine.Host.post_batch
    calls = {"n": 0}

    def clashing(self: Any, name: str, messages: Any) -> Any:
        calls["n"] += 1
        if len(messages) > 2:
            raise durable.engine.MessageObservedException("a clash")
        return real(self, name, messages)

    monkeypatch.setattr(durable.engine.Host, "post_batch", clashing)
    claims = [{**CLAIM, "amount": 100 + n * 20} for n in range(8)]
    answers = runtime.evaluate_many(rule_file, claims)
    assert calls["n"] > 1 and len(answers) == 8
    assert [a.rules for a in answers][0] == expected[0]


def test_p1_3_4_a_file_the_engine_cannot_load_is_never_published(app: Any) -> None:
    groups = ", ".join(f"{{q: {n}}}" for n in range(14))
    text = SMALL.replace("value: 100}", "value: 100, scale: 1}").replace(
        "when: {q: {gte: {param: p}}}", f"when: {{any: [{groups}]}}"
    )
    with app.app_context():
        service = rules()
        check = service.check(text, name="x", draft=False)
        assert not check.ok and "durable_rules refused" in check.errors[0].message
        with pytest.raises(PublishRefused):
            service.publish("x", text, "cli")
        assert (
            db.session.scalar(
                sa.select(sa.func.count())
                .select_from(RuleVersion)
                .where(RuleVersion.ruleset == "x")
            )
            == 0
        )


def test_p1_3_4_picking_up_edited_files_never_touches_the_callers_work(
    make_app: Any, tmp_path: Path
) -> None:
    app = make_app(RULES_INSTANCE_DIR=str(tmp_path), RULES_REFRESH_SECONDS=0)
    with app.test_request_context():
        service = rules()
        service.refresh(force=True)
        db.session.add(OrgUnit(name="Pending", kind="team", path="/"))
        (tmp_path / "expenses.yaml").write_text(
            EXPENSES.replace('reason: "Large claim"', 'reason: "Large claim (edited)"')
        )
        service._files_checked_at = 0  # as if five seconds had passed
        service.refresh(force=True)
        assert service.active("expenses").version == 2  # the edited file is in force
        db.session.rollback()  # the caller changes its mind
        assert db.session.scalar(sa.select(sa.func.count()).select_from(OrgUnit)) == 0


def test_p1_3_4_a_caller_that_has_written_is_never_made_to_wait_for_a_file(
    make_app: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On SQLite the caller's flushed write holds the lock a publish in a second session
    needs: the file is looked at after the caller's transaction, not during it."""
    app = make_app(RULES_INSTANCE_DIR=str(tmp_path), RULES_REFRESH_SECONDS=0)
    with app.test_request_context():
        service = rules()
        service.refresh(force=True)
        db.session.add(OrgUnit(name="Written", kind="team", path="/"))
        db.session.flush()
        (tmp_path / "expenses.yaml").write_text(
            EXPENSES.replace('reason: "Large claim"', 'reason: "Large claim (edited)"')
        )
        service._files_checked_at = 0
        synced: list[int] = []
        sync_files = service.sync_files
        monkeypatch.setattr(service, "sync_files", lambda: synced.append(1) or sync_files())
        assert service.active("expenses").version == 1  # still the version in force
        assert synced == []  # no second session waiting on the caller's lock
        db.session.commit()
        service._files_checked_at = 0
        assert service.active("expenses").version == 2
        assert synced == [1]


def test_p1_3_4_a_new_file_first_read_after_a_write_is_read_from_the_file(
    make_app: Any, tmp_path: Path
) -> None:
    """A default added by an upgrade, first needed by a request that has already written:
    it is read from its file (version 0), and published by the next refresh."""
    defaults = tmp_path / "defaults"
    defaults.mkdir()
    app = make_app(
        RULES_DEFAULT_DIR=str(defaults),
        RULES_INSTANCE_DIR=str(tmp_path / "co"),
        RULES_REFRESH_SECONDS=0,
    )
    with app.test_request_context():
        service = rules()
        service.refresh(force=True)
        (defaults / "expenses.yaml").write_text(EXPENSES)  # the upgrade brings a new file
        db.session.add(OrgUnit(name="Written", kind="team", path="/"))
        db.session.flush()
        service._files_checked_at = 0
        active = service.active("expenses")
        assert (active.version, active.version_id) == (0, None)
        outputs = service.evaluate("expenses", CLAIM).outputs
        assert outputs, "the unpublished file still decides"
        db.session.commit()
        service._files_checked_at = 0
        assert service.active("expenses").version == 1


def test_p1_3_4_file_problems_are_reported_and_cleared(make_app: Any, tmp_path: Path) -> None:
    app = make_app(RULES_INSTANCE_DIR=str(tmp_path), RULES_REFRESH_SECONDS=0)
    with app.test_request_context():
        service = rules()
        service.refresh(force=True)
        (tmp_path / "expenses.yaml").write_bytes(EXPENSES.encode("utf-8") + b"\n# \xff\xfe\n")
        assert service.sync_files()["expenses"] == "refused"
        assert "utf-8" in db.session.get(RulesetStatus, "expenses").last_error.lower()
        (tmp_path / "expenses.yaml").write_text(EXPENSES)  # back to the version in force
        service.sync_files()
        assert db.session.get(RulesetStatus, "expenses").last_error == ""
    client = app.test_client()
    assert client.get("/login").status_code == 200


def test_p1_3_4_an_upgraded_default_is_picked_up_whatever_its_file_time(
    make_app: Any, tmp_path: Path
) -> None:
    defaults = tmp_path / "defaults"
    defaults.mkdir()
    (defaults / "expenses.yaml").write_text(EXPENSES)
    app = make_app(
        RULES_DEFAULT_DIR=str(defaults),
        RULES_INSTANCE_DIR=str(tmp_path / "co"),
        RULES_REFRESH_SECONDS=0,
    )
    with app.test_request_context():
        service = rules()
        service.sync_files()
        upgraded = defaults / "expenses.yaml"
        upgraded.write_text(
            EXPENSES.replace('reason: "Large claim"', 'reason: "Large claim (upgraded)"')
        )
        an_hour_ago = time.time() - 3600
        os.utime(upgraded, (an_hour_ago, an_hour_ago))  # copied with its old time stamp
        assert service.sync_files().get("expenses") == "published"


def test_p6_1_a_record_that_matches_nothing_still_keeps_its_latest_inputs(app: Any) -> None:
    from datetime import UTC, datetime, timedelta

    from portal.rules.simulate import simulate

    monthly = (ROOT / "rules" / "attendance_monthly.yaml").read_text(encoding="utf-8")
    with app.test_request_context():
        service = rules()
        facts = {
            "late_count_month": 4,
            "early_leave_count_month": 0,
            "missed_punch_count_month": 0,
            "absent_days_month": 0,
            "longest_absence_streak": 0,
        }
        service.evaluate("attendance_monthly", facts, subject=("person", 1))
        quiet = {**facts, "late_count_month": 1}
        later = service.evaluate("attendance_monthly", quiet, subject=("person", 1))
        db.session.commit()
        assert later.decisions == ()
        latest = service.explain("person", 1)[0]
        assert latest.rule == "" and latest.inputs["late_count_month"] == 1
        # A draft that talks after one late arrival changes this record.
        draft_text = monthly.replace(
            "late_talk_count: {type: int, value: 3", "late_talk_count: {type: int, value: 1"
        )
        assert draft_text != monthly
        draft = service.check(draft_text, name="attendance_monthly", run_tests=False).rule_file
        assert draft is not None
        result = simulate(
            service, "attendance_monthly", draft, datetime.now(UTC) - timedelta(days=1)
        )
        assert result.total == 1 and result.changed == 1
