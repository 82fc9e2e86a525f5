"""Complaint deadlines and escalation (P3.5.2) from rules/complaint_sla.yaml, the SLA
sweep, and the after-sales trends. Frozen clock: every call passes ``now``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from plugins.sales import aftersales
from plugins.sales.models import Customer, Feedback
from portal.audit.recorder import acting_as
from portal.auth.models import User
from portal.extensions import db
from portal.loops.models import LoopItem, Notification
from portal.models import as_utc
from portal.rules.models import RuleDecision
from portal.rules.service import rules

T0 = datetime(2030, 3, 12, 2, 0, tzinfo=UTC)  # a Tuesday, 10:00 in Shanghai
HOUR = timedelta(hours=1)


@pytest.fixture
def chain(make_person: Any, make_unit: Any, app: Any) -> dict[str, int]:
    """group (gm, a manager) > sales (head, a manager) > East (sup) > Shanghai: seller.
    The leaders sit in the units they lead, as in the demo."""
    ids: dict[str, int] = {}
    ids["gm"] = make_person("gm", roles=["manager"])
    ids["group"] = make_unit("Group", "company", leader=ids["gm"])
    ids["head"] = make_person("head", roles=["manager"])
    ids["sales"] = make_unit("Sales", "product_line", parent=ids["group"], leader=ids["head"])
    ids["sup"] = make_person("sup", roles=["supervisor"])
    ids["east"] = make_unit("East", "region", parent=ids["sales"], leader=ids["sup"])
    ids["team"] = make_unit("Shanghai", "team", parent=ids["east"])
    ids["seller"] = make_person("seller", roles=["salesperson"], unit=ids["team"])
    ids["other"] = make_person("other", roles=["salesperson"], unit=ids["team"])
    with app.app_context():
        for name, unit in (("gm", "group"), ("head", "sales"), ("sup", "east")):
            db.session.get(User, ids[name]).unit_id = ids[unit]
        db.session.commit()
    return ids


def make_customer(app: Any, owner: int | None, name: str = "Hangzhou Pumps Ltd") -> int:
    with app.app_context(), acting_as("test"):
        customer = Customer(name=name, name_key=name.lower(), owner_id=owner, stage="customer")
        db.session.add(customer)
        db.session.commit()
        return customer.id


def log(app: Any, actor: int, customer: int, now: datetime = T0, **values: Any) -> int:
    values = {
        "customer_id": customer,
        "kind": "complaint",
        "category": "service",
        "priority": "normal",
        "title": "The installer did not come",
        "received_at": now,
        **values,
    }
    with app.test_request_context(), acting_as("test"):
        record = aftersales.log_feedback(values, db.session.get(User, actor), now=now)
        db.session.commit()
        return record.id


def record(app: Any, feedback_id: int) -> Feedback:
    with app.app_context():
        found = db.session.get(Feedback, feedback_id)
        db.session.expunge(found)
        return found


def step(app: Any, feedback_id: int, actor: int, action: str, now: datetime, **data: Any) -> None:
    with app.test_request_context(), acting_as("test"):
        found = db.session.get(Feedback, feedback_id)
        aftersales.act(found, db.session.get(User, actor), action, data, now=now)
        db.session.commit()


def sweep(app: Any, at: datetime, **kwargs: Any) -> dict[str, int]:
    with app.app_context():
        return aftersales.run_complaint_sla_sweep(now=at, **kwargs)


def escalation_notes(app: Any, user_id: int) -> list[Notification]:
    with app.app_context():
        return list(
            db.session.scalars(
                sa.select(Notification)
                .where(
                    Notification.user_id == user_id,
                    Notification.kind == "sales.complaint_escalated",
                )
                .order_by(Notification.id)
            )
        )


@pytest.mark.parametrize(
    ("priority", "category", "first_hours", "resolution_hours"),
    [
        ("urgent", "delivery", 1, 24),
        ("high", "service", 4, 48),
        ("normal", "usage", 8, 72),
        ("low", "billing", 24, 120),
        ("normal", "quality", 4, 48),  # quality is handled as high priority
        ("low", "quality", 4, 48),
        ("urgent", "quality", 1, 24),  # ... but never slower than its own priority
    ],
)
def test_p3_5_2_deadlines_come_from_the_rule_file_by_priority_and_category(
    app: Any,
    chain: dict[str, int],
    priority: str,
    category: str,
    first_hours: int,
    resolution_hours: int,
) -> None:
    customer = make_customer(app, chain["seller"])
    received = T0 - 30 * timedelta(minutes=1)
    feedback_id = log(
        app, chain["seller"], customer, priority=priority, category=category, received_at=received
    )
    found = record(app, feedback_id)
    # The deadlines count from when the customer complained, not from the logging.
    assert as_utc(found.first_response_due_at) == received + first_hours * HOUR
    assert as_utc(found.resolution_due_at) == received + resolution_hours * HOUR
    assert found.number.startswith("KS-2030-") and found.status == "open"
    with app.app_context():
        decision = db.session.scalars(
            sa.select(RuleDecision).where(
                RuleDecision.subject_table == "sales_feedback",
                RuleDecision.subject_id == str(feedback_id),
            )
        ).one()
        assert decision.ruleset == "complaint_sla"
        assert decision.inputs["hours_open"] in (0, "0")
        assert decision.outputs["first_response_hours"] == first_hours
        # The complaint's own loop item: its owner, due at the resolution deadline.
        item = db.session.get(LoopItem, found.loop_item_id)
        assert item.type == "sales.complaint" and item.priority == priority
        assert item.owner_id == chain["seller"]
        assert as_utc(item.due_at) == as_utc(found.resolution_due_at)
        assert (item.subject_table, item.subject_id) == ("sales_feedback", str(feedback_id))
        assert item.subject_link == f"/sales/aftersales/{feedback_id}"


def test_p3_5_1_feedback_gets_a_loop_item_with_the_default_due_date(
    app: Any, chain: dict[str, int]
) -> None:
    customer = make_customer(app, chain["seller"])
    feedback_id = log(app, chain["seller"], customer, kind="feedback", category="usage")
    found = record(app, feedback_id)
    assert found.first_response_due_at is None and found.resolution_due_at is None
    with app.app_context():
        item = db.session.get(LoopItem, found.loop_item_id)
        assert item.type == "sales.feedback"
        # loop_policy: a normal item is due in seven days.
        assert as_utc(item.due_at) == T0 + timedelta(days=7)
        assert not db.session.scalars(
            sa.select(RuleDecision).where(RuleDecision.ruleset == "complaint_sla")
        ).all()


def test_p3_5_2_a_late_logged_complaint_is_still_raised(app: Any, chain: dict[str, int]) -> None:
    customer = make_customer(app, chain["seller"])
    received = T0 - 30 * HOUR  # an urgent complaint told a day and more ago
    feedback_id = log(app, chain["seller"], customer, priority="urgent", received_at=received)
    found = record(app, feedback_id)
    assert as_utc(found.resolution_due_at) == received + 24 * HOUR
    with app.app_context():
        item = db.session.get(LoopItem, found.loop_item_id)
        assert as_utc(item.due_at) > T0  # the loop policy's default, never in the past
    assert aftersales.is_overdue(found, T0)


def test_p3_5_2_a_published_rule_change_changes_the_deadlines_without_code(
    make_app: Any, chain: dict[str, int], tmp_path: Any
) -> None:
    app = make_app(RULES_REFRESH_SECONDS=0, RULES_INSTANCE_DIR=str(tmp_path / "rules"))
    customer = make_customer(app, chain["seller"])
    before = log(app, chain["seller"], customer)
    with app.app_context(), acting_as("test"):
        text = rules().file_text("complaint_sla")[1]
        # Normal complaints: answer within 6 hours and resolve within 60 (file and tests).
        changed = (
            text.replace(
                "then: {first_response_hours: 8, resolution_hours: 72}",
                "then: {first_response_hours: 6, resolution_hours: 60}",
            )
            .replace("- [144, ~, general_manager, true]", "- [120, ~, general_manager, true]")
            .replace("- [72, ~, manager, true]", "- [60, ~, manager, true]")
            .replace("- [8, false, supervisor, true]", "- [6, false, supervisor, true]")
            .replace(
                "first_response_hours: 8, resolution_hours: 72",
                "first_response_hours: 6, resolution_hours: 60",
            )
        )
        assert changed != text
        published = rules().publish("complaint_sla", changed, "cli", note="faster answers")
        assert rules().active("complaint_sla").version == published.version
    after = log(app, chain["seller"], customer)
    assert as_utc(record(app, before).first_response_due_at) == T0 + 8 * HOUR
    assert as_utc(record(app, after).first_response_due_at) == T0 + 6 * HOUR
    assert as_utc(record(app, after).resolution_due_at) == T0 + 60 * HOUR
    # The sweep reads the new version too: 6.1 hours unanswered now goes to the supervisor.
    assert sweep(app, T0 + 6 * HOUR + 6 * timedelta(minutes=1))["escalated"] == 2
    assert record(app, after).escalated_to == "supervisor"


def test_p3_5_2_sweep_escalates_to_supervisor_then_manager_then_general_manager(
    app: Any, chain: dict[str, int]
) -> None:
    customer = make_customer(app, chain["seller"])
    feedback_id = log(app, chain["seller"], customer, priority="high")
    # Four hours without a response is still in time (more than four is late).
    assert sweep(app, T0 + 4 * HOUR) == {"checked": 1, "escalated": 0, "notified": 0}
    assert escalation_notes(app, chain["sup"]) == []

    late = T0 + 4 * HOUR + 6 * timedelta(minutes=1)
    assert sweep(app, late) == {"checked": 1, "escalated": 1, "notified": 2}
    found = record(app, feedback_id)
    assert found.escalated_to == "supervisor" and as_utc(found.escalated_at) == late
    to_sup = escalation_notes(app, chain["sup"])
    assert len(to_sup) == 1 and to_sup[0].link == f"/sales/aftersales/{feedback_id}"
    assert found.number in to_sup[0].title
    assert len(escalation_notes(app, chain["seller"])) == 1  # the owner is told too
    assert escalation_notes(app, chain["head"]) == escalation_notes(app, chain["gm"]) == []

    # Idempotent: the same time again, and later within the level, change nothing.
    assert sweep(app, late) == {"checked": 1, "escalated": 0, "notified": 0}
    step(app, feedback_id, chain["seller"], "respond", T0 + 5 * HOUR, first_response="Sorry")
    assert sweep(app, T0 + 47 * HOUR)["escalated"] == 0
    assert len(escalation_notes(app, chain["sup"])) == 1

    # Past the resolution deadline: the nearest leader above holding the manager role.
    assert sweep(app, T0 + 48 * HOUR + 6 * timedelta(minutes=1))["escalated"] == 1
    assert record(app, feedback_id).escalated_to == "manager"
    assert len(escalation_notes(app, chain["head"])) == 1
    assert escalation_notes(app, chain["gm"]) == []
    assert len(escalation_notes(app, chain["sup"])) == 1

    # Twice the resolution time: the top of the owner's chain.
    assert sweep(app, T0 + 97 * HOUR)["escalated"] == 1
    assert record(app, feedback_id).escalated_to == "general_manager"
    assert len(escalation_notes(app, chain["gm"])) == 1
    assert len(escalation_notes(app, chain["head"])) == 1
    assert sweep(app, T0 + 200 * HOUR) == {"checked": 1, "escalated": 0, "notified": 0}
    with app.app_context():
        decisions = db.session.scalars(
            sa.select(RuleDecision)
            .where(RuleDecision.subject_id == str(feedback_id))
            .order_by(RuleDecision.id)
        ).all()
        # Logged, then each rise, each with the inputs that decided it.
        assert [d.outputs.get("escalate_to") for d in decisions] == [
            "none",
            "supervisor",
            "manager",
            "general_manager",
        ]
        assert decisions[1].inputs["first_responded"] is False
        assert decisions[2].inputs["first_responded"] is True


def test_p3_5_2_a_first_sweep_long_after_tells_every_level_passed(
    app: Any, chain: dict[str, int]
) -> None:
    customer = make_customer(app, chain["seller"])
    feedback_id = log(app, chain["seller"], customer, priority="urgent")
    assert sweep(app, T0 + 30 * HOUR) == {"checked": 1, "escalated": 1, "notified": 3}
    assert record(app, feedback_id).escalated_to == "manager"
    assert len(escalation_notes(app, chain["sup"])) == 1
    assert len(escalation_notes(app, chain["head"])) == 1
    assert escalation_notes(app, chain["gm"]) == []


def test_p3_5_2_closed_resolved_and_feedback_records_are_not_escalated(
    app: Any, chain: dict[str, int]
) -> None:
    customer = make_customer(app, chain["seller"])
    log(app, chain["seller"], customer, kind="feedback")
    resolved = log(app, chain["seller"], customer, priority="urgent")
    step(app, resolved, chain["seller"], "record_cause", T0, cause="Bad part", action_taken="Fixed")
    assert sweep(app, T0 + 100 * HOUR) == {"checked": 0, "escalated": 0, "notified": 0}
    assert record(app, resolved).escalated_to == "none"


def test_p3_5_2_two_sweeps_never_announce_the_same_level_twice(
    app: Any, chain: dict[str, int]
) -> None:
    customer = make_customer(app, chain["seller"])
    feedback_id = log(app, chain["seller"], customer, priority="high")
    at = T0 + 5 * HOUR
    with app.app_context():
        # A second run scanned the complaint before the first one wrote its level ...
        active = rules().active("complaint_sla")
        rows = db.session.execute(
            sa.select(
                Feedback.id,
                Feedback.number,
                Feedback.title,
                Feedback.priority,
                Feedback.category,
                Feedback.received_at,
                Feedback.first_responded_at,
                Feedback.escalated_to,
                Feedback.owner_id,
                Feedback.lock_version,
            ).where(Feedback.id == feedback_id)
        ).all()
        rising = aftersales._rising(rows, at, active, {})
        assert [level for _row, _evaluation, level in rising] == ["supervisor"]
        db.session.rollback()
    assert sweep(app, at)["notified"] == 2
    with app.app_context(), acting_as("test"):
        # ... and then tries to write it: the conditional UPDATE finds nothing to change.
        from portal.loops.service import LeaderChains

        assert aftersales._escalate(rising, at, active, LeaderChains()) == (0, 0)
        db.session.commit()
    assert len(escalation_notes(app, chain["sup"])) == 1


def test_p3_5_2_sweep_works_in_bounded_batches(app: Any, chain: dict[str, int]) -> None:
    customer = make_customer(app, chain["seller"])
    ids = [log(app, chain["seller"], customer, priority="low") for _ in range(5)]
    counts = sweep(app, T0 + 25 * HOUR, batch_size=2)
    assert counts == {"checked": 5, "escalated": 5, "notified": 10}
    assert {record(app, i).escalated_to for i in ids} == {"supervisor"}
    assert sweep(app, T0 + 25 * HOUR, batch_size=2)["escalated"] == 0


def test_p3_5_2_the_job_runs_the_sweep(app: Any, chain: dict[str, int]) -> None:
    from plugins.sales import _complaint_sweep

    customer = make_customer(app, chain["seller"])
    past = datetime.now(UTC) - timedelta(days=3)
    feedback_id = log(app, chain["seller"], customer, now=past, priority="urgent")
    with app.app_context():
        assert _complaint_sweep()["escalated"] == 1
    assert record(app, feedback_id).escalated_to == "general_manager"


# -- trends --------------------------------------------------------------------------------


def test_p3_5_2_trends_count_categories_and_measure_response_times(
    app: Any, chain: dict[str, int]
) -> None:
    seller, other = chain["seller"], chain["other"]
    mine = make_customer(app, seller)
    theirs = make_customer(app, other, "Other Co")
    now = datetime(2030, 3, 20, 4, 0, tzinfo=UTC)
    march = datetime(2030, 3, 2, 2, 0, tzinfo=UTC)
    january = datetime(2030, 1, 10, 2, 0, tzinfo=UTC)
    # March: a high service complaint answered in 2 h and resolved in 10 h (in time) ...
    first = log(app, seller, mine, now=march, priority="high")
    step(app, first, seller, "respond", march + 2 * HOUR, first_response="On our way")
    step(app, first, seller, "record_cause", march + 10 * HOUR, cause="x", action_taken="y")
    # ... a high quality complaint answered in 6 h (late: 4 h), never resolved (late) ...
    second = log(app, seller, mine, now=march + HOUR, priority="high", category="quality")
    step(app, second, seller, "respond", march + 7 * HOUR, first_response="Checking")
    # ... and a usage feedback; January: another colleague's delivery complaint.
    log(app, seller, mine, now=march, kind="feedback", category="usage")
    log(app, other, theirs, now=january, category="delivery")
    # A year and more ago: outside the twelve months.
    log(app, seller, mine, now=datetime(2029, 3, 1, 2, 0, tzinfo=UTC), category="billing")

    with app.test_request_context():
        seen = aftersales.trends(db.session.get(User, chain["sup"]), now)
        assert [m.label for m in seen.months][-1] == "2030-03" and len(seen.months) == 12
        assert seen.months[0].label == "2029-04"
        by_month = {m.label: m for m in seen.months}
        assert by_month["2030-03"].by_category == {"service": 1, "quality": 1, "usage": 1}
        assert by_month["2030-01"].by_category == {"delivery": 1}
        assert seen.category_totals == {"service": 1, "quality": 1, "usage": 1, "delivery": 1}
        assert by_month["2030-03"].complaints == 2
        assert by_month["2030-03"].avg_response_hours == pytest.approx(4.0)  # (2 + 6) / 2
        assert by_month["2030-03"].avg_resolution_hours == pytest.approx(10.0)
        assert by_month["2030-03"].breach_rate == pytest.approx(0.5)
        # January's complaint was never answered: past both deadlines by now.
        assert by_month["2030-01"].breach_rate == 1.0
        assert seen.total.breach_rate == pytest.approx(2 / 3)
        # Complaints only; and the salesperson's own scope leaves the colleague out.
        assert (
            aftersales.trends(db.session.get(User, chain["sup"]), now, "feedback").total.total == 1
        )
        own = aftersales.trends(db.session.get(User, seller), now)
        assert own.total.total == 3 and own.category_totals.get("delivery") is None
