"""Overdue loop items go up the line (P1.3.2 "problems are actually resolved"): the
sweep ``escalate_overdue`` asks the rule file ``loop_escalation`` and tells the owner's
supervisor chain. Frozen clock: every call passes ``now``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from portal.audit.models import AuditEvent
from portal.audit.recorder import acting_as
from portal.auth.models import User
from portal.extensions import db
from portal.loops import service
from portal.loops.approvals import leader_chain
from portal.loops.models import LoopEvent, LoopItem, Notification
from portal.org.services import supervisor_of
from portal.rules.models import RuleDecision
from portal.rules.service import rules

T0 = datetime(2030, 3, 4, 1, 0, tzinfo=UTC)
DUE = T0 + timedelta(days=1)
HOUR = timedelta(hours=1)


@pytest.fixture
def org(org: dict[str, int], app: Any) -> dict[str, int]:
    """The suite's organisation with the leaders placed in the units they lead, as in
    the demo: a unit's leader reports to the leader of the unit above (li > sup_east >
    manager), which is what supervisor_of answers."""
    with app.app_context():
        for name, unit in (("manager", "company"), ("sup_east", "east"), ("sup_south", "south")):
            db.session.get(User, org[name]).unit_id = org[unit]
        db.session.commit()
    return org


def raise_item(app: Any, owner: int, raiser: int | None = None, **fields: Any) -> int:
    with app.test_request_context(), acting_as("test"):
        item = service.raise_loop(
            fields.pop("type", "core.action"),
            fields.pop("title", "Follow up the overdue payment"),
            db.session.get(User, owner),
            raised_by=db.session.get(User, raiser) if raiser else None,
            due_at=fields.pop("due_at", DUE),
            now=fields.pop("now", T0),
            **fields,
        )
        db.session.commit()
        return item.id


def sweep(app: Any, at: datetime, **kwargs: Any) -> dict[str, int]:
    with app.app_context():
        return service.escalate_overdue(now=at, **kwargs)


def level(app: Any, loop_id: int) -> int:
    with app.app_context():
        return db.session.get(LoopItem, loop_id).escalation_level


def overdue_notes(app: Any, user_id: int) -> list[Notification]:
    with app.app_context():
        return list(
            db.session.scalars(
                sa.select(Notification)
                .where(Notification.user_id == user_id, Notification.kind == "core.loop_overdue")
                .order_by(Notification.id)
            )
        )


def test_p1_3_2_escalation_at_the_right_time(app: Any, org: dict[str, int]) -> None:
    loop_id = raise_item(app, org["li"], org["sup_east"], priority="normal")
    # Not yet due, then overdue but within the grace period of a normal item (24 h).
    assert sweep(app, DUE - HOUR) == {"checked": 0, "escalated": 0, "notified": 0}
    assert sweep(app, DUE + 23 * HOUR)["escalated"] == 0
    assert level(app, loop_id) == 0 and overdue_notes(app, org["sup_east"]) == []

    counts = sweep(app, DUE + 24 * HOUR)
    assert counts == {"checked": 1, "escalated": 1, "notified": 2}  # the owner and supervisor
    assert level(app, loop_id) == 1
    told = overdue_notes(app, org["sup_east"])
    assert len(told) == 1 and told[0].link == f"/loops/{loop_id}"
    assert "level 1" in told[0].title and "Follow up the overdue payment" in told[0].title
    assert len(overdue_notes(app, org["li"])) == 1
    assert overdue_notes(app, org["manager"]) == []

    # The same hour again, and later within level 1: nothing changes, nobody is told twice.
    assert sweep(app, DUE + 24 * HOUR) == {"checked": 1, "escalated": 0, "notified": 0}
    assert sweep(app, DUE + 71 * HOUR)["escalated"] == 0
    assert len(overdue_notes(app, org["sup_east"])) == 1

    # Three days late: level 2 reaches the supervisor's supervisor.
    assert sweep(app, DUE + 72 * HOUR)["escalated"] == 1
    assert level(app, loop_id) == 2
    assert len(overdue_notes(app, org["manager"])) == 1
    assert len(overdue_notes(app, org["sup_east"])) == 2
    with app.app_context():
        events = db.session.scalars(
            sa.select(LoopEvent)
            .where(LoopEvent.loop_id == loop_id, LoopEvent.action == "escalated")
            .order_by(LoopEvent.id)
        ).all()
        assert [(e.details["from_level"], e.details["level"]) for e in events] == [(0, 1), (1, 2)]
        assert events[1].details["notified"] == [org["li"], org["sup_east"], org["manager"]]
        assert events[0].details["hours_overdue"] == 24
        item = db.session.get(LoopItem, loop_id)
        assert item.escalated_at.replace(tzinfo=UTC) == DUE + 72 * HOUR
        # Why: the stored decisions name the rule file, and the audit log the job.
        decisions = db.session.scalars(
            sa.select(RuleDecision).where(
                RuleDecision.ruleset == "loop_escalation",
                RuleDecision.subject_id == str(loop_id),
            )
        ).all()
        assert [d.outputs["level"] for d in decisions] == [1, 2]
        # The lock version moved on: a page read before the escalation is out of date.
        assert item.lock_version == 3
    # Every write is audited: each bulk UPDATE names the item it changed and the level.
    assert bulk_writes(app) == [([loop_id], 1), ([loop_id], 2)]


def test_p1_3_2_done_and_verified_items_are_never_escalated(app: Any, org: dict[str, int]) -> None:
    done = raise_item(app, org["li"], org["sup_east"], priority="urgent")
    verified = raise_item(app, org["wang"], org["sup_east"], priority="urgent")
    started = raise_item(app, org["wang"], org["sup_east"], priority="urgent")
    with app.test_request_context(), acting_as("test"):
        li, wang, sup = (db.session.get(User, org[n]) for n in ("li", "wang", "sup_east"))
        service.close(db.session.get(LoopItem, done), li, "done", now=T0)
        service.close(db.session.get(LoopItem, verified), wang, "done", now=T0)
        service.verify(db.session.get(LoopItem, verified), sup, now=T0)
        service.start(db.session.get(LoopItem, started), wang, now=T0)
        db.session.commit()
    counts = sweep(app, DUE + 500 * HOUR)
    assert counts["checked"] == 1 and counts["escalated"] == 1  # only the started one
    assert (level(app, done), level(app, verified), level(app, started)) == (0, 0, 3)


def test_p1_3_2_urgent_items_escalate_at_once_and_stop_where_the_chain_ends(
    app: Any, org: dict[str, int]
) -> None:
    loop_id = raise_item(app, org["li"], org["sup_east"], priority="urgent")
    assert sweep(app, DUE + timedelta(minutes=1))["escalated"] == 1
    assert level(app, loop_id) == 1
    # Level 3 names supervisor_3, which li does not have (li > sup_east > manager).
    assert sweep(app, DUE + 30 * HOUR)["escalated"] == 1
    assert level(app, loop_id) == 3
    with app.app_context():
        last = db.session.scalars(
            sa.select(LoopEvent)
            .where(LoopEvent.action == "escalated")
            .order_by(LoopEvent.id.desc())
        ).first()
        assert last.details["notified"] == [org["li"], org["sup_east"], org["manager"]]


def test_p1_3_2_reopening_starts_a_new_round_of_escalation(app: Any, org: dict[str, int]) -> None:
    loop_id = raise_item(app, org["li"], org["sup_east"], priority="high")
    assert sweep(app, DUE + 5 * HOUR)["escalated"] == 1
    with app.test_request_context(), acting_as("test"):
        item = db.session.get(LoopItem, loop_id)
        li, sup = db.session.get(User, org["li"]), db.session.get(User, org["sup_east"])
        service.close(item, li, "paid", now=DUE + 6 * HOUR)
        service.reopen(item, sup, "not paid after all", due_at=DUE + 48 * HOUR, now=DUE + 7 * HOUR)
        db.session.commit()
    assert level(app, loop_id) == 0
    assert sweep(app, DUE + 50 * HOUR)["escalated"] == 0  # new due date, grace of 4 h
    assert sweep(app, DUE + 52 * HOUR)["escalated"] == 1
    assert level(app, loop_id) == 1


def test_p1_3_2_sweep_in_batches_is_idempotent_and_digests_messages(
    app: Any, org: dict[str, int]
) -> None:
    ids = [raise_item(app, org["li"], org["sup_east"], title=f"Item {n}") for n in range(11)]
    ids += [raise_item(app, org["zhao"], org["sup_south"], title=f"South {n}") for n in range(3)]
    counts = sweep(app, DUE + 30 * HOUR, batch_size=4)
    assert counts["checked"] == 14 and counts["escalated"] == 14
    assert all(level(app, loop_id) == 1 for loop_id in ids)
    # One message per person per batch, not one per item: the batches (by due date,
    # then id) are li's 1-4, 5-8, 9-11 with zhao's first, and zhao's last two.
    told = overdue_notes(app, org["sup_east"])
    assert [n.title for n in told] == [
        "4 overdue loop items were escalated",
        "4 overdue loop items were escalated",
        "3 overdue loop items were escalated",
    ]
    assert {n.link for n in told} == {"/loops/?escalated=1"}
    south = overdue_notes(app, org["sup_south"])
    assert [n.link for n in south] == [f"/loops/{ids[11]}", "/loops/?escalated=1"]
    # The audit log names every escalated item once, across the batches' bulk writes.
    audited = [item_id for item_ids, _level in bulk_writes(app) for item_id in item_ids]
    assert sorted(audited) == sorted(ids)
    assert sweep(app, DUE + 30 * HOUR, batch_size=4) == {
        "checked": 14,
        "escalated": 0,
        "notified": 0,
    }


def test_p1_3_2_escalation_and_approval_routes_walk_one_leader_chain(
    app: Any, org: dict[str, int], make_unit: Any, make_person: Any
) -> None:
    """``supervisor_2`` names the same person to the escalation sweep and to an approval
    route: the active leaders of the units above, nearest first, never oneself."""
    # A leader who sits inside the unit they lead, and a deeper team without a leader.
    lead = make_person("lead", roles=["supervisor"])
    sub = make_unit("Pudong", "team", parent=org["shanghai"], leader=lead)
    with app.app_context():
        db.session.get(User, lead).unit_id = sub
        # A leader placed in no unit still leads theirs (and reports to nobody).
        db.session.get(User, org["sup_south"]).unit_id = None
        db.session.commit()
    deep = make_unit("Pudong North", "team", parent=sub)
    zhou = make_person("zhou", roles=["salesperson"], unit=deep)
    names = ("li", "wang", "zhao", "sup_east", "sup_south", "manager", "admin")
    people = [org[n] for n in names] + [lead, zhou]
    with app.app_context():
        chains = service.LeaderChains().of_people(people)
        for person_id in people:
            user = db.session.get(User, person_id)
            assert chains[person_id] == [u.id for u in leader_chain(user)], person_id
            boss = supervisor_of(user)
            assert chains[person_id][:1] == ([boss.id] if boss else []), person_id
    assert chains[zhou] == [lead, org["sup_east"], org["manager"]]
    assert chains[org["zhao"]] == [org["sup_south"], org["manager"]]
    assert chains[org["sup_east"]] == [org["manager"]] and chains[org["manager"]] == []
    # A leader who has left is skipped: the next active leader up is told instead.
    with app.app_context():
        db.session.get(User, org["sup_east"]).active = False
        db.session.commit()
        assert service.LeaderChains().of_people([zhou])[zhou] == [lead, org["manager"]]


def test_p1_3_2_a_published_rule_change_changes_escalation_without_code(
    make_app: Any, org: dict[str, int], tmp_path: Any
) -> None:
    app = make_app(RULES_REFRESH_SECONDS=0, RULES_INSTANCE_DIR=str(tmp_path / "rules"))
    loop_id = raise_item(app, org["li"], org["sup_east"], priority="normal")
    with app.app_context(), acting_as("test"):
        text = rules().file_text("loop_escalation")[1]
        # The company gives normal items two days' grace instead of one (file and test).
        changed = text.replace(
            "- [normal, 24, 1, [owner, supervisor]]", "- [normal, 48, 1, [owner, supervisor]]"
        ).replace(
            "given: {priority: normal, type: core.action, hours_overdue: 24}",
            "given: {priority: normal, type: core.action, hours_overdue: 48}",
        )
        assert changed != text
        version = rules().publish("loop_escalation", changed, "cli", note="two days' grace")
        assert rules().active("loop_escalation").version == version.version
    assert sweep(app, DUE + 24 * HOUR)["escalated"] == 0
    assert sweep(app, DUE + 47 * HOUR)["escalated"] == 0
    assert sweep(app, DUE + 48 * HOUR)["escalated"] == 1
    with app.app_context():
        decision = db.session.scalars(
            sa.select(RuleDecision).where(RuleDecision.subject_id == str(loop_id))
        ).one()
        assert decision.ruleset == "loop_escalation" and decision.rule == "overdue"
        assert decision.inputs["hours_overdue"] == 48


def test_p1_3_2_the_job_runs_the_sweep(app: Any, org: dict[str, int]) -> None:
    from portal.core_plugin import escalate_overdue_loops, remind_due_loops

    past = datetime.now(UTC) - timedelta(days=10)
    loop_id = raise_item(app, org["li"], org["sup_east"], now=past, due_at=past + HOUR)
    with app.app_context():
        assert escalate_overdue_loops()["escalated"] == 1
        assert remind_due_loops()["reminded"] == 0
    assert level(app, loop_id) == 3


@pytest.mark.parametrize("priority", ["low", "normal", "high", "urgent"])
def test_p1_3_2_each_priority_escalates_no_earlier_than_its_rule(
    app: Any, org: dict[str, int], priority: str
) -> None:
    first_level_after = {"low": 72, "normal": 24, "high": 4, "urgent": 0}[priority]
    loop_id = raise_item(app, org["li"], org["sup_east"], priority=priority)
    if first_level_after:
        sweep(app, DUE + (first_level_after - 1) * HOUR)
        assert level(app, loop_id) == 0
    sweep(app, DUE + first_level_after * HOUR + timedelta(minutes=1))
    assert level(app, loop_id) == 1


def test_p1_3_2_an_item_changed_after_the_scan_is_not_escalated_nor_audited(
    app: Any, org: dict[str, int]
) -> None:
    loop_id = raise_item(app, org["li"], org["sup_east"], priority="urgent")
    other = raise_item(app, org["wang"], org["sup_east"], priority="urgent")
    at = DUE + 2 * HOUR
    with app.app_context(), acting_as("job:core.escalate_overdue_loops"):
        active = rules().active("loop_escalation")
        scanned = db.session.execute(
            sa.select(
                LoopItem.id,
                LoopItem.due_at,
                LoopItem.priority,
                LoopItem.type,
                LoopItem.escalation_level,
                LoopItem.lock_version,
            ).order_by(LoopItem.id)
        ).all()
        rising = service._rising(scanned, at, active, {})
        assert [level for _row, _evaluation, level in rising] == [1, 1]
        # The owner closes hers between the sweep's scan and its write.
        with app.app_context(), app.test_request_context(), acting_as("li"):
            item = db.session.get(LoopItem, loop_id)
            service.close(item, db.session.get(User, org["li"]), "paid", now=at)
            db.session.commit()
        # The other one escalates; wang and his supervisor are told.
        assert service._escalate_batch(rising, at, active, service.LeaderChains()) == (1, 2)
        db.session.commit()
    assert level(app, loop_id) == 0 and level(app, other) == 1
    assert [n.link for n in overdue_notes(app, org["sup_east"])] == [f"/loops/{other}"]
    # The audit log's bulk write names exactly the item it changed, not the closed one.
    assert bulk_writes(app) == [([other], 1)]


def bulk_writes(app: Any) -> list[tuple[list[int], int]]:
    """(ids, level) of each bulk UPDATE of loop items in the audit log, by the sweep."""
    with app.app_context():
        rows = db.session.execute(
            sa.select(AuditEvent.actor, AuditEvent.before, AuditEvent.after)
            .where(AuditEvent.table_name == "core_loop_item", AuditEvent.action == "bulk_update")
            .order_by(AuditEvent.id)
        ).all()
    writes = []
    for actor, before, after in rows:
        assert actor == "job:core.escalate_overdue_loops"
        (ids,) = [v for k, v in before["parameters"].items() if k.startswith("id_")]
        writes.append((sorted(ids), after["values"]["escalation_level"]))
    return writes
